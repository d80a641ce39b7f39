"""Grouped-query attention from matmul, exp and masking (see numpy_impl/gqa.py for the math):
query head h reads key/value head h // (H / Hkv); each group's queries are stacked as rows of one
matmul against their shared keys, so k and v are never repeated."""

from __future__ import annotations

import math

import torch

from torch_impl.softmax import softmax
from twinlm.shared.validate import require_gqa_inputs


def grouped_query_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True
) -> torch.Tensor:
    """q (B, H, Tq, d), k, v (B, Hkv, Tk, d) -> (B, H, Tq, d); causal mask bottom-right aligned."""
    G = require_gqa_inputs(q, k, v, causal)
    B, H, Tq, d = q.shape
    Hkv, Tk = k.shape[1], k.shape[2]
    qs = q.reshape(B, Hkv, G * Tq, d)  # (B, Hkv, G·Tq, d)
    scores = (qs @ k.transpose(-2, -1)) / math.sqrt(d)  # (B, Hkv, G·Tq, Tk)
    if causal:
        rows = torch.arange(Tq, device=q.device).repeat(G)[:, None]  # (G·Tq, 1) query position
        visible = torch.arange(Tk, device=q.device)[None, :] <= rows + (Tk - Tq)  # (G·Tq, Tk)
        scores = scores.masked_fill(~visible, float("-inf"))
    return (softmax(scores) @ v).reshape(B, H, Tq, d)
