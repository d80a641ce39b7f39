"""Facts about this machine for `twinlm bench` (see twinlm/report/bench.py).

How many threads NumPy's BLAS uses and which BLAS it is, the library versions and GPU for the
report header, and the matmul peak (GFLOP/s of a large square GEMM, NumPy, torch on the CPU and on
the GPU) that achieved GFLOP/s are measured against. bench/conftest.py stores these in the JSON.
"""

from __future__ import annotations

import ctypes
import math
import os
from pathlib import Path
from time import perf_counter

import numpy as np


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


def measure_matmul_peak(
    n: int = 2048, repeats: int = 4, libraries: tuple[str, ...] = ("numpy", "torch")
) -> dict:
    """GFLOP/s of an (n, n) @ (n, n) product, best of `repeats`, float32 and float64:
    `np.matmul` (the reference for CPU backends), `torch.matmul` on the CPU with its current
    threads, and on the GPU when there is one; of the `libraries` asked for (the others' threads
    stay idle, so a process benchmarking one library measures its peak undisturbed)."""
    if n < 1 or repeats < 1:
        raise ValueError(f"n and repeats must be ≥ 1, got n={n}, repeats={repeats}")
    flops = 2 * n**3
    peak: dict = {"n": n, "repeats": repeats}
    rng = np.random.default_rng(0)
    for dtype in ("float32", "float64"):
        a = rng.standard_normal((n, n)).astype(dtype)
        b = rng.standard_normal((n, n)).astype(dtype)
        matmuls = {"numpy": lambda a=a, b=b: a @ b} if "numpy" in libraries else {}
        if "torch" in libraries:
            matmuls |= _torch_matmuls(a, b)
        for backend, fn in matmuls.items():
            peak.setdefault(backend, {})[dtype] = flops / _best_seconds(fn, repeats) / 1e9
    return peak


def _torch_matmuls(a: np.ndarray, b: np.ndarray) -> dict:
    """a @ b in torch on the CPU, and on the GPU when there is one (synchronized)."""
    import torch

    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    matmuls = {"torch-cpu": lambda: ta @ tb}
    if torch.cuda.is_available():
        ga, gb = ta.cuda(), tb.cuda()

        def gpu_matmul():
            ga @ gb
            torch.cuda.synchronize()

        matmuls["torch-cuda"] = gpu_matmul
    return matmuls


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
