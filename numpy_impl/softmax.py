"""Softmax over the last axis, max-subtracted for stability.

Forward:   s_i = exp(x_i - m) / Σ_j exp(x_j - m),   m = max_j x_j  (m cancels; it only avoids overflow)
Backward:  ∂s_i/∂x_k = s_i (δ_ik - s_k), so
           dx_k = Σ_i dy_i s_i (δ_ik - s_k) = s_k (dy_k - Σ_i dy_i s_i)
           dx ← dx - s Σ_k dx_k    a no-op in exact arithmetic (Σ_k dx_k = 0: softmax ignores a
                                   constant added to x); in floating point it removes the rounding
                                   residual, see softmax_backward
"""

from __future__ import annotations

import numpy as np

from twinlm.shared.validate import require_softmax_input


def softmax_forward(x: np.ndarray):
    """Returns (s, cache) with s = softmax(x) along the last axis."""
    require_softmax_input(x)
    e = np.exp(x - x.max(axis=-1, keepdims=True))  # (..., n), largest entry is exp(0) = 1
    s = e / e.sum(axis=-1, keepdims=True)  # (..., n)
    return s, s


def softmax_backward(ds: np.ndarray, cache) -> np.ndarray:
    s = cache
    dx = s * (ds - (ds * s).sum(axis=-1, keepdims=True))  # (..., n)
    # Where one s_k ≈ 1, dy_k - Σ dy_i s_i cancels: dx_k is tiny but carries the sum's rounding
    # error (u |dy_k|), up to 100 % of dx in a row like x = [10, -10]. The other dx_j are accurate,
    # and Σ_k dx_k = 0 exactly, so subtracting s ⊙ (computed Σ_k dx_k) hands that error back to the
    # large s_k, leaving dx_k ≈ -Σ_{j≠k} dx_j. (torch autograd gets the same from the gradient
    # through the max subtracted in the forward.)
    dx -= s * dx.sum(axis=-1, keepdims=True)  # (..., n)
    return dx
