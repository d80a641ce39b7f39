"""Inverted dropout with a caller-drawn 0/1 mask: y = x ⊙ m / (1 - p)."""

from __future__ import annotations

import torch

from twinlm.shared.validate import require_broadcastable, require_float, require_probability


def dropout(x: torch.Tensor, mask: torch.Tensor, p: float) -> torch.Tensor:
    require_float("x", x)
    require_probability("p", p)
    require_broadcastable("mask", mask, x.shape)
    keep = mask.to(x.dtype)  # (...) 0/1 in x's dtype: a float64 mask would upcast float32 x
    return x * keep * (1.0 / (1.0 - float(p)))  # (...)
