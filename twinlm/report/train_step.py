"""The training-step race in `twinlm bench`'s report (bench/test_bench_train_step.py's results).

Per shape, each contender's seconds per step (its best round), tokens per second, achieved GFLOP/s
and their share of the matmul peak (CPU contenders against np.matmul's, a GPU against its own
torch.matmul's), the peak resident set size during its steps and the part of it the step needs
(peak − the process's RSS before the model was built) and that peak as a share of the torch
built-ins' at the same shape, the minor page faults per step (pages the kernel zeroed because the
step allocated them afresh), and its time relative to NumPy's (the fast
path, as the NumPy engine trains; "numpy-reference" is the same step on numpy_impl's reference ops,
so the two NumPy rows say what the fast path's tricks buy); and a bar chart of the seconds per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from twinlm.report.tables import GPU_BACKENDS, fmt_gflops

COMPONENT_PREFIX = "train_step "
ORDER = (
    "numpy",
    "numpy-reference",
    "torch-cpu",
    "torch-builtin",
    "torch-compile",
    "torch-cuda",
    "torch-mps",
)
LABELS = {
    "numpy": "NumPy (numpy_impl)",
    "numpy-reference": "NumPy (reference ops)",
    "torch-cpu": "torch_impl (autograd)",
    "torch-builtin": "torch built-ins",
    "torch-compile": "torch.compile (built-ins)",
    "torch-cuda": "torch_impl, CUDA",
    "torch-mps": "torch_impl, MPS",
}


@dataclass(frozen=True)
class StepResult:
    shape: str  # "124M", "book": bench/workloads.py's TRAIN_STEP_SHAPES
    backend: str
    B: int
    T: int
    seconds: float
    flops: int | None
    peak_rss_mib: float | None
    rss_start_mib: float | None
    faults_per_step: float | None = None

    @property
    def tokens_per_s(self) -> float:
        return self.B * self.T / self.seconds

    @property
    def step_mib(self) -> float | None:
        """Peak RSS above the process's RSS before the model existed."""
        if self.peak_rss_mib is None or self.rss_start_mib is None:
            return None
        return self.peak_rss_mib - self.rss_start_mib


def train_step_results(data: dict) -> list[StepResult]:
    """The training-step benchmarks of a pytest-benchmark JSON, by shape then contender."""
    out = []
    for bench in data.get("benchmarks", []):
        info = bench.get("extra_info") or {}
        if not str(info.get("component", "")).startswith(COMPONENT_PREFIX):
            continue
        out.append(
            StepResult(
                info["component"].removeprefix(COMPONENT_PREFIX),
                info["backend"],
                info["B"],
                info["T"],
                float(bench["stats"]["min"]),
                info.get("flops"),
                info.get("peak_rss_mib"),
                info.get("rss_start_mib"),
                info.get("faults_per_step"),
            )
        )
    rank = {b: i for i, b in enumerate(ORDER)}
    return sorted(out, key=lambda r: (r.shape, rank.get(r.backend, len(ORDER)), r.backend))


def _percent(r: StepResult, peak: dict) -> float | None:
    ref = peak.get(r.backend if r.backend in GPU_BACKENDS else "numpy") or {}
    if not r.flops or not ref.get("float32"):
        return None
    return 100 * r.flops / r.seconds / 1e9 / ref["float32"]


def _gib(mib: float | None) -> str:
    return "—" if mib is None else f"{mib / 1024:.2f} GiB"


def train_step_table(results: list[StepResult], peak: dict) -> str:
    """Markdown: one line per (shape, contender)."""
    head = ["shape", "contender", "s/step", "tokens/s", "GFLOP/s (% of peak)", "peak RSS",
            "of which the step", "peak RSS ÷ built-ins'", "page faults/step",
            "time ÷ NumPy's"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    numpy_s = {r.shape: r.seconds for r in results if r.backend == "numpy"}
    builtin_rss = {r.shape: r.peak_rss_mib for r in results if r.backend == "torch-builtin"}
    for r in results:
        base = builtin_rss.get(r.shape)
        rss_ratio = "—" if not (base and r.peak_rss_mib) else f"{r.peak_rss_mib / base:.2f}"
        faults = "—" if r.faults_per_step is None else f"{r.faults_per_step:,.0f}"
        pct = _percent(r, peak)
        rate = "—" if not r.flops else fmt_gflops(r.flops / r.seconds / 1e9)
        rate += "" if pct is None else f" ({pct:.0f}%)"
        ratio = f"{r.seconds / numpy_s[r.shape]:.2f}×" if r.shape in numpy_s else "—"
        cells = [f"{r.shape} (B={r.B}, T={r.T})", LABELS.get(r.backend, r.backend),
                 f"{r.seconds:.2f}", f"{r.tokens_per_s:,.0f}", rate, _gib(r.peak_rss_mib),
                 _gib(r.step_mib), rss_ratio, faults, ratio]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_train_step(results: list[StepResult], path: Path) -> Path:
    """Horizontal bars: seconds per step per contender, one panel per shape."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shapes = sorted({r.shape for r in results})
    fig, axes = plt.subplots(1, len(shapes), figsize=(5.5 * len(shapes), 3.2), dpi=110,
                             squeeze=False)  # fmt: skip
    for ax, shape in zip(axes[0], shapes):
        rs = [r for r in results if r.shape == shape][::-1]  # NumPy on top
        colors = [{"numpy": "C1", "numpy-reference": "C3"}.get(r.backend, "C0") for r in rs]
        ax.barh([LABELS.get(r.backend, r.backend) for r in rs], [r.seconds for r in rs],
                color=colors)  # fmt: skip
        for y, r in enumerate(rs):
            ax.text(r.seconds, y, f" {r.seconds:.2f} s", va="center", fontsize=7)
        ax.set_xlim(0, 1.25 * max(r.seconds for r in rs))
        ax.set_title(f"GPT-2 124M training step, {shape} (B={rs[0].B}, T={rs[0].T})", fontsize=9)
        ax.set_xlabel("seconds per step (forward, backward, clip, AdamW), float32", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
