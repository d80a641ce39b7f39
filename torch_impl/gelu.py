"""GELU, y = x Φ(x): the tanh approximation (GPT-2, the book) or exact with erf.

tanh: y = ½ x (1 + tanh u) = x σ(2u),  u = √(2/π) (x + 0.044715 x³)
none: y = ½ x (1 + erf(x/√2)) = ½ x erfc(-x/√2)
σ and erfc give the same values as 1 + tanh and 1 + erf without their cancellation for negative x
(see numpy_impl/gelu.py), and stay finite and exact at |x| in the hundreds.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from twinlm.shared.validate import require_choice, require_float

APPROXIMATIONS = ("tanh", "none")


def gelu(x: torch.Tensor, approximate: str = "tanh") -> torch.Tensor:
    require_float("x", x)
    require_choice("approximate", approximate, APPROXIMATIONS)
    if approximate == "tanh":
        u = math.sqrt(2.0 / math.pi) * (x + 0.044715 * (x * x * x))  # (...)
        # x σ(2u). Autograd differentiates σ as σ (1 - σ), which loses digits where σ ≈ 1, so for
        # u ≥ 0 it is written x (1 - σ(-2u)): each half differentiates the σ that is small.
        return torch.where(u < 0, x * torch.sigmoid(2.0 * u), x - x * torch.sigmoid(-2.0 * u))
    cdf = 0.5 * torch.erfc(-x * (1.0 / math.sqrt(2.0)))  # (...) Φ(x) = ½ (1 + erf(x/√2))
    return x * cdf


class GELU(nn.Module):
    """The book's GELU module (no parameters), calling `gelu`."""

    def __init__(self, approximate: str = "tanh"):
        super().__init__()
        require_choice("approximate", approximate, APPROXIMATIONS)
        self.approximate = approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"
