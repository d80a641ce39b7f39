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
from collections.abc import Callable
from pathlib import Path

import numpy as np

from twinlm.book.loader import BookLoader
from twinlm.book.recipe import BookRecipe, BookTask, book_epochs, calc_loss_loader
from twinlm.book.sampling import generate_text_simple
from twinlm.book.stream import BookStream
from twinlm.book.table import Row
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
    """(label, text) rows as pandas.read_csv(path, sep="\\t", header=None) reads them."""
    with open(path, encoding="utf-8", newline="") as f:
        return [(r[0], r[1]) for r in csv.reader(f, delimiter="\t") if r]


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
    from twinlm.training.classify import build_classifier
    from twinlm.weights import load_gpt2

    cfg, params = load_gpt2(weights)
    gpt = load_model(backend, weights=weights)
    stream.reseed("ch06 In [21]: model.out_head = Linear(emb_dim, 2)")
    weight, bias = stream.linear(cfg["emb_dim"], BOOK_OPTIONS["num_classes"])
    options = BOOK_OPTIONS | {"pad_id": PAD_ID}
    model = build_classifier(backend, cfg, options, 0, "float32", backbone=params)
    if backend == "numpy":
        model.params["out_head.weight"][...] = weight
        model.params["out_head.bias"][...] = bias
    else:
        import torch

        with torch.no_grad():
            model.out_head.weight.copy_(torch.from_numpy(weight))
            model.out_head.bias.copy_(torch.from_numpy(bias))
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


def run_ch06(args, stream: BookStream, encode: Callable, decode: Callable, echo=print):
    """The chapter's cells in order. Returns (computed, rows, settings, what the run changed)."""
    data = ch06_inputs(args)
    changed = {"seed"} if stream.seed != 123 else set()
    computed, rows = {}, []
    table = read_spam_table(data)
    n_ham = sum(label == "ham" for label, _ in table)
    counts = f"ham {n_ham}, spam {len(table) - n_ham}"
    rows.append(Row("data.counts", "In [5] label counts", counts, depends=("data",)))
    train, val, test = book_split(table, stream.seed)
    n_spam = len(table) - n_ham
    balanced = f"ham {min(n_ham, n_spam)}, spam {n_spam}"
    rows.append(Row("data.balanced", "In [6] balanced", balanced, depends=("data",)))
    train_xy = spam_arrays(train, encode, None)
    L = train_xy[0].shape[1]
    splits = {
        "train": train_xy,
        "val": spam_arrays(val, encode, L),
        "test": spam_arrays(test, encode, L),
    }
    rows.append(Row("data.max_length", "In [11] max_length", str(L), depends=("data",)))
    echo(f"In [5]  {counts}; In [6] {balanced}; In [11] max_length {L}")

    stream.reseed("ch06 In [13]: the data loaders")
    loaders = {
        name: BookLoader(*xy, 8, name == "train", name == "train", stream)
        for name, xy in splits.items()
    }
    sizes = ", ".join(
        f"{len(loaders[n])} {w} batches"
        for n, w in zip(loaders, ("training", "validation", "test"))
    )
    rows.append(Row("data.batches", "In [15] batches", sizes, depends=("data",)))
    echo(f"In [15] {sizes}")

    gpt, model = build_book_classifier(args.backend, args.weights, stream)
    start = np.array([encode("Every effort moves you")], dtype=np.int64)
    ids = generate_text_simple(gpt, start, 15, gpt.cfg["context_length"])[0].tolist()
    rows.append(
        Row("pretrained.text", "In [18] GPT-2, 15 greedy tokens", decode(ids), depends=("weights",))
    )
    echo(f"In [18] {decode(ids)}")
    del gpt
    small = {k: model.cfg[k] for k in ("emb_dim", "n_layers", "n_heads")}
    changed |= set() if small == {"emb_dim": 768, "n_layers": 12, "n_heads": 12} else {"weights"}
    engine = make_engine(args.backend, model)
    movie = np.array([encode("I really liked this movie.")], dtype=np.int64)
    last = engine.eval_logits(movie)[0]
    text = " ".join(f"{v:.4f}" for v in last)
    rows.append(
        Row("head.last_token", "In [25] last output token", text, [float(v) for v in last], TRAINED)
    )

    stream.reseed("ch06 In [28]: initial losses")
    for name in ("train", "val", "test"):
        loss = calc_loss_loader(loaders[name], engine, 5)
        computed.setdefault("initial_losses", {})[name] = loss
        rows.append(
            Row(f"initial_losses.{name}", f"In [28] {name} loss", f"{loss:.3f}", [loss], TRAINED)
        )
    stream.reseed("ch06 In [30]: initial accuracies")
    for name in ("train", "val", "test"):
        acc = calc_accuracy_loader(loaders[name], engine, 10)
        computed.setdefault("initial_accuracy", {})[name] = acc
        rows.append(
            Row(
                f"initial_accuracy.{name}",
                f"In [30] {name} accuracy",
                pct(acc),
                [100 * acc],
                TRAINED,
            )
        )
    echo(
        "In [28] "
        + ", ".join(r.ours for r in rows[-6:-3])
        + "; In [30] "
        + ", ".join(r.ours for r in rows[-3:])
    )

    epochs = 5 if args.epochs is None else args.epochs
    changed |= {"epochs"} if epochs != 5 else set()
    cfg = model.cfg
    recipe = BookRecipe(
        cfg=cfg, seed=stream.seed, batch_size=8, lr=5e-5, epochs=epochs, eval_freq=50
    )
    stream.reseed("ch06 In [33]: training")
    run = Run(
        BookClassifierTask(recipe, loaders["train"], loaders["val"], stream, model), args.backend
    )
    accuracies = []

    def accuracy(epoch: int) -> None:
        train_acc = calc_accuracy_loader(loaders["train"], run.engine, recipe.eval_iter)
        val_acc = calc_accuracy_loader(loaders["val"], run.engine, recipe.eval_iter)
        line = f"Training accuracy: {pct(train_acc)} | Validation accuracy: {pct(val_acc)}"
        accuracies.append({"epoch": epoch, "train": train_acc, "val": val_acc})
        rows.append(
            Row(
                f"accuracy.{epoch}",
                f"In [33] accuracies, epoch {epoch}",
                line,
                [100 * train_acc, 100 * val_acc],
                TRAINED,
            )
        )
        echo(line)

    log = book_epochs(run, epochs, recipe.eval_freq, accuracy, echo, "examples_seen", False)
    for r in log:
        line = f"Ep {r['epoch']} (Step {r['step']:06d}): Train loss {r['train']:.3f}, Val loss {r['val']:.3f}"
        rows.append(
            Row(
                f"log.{r['step']:06d}",
                f"In [33] log step {r['step']}",
                line,
                [r["epoch"], r["step"], r["train"], r["val"]],
                TRAINED,
            )
        )
    computed |= {"log": log, "accuracies": accuracies}
    after = TRAINED + ("epochs",)
    for name in ("train", "val", "test"):
        acc = calc_accuracy_loader(loaders[name], run.engine)
        computed.setdefault("final_accuracy", {})[name] = acc
        rows.append(
            Row(f"final_accuracy.{name}", f"In [37] {name} accuracy", pct(acc), [100 * acc], after)
        )
    for i, review in enumerate(REVIEWS, start=1):
        label = classify_review(run.engine, review, encode, L)
        rows.append(
            Row(f"classify.text_{i}", f"In [{38 + i}] classify_review {i}", label, depends=after)
        )
    echo(
        "In [37] "
        + ", ".join(r.ours for r in rows[-5:-2])
        + f"; In [39-40] {rows[-2].ours}, {rows[-1].ours}"
    )
    settings = {"recipe": {"epochs": epochs, "batch_size": 8, "lr": 5e-5, "weight_decay": 0.1}}
    return computed, rows, settings | {"weights": args.weights, "data": str(data)}, changed
