"""Train the book's GPT (or a Qwen3) on a text, in either backend: the chapter-5 task for the one loop.

The data is the book's pipeline: a 90/10 split of the text, token windows of max_length with the
given stride (`twinlm.data.windows`), batches in a seeded order that changes every epoch. Dropout
masks come from one NumPy generator per step; the learning rate is linear warmup then cosine
(`schedule.lr_at`). So NumPy and PyTorch train on identical inputs, and a run resumed from a
checkpoint continues exactly as if it had never stopped.

arch "qwen3" trains a Qwen3Model (presets QWEN3_PRESETS, e.g. qwen3-tiny: GPT-2 BPE tokens, so the
same data pipeline) through the same loop; Qwen3 is dropout-free, so its batches carry no masks.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np

from twinlm import models
from twinlm.data import windows
from twinlm.data.files import read_input, utf8
from twinlm.shared.config import QWEN3_PRESETS, get_config, is_qwen3_config
from twinlm.shared.init import draw_dropout_masks
from twinlm.shared.naming import gpt_dropout_mask_shapes
from twinlm.training.checkpoint import load_run, saved_settings
from twinlm.training.command import run_command
from twinlm.training.engines import Batch
from twinlm.training.loop import Run, resumed_run
from twinlm.training.schedule import lr_at
from twinlm.training.settings import TrainSettings


class LMTask:
    """Next-token prediction on a text (the book's chapter 5), for twinlm.training.loop."""

    kind = "gpt"
    checkpoint_name = "checkpoint.safetensors"
    report_files = ("loss.png",)  # what report() writes in out_dir
    trainable_keys = None
    evaluate_first = True

    def __init__(self, text: str, settings: TrainSettings, encode):
        s = self.settings = settings
        dropout = {} if s.drop_rate is None else {"drop_rate": s.drop_rate}
        self.cfg = get_config(s.preset, **s.overrides, **dropout)
        if is_qwen3_config(self.cfg) != (s.arch == "qwen3"):
            names = sorted(QWEN3_PRESETS) if s.arch == "qwen3" else ["tiny", "gpt2-small", "…"]
            raise ValueError(f"preset {s.preset!r} is not a {s.arch} preset; choose one of {names}")
        if s.max_length > self.cfg["context_length"]:
            raise ValueError(
                f"max_length ({s.max_length}) must be ≤ the preset's context_length "
                f"({self.cfg['context_length']})"
            )
        train_text, val_text = windows.train_val_split(text, 0.9)
        splits = {"training": encode(train_text), "validation": encode(val_text)}
        top = max((max(ids, default=0) for ids in splits.values()), default=0)
        if top >= self.cfg["vocab_size"]:
            raise ValueError(
                f"the text encodes to token ids up to {top}, but preset {s.preset!r} has "
                f"vocab_size {self.cfg['vocab_size']}: the tokenizer and the model disagree "
                "(with the GPT-2 tokenizer choose a preset of vocab_size 50257, such as 'tiny')"
            )
        for split, ids in splits.items():
            if len(ids) < s.max_length + 1:
                share = "the first 90 %" if split == "training" else "the last 10 %"
                raise ValueError(
                    f"the {split} split ({share} of the text) has {len(ids)} tokens, fewer than "
                    f"the max_length + 1 = {s.max_length + 1} one window needs; use a longer "
                    "text or a smaller --max-length"
                )
        self.train = windows.make_windows(splits["training"], s.max_length, s.stride)
        self.val = windows.make_windows(splits["validation"], s.max_length, s.stride)
        self.per_epoch = windows.num_batches(len(self.train[0]), s.batch_size)
        if self.per_epoch == 0:
            raise ValueError(
                f"the training text makes {len(self.train[0])} windows of {s.max_length} tokens, "
                f"fewer than one batch of batch_size={s.batch_size}; use a longer text"
            )
        digest = hashlib.sha256(self.train[0].tobytes() + self.val[0].tobytes())
        self.fingerprint = digest.hexdigest()[:16]
        self.total_steps = s.steps
        self.seen_per_step = s.batch_size * s.max_length
        self.train_batch = windows.StepBatches(
            lambda epoch: windows.batches(*self.train, s.batch_size, True, s.seed, True, epoch),
            self.per_epoch,
        )

    def build_model(self, backend: str):
        s = self.settings
        name = "Qwen3Model" if s.arch == "qwen3" else "GPTModel"
        return models.build_model(backend, name, self.cfg, s.dtype, seed=s.seed)

    def initial_carry(self) -> None:
        return None

    def batch(self, step: int, carry=None) -> Batch:
        """Batch step % per_epoch of epoch step // per_epoch, and that step's dropout masks."""
        s = self.settings
        x, y = self.train_batch(step)
        masks = {}
        if self.cfg.get("drop_rate", 0) > 0:  # Qwen3 has no drop_rate: no masks
            rng = np.random.default_rng([s.seed, 1, step])  # one generator per step: resumable
            shapes = gpt_dropout_mask_shapes(self.cfg, *x.shape)
            masks = draw_dropout_masks(shapes, rng, self.cfg["drop_rate"], np.dtype(s.dtype))
        return Batch(x, y, masks)

    def lr(self, step: int) -> float:
        """Linear warmup to peak_lr, then cosine to min_lr at step `steps` (the total: a run
        extended on resuming stretches the cosine to its new end)."""
        s = self.settings
        warmup = min(s.warmup_steps, s.steps - 1)
        return lr_at(
            step, peak_lr=s.peak_lr, warmup_steps=warmup, total_steps=s.steps, min_lr=s.min_lr
        )

    def evaluate(self, engine) -> dict[str, float]:
        """Mean loss over the first eval_batches batches of each split, in order."""
        s, losses = self.settings, {}
        for split, data in (("train", self.train), ("val", self.val)):
            it = windows.batches(*data, s.batch_size, shuffle=False, drop_last=False)
            losses[f"{split}_loss"] = float(
                np.mean([engine.eval_loss(x, y) for _, (x, y) in zip(range(s.eval_batches), it)])
            )
        return losses

    def eval_line(self, step: int, m: dict[str, float]) -> str:
        train, val = m["train_loss"], m["val_loss"]
        return (
            f"step {step:>5} | tokens {step * self.seen_per_step:>9,} | train loss {train:.3f} "
            f"(ppl {math.exp(train):,.1f}) | val loss {val:.3f} (ppl {math.exp(val):,.1f})"
        )

    def epoch_end(self, run: Run) -> None:
        return None

    def meta(self) -> dict:
        return {"cfg": self.cfg, "settings": asdict(self.settings), "data": self.fingerprint}

    def report(self, run: Run, out_dir: Path) -> list[str]:
        from twinlm.report.plots import plot_history

        h, s = run.history, self.settings
        png = plot_history(
            out_dir / "loss.png",
            h,
            title=f"{'Qwen3' if s.arch == 'qwen3' else 'GPT'} ({s.preset}, {run.engine.backend}, {s.dtype})",
        )
        return [f"loss curve: {png}"]


def resume(path: str | Path, text: str, encode, backend: str | None = None) -> Run:
    """Continue a GPT run from its checkpoint, on the same text (checked by fingerprint)."""
    saved = load_run(path, "gpt")
    task = LMTask(text, saved_settings(saved, TrainSettings), encode)
    return resumed_run(task, backend or saved.meta["backend"], saved)


# ---- `twinlm train` (twinlm/cli.py parses) -------------------------------------------------------


def read_text(path: str | None) -> str:
    """The --text file, or the embedded default corpus (twinlm.data.windows.default_corpus)."""
    if path is None:
        return windows.default_corpus()
    return utf8(read_input(path, "--text"), path, "--text")


def main_train(args) -> int:
    from twinlm.data.tokenizer import encode

    def make(settings: TrainSettings, saved) -> LMTask:
        return LMTask(read_text(args.text), settings, encode)

    return run_command(args, TrainSettings, LMTask, make)
