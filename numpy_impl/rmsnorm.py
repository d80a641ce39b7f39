"""RMS normalization over the last axis (Qwen3, Llama, T5): no mean subtracted, no shift.

Forward:   r = 1 / √(mean(x²) + ε)        (..., 1)   over the last axis, D entries
           x̂ = x r                        (..., D)
           y = x̂ ⊙ w                      (..., D)   w = the norm's weight (D,)
Backward:  g = dy ⊙ w                     (..., D)
           dx = r (g - x̂ ⊙ mean(g ⊙ x̂))   (..., D)
           dw = Σ_rows dy ⊙ x̂             (D,)
Derivation: ∂r/∂x_j = -r³ x_j / D, so ∂x̂_i/∂x_j = r (δ_ij - x̂_i x̂_j / D) and
           dx_j = Σ_i g_i ∂x̂_i/∂x_j = r (g_j - x̂_j mean(g ⊙ x̂)).
Like LayerNorm without the centring: dx is g with its component along x̂ removed, scaled by r.
A zero row has x̂ = 0, so y = 0 and dx = g / √ε: finite, thanks to ε.

Qwen3 uses it before attention and before the feed-forward (over emb_dim), on the output
(model.norm), and as QK-norm: over head_dim on every query and key head, before RoPE.
Hugging Face computes it in float32 for any model dtype (`hidden_states.to(torch.float32)`);
here it runs in the input's dtype, so a float64 model is float64 throughout.
"""

from __future__ import annotations

import numpy as np

from twinlm.shared.validate import require_rmsnorm_inputs


def rmsnorm_forward(x: np.ndarray, weight: np.ndarray, eps: float = 1e-6):
    """y = x / sqrt(mean(x²) + eps) * weight over the last axis. Returns (y, cache)."""
    require_rmsnorm_inputs(x, weight, eps)
    ms = np.einsum("...d,...d->...", x, x)[..., None] / x.shape[-1]  # (..., 1) mean(x²)
    r = 1.0 / np.sqrt(ms + float(eps))  # (..., 1)
    xhat = x * r  # (..., D)
    return xhat * weight, (xhat, r, weight)


def rmsnorm_backward(dy: np.ndarray, cache):
    """Returns (dx, dweight)."""
    xhat, r, weight = cache
    g = dy * weight  # (..., D)
    gx = np.einsum("...d,...d->...", g, xhat)[..., None] / xhat.shape[-1]  # (..., 1) mean(g ⊙ x̂)
    dx = g - xhat * gx  # (..., D)
    dx *= r
    dy2 = dy.reshape(-1, dy.shape[-1])  # (rows, D)
    dweight = np.einsum("rd,rd->d", dy2, xhat.reshape(dy2.shape))  # (D,)
    return dx, dweight
