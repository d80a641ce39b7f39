"""Karpathy's char-rnn as a task for the one loop: truncated BPTT over a text's bytes, sampling,
and the `twinlm charrnn train|sample` commands.

The model is any of char-rnn's three cells (`--model rnn|gru|lstm`; the vanilla RNN with
`--nonlinearity tanh|relu`), recorded in the checkpoint as cfg["cell"] (a checkpoint without it is
an LSTM, as every one was before the choice).

The bytes, the vocabulary and the stateful batches are twinlm/data/bytes.py's: row b of batch k+1
continues row b of batch k, so the recurrent state at the end of batch k is the right initial state
for batch k+1. The loop carries it over, but as a plain value: the backward of batch k+1 stops at
its first step (truncated backpropagation through time). Each epoch starts the streams over from a
zero state. Losses are mean cross entropy in nats per byte; bits per character = nats / ln 2.

Everything that decides the numbers is seeded and backend-neutral — the batches, the dropout masks
(one NumPy generator per step), the learning rate — and the carried state is saved in checkpoints,
so NumPy and torch train on identical inputs and a resumed run continues bit for bit.
"""

from __future__ import annotations

import hashlib
import math
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from twinlm import models
from twinlm.data.bytes import ByteVocab, StreamBatches, as_bytes, split_ids
from twinlm.data.files import read_input
from twinlm.shared.init import draw_dropout_masks, init_charrnn_params
from twinlm.shared.naming import BACKENDS, CELL_STATE, charrnn_cell, charrnn_dropout_mask_shapes
from twinlm.shared.sampling import check_sampling_args, next_tokens
from twinlm.shared.validate import require_choice, require_int
from twinlm.training.checkpoint import load_run, saved_settings
from twinlm.training.command import run_command
from twinlm.training.engines import Batch, make_engine
from twinlm.training.loop import Run, resumed_run
from twinlm.training.settings import MODELS, NONLINEARITIES, CharRNNSettings

LN2 = math.log(2.0)


def cell_of(model: str, nonlinearity: str = "tanh") -> str:
    """cfg["cell"] for char-rnn's -model and the vanilla RNN's nonlinearity: "lstm", "gru",
    "rnn_tanh" or "rnn_relu"."""
    require_choice("model", model, MODELS)
    require_choice("nonlinearity", nonlinearity, NONLINEARITIES)
    if model != "rnn" and nonlinearity != "tanh":  # tanh: the default, whatever the model
        raise ValueError(
            f"nonlinearity is the vanilla RNN's (model 'rnn'); model {model!r} has its own, got "
            f"nonlinearity {nonlinearity!r}"
        )
    return f"rnn_{nonlinearity}" if model == "rnn" else model


def build_charrnn(backend: str, cfg: dict, seed: int, dtype: str):
    """A char-RNN of either backend, filled from the one seeded initializer."""
    models.require_memory("CharRNN", cfg, dtype)  # before the initializer draws
    params = init_charrnn_params(cfg, seed, np.dtype(dtype))
    return models.build_model(backend, "CharRNN", cfg, dtype, params=params)


class CharRNNTask:
    """Truncated-BPTT training on a text (str or bytes), for twinlm.training.loop."""

    kind = "charrnn"
    checkpoint_name = "checkpoint.safetensors"
    report_files = ("loss.png",)  # what report() writes in out_dir
    trainable_keys = None
    evaluate_first = True

    def __init__(self, text, settings: CharRNNSettings, vocab: ByteVocab | None = None):
        s = self.settings = settings
        data = as_bytes("text", text)
        self.vocab = vocab if vocab is not None else ByteVocab.from_text(data)
        ids = self.vocab.encode(data)
        train_ids, val_ids = split_ids(ids)
        self.train = StreamBatches(train_ids, s.batch_size, s.seq_length, "the training split")
        self.val = StreamBatches(val_ids, s.batch_size, s.seq_length, "the validation split (10 %)")
        self.cfg = {
            "cell": cell_of(s.model, s.nonlinearity),
            "vocab_size": len(self.vocab),
            "emb_dim": s.emb_dim,
            "hidden_size": s.hidden_size,
            "num_layers": s.num_layers,
            "drop_rate": s.drop_rate,
        }
        self.fingerprint = hashlib.sha256(self.vocab.symbols + ids.tobytes()).hexdigest()[:16]
        self.total_steps, self.per_epoch = s.steps, self.train.per_epoch
        self.seen_per_step = s.batch_size * s.seq_length

    def build_model(self, backend: str):
        s = self.settings
        return build_charrnn(backend, self.cfg, s.seed, s.dtype)

    def initial_carry(self) -> tuple[np.ndarray, ...]:
        """The cell's state of zeros ((h_0, c_0) for the LSTM, (h_0,) otherwise), each
        (num_layers, batch, hidden_size): the start of a text."""
        s = self.settings
        shape = (s.num_layers, s.batch_size, s.hidden_size)
        return tuple(np.zeros(shape, s.dtype) for _ in CELL_STATE[self.cfg["cell"]])

    def batch(self, step: int, carry) -> Batch:
        k = step % self.per_epoch
        if k == 0:  # a new epoch: the streams start over, and so does the state
            carry = self.initial_carry()
        x, y = self.train.batch(k)
        masks = {}
        if self.cfg["drop_rate"] > 0:
            s = self.settings
            rng = np.random.default_rng([s.seed, 1, step])  # one generator per step: resumable
            shapes = charrnn_dropout_mask_shapes(self.cfg, s.batch_size, s.seq_length)
            masks = draw_dropout_masks(shapes, rng, self.cfg["drop_rate"], np.dtype(s.dtype))
        return Batch(x, y, masks, carry)

    def lr(self, step: int) -> float:
        """char-rnn's schedule: lr, times lr_decay at the end of each epoch e ≥ decay_after (e
        counted from 1), i.e. lr · decay^max(0, completed epochs - decay_after + 1)."""
        epoch = step // self.per_epoch
        return self.settings.lr * self.settings.lr_decay ** max(
            0, epoch - self.settings.decay_after + 1
        )

    def split_loss(self, engine, batches: StreamBatches) -> float:
        """Mean loss (nats) over the first eval_batches batches of a split, the state carried."""
        n = self.settings.eval_batches or batches.per_epoch
        state, losses = self.initial_carry(), []
        for k in range(min(n, batches.per_epoch)):
            loss, state = engine.eval_loss(*batches.batch(k), state)
            losses.append(loss)
        return float(np.mean(losses))

    def evaluate(self, engine) -> dict[str, float]:
        return {
            "train_loss": self.split_loss(engine, self.train),
            "val_loss": self.split_loss(engine, self.val),
        }

    def eval_line(self, step: int, m: dict[str, float]) -> str:
        train, val = m["train_loss"], m["val_loss"]
        return (
            f"step {step:>6} | chars {step * self.seen_per_step:>11,} | train {train:.4f} nats "
            f"({train / LN2:.3f} bpc) | val {val:.4f} nats ({val / LN2:.3f} bpc)"
        )

    def epoch_end(self, run: Run) -> None:
        return None

    def header(self) -> str:
        s = self.settings
        return (
            f"{self.cfg['cell']} {s.num_layers}×{s.hidden_size} | "
            f"vocabulary {len(self.vocab)} bytes | {self.train.per_epoch} batches of "
            f"{s.batch_size}×{s.seq_length} per epoch | validation {self.val.per_epoch} batches"
        )

    def meta(self) -> dict:
        return {
            "cfg": self.cfg,
            "vocab": list(self.vocab.symbols),
            "settings": asdict(self.settings),
            "data": self.fingerprint,
        }

    def report(self, run: Run, out_dir: Path) -> list[str]:
        from twinlm.report.plots import plot_history

        h, s = run.history, self.settings
        png = plot_history(
            out_dir / "loss.png",
            h,
            title=f"char-RNN ({self.cfg['cell']} {s.num_layers}×{s.hidden_size}, "
            f"{run.engine.backend}, {s.dtype})",
            xlabel="characters (bytes) seen",
            ylabel="cross entropy (nats per byte)",
        )
        return [f"loss curve: {png}"]


def saved_vocab(saved) -> ByteVocab:
    """The byte vocabulary a char-RNN checkpoint was trained with: a list of its cfg's vocab_size
    distinct byte values (never bytes(n) of a number, which would be n zero bytes)."""
    vocab = saved.meta.get("vocab")
    if (
        type(vocab) is not list
        or len(vocab) != saved.meta["cfg"]["vocab_size"]
        or not all(type(b) is int and 0 <= b < 256 for b in vocab)
        or len(set(vocab)) != len(vocab)
    ):
        raise ValueError(
            f"{saved.path}: its metadata lacks a valid 'vocab' (the list of the "
            f"{saved.meta['cfg']['vocab_size']} distinct byte values the model knows)"
        )
    return ByteVocab(bytes(vocab))


def resume(path: str | Path, text, backend: str | None = None, steps: int | None = None) -> Run:
    """Continue a char-RNN run from its checkpoint on the same text (checked by fingerprint);
    `steps` sets a new total number of steps."""
    saved = load_run(path, "charrnn")
    settings = saved_settings(saved, CharRNNSettings)
    if steps is not None:
        settings = replace(settings, steps=steps)  # checked as a new setting is
    task = CharRNNTask(text, settings, saved_vocab(saved))
    return resumed_run(task, backend or saved.meta["backend"], saved)


# ---- sampling ------------------------------------------------------------------------------------


def sample(
    engine,
    vocab: ByteVocab,
    primer=b"",
    length: int = 200,
    temperature: float = 1.0,
    seed: int = 0,
    top_k: int | None = None,
) -> bytes:
    """`length` bytes continuing `primer`, one at a time with the state carried (primer excluded).

    Both backends hand float64 logits to the one sampler (twinlm.shared.sampling.next_tokens) with
    the same generator, so the same seed gives the same bytes. temperature 0 is greedy. An empty
    primer starts from a uniform distribution over the first byte, like char-rnn's sample.lua."""
    require_int("length", length, 0)
    rng = np.random.default_rng(seed)
    check_sampling_args(temperature, top_k, len(vocab), rng)
    primer_ids = vocab.encode(primer, "primer")
    cfg = engine.model.cfg
    shape = (cfg["num_layers"], 1, cfg["hidden_size"])
    dtype = next(iter(engine.params().values())).dtype
    state = tuple(np.zeros(shape, dtype) for _ in CELL_STATE[charrnn_cell(cfg)])

    def predict(ids: np.ndarray, state):
        logits, state = engine.eval_logits(ids[None, :], state)  # (1, T, V)
        return logits[:, -1].astype(np.float64), state  # (1, V)

    if len(primer_ids):
        logits, state = predict(primer_ids, state)
    else:
        logits = np.zeros((1, len(vocab)))  # (1, V) uniform
    out = np.empty(length, np.int64)
    for i in range(length):
        out[i] = next_tokens(logits, temperature, top_k, rng)[0]
        if i + 1 < length:
            logits, state = predict(out[i : i + 1], state)
    return vocab.decode(out)


def load_for_sampling(path: str | Path, backend: str | None = None):
    """(engine holding the checkpoint's weights, vocabulary, metadata)."""
    saved = load_run(path, "charrnn")
    meta, backend = saved.meta, backend or saved.meta["backend"]
    require_choice("backend", backend, BACKENDS)
    dtype = str(next(iter(saved.params.values())).dtype)
    engine = make_engine(backend, build_charrnn(backend, meta["cfg"], 0, dtype))
    engine.load_params(saved.params, str(path))
    return engine, saved_vocab(saved), meta


# ---- command line --------------------------------------------------------------------------------


def read_corpus(path: str | None) -> bytes:
    """The --text file's bytes, or the embedded default corpus (twinlm.data.windows)."""
    if path is None:
        from twinlm.data.windows import default_corpus

        return default_corpus().encode("utf-8")
    return read_input(path, "--text")


def main_train(args) -> int:
    def make(settings: CharRNNSettings, saved) -> CharRNNTask:
        if "nonlinearity" in getattr(args, "given", ()) and settings.model != "rnn":
            raise ValueError(
                f"--nonlinearity is for --model rnn; the {settings.model} has its own (leave "
                "--nonlinearity out)"
            )
        vocab = None if saved is None else saved_vocab(saved)
        return CharRNNTask(read_corpus(args.text), settings, vocab)

    return run_command(args, CharRNNSettings, CharRNNTask, make, lambda run: run.task.header())


def main_sample(args) -> int:
    engine, vocab, _ = load_for_sampling(args.checkpoint, args.backend)
    primer = args.primer.encode("utf-8")
    options = dict(temperature=args.temperature, seed=args.seed, top_k=args.top_k)
    out = sample(engine, vocab, primer, length=args.length, **options)
    sys.stdout.write((primer + out).decode("utf-8", errors="replace") + "\n")
    return 0
