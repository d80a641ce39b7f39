"""Layer normalization over the last axis (biased variance), the book's LayerNorm.

y = (x - μ) / √(mean((x - μ)²) + ε) ⊙ scale + shift
"""

from __future__ import annotations

import torch
from torch import nn

from twinlm.shared.validate import require_eps, require_layernorm_inputs


def layernorm(
    x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    require_layernorm_inputs(x, scale, shift, eps)
    # x - μ as d - mean(d), d = x - μ̂ (μ̂ the rounded mean): exactly 0 on a constant row, rounding
    # relative to |x - μ| (see numpy_impl/layernorm.py)
    d = x - x.mean(dim=-1, keepdim=True)  # (..., D)
    xc = d - d.mean(dim=-1, keepdim=True)  # (..., D) d - mean(d) = x - μ
    var = (xc * xc).mean(dim=-1, keepdim=True)  # (..., 1) biased: divides by D
    xhat = xc / torch.sqrt(var + float(eps))  # (..., D)
    return xhat * scale + shift


class LayerNorm(nn.Module):
    """The book's LayerNorm: parameters `scale` (ones) and `shift` (zeros), calling `layernorm`."""

    def __init__(self, emb_dim: int, eps: float = 1e-5):
        super().__init__()
        require_eps("eps", eps)
        self.eps = eps
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layernorm(x, self.scale, self.shift, self.eps)

    def extra_repr(self) -> str:
        return f"{self.scale.shape[0]}, eps={self.eps}"
