"""GELU, the fast path: numpy_impl/gelu.py's math (its docstring has it, and why σ(2u) and erfc)
with these differences in how it is computed:
- the forward evaluates the local derivative dy/dx = s + x s' (or Φ + x φ) along with y and
  caches only that, so the backward is one multiply, dx = dy ⊙ dy/dx, and x need not be kept;
- the forward's chain of passes runs on blocks of rows (numpy_impl/fast/blocks.py): each block's
  temporaries stay in cache, and the blocks are shared out among threads;
- `gelu_inplace` / `gelu_backward_inplace` write y over x and dx over dy, for a caller that owns
  them (the feed-forward's hidden layer, numpy_impl/fast/feedforward.py).
"""

from __future__ import annotations

import numpy as np
import scipy.special

from numpy_impl.fast.blocks import as_rows, for_blocks, rows_per_block
from numpy_impl.gelu import APPROXIMATIONS, INV_SQRT2, INV_SQRT_2PI, C, K
from twinlm.shared.validate import require_choice, require_float


def gelu_forward(x: np.ndarray, approximate: str = "tanh"):
    """y = GELU(x), elementwise. Returns (y, cache)."""
    require_float("x", x)
    require_choice("approximate", approximate, APPROXIMATIONS)
    return gelu_into(x, np.empty_like(x), np.empty_like(x), approximate)


def gelu_backward(dy: np.ndarray, cache) -> np.ndarray:
    (dydx,) = cache
    return dy * dydx


def gelu_inplace(x: np.ndarray, approximate: str = "tanh"):
    """gelu_forward writing y over x (for a caller that owns x and needs it no more: the FFN's
    hidden layer). Returns (y, cache) with y the same array as x."""
    return gelu_into(x, x, np.empty_like(x), approximate)


def gelu_backward_inplace(dy: np.ndarray, cache) -> np.ndarray:
    """gelu_backward writing dx over dy (for a caller that owns dy). Returns dy."""
    (dydx,) = cache
    dy *= dydx
    return dy


def gelu_into(x: np.ndarray, y: np.ndarray, dydx: np.ndarray, approximate: str, bias=None):
    """y ← GELU(x) (y may be x) and dydx ← dy/dx, block by block; returns (y, (dydx,)), the cache.
    bias (D,): x ← x + bias first, in the same pass (the linear layer's bias add, fused: the fast
    GPT step calls it so, with its workspace's arrays)."""
    xs, ys, ds = (as_rows(a) for a in (x, y, dydx))  # (rows, D)
    block = _gelu_tanh_rows if approximate == "tanh" else _gelu_erf_rows

    def rows(lo: int, hi: int) -> None:
        if bias is not None:
            xs[lo:hi] += bias
        block(xs[lo:hi], ys[lo:hi], ds[lo:hi])

    for_blocks(rows, xs.shape[0], rows_per_block(xs.shape[-1]))
    return y, (dydx,)


def _gelu_tanh_rows(x: np.ndarray, y: np.ndarray, d: np.ndarray) -> None:
    """y = x σ(2u) and d = dy/dx for a block of rows; y may be x (x is read before y is written)."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):  # saturation (reference)
        np.multiply(x, x, out=d)  # x²
        e = d * (-2.0 * C * K)
        e -= 2.0 * C
        e *= x  # -2u = -2c (x + k x³)
        np.exp(e, out=e)  # e = exp(-2u)
        s = e + 1.0
        np.reciprocal(s, out=s)  # s = σ(2u) = 1 / (1 + e)
        e *= s
        np.fmin(e, 1.0, out=e)  # σ(-2u) = e s; fmin turns inf · 0 (e = inf, s = 0) into 1
        d *= 6.0 * C * K
        d += 2.0 * C  # 2 du/dx = 2c (1 + 3k x²)
        d *= s
        d *= e
        d *= x  # x s' = x · 2 σ(2u) σ(-2u) du/dx
        d += s  # dy/dx = s + x s'
        np.multiply(x, s, out=y)  # y = x s, last: y may be x


def _gelu_erf_rows(x: np.ndarray, y: np.ndarray, d: np.ndarray) -> None:
    """y = x Φ(x) and d = dy/dx for a block of rows; y may be x."""
    with np.errstate(under="ignore"):  # exp(-x²/2) → 0 for |x| ≳ 38: the right answer
        phi = scipy.special.erfc(-INV_SQRT2 * x)
        phi *= 0.5  # Φ(x) = ½ erfc(-x/√2)
        np.multiply(x, x, out=d)
        d *= -0.5
        np.exp(d, out=d)
        d *= INV_SQRT_2PI  # φ(x)
        d *= x
        d += phi  # dy/dx = Φ + x φ
        np.multiply(x, phi, out=y)
