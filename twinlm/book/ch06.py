"""Chapter 6 replayed: GPT-2 124M fine-tuned as a spam classifier with the book's recipe.

    In [4-8]  pandas.read_csv of SMSSpamCollection (tab-separated, no header; a text starting
              with a double quote is read as a quoted field, as pandas' C parser and Python's csv
              module both do); ham.sample(747, random_state=seed) — numpy's
              RandomState(seed).permutation(n_ham)[:747] — then every spam row; then
              df.sample(frac=1, random_state=seed), i.e. RandomState(seed).permutation(1494),
              cut 70 % / 10 % / the rest
    In [11-15] SpamDataset: GPT-2 ids, truncated and right-padded with 50256 to the longest
              training text; loaders of batch 8 (training shuffled with drop_last)
    In [17-18] the GPT-2 weights (drop_rate 0.0, qkv_bias True); 15 greedy tokens
    In [21]   reseed; model.out_head = torch.nn.Linear(768, 2), drawn from the stream; the last
              block and final_norm train with it ("last-block"), the classified token is the last
    In [28]   reseed; losses over 5 batches of each loader; In [30] reseed; accuracies over 10
    In [33]   reseed; AdamW(5e-5, weight decay 0.1); train_classifier_simple: 5 epochs, losses
              every 50 steps over 5 batches, accuracies over 5 batches after each epoch
    In [37]   accuracies over every batch; In [39-40] classify_review of the book's two texts

Every iteration of a loader draws from the stream (loader.py), so the evaluations move the
shuffles on exactly as in the book. Without --weights or the data (offline) it says what it needs.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np

from twinlm.book.loader import BookLoader
from twinlm.book.recipe import BookRecipe, BookTask, book_epochs, calc_loss_loader
from twinlm.book.sampling import generate_text_simple
from twinlm.book.stream import BookStream
from twinlm.book.table import Row
from twinlm.data.files import read_input, utf8
from twinlm.shared.classifier import PAD_ID
from twinlm.training.engines import make_engine
from twinlm.training.loop import Run

NEEDS = (
    "ch06 needs GPT-2 124M weights (--weights PATH: model.safetensors of huggingface.co/"
    "openai-community/gpt2, or the book's .pth) and the SMS spam data (`twinlm data get "
    "sms-spam` online once, or --data PATH)"
)
BOOK_OPTIONS = {"num_classes": 2, "trainable": "last-block", "k": None, "position": "last"}
REVIEWS = (
    "You are a winner you have been specially selected to receive $1000 cash or a $2000 award.",
    "Hey, just wanted to check if we're still on for dinner tonight? Let me know!",
)
TRAINED = ("data", "seed", "weights")


def read_spam_table(path: str | Path) -> list[tuple[str, str]]:
    """(label, text) rows as pandas.read_csv(path, sep="\\t", header=None) reads them. A row of
    another shape (no tab, or more than one) is refused, naming the file and the line, where
    pandas would leave a NaN text or stop with a parser error."""
    text = utf8(read_input(path, "--data"), path, "--data")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t")
    rows = []
    for fields in reader:
        if not fields:
            continue
        if len(fields) != 2:
            raise ValueError(
                f"--data {path}, line {reader.line_num}: expected label<TAB>text (2 fields), "
                f"got {len(fields)}: {chr(9).join(fields)[:60]!r}"
            )
        rows.append((fields[0], fields[1]))
    return rows


def book_split(rows, seed: int) -> tuple[list, list, list]:
    """create_balanced_dataset then random_split(0.7, 0.1), with pandas' sampling (numpy's
    RandomState); labels ham 0, spam 1. Returns (train, validation, test) (label, text) rows."""
    ham = [(0, t) for label, t in rows if label == "ham"]
    spam = [(1, t) for label, t in rows if label == "spam"]
    pick = np.random.RandomState(seed).permutation(len(ham))[: len(spam)]
    balanced = [ham[i] for i in pick] + spam
    order = np.random.RandomState(seed).permutation(len(balanced))
    shuffled = [balanced[i] for i in order]
    train_end = int(len(shuffled) * 0.7)
    val_end = train_end + int(len(shuffled) * 0.1)
    return shuffled[:train_end], shuffled[train_end:val_end], shuffled[val_end:]


def spam_arrays(rows, encode, max_length: int | None) -> tuple[np.ndarray, np.ndarray]:
    """The book's SpamDataset: ids (N, L) right-padded with 50256, labels (N,)."""
    tokens = [encode(text) for _, text in rows]
    L = max(len(t) for t in tokens) if max_length is None else max_length
    ids = np.full((len(rows), L), PAD_ID, dtype=np.int64)
    for row, t in zip(ids, tokens):
        row[: len(t[:L])] = t[:L]
    return ids, np.array([label for label, _ in rows], dtype=np.int64)


class BookClassifierTask(BookTask):
    """train_classifier_simple's task: BookTask's batches and evaluation over a prepared
    classifier (its trainable keys), counting examples instead of tokens."""

    kind = "classifier"
    checkpoint_name = "book-classifier.safetensors"

    def __init__(self, recipe, train_loader, val_loader, stream, model):
        super().__init__(recipe, train_loader, val_loader, stream)
        self.model, self.trainable_keys = model, model.trainable_keys
        self.seen_per_step = recipe.batch_size

    def build_model(self, backend: str):
        return self.model


def calc_accuracy_loader(loader: BookLoader, engine, num_batches: int | None = None) -> float:
    """The book's calc_accuracy_loader: correct / examples over the first num_batches batches."""
    n = len(loader) if num_batches is None else min(num_batches, len(loader))
    correct = examples = 0
    for i, (x, y) in enumerate(loader):
        if i >= n:
            break
        predicted = np.argmax(engine.eval_logits(x), axis=-1)  # (B,)
        examples += len(predicted)
        correct += int((predicted == y).sum())
    return correct / examples


def classify_review(engine, text: str, encode, max_length: int) -> str:
    ids = encode(text)[:max_length]
    ids = np.array([ids + [PAD_ID] * (max_length - len(ids))], dtype=np.int64)
    return "Positive" if int(np.argmax(engine.eval_logits(ids), axis=-1)[0]) == 1 else "Negative"


def pct(x: float) -> str:
    return f"{x * 100:.2f}%"


def build_book_classifier(backend: str, weights: str, stream: BookStream):
    """In [17] and In [21]: the pretrained GPT-2, decapitated, with the book's new head drawn
    from the stream after a reseed. Returns (the GPT-2 model for In [18], the classifier)."""
    from twinlm.generation import load_model
    from twinlm.models import load_params, numpy_params
    from twinlm.training.classify import build_classifier
    from twinlm.weights import load_gpt2

    cfg, params = load_gpt2(weights)
    gpt = load_model(backend, weights=weights)
    stream.reseed("ch06 In [21]: model.out_head = Linear(emb_dim, 2)")
    weight, bias = stream.linear(cfg["emb_dim"], BOOK_OPTIONS["num_classes"])
    options = BOOK_OPTIONS | {"pad_id": PAD_ID}
    model = build_classifier(backend, cfg, options, 0, "float32", backbone=params)
    load_params(model, numpy_params(model) | {"out_head.weight": weight, "out_head.bias": bias})
    return gpt, model


def ch06_inputs(args) -> str:
    """The SMS data's path, once --weights is given and the data is at hand (downloaded when
    online); otherwise one line saying what ch06 needs."""
    from twinlm.data.download import fetch

    if args.set:
        raise ValueError("--set is for ch04 and ch05; ch06 runs the book's GPT-2 124M recipe")
    if not args.weights:
        raise FileNotFoundError(NEEDS)
    try:
        return str(args.data or fetch("sms-spam"))
    except OSError as e:
        raise FileNotFoundError(f"{NEEDS} ({e})") from e


def spam_loaders(data: str, encode, stream: BookStream, rows: list[Row], echo):
    """In [4-15]: the table, the balanced split, the datasets and their loaders (batch 8).
    Returns (loaders by split, the padded length)."""
    table = read_spam_table(data)
    n_ham = sum(label == "ham" for label, _ in table)
    n_spam = len(table) - n_ham
    train, val, test = book_split(table, stream.seed)
    if not (val and test):
        raise ValueError(
            f"--data {data} holds {n_ham} ham and {n_spam} spam messages: the book's balanced "
            "split (as many ham as spam, then 70 % / 10 % / 20 %) leaves a split empty; it needs "
            "at least 5 of each"
        )
    train_xy = spam_arrays(train, encode, None)
    L = train_xy[0].shape[1]
    if L == 0:
        raise ValueError(f"--data {data}: every training text is empty")
    splits = {"train": train_xy, "val": spam_arrays(val, encode, L)}
    splits["test"] = spam_arrays(test, encode, L)
    stream.reseed("ch06 In [13]: the data loaders")
    loaders = {
        k: BookLoader(*xy, 8, k == "train", k == "train", stream) for k, xy in splits.items()
    }
    sizes = ", ".join(
        f"{len(loaders[k])} {w} batches"
        for k, w in zip(loaders, ("training", "validation", "test"))
    )
    rows += [
        Row("data.counts", "In [5] label counts", f"ham {n_ham}, spam {n_spam}", depends=("data",)),
        Row(
            "data.balanced",
            "In [6] balanced",
            f"ham {min(n_ham, n_spam)}, spam {n_spam}",
            depends=("data",),
        ),
        Row("data.max_length", "In [11] max_length", str(L), depends=("data",)),
        Row("data.batches", "In [15] batches", sizes, depends=("data",)),
    ]
    echo(f"In [5]  ham {n_ham}, spam {n_spam}; In [11] max_length {L}; In [15] {sizes}")
    return loaders, L


def run_ch06(args, stream: BookStream, encode: Callable, decode: Callable, echo=print):
    """The chapter's cells in order. Returns (computed, rows, settings, what the run changed)."""
    data = ch06_inputs(args)
    changed = {"seed"} if stream.seed != 123 else set()
    computed, rows = {}, []
    loaders, L = spam_loaders(data, encode, stream, rows, echo)

    gpt, model = build_book_classifier(args.backend, args.weights, stream)
    start = np.array([encode("Every effort moves you")], dtype=np.int64)
    text = decode(generate_text_simple(gpt, start, 15, gpt.cfg["context_length"])[0].tolist())
    rows.append(
        Row("pretrained.text", "In [18] GPT-2, 15 greedy tokens", text, depends=("weights",))
    )
    echo(f"In [18] {text}")
    del gpt
    size = tuple(model.cfg[k] for k in ("emb_dim", "n_layers", "n_heads"))
    changed |= set() if size == (768, 12, 12) else {"weights"}  # not GPT-2 124M
    engine = make_engine(args.backend, model)
    last = engine.eval_logits(np.array([encode("I really liked this movie.")]))[0]  # (2,)
    text = " ".join(f"{v:.4f}" for v in last)
    rows.append(Row("head.last_token", "In [25] last output token", text, last.tolist(), TRAINED))

    splits = ("train", "val", "test")
    for cell, name, measure in (
        (28, "initial_losses", "loss"),
        (30, "initial_accuracy", "accuracy"),
    ):
        stream.reseed(f"ch06 In [{cell}]: {name}")
        for split in splits:
            if measure == "loss":
                value = calc_loss_loader(loaders[split], engine, 5)
                text, shown = f"{value:.3f}", value
            else:
                value = calc_accuracy_loader(loaders[split], engine, 10)
                text, shown = pct(value), 100 * value
            computed.setdefault(name, {})[split] = value
            rows.append(
                Row(f"{name}.{split}", f"In [{cell}] {split} {measure}", text, [shown], TRAINED)
            )
    echo("In [28] losses, In [30] accuracies: " + ", ".join(r.ours for r in rows[-6:]))

    epochs = 5 if args.epochs is None else args.epochs
    changed |= {"epochs"} if epochs != 5 else set()
    recipe = BookRecipe(
        cfg=model.cfg, seed=stream.seed, batch_size=8, lr=5e-5, epochs=epochs, eval_freq=50
    )
    stream.reseed("ch06 In [33]: training")
    task = BookClassifierTask(recipe, loaders["train"], loaders["val"], stream, model)
    run = Run(task, args.backend)
    accuracies, accuracy_rows = [], []

    def accuracy(epoch: int) -> None:  # train_classifier_simple's end of an epoch
        train, val = (
            calc_accuracy_loader(loaders[k], run.engine, recipe.eval_iter) for k in ("train", "val")
        )
        line = f"Training accuracy: {pct(train)} | Validation accuracy: {pct(val)}"
        accuracies.append({"epoch": epoch, "train": train, "val": val})
        label = f"In [33] accuracies, epoch {epoch}"
        accuracy_rows.append(
            Row(f"accuracy.{epoch}", label, line, [100 * train, 100 * val], TRAINED)
        )
        echo(line)

    log = book_epochs(run, epochs, recipe.eval_freq, accuracy, echo, "examples_seen", False)
    for r in log:
        line = f"Ep {r['epoch']} (Step {r['step']:06d}): Train loss {r['train']:.3f}, Val loss {r['val']:.3f}"
        values = [r["epoch"], r["step"], r["train"], r["val"]]
        rows.append(
            Row(f"log.{r['step']:06d}", f"In [33] log step {r['step']}", line, values, TRAINED)
        )
    rows += accuracy_rows
    computed |= {"log": log, "accuracies": accuracies}

    after = TRAINED + ("epochs",)
    for split in splits:
        acc = calc_accuracy_loader(loaders[split], run.engine)
        computed.setdefault("final_accuracy", {})[split] = acc
        rows.append(
            Row(
                f"final_accuracy.{split}", f"In [37] {split} accuracy", pct(acc), [100 * acc], after
            )
        )
    for i, review in enumerate(REVIEWS, start=1):
        label = classify_review(run.engine, review, encode, L)
        rows.append(
            Row(f"classify.text_{i}", f"In [{38 + i}] classify_review {i}", label, depends=after)
        )
    echo("In [37] accuracies, In [39-40]: " + ", ".join(r.ours for r in rows[-5:]))
    settings = {"recipe": {"epochs": epochs, "batch_size": 8, "lr": 5e-5, "weight_decay": 0.1}}
    return computed, rows, settings | {"weights": args.weights, "data": data}, changed
