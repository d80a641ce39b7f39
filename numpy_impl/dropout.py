"""Inverted dropout with a caller-drawn mask (so both backends can be handed the same mask).

Forward:   y = x ⊙ m / (1 - p)            x (...), m (...) of 0/1, broadcastable to x's shape
Backward:  dx = dy ⊙ m / (1 - p)          (...)   the same mask and scale: y is linear in x

Dividing the kept activations by 1 - p keeps E[y] = x, so evaluation (p = 0, no mask) needs no
rescaling. The mask is typically `rng.random(x.shape) >= p` from a numpy.random.Generator.

`maybe_dropout_forward(x, mask, p)` is the form the blocks and models use: dropout where the caller
gave a mask, the identity (y = x, dx = dy) where it gave none (mask None).
"""

from __future__ import annotations

import numpy as np

from twinlm.shared.validate import require_broadcastable, require_float, require_probability


def dropout_forward(x: np.ndarray, mask: np.ndarray, p: float):
    """y = x * mask / (1 - p). Returns (y, cache)."""
    require_float("x", x)
    require_probability("p", p)
    require_broadcastable("mask", mask, x.shape)
    # 0/1 in x's dtype: an int64 or float64 mask would upcast float32 x
    keep = mask.astype(x.dtype, copy=False)  # (...)
    scale = 1.0 / (1.0 - float(p))  # a Python float, so float32 stays float32
    y = x * keep  # (...)
    y *= scale
    return y, (keep, scale)


def dropout_backward(dy: np.ndarray, cache) -> np.ndarray:
    keep, scale = cache
    dx = dy * keep  # (...)
    dx *= scale
    return dx


def maybe_dropout_forward(x: np.ndarray, mask: np.ndarray | None, p: float):
    """dropout_forward(x, mask, p) when a mask is given; the identity (cache None) when not."""
    return (x, None) if mask is None else dropout_forward(x, mask, p)


def maybe_dropout_backward(dy: np.ndarray, cache) -> np.ndarray:
    return dy if cache is None else dropout_backward(dy, cache)
