"""Layer normalization over the last axis, the book's LayerNorm (biased variance, then scale/shift).

Forward:   μ = mean(x)                    (..., 1)   over the last axis, D entries (D = emb_dim)
           σ = √(mean((x - μ)²) + ε)      (..., 1)
           x̂ = (x - μ) / σ                (..., D)
           y = x̂ ⊙ scale + shift          (..., D)
Backward:  g = dy ⊙ scale                 (..., D)
           dx = (1/σ) (g - mean(g) - x̂ ⊙ mean(g ⊙ x̂))      (..., D)
           dscale = Σ_rows dy ⊙ x̂,  dshift = Σ_rows dy      (D,)
Derivation: ∂x̂_i/∂x_j = (1/σ)(δ_ij - 1/D - x̂_i x̂_j / D), so
           dx_j = Σ_i g_i ∂x̂_i/∂x_j = (1/σ)(g_j - mean(g) - x̂_j mean(g ⊙ x̂)).
A constant row has x - μ = 0, so x̂ = 0, y = shift and dx = (g - mean(g)) / √ε: finite, thanks to ε.

x - μ is computed in two passes: d = x - μ̂ with μ̂ the rounded mean, then d - mean(d) removes μ̂'s
rounding error. A constant row gives exactly 0 (so y = shift exactly), nearby values subtract
exactly even when |μ| ≫ σ, and each entry's rounding is relative to |x - μ|, as in torch's
layer_norm. (Subtracting the row's first entry instead is exact on constant rows too, but rounds
relative to |x - x₀|: 6× the error on rows whose first feature is an outlier.)
"""

from __future__ import annotations

import numpy as np

from twinlm.shared.validate import require_layernorm_inputs


def layernorm_forward(x: np.ndarray, scale: np.ndarray, shift: np.ndarray, eps: float = 1e-5):
    """y = (x - mean) / sqrt(var + eps) * scale + shift over the last axis. Returns (y, cache)."""
    require_layernorm_inputs(x, scale, shift, eps)
    d = x - x.mean(axis=-1, keepdims=True)  # (..., D) x - μ̂
    centred = d - d.mean(axis=-1, keepdims=True)  # (..., D) x - μ, μ̂'s rounding removed
    var = (centred * centred).mean(axis=-1, keepdims=True)  # (..., 1) biased: divides by D
    std = np.sqrt(var + float(eps))  # (..., 1) σ; a Python float: float32 stays float32
    xhat = centred / std  # (..., D)
    y = xhat * scale + shift  # (..., D)
    return y, (xhat, std, scale)


def layernorm_backward(dy: np.ndarray, cache):
    """Returns (dx, dscale, dshift)."""
    xhat, std, scale = cache
    g = dy * scale  # (..., D)
    mean_gx = (g * xhat).mean(axis=-1, keepdims=True)  # (..., 1) mean(g ⊙ x̂)
    dx = (g - g.mean(axis=-1, keepdims=True) - xhat * mean_gx) / std  # (..., D)
    dy2, xhat2 = dy.reshape(-1, dy.shape[-1]), xhat.reshape(-1, dy.shape[-1])  # (rows, D)
    dscale = np.einsum("rd,rd->d", dy2, xhat2)  # (D,)
    dshift = dy2.sum(axis=0)  # (D,)
    return dx, dscale, dshift
