"""GELU, y = x Φ(x): with the tanh approximation GPT-2 and the book use, or exactly (Φ via erf).

approximate="tanh"   (the book: y = ½ x (1 + tanh u))
  Forward:   u = c (x + k x³),  c = √(2/π), k = 0.044715              (...)
             s = ½ (1 + tanh u) = σ(2u) = 1 / (1 + e^(-2u))             (...)
             y = x s
  Backward:  s' = ds/dx = 2 σ(2u) σ(-2u) du/dx,  du/dx = c (1 + 3k x²)     (σ' = σ (1 - σ))
             dx = dy ⊙ (s + x s')
             σ(-2u) = 1 - s is evaluated as σ(-2u): 1 - s would cancel where s ≈ 1.
approximate="none"
  Forward:   Φ = ½ (1 + erf(x / √2)) = ½ erfc(-x / √2)                 (...)
             y = x Φ
  Backward:  Φ' = φ(x) = exp(-x²/2) / √(2π)
             dx = dy ⊙ (Φ + x φ)

Why σ(2u) and erfc instead of the book's 1 + tanh u and 1 + erf: for negative x, tanh u and
erf(x/√2) approach -1 and adding 1 cancels their leading digits (near x = -4 in float32, 1 + tanh u
keeps only 2 to 3 of the 7 digits), while σ and erfc return the small value to full precision.
Saturation (|x| in the hundreds): σ, erfc and exp round to exactly 0 or 1 and nothing overflows, so
y is x or 0 and dy/dx is 1 or 0. Only φ underflows to 0, its correctly rounded value, and that
underflow is not reported.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.special

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
    if approximate == "tanh":
        two_u = (2.0 * _C) * (x + _K * (x * x * x))  # (...) 2u
        s = scipy.special.expit(two_u, out=two_u)  # (...) σ(2u) = ½ (1 + tanh u)
    else:
        s = 0.5 * scipy.special.erfc(-_INV_SQRT2 * x)  # (...) Φ(x) = ½ (1 + erf(x/√2))
    return x * s, (approximate, x, s)


def gelu_backward(dy: np.ndarray, cache) -> np.ndarray:
    approximate, x, s = cache  # s is σ(2u) or Φ(x)
    if approximate == "tanh":
        x2 = x * x  # (...)
        minus_2u = (-2.0 * _C) * (x + _K * (x2 * x))  # (...) recomputed, not cached: 4 multiplies
        # σ(-2u) = 1 - s, evaluated without the cancellation of 1 - s where s ≈ 1
        s_minus = scipy.special.expit(minus_2u, out=minus_2u)  # (...)
        du_dx = _C * (1.0 + 3.0 * _K * x2)  # (...)
        ds_dx = 2.0 * s * s_minus * du_dx  # (...) σ'(z) = σ(z) σ(-z)
    else:
        with np.errstate(under="ignore"):  # exp(-x²/2) → 0 for |x| ≳ 38: the right answer
            ds_dx = _INV_SQRT_2PI * np.exp(-0.5 * (x * x))  # (...) φ(x)
    return dy * (s + x * ds_dx)
