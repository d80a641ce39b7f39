"""Softmax over the last axis: exp(x - max) / Σ exp(x - max)."""

from __future__ import annotations

import torch


def softmax(x: torch.Tensor) -> torch.Tensor:
    e = torch.exp(x - x.amax(dim=-1, keepdim=True))  # (..., n)
    return e / e.sum(dim=-1, keepdim=True)
