"""SiLU (swish), y = x σ(x), the activation inside Qwen3's SwiGLU feed-forward.

Forward:   s = σ(x) = 1 / (1 + e^(-x))        (...)
           y = x s
Backward:  dy/dx = s + x σ'(x) = s + x s σ(-x) = s (1 + x σ(-x))      (σ' = σ(x) σ(-x))
           dx = dy ⊙ s (1 + x σ(-x))
σ(-x) = 1 - s is evaluated as σ(-x): 1 - s cancels where s ≈ 1 (at x = 17 in float32 s rounds to
1 and 1 - s to 0, while x σ(-x) = 7e-7 is still six float32 ulps of the derivative).
Saturation: for |x| in the hundreds σ rounds to exactly 0 or 1 and nothing overflows, so y is x or 0
and dy/dx is 1 or 0 (x σ(-x) → 0 for large x, and s = 0 for very negative x).
"""

from __future__ import annotations

import numpy as np
import scipy.special

from twinlm.shared.validate import require_float


def silu_forward(x: np.ndarray):
    """y = x σ(x), elementwise. Returns (y, cache)."""
    require_float("x", x)
    s = scipy.special.expit(x)  # (...) σ(x)
    return x * s, (x, s)


def silu_backward(dy: np.ndarray, cache) -> np.ndarray:
    x, s = cache
    s_minus = scipy.special.expit(-x)  # (...) σ(-x) = 1 - s without the cancellation
    s_minus *= x  # x σ(-x)
    s_minus += 1.0
    s_minus *= s  # s (1 + x σ(-x)) = dy/dx
    return dy * s_minus
