"""`twinlm bench`: run the pytest-benchmark suites in bench/, then turn their JSON into a report.

The report (bench/report/README.md, results.csv and PNG plots) has, per component, each backend's
time, the NumPy / torch-CPU ratio (> 1: NumPy is slower), the GPU speed-up over torch-CPU when a GPU
ran, and the achieved GFLOP/s with its share of the matmul peak measured on this machine in the
same run. The raw pytest-benchmark JSON goes to .benchmarks/ (also autosaved there, numbered, so
`pytest bench/ --benchmark-enable --benchmark-compare` shows regressions between commits).

Which number: a benchmark's time is its best round (pytest-benchmark's `min`): on a shared machine
the other statistics mostly measure the neighbours. FLOP counts come from bench/workloads.py.
% of peak: CPU backends against this machine's `np.matmul` peak (large square GEMM, best of
several), GPU backends against `torch.matmul` on that GPU.
"""

from __future__ import annotations

import csv
import ctypes
import json
import math
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter

import numpy as np

ROOT = Path(__file__).resolve().parents[1]  # the source checkout (bench/ lives there)
DEFAULT_OUT = ROOT / "bench" / "report"
DEFAULT_JSON = ROOT / ".benchmarks" / "latest.json"
CPU_BACKENDS = ("numpy", "torch-cpu")
GPU_BACKENDS = ("torch-cuda", "torch-mps")
BACKEND_ORDER = (*CPU_BACKENDS, *GPU_BACKENDS)
MAIN_MODES = ("fwd+bwd", "step", "fwd")  # the mode a plot shows, in order of preference
TABLE_MODES = ("fwd", "fwd+bwd", "step")  # summary columns, in this order (then any others)

# ---- this machine ---------------------------------------------------------------------------------


def numpy_blas_threads() -> tuple[int, str]:
    """How many threads NumPy's BLAS uses, and how that was found out.

    threadpoolctl when installed; else OpenBLAS / MKL asked directly through ctypes (the library
    NumPy loaded, found in /proc/self/maps); else the usual environment variables; else the
    number of CPUs (what OpenBLAS and MKL default to).
    """
    try:
        from threadpoolctl import threadpool_info

        blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        if blas:
            return int(blas[0]["num_threads"]), f"threadpoolctl ({blas[0]['internal_api']})"
    except ImportError:
        pass
    asked = _ask_blas_library()
    if asked:
        return asked
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").split(",")[0]
        if value.isdigit() and int(value) > 0:
            return int(value), f"${var}"
    return os.cpu_count() or 1, "os.cpu_count() (BLAS default)"


_BLAS_GETTERS = (
    "scipy_openblas_get_num_threads64_",  # NumPy ≥ 2 wheels (scipy-openblas, 64-bit ints)
    "scipy_openblas_get_num_threads",
    "openblas_get_num_threads64_",
    "openblas_get_num_threads",
    "MKL_Get_Max_Threads",
)


def _ask_blas_library() -> tuple[int, str] | None:
    np.ones((2, 2)) @ np.ones((2, 2))  # make sure the BLAS library is loaded
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "blas" in line.lower() or "mkl_rt" in line}
    except OSError:
        return None
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _BLAS_GETTERS:
            getter = getattr(lib, name, None)
            if getter is not None:
                getter.restype = ctypes.c_int
                n = int(getter())
                if n > 0:
                    return n, f"{name}() in {Path(path).name}"
    return None


def blas_name() -> str:
    try:
        config = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{config.get('name', '?')} {config.get('version', '')}".strip()
    except Exception:  # numpy < 1.26 has no mode="dicts"; the name is only for the header
        return "unknown"


def library_info() -> dict:
    """Versions and devices for the report header (JSON-serializable)."""
    import torch

    info = {
        "numpy": np.__version__,
        "numpy_blas": blas_name(),
        "torch": torch.__version__,
        "torch_blas": "mkl" if torch.backends.mkl.is_available() else "other",
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def _best_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    best = math.inf
    for _ in range(repeats):
        start = perf_counter()
        fn()
        best = min(best, perf_counter() - start)
    return best


def measure_matmul_peak(n: int = 2048, repeats: int = 4) -> dict:
    """GFLOP/s of an (n, n) @ (n, n) product, best of `repeats`, float32 and float64:
    `np.matmul` (the reference for CPU backends), `torch.matmul` on the CPU with its current
    threads, and on the GPU when there is one."""
    import torch

    if n < 1 or repeats < 1:
        raise ValueError(f"n and repeats must be ≥ 1, got n={n}, repeats={repeats}")
    flops = 2 * n**3
    peak: dict = {"n": n, "repeats": repeats}
    rng = np.random.default_rng(0)
    for dtype in ("float32", "float64"):
        a = rng.standard_normal((n, n)).astype(dtype)
        b = rng.standard_normal((n, n)).astype(dtype)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        matmuls = {"numpy": lambda a=a, b=b: a @ b, "torch-cpu": lambda a=ta, b=tb: a @ b}
        if torch.cuda.is_available():
            ga, gb = ta.cuda(), tb.cuda()

            def gpu_matmul(a=ga, b=gb):
                a @ b
                torch.cuda.synchronize()

            matmuls["torch-cuda"] = gpu_matmul
        for backend, fn in matmuls.items():
            peak.setdefault(backend, {})[dtype] = flops / _best_seconds(fn, repeats) / 1e9
    return peak


def best_peak(*peaks: dict | None) -> dict:
    """Merge measure_matmul_peak results, keeping the best GFLOP/s per backend and dtype."""
    merged: dict = {}
    for peak in (p for p in peaks if p):
        for key, value in peak.items():
            if isinstance(value, dict):
                best = merged.setdefault(key, {})
                for dtype, gflops in value.items():
                    best[dtype] = max(best.get(dtype, 0.0), gflops)
            else:
                merged[key] = value
    return merged


# ---- reading pytest-benchmark JSON ----------------------------------------------------------------


@dataclass
class Row:
    """One (component, mode, dtype, size) and every backend's best time in seconds."""

    component: str
    mode: str
    dtype: str
    B: int
    T: int
    C: int
    shape: str
    flops: int | None
    seconds: dict[str, float] = field(default_factory=dict)

    def ratio(self) -> float | None:
        """NumPy time / torch-CPU time: > 1 means NumPy is slower."""
        if "numpy" in self.seconds and "torch-cpu" in self.seconds:
            return self.seconds["numpy"] / self.seconds["torch-cpu"]
        return None

    def gpu_speedup(self) -> float | None:
        """torch-CPU time / GPU time."""
        gpu = next((self.seconds[b] for b in GPU_BACKENDS if b in self.seconds), None)
        if gpu is None or "torch-cpu" not in self.seconds:
            return None
        return self.seconds["torch-cpu"] / gpu

    def gflops(self, backend: str) -> float | None:
        if not self.flops or backend not in self.seconds:
            return None
        return self.flops / self.seconds[backend] / 1e9


def load_json(json_path: str | os.PathLike) -> dict:
    path = Path(json_path)
    if not path.is_file():
        raise ValueError(
            f"json_path must be a pytest-benchmark JSON file, got {str(path)!r} (not found)"
        )
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"json_path {str(path)!r} is not valid JSON: {e}") from e
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ValueError(
            f"json_path {str(path)!r} is not pytest-benchmark output: expected a 'benchmarks' list"
        )
    return data


def rows_from_json(data: dict) -> list[Row]:
    """Pivot the benchmarks into one Row per (component, mode, dtype, T, C)."""
    rows: dict[tuple, Row] = {}
    for bench in data["benchmarks"]:
        info = bench.get("extra_info") or {}
        if "component" not in info:
            continue  # not one of ours
        key = (info["component"], info["mode"], info["dtype"], info["T"], info["C"])
        row = rows.get(key)
        if row is None:
            row = rows[key] = Row(
                info["component"], info["mode"], info["dtype"], info["B"], info["T"], info["C"],
                info.get("shape", ""), info.get("flops"),
            )  # fmt: skip
        row.seconds[info["backend"]] = float(bench["stats"]["min"])
    if not rows:
        raise ValueError(
            "the benchmark JSON holds no twinlm benchmarks (none has extra_info['component']); "
            "was it written by `pytest bench/`?"
        )
    return sorted(rows.values(), key=lambda r: (r.component, r.mode, r.dtype, r.T, r.C))


# ---- tables ---------------------------------------------------------------------------------------


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_gflops(g: float) -> str:
    return f"{g:,.0f}" if g >= 100 else f"{g:.3g}"


def _fmt(x: float | None, spec: str = ".2f", suffix: str = "") -> str:
    return "—" if x is None else f"{x:{spec}}{suffix}"


def peak_for(peak: dict, backend: str, dtype: str) -> float | None:
    """The matmul peak a backend's GFLOP/s is measured against (see the module docstring)."""
    ref = "numpy" if backend in CPU_BACKENDS else backend
    return (peak.get(ref) or {}).get(dtype)


def percent_of_peak(row: Row, backend: str, peak: dict) -> float | None:
    g, p = row.gflops(backend), peak_for(peak, backend, row.dtype)
    return None if g is None or not p else 100 * g / p


def backends_in(rows: Iterable[Row]) -> list[str]:
    present = {b for r in rows for b in r.seconds}
    return [b for b in BACKEND_ORDER if b in present] + sorted(present - set(BACKEND_ORDER))


def component_table(rows: list[Row], peak: dict) -> str:
    """Markdown: one line per (mode, dtype, size) of one component."""
    backends = backends_in(rows)
    gpu = any(b in GPU_BACKENDS for b in backends)
    head = ["mode", "dtype", "T", "C", *backends, "NumPy / torch-CPU"]
    head += ["GPU speed-up"] if gpu else []
    head += [f"GFLOP/s {b} (% peak)" for b in backends]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.mode, r.dtype, str(r.T), str(r.C)]
        cells += [fmt_time(r.seconds.get(b)) for b in backends]
        cells.append(_fmt(r.ratio(), ".2f", "×"))
        if gpu:
            cells.append(_fmt(r.gpu_speedup(), ".1f", "×"))
        for b in backends:
            g, pct = r.gflops(b), percent_of_peak(r, b, peak)
            cells.append("—" if g is None else f"{fmt_gflops(g)} ({_fmt(pct, '.0f', '%')})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def geomean(xs: Iterable[float]) -> float | None:
    xs = [x for x in xs if x is not None and x > 0]
    return math.exp(sum(map(math.log, xs)) / len(xs)) if xs else None


@dataclass(frozen=True)
class Summary:
    component: str
    ratio_by_mode: dict[str, float | None]  # geometric mean of NumPy / torch-CPU over sizes, dtypes
    worst_ratio: float | None
    worst_at: str
    gpu_speedup: float | None  # geometric mean


def summarize(rows: list[Row]) -> list[Summary]:
    """Per component, NumPy slowest first."""
    by_component: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        by_component[r.component].append(r)
    out = []
    for comp, rs in by_component.items():
        modes = sorted({r.mode for r in rs}, key=lambda m: (MAIN_MODES + (m,)).index(m))
        worst = max((r for r in rs if r.ratio() is not None), key=lambda r: r.ratio(), default=None)
        out.append(
            Summary(
                comp,
                {m: geomean(r.ratio() for r in rs if r.mode == m) for m in modes},
                worst.ratio() if worst else None,
                f"{worst.mode} {worst.dtype} T={worst.T} C={worst.C}" if worst else "",
                geomean(r.gpu_speedup() for r in rs),
            )
        )
    return sorted(out, key=lambda s: -(geomean(s.ratio_by_mode.values()) or 0.0))


def summary_table(summaries: list[Summary]) -> str:
    modes = [m for m in TABLE_MODES if any(m in s.ratio_by_mode for s in summaries)]
    modes += sorted({m for s in summaries for m in s.ratio_by_mode} - set(modes))
    gpu = any(s.gpu_speedup is not None for s in summaries)
    head = ["component", *(f"NumPy / torch-CPU, {m}" for m in modes), "worst", "worst at"]
    head += ["GPU speed-up"] if gpu else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summaries:
        cells = [s.component, *(_fmt(s.ratio_by_mode.get(m), ".2f", "×") for m in modes)]
        cells += [_fmt(s.worst_ratio, ".2f", "×"), s.worst_at]
        cells += [_fmt(s.gpu_speedup, ".1f", "×")] if gpu else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def header(data: dict, peak: dict, peak_source: str) -> str:
    machine = data.get("machine_info") or {}
    cpu = machine.get("cpu") or {}
    ours = machine.get("twinlm") or {}
    commit = data.get("commit_info") or {}
    lines = [
        f"- CPU: {cpu.get('brand_raw', machine.get('processor') or '?')}, "
        f"{cpu.get('count', '?')} logical cores; {machine.get('system', '')} {machine.get('machine', '')}",
        f"- Python {machine.get('python_version', '?')}, NumPy {ours.get('numpy', '?')} "
        f"(BLAS: {ours.get('numpy_blas', '?')}), torch {ours.get('torch', '?')} "
        f"(BLAS: {ours.get('torch_blas', '?')})",
        f"- Threads: NumPy BLAS {ours.get('numpy_blas_threads', '?')} "
        f"(from {ours.get('blas_threads_source', '?')}), torch intra-op {ours.get('torch_threads', '?')}"
        " (set equal to NumPy's)",
        f"- GPU: {ours.get('cuda_device') or 'none'}",
    ]
    for backend in ("numpy", "torch-cpu", "torch-cuda"):
        if backend in peak:
            label = "np.matmul" if backend == "numpy" else f"torch.matmul ({backend})"
            p = peak[backend]
            lines.append(
                f"- {label} peak, ({peak.get('n')}, {peak.get('n')}) GEMM, best of "
                f"{peak.get('repeats')} before and after the benchmarks: {p.get('float32', 0):.1f} GFLOP/s float32, "
                f"{p.get('float64', 0):.1f} GFLOP/s float64{peak_source}"
            )
    ours_json = data.get("twinlm") or {}
    load, others = ours_json.get("load_average_before"), ours_json.get("others_cpu_share")
    if load is not None or others is not None:
        cpus = ours_json.get("cpu_count") or cpu.get("count")
        busy = (others or 0.0) > 0.1 or (load or 0.0) > 0.5 * (cpus or math.inf)
        lines.append(
            f"- Other processes: load average {_fmt(load, '.1f')} before the run, "
            f"{_fmt(None if others is None else 100 * others, '.0f', '%')} of the {cpus} CPUs "
            "used by them during it"
            + (" — **the machine was shared: treat the ratios with care**" if busy else "")
        )
    if commit:
        dirty = " (uncommitted changes)" if commit.get("dirty") else ""
        lines.append(
            f"- Commit {str(commit.get('id', '?'))[:12]}{dirty}, {data.get('datetime', '')}"
        )
    return "\n".join(lines)


# ---- plots ----------------------------------------------------------------------------------------


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
                pts = sorted((getattr(r, axis), r.seconds[backend]) for r in rs
                             if r.dtype == dtype and backend in r.seconds)  # fmt: skip
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, style, marker="o", markersize=3, color=colors.get(backend),
                            label=f"{backend} {dtype}")  # fmt: skip
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
        ys = [geomean(r.ratio() for r in rows
                      if r.component == c and r.mode == mode and r.dtype == dtype) or 0.0
              for c in components]  # fmt: skip
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
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


# ---- the report -----------------------------------------------------------------------------------


def write_csv(rows: list[Row], path: Path) -> Path:
    backends = backends_in(rows)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["component", "mode", "dtype", "B", "T", "C", "flops",
                    *(f"seconds {b}" for b in backends), "numpy/torch-cpu"])  # fmt: skip
        for r in rows:
            ratio = r.ratio()
            w.writerow([r.component, r.mode, r.dtype, r.B, r.T, r.C, r.flops or "",
                        *(r.seconds.get(b, "") for b in backends),
                        "" if ratio is None else f"{ratio:.4f}"])  # fmt: skip
    return path


def build_report(
    json_path: str | os.PathLike = DEFAULT_JSON,
    out_dir: str | os.PathLike = DEFAULT_OUT,
    peak: dict | None = None,
) -> Path:
    """Write README.md, results.csv and the PNGs for one pytest-benchmark JSON into `out_dir`.

    peak: the matmul peak to use; default the one the suite stored in the JSON, else measured now.
    Returns the Markdown file's path.
    """
    data = load_json(json_path)
    rows = rows_from_json(data)
    peak_source = ""
    if peak is None:
        peak = (data.get("twinlm") or {}).get("matmul_peak")
    if not peak:
        peak, peak_source = measure_matmul_peak(), " (measured when the report was written)"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plot_scaling(rows, out / "time_vs_seq.png", "T")
    plot_scaling(rows, out / "time_vs_width.png", "C")
    plot_ratios(rows, out / "numpy_vs_torch.png")
    write_csv(rows, out / "results.csv")
    full = (data.get("twinlm") or {}).get("bench_full")
    parts = [
        "# twinlm benchmarks",
        "",
        "NumPy (hand-written backward) against torch_impl (the same ops from elementary torch ops, "
        "autograd backward) on the CPU"
        + (" and the GPU" if any(b in GPU_BACKENDS for r in rows for b in r.seconds) else "")
        + ". "
        f"{'Full' if full else 'Quick'} sweep; regenerate with `twinlm bench`"
        f"{'' if full else ' (`--full` for the full sweep)'}.",
        "",
        header(data, peak, peak_source),
        "",
        "Each time is the best round of pytest-benchmark (inputs built once, a warm-up call first, "
        "torch forward-only under `no_grad`, GPU calls synchronized). **NumPy / torch-CPU > 1 means "
        "NumPy is slower.** GFLOP/s use the FLOP counts in `bench/workloads.py` (memory-bound ops "
        "sit far below the matmul peak by nature). % peak: CPU backends against np.matmul's peak, "
        "GPUs against torch.matmul on the GPU.",
        "",
        "## Summary: NumPy / torch-CPU (geometric mean over sizes and dtypes), NumPy slowest first",
        "",
        summary_table(summarize(rows)),
        "",
        "![NumPy / torch-CPU](numpy_vs_torch.png)",
        "",
        "![time against sequence length](time_vs_seq.png)",
        "",
        "![time against width](time_vs_width.png)",
        "",
    ]
    for comp in sorted({r.component for r in rows}):
        rs = [r for r in rows if r.component == comp]
        shapes = [shape for _, _, shape in sorted({(r.T, r.C, r.shape) for r in rs if r.shape})]
        parts += [f"## {comp}", ""]
        if shapes:
            parts += ["Inputs: " + "; ".join(f"`{s}`" for s in shapes[:4])
                      + (" …" if len(shapes) > 4 else ""), ""]  # fmt: skip
        parts += [component_table(rs, peak), ""]
    md = out / "README.md"
    md.write_text("\n".join(parts))
    return md


# ---- `twinlm bench` -------------------------------------------------------------------------------


def run_bench(
    *,
    full: bool = False,
    keyword: str | None = None,
    bench_time: float = 0.3,
    threads: int | None = None,
    out_dir: str | os.PathLike | None = None,
    json_path: str | os.PathLike | None = None,
    report_only: bool = False,
) -> int:
    """Run bench/ with pytest-benchmark (unless report_only), then write the report. Returns an
    exit status: pytest's when the suites failed (the report is still written from what ran).

    threads: CPU threads for both NumPy's BLAS and torch (default: BLAS's own default, usually every
    core). The suites run in a child process, because BLAS reads its thread count at start-up.
    """
    if not bench_time > 0:
        raise ValueError(f"bench_time must be > 0 seconds, got {bench_time}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be ≥ 1, got {threads}")
    out_dir = DEFAULT_OUT if out_dir is None else out_dir
    json_path = DEFAULT_JSON if json_path is None else Path(json_path)
    status = 0
    if not report_only:
        status = _run_suites(full, keyword, bench_time, threads, json_path)
        if not json_path.is_file():
            return status or 1
    md = build_report(json_path, out_dir)
    print(summary_table(summarize(rows_from_json(load_json(json_path)))))
    print(f"\nreport: {md}\nplots and results.csv: {md.parent}\nraw JSON: {json_path}")
    return status


def _run_suites(
    full: bool, keyword: str | None, bench_time: float, threads: int | None, json_path: Path
) -> int:
    suite = ROOT / "bench"
    if not (suite / "test_bench_ops.py").is_file():
        raise ValueError(
            f"the bench suites are not at {suite}: run `twinlm bench` from a source checkout"
        )
    storage = ROOT / ".benchmarks"
    storage.mkdir(exist_ok=True)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pytest", "bench", "-p", "no:randomly", "-p", "no:cacheprovider",
        "-q", "-s", "--benchmark-enable", "--benchmark-autosave",
        f"--benchmark-storage=file://{storage}", f"--benchmark-json={json_path.resolve()}",
        f"--bench-time={bench_time}", "--bench-progress",
    ]  # fmt: skip
    if full:
        cmd.append("--bench-full")
    if keyword:
        cmd += ["-k", keyword]
    env = dict(os.environ)
    if threads is not None:
        for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
            env[var] = str(threads)
    if hasattr(os, "getloadavg") and os.getloadavg()[0] > 0.75 * (os.cpu_count() or 1):
        print(
            f"warning: load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; other "
            "processes will disturb the timings, multi-threaded torch most of all (on a shared "
            "machine, --threads 1 gives steadier ratios)",
            file=sys.stderr,
        )
    log = storage / "last-run.log"
    print(f"running bench/ ({'full' if full else 'quick'} sweep); pytest output: {log}", flush=True)
    with open(log, "w") as f:
        status = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, check=False).returncode
    if status not in (0, 5):
        tail = log.read_text().splitlines()[-40:]
        print("\n".join(tail), file=sys.stderr)
        print(f"pytest exited with status {status}; full log: {log}", file=sys.stderr)
    return status


if __name__ == "__main__":  # python -m twinlm.bench_report JSON [OUT]: the report alone
    print(build_report(*sys.argv[1:3]))
