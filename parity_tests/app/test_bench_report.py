"""The benchmark report's arithmetic and files, on a tiny synthetic pytest-benchmark JSON, and the
bench entries against the registered op cases. Fast: no benchmark is run."""

from __future__ import annotations

import importlib.util
import io
import json
import math
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from twinlm.cli import main
from twinlm.parity.opcases import CASES_BY_NAME
from twinlm.report import bench as R

PEAK = {"n": 64, "repeats": 1, "numpy": {"float32": 100.0, "float64": 50.0},
        "torch-cpu": {"float32": 120.0, "float64": 60.0},
        "torch-cuda": {"float32": 10000.0, "float64": 500.0}}  # fmt: skip


def _bench(component, mode, dtype, T, C, backend, seconds, flops):
    """One entry shaped like pytest-benchmark's JSON (the fields the report reads, and a few more)."""
    return {
        "group": f"{component} {mode} {dtype} T={T} C={C}",
        "name": f"test_op[{component}-{backend}]",
        "fullname": f"bench/test_bench_ops.py::test_op[{component}-{backend}]",
        "params": {"backend": backend},
        "param": backend,
        "extra_info": {
            "component": component,
            "mode": mode,
            "dtype": dtype,
            "backend": backend,
            "B": 4,
            "T": T,
            "C": C,
            "flops": flops,
            "shape": f"x (4, {T}, {C})",
            "numpy_blas_threads": 2,
            "torch_threads": 2,
        },
        "options": {"min_rounds": 3},
        "stats": {
            "min": seconds,
            "max": 3 * seconds,
            "mean": 2 * seconds,
            "median": 2 * seconds,
            "stddev": seconds,
            "rounds": 3,
            "iterations": 1,
        },
    }


def _synthetic() -> dict:
    # linear fwd float32 T=64: numpy 2 ms, torch-cpu 1 ms, cuda 0.1 ms, 1e8 FLOPs.
    benches = [
        _bench("linear", "fwd", "float32", 64, 8, "numpy", 2e-3, 10**8),
        _bench("linear", "fwd", "float32", 64, 8, "torch-cpu", 1e-3, 10**8),
        _bench("linear", "fwd", "float32", 64, 8, "torch-cuda", 1e-4, 10**8),
        # linear fwd float32 T=128: ratio 8
        _bench("linear", "fwd", "float32", 128, 8, "numpy", 8e-3, 4 * 10**8),
        _bench("linear", "fwd", "float32", 128, 8, "torch-cpu", 1e-3, 4 * 10**8),
        # softmax: NumPy twice as fast; float64; no GPU
        _bench("softmax", "fwd+bwd", "float64", 64, 16, "numpy", 1e-3, 10**6),
        _bench("softmax", "fwd+bwd", "float64", 64, 16, "torch-cpu", 2e-3, 10**6),
        # a component without FLOPs (generation)
        _bench("generate", "32 tokens", "float32", 64, 8, "numpy", 0.5, None),
        _bench("generate", "32 tokens", "float32", 64, 8, "torch-cpu", 0.25, None),
    ]
    foreign = _bench("x", "fwd", "float32", 1, 1, "numpy", 1.0, 1)
    del foreign["extra_info"]["component"]  # someone else's benchmark in the same file: ignored
    return {
        "machine_info": {"processor": "x86_64", "system": "Linux", "machine": "x86_64",
                         "python_version": "3.11.7",
                         "cpu": {"brand_raw": "Test CPU 9000", "count": 2},
                         "twinlm": {"numpy": "2.x", "numpy_blas": "openblas", "torch": "2.y",
                                    "numpy_blas_threads": 2, "torch_threads": 2,
                                    "blas_threads_source": "test", "cuda_device": "Test GPU"}},
        "commit_info": {"id": "0123456789abcdef", "dirty": True},
        "benchmarks": [*benches, foreign],
        "datetime": "2026-01-01T00:00:00+00:00",
        "version": "5.3.1",
        "twinlm": {"matmul_peak": PEAK, "bench_full": False,
                   "load_average_before": 0.1, "others_cpu_share": 0.02, "cpu_count": 2},
    }  # fmt: skip


@pytest.fixture(scope="module")
def synthetic_json(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    path.write_text(json.dumps(_synthetic()))
    return path


@pytest.fixture(scope="module")
def report(synthetic_json) -> tuple[Path, int, str]:
    """`twinlm bench --report-only` on the synthetic JSON, once: (folder, exit status, stdout)."""
    out = synthetic_json.parent / "report"
    with redirect_stdout(io.StringIO()) as printed:
        status = main(["bench", "--report-only", "--json", str(synthetic_json), "--out", str(out)])
    return out, status, printed.getvalue()


def _row(rows, component, T):
    (row,) = [r for r in rows if r.component == component and r.T == T]
    return row


def test_pivot_ratios_and_gflops(synthetic_json):
    rows = R.rows_from_json(R.load_json(synthetic_json))
    assert {r.component for r in rows} == {"linear", "softmax", "generate"}  # foreign one ignored
    lin = _row(rows, "linear", 64)
    assert lin.seconds == {"numpy": 2e-3, "torch-cpu": 1e-3, "torch-cuda": 1e-4}  # stats["min"]
    assert lin.ratio() == pytest.approx(2.0)  # NumPy / torch-CPU
    assert lin.gpu_speedup() == pytest.approx(10.0)  # torch-CPU / GPU
    assert lin.gflops("numpy") == pytest.approx(50.0)  # 1e8 FLOP / 2 ms
    assert lin.gflops("torch-cuda") == pytest.approx(1000.0)
    # CPU backends against np.matmul's peak, the GPU against its own torch.matmul peak
    assert R.percent_of_peak(lin, "numpy", PEAK) == pytest.approx(50.0)
    assert R.percent_of_peak(lin, "torch-cpu", PEAK) == pytest.approx(100.0)
    assert R.percent_of_peak(lin, "torch-cuda", PEAK) == pytest.approx(10.0)
    assert _row(rows, "linear", 128).ratio() == pytest.approx(8.0)
    gen = _row(rows, "generate", 64)
    assert gen.gflops("numpy") is None and R.percent_of_peak(gen, "numpy", PEAK) is None


def test_summary_geometric_mean_and_order(synthetic_json):
    summaries = R.summarize(R.rows_from_json(R.load_json(synthetic_json)))
    assert [s.component for s in summaries] == [
        "linear",
        "generate",
        "softmax",
    ]  # NumPy slowest first
    lin = summaries[0]
    assert lin.ratio_by_mode["fwd"] == pytest.approx(math.sqrt(2.0 * 8.0))  # geometric mean = 4
    assert lin.worst_ratio == pytest.approx(8.0) and lin.worst_at == "fwd float32 T=128 C=8"
    assert lin.gpu_speedup == pytest.approx(10.0)
    assert summaries[2].ratio_by_mode["fwd+bwd"] == pytest.approx(0.5)


def test_report_files(report):
    out, status, printed = report
    assert status == 0
    assert "| linear | 4.00× |" in printed  # the summary table, NumPy / torch-CPU fwd
    text = (out / "README.md").read_text()
    for line in ("| fwd | float32 | 64 | 8 | 2 ms | 1 ms | 100 µs | 2.00× | 10.0× |",
                 "50 (50%)", "100 (100%)", "1,000 (10%)", "| softmax | — | 0.50× |",
                 "Test CPU 9000", "Test GPU", "np.matmul peak", "2% of the 2 CPUs"):  # fmt: skip
        assert line in text, line
    for name in ("time_vs_seq.png", "time_vs_width.png", "numpy_vs_torch.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000, name
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("component,mode,dtype,B,T,C,flops")
    assert len(csv_lines) == 1 + 4  # header + one line per (component, mode, dtype, size)


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="json_path must be a pytest-benchmark JSON file"):
        R.build_report(tmp_path / "missing.json", tmp_path)
    not_bench = tmp_path / "other.json"
    not_bench.write_text(json.dumps({"results": []}))
    with pytest.raises(ValueError, match="expected a 'benchmarks' list"):
        R.build_report(not_bench, tmp_path)
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(ValueError, match="json_path .* is not valid JSON"):
        R.load_json(broken)
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"benchmarks": []}))
    with pytest.raises(ValueError, match="no twinlm benchmarks"):
        R.build_report(empty, tmp_path)
    with pytest.raises(ValueError, match="bench_time must be > 0"):
        R.run_bench(bench_time=0, report_only=True)
    with pytest.raises(ValueError, match="threads must be ≥ 1"):
        R.run_bench(threads=0, report_only=True)


def test_blas_threads_found():
    n, source = R.numpy_blas_threads()
    assert isinstance(n, int) and n >= 1 and source


def _workloads():
    path = Path(__file__).resolve().parents[2] / "bench" / "workloads.py"
    spec = importlib.util.spec_from_file_location("bench_workloads", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_bench_entries_fit_registered_cases():
    """Each bench entry must give exactly the dims its OpCase samples with (else the suite fails)."""
    W = _workloads()
    for op in W.OPS:
        case = CASES_BY_NAME.get(op.case)
        if case is None:
            continue  # not registered yet: the benchmark skips with a TODO
        for T, C in W.sizes(full=True):
            assert set(op.dims(W.BATCH, T, C)) == set(case.dims), op.name
            fwd, bwd = op.flops(W.BATCH, T, C)
            assert fwd >= 0 and bwd > 0, op.name


def test_flop_counts_by_hand():
    """A few counts worked out independently of the helpers' composition."""
    W = _workloads()
    # linear, 10 rows, 3 -> 5, with bias: matmul 2·10·3·5 = 300, bias 10·5 = 50; backward two
    # matmuls of the same size (600) and the bias gradient's sums (50)
    assert W.linear_flops(10, 3, 5) == (350, 650)
    # attention with T = 1: q kᵀ (2d), scale (1), softmax (5), P v (2d) for one (batch, head)
    assert W.attention_flops(1, 1, 1, 4)[0] == 2 * 4 + 1 + 5 + 2 * 4
    # a GPT step is dominated by the output head: 6·rows·C·V of 2·rows·C·V·3
    cfg = W.gpt_config(64, 256)
    fwd, bwd = W.gpt_flops(2, 64, cfg)
    head = 6 * 2 * 64 * 256 * W.VOCAB
    assert head < fwd + bwd < 2 * head


def test_best_peak_keeps_the_better_measurement():
    start = {"n": 64, "repeats": 1, "numpy": {"float32": 90.0, "float64": 50.0}}
    end = {"n": 64, "repeats": 1, "numpy": {"float32": 100.0, "float64": 20.0},
           "torch-cpu": {"float32": 80.0}}  # fmt: skip
    merged = R.best_peak(start, None, end)
    assert merged["numpy"] == {"float32": 100.0, "float64": 50.0}
    assert merged["torch-cpu"] == {"float32": 80.0} and merged["n"] == 64


def _train_step(backend, seconds, peak_rss_mib, faults=None):
    """A training-step benchmark (bench/test_bench_train_step.py) at the 124M shape, 8e11 FLOP."""
    entry = _bench("train_step 124M", "step", "float32", 256, 768, backend, seconds, 8 * 10**11)
    entry["extra_info"].update(tokens=1024, peak_rss_mib=peak_rss_mib, rss_start_mib=512.0)
    if faults is not None:  # absent from runs before the column existed
        entry["extra_info"]["faults_per_step"] = faults
    return entry


def test_train_step_section_from_one_process_per_library(tmp_path):
    """`twinlm bench` merges its per-library processes; the report's training-step table."""
    numpy_run = {
        **_synthetic(),
        "benchmarks": [
            _train_step("numpy", 4.0, 3072.0, 12.0),
            _train_step("numpy-reference", 6.0, 4096.0, 45678.0),
        ],
        "twinlm": {"matmul_peak": {"numpy": {"float32": 200.0}}, "libraries": ["numpy"]},
    }
    torch_run = {**_synthetic(), "benchmarks": [_train_step("torch-builtin", 5.0, 3584.0, 1500.0)],
                 "twinlm": {"matmul_peak": {"torch-cpu": {"float32": 190.0}},
                            "libraries": ["torch"]}}  # fmt: skip
    merged = R.merge_runs([numpy_run, torch_run])
    assert merged["twinlm"]["matmul_peak"] == {
        "numpy": {"float32": 200.0},
        "torch-cpu": {"float32": 190.0},
    }
    assert merged["twinlm"]["libraries_per_process"] == 1
    path = tmp_path / "merged.json"
    path.write_text(json.dumps(merged))
    text = R.build_report(path, tmp_path / "out").read_text()
    # 8e11 FLOP in 4 s: 200 GFLOP/s, all of np.matmul's 200; 1024 tokens / 5 s = 205 tokens/s
    for line in (
        "| 124M (B=4, T=256) | NumPy (numpy_impl) | 4.00 | 256 | 200 (100%) | 3.00 GiB | 2.50 GiB | 0.86 | 12 | 1.00× |",
        "| 124M (B=4, T=256) | NumPy (reference ops) | 6.00 | 171 | 133 (67%) | 4.00 GiB | 3.50 GiB | 1.14 | 45,678 | 1.50× |",
        "| 124M (B=4, T=256) | torch built-ins | 5.00 | 205 | 160 (80%) | 3.50 GiB | 3.00 GiB | 1.00 | 1,500 | 1.25× |",
        "each in their own processes",
    ):
        assert line in text, line
    assert (tmp_path / "out" / "train_step.png").read_bytes()[:4] == b"\x89PNG"


def test_each_train_step_contender_runs_in_its_own_process():
    """Every other suite once per library; the training-step race once per contender, so that a
    peak RSS is not an earlier contender's; a -k keyword narrows every process."""
    runs = list(R._processes(None))
    assert [(s, lib) for s, lib, k in runs if k is None] == [
        (s, lib) for s in R.SUITES if s != "test_bench_train_step.py" for lib in R.LIBRARIES
    ]
    race = [(lib, k) for s, lib, k in runs if s == "test_bench_train_step.py"]
    assert race[:2] == [("numpy", "numpy and not numpy-reference"), ("numpy", "numpy-reference")]
    assert len(race) == len(set(race)) == 7
    assert ("torch", "torch-builtin") in race and all(lib == "torch" for lib, _ in race[2:])
    # each process's -k expression selects its own contender's test and no other (pytest matches
    # words as substrings: "numpy" alone would also select numpy-reference)
    from _pytest.mark.expression import Expression

    contenders = ["numpy", "numpy-reference", "torch-cpu", "torch-builtin", "torch-compile",
                  "torch-cuda", "torch-mps"]  # fmt: skip
    for contender, (_, expression) in zip(contenders, race, strict=True):
        chosen = [c for c in contenders if Expression.compile(expression).evaluate(
            lambda word, c=c: word.lower() in f"test_train_step[124m-{c}]")]  # fmt: skip
        assert chosen == [contender], (expression, chosen)
    keyed = list(R._processes("124M"))
    assert (
        keyed[0][2] == "(124M)"
        and ("test_bench_train_step.py", "torch", "(124M) and torch-cpu") in keyed
    )
