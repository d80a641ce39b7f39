"""The transformer's position-wise feed-forward network: Linear → GELU (tanh) → Linear.

Forward, x (..., D), hidden size Dh = whatever layers.0.weight says (the book and GPT-2: 4·D):
    h = x W₀ᵀ + b₀          (..., Dh)    W₀ = layers.0.weight (Dh, D), b₀ = layers.0.bias (Dh,)
    g = GELU(h)             (..., Dh)    tanh approximation, like GPT-2
    y = g W₂ᵀ + b₂          (..., D)     W₂ = layers.2.weight (D, Dh), b₂ = layers.2.bias (D,)
Backward, the chain in reverse:
    dg, dW₂, db₂ = linear backward of dy
    dh = dg ⊙ GELU'(h)
    dx, dW₀, db₀ = linear backward of dh
The keys are the book's `FeedForward` state_dict keys (layers.1 is the parameterless GELU).
"""

from __future__ import annotations

import numpy as np

from numpy_impl.gelu import gelu_backward, gelu_forward
from numpy_impl.linear import linear_backward, linear_forward
from twinlm.shared.validate import FEEDFORWARD_KEYS, require_feedforward_inputs


def feedforward_forward(x: np.ndarray, params: dict[str, np.ndarray]):
    """y = Linear₂(GELU(Linear₀(x))). x (..., D). Returns (y (..., D), cache)."""
    return feedforward_with(gelu_forward, x, params)


def feedforward_backward(dy: np.ndarray, cache):
    """Returns (dx, dparams) with dparams keyed like params."""
    return feedforward_backward_with(gelu_backward, dy, cache)


def feedforward_with(gelu, x: np.ndarray, params: dict[str, np.ndarray]):
    """feedforward_forward with `gelu(h, approximate)` for the activation: this file's, or the fast
    path's, which writes over h (numpy_impl/fast/feedforward.py)."""
    require_feedforward_inputs(x, params)
    h, cache0 = linear_forward(x, params["layers.0.weight"], params["layers.0.bias"])  # (..., Dh)
    g, gelu_cache = gelu(h, approximate="tanh")  # (..., Dh)
    y, cache2 = linear_forward(g, params["layers.2.weight"], params["layers.2.bias"])  # (..., D)
    return y, (cache0, gelu_cache, cache2)


def feedforward_backward_with(gelu_backward, dy: np.ndarray, cache):
    """feedforward_backward with the GELU backward that matches the forward's."""
    cache0, gelu_cache, cache2 = cache
    grads = {}
    dg, grads["layers.2.weight"], grads["layers.2.bias"] = linear_backward(dy, cache2)  # (..., Dh)
    dh = gelu_backward(dg, gelu_cache)  # (..., Dh)
    dx, grads["layers.0.weight"], grads["layers.0.bias"] = linear_backward(dh, cache0)  # (..., D)
    return dx, {key: grads[key] for key in FEEDFORWARD_KEYS}
