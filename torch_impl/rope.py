"""Rotary position embedding, rotate-half convention (see numpy_impl/rope.py for the math):
pair (x[..., i], x[..., i + d/2]) rotated by the angle p·θᵢ, θᵢ = base^(-2i/d)."""

from __future__ import annotations

import torch

from twinlm.shared.validate import require_rope_inputs


def rope_angles(positions: torch.Tensor, head_dim: int, base: float, dtype=torch.float64):
    """(cos, sin), each (T, head_dim / 2), computed in `dtype` as Hugging Face computes its
    float32 ones: θ = 1 / base^(2i/d), then positions · θ."""
    exponents = torch.arange(0, head_dim, 2, dtype=dtype, device=positions.device) / head_dim
    inv_freq = 1.0 / (base**exponents)  # (d/2,)
    angles = positions.to(dtype)[:, None] * inv_freq  # (T, d/2)
    return torch.cos(angles), torch.sin(angles)


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x (..., T, d) rotated pairwise by the angles of cos, sin (T, d/2)."""
    require_rope_inputs(x, cos, sin)
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]  # (..., T, d/2)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)  # (..., T, d)
