"""Token embedding as a table lookup: y[..., :] = W[ids[...], :]; autograd scatter-adds dW."""

from __future__ import annotations

import torch

from twinlm.shared.validate import require_float, require_ids, require_ndim


def embedding(ids: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    require_ndim("weight", weight, 2, 2)
    require_float("weight", weight)
    require_ids("ids", ids, weight.shape[0])
    return weight[ids.long()]  # (..., D); .long(): a uint8 index would act as a boolean mask
