"""RMS normalization over the last axis (see numpy_impl/rmsnorm.py): y = x / √(mean(x²) + ε) ⊙ w.

Computed in x's dtype (Hugging Face's Qwen3RMSNorm casts to float32 first; see the NumPy module).
"""

from __future__ import annotations

import torch
from torch import nn

from twinlm.shared.validate import require_eps, require_rmsnorm_inputs


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    require_rmsnorm_inputs(x, weight, eps)
    r = 1.0 / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + float(eps))  # (..., 1)
    return x * r * weight  # (..., D)


class RMSNorm(nn.Module):
    """Hugging Face's Qwen3RMSNorm: one parameter `weight` (ones), calling `rmsnorm`."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        require_eps("eps", eps)
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rmsnorm(x, self.weight, self.eps)

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, eps={self.eps}"
