"""Chapter 5 replayed, cell by cell, with the notebook's reseeds (`seed` in place of 123):

In [2]   reseed; model = GPTModel(GPT_CONFIG_124M with context_length 256); model.eval()
In [3]   10 greedy tokens after "Every effort moves you" (untrained)
In [4-15] two toy sequences: argmax ids, target probabilities, their logs, the loss and its
         perplexity (the perplexity sidebar: exp of the mean cross entropy)
In [19]  characters and tokens of the text
In [20]  reseed; the loaders (90/10 split, windows of 256, batch 2; In [22-23] iterate them)
In [25]  reseed; the initial losses over every batch of each loader
In [27]  reseed; a new GPTModel; AdamW(4e-4, weight decay 0.1); train_model_simple for 10
         epochs (twinlm.book.recipe): the log, with perplexities, and a sample per epoch
In [29]  25 greedy tokens from the trained model
In [30-39] temperature and top-k on a toy vocabulary: torch.multinomial's counts after a
         reseed, top-k's logits, positions and probabilities
In [41]  reseed; 15 tokens with top_k 25, temperature 1.4 from the trained model
In [56]  with GPT-2 weights (--weights): reseed; 25 tokens, top_k 50, temperature 1.5
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from twinlm.book.loader import book_loaders
from twinlm.book.recipe import (
    BookRecipe,
    BookTask,
    calc_loss_loader,
    log_line,
    perplexity,
    train_model_simple,
)
from twinlm.book.sampling import (
    cross_entropy,
    generate,
    generate_text_simple,
    model_logits,
    softmax,
)
from twinlm.book.stream import BookStream
from twinlm.book.table import Row
from twinlm.generation import language_model
from twinlm.shared.naming import with_prefix
from twinlm.training.checkpoint import save_checkpoint
from twinlm.training.engines import make_engine
from twinlm.training.loop import Run

TOY_INPUTS = [[16833, 3626, 6100], [40, 1107, 588]]  # "every effort moves", "I really like"
TOY_TARGETS = [
    [3626, 6100, 345],
    [588, 428, 11311],
]  # " effort moves you", " really like chocolate"
TOY_VOCAB = ("closer", "every", "effort", "forward", "inches", "moves", "pizza", "toward", "you")
TOY_LOGITS = [4.51, 0.89, -1.90, 6.75, 1.63, -1.62, -1.89, 6.28, 1.79]
TRAINED = ("cfg", "seed", "text", "recipe")  # what a row after In [27] depends on


def _fmt(values, spec: str) -> tuple[str, list[float]]:
    vals = [float(v) for v in np.ravel(values)]
    return " ".join(format(v, spec) for v in vals), vals


def toy_rows(model, decode, echo) -> tuple[dict, list[Row]]:
    """In [4-15]: the two toy sequences through the untrained model (eval mode)."""
    lm = language_model(model)
    inputs, targets = np.array(TOY_INPUTS), np.array(TOY_TARGETS)
    logits = model_logits(model, inputs)  # (2, 3, V) float32
    probas = softmax(logits, lm)  # (2, 3, V)
    argmax = np.argmax(probas, axis=-1)  # (2, 3)
    picked = np.take_along_axis(probas, targets[..., None], axis=-1)[..., 0]  # (2, 3)
    log_probas = np.log(picked.ravel())  # (6,) float32
    loss = cross_entropy(logits, targets, lm)  # float32, the backend's
    ppl = float(np.exp(np.float32(loss)))  # torch.exp(loss), float32
    p1, v1 = _fmt(picked[0], ".4e")
    p2, v2 = _fmt(picked[1], ".4e")
    lp, vlp = _fmt(log_probas, ".4f")
    rows = [
        Row("toy.argmax_ids", "In [6] toy argmax ids", str(argmax.tolist())),
        Row("toy.outputs_batch_1", "In [7] Outputs batch 1", decode(argmax[0].tolist())),
        Row("toy.target_probas_1", "In [8] Text 1 target probas", p1, v1),
        Row("toy.target_probas_2", "In [8] Text 2 target probas", p2, v2),
        Row("toy.log_probas", "In [9] log probas", lp, vlp),
        Row("toy.loss", "In [14] cross entropy", f"{loss:.4f}", [loss]),
        Row("toy.perplexity", "In [15] perplexity", f"{ppl:.4f}", [ppl]),
    ]
    echo(f"In [14] toy cross entropy {loss:.4f}, In [15] perplexity {ppl:.4f}")
    computed = {"argmax_ids": argmax.tolist(), "target_probas": picked.tolist(), "loss": loss}
    return computed | {"perplexity": ppl}, rows


def toy_sampling_rows(lm, stream: BookStream, echo) -> tuple[dict, list[Row]]:
    """In [30-39]: the toy vocabulary's argmax, multinomial draws and top-k (no model)."""
    logits = np.array(TOY_LOGITS, dtype=np.float32)
    probas = softmax(logits, lm)
    rows = [
        Row("temperature.argmax", "In [30] argmax", TOY_VOCAB[int(np.argmax(probas))], depends=())
    ]
    stream.reseed("ch05 In [31]: torch.multinomial")
    q = stream.exponential(probas.shape)
    rows.append(
        Row(
            "temperature.multinomial",
            "In [31] multinomial",
            TOY_VOCAB[int(np.argmax(probas / q))],
            depends=("seed",),
        )
    )
    counts = {}
    for T, cell in ((1, 32), (0.1, 35), (5, 36)):
        p = softmax(logits / np.float32(T), lm)
        stream.reseed(f"ch05 In [{cell}]: print_sampled_tokens")
        sample = [int(np.argmax(p / stream.exponential(p.shape))) for _ in range(1_000)]
        freq = np.bincount(sample)
        text = ", ".join(f"{n} x {TOY_VOCAB[i]}" for i, n in enumerate(freq))
        counts[str(T)] = freq.tolist()
        rows.append(
            Row(
                f"temperature.counts_{T}",
                f"In [{cell}] 1,000 draws, T={T}",
                text,
                [float(n) for n in freq],
                depends=("seed",),
            )
        )
        echo(f"In [{cell}] T={T}: {text}")
    order = np.argsort(-logits, kind="stable")[:3]
    top = logits[order]
    new_logits = np.where(logits < top[-1], np.float32(-np.inf), logits)
    topk_probas = softmax(new_logits, lm)
    tl, vtl = _fmt(top, ".4f")
    tp, vtp = _fmt(topk_probas, ".4f")
    rows += [
        Row("top_k.logits", "In [37] top logits", tl, vtl, depends=()),
        Row("top_k.positions", "In [37] top positions", " ".join(map(str, order)), depends=()),
        Row("top_k.probas", "In [39] top-k probas", tp, vtp, depends=()),
    ]
    return {"counts": counts, "top_k_probas": topk_probas.tolist()}, rows


def run_ch05(
    backend: str,
    recipe: BookRecipe,
    text: str,
    stream: BookStream,
    encode: Callable,
    decode: Callable,
    echo: Callable[[str], None] = print,
    weights_model=None,
    save: str | None = None,
) -> tuple[dict, list[Row]]:
    """The chapter's cells in order (module docstring). Returns (computed, rows). save: write the
    trained model there (a GPT checkpoint for `twinlm generate` and `twinlm score`)."""
    cfg, ctx = recipe.cfg, recipe.cfg["context_length"]
    start = np.array([encode(recipe.start_context)], dtype=np.int64)
    computed, rows = {}, []

    stream.reseed("ch05 In [2]: GPTModel")
    model = stream.gpt_model(cfg, backend)  # model.eval(): nothing below draws from it
    ids = generate_text_simple(model, start, 10, ctx)[0].tolist()
    computed["generate_untrained"] = {"ids": ids, "text": decode(ids)}
    rows.append(Row("generate_untrained.text", "In [3] untrained, 10 tokens", decode(ids)))
    echo(f"In [3]  {decode(ids)}")
    computed["toy"], toy = toy_rows(model, decode, echo)
    rows += toy

    n_tokens = len(encode(text))
    rows.append(Row("text.characters", "In [19] characters", str(len(text)), depends=("text",)))
    rows.append(Row("text.tokens", "In [19] tokens", str(n_tokens), depends=("text",)))
    echo(f"In [19] Characters: {len(text)}, Tokens: {n_tokens}")

    stream.reseed("ch05 In [20]: the data loaders")
    loaders = book_loaders(text, encode, ctx, stream, recipe.batch_size, recipe.train_ratio)
    train_loader, val_loader = loaders
    counted = [sum(x.size for x, _ in loader) for loader in loaders]  # In [22-23] iterate both
    rows.append(
        Row("loader.train_tokens", "In [23] training tokens", str(counted[0]), depends=TRAINED)
    )
    rows.append(
        Row("loader.val_tokens", "In [23] validation tokens", str(counted[1]), depends=TRAINED)
    )

    stream.reseed("ch05 In [25]: initial losses")
    engine = make_engine(backend, model)
    losses = [calc_loss_loader(loader, engine) for loader in loaders]
    computed["initial_losses"] = dict(zip(("train", "val"), losses))
    for split, loss in zip(("train", "val"), losses):
        label = f"In [25] {'training' if split == 'train' else 'validation'} loss"
        rows.append(Row(f"initial_losses.{split}", label, repr(loss), [loss], TRAINED))
        echo(f"{label}: {loss!r} (perplexity {perplexity(loss)})")
    del model, engine

    stream.reseed("ch05 In [27]: training")
    run = Run(BookTask(recipe, train_loader, val_loader, stream), backend)
    echo(f"In [27] train_model_simple: {recipe.epochs} epochs of {run.task.per_epoch} steps")
    log, samples = train_model_simple(run, encode, decode, echo)
    computed |= {"log": log, "samples": samples}
    for r in log:
        line = log_line(r["epoch"], r["step"], r["train"], r["val"]).split("   ")[0]
        values = [r["epoch"], r["step"], r["train"], r["val"]]
        rows.append(
            Row(f"log.{r['step']:06d}", f"In [27] log step {r['step']}", line, values, TRAINED)
        )
    for s in samples:
        rows.append(
            Row(
                f"sample.{s['epoch']}",
                f"In [27] sample, epoch {s['epoch']}",
                s["text"],
                depends=TRAINED,
            )
        )

    model = run.engine.model
    if save:
        meta = {"kind": "gpt", "cfg": cfg, "step": run.step, "book": "ch05 In [27]"}
        echo(f"saved: {save_checkpoint(save, with_prefix(run.engine.params(), 'model.'), meta)}")
    after = TRAINED + ("epochs",)
    ids = generate_text_simple(model, start, 25, ctx)[0].tolist()
    computed["after_training"] = {"ids": ids, "text": decode(ids)}
    rows.append(
        Row("after_training.text", "In [29] trained, 25 tokens", decode(ids), depends=after)
    )
    echo(f"In [29] {decode(ids)}")

    computed["temperature"], toy = toy_sampling_rows(language_model(model), stream, echo)
    rows += toy

    stream.reseed("ch05 In [41]: generate, top_k 25, temperature 1.4")
    ids = generate(model, start, 15, ctx, temperature=1.4, top_k=25, stream=stream)[0].tolist()
    computed["top_k_sample"] = {"ids": ids, "text": decode(ids)}
    rows.append(Row("top_k_sample.text", "In [41] top-k 25, T 1.4", decode(ids), depends=after))
    echo(f"In [41] {decode(ids)}")

    if weights_model is not None:
        stream.reseed("ch05 In [56]: GPT-2 124M, top_k 50, temperature 1.5")
        context = weights_model.cfg["context_length"]
        ids = generate(weights_model, start, 25, context, 1.5, 50, stream)[0].tolist()
        computed["pretrained"] = {"ids": ids, "text": decode(ids)}
        rows.append(
            Row(
                "pretrained.text",
                "In [56] GPT-2 124M, top-k 50, T 1.5",
                decode(ids),
                depends=("seed",),
            )
        )
        echo(f"In [56] {decode(ids)}")
    return computed, rows
