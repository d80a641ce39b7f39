"""Qwen3's feed-forward network (SwiGLU), y = down(silu(gate(x)) ⊙ up(x)), and its module with
Hugging Face's Qwen3MLP keys (gate_proj, up_proj, down_proj; no biases)."""

from __future__ import annotations

import torch
from torch import nn

from torch_impl.linear import linear
from torch_impl.silu import silu
from twinlm.shared.validate import require_swiglu_inputs


def swiglu(x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    require_swiglu_inputs(x, params)
    g = linear(x, params["gate_proj.weight"])  # (..., F)
    u = linear(x, params["up_proj.weight"])  # (..., F)
    return linear(silu(g) * u, params["down_proj.weight"])  # (..., D)


class SwiGLU(nn.Module):
    """Hugging Face's Qwen3MLP(hidden_size, intermediate_size), calling `swiglu`."""

    def __init__(self, emb_dim: int, hidden_dim: int):
        super().__init__()
        self.gate_proj = nn.Linear(emb_dim, hidden_dim, bias=False)
        self.up_proj = nn.Linear(emb_dim, hidden_dim, bias=False)
        self.down_proj = nn.Linear(hidden_dim, emb_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return swiglu(x, dict(self.named_parameters()))
