"""Linear layer from a matmul: y = x Wᵀ + b, weight (out, in) like torch.nn.Linear."""

from __future__ import annotations

import torch

from twinlm.shared.validate import require_last_dim, require_ndim, require_shape


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    require_ndim("weight", weight, 2, 2)
    require_last_dim("x", x, weight.shape[1], "weight.shape[1], the layer's in_features")
    if bias is not None:
        require_shape("bias", bias, (weight.shape[0],))
    y = x @ weight.T  # (..., out)
    return y if bias is None else y + bias
