"""GPT-2 (or Qwen3) as a spam classifier (the book's chapter 6): a task for the one training loop,
its evaluation (losses, accuracies, the confusion matrix), prediction from a checkpoint, and the
work behind `twinlm classify`. The decapitation, the "trainable" options and the new head's seeded
init, which both backends import, are in twinlm/shared/classifier.py.

The backbone is GPT-2 weights (load_gpt2), a Qwen3 checkpoint folder (load_qwen3; its
tokenizer.json encodes the texts and its pad token pads them, the blog series' Qwen3-0.6B-Base
recipe), or a fresh seeded model of a preset (a GPT's, or a Qwen3's such as qwen3-tiny, which
reads GPT-2 tokens). pad_id None means the tokenizer's: 50256 for GPT-2's, pad_token_id for a
Qwen3 folder's.

The book's train_classifier_simple is this loop with: AdamW (lr 5e-5, weight decay 0.1) over the
trainable parameters, a constant learning rate, no clipping, losses over eval_batches batches
every eval_every steps, and the accuracies of the three splits at the end of every epoch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

import numpy_impl
from twinlm import models
from twinlm.data.spam import SpamDataset
from twinlm.data.windows import StepBatches
from twinlm.shared.classifier import PAD_ID, check_classifier_options, trainable_keys
from twinlm.shared.config import get_config, is_qwen3_config, validate_config, validate_qwen3_config
from twinlm.shared.init import draw_dropout_masks
from twinlm.shared.naming import BACKENDS, gpt_dropout_mask_shapes
from twinlm.shared.validate import require_choice
from twinlm.training.checkpoint import load_run, saved_settings
from twinlm.training.command import run_command
from twinlm.training.engines import Batch, make_engine
from twinlm.training.loop import Run, resumed_run
from twinlm.training.settings import CLASSIFY_DATA, ClassifySettings

SPAM_LABELS = ("ham", "spam")  # twinlm.data.spam.LABELS: ham 0, spam 1
OPTIONS = ("num_classes", "trainable", "k", "position", "pad_id")


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


# ---- data ----------------------------------------------------------------------------------------


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

    require_choice("data", data, CLASSIFY_DATA)
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


# ---- the task -------------------------------------------------------------------------------------


class ClassifyTask:
    """Fine-tuning a decapitated GPT on labelled texts, for twinlm.training.loop. Everything that
    decides the numbers is seeded and backend-neutral (split, batch order, dropout masks)."""

    kind = "classifier"
    checkpoint_name = "classifier.safetensors"
    report_files = ("loss.png", "accuracy.png", "confusion.png")  # what report() writes in out_dir
    evaluate_first = False

    def __init__(self, settings: ClassifySettings, encode=None, data=None):
        """encode: text -> token ids (default: the GPT-2 tokenizer); data: (train, val, test)
        SpamDatasets to use instead of loading settings.data."""
        s = self.settings = settings
        self.backbone, self.tokenizer = None, None  # tokenizer: a Qwen3 folder's, else GPT-2's
        if s.weights is None and s.n_heads is not None:
            raise ValueError(f"n_heads is for weights (GPT-2's), got n_heads={s.n_heads} without")
        if s.weights is not None:
            from twinlm.weights import is_qwen3_weights, load_pretrained, qwen3_folder

            cfg, self.backbone = load_pretrained(s.weights, s.n_heads)
            if is_qwen3_weights(s.weights):
                from twinlm.data.hf_tokenizer import has_hf_tokenizer, load_hf_tokenizer

                folder = qwen3_folder(s.weights)
                if has_hf_tokenizer(folder):
                    self.tokenizer = load_hf_tokenizer(folder)
        else:
            cfg = get_config(s.preset)
        self.cfg = self._config(cfg)
        self.pad_id = s.pad_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.pad_token_id if self.tokenizer else PAD_ID
        check_classifier_options(self.cfg, 2, s.trainable, s.k, s.position, self.pad_id)
        if data is None:
            if encode is None and self.tokenizer is not None:
                encode = self.tokenizer.encode
            elif encode is None:
                from twinlm.data.tokenizer import VOCAB_SIZE, encode

                if self.cfg["vocab_size"] < VOCAB_SIZE:
                    raise ValueError(
                        f"preset {s.preset!r} has vocab_size {self.cfg['vocab_size']}, fewer than "
                        f"the GPT-2 tokenizer's {VOCAB_SIZE}; choose a preset such as 'tiny'"
                    )
            data = load_classification_data(
                s.data,
                encode,
                self.cfg["context_length"],
                seed=s.seed,
                synthetic_size=s.synthetic_size,
                max_length=s.max_length,
                pad_id=self.pad_id,
            )
        self.train_ds, self.val_ds, self.test_ds = data
        digest = hashlib.sha256(b"".join(d.ids.tobytes() + d.labels.tobytes() for d in data))
        self.fingerprint = digest.hexdigest()[:16]
        self.per_epoch = len(self.train_ds) // s.batch_size
        if self.per_epoch == 0:
            raise ValueError(
                f"batch_size ({s.batch_size}) must be <= the number of training examples "
                f"({len(self.train_ds)}): training drops the last incomplete batch"
            )
        labels = np.concatenate([d.labels for d in data])
        num_classes = max(2, int(labels.max()) + 1)
        self.label_names = (
            list(SPAM_LABELS) if num_classes == 2 else [str(i) for i in range(num_classes)]
        )
        self.options = dict(
            num_classes=num_classes,
            trainable=s.trainable,
            k=s.k,
            position=s.position,
            pad_id=self.pad_id,
        )
        self.trainable_keys = trainable_keys(self.cfg, num_classes, s.trainable, s.k)
        self.total_steps, self.seen_per_step = s.epochs * self.per_epoch, s.batch_size
        self.train_batch = StepBatches(
            lambda epoch: self.train_ds.batches(s.batch_size, True, s.seed + epoch, True),
            self.per_epoch,
        )

    def _config(self, cfg: dict) -> dict:
        """The backbone's config with the settings' drop_rate and overrides (Qwen3: no dropout)."""
        s = self.settings
        if not is_qwen3_config(cfg):
            return validate_config({**cfg, "drop_rate": s.drop_rate, **s.overrides})
        if s.drop_rate:
            raise ValueError(f"drop_rate must be 0 for a Qwen3 (dropout-free), got {s.drop_rate}")
        return validate_qwen3_config({**cfg, **s.overrides})

    def build_model(self, backend: str):
        return build_classifier(
            backend, self.cfg, self.options, self.settings.seed, self.settings.dtype, self.backbone
        )

    def initial_carry(self) -> None:
        return None

    def batch(self, step: int, carry=None) -> Batch:
        x, y = self.train_batch(step)
        masks = {}
        if self.cfg.get("drop_rate", 0) > 0:  # Qwen3 has no drop_rate: no masks
            s = self.settings
            rng = np.random.default_rng([s.seed, 2, step])  # one generator per step
            shapes = gpt_dropout_mask_shapes(self.cfg, *x.shape)
            masks = draw_dropout_masks(shapes, rng, self.cfg["drop_rate"], np.dtype(s.dtype))
        return Batch(x, y, masks)

    def lr(self, step: int) -> float:
        return self.settings.lr

    def loss(self, engine, ds: SpamDataset, max_batches: int | None = None) -> float:
        """Mean of the batch losses, like the book's calc_loss_loader."""
        batches = ds.batches(self.settings.batch_size)
        return float(
            np.mean(
                [
                    engine.eval_loss(x, y)
                    for _, (x, y) in zip(range(max_batches or len(ds)), batches)
                ]
            )
        )

    def predict(self, engine, ds: SpamDataset, max_batches: int | None = None):
        """(logits (N, K), labels (N,)) over the first max_batches batches (None: all)."""
        pairs = list(zip(range(max_batches or len(ds)), ds.batches(self.settings.batch_size)))
        logits = [engine.eval_logits(x) for _, (x, _) in pairs]
        return np.concatenate(logits), np.concatenate([y for _, (_, y) in pairs])

    def accuracy(self, engine, ds: SpamDataset) -> float:
        logits, labels = self.predict(engine, ds, self.settings.accuracy_batches)
        return float((logits.argmax(axis=1) == labels).mean())

    def evaluate(self, engine) -> dict[str, float]:
        n = self.settings.eval_batches
        return {
            "train_loss": self.loss(engine, self.train_ds, n),
            "val_loss": self.loss(engine, self.val_ds, n),
        }

    def epoch(self, step: int) -> int:
        """The (1-based) epoch the step that ends at `step` belongs to."""
        return max(step - 1, 0) // self.per_epoch + 1

    def eval_line(self, step: int, m: dict[str, float]) -> str:
        return (
            f"Ep {self.epoch(step)} (Step {step:06d}): Train loss {m['train_loss']:.3f}, "
            f"Val loss {m['val_loss']:.3f}"
        )

    def epoch_end(self, run: Run) -> str:
        """The book's epoch end: the losses (unless just evaluated) and the three accuracies."""
        lines = []
        if run.history["steps"][-1:] != [run.step]:
            lines.append(self.eval_line(run.step, run.evaluate()))
        accs = [self.accuracy(run.engine, ds) for ds in (self.train_ds, self.val_ds, self.test_ds)]
        run.record(train_acc=accs[0], val_acc=accs[1], test_acc=accs[2])
        lines.append(
            f"Ep {self.epoch(run.step)}: Training accuracy {accs[0]:.2%} | Validation accuracy "
            f"{accs[1]:.2%} | Test accuracy {accs[2]:.2%} | "
            f"{run.history['epoch_seconds'][-1]:.2f} s training"
        )
        return "\n".join(lines)

    def meta(self) -> dict:
        return {
            "cfg": self.cfg,
            **self.options,
            "labels": self.label_names,
            "max_length": self.train_ds.max_length,
            "dtype": self.settings.dtype,
            "settings": asdict(self.settings),
            "data": self.fingerprint,
            "tokenizer": None if self.tokenizer is None else str(self.tokenizer.folder),
        }

    def report(self, run: Run, out_dir: Path) -> list[str]:
        """The test confusion matrix, and the loss, accuracy and confusion plots."""
        from twinlm.report.plots import plot_confusion, plot_history, plot_losses

        logits, labels = self.predict(run.engine, self.test_ds)
        counts = confusion_matrix(labels, logits.argmax(axis=1), self.options["num_classes"])
        run.record(test_confusion=counts.tolist())
        h, s, name = run.history, self.settings, run.engine.backend
        title = f"classifier ({s.trainable}, {s.position}, {name}, {s.dtype})"
        loss_png = plot_history(
            out_dir / "loss.png",
            h,
            title=title,
            xlabel="examples seen",
        )
        epochs = list(range(1, len(h.get("train_acc", [])) + 1))
        acc_png = plot_losses(
            out_dir / "accuracy.png",
            {split: (epochs, h.get(f"{split}_acc", [])) for split in ("train", "val", "test")},
            title=title,
            xlabel="epoch",
            ylabel="accuracy",
        )
        cm_png = plot_confusion(
            out_dir / "confusion.png", counts, self.label_names, f"test set ({name})"
        )
        return [
            "test confusion matrix:\n" + format_confusion(counts, self.label_names),
            f"curves: {loss_png}, {acc_png}\nconfusion matrix: {cm_png}",
            f"mean {np.mean(h['epoch_seconds']):.2f} s per training epoch",
        ]


def build_classifier(backend: str, cfg: dict, options: dict, seed: int, dtype: str, backbone=None):
    """A decapitated GPT or Qwen3 (as cfg says) of either backend (options: num_classes,
    trainable, k, position, pad_id)."""
    name = "Qwen3Classifier" if is_qwen3_config(cfg) else "GPTClassifier"
    return models.build_model(backend, name, cfg, dtype, **options, seed=seed, backbone=backbone)


# ---- prediction from a checkpoint ----------------------------------------------------------------


def load_classifier(path: str | Path, backend: str = "numpy"):
    """(engine holding the checkpoint's classifier, meta)."""
    require_choice("backend", backend, BACKENDS)
    saved = load_run(path, "classifier")
    meta = saved.meta
    missing = [k for k in (*OPTIONS, "labels", "max_length") if k not in meta]
    if missing:
        raise ValueError(f"{path}: its metadata lacks {missing}, which prediction needs")
    labels, length, tokenizer = meta["labels"], meta["max_length"], meta.get("tokenizer")
    if type(labels) is not list or len(labels) != meta["num_classes"]:
        raise ValueError(f"{path}: its metadata's 'labels' must list num_classes names")
    if not all(type(x) is str for x in labels) or type(tokenizer) not in (str, type(None)):
        raise ValueError(f"{path}: its metadata's 'labels' and 'tokenizer' must be strings")
    if type(length) is not int or not 1 <= length <= meta["cfg"]["context_length"]:
        raise ValueError(
            f"{path}: its metadata's 'max_length' must be an integer in [1, context_length], "
            f"got {length!r:.40}"
        )
    options = {k: meta[k] for k in OPTIONS}
    dtype = str(next(iter(saved.params.values())).dtype)
    model = build_classifier(backend, meta["cfg"], options, 0, dtype, backbone=saved.params)
    engine = make_engine(backend, model)
    engine.load_params(saved.params, str(path))
    return engine, meta


def classify_texts(
    engine, meta: dict, texts: Sequence[str], encode=None
) -> list[tuple[str, float]]:
    """(label, probability of that label) per text. Each text is truncated and right-padded to the
    training length, as the book's classify_review does."""
    from twinlm.data.spam import encode_dataset

    if encode is None and meta.get("tokenizer"):  # a Qwen3 folder's tokenizer.json
        from twinlm.data.hf_tokenizer import load_hf_tokenizer

        encode = load_hf_tokenizer(meta["tokenizer"]).encode
    elif encode is None:
        from twinlm.data.tokenizer import encode
    for i, text in enumerate(texts):
        if not encode(text):
            raise ValueError(
                f"text {i + 1} ({text!r}) holds no tokens: there is nothing to classify"
            )
    ds = encode_dataset([(0, t) for t in texts], meta["max_length"], meta["pad_id"], encode)
    logits = engine.eval_logits(ds.ids).astype(np.float64)  # (N, K)
    probs, _ = numpy_impl.softmax_forward(logits)  # (N, K)
    best = probs.argmax(axis=1)
    return [(meta["labels"][b], float(p[b])) for b, p in zip(best, probs)]


# ---- CLI (twinlm/cli.py parses; these do the work) -----------------------------------------------


def resume(path: str | Path, backend: str | None = None, encode=None, data=None) -> Run:
    """Continue a classifier run from its checkpoint, on the same data (checked by fingerprint)."""
    saved = load_run(path, "classifier")
    task = ClassifyTask(saved_settings(saved, ClassifySettings), encode, data)
    return resumed_run(task, backend or saved.meta["backend"], saved)


def main_train(args) -> int:
    def header(run: Run) -> str:
        task, s = run.task, run.task.settings
        return (
            f"data {s.data}: {len(task.train_ds)} train / {len(task.val_ds)} val / "
            f"{len(task.test_ds)} test, {task.train_ds.max_length} tokens each; trainable "
            f"{s.trainable}, position {s.position}"
        )

    def make(settings: ClassifySettings, saved) -> ClassifyTask:
        given = getattr(args, "given", ())
        if "synthetic_size" in given and settings.data != "synthetic":
            raise ValueError("--synthetic-size is for --data synthetic")
        if "preset" in given and settings.weights is not None:
            raise ValueError("--preset is for a fresh model; --weights brings its own size")
        return ClassifyTask(settings)

    return run_command(args, ClassifySettings, ClassifyTask, make, header)


def main_predict(args) -> int:
    for i, text in enumerate(args.text):
        if not text.strip():
            raise ValueError(f"--text must not be empty (text {i + 1} of {len(args.text)} is)")
    model, meta = load_classifier(args.checkpoint, args.backend)
    if args.tokenizer is not None:
        meta = {**meta, "tokenizer": args.tokenizer}
    for text in args.text:
        label, prob = classify_texts(model, meta, [text])[0]
        print(f"{label}\t{prob:.4f}\t{text}")
    return 0
