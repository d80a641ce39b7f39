"""Softmax over the last axis, max-subtracted for stability.

Forward:   s_i = exp(x_i - m) / Σ_j exp(x_j - m),   m = max_j x_j  (m cancels; it only avoids overflow)
Backward:  ∂s_i/∂x_k = s_i (δ_ik - s_k), so
           dx_k = Σ_i dy_i s_i (δ_ik - s_k) = s_k (dy_k - Σ_i dy_i s_i)
"""

from __future__ import annotations

import numpy as np


def softmax_forward(x: np.ndarray):
    """Returns (s, cache) with s = softmax(x) along the last axis."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))  # (..., n), largest entry is exp(0) = 1
    s = e / e.sum(axis=-1, keepdims=True)  # (..., n)
    return s, s


def softmax_backward(ds: np.ndarray, cache) -> np.ndarray:
    s = cache
    return s * (ds - (ds * s).sum(axis=-1, keepdims=True))  # (..., n)
