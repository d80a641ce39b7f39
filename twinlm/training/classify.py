"""GPT-2 as a spam classifier (the book's chapter 6): training, evaluation and the CLI work.

Holds the metrics (cross entropy, softmax, confusion matrix, from logits of either backend), the
data loading and split, the book's train_classifier_simple (ClassifierTrainer and
run_classifier_training), prediction from a checkpoint, and the work behind `twinlm classify`.
The decapitation, the "trainable" options and the new head's seeded init, which both backends
import, are in twinlm/shared/classifier.py. The training loop picks a backend through an adapter
with the same interface for both (twinlm/training/backends.py's `make_classifier_backend`, next to the
GPT's and the char-RNN's).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from twinlm.data.spam import PAD_ID, SpamDataset
from twinlm.shared.classifier import check_classifier_options
from twinlm.shared.config import validate_config
from twinlm.shared.validate import require_choice, require_int
from twinlm.training.checkpoint import load_checkpoint, save_checkpoint

SPAM_LABELS = ("ham", "spam")  # twinlm.data.spam.LABELS: ham 0, spam 1
BACKENDS = ("numpy", "torch")

# ---------------------------------------------------------------------------------------------
# Metrics (NumPy, from logits of either backend)


def cross_entropy_np(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross entropy of logits (B, K) against labels (B,), in float64, for reporting."""
    z = logits.astype(np.float64)
    z = z - z.max(axis=1, keepdims=True)  # (B, K)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))  # (B, K) log-softmax
    return float(-log_p[np.arange(len(labels)), labels].mean())


def softmax_np(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits.astype(np.float64) - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) counts: row = true class, column = predicted class."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(counts, (labels, predictions), 1)
    return counts


def format_confusion(counts: np.ndarray, names: Sequence[str]) -> str:
    width = max(8, *(len(n) + 2 for n in names))
    lines = [" " * width + "predicted".center(width * len(names))]
    lines.append(" " * width + "".join(n.rjust(width) for n in names))
    for name, row in zip(names, counts):
        lines.append(f"true {name}".ljust(width) + "".join(str(c).rjust(width) for c in row))
    total = counts.sum()
    correct = np.trace(counts)
    lines.append(f"accuracy {correct}/{total} = {correct / max(total, 1):.2%}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Data


def load_classification_data(
    data: str,
    encode: Callable[[str], list[int]],
    context_length: int,
    *,
    seed: int = 123,
    synthetic_size: int = 500,
    max_length: int | None = None,
    pad_id: int = PAD_ID,
) -> tuple[SpamDataset, SpamDataset, SpamDataset]:
    """(train, validation, test), the book's 70/10/20 split. data: "sms-spam" (downloaded and
    balanced, 747 + 747 messages) or "synthetic" (twinlm.data.spam.make_synthetic_spam, offline).
    Texts are truncated to max_length (default: the longest training text, at most
    context_length) and right-padded with pad_id; validation and test take the training length."""
    from twinlm.data import spam

    require_choice("data", data, ("sms-spam", "synthetic"))
    if data == "synthetic":
        rows = spam.make_synthetic_spam(synthetic_size, seed)
    else:
        from twinlm.data.download import fetch

        rows = spam.balance(spam.load_sms_spam(fetch("sms-spam")), seed)
    train, val, test = spam.random_split(rows, 0.7, 0.1, seed)
    if not train or not val or not test:
        raise ValueError(f"the data set must leave at least one example per split, got {len(rows)}")
    if max_length is not None and max_length > context_length:
        raise ValueError(
            f"max_length must be <= context_length ({context_length}), got {max_length}"
        )
    train_ds = spam.encode_dataset(train, max_length, pad_id, encode)
    if train_ds.max_length > context_length:  # the book truncates to the supported context length
        train_ds = spam.encode_dataset(train, context_length, pad_id, encode)
    length = train_ds.max_length
    return (
        train_ds,
        spam.encode_dataset(val, length, pad_id, encode),
        spam.encode_dataset(test, length, pad_id, encode),
    )


# ---------------------------------------------------------------------------------------------
# Training: the book's train_classifier_simple, in either backend


@dataclass
class ClassifySettings:
    preset: str = "tiny"
    weights: str | None = None  # pretrained GPT-2 (twinlm.weights.load_gpt2); None: fresh seeded
    n_heads: int | None = None  # for --weights whose heads cannot be inferred
    data: str = "synthetic"
    synthetic_size: int = 500
    trainable: str = "last-block"
    k: int | None = None
    position: str = "last"
    pad_id: int = PAD_ID
    dtype: str = "float32"
    drop_rate: float = 0.0  # the book's chapter-6 config
    max_length: int | None = None
    epochs: int = 5
    batch_size: int = 8
    lr: float = 5e-5
    weight_decay: float = 0.1
    eval_every: int = 50  # optimizer steps
    eval_batches: int = 5  # batches per loss estimate (the book's eval_iter)
    accuracy_batches: int | None = None  # batches per epoch-end accuracy; None: the whole split
    seed: int = 123
    overrides: dict = field(default_factory=dict)  # config keys to override, e.g. n_layers


@dataclass
class ClassifyHistory:
    steps: list[int] = field(default_factory=list)
    examples: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    step_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)  # one per epoch
    val_acc: list[float] = field(default_factory=list)
    test_acc: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)


class ClassifierTrainer:
    """Fine-tunes one backend's classifier. Everything that decides the numbers is seeded and
    backend-neutral (data split, batch order, dropout masks), so both backends see the same inputs."""

    def __init__(self, backend: str, settings: ClassifySettings, encode=None, data=None):
        """encode: text -> token ids (default: the GPT-2 tokenizer); data: (train, val, test)
        SpamDatasets to use instead of loading settings.data."""
        from twinlm.shared.config import get_config

        s = self.s = settings
        require_choice("backend", backend, BACKENDS)
        require_int("epochs", s.epochs, 1)
        require_int("batch_size", s.batch_size, 1)
        require_int("eval_every", s.eval_every, 1)
        require_int("eval_batches", s.eval_batches, 1)
        backbone = None
        if s.weights is not None:
            from twinlm.weights import load_gpt2

            cfg, backbone = load_gpt2(s.weights, s.n_heads)
            self.cfg = validate_config({**cfg, "drop_rate": s.drop_rate, **s.overrides})
        else:
            self.cfg = get_config(s.preset, **{"drop_rate": s.drop_rate, **s.overrides})
        check_classifier_options(self.cfg, 2, s.trainable, s.k, s.position, s.pad_id)  # fail early
        if data is None:
            if encode is None:
                from twinlm.data.tokenizer import VOCAB_SIZE, encode

                if self.cfg["vocab_size"] < VOCAB_SIZE:
                    raise ValueError(
                        f"preset {s.preset!r} has vocab_size {self.cfg['vocab_size']}, fewer than "
                        f"the GPT-2 tokenizer's {VOCAB_SIZE}; choose a preset such as 'tiny'"
                    )
            data = load_classification_data(
                s.data, encode, self.cfg["context_length"], seed=s.seed,
                synthetic_size=s.synthetic_size, max_length=s.max_length, pad_id=s.pad_id,
            )  # fmt: skip
        self.train_ds, self.val_ds, self.test_ds = data
        self.encode = encode
        if len(self.train_ds) < s.batch_size:
            raise ValueError(
                f"batch_size ({s.batch_size}) must be <= the number of training examples "
                f"({len(self.train_ds)}): training drops the last incomplete batch"
            )
        labels = np.concatenate([d.labels for d in data])
        self.num_classes = max(2, int(labels.max()) + 1)
        self.label_names = (
            list(SPAM_LABELS)
            if self.num_classes == 2
            else [str(i) for i in range(self.num_classes)]
        )
        self.options = dict(num_classes=self.num_classes, trainable=s.trainable, k=s.k,
                            position=s.position, pad_id=s.pad_id)  # fmt: skip
        from twinlm.training.backends import make_classifier_backend

        self.backend = make_classifier_backend(
            backend, self.cfg, self.options, s.seed, s.dtype, backbone, s.lr, s.weight_decay
        )
        self.step = 0
        self.epoch = 0
        self.history = ClassifyHistory()

    @property
    def examples_seen(self) -> int:
        return self.step * self.s.batch_size

    def masks(self, x: np.ndarray) -> dict:
        if self.cfg["drop_rate"] == 0:
            return {}
        from twinlm.shared.init import draw_dropout_masks
        from twinlm.shared.naming import gpt_dropout_mask_shapes

        rng = np.random.default_rng([self.s.seed, 2, self.step])  # one generator per step
        shapes = gpt_dropout_mask_shapes(self.cfg, *x.shape)
        return draw_dropout_masks(shapes, rng, self.cfg["drop_rate"], np.dtype(self.s.dtype))

    def epoch_batches(self, epoch: int):
        """The book's training DataLoader: shuffled (seeded per epoch), last partial batch dropped."""
        return self.train_ds.batches(self.s.batch_size, True, self.s.seed + epoch, True)

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        loss = self.backend.train_step(x, y, self.masks(x))
        self.step += 1
        self.history.step_loss.append(loss)
        return loss

    def predict(self, ds: SpamDataset, max_batches: int | None = None):
        """(logits (N, K), labels (N,)) over the first max_batches batches (None: all)."""
        logits, labels = [], []
        for i, (x, y) in enumerate(ds.batches(self.s.batch_size)):
            if max_batches is not None and i >= max_batches:
                break
            logits.append(self.backend.logits(x))
            labels.append(y)
        return np.concatenate(logits), np.concatenate(labels)

    def loss(self, ds: SpamDataset, max_batches: int | None = None) -> float:
        """Mean of the batch losses, like the book's calc_loss_loader."""
        losses = []
        for i, (x, y) in enumerate(ds.batches(self.s.batch_size)):
            if max_batches is not None and i >= max_batches:
                break
            losses.append(cross_entropy_np(self.backend.logits(x), y))
        return float(np.mean(losses))

    def accuracy(self, ds: SpamDataset, max_batches: int | None = None) -> float:
        logits, labels = self.predict(ds, max_batches)
        return float((logits.argmax(axis=1) == labels).mean())

    def evaluate(self) -> tuple[float, float]:
        n = self.s.eval_batches
        train, val = self.loss(self.train_ds, n), self.loss(self.val_ds, n)
        h = self.history
        h.steps.append(self.step)
        h.examples.append(self.examples_seen)
        h.train_loss.append(train)
        h.val_loss.append(val)
        return train, val

    def epoch_accuracies(self) -> tuple[float, float, float]:
        n = self.s.accuracy_batches
        accs = tuple(self.accuracy(ds, n) for ds in (self.train_ds, self.val_ds, self.test_ds))
        self.history.train_acc.append(accs[0])
        self.history.val_acc.append(accs[1])
        self.history.test_acc.append(accs[2])
        return accs

    def save(self, path: str | Path, extra: dict | None = None) -> Path:
        meta = {
            "kind": "classifier",
            "backend": self.backend.name,
            "cfg": self.cfg,
            **self.options,
            "labels": self.label_names,
            "max_length": self.train_ds.max_length,
            "dtype": self.s.dtype,
            "settings": asdict(self.s),
            "step": self.step,
            "history": asdict(self.history),
            **(extra or {}),
        }
        return save_checkpoint(path, self.backend.params(), meta)


def format_step(epoch: int, step: int, train: float, val: float) -> str:
    return f"Ep {epoch} (Step {step:06d}): Train loss {train:.3f}, Val loss {val:.3f}"


def run_classifier_training(trainer: ClassifierTrainer, out_dir: str | Path,
                            progress: bool = True) -> Path:  # fmt: skip
    """The book's train_classifier_simple: epochs of AdamW steps, losses every eval_every steps,
    accuracies at each epoch end; then the test confusion matrix, the curves and the checkpoint."""
    from tqdm import tqdm

    from twinlm.report.plots import plot_confusion, plot_losses

    s, out_dir = trainer.s, Path(out_dir)
    per_epoch = len(trainer.train_ds) // s.batch_size
    name = trainer.backend.name
    bar = tqdm(total=s.epochs * per_epoch, disable=not progress, unit="step",
               desc=f"classify [{name}]")  # fmt: skip
    start = time.perf_counter()
    for epoch in range(s.epochs):
        epoch_start = time.perf_counter()
        for x, y in trainer.epoch_batches(epoch):
            loss = trainer.train_step(x, y)
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
            if trainer.step % s.eval_every == 0:
                bar.write(format_step(epoch + 1, trainer.step, *trainer.evaluate()))
        seconds = time.perf_counter() - epoch_start
        trainer.history.epoch_seconds.append(seconds)
        trainer.epoch = epoch + 1
        if not trainer.history.steps or trainer.history.steps[-1] != trainer.step:
            bar.write(format_step(epoch + 1, trainer.step, *trainer.evaluate()))
        train_acc, val_acc, test_acc = trainer.epoch_accuracies()
        bar.write(
            f"Ep {epoch + 1}: Training accuracy {train_acc:.2%} | Validation accuracy "
            f"{val_acc:.2%} | Test accuracy {test_acc:.2%} | {seconds:.2f} s training"
        )
    bar.close()

    logits, labels = trainer.predict(trainer.test_ds)
    counts = confusion_matrix(labels, logits.argmax(axis=1), trainer.num_classes)
    print("test confusion matrix:\n" + format_confusion(counts, trainer.label_names))
    ckpt = trainer.save(out_dir / "classifier.safetensors", {"test_confusion": counts.tolist()})
    h = trainer.history
    title = f"classifier ({s.trainable}, {s.position}, {name}, {s.dtype})"
    loss_png = plot_losses(
        out_dir / "loss.png",
        {"train": (h.examples, h.train_loss), "validation": (h.examples, h.val_loss)},
        title=title, xlabel="examples seen",
    )  # fmt: skip
    epochs = list(range(1, len(h.train_acc) + 1))
    acc_png = plot_losses(
        out_dir / "accuracy.png",
        {"train": (epochs, h.train_acc), "validation": (epochs, h.val_acc),
         "test": (epochs, h.test_acc)},
        title=title, xlabel="epoch", ylabel="accuracy",
    )  # fmt: skip
    cm_png = plot_confusion(out_dir / "confusion.png", counts, trainer.label_names,
                            f"test set ({name})")  # fmt: skip
    print(
        f"checkpoint: {ckpt}\ncurves: {loss_png}, {acc_png}\nconfusion matrix: {cm_png}\n"
        f"time: {time.perf_counter() - start:.1f} s "
        f"(mean {np.mean(h.epoch_seconds):.2f} s per training epoch)"
    )
    return ckpt


# ---------------------------------------------------------------------------------------------
# Prediction from a checkpoint


def load_classifier(path: str | Path, backend: str = "numpy"):
    """(backend adapter holding the checkpoint's classifier, meta)."""
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != "classifier":
        raise ValueError(f"{path} is not a classifier checkpoint (kind {meta.get('kind')!r})")
    options = {k: meta[k] for k in ("num_classes", "trainable", "k", "position", "pad_id")}
    dtype = str(next(iter(tensors.values())).dtype)
    from twinlm.training.backends import make_classifier_backend

    model = make_classifier_backend(backend, meta["cfg"], options, 0, dtype, backbone=tensors)
    model.load_params(tensors)
    return model, meta


def classify_texts(model, meta: dict, texts: Sequence[str], encode=None) -> list[tuple[str, float]]:
    """(label, probability of that label) per text. Each text is truncated and right-padded to the
    training length, as the book's classify_review does."""
    from twinlm.data.spam import encode_dataset

    if encode is None:
        from twinlm.data.tokenizer import encode
    ds = encode_dataset([(0, t) for t in texts], meta["max_length"], meta["pad_id"], encode)
    probs = softmax_np(model.logits(ds.ids))  # (N, K)
    best = probs.argmax(axis=1)
    return [(meta["labels"][b], float(p[b])) for b, p in zip(best, probs)]


# ---------------------------------------------------------------------------------------------
# CLI (twinlm/cli.py parses; these do the work)


def main_train(args) -> int:
    settings = ClassifySettings(
        preset=args.preset, weights=args.weights, n_heads=args.n_heads, data=args.data,
        synthetic_size=args.synthetic_size, trainable=args.trainable, k=args.k,
        position=args.position, pad_id=args.pad_id, dtype=args.dtype, drop_rate=args.drop_rate,
        max_length=args.max_length, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, eval_every=args.eval_every, eval_batches=args.eval_batches,
        seed=args.seed,
    )  # fmt: skip
    try:
        trainer = ClassifierTrainer(args.backend, settings)
    except (ValueError, TypeError, FileNotFoundError) as e:
        raise SystemExit(f"twinlm classify train: {e}") from e
    s = trainer
    print(
        f"data {settings.data}: {len(s.train_ds)} train / {len(s.val_ds)} val / {len(s.test_ds)} "
        f"test, {s.train_ds.max_length} tokens each; trainable {settings.trainable}, "
        f"position {settings.position}"
    )
    run_classifier_training(trainer, args.out)
    return 0


def main_predict(args) -> int:
    try:
        model, meta = load_classifier(args.checkpoint, args.backend)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"twinlm classify predict: {e}") from e
    for text in args.text:
        label, prob = classify_texts(model, meta, [text])[0]
        print(f"{label}\t{prob:.4f}\t{text}")
    return 0
