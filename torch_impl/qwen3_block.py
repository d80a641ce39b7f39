"""Qwen3's attention and decoder layer; autograd supplies the backward (numpy_impl/qwen3_block.py
derives it).

    q, k = rope(qknorm(x W_q,kᵀ)), v = x W_vᵀ          heads (B, H or Hkv, T, hd)   qwen3_qkv
    y = grouped_query_attention(q, k, v) W_oᵀ                                      qwen3_attention
    h = x + attn(rmsnorm(x)),  y = h + mlp(rmsnorm(h))                             qwen3_block

The functions take numpy_impl/qwen3_block.py's arguments. The modules hold the parameters under
Hugging Face's names (self_attn.q_proj, …, self_attn.q_norm, mlp.gate_proj, input_layernorm,
post_attention_layernorm) and call the functions; they are what torch_impl.Qwen3Model is made of.
"""

from __future__ import annotations

import torch
from torch import nn

from torch_impl.gqa import grouped_query_attention
from torch_impl.linear import linear
from torch_impl.rmsnorm import RMSNorm, rmsnorm
from torch_impl.rope import rope
from torch_impl.swiglu import SwiGLU, swiglu
from twinlm.shared.config import Qwen3AttentionArgs
from twinlm.shared.naming import sub_dict
from twinlm.shared.validate import require_qwen3_attention_inputs


def qwen3_qkv(
    x: torch.Tensor,
    params: dict[str, torch.Tensor],
    n_heads: int,
    n_kv_heads: int,
    cos: torch.Tensor,
    sin: torch.Tensor,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(q (B, H, T, hd), k (B, Hkv, T, hd), v (B, Hkv, T, hd)): projected, q and k QK-normed
    over hd and rotated by RoPE."""
    hd = require_qwen3_attention_inputs(x, params, n_heads, n_kv_heads, cos, sin)
    B, T, _ = x.shape
    heads = []
    for name, count in (("q", n_heads), ("k", n_kv_heads), ("v", n_kv_heads)):
        h = linear(x, params[f"{name}_proj.weight"], params.get(f"{name}_proj.bias"))
        h = h.view(B, T, count, hd)  # (B, T, heads, hd)
        if name != "v":
            h = rope(rmsnorm(h, params[f"{name}_norm.weight"], eps).transpose(1, 2), cos, sin)
        else:
            h = h.transpose(1, 2)
        heads.append(h)  # (B, heads, T, hd)
    return heads[0], heads[1], heads[2]


def qwen3_attention(
    x: torch.Tensor,
    params: dict[str, torch.Tensor],
    n_heads: int,
    n_kv_heads: int,
    cos: torch.Tensor,
    sin: torch.Tensor,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Causal self-attention of Qwen3: x (B, T, C) -> (B, T, C)."""
    q, k, v = qwen3_qkv(x, params, n_heads, n_kv_heads, cos, sin, eps)
    ctx = grouped_query_attention(q, k, v, causal=True)  # (B, H, T, hd)
    B, H, T, hd = ctx.shape
    ctx = ctx.transpose(1, 2).reshape(B, T, H * hd)  # merge heads
    return linear(ctx, params["o_proj.weight"], params.get("o_proj.bias"))


def qwen3_block(
    x: torch.Tensor,
    params: dict[str, torch.Tensor],
    n_heads: int,
    n_kv_heads: int,
    cos: torch.Tensor,
    sin: torch.Tensor,
    eps: float = 1e-6,
) -> torch.Tensor:
    """One Qwen3 decoder layer: x (B, T, C) -> (B, T, C); params relative to the layer."""
    att = sub_dict(params, "self_attn.")
    n1 = rmsnorm(x, params["input_layernorm.weight"], eps)
    h = x + qwen3_attention(n1, att, n_heads, n_kv_heads, cos, sin, eps)  # (B, T, C)
    n2 = rmsnorm(h, params["post_attention_layernorm.weight"], eps)
    return h + swiglu(n2, sub_dict(params, "mlp."))  # (B, T, C)


class Qwen3Attention(nn.Module):
    """Hugging Face's Qwen3Attention parameters: q/k/v/o_proj (biases when attention_bias) and
    q_norm, k_norm over head_dim. Its forward is qwen3_attention with the RoPE tables given."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = cfg
        C, hd, bias = cfg["emb_dim"], cfg["head_dim"], cfg["attention_bias"]
        H, Hkv = cfg["n_heads"], cfg["n_kv_heads"]
        self.q_proj = nn.Linear(C, H * hd, bias=bias)
        self.k_proj = nn.Linear(C, Hkv * hd, bias=bias)
        self.v_proj = nn.Linear(C, Hkv * hd, bias=bias)
        self.o_proj = nn.Linear(H * hd, C, bias=bias)
        self.q_norm = RMSNorm(hd, cfg["rms_norm_eps"])
        self.k_norm = RMSNorm(hd, cfg["rms_norm_eps"])

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        args = Qwen3AttentionArgs.of(self.cfg, cos, sin)
        return qwen3_attention(x, dict(self.named_parameters()), *args)


class Qwen3DecoderLayer(nn.Module):
    """Hugging Face's Qwen3DecoderLayer: self_attn, mlp, input_layernorm,
    post_attention_layernorm, in its order. forward calls qwen3_block."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.cfg = cfg
        self.self_attn = Qwen3Attention(cfg)
        self.mlp = SwiGLU(cfg["emb_dim"], cfg["hidden_dim"])
        self.input_layernorm = RMSNorm(cfg["emb_dim"], cfg["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(cfg["emb_dim"], cfg["rms_norm_eps"])

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        args = Qwen3AttentionArgs.of(self.cfg, cos, sin)
        return qwen3_block(x, dict(self.named_parameters()), *args)
