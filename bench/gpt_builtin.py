"""GPT-2 written from torch's fused built-ins: the `torch-builtin` contender of the training race.

The book's architecture (pre-LayerNorm blocks, learned positions, untied head, dropout off) and
its state_dict keys, so it loads the same initial weights as the other contenders; but every
piece is the library's own kernel rather than torch_impl's elementary ops:
    nn.Embedding, F.layer_norm, nn.Linear, F.scaled_dot_product_attention(is_causal=True),
    F.gelu(approximate="tanh"), F.cross_entropy; torch.optim.AdamW and clip_grad_norm_ in the step.
`torch.compile` of this model is the `torch-compile` contender.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LayerNorm(nn.Module):
    """F.layer_norm with the book's parameter names (scale, shift)."""

    def __init__(self, emb_dim: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.scale, self.shift, 1e-5)


class Attention(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        C, bias = cfg["emb_dim"], cfg["qkv_bias"]
        self.n_heads = cfg["n_heads"]
        self.W_query, self.W_key, self.W_value = (nn.Linear(C, C, bias=bias) for _ in range(3))
        self.out_proj = nn.Linear(C, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (
            w(x).view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2)
            for w in (self.W_query, self.W_key, self.W_value)
        )  # (B, H, T, hd)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, H, T, hd)
        return self.out_proj(y.transpose(1, 2).reshape(B, T, C))


class Block(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        C = cfg["emb_dim"]
        self.norm1, self.norm2 = LayerNorm(C), LayerNorm(C)
        self.att = Attention(cfg)
        self.ff = nn.Module()
        self.ff.layers = nn.Sequential(
            nn.Linear(C, 4 * C), nn.GELU(approximate="tanh"), nn.Linear(4 * C, C)
        )

    def forward(self, x):
        x = x + self.att(self.norm1(x))
        return x + self.ff.layers(self.norm2(x))


class BuiltinGPT(nn.Module):
    """The book's GPTModel (dropout off) from built-ins; forward(idx (B, T)) -> logits (B, T, V)."""

    def __init__(self, cfg: dict):
        super().__init__()
        C = cfg["emb_dim"]
        self.tok_emb = nn.Embedding(cfg["vocab_size"], C)
        self.pos_emb = nn.Embedding(cfg["context_length"], C)
        self.trf_blocks = nn.Sequential(*(Block(cfg) for _ in range(cfg["n_layers"])))
        self.final_norm = LayerNorm(C)
        self.out_head = nn.Linear(C, cfg["vocab_size"], bias=False)

    def forward(self, idx):
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.trf_blocks(self.tok_emb(idx) + self.pos_emb(pos))
        return self.out_head(self.final_norm(x))
