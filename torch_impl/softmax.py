"""Softmax over the last axis: exp(x - max) / Σ exp(x - max)."""

from __future__ import annotations

import torch

from twinlm.shared.validate import require_softmax_input


def softmax(x: torch.Tensor) -> torch.Tensor:
    require_softmax_input(x)
    e = torch.exp(x - x.amax(dim=-1, keepdim=True))  # (..., n)
    return e / e.sum(dim=-1, keepdim=True)
