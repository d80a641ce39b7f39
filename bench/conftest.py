"""Options, thread matching and the extra JSON the report needs, for the suites in bench/.

Run with `twinlm bench` (suites + report), or directly:
    pytest bench/ --benchmark-enable --benchmark-autosave [--bench-full] [-k linear]
    pytest bench/ --benchmark-enable --benchmark-compare      # against the last saved run
(the project's addopts carry --benchmark-disable so the parity tests never time anything; without
--benchmark-enable every benchmark runs once, untimed, as a smoke test).
"""

from __future__ import annotations

import os
import sys
import time

import pytest
import torch

from bench import workloads
from twinlm.report.bench import best_peak, library_info, measure_matmul_peak, numpy_blas_threads

THREADS: dict = {}  # filled in pytest_configure; every benchmark's extra_info carries it


def pytest_addoption(parser):
    group = parser.getgroup("twinlm bench")
    group.addoption("--bench-full", action="store_true", help="the full size sweep (slow)")
    group.addoption(
        "--bench-time",
        type=float,
        default=0.3,
        help="seconds of timed rounds per benchmark (at least 3 rounds); default 0.3",
    )
    group.addoption(
        "--bench-progress", action="store_true", help="a tqdm progress bar on stderr (twinlm bench)"
    )
    group.addoption(
        "--bench-library",
        choices=sorted(LIBRARIES),
        default=None,
        help="only this library's benchmarks (numpy: the numpy backend; torch: every torch-*), so "
        "the other library's threads cannot steal its cores; twinlm bench runs one per process",
    )


# Which benchmark backends belong to which library (a process runs one: see --bench-library).
LIBRARIES = {"numpy": ("numpy",), "torch": ("torch-",)}  # the backends' name prefixes


def library_of(backend: str) -> str:
    return "numpy" if backend.startswith("numpy") else "torch"


def pytest_collection_modifyitems(config, items):
    """--bench-library: deselect the benchmarks of the other library."""
    library = config.getoption("bench_library")
    if library is None:
        return
    keep, drop = [], []
    for item in items:
        backend = getattr(item, "callspec", None) and item.callspec.params.get("backend")
        (keep if backend is None or library_of(backend) == library else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_configure(config):
    if config.getoption("bench_time") <= 0:
        raise pytest.UsageError(f"--bench-time must be > 0, got {config.getoption('bench_time')}")
    # Fair CPU comparison: torch gets as many threads as NumPy's BLAS has.
    blas, source = numpy_blas_threads()
    torch.set_num_threads(blas)
    THREADS.update(numpy_blas_threads=blas, torch_threads=torch.get_num_threads())
    THREADS["blas_threads_source"] = source
    config.stash[_LOAD_KEY] = _load_average()
    config.stash[_CPU_KEY] = _cpu_seconds()


def pytest_sessionstart(session):
    """The matmul peak before the benchmarks too (the report takes the better of start and end,
    so one disturbed measurement does not inflate every '% of peak')."""
    config = session.config
    saving = config.getoption("benchmark_json") or config.getoption("benchmark_autosave")
    enabled = config.getoption("benchmark_enable") or not config.getoption("benchmark_disable")
    if saving and enabled:
        config.stash[_START_PEAK_KEY] = measure_matmul_peak(libraries=_libraries(config))


def pytest_generate_tests(metafunc):
    full = metafunc.config.getoption("bench_full")
    for name, sweep in workloads.SIZE_FIXTURES.items():
        if name in metafunc.fixturenames:
            metafunc.parametrize(name, sweep(full), ids=lambda s: f"T{s[0]}-C{s[1]}")


@pytest.fixture
def bench_time(request) -> float:
    return request.config.getoption("bench_time")


@pytest.fixture
def threads() -> dict:
    return dict(THREADS)


def pytest_benchmark_update_machine_info(config, machine_info):
    """Library versions and thread counts: a change in these makes --benchmark-compare warn."""
    machine_info["twinlm"] = {**library_info(), **THREADS}


_PEAK_KEY = pytest.StashKey[dict]()
_LOAD_KEY = pytest.StashKey[float | None]()
_CPU_KEY = pytest.StashKey[tuple | None]()
_START_PEAK_KEY = pytest.StashKey[dict]()


def _libraries(config) -> tuple[str, ...]:
    library = config.getoption("bench_library")
    return (library,) if library else tuple(LIBRARIES)


def _load_average() -> float | None:
    """1-minute load average before the run: above ~0.5 per CPU, the machine was not idle."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _cpu_seconds() -> tuple[float, float, float] | None:
    """(wall clock, CPU seconds busy on the whole machine, CPU seconds of this process), Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    busy = (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")  # up to steal, without guests
    me = os.times()
    return time.monotonic(), busy, me.user + me.system


def _others_share(start) -> float | None:
    """Share of the machine's CPU capacity that other processes used while the suites ran."""
    end = _cpu_seconds()
    if start is None or end is None or end[0] <= start[0]:
        return None
    wall, busy, mine = (e - s for e, s in zip(end, start))
    return max(0.0, (busy - mine) / (wall * (os.cpu_count() or 1)))


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """np.matmul's peak GFLOP/s, measured in this run (once, even when two JSON files are saved),
    and the machine's load average before and after."""
    if _PEAK_KEY not in config.stash:
        if "bar" in _BAR:
            _BAR["bar"].set_postfix_str("measuring the np.matmul peak")
        config.stash[_PEAK_KEY] = best_peak(
            config.stash.get(_START_PEAK_KEY, None),
            measure_matmul_peak(libraries=_libraries(config)),
        )
    output_json["twinlm"] = {
        "matmul_peak": config.stash[_PEAK_KEY],
        "libraries": list(_libraries(config)),  # in this process (twinlm bench: one)
        "bench_full": config.getoption("bench_full"),
        "load_average_before": config.stash.get(_LOAD_KEY, None),
        "others_cpu_share": _others_share(config.stash.get(_CPU_KEY, None)),
        "cpu_count": os.cpu_count(),
    }


# ---- the progress bar of `twinlm bench` (pytest's own output goes to a log there) ------------------

_BAR: dict = {}


def pytest_collection_finish(session):
    if session.config.getoption("bench_progress"):
        from tqdm import tqdm

        _BAR["bar"] = tqdm(
            total=len(session.items), desc="twinlm bench", unit="bench", file=sys.stderr
        )


def pytest_runtest_logfinish(nodeid, location):
    bar = _BAR.get("bar")
    if bar is not None:
        bar.set_postfix_str(nodeid.split("[")[-1].rstrip("]")[:40], refresh=False)
        bar.update(1)


def pytest_sessionfinish(session, exitstatus):
    bar = _BAR.pop("bar", None)
    if bar is not None:
        bar.close()
