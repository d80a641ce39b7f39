"""GPT's forward pass over a KV cache, for inference: the twin of numpy_impl/generate.py, whose
docstring derives it. Only the math lives here; the cache, the reuse/crop rule and the sampling
loop are twinlm/generation.py's. Call it under torch.no_grad() with the model in eval mode.
"""

from __future__ import annotations

import torch

from torch_impl.attention import attention
from torch_impl.embedding import embedding
from torch_impl.gpt import GPTModel
from torch_impl.linear import linear


def _attention_cached(x: torch.Tensor, att, cache, layer: int) -> torch.Tensor:
    """Causal multi-head attention of x (B, T, C), the tokens at positions [cache.length,
    cache.length + T), over themselves and every cached position. `att` is the block's
    MultiHeadAttention (its weights only)."""
    B, T, C = x.shape
    H = att.num_heads
    q, k, v = (
        linear(x, proj.weight, proj.bias)  # (B, T, C)
        .view(B, T, H, C // H)
        .transpose(1, 2)  # (B, H, T, hd)
        for proj in (att.W_query, att.W_key, att.W_value)
    )
    k_all, v_all = cache.append(layer, k, v)  # (B, H, length + T, hd)
    # The T queries are the last T positions: attention() offsets the causal mask for Tq < Tk.
    ctx = attention(q, k_all, v_all, causal=True)  # (B, H, T, hd)
    ctx = ctx.transpose(1, 2).contiguous().view(B, T, C)  # merge heads: (B, T, C)
    return linear(ctx, att.out_proj.weight, att.out_proj.bias)  # (B, T, C)


def forward_cached(
    model: GPTModel, idx: torch.Tensor, cache, last_only: bool = True
) -> torch.Tensor:
    """GPTModel.forward without dropout for idx (B, T), the tokens at positions [cache.length,
    cache.length + T); attention also sees every cached key and value. Returns the logits (B, 1, V)
    of the last position (last_only) or (B, T, V)."""
    start, T = cache.length, idx.shape[1]
    tok = embedding(idx, model.tok_emb.weight)  # (B, T, C)
    x = tok + model.pos_emb.weight[start : start + T]  # (B, T, C) positions start .. start+T-1
    for layer, block in enumerate(model.trf_blocks):
        h = x + _attention_cached(block.norm1(x), block.att, cache, layer)  # (B, T, C)
        x = h + block.ff(block.norm2(h))  # (B, T, C)
    if last_only:
        x = x[:, -1:]  # (B, 1, C) only the last position's logits are needed to generate
    return linear(model.final_norm(x), model.out_head.weight)  # (B, T or 1, V)
