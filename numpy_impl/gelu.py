"""GELU, y = x Φ(x): with the tanh approximation GPT-2 and the book use, or exactly (Φ via erf).

approximate="tanh"   (the book: y = ½ x (1 + tanh u))
  Forward:   u = c (x + k x³),  c = √(2/π), k = 0.044715              (...)
             s = ½ (1 + tanh u) = σ(2u) = 1 / (1 + e),  e = exp(-2u)    (...)
             y = x s
  Backward:  s' = ds/dx = 2 σ(2u) σ(-2u) du/dx,  du/dx = c (1 + 3k x²)     (σ' = σ (1 - σ))
             dx = dy ⊙ (s + x s')
             σ(-2u) = 1 - s is evaluated as e s = e / (1 + e): 1 - s would cancel where s ≈ 1.
approximate="none"
  Forward:   Φ = ½ (1 + erf(x / √2)) = ½ erfc(-x / √2)                 (...)
             y = x Φ
  Backward:  Φ' = φ(x) = exp(-x²/2) / √(2π)
             dx = dy ⊙ (Φ + x φ)

Why σ(2u) and erfc instead of the book's 1 + tanh u and 1 + erf: for negative x, tanh u and
erf(x/√2) approach -1 and adding 1 cancels their leading digits (near x = -4 in float32, 1 + tanh u
keeps only 2 to 3 of the 7 digits), while σ and erfc return the small value to full precision.
Saturation (|x| in the hundreds): e is 0 or inf, so s = 1/(1 + e) is exactly 1 or 0, y is x or 0
and dy/dx is 1 or 0; where e = inf, e s is inf · 0 and taken as its limit σ(-2u) = 1. φ underflows
to 0, its correctly rounded value. None of these is reported as a floating-point error.

How it is computed. The forward evaluates the local derivative dy/dx = s + x s' (or Φ + x φ)
along with y and caches only that, so the backward is one multiply, dx = dy ⊙ dy/dx, and x need not
be kept. The forward runs its chain of passes on blocks of ROWS rows (twinlm/shared/blocks.py):
each block's temporaries stay in cache, and two threads take half the blocks each.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.special

from twinlm.shared.blocks import as_rows, for_blocks, rows_per_block
from twinlm.shared.validate import require_choice, require_float

APPROXIMATIONS = ("tanh", "none")
_C = math.sqrt(2.0 / math.pi)  # Python floats: a NumPy float64 scalar would upcast float32 x
_K = 0.044715
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def gelu_forward(x: np.ndarray, approximate: str = "tanh"):
    """y = GELU(x), elementwise. Returns (y, cache)."""
    require_float("x", x)
    require_choice("approximate", approximate, APPROXIMATIONS)
    return _gelu(x, np.empty_like(x), approximate)


def gelu_backward(dy: np.ndarray, cache) -> np.ndarray:
    (dydx,) = cache
    return dy * dydx


def gelu_inplace(x: np.ndarray, approximate: str = "tanh"):
    """gelu_forward writing y over x (for a caller that owns x and needs it no more: the FFN's
    hidden layer). Returns (y, cache) with y the same array as x."""
    return _gelu(x, x, approximate)


def gelu_backward_inplace(dy: np.ndarray, cache) -> np.ndarray:
    """gelu_backward writing dx over dy (for a caller that owns dy). Returns dy."""
    (dydx,) = cache
    dy *= dydx
    return dy


def _gelu(x: np.ndarray, y: np.ndarray, approximate: str):
    """y ← GELU(x) (y may be x) and the cache (dy/dx,), block by block."""
    dydx = np.empty_like(x)
    xs, ys, ds = (as_rows(a) for a in (x, y, dydx))  # (rows, D)
    block = _gelu_tanh_rows if approximate == "tanh" else _gelu_erf_rows

    def rows(lo: int, hi: int) -> None:
        block(xs[lo:hi], ys[lo:hi], ds[lo:hi])

    for_blocks(rows, xs.shape[0], rows_per_block(xs.shape[-1]))
    return y, (dydx,)


def _gelu_tanh_rows(x: np.ndarray, y: np.ndarray, d: np.ndarray) -> None:
    """y = x σ(2u) and d = dy/dx for a block of rows; y may be x (x is read before y is written)."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):  # saturation, see above
        np.multiply(x, x, out=d)  # x²
        e = d * (-2.0 * _C * _K)
        e -= 2.0 * _C
        e *= x  # -2u = -2c (x + k x³)
        np.exp(e, out=e)  # e = exp(-2u)
        s = e + 1.0
        np.reciprocal(s, out=s)  # s = σ(2u) = 1 / (1 + e)
        e *= s
        np.fmin(e, 1.0, out=e)  # σ(-2u) = e s; fmin turns inf · 0 (e = inf, s = 0) into 1
        d *= 6.0 * _C * _K
        d += 2.0 * _C  # 2 du/dx = 2c (1 + 3k x²)
        d *= s
        d *= e
        d *= x  # x s' = x · 2 σ(2u) σ(-2u) du/dx
        d += s  # dy/dx = s + x s'
        np.multiply(x, s, out=y)  # y = x s, last: y may be x


def _gelu_erf_rows(x: np.ndarray, y: np.ndarray, d: np.ndarray) -> None:
    """y = x Φ(x) and d = dy/dx for a block of rows; y may be x."""
    with np.errstate(under="ignore"):  # exp(-x²/2) → 0 for |x| ≳ 38: the right answer
        phi = scipy.special.erfc(-_INV_SQRT2 * x)
        phi *= 0.5  # Φ(x) = ½ erfc(-x/√2)
        np.multiply(x, x, out=d)
        d *= -0.5
        np.exp(d, out=d)
        d *= _INV_SQRT_2PI  # φ(x)
        d *= x
        d += phi  # dy/dx = Φ + x φ
        np.multiply(x, phi, out=y)
