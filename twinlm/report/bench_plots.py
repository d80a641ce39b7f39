"""The PNG plots in `twinlm bench`'s report (see twinlm/report/bench.py), drawn with matplotlib.

Time against sequence length or width, one panel per component; and a bar chart of the
geometric-mean NumPy / torch-CPU ratio per component.
"""

from __future__ import annotations

import math
from pathlib import Path

from twinlm.report.tables import BACKEND_ORDER, MAIN_MODES, Row, backends_in, geomean, summarize


def _main_mode(rows: list[Row]) -> str:
    modes = {r.mode for r in rows}
    return next((m for m in MAIN_MODES if m in modes), sorted(modes)[0])


def _most_common(values: list[int]) -> int:
    return max(sorted(set(values)), key=values.count)


def plot_scaling(rows: list[Row], path: Path, axis: str) -> Path:
    """Time against T (at the most swept C) or against C (at the most swept T), one panel per
    component, one line per backend and dtype, log scales."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    other = "C" if axis == "T" else "T"
    components = sorted({r.component for r in rows})
    cols = min(4, len(components))
    nrows = math.ceil(len(components) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.2 * nrows), dpi=110, squeeze=False)
    colors = {b: f"C{i}" for i, b in enumerate(BACKEND_ORDER)}
    for ax, comp in zip(axes.flat, components):
        rs = [r for r in rows if r.component == comp]
        mode = _main_mode(rs)
        rs = [r for r in rs if r.mode == mode]
        fixed = _most_common([getattr(r, other) for r in rs])
        rs = [r for r in rs if getattr(r, other) == fixed]
        for backend in backends_in(rs):
            for dtype, style in (("float32", "-"), ("float64", "--")):
                pts = sorted(
                    (getattr(r, axis), r.seconds[backend])
                    for r in rs
                    if r.dtype == dtype and backend in r.seconds
                )
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(
                        xs,
                        ys,
                        style,
                        marker="o",
                        markersize=3,
                        color=colors.get(backend),
                        label=f"{backend} {dtype}",
                    )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"{comp} {mode} ({other}={fixed})", fontsize=9)
        ax.set_xlabel("T (sequence length)" if axis == "T" else "C (width)", fontsize=8)
        ax.set_ylabel("seconds per call", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(components) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)) or 1, fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_ratios(rows: list[Row], path: Path) -> Path:
    """Bar chart: geometric-mean NumPy / torch-CPU ratio per component, one bar per mode and dtype."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    components = [s.component for s in summarize(rows)]
    series = sorted({(r.mode, r.dtype) for r in rows if r.ratio() is not None})
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(components) + 2), 4), dpi=110)
    width = 0.8 / max(1, len(series))
    for i, (mode, dtype) in enumerate(series):
        ys = [
            geomean(
                r.ratio() for r in rows if r.component == c and r.mode == mode and r.dtype == dtype
            )
            or 0.0
            for c in components
        ]
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(components))]
        ax.bar(xs, ys, width, label=f"{mode} {dtype}")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    ratio_label = matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}×")
    ax.yaxis.set_major_formatter(ratio_label)
    ax.yaxis.set_minor_formatter(ratio_label)
    ax.tick_params(axis="y", which="both", labelsize=7)
    ax.set_xticks(range(len(components)))
    ax.set_xticklabels(components, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("NumPy time / torch-CPU time  (> 1: NumPy slower)", fontsize=8)
    ax.set_title("NumPy / torch-CPU, geometric mean over sizes", fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    if series:
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
