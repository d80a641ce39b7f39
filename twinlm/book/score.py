"""`twinlm score`: how certain the model is at every step of a text — the book's perplexity
sidebar (chapter 5) token by token, in either backend.

For ids x_0 … x_n and the model's logits z_t (V,) after reading x_0 … x_t (t = 0 … n-1):
    log p_t = z_t − logsumexp(z_t)                 log-probabilities of the next token (V,)
    loss_t = −log p_t[x_{t+1}]                     cross entropy of the token that came (nats)
    perplexity_t = exp(loss_t)                     as many equally likely tokens as that surprise
    entropy_t = −Σ_j p_t[j] log p_t[j]             the spread of the prediction itself (nats),
                                                   whatever came: low = confident
and for the text, the book's perplexity: exp(mean_t loss_t). The first token has no prediction
(GPT-2 sees no start token here), so it is shown but not scored. The model's float32 logits are
taken to float64 and the formulas above run once, in NumPy, for both backends.

The terminal line colours each token by its loss on a fixed scale, green 0 → red ln V (the loss of
a uniform guess); the PNG heat map shows loss and entropy per token, with perplexity written in.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np

from twinlm.book.sampling import model_logits


def token_scores(model, ids: list[int]) -> dict[str, np.ndarray]:
    """loss, perplexity and entropy (nats) of tokens ids[1:], each (n,) float64 (module docstring).
    ids longer than the model's context are cut to its first context_length + 1."""
    ids = list(ids)[: model.cfg["context_length"] + 1]
    if len(ids) < 2:
        raise ValueError(f"text must encode to at least 2 tokens to score one, got {len(ids)}")
    x = np.array([ids[:-1]], dtype=np.int64)  # (1, n) the inputs
    z = model_logits(model, x)[0].astype(np.float64)  # (n, V)
    z_max = z.max(axis=-1, keepdims=True)
    logp = z - (z_max + np.log(np.exp(z - z_max).sum(axis=-1, keepdims=True)))  # (n, V)
    loss = -logp[np.arange(len(ids) - 1), ids[1:]]  # (n,)
    entropy = -(np.exp(logp) * logp).sum(axis=-1)  # (n,)
    return {"ids": np.array(ids), "loss": loss, "perplexity": np.exp(loss), "entropy": entropy}


def _rgb(fraction: float) -> tuple[int, int, int]:
    """Green (0) → yellow → red (1), matplotlib's RdYlGn reversed."""
    from matplotlib import colormaps

    r, g, b, _ = colormaps["RdYlGn_r"](min(max(fraction, 0.0), 1.0))
    return int(255 * r), int(255 * g), int(255 * b)


def coloured_line(pieces: list[str], loss: np.ndarray, vmax: float, colour: bool) -> str:
    """The text with every scored token on a background of its loss (ANSI 24-bit colour); the
    first token plain. Without colour: tokens separated by '|'."""
    if not colour:
        return "|".join(pieces)
    out = [pieces[0]]
    for piece, value in zip(pieces[1:], loss):
        r, g, b = _rgb(value / vmax)
        out.append(f"\x1b[48;2;{r};{g};{b}m\x1b[38;2;0;0;0m{piece}\x1b[0m")
    return "".join(out)


def heat_map(path: str | Path, pieces: list[str], scores: dict, vmax: float, title: str) -> Path:
    """A PNG: two rows of cells (loss, entropy) under the tokens, perplexity written in each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(scores["loss"])
    grid = np.vstack([scores["loss"], scores["entropy"]])  # (2, n)
    fig, ax = plt.subplots(figsize=(min(max(3, 0.7 * n + 2), 40), 2.8))
    image = ax.imshow(grid, cmap="RdYlGn_r", vmin=0.0, vmax=vmax, aspect="auto")
    for t in range(n):
        ax.text(t, 0, f"{scores['perplexity'][t]:.3g}", ha="center", va="center", fontsize=7)
        ax.text(t, 1, f"{scores['entropy'][t]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(n), [repr(p)[1:-1] for p in pieces[1:]], rotation=60, fontsize=8)
    ax.set_yticks([0, 1], ["loss (ppl written)", "entropy"])
    fig.colorbar(image, ax=ax, label="nats")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def use_colour(mode: str) -> bool:
    if mode == "auto":
        return sys.stdout.isatty() and "NO_COLOR" not in os.environ
    return mode == "always"


def main_score(args) -> int:
    from twinlm.data.files import writable_file
    from twinlm.data.tokenizer import decode, encode
    from twinlm.generation import load_model

    png = writable_file(args.png, "--png", ".png")  # before the model is read
    model = load_model(args.backend, checkpoint=args.checkpoint, weights=args.weights)
    ids = encode(args.text)
    scores = token_scores(model, ids)
    pieces = [decode([i]) for i in scores["ids"]]
    vmax = math.log(model.cfg["vocab_size"])  # a uniform guess
    n, mean = len(scores["loss"]), float(scores["loss"].mean())
    cut = f" (cut to the context, {len(ids) - n - 1} tokens left out)" if len(ids) > n + 1 else ""
    print(f"twinlm score [{args.backend}]: {n} tokens scored{cut}")
    print(coloured_line(pieces, scores["loss"], vmax, use_colour(args.color)))
    print(f"{'token':>16} | {'loss':>7} | {'perplexity':>10} | {'entropy':>7}")
    for t in range(n):
        token = repr(pieces[t + 1])
        loss, ppl, ent = scores["loss"][t], scores["perplexity"][t], scores["entropy"][t]
        print(f"{token:>16} | {loss:7.3f} | {ppl:10.4g} | {ent:7.3f}")
    mean_entropy = float(scores["entropy"].mean())
    print(
        f"mean loss {mean:.3f} nats, perplexity exp(mean loss) {math.exp(mean):,.2f}, "
        f"mean entropy {mean_entropy:.3f} nats (ln V = {vmax:.2f})"
    )
    title = f"{args.checkpoint or args.weights} [{args.backend}]: perplexity {math.exp(mean):,.2f}"
    print(f"heat map: {heat_map(png, pieces, scores, vmax, title)}")
    return 0
