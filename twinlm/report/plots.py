"""Loss curves and confusion matrices as PNG (matplotlib with the non-interactive Agg backend: no
screen needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    """Write fig to path (creating its folder) and close it."""
    try:
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path)
    finally:
        _pyplot().close(fig)
    return path


def plot_losses(
    path: str | os.PathLike,
    curves: dict[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str = "loss",
    xlabel: str = "tokens seen",
    ylabel: str = "cross entropy (nats)",
) -> Path:
    """curves: label -> (xs, ys). Writes one PNG with every curve."""
    fig, ax = _pyplot().subplots(figsize=(7, 4), dpi=120)
    for label, (xs, ys) in curves.items():
        ax.plot(xs, ys, label=label, marker="o" if len(xs) < 30 else None, markersize=3)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_history(path: str | os.PathLike, history: dict[str, list], **labels) -> Path:
    """A training run's train and validation losses against what it has seen (history as
    twinlm.training.loop.Run keeps it); labels: title, xlabel, ylabel as plot_losses."""
    seen = history["seen"]
    curves = {"train": (seen, history["train_loss"]), "validation": (seen, history["val_loss"])}
    return plot_losses(path, curves, **labels)


def plot_confusion(
    path: str | os.PathLike, counts: np.ndarray, names: Sequence[str], title: str
) -> Path:
    """counts (K, K): row = true class, column = predicted class, each cell labelled."""
    fig, ax = _pyplot().subplots(figsize=(4, 4), dpi=120)
    ax.imshow(counts, cmap="Blues")
    for (i, j), c in np.ndenumerate(counts):
        dark = c > counts.max() / 2
        ax.text(j, i, str(c), ha="center", va="center", color="white" if dark else "black")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _save(fig, path)


FLOAT32_EPS = float(np.finfo(np.float32).eps)  # 2⁻²³ ≈ 1.2e-7: float32's rounding level
FLOAT64_EPS = float(np.finfo(np.float64).eps)  # 2⁻⁵² ≈ 2.2e-16


def plot_lockstep(
    path: str | os.PathLike,
    steps: Sequence[int],
    losses: dict[str, Sequence[float]],
    gaps: Sequence[float],
    *,
    title: str = "two backends, one training run",
) -> Path:
    """Two panels over the same steps: every backend's loss overlaid (the lines should coincide),
    and beneath, on a log axis, the relative gap between them, with float32's and float64's
    rounding levels (machine epsilon) as reference lines. A gap of exactly 0 cannot sit on a log
    axis: those steps are marked along the bottom edge instead. gaps[i] = |a - b| / |b| for the
    first two curves a, b of `losses`."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(7, 5.5), dpi=100, sharex=True, height_ratios=(3, 2)
    )
    styles = ({"lw": 3, "alpha": 0.4}, {"lw": 1, "ls": "--"})  # wide under narrow: both seen
    for (label, ys), style in zip(losses.items(), styles * len(losses)):
        top.plot(steps, ys, label=label, **style)
    top.set_ylabel("training loss (nats)")
    top.set_title(title)
    top.grid(alpha=0.3)
    top.legend()

    steps, gaps = np.asarray(steps), np.asarray(gaps, dtype=np.float64)
    floor = FLOAT64_EPS / 64  # where the zeros are marked, below any non-zero gap we expect
    nonzero = gaps > 0
    bottom.semilogy(steps[nonzero], gaps[nonzero], ".", ms=4, color="C2", label="relative gap")
    if (~nonzero).any():
        bottom.semilogy(
            steps[~nonzero],
            np.full((~nonzero).sum(), floor),
            "|",
            ms=6,
            color="C7",
            label="gap exactly 0",
        )
    for eps, name, color in ((FLOAT32_EPS, "float32", "C3"), (FLOAT64_EPS, "float64", "C0")):
        bottom.axhline(eps, color=color, ls=":", lw=1.5, label=f"{name} rounding (eps {eps:.1e})")
    top_y = max(FLOAT32_EPS * 50, float(gaps.max(initial=0)) * 10)
    bottom.set_ylim(floor / 4, top_y)
    bottom.set_xlabel("optimizer step")
    a, b = list(losses)[:2]
    bottom.set_ylabel(f"|{a} − {b}| / |{b}|")
    bottom.grid(alpha=0.3, which="major")
    bottom.legend(loc="center", ncol=2, fontsize=8)  # between the two lines: nothing there
    return _save(fig, path)
