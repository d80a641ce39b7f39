"""Chapter 5's training, the book's recipe, as a task for the one loop (twinlm/training/loop.py's
Run: the model, its engine, one optimizer step at a time) and the book's own driver around it.

    model           GPTModel(cfg) drawn from the stream right after the notebook's reseed
    batches         the training loader's (BookLoader): each epoch a fresh iteration, so a fresh
                    shuffle; the dropout masks of every step drawn from the stream after its batch
    optimizer       AdamW(lr 4e-4, weight_decay 0.1) on every parameter, constant lr, no clipping
    train_model_simple(run, ...)
        for each epoch, for each batch:  one step; global_step += 1;
            when global_step % eval_freq == 0 (after the update, so at steps 0, 5, 10, …):
                evaluate_model: calc_loss_loader over the first eval_iter batches of each loader
                (a new iteration of each: the training loader reshuffles and both draw), printed
                `Ep {epoch} (Step {global_step:06d}): Train loss {:.3f}, Val loss {:.3f}`
        after each epoch: generate_and_print_sample, 50 greedy tokens (eval mode: no draws)

The batches must come in order (the loader is a stream, not an index): the book's run is not
resumable mid-way. Both engines take the same NumPy batches and masks, so NumPy and torch train on
the book's exact inputs; the printed lines add the perplexity exp(loss) beside each loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from twinlm.book.loader import BookLoader
from twinlm.book.sampling import generate_text_simple
from twinlm.book.stream import BookStream
from twinlm.shared.config import validate_config
from twinlm.shared.naming import gpt_dropout_mask_shapes
from twinlm.training.engines import Batch
from twinlm.training.loop import Run
from twinlm.training.settings import INDEX_LIKE, NON_NEGATIVE, RATE, STEPS_LIKE, Number


@dataclass
class BookRecipe:
    """The book's chapter-5 settings (cells 'GPT_CONFIG_124M', the loaders and the training)."""

    cfg: dict = field(default_factory=dict)  # GPT_CONFIG_124M with context_length 256
    seed: int = 123
    batch_size: int = 2
    train_ratio: float = 0.9
    lr: float = 4e-4
    weight_decay: float = 0.1
    epochs: int = 10
    eval_freq: int = 5
    eval_iter: int = 5
    start_context: str = "Every effort moves you"
    sample_tokens: int = 50
    clip: float = 0.0  # the book does not clip (the loop's engines read it)
    dtype: str = "float32"

    def __post_init__(self) -> None:
        """Each value checked as the training commands check theirs (settings.py), named by its
        --set key."""
        for name, check in RECIPE_CHECKS.items():
            check.check(name, getattr(self, name))


RECIPE_CHECKS = {
    "seed": INDEX_LIKE,
    "batch_size": STEPS_LIKE,
    "train_ratio": Number(0, 1, above=True),
    "lr": RATE,
    "weight_decay": NON_NEGATIVE,
    "epochs": INDEX_LIKE,
    "eval_freq": STEPS_LIKE,
    "eval_iter": STEPS_LIKE,
    "sample_tokens": INDEX_LIKE,
}


def calc_loss_loader(loader: BookLoader, engine, num_batches: int | None = None) -> float:
    """The book's calc_loss_loader: the mean of the first num_batches batch losses (all without
    num_batches), summed as Python floats in the loader's order; NaN for an empty loader."""
    if len(loader) == 0:
        return float("nan")
    n = len(loader) if num_batches is None else min(num_batches, len(loader))
    total = 0.0
    for i, (x, y) in enumerate(loader):  # a new iteration: it draws (BookLoader)
        if i < n:
            total += engine.eval_loss(x, y)
        else:
            break
    return total / n


class BookTask:
    """Chapter 5's recipe as a Task for twinlm.training.loop.Run (module docstring)."""

    kind = "gpt"
    checkpoint_name = "book.safetensors"
    report_files = ()  # what report() writes in out_dir
    trainable_keys = None
    evaluate_first = False

    def __init__(
        self,
        recipe: BookRecipe,
        train_loader: BookLoader,
        val_loader: BookLoader,
        stream: BookStream,
    ):
        self.recipe = self.settings = recipe
        self.cfg = validate_config(dict(recipe.cfg))
        self.train_loader, self.val_loader, self.stream = train_loader, val_loader, stream
        self.per_epoch = len(train_loader)
        if self.per_epoch == 0:
            raise ValueError(
                f"the training text makes {len(train_loader.inputs)} windows of "
                f"{self.cfg['context_length']} tokens, fewer than one batch of "
                f"{recipe.batch_size}; use a longer text or a smaller context_length"
            )
        self.total_steps = recipe.epochs * self.per_epoch
        self.seen_per_step = recipe.batch_size * self.cfg["context_length"]
        self._epoch, self._next = iter(()), 0

    def build_model(self, backend: str):
        return self.stream.gpt_model(self.cfg, backend)

    def initial_carry(self) -> None:
        return None

    def batch(self, step: int, carry=None) -> Batch:
        """The next batch of the running epoch (a new epoch starts a new iteration of the
        training loader), then that step's dropout masks from the stream."""
        if step != self._next:
            raise ValueError(f"the book's batches come in order: expected step {self._next}")
        self._next += 1
        if step % self.per_epoch == 0:
            self._epoch = iter(self.train_loader)
        x, y = next(self._epoch)
        p, masks = self.cfg["drop_rate"], {}
        if p > 0:
            shapes = gpt_dropout_mask_shapes(self.cfg, *x.shape)
            masks = self.stream.dropout_masks(shapes, p, np.dtype(self.recipe.dtype))
        return Batch(x, y, masks)

    def lr(self, step: int) -> float:
        return self.recipe.lr

    def evaluate(self, engine) -> dict[str, float]:
        """The book's evaluate_model: eval mode, eval_iter batches of each loader."""
        n = self.recipe.eval_iter
        return {
            "train_loss": calc_loss_loader(self.train_loader, engine, n),
            "val_loss": calc_loss_loader(self.val_loader, engine, n),
        }

    def eval_line(self, step: int, m: dict[str, float]) -> str:
        epoch = (step - 1) // self.per_epoch + 1  # step: optimizer steps done
        return log_line(epoch, step - 1, m["train_loss"], m["val_loss"])

    def epoch_end(self, run: Run) -> None:
        return None

    def meta(self) -> dict:
        return {"cfg": self.cfg, "settings": asdict(self.recipe), "data": "book"}

    def report(self, run: Run, out_dir: Path) -> list[str]:
        return []


def log_line(epoch: int, global_step: int, train: float, val: float) -> str:
    """The book's printed line, and the perplexities beside it."""
    book = f"Ep {epoch} (Step {global_step:06d}): Train loss {train:.3f}, Val loss {val:.3f}"
    return f"{book}   (perplexity {perplexity(train)} / {perplexity(val)})"


def perplexity(loss: float) -> str:
    """exp(loss), printed to 5 significant digits with thousands separators."""
    if not math.isfinite(loss):
        return "nan"
    ppl = math.exp(loss)
    return f"{ppl:,.{max(0, 4 - int(math.floor(math.log10(ppl))))}f}"


def sample_text(model, recipe: BookRecipe, encode, decode) -> tuple[list[int], str]:
    """generate_and_print_sample: greedy tokens after start_context, newlines printed as
    spaces. Returns (ids, the printed text)."""
    context = model.cfg["context_length"]
    idx = np.array([encode(recipe.start_context)], dtype=np.int64)
    ids = generate_text_simple(model, idx, recipe.sample_tokens, context)[0].tolist()
    return ids, decode(ids).replace("\n", " ")


def book_epochs(
    run: Run,
    epochs: int,
    eval_freq: int,
    after_epoch: Callable[[int], None],
    echo: Callable[[str], None] = print,
    seen_name: str = "tokens_seen",
    perplexities: bool = True,
) -> list[dict]:
    """The loop train_model_simple (ch. 5) and train_classifier_simple (ch. 6) share: for each
    epoch, each batch of the task's training loader, one step; after the update, every eval_freq
    global steps, the losses; then after_epoch(epoch). Returns the log rows
    {epoch, step, seen_name: tokens or examples seen, train, val}."""
    task = run.task
    log, seen, global_step = [], 0, -1
    for epoch in range(1, epochs + 1):
        for _ in range(task.per_epoch):
            run.train_step()  # batch, masks, forward, backward, AdamW
            seen += task.seen_per_step
            global_step += 1
            if global_step % eval_freq == 0:
                m = run.evaluate()
                train, val = m["train_loss"], m["val_loss"]
                log.append(
                    {"epoch": epoch, "step": global_step, seen_name: seen, "train": train}
                    | {"val": val}
                )
                line = log_line(epoch, global_step, train, val)
                echo(line if perplexities else line.split("   ")[0])
        after_epoch(epoch)
    return log


def train_model_simple(
    run: Run, encode, decode, echo: Callable[[str], None] = print
) -> tuple[list[dict], list[dict]]:
    """The book's training loop over run (a Run of a BookTask). Returns (log, samples): log rows
    {epoch, step, tokens_seen, train, val}, sample rows {epoch, ids, text}."""
    recipe: BookRecipe = run.task.recipe
    samples = []

    def sample(epoch: int) -> None:  # generate_and_print_sample
        ids, text = sample_text(run.engine.model, recipe, encode, decode)
        samples.append({"epoch": epoch, "ids": ids, "text": text})
        echo(text)

    log = book_epochs(run, recipe.epochs, recipe.eval_freq, sample, echo)
    return log, samples
