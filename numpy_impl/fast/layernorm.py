"""LayerNorm, the fast path: numpy_impl/layernorm.py's arithmetic (its docstring has the math)
run on a block of rows at a time (numpy_impl/fast/blocks.py), so a row's temporaries stay in cache,
with the blocks shared out among threads and every pass written into its output in place. The
cache holds x̂ and σ on the (rows, D) layout.
"""

from __future__ import annotations

import numpy as np

from numpy_impl.fast.blocks import as_rows, for_blocks, rows_per_block
from twinlm.shared.validate import require_layernorm_inputs


def layernorm_forward(x: np.ndarray, scale: np.ndarray, shift: np.ndarray, eps: float = 1e-5):
    """y = (x - mean) / sqrt(var + eps) * scale + shift over the last axis. Returns (y, cache)."""
    require_layernorm_inputs(x, scale, shift, eps)
    x2 = as_rows(x)  # (rows, D)
    y, xhat = np.empty_like(x2), np.empty_like(x2)  # (rows, D)
    std = np.empty((x2.shape[0], 1), x2.dtype)  # (rows, 1)
    layernorm_into(x2, scale, shift, y, xhat, std, eps)
    return y.reshape(x.shape), (xhat, std, scale)


def layernorm_into(x2, scale, shift, y, xhat, std, eps: float = 1e-5) -> None:
    """layernorm_forward on rows x2 (rows, D) into the caller's y, x̂ (rows, D) and σ (rows, 1)
    (the workspace's, numpy_impl/fast/gpt.py); the cache is then (xhat, std, scale)."""
    eps = float(eps)  # a Python float: float32 stays float32

    def rows(lo: int, hi: int) -> None:
        xr, yr, xc = x2[lo:hi], y[lo:hi], xhat[lo:hi]
        # x - μ in two passes, as the reference centres (numpy_impl/layernorm.py says why)
        np.subtract(xr, xr.mean(axis=-1, keepdims=True), out=xc)  # d = x - μ̂
        xc -= xc.mean(axis=-1, keepdims=True)  # d - mean(d) = x - μ
        var = np.multiply(xc, xc, out=yr).mean(axis=-1, keepdims=True)  # biased: divides by D
        np.sqrt(var + eps, out=std[lo:hi])  # σ
        xc /= std[lo:hi]  # x̂
        np.multiply(xc, scale, out=yr)
        yr += shift  # y = x̂ ⊙ scale + shift

    for_blocks(rows, x2.shape[0], rows_per_block(x2.shape[1]))


def layernorm_backward(dy: np.ndarray, cache):
    """Returns (dx, dscale, dshift)."""
    xhat, std, scale = cache
    dy2 = as_rows(dy)  # (rows, D)
    dx = np.empty_like(dy2)  # (rows, D)
    dscale, dshift = np.empty_like(scale), np.empty_like(scale)  # (D,)
    layernorm_backward_into(dy2, cache, dx, dscale, dshift)
    return dx.reshape(dy.shape), dscale, dshift


def layernorm_backward_into(dy2, cache, dx, dscale, dshift, scratch=None) -> None:
    """layernorm_backward on rows dy2 (rows, D) into the caller's dx (rows, D), dscale and dshift
    (D,); scratch: None or a (rows, D) array for g ⊙ x̂ (else one per block)."""
    xhat, std, scale = cache
    xhat, std = as_rows(xhat), as_rows(std)  # (rows, D), (rows, 1)

    def rows(lo: int, hi: int) -> None:
        g = np.multiply(dy2[lo:hi], scale, out=dx[lo:hi])  # g = dy ⊙ scale, in dx's rows
        tmp = np.multiply(g, xhat[lo:hi], out=None if scratch is None else scratch[lo:hi])
        mean_gx = tmp.mean(axis=-1, keepdims=True)  # mean(g ⊙ x̂)
        g -= g.mean(axis=-1, keepdims=True)  # g - mean(g)
        g -= np.multiply(xhat[lo:hi], mean_gx, out=tmp)  # - x̂ mean(g ⊙ x̂)
        g /= std[lo:hi]  # dx

    for_blocks(rows, dy2.shape[0], rows_per_block(dy2.shape[1]))
    np.einsum("rd,rd->d", dy2, xhat, out=dscale)  # (D,)
    np.sum(dy2, axis=0, out=dshift)  # (D,)
