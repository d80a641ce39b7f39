"""`twinlm bench`'s results as rows and tables (the entry point is twinlm/report/bench.py).

Reading the JSON into one `Row` per (component, mode, dtype, size) with every backend's best time;
the backend and mode constants; formatting; the Markdown tables (per component, and the summary of
NumPy / torch-CPU ratios per component); the report header; and results.csv.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

CPU_BACKENDS = ("numpy", "torch-cpu")
GPU_BACKENDS = ("torch-cuda", "torch-mps")
BACKEND_ORDER = (*CPU_BACKENDS, *GPU_BACKENDS)
MAIN_MODES = ("fwd+bwd", "step", "fwd")  # the mode a plot shows, in order of preference
TABLE_MODES = ("fwd", "fwd+bwd", "step")  # summary columns, in this order (then any others)

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
                info["component"],
                info["mode"],
                info["dtype"],
                info["B"],
                info["T"],
                info["C"],
                info.get("shape", ""),
                info.get("flops"),
            )
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
    """The matmul peak a backend's GFLOP/s is measured against (see twinlm/report/bench.py)."""
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
    per_process = ours_json.get("libraries_per_process", len(ours_json.get("libraries") or ()))
    if per_process == 1:
        lines.append(
            "- Processes: NumPy and torch each in their own processes (`twinlm bench`), so the "
            "threads one library leaves spinning cannot take the other's cores"
        )
    elif per_process:
        lines.append(
            "- Processes: NumPy and torch in one process: OpenBLAS's threads keep spinning after "
            "each NumPy call and slow torch down (`twinlm bench` runs one library per process)"
        )
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


# ---- results.csv ----------------------------------------------------------------------------------


def write_csv(rows: list[Row], path: Path) -> Path:
    backends = backends_in(rows)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "component",
                "mode",
                "dtype",
                "B",
                "T",
                "C",
                "flops",
                *(f"seconds {b}" for b in backends),
                "numpy/torch-cpu",
            ]
        )
        for r in rows:
            ratio = r.ratio()
            w.writerow(
                [
                    r.component,
                    r.mode,
                    r.dtype,
                    r.B,
                    r.T,
                    r.C,
                    r.flops or "",
                    *(r.seconds.get(b, "") for b in backends),
                    "" if ratio is None else f"{ratio:.4f}",
                ]
            )
    return path
