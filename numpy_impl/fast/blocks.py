"""Row blocks, and a few threads, for the fast path's chains of elementwise passes (GELU, AdamW, …).

A chain of NumPy calls over a large array streams the whole array through memory once per call.
Run the chain on one block of rows at a time, small enough to stay in the core's cache, and
memory sees each array once. NumPy releases the GIL inside its loops, so blocks handed to two
threads run on two cores at once.

`for_blocks(fn, n, block)` calls fn(lo, hi) over [0, n) in blocks of `block` rows, split into one
contiguous run per thread; `as_rows(a)` views an array (..., D) as those rows;
`rows_per_block(width)` is the block of rows of `width` elements that holds about BLOCK_ELEMENTS.
fn must only write rows lo .. hi-1 of its outputs, must not call BLAS (a BLAS call uses every core
already), and sets its own np.errstate: NumPy's floating-point error state is per thread.
THREADS is TWINLM_THREADS, else OPENBLAS_NUM_THREADS / OMP_NUM_THREADS (so `OMP_NUM_THREADS=1`
keeps everything on one core, as `make demo` wants), else the usable CPUs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor


def _default_threads() -> int:
    for var in ("TWINLM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").split(",")[0].strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


THREADS = _default_threads()
# Elements per block: larger than a core's L2 would suggest, because each NumPy call's Python
# overhead (under the GIL) rivals its work on a small block; much larger gains nothing.
BLOCK_ELEMENTS = 1 << 17
_pools: dict[int, ThreadPoolExecutor] = {}


def for_blocks(fn: Callable[[int, int], object], n: int, block: int) -> None:
    """fn(lo, hi) for the blocks [lo, hi) of `block` rows covering [0, n), on up to THREADS threads
    (each thread a contiguous run of blocks); returns when all are done, raising fn's error."""
    block = max(1, block)
    runs = min(THREADS, math.ceil(n / block))
    if runs <= 1:
        _run(fn, 0, n, block)
        return
    per_run = math.ceil(math.ceil(n / block) / runs) * block  # whole blocks per run
    pool = _pools.get(runs)
    if pool is None:
        pool = _pools[runs] = ThreadPoolExecutor(runs, thread_name_prefix="twinlm-blocks")
    futures = [
        pool.submit(_run, fn, lo, min(lo + per_run, n), block) for lo in range(0, n, per_run)
    ]
    for f in futures:
        f.result()


def as_rows(a):
    """a (..., D) as a (rows, D) array, a view when a is contiguous (a 0-d a: (1, 1)); rows are
    what for_blocks splits."""
    if a.ndim == 0:
        return a.reshape(1, 1)
    return a.reshape(math.prod(a.shape[:-1]), a.shape[-1])


def rows_per_block(width: int) -> int:
    """How many rows of `width` elements make a block of about BLOCK_ELEMENTS (at least one)."""
    return max(1, BLOCK_ELEMENTS // max(1, width))


def _run(fn: Callable[[int, int], object], lo: int, hi: int, block: int) -> None:
    for start in range(lo, hi, block):
        fn(start, min(start + block, hi))
