"""Linear (fully connected) layer, weight laid out (out, in) like torch.nn.Linear.

Forward:   y = x Wᵀ + b                     x (..., in), W (out, in), b (out,)
Backward:  dx = dy W                        (..., in)
           dW = Σ_rows dyᵀ x                (out, in)   rows = every leading index of x
           db = Σ_rows dy                   (out,)

Every product is taken on 2-D (rows, features) views: NumPy's matmul of a 3-D array with a 2-D one
can miss BLAS, and then runs many times slower (a (2, 64, 50257) @ (50257, 64) product, say).
"""

from __future__ import annotations

import numpy as np

from twinlm.shared.validate import require_linear_inputs


def linear_forward(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None):
    """y = x @ weight.T + bias. Returns (y, cache)."""
    require_linear_inputs(x, weight, bias)
    y = (x.reshape(-1, x.shape[-1]) @ weight.T).reshape(
        *x.shape[:-1], weight.shape[0]
    )  # (..., out)
    if bias is not None:
        y += bias
    return y, (x, weight, bias is not None)


def linear_backward(dy: np.ndarray, cache):
    """Returns (dx, dweight, dbias); dbias is None when the forward had no bias."""
    x, weight, has_bias = cache
    dy2 = dy.reshape(-1, dy.shape[-1])  # (rows, out)
    x2 = x.reshape(-1, x.shape[-1])  # (rows, in)
    dx = (dy2 @ weight).reshape(x.shape)  # (..., in)
    dweight = dy2.T @ x2  # (out, in)
    dbias = dy2.sum(axis=0) if has_bias else None  # (out,)
    return dx, dweight, dbias
