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

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from twinlm.data.files import writable_file, writable_folder
from twinlm.report.bench_plots import plot_ratios, plot_scaling
from twinlm.report.machine import (
    best_peak,
    blas_name,
    library_info,
    measure_matmul_peak,
    numpy_blas_threads,
)
from twinlm.report.tables import (
    BACKEND_ORDER,
    CPU_BACKENDS,
    GPU_BACKENDS,
    MAIN_MODES,
    TABLE_MODES,
    Row,
    Summary,
    backends_in,
    component_table,
    fmt_gflops,
    fmt_time,
    geomean,
    header,
    load_json,
    peak_for,
    percent_of_peak,
    rows_from_json,
    summarize,
    summary_table,
    write_csv,
)
from twinlm.report.train_step import plot_train_step, train_step_results, train_step_table

__all__ = [
    "BACKEND_ORDER",
    "CPU_BACKENDS",
    "DEFAULT_JSON",
    "DEFAULT_OUT",
    "GPU_BACKENDS",
    "MAIN_MODES",
    "ROOT",
    "TABLE_MODES",
    "Row",
    "Summary",
    "backends_in",
    "best_peak",
    "blas_name",
    "build_report",
    "component_table",
    "fmt_gflops",
    "fmt_time",
    "geomean",
    "header",
    "library_info",
    "load_json",
    "main_bench",
    "measure_matmul_peak",
    "merge_runs",
    "numpy_blas_threads",
    "peak_for",
    "percent_of_peak",
    "plot_ratios",
    "plot_scaling",
    "rows_from_json",
    "run_bench",
    "summarize",
    "summary_table",
    "write_csv",
]

ROOT = Path(__file__).resolve().parents[2]  # the source checkout (bench/ lives there)
DEFAULT_OUT = ROOT / "bench" / "report"
DEFAULT_JSON = ROOT / ".benchmarks" / "latest.json"

# ---- the report -----------------------------------------------------------------------------------


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
        *_train_step_section(data, peak, out),
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
            parts += [
                "Inputs: "
                + "; ".join(f"`{s}`" for s in shapes[:4])
                + (" …" if len(shapes) > 4 else ""),
                "",
            ]
        parts += [component_table(rs, peak), ""]
    md = out / "README.md"
    md.write_text("\n".join(parts))
    return md


def _train_step_section(data: dict, peak: dict, out: Path) -> list[str]:
    """The training-step race (bench/test_bench_train_step.py), when the run had it."""
    results = train_step_results(data)
    if not results:
        return []
    plot_train_step(results, out / "train_step.png")
    return [
        "## Training step: GPT-2 124M, float32",
        "",
        "One full step (forward, cross entropy, backward, clip to norm 1.0, AdamW), dropout off, "
        "from the same initial weights. NumPy is `numpy_impl` as twinlm's NumPy engine runs it "
        "(its fast path, `numpy_impl/fast`); NumPy reference ops the same step on the reference "
        "ops, written for a reader (what the fast path's tricks buy); "
        "torch_impl the same model from elementary torch ops (autograd); the built-ins are "
        "`bench/gpt_builtin.py` (nn.Linear, `F.scaled_dot_product_attention(is_causal=True)`, "
        '`F.layer_norm`, `F.gelu(approximate="tanh")`, `F.cross_entropy`, '
        "`torch.optim.AdamW`, `clip_grad_norm_`); torch.compile compiles that model. GFLOP/s "
        "count the full T×T attention scores whatever a contender skips (bench/workloads.py). "
        "Peak RSS: the process's high-water mark during the steps; of which the step: that peak "
        "less the process's RSS before the model was built (model, gradients, AdamW state, "
        "activations).",
        "",
        train_step_table(results, peak),
        "",
        "![seconds per training step](train_step.png)",
        "",
    ]


def merge_runs(parts: list[dict]) -> dict:
    """One pytest-benchmark JSON from the JSONs of several processes (one library each): their
    benchmarks together, the best matmul peak per library, the first run's machine and commit."""
    if not parts:
        raise ValueError("merge_runs needs at least one pytest-benchmark JSON")
    merged = dict(parts[0])
    merged["benchmarks"] = [b for p in parts for b in p.get("benchmarks", [])]
    ours = [p.get("twinlm") or {} for p in parts]
    shares = [t["others_cpu_share"] for t in ours if t.get("others_cpu_share") is not None]
    merged["twinlm"] = {
        **ours[0],
        "matmul_peak": best_peak(*(t.get("matmul_peak") for t in ours)),
        "others_cpu_share": max(shares) if shares else None,
        "libraries_per_process": max(len(t.get("libraries") or ("?", "?")) for t in ours),
    }
    return merged


# ---- `twinlm bench` -------------------------------------------------------------------------------


def main_bench(args) -> int:
    """`twinlm bench` (twinlm/cli.py parses)."""
    return run_bench(
        full=args.full,
        keyword=args.k,
        bench_time=args.time,
        threads=args.threads,
        out_dir=args.out,
        json_path=args.json,
        report_only=args.report_only,
    )


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
    out_dir = writable_folder(DEFAULT_OUT if out_dir is None else out_dir, "--out")
    json_path = DEFAULT_JSON if json_path is None else Path(json_path)
    if not report_only:  # written by the suites: checked before minutes of benchmarks
        writable_file(json_path, "--json")
    status = 0
    if not report_only:
        status = _run_suites(full, keyword, bench_time, threads, json_path)
        if not json_path.is_file():
            return status or 1
    md = build_report(json_path, out_dir)
    print(summary_table(summarize(rows_from_json(load_json(json_path)))))
    print(f"\nreport: {md}\nplots and results.csv: {md.parent}\nraw JSON: {json_path}")
    return status


SUITES = ("test_bench_ops.py", "test_bench_models.py", "test_bench_qwen3.py",
          "test_bench_train_step.py")  # fmt: skip
LIBRARIES = ("numpy", "torch")
# The training-step race goes one process per contender: each peak RSS is then the contender's own,
# not a high-water mark that an earlier contender's freed memory still holds up.
CONTENDERS = {
    "test_bench_train_step.py": {
        "numpy": ("numpy and not numpy-reference", "numpy-reference"),
        "torch": ("torch-cpu", "torch-builtin", "torch-compile", "torch-cuda", "torch-mps"),
    }
}


def _processes(keyword: str | None):
    """(suite, library, -k expression or None) for each child process, in order."""
    for suite in SUITES:
        for library in LIBRARIES:
            for contender in CONTENDERS.get(suite, {}).get(library, (None,)):
                terms = [f"({keyword})" if keyword else None, contender]
                yield suite, library, " and ".join(t for t in terms if t) or None


def _run_suites(
    full: bool, keyword: str | None, bench_time: float, threads: int | None, json_path: Path
) -> int:
    """Each suite in one process per library (NumPy's, then torch's), interleaved suite by suite:
    a library's idle threads then cannot slow the other down (OpenBLAS's keep spinning ~0.1 s
    after every call); the training-step race in one process per contender (CONTENDERS). The processes' JSONs are merged into json_path and saved, numbered, in
    .benchmarks/ for --benchmark-compare."""
    suite = ROOT / "bench"
    if not (suite / "test_bench_ops.py").is_file():
        raise ValueError(
            f"the bench suites are not at {suite}: run `twinlm bench` from a source checkout"
        )
    storage = ROOT / ".benchmarks"
    storage.mkdir(exist_ok=True)
    json_path.parent.mkdir(parents=True, exist_ok=True)
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
    print(f"running bench/ ({'full' if full else 'quick'} sweep, one library per process); "
          f"pytest output: {log}", flush=True)  # fmt: skip
    status, parts = 0, []
    with tempfile.TemporaryDirectory() as tmp, open(log, "w") as f:
        for n, (name, library, select) in enumerate(_processes(keyword)):
            part = Path(tmp) / f"{n:02d}-{library}.json"
            cmd = [sys.executable, "-m", "pytest", f"bench/{name}", "-p", "no:randomly",
                   "-p", "no:cacheprovider", "-q", "-s", "--benchmark-enable",
                   f"--benchmark-json={part}", f"--bench-time={bench_time}", "--bench-progress",
                   f"--bench-library={library}"]  # fmt: skip
            cmd += (["--bench-full"] if full else []) + (["-k", select] if select else [])
            print(f"\n==== {name}, {library} ====", file=f, flush=True)
            code = subprocess.run(cmd, cwd=ROOT, env=env, stdout=f, check=False).returncode
            if code not in (0, 5):  # 5: nothing selected in this suite
                status = status or code
            if part.is_file():
                data = load_json(part)
                if data["benchmarks"]:
                    parts.append(data)
    if parts:
        merged = merge_runs(parts)
        json_path.write_text(json.dumps(merged, indent=1))
        _save_numbered(merged, storage)
    if status:
        tail = log.read_text().splitlines()[-40:]
        print("\n".join(tail), file=sys.stderr)
        print(f"pytest exited with status {status}; full log: {log}", file=sys.stderr)
    return status


def _save_numbered(data: dict, storage: Path) -> Path:
    """Save as pytest-benchmark's --benchmark-autosave would (<machine>/NNNN_<commit>.json)."""
    from pytest_benchmark.utils import get_machine_id

    folder = storage / get_machine_id()
    folder.mkdir(parents=True, exist_ok=True)
    numbers = [int(p.name[:4]) for p in folder.glob("[0-9][0-9][0-9][0-9]_*.json")]
    commit = str((data.get("commit_info") or {}).get("id", "unversioned"))[:12]
    path = folder / f"{max(numbers, default=0) + 1:04d}_{commit}.json"
    path.write_text(json.dumps(data, indent=1))
    return path


if __name__ == "__main__":  # python -m twinlm.report.bench JSON [OUT]: the report alone
    print(build_report(*sys.argv[1:3]))
