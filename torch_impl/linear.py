"""Linear layer from a matmul: y = x Wᵀ + b, weight (out, in) like torch.nn.Linear."""

from __future__ import annotations

import torch

from twinlm.shared.validate import require_linear_inputs


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    require_linear_inputs(x, weight, bias)
    y = x @ weight.T  # (..., out)
    return y if bias is None else y + bias
