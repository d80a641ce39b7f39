"""SiLU (swish), y = x σ(x), from torch.sigmoid (see numpy_impl/silu.py)."""

from __future__ import annotations

import torch

from twinlm.shared.validate import require_float


def silu(x: torch.Tensor) -> torch.Tensor:
    require_float("x", x)
    return x * torch.sigmoid(x)
