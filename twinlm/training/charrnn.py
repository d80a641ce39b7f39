"""Karpathy's char-rnn, the backend-neutral half: byte vocabulary, stateful batches, truncated BPTT
training, sampling, and the `twinlm charrnn train|sample` commands.

Vocabulary. The sorted set of bytes that occur in the corpus; a byte's id is its rank in that set,
so `decode(encode(text)) == text` for any text made of those bytes (UTF-8 letters are several bytes
and are learnt byte by byte, like the original).

Stateful batches (char-rnn's CharSplitLMMinibatchLoader). The ids are cut into B contiguous streams
of equal length; batch k holds the k-th chunk of T = seq_length bytes of every stream:
    ids    = [ s_0 | s_1 | … | s_{B-1} ] (+ 1 byte for the last target; a ragged tail is dropped)
    x_k    = streams[:, k·T : (k+1)·T]            (B, T)
    y_k    = the same positions one byte later    (B, T)  y_k[b, t] = x_k[b, t+1], continued
So row b of batch k+1 continues row b of batch k, and the LSTM state at the end of batch k is the
right initial state for batch k+1. The trainer carries it over, but as a plain value: the backward
of batch k+1 stops at its first step (truncated backpropagation through time). Each epoch starts
the streams over from a zero state. Train/validation split: the first 90 % of the bytes / the rest.

Losses are mean cross entropy in nats per byte; bits per character = nats / ln 2 (printed too).

Everything that decides the numbers is seeded and backend-neutral — the batches, the dropout masks
(one NumPy generator per step), the learning rate — and the carried state is saved in checkpoints,
so NumPy and torch train on identical inputs and a resumed run continues bit for bit.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from twinlm.shared.naming import charrnn_dropout_mask_shapes, sub_dict
from twinlm.shared.sampling import check_sampling_args, next_tokens
from twinlm.shared.validate import require_choice, require_int
from twinlm.training.backends import BACKENDS, DTYPES, make_charrnn_backend
from twinlm.training.checkpoint import load_checkpoint, save_checkpoint
from twinlm.training.lm import restore_run, run_steps

LN2 = math.log(2.0)

# ---- vocabulary ----------------------------------------------------------------------------------


def _as_bytes(name: str, text) -> bytes:
    if isinstance(text, str):
        return text.encode("utf-8")
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text)
    raise TypeError(f"{name} must be str or bytes, got {type(text).__name__}")


class ByteVocab:
    """The sorted set of a corpus's bytes. encode(str | bytes) -> int64 ids; decode(ids) -> bytes."""

    def __init__(self, symbols):
        symbols = sorted(set(_as_bytes("symbols", symbols)))
        if not symbols:
            raise ValueError("symbols must hold at least one byte, got an empty vocabulary")
        self.symbols = bytes(symbols)  # id -> byte
        self._ids = np.full(256, -1, np.int64)  # byte -> id, -1 where the byte is not in it
        self._ids[np.frombuffer(self.symbols, np.uint8)] = np.arange(len(symbols))

    @classmethod
    def from_text(cls, text) -> ByteVocab:
        data = _as_bytes("text", text)
        if not data:
            raise ValueError("text must not be empty: the vocabulary is the set of its bytes")
        return cls(data)

    def __len__(self) -> int:
        return len(self.symbols)

    def __eq__(self, other) -> bool:
        return isinstance(other, ByteVocab) and self.symbols == other.symbols

    def encode(self, text, name: str = "text") -> np.ndarray:
        """Ids (len(bytes),) int64; a byte outside the vocabulary raises ValueError naming it."""
        raw = np.frombuffer(_as_bytes(name, text), np.uint8)  # (n,)
        ids = self._ids[raw]  # (n,)
        if (ids < 0).any():
            missing = sorted({bytes([b]) for b in raw[ids < 0].tolist()})
            raise ValueError(
                f"{name} holds bytes outside the {len(self)}-byte vocabulary: {missing[:10]}"
            )
        return ids

    def decode(self, ids) -> bytes:
        ids = np.asarray(ids)
        if ids.size and (not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0
                         or ids.max() >= len(self)):  # fmt: skip
            raise ValueError(f"ids must be integers in [0, {len(self)}), got {ids.ravel()[:10]}")
        return np.frombuffer(self.symbols, np.uint8)[ids.ravel()].tobytes()


# ---- stateful batches ----------------------------------------------------------------------------


class StreamBatches:
    """B contiguous streams of `ids`, served as consecutive (B, T) chunks (see module docstring)."""

    def __init__(self, ids: np.ndarray, batch_size: int, seq_length: int, name: str = "text"):
        require_int("batch_size", batch_size, 1)
        require_int("seq_length", seq_length, 1)
        B, T = batch_size, seq_length
        self.per_epoch = (len(ids) - 1) // (B * T)  # batches per pass over the streams
        if self.per_epoch < 1:
            raise ValueError(
                f"{name} has {len(ids)} bytes, fewer than one batch needs: batch_size × "
                f"seq_length + 1 = {B * T + 1}; use a longer text or a smaller batch"
            )
        n = B * self.per_epoch * T  # bytes used; the ragged tail is dropped
        ids = np.asarray(ids, np.int64)
        self.x = ids[:n].reshape(B, n // B)  # (B, S)  row b is stream b
        self.y = ids[1 : n + 1].reshape(B, n // B)  # (B, S)  the next byte of every position
        self.seq_length = T

    def batch(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch k (0 ≤ k < per_epoch): (x, y), fresh contiguous (B, T) int64 arrays."""
        cols = slice(k * self.seq_length, (k + 1) * self.seq_length)
        return np.ascontiguousarray(self.x[:, cols]), np.ascontiguousarray(self.y[:, cols])


def draw_dropout_masks(cfg: dict, rng: np.random.Generator, batch: int, seq: int, dtype) -> dict:
    """The named 0/1 keep-masks (B, T, H) of one step (naming.charrnn_dropout_mask_shapes), 1 with
    probability 1 - drop_rate, in dtype."""
    shapes = charrnn_dropout_mask_shapes(cfg, batch, seq)
    return {k: (rng.random(s) >= cfg["drop_rate"]).astype(dtype) for k, s in shapes.items()}


# ---- training ------------------------------------------------------------------------------------


@dataclass
class CharRNNSettings:
    """char-rnn's defaults where they fit (rnn_size 128, num_layers 2, seq_length 50, batch_size
    50, learning_rate 2e-3 decayed ×0.97 per epoch after 10, grad_clip 5), with Adam for RMSprop
    and a global-norm clip for the element-wise one."""

    dtype: str = "float32"
    emb_dim: int = 64
    hidden_size: int = 128
    num_layers: int = 2
    drop_rate: float = 0.0
    batch_size: int = 50
    seq_length: int = 50
    steps: int = 1000
    lr: float = 2e-3
    lr_decay: float = 0.97  # multiply lr by this at the end of every epoch from decay_after on
    decay_after: int = 10  # epochs
    weight_decay: float = 0.0  # 0: Adam
    clip: float = 5.0  # global gradient norm
    eval_every: int = 100
    eval_batches: int = 20  # batches of each split per evaluation (0: the whole split)
    seed: int = 123
    checkpoint_every: int = 0  # 0: only at the end


@dataclass
class CharRNNHistory:
    steps: list[int] = field(default_factory=list)
    chars: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)  # nats per byte
    val_loss: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)  # the loss of every optimizer step


def split_ids(ids: np.ndarray, train_frac: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """The first 90 % of the bytes for training, the rest for validation."""
    cut = int(round(train_frac * len(ids)))
    return ids[:cut], ids[cut:]


class CharRNNTrainer:
    """Truncated-BPTT training of one backend on a text (str or bytes)."""

    def __init__(
        self, backend: str, text, settings: CharRNNSettings, vocab: ByteVocab | None = None
    ):
        s = self.s = settings
        require_choice("backend", backend, BACKENDS)
        require_int("seq_length", s.seq_length, 1)
        require_int("batch_size", s.batch_size, 1)
        require_int("steps", s.steps, 0)
        require_int("eval_every", s.eval_every, 1)
        require_int("eval_batches", s.eval_batches, 0)
        data = _as_bytes("text", text)
        self.vocab = vocab if vocab is not None else ByteVocab.from_text(data)
        ids = self.vocab.encode(data)
        train_ids, val_ids = split_ids(ids)
        self.train = StreamBatches(train_ids, s.batch_size, s.seq_length, "the training split")
        self.val = StreamBatches(val_ids, s.batch_size, s.seq_length, "the validation split (10 %)")
        self.cfg = {"vocab_size": len(self.vocab), "emb_dim": s.emb_dim,
                    "hidden_size": s.hidden_size, "num_layers": s.num_layers,
                    "drop_rate": s.drop_rate}  # fmt: skip
        self.backend = make_charrnn_backend(
            backend, self.cfg, s.seed, s.dtype, s.weight_decay, s.clip
        )
        digest = hashlib.sha256(self.vocab.symbols + ids.tobytes())
        self.fingerprint = digest.hexdigest()[:16]
        self.step = 0
        self.carry = self.backend.zero_state(s.batch_size)  # the state batch `step` starts from
        self.history = CharRNNHistory()

    def lr(self, step: int) -> float:
        """char-rnn's schedule: lr, times lr_decay at the end of each epoch e ≥ decay_after (e
        counted from 1), i.e. lr · decay^max(0, completed epochs - decay_after + 1)."""
        epoch = step // self.train.per_epoch
        return self.s.lr * self.s.lr_decay ** max(0, epoch - self.s.decay_after + 1)

    def masks(self, step: int) -> dict | None:
        if self.cfg["drop_rate"] == 0:
            return None
        rng = np.random.default_rng([self.s.seed, 1, step])  # one generator per step: resumable
        dtype = DTYPES[self.s.dtype][0]
        return draw_dropout_masks(self.cfg, rng, self.s.batch_size, self.s.seq_length, dtype)

    def train_step(self) -> float:
        k = self.step % self.train.per_epoch
        if k == 0:  # a new epoch: the streams start over, and so does the state
            self.carry = self.backend.zero_state(self.s.batch_size)
        x, y = self.train.batch(k)
        loss, self.carry = self.backend.train_step(
            x, y, self.carry, self.lr(self.step), self.masks(self.step)
        )
        self.step += 1
        self.history.step_loss.append(loss)
        return loss

    def split_loss(self, split: str) -> float:
        """Mean loss (nats) over the first eval_batches batches of a split, the state carried."""
        batches = self.train if split == "train" else self.val
        n = self.s.eval_batches or batches.per_epoch
        state = self.backend.zero_state(self.s.batch_size)
        losses = []
        for k in range(min(n, batches.per_epoch)):
            loss, state = self.backend.eval_loss(*batches.batch(k), state)
            losses.append(loss)
        return float(np.mean(losses))

    def evaluate(self) -> tuple[float, float]:
        train, val = self.split_loss("train"), self.split_loss("val")
        h = self.history
        h.steps.append(self.step)
        h.chars.append(self.chars_seen)
        h.train_loss.append(train)
        h.val_loss.append(val)
        return train, val

    @property
    def chars_seen(self) -> int:
        return self.step * self.s.batch_size * self.s.seq_length

    # ---- checkpoints ---------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        tensors, opt_steps = self.backend.state()
        tensors["carry.h"], tensors["carry.c"] = self.carry  # the state the next batch starts from
        meta = {
            "kind": "charrnn",
            "backend": self.backend.name,
            "cfg": self.cfg,
            "vocab": list(self.vocab.symbols),
            "settings": asdict(self.s),
            "step": self.step,
            "opt_steps": opt_steps,
            "history": asdict(self.history),
            "data": self.fingerprint,
        }
        return save_checkpoint(path, tensors, meta)

    @classmethod
    def resume(cls, path: str | Path, text, backend: str | None = None,
               steps: int | None = None) -> CharRNNTrainer:  # fmt: skip
        """Continue a run from its checkpoint on the same text (checked by fingerprint);
        `steps` raises the total number of steps."""
        tensors, meta = load_checkpoint(path)
        if meta.get("kind") != "charrnn":
            raise ValueError(f"{path} is not a char-RNN checkpoint (kind {meta.get('kind')!r})")
        settings = CharRNNSettings(**meta["settings"])
        if steps is not None:
            settings.steps = steps
        trainer = cls(backend or meta["backend"], text, settings, ByteVocab(bytes(meta["vocab"])))
        restore_run(trainer, path, tensors, meta, trainer.fingerprint, CharRNNHistory)
        trainer.carry = (tensors["carry.h"], tensors["carry.c"])
        return trainer


def format_eval(step: int, chars: int, train: float, val: float) -> str:
    return (
        f"step {step:>6} | chars {chars:>11,} | train {train:.4f} nats ({train / LN2:.3f} bpc)"
        f" | val {val:.4f} nats ({val / LN2:.3f} bpc)"
    )


def run_training(trainer: CharRNNTrainer, out_dir: str | Path, progress: bool = True) -> Path:
    """Train to `settings.steps`, printing evaluations; write checkpoints and the loss curve."""
    from twinlm.report.plots import plot_losses

    s, out_dir = trainer.s, Path(out_dir)
    ckpt = out_dir / "checkpoint.safetensors"
    header = (
        f"vocabulary {len(trainer.vocab)} bytes | {trainer.train.per_epoch} batches of "
        f"{s.batch_size}×{s.seq_length} per epoch | validation {trainer.val.per_epoch} batches"
    )
    first = trainer.step
    seconds = run_steps(
        trainer, ckpt,
        lambda: format_eval(trainer.step, trainer.chars_seen, *trainer.evaluate()),
        f"charrnn [{trainer.backend.name}]", progress, header,
    )  # fmt: skip
    h = trainer.history
    png = plot_losses(
        out_dir / "loss.png",
        {"train": (h.chars, h.train_loss), "validation": (h.chars, h.val_loss)},
        title=f"char-RNN ({s.num_layers}×{s.hidden_size}, {trainer.backend.name}, {s.dtype})",
        xlabel="characters (bytes) seen",
        ylabel="cross entropy (nats per byte)",
    )
    per_step = seconds / max(trainer.step - first, 1)
    print(f"checkpoint: {ckpt}\nloss curve: {png}\ntime: {seconds:.1f} s "
          f"({1000 * per_step:.1f} ms per step)")  # fmt: skip
    return ckpt


# ---- sampling ------------------------------------------------------------------------------------


def sample(backend, vocab: ByteVocab, primer=b"", length: int = 200, temperature: float = 1.0,
           seed: int = 0, top_k: int | None = None) -> bytes:  # fmt: skip
    """`length` bytes continuing `primer`, one at a time with the state carried (primer excluded).

    Both backends hand float64 logits to the one sampler (twinlm.shared.sampling.next_tokens) with the
    same generator, so the same seed gives the same bytes. temperature 0 is greedy. An empty primer
    starts from a uniform distribution over the first byte, like char-rnn's sample.lua."""
    require_int("length", length, 0)
    rng = np.random.default_rng(seed)
    check_sampling_args(temperature, top_k, len(vocab), rng)
    primer_ids = vocab.encode(primer, "primer")
    state = backend.zero_state(1)
    if len(primer_ids):
        logits, state = backend.predict(primer_ids[None, :], state)  # (1, V)
    else:
        logits = np.zeros((1, len(vocab)))  # (1, V) uniform
    out = np.empty(length, np.int64)
    for i in range(length):
        out[i] = next_tokens(logits, temperature, top_k, rng)[0]
        if i + 1 < length:
            logits, state = backend.predict(out[None, i : i + 1], state)  # (1, V)
    return vocab.decode(out)


def load_for_sampling(path: str | Path, backend: str | None = None):
    """(backend adapter holding the checkpoint's weights, vocabulary, metadata)."""
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != "charrnn":
        raise ValueError(f"{path} is not a char-RNN checkpoint (kind {meta.get('kind')!r})")
    model = sub_dict(tensors, "model.")
    dtype = str(model["embedding.weight"].dtype)
    adapter = make_charrnn_backend(backend or meta["backend"], meta["cfg"], 0, dtype)
    adapter.load_params(model)
    return adapter, ByteVocab(bytes(meta["vocab"])), meta


# ---- command line --------------------------------------------------------------------------------


def read_corpus(path: str | None) -> bytes:
    """The --text file's bytes, or the embedded default corpus (twinlm.data.windows.default_corpus)."""
    if path is None:
        from twinlm.data.windows import default_corpus

        return default_corpus().encode("utf-8")
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise SystemExit(f"--text: cannot read {path}: {e.strerror}") from e


def main_train(args) -> int:
    text = read_corpus(args.text)
    if args.resume:
        trainer = CharRNNTrainer.resume(args.resume, text, backend=args.backend, steps=args.steps)
    else:
        settings = CharRNNSettings(
            dtype=args.dtype, emb_dim=args.emb_dim, hidden_size=args.hidden_size,
            num_layers=args.num_layers, drop_rate=args.drop_rate, batch_size=args.batch_size,
            seq_length=args.seq_length, steps=1000 if args.steps is None else args.steps,
            lr=args.lr, lr_decay=args.lr_decay, decay_after=args.decay_after,
            weight_decay=args.weight_decay, clip=args.clip, eval_every=args.eval_every,
            eval_batches=args.eval_batches, seed=args.seed, checkpoint_every=args.checkpoint_every,
        )  # fmt: skip
        trainer = CharRNNTrainer(args.backend or "numpy", text, settings)
    run_training(trainer, args.out)
    return 0


def main_sample(args) -> int:
    import sys

    backend, vocab, _ = load_for_sampling(args.checkpoint, args.backend)
    primer = args.primer.encode("utf-8")
    out = sample(backend, vocab, primer, args.length, args.temperature, args.seed, args.top_k)
    sys.stdout.write((primer + out).decode("utf-8", errors="replace") + "\n")
    return 0
