"""Loss curves as PNG (matplotlib with the non-interactive Agg backend: no screen needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def plot_losses(
    path: str | os.PathLike,
    curves: dict[str, tuple[Sequence[float], Sequence[float]]],
    *,
    title: str = "loss",
    xlabel: str = "tokens seen",
    ylabel: str = "cross entropy (nats)",
) -> Path:
    """curves: label -> (xs, ys). Writes one PNG with every curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    for label, (xs, ys) in curves.items():
        ax.plot(xs, ys, label=label, marker="o" if len(xs) < 30 else None, markersize=3)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
