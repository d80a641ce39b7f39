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
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
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
