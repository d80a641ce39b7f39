"""Qwen3's feed-forward network (SwiGLU): down(silu(gate(x)) ⊙ up(x)), no biases.

Forward, x (..., D), hidden size F (Qwen3-0.6B: D = 1024, F = 3072):
    g = x W_gᵀ              (..., F)     W_g = gate_proj.weight (F, D)
    u = x W_uᵀ              (..., F)     W_u = up_proj.weight (F, D)
    a = silu(g)             (..., F)
    h = a ⊙ u               (..., F)     the gated hidden layer
    y = h W_dᵀ              (..., D)     W_d = down_proj.weight (D, F)
Backward, from dy:
    dh, dW_d = linear backward of dy
    da = dh ⊙ u,  du = dh ⊙ a                        the product rule
    dg = silu backward of da
    dx = dg W_g + du W_u,  dW_g = Σ dgᵀ x,  dW_u = Σ duᵀ x    x feeds both branches: dx adds up
The keys are Hugging Face's Qwen3MLP keys, relative to `mlp.`.
"""

from __future__ import annotations

import numpy as np

from numpy_impl.linear import linear_backward, linear_forward
from numpy_impl.silu import silu_backward, silu_forward
from twinlm.shared.validate import SWIGLU_KEYS, require_swiglu_inputs


def swiglu_forward(x: np.ndarray, params: dict[str, np.ndarray]):
    """y = down(silu(gate(x)) * up(x)). x (..., D). Returns (y (..., D), cache)."""
    require_swiglu_inputs(x, params)
    g, gate_cache = linear_forward(x, params["gate_proj.weight"])  # (..., F)
    u, up_cache = linear_forward(x, params["up_proj.weight"])  # (..., F)
    a, silu_cache = silu_forward(g)  # (..., F)
    h = a * u  # (..., F)
    y, down_cache = linear_forward(h, params["down_proj.weight"])  # (..., D)
    return y, (gate_cache, up_cache, silu_cache, a, u, down_cache)


def swiglu_backward(dy: np.ndarray, cache):
    """Returns (dx, dparams) with dparams keyed like params."""
    gate_cache, up_cache, silu_cache, a, u, down_cache = cache
    grads = {}
    dh, grads["down_proj.weight"], _ = linear_backward(dy, down_cache)  # (..., F)
    dg = silu_backward(dh * u, silu_cache)  # (..., F) da = dh ⊙ u
    du = dh * a  # (..., F)
    dx, grads["gate_proj.weight"], _ = linear_backward(dg, gate_cache)  # (..., D)
    dx_up, grads["up_proj.weight"], _ = linear_backward(du, up_cache)  # (..., D)
    dx += dx_up
    return dx, {key: grads[key] for key in SWIGLU_KEYS}
