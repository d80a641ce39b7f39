"""References shared by several test files, written from torch built-ins only (never from the
code under test): `from helpers import ...` (pytest puts this folder on sys.path)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def leaf(a) -> torch.Tensor:
    """A float64 leaf tensor that collects its gradient in .grad (the by-hand tests' one helper)."""
    return torch.tensor(a, requires_grad=True)


def builtin_gpt_hidden(p: dict[str, torch.Tensor], idx: torch.Tensor, cfg) -> torch.Tensor:
    """final_norm(GPT body(idx)) at every position (B, T, C), no dropout, from F.embedding,
    F.layer_norm, F.scaled_dot_product_attention, F.gelu and F.linear; p holds the book's keys."""
    Bn, Tn = idx.shape
    C, H = cfg["emb_dim"], cfg["n_heads"]
    x = F.embedding(idx, p["tok_emb.weight"]) + F.embedding(torch.arange(Tn), p["pos_emb.weight"])
    for i in range(cfg["n_layers"]):
        b = f"trf_blocks.{i}."
        h = F.layer_norm(x, (C,), p[b + "norm1.scale"], p[b + "norm1.shift"], eps=1e-5)
        q, k, v = (
            F.linear(h, p[f"{b}att.{n}.weight"], p.get(f"{b}att.{n}.bias"))
            .view(Bn, Tn, H, C // H)
            .transpose(1, 2)
            for n in ("W_query", "W_key", "W_value")
        )
        ctx = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        ctx = ctx.transpose(1, 2).reshape(Bn, Tn, C)
        x = x + F.linear(ctx, p[b + "att.out_proj.weight"], p[b + "att.out_proj.bias"])
        h = F.layer_norm(x, (C,), p[b + "norm2.scale"], p[b + "norm2.shift"], eps=1e-5)
        h = F.gelu(
            F.linear(h, p[b + "ff.layers.0.weight"], p[b + "ff.layers.0.bias"]), approximate="tanh"
        )
        x = x + F.linear(h, p[b + "ff.layers.2.weight"], p[b + "ff.layers.2.bias"])
    return F.layer_norm(x, (C,), p["final_norm.scale"], p["final_norm.shift"], eps=1e-5)


class BookMultiHeadAttention(nn.Module):
    """Chapter 3's MultiHeadAttention, as printed (causal mask as a persistent buffer)."""

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        assert d_out % num_heads == 0, "d_out must be divisible by num_heads"
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer(
            "mask", torch.triu(torch.ones(context_length, context_length), diagonal=1)
        )

    def forward(self, x):
        b, num_tokens, _ = x.shape
        keys = self.W_key(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        queries = self.W_query(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        values = self.W_value(x).view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        attn_scores = queries @ keys.transpose(2, 3)
        mask_bool = self.mask.bool()[:num_tokens, :num_tokens]
        attn_scores.masked_fill_(mask_bool, -torch.inf)
        attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
        attn_weights = self.dropout(attn_weights)
        context_vec = (attn_weights @ values).transpose(1, 2)
        context_vec = context_vec.contiguous().view(b, num_tokens, self.d_out)
        return self.out_proj(context_vec)


class BookLayerNorm(nn.Module):
    def __init__(self, emb_dim):
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return self.scale * (x - mean) / torch.sqrt(var + self.eps) + self.shift


class BookGELU(nn.Module):
    # The book writes the constant as torch.sqrt(torch.tensor(2.0 / torch.pi)), a float32 tensor:
    # 2.8e-8 off √(2/π), which alone moves float64 logits by ~2e-9. The float64 constant here.
    def forward(self, x):
        return (
            0.5 * x * (1 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3))))
        )


class BookFeedForward(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(cfg["emb_dim"], 4 * cfg["emb_dim"]),
            BookGELU(),
            nn.Linear(4 * cfg["emb_dim"], cfg["emb_dim"]),
        )

    def forward(self, x):
        return self.layers(x)


class BookTransformerBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.att = BookMultiHeadAttention(
            cfg["emb_dim"],
            cfg["emb_dim"],
            cfg["context_length"],
            cfg["drop_rate"],
            cfg["n_heads"],
            cfg["qkv_bias"],
        )
        self.ff = BookFeedForward(cfg)
        self.norm1, self.norm2 = BookLayerNorm(cfg["emb_dim"]), BookLayerNorm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x):
        x = x + self.drop_shortcut(self.att(self.norm1(x)))
        return x + self.drop_shortcut(self.ff(self.norm2(x)))


class BookGPTModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.Sequential(
            *[BookTransformerBlock(cfg) for _ in range(cfg["n_layers"])]
        )
        self.final_norm = BookLayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, in_idx):
        x = self.tok_emb(in_idx) + self.pos_emb(torch.arange(in_idx.shape[1]))
        x = self.trf_blocks(self.drop_emb(x))
        return self.out_head(self.final_norm(x))
