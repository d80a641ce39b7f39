"""Train the book's GPT on a text, in either backend: the chapter-5 training loop.

Everything that decides the numbers is backend-neutral and seeded — the token windows, the batch
order (`dataset.batches`, one permutation per epoch), the dropout masks (one NumPy generator per
step) and the learning-rate schedule — so NumPy and PyTorch train on identical inputs, and a run
resumed from a checkpoint continues exactly as if it had never stopped.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from twinlm.data import windows as dataset
from twinlm.shared.config import get_config
from twinlm.shared.init import draw_dropout_masks
from twinlm.shared.naming import gpt_dropout_mask_shapes
from twinlm.training.backends import make_backend
from twinlm.training.checkpoint import load_checkpoint, save_checkpoint
from twinlm.training.schedule import lr_at


@dataclass
class TrainSettings:
    preset: str = "tiny"
    dtype: str = "float32"
    max_length: int = 64  # tokens per training window (≤ the preset's context_length)
    stride: int = 64  # the book uses stride = max_length: windows do not overlap
    batch_size: int = 4
    steps: int = 200  # optimizer steps in total
    peak_lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int = 20
    weight_decay: float = 0.1
    clip: float = 1.0
    eval_every: int = 25
    eval_batches: int = 4
    seed: int = 123
    checkpoint_every: int = 0  # 0: only at the end
    overrides: dict = field(default_factory=dict)  # config keys to override, e.g. drop_rate


@dataclass
class History:
    steps: list[int] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)  # the loss of every optimizer step


class GPTData:
    """The book's data pipeline: 90/10 split of the text, then sliding windows of token ids."""

    def __init__(self, text: str, s: TrainSettings, encode):
        train_text, val_text = dataset.train_val_split(text, 0.9)
        self.train = dataset.make_windows(encode(train_text), s.max_length, s.stride)
        self.val = dataset.make_windows(encode(val_text), s.max_length, s.stride)
        self.batch_size, self.seed = s.batch_size, s.seed
        self.per_epoch = dataset.num_batches(len(self.train[0]), s.batch_size)
        if self.per_epoch == 0:
            raise ValueError(
                f"the training text makes {len(self.train[0])} windows of {s.max_length} tokens, "
                f"fewer than one batch of batch_size={s.batch_size}; use a longer text"
            )
        digest = hashlib.sha256(self.train[0].tobytes() + self.val[0].tobytes())
        self.fingerprint = digest.hexdigest()[:16]
        self._next, self._epoch_batches = None, iter(())

    def batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """The batch of optimizer step `step`: batch step % per_epoch of epoch step // per_epoch."""
        epoch, index = divmod(step, self.per_epoch)
        if self._next != (epoch, index):  # not where the running epoch is: start that epoch over
            self._epoch_batches = dataset.batches(
                *self.train, self.batch_size, True, self.seed, True, epoch
            )
            for _ in range(index):
                next(self._epoch_batches)
        self._next = (epoch, index + 1)
        return next(self._epoch_batches)

    def eval_batches(self, split: str, n: int):
        inputs, targets = self.train if split == "train" else self.val
        it = dataset.batches(inputs, targets, self.batch_size, shuffle=False, drop_last=False)
        return [b for _, b in zip(range(n), it)]


class Trainer:
    """Runs `settings.steps` optimizer steps of one backend; evaluates, checkpoints, plots."""

    def __init__(self, backend: str, text: str, settings: TrainSettings, encode):
        self.s = settings
        self.cfg = get_config(settings.preset, **settings.overrides)
        if settings.max_length > self.cfg["context_length"]:
            raise ValueError(
                f"max_length ({settings.max_length}) must be ≤ the preset's context_length "
                f"({self.cfg['context_length']})"
            )
        self.data = GPTData(text, settings, encode)
        self.backend = make_backend(
            backend, self.cfg, settings.seed, settings.dtype, settings.weight_decay, settings.clip
        )
        self.step = 0
        self.history = History()

    def lr(self, step: int) -> float:
        s = self.s
        warmup = min(s.warmup_steps, s.steps - 1)
        return lr_at(step, peak_lr=s.peak_lr, warmup_steps=warmup, total_steps=s.steps,
                     min_lr=s.min_lr)  # fmt: skip

    def masks(self, step: int, x: np.ndarray) -> dict:
        if self.cfg["drop_rate"] == 0:
            return {}
        rng = np.random.default_rng([self.s.seed, 1, step])  # one generator per step: resumable
        shapes = gpt_dropout_mask_shapes(self.cfg, *x.shape)
        return draw_dropout_masks(shapes, rng, self.cfg["drop_rate"], self.s.dtype)

    def train_step(self) -> float:
        x, y = self.data.batch(self.step)
        loss = self.backend.train_step(x, y, self.lr(self.step), self.masks(self.step, x))
        self.step += 1
        self.history.step_loss.append(loss)
        return loss

    def evaluate(self) -> tuple[float, float]:
        n = self.s.eval_batches
        losses = [
            float(
                np.mean([self.backend.eval_loss(x, y) for x, y in self.data.eval_batches(split, n)])
            )
            for split in ("train", "val")
        ]
        h = self.history
        h.steps.append(self.step)
        h.tokens.append(self.tokens_seen)
        h.train_loss.append(losses[0])
        h.val_loss.append(losses[1])
        return losses[0], losses[1]

    @property
    def tokens_seen(self) -> int:
        return self.step * self.s.batch_size * self.s.max_length

    # ---- checkpoints -----------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        tensors, opt_steps = self.backend.state()
        meta = {
            "kind": "gpt",
            "backend": self.backend.name,
            "cfg": self.cfg,
            "settings": asdict(self.s),
            "step": self.step,
            "opt_steps": opt_steps,
            "history": asdict(self.history),
            "data": self.data.fingerprint,
        }
        return save_checkpoint(path, tensors, meta)

    @classmethod
    def resume(cls, path: str | Path, text: str, encode, backend: str | None = None) -> Trainer:
        """Continue a run from its checkpoint, on the same text (checked by fingerprint)."""
        tensors, meta = load_checkpoint(path)
        if meta.get("kind") != "gpt":
            raise ValueError(f"{path} is not a GPT training checkpoint (kind {meta.get('kind')!r})")
        trainer = cls(backend or meta["backend"], text, TrainSettings(**meta["settings"]), encode)
        restore_run(trainer, path, tensors, meta, trainer.data.fingerprint, History)
        return trainer


def restore_run(trainer, path, tensors: dict, meta: dict, fingerprint: str, history_cls) -> None:
    """The part of resuming that GPT and char-RNN training share: check that the run continues on
    the text its checkpoint was made on (by fingerprint), then restore the optimizer state, the step
    count and the history."""
    if fingerprint != meta["data"]:
        raise ValueError(
            f"the text differs from the one {path} was trained on; resume with the same --text"
        )
    trainer.backend.load_state(tensors, meta["opt_steps"])
    trainer.step = meta["step"]
    trainer.history = history_cls(**meta["history"])


def format_eval(step: int, tokens: int, train: float, val: float) -> str:
    return (
        f"step {step:>5} | tokens {tokens:>9,} | train loss {train:.3f} (ppl {math.exp(train):,.1f})"
        f" | val loss {val:.3f} (ppl {math.exp(val):,.1f})"
    )


def run_steps(trainer, ckpt: Path, eval_line: Callable[[], str], desc: str, progress: bool = True,
              header: str | None = None) -> float:  # fmt: skip
    """The loop of every step-counted trainer (this GPT one and twinlm/training/charrnn.py's): an
    evaluation first (unless resuming), then train_step() up to settings.steps, writing eval_line()
    (which evaluates) every eval_every steps and at the end, saving to ckpt every checkpoint_every
    steps and at the end. Returns the seconds the steps took."""
    from tqdm import tqdm

    s = trainer.s
    bar = tqdm(total=s.steps, initial=trainer.step, disable=not progress, unit="step", desc=desc)
    if header is not None:
        bar.write(header)
    if trainer.step == 0:
        bar.write(eval_line())
    start = time.perf_counter()
    while trainer.step < s.steps:
        loss = trainer.train_step()
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")
        if trainer.step % s.eval_every == 0 or trainer.step == s.steps:
            bar.write(eval_line())
        if s.checkpoint_every and trainer.step % s.checkpoint_every == 0:
            trainer.save(ckpt)
    bar.close()
    seconds = time.perf_counter() - start
    trainer.save(ckpt)
    return seconds


def run_training(trainer: Trainer, out_dir: str | Path, progress: bool = True) -> Path:
    """Train to `settings.steps`, printing evaluations; write checkpoints and the loss curve."""
    from twinlm.report.plots import plot_losses

    s, out_dir = trainer.s, Path(out_dir)
    ckpt = out_dir / "checkpoint.safetensors"
    start = time.perf_counter()
    run_steps(
        trainer, ckpt,
        lambda: format_eval(trainer.step, trainer.tokens_seen, *trainer.evaluate()),
        f"train [{trainer.backend.name}]", progress,
    )  # fmt: skip
    h = trainer.history
    png = plot_losses(
        out_dir / "loss.png",
        {"train": (h.tokens, h.train_loss), "validation": (h.tokens, h.val_loss)},
        title=f"GPT ({s.preset}, {trainer.backend.name}, {s.dtype})",
    )
    print(f"checkpoint: {ckpt}\nloss curve: {png}\ntime: {time.perf_counter() - start:.1f} s")
    return ckpt
