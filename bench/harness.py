"""Backends, input preparation and the timing loop shared by the benchmark suites.

Fair timing, the same for every backend:
- the same inputs: sampled once in NumPy, then handed to torch (`to_tensors`) before timing starts;
- torch's intra-op threads set to NumPy's BLAS threads (bench/conftest.py), both in the report;
- a warm-up call first (lazy initialisation, allocator, caches), never timed;
- torch forward-only calls run under `torch.no_grad()` (inference: no graph is recorded); NumPy's
  forward always keeps its cache, which is only references to arrays it computed anyway;
- forward+backward asks torch for exactly the gradients the NumPy backward returns, with the same
  random upstream gradient, via `torch.autograd.grad` (no `.grad` accumulation);
- on a GPU the timed function ends with a synchronize, so it measures the work, not the launch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from time import perf_counter

import numpy as np
import pytest
import torch

BACKENDS = ("numpy", "torch-cpu", "torch-cuda", "torch-mps")
DEVICES = {"numpy": None, "torch-cpu": "cpu", "torch-cuda": "cuda", "torch-mps": "mps"}

MIN_ROUNDS = 3
MAX_ROUNDS = 100
MIN_ROUND_S = 2e-3  # fast calls are looped so that one round lasts ≥ 2 ms (timer resolution)


def device_or_skip(backend: str, dtype: str) -> str | None:
    """The torch device for `backend` (None for NumPy); skips the test when it is absent here."""
    device = DEVICES[backend]
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("torch-cuda: no CUDA device here")
    if device == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            pytest.skip("torch-mps: no MPS device here")
        if dtype == "float64":
            pytest.skip("torch-mps: MPS has no float64")
    return device


def synchronizer(device: str | None) -> Callable[[], None]:
    """Waits for queued GPU work, so a timed call includes it; a no-op on the CPU."""
    if device == "cuda":
        return torch.cuda.synchronize
    if device == "mps":
        return torch.mps.synchronize
    return lambda: None


def to_tensors(
    arrays: dict[str, np.ndarray | None], device: str, requires_grad: tuple[str, ...] = ()
) -> dict[str, torch.Tensor | None]:
    """The same numbers as torch tensors on `device`. 0-d arrays (a head count riding along with
    the inputs) stay on the CPU, so reading them back never waits for the GPU."""
    tensors: dict[str, torch.Tensor | None] = {}
    for name, a in arrays.items():
        if a is None:
            tensors[name] = None
            continue
        t = torch.from_numpy(np.ascontiguousarray(a))
        if t.ndim > 0:
            t = t.to(device)
        if name in requires_grad and t.is_floating_point():
            t.requires_grad_(True)
        tensors[name] = t
    return tensors


def time_call(benchmark, fn: Callable[[], object], budget_s: float) -> None:
    """Time `fn` with pytest-benchmark: a warm-up call, then rounds filling about `budget_s`.

    With benchmarks disabled (the project's default addopts) `fn` runs once, as a smoke test.
    """
    if benchmark.disabled:
        benchmark(fn)
        return
    start = perf_counter()
    fn()  # warm-up
    per_call = perf_counter() - start
    calibration_end = perf_counter() + min(0.1, budget_s / 3)
    for _ in range(5):  # best of a few warm calls: one disturbed call must not set the plan
        if perf_counter() + per_call > calibration_end:
            break
        start = perf_counter()
        fn()
        per_call = min(per_call, perf_counter() - start)
    per_call = max(per_call, 1e-7)
    iterations = max(1, math.ceil(MIN_ROUND_S / per_call))
    rounds = int(budget_s / (per_call * iterations))
    rounds = min(MAX_ROUNDS, max(MIN_ROUNDS, rounds))
    benchmark.pedantic(fn, rounds=rounds, iterations=iterations, warmup_rounds=0)


def describe(benchmark, *, component: str, mode: str, dtype: str, backend: str, B: int, T: int,
             C: int, flops: int | None, shape: str, threads: dict) -> None:  # fmt: skip
    """Group the backends of one (component, mode, dtype, size) together and record what the
    report pivots on."""
    benchmark.group = f"{component} {mode} {dtype} T={T} C={C}"
    benchmark.extra_info.update(
        component=component, mode=mode, dtype=dtype, backend=backend, B=B, T=T, C=C,
        flops=flops, shape=shape, **threads,
    )  # fmt: skip


# ---- memory: the peak resident set size and the page faults of one benchmark ----------------------


def minor_faults() -> int:
    """The process's minor page faults so far (a fresh page handed over by the kernel, which
    zeroes it: what a step that allocates its large arrays afresh pays every step)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def counting_faults(fn: Callable[[], object]) -> tuple[Callable[[], None], list[int]]:
    """(fn wrapped, the minor page faults of each of its calls, appended as they run)."""
    counts: list[int] = []

    def wrapped() -> None:
        start = minor_faults()
        fn()
        counts.append(minor_faults() - start)

    return wrapped, counts


def faults_per_call(counts: list[int]) -> float | None:
    """The median page faults of a call after the first (the warm-up allocates what later calls
    may reuse); None without such calls."""
    later = sorted(counts[1:])
    return None if not later else float(later[len(later) // 2])


def _status_mib(field: str) -> float | None:
    """A VmRSS / VmHWM line of /proc/self/status in MiB (Linux), else None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak_rss() -> float | None:
    """Start a new peak-RSS measurement: the kernel's high-water mark (VmHWM) is set back to the
    current RSS (Linux ≥ 4.0, /proc/self/clear_refs "5"). Returns that RSS in MiB, None where the
    reset is not possible (then peak_rss_mib would report an earlier benchmark's peak)."""
    import gc

    gc.collect()  # an earlier benchmark's arrays go first
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    return _status_mib("VmRSS")


def peak_rss_mib() -> float | None:
    """The process's peak RSS since reset_peak_rss, in MiB."""
    return _status_mib("VmHWM")
