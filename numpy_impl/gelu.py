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
"""

from __future__ import annotations

import math

import numpy as np
import scipy.special

from twinlm.shared.validate import require_choice, require_float

APPROXIMATIONS = ("tanh", "none")
C = math.sqrt(2.0 / math.pi)  # Python floats: a NumPy float64 scalar would upcast float32 x
K = 0.044715
INV_SQRT2 = 1.0 / math.sqrt(2.0)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def gelu_forward(x: np.ndarray, approximate: str = "tanh"):
    """y = GELU(x), elementwise. Returns (y, cache)."""
    require_float("x", x)
    require_choice("approximate", approximate, APPROXIMATIONS)
    if approximate == "none":
        cdf = 0.5 * scipy.special.erfc(-INV_SQRT2 * x)  # (...) Φ(x) = ½ erfc(-x/√2)
        return x * cdf, (x, cdf, None)
    u = C * (x + K * (x * x * x))  # (...)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):  # saturation (docstring)
        e = np.exp(-2.0 * u)  # (...) e^(-2u): 0 or inf where |x| is large
        s = 1.0 / (1.0 + e)  # (...) σ(2u)
        s_neg = np.fmin(e * s, 1.0)  # (...) σ(-2u) = e s; fmin takes inf · 0 = nan as 1
    return x * s, (x, s, s_neg)


def gelu_backward(dy: np.ndarray, cache) -> np.ndarray:
    x, s, s_neg = cache
    if s_neg is None:  # approximate="none": s is Φ
        with np.errstate(under="ignore"):  # exp(-x²/2) → 0 for |x| ≳ 38: the right answer
            pdf = np.exp(-0.5 * (x * x)) * INV_SQRT_2PI  # (...) φ(x)
        return dy * (s + x * pdf)
    ds = 2.0 * s * s_neg * (C * (1.0 + 3.0 * K * (x * x)))  # (...) s' = 2 σ(2u) σ(-2u) du/dx
    return dy * (s + x * ds)
