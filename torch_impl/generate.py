"""GPT's and Qwen3's forward pass over a KV cache, for inference: the twin of numpy_impl/generate.py,
whose docstring derives it. Only the math lives here; the cache, the reuse/crop rule and the sampling
loop are twinlm/generation.py's. Call it under torch.no_grad() with the model in eval mode.
"""

from __future__ import annotations

import torch

from torch_impl.attention import attention
from torch_impl.embedding import embedding
from torch_impl.gpt import GPTModel
from torch_impl.gqa import grouped_query_attention
from torch_impl.linear import linear
from torch_impl.qwen3 import Qwen3Model
from torch_impl.qwen3_block import qwen3_qkv
from torch_impl.rmsnorm import rmsnorm
from torch_impl.rope import rope_angles
from torch_impl.swiglu import swiglu
from twinlm.shared.config import Qwen3AttentionArgs
from twinlm.shared.kv_cache import KVCache
from twinlm.shared.naming import sub_dict
from twinlm.shared.validate import require_cached_ids


def _attention_cached(x: torch.Tensor, att, cache: KVCache, layer: int) -> torch.Tensor:
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
    model: GPTModel | Qwen3Model, idx: torch.Tensor, cache: KVCache, last_only: bool = True
) -> torch.Tensor:
    """model.forward without dropout for idx (B, T), the tokens at positions [cache.length,
    cache.length + T); attention also sees every cached key and value. Returns the logits (B, 1, V)
    of the last position (last_only) or (B, T, V)."""
    require_cached_ids(idx, model.cfg, cache, backend="torch")
    if isinstance(model, Qwen3Model):
        return _qwen3_forward_cached(model, idx, cache, last_only)
    start, T = cache.length, idx.shape[1]
    tok = embedding(idx, model.tok_emb.weight)  # (B, T, C)
    x = tok + model.pos_emb.weight[start : start + T]  # (B, T, C) positions start .. start+T-1
    for layer, block in enumerate(model.trf_blocks):
        h = x + _attention_cached(block.norm1(x), block.att, cache, layer)  # (B, T, C)
        x = h + block.ff(block.norm2(h))  # (B, T, C)
    if last_only:
        x = x[:, -1:]  # (B, 1, C) only the last position's logits are needed to generate
    return linear(model.final_norm(x), model.out_head.weight)  # (B, T or 1, V)


def _qwen3_forward_cached(model: Qwen3Model, idx: torch.Tensor, cache: KVCache, last_only: bool):
    cfg, eps = model.cfg, model.cfg["rms_norm_eps"]
    P = dict(model.named_parameters())
    start, (B, T) = cache.length, idx.shape
    x = embedding(idx, P["model.embed_tokens.weight"])  # (B, T, C)
    positions = torch.arange(start, start + T, device=idx.device)  # the true positions
    cos, sin = rope_angles(positions, cfg["head_dim"], cfg["rope_base"], x.dtype)  # (T, hd/2)
    args = Qwen3AttentionArgs.of(cfg, cos, sin)
    for layer in range(cfg["n_layers"]):
        p = sub_dict(P, f"model.layers.{layer}.")
        att = sub_dict(p, "self_attn.")
        n1 = rmsnorm(x, p["input_layernorm.weight"], eps)  # (B, T, C)
        q, k, v = qwen3_qkv(n1, att, *args)
        k_all, v_all = cache.append(layer, k, v)  # (B, Hkv, length + T, hd), rotated keys
        ctx = grouped_query_attention(q, k_all, v_all, causal=True)  # (B, H, T, hd)
        ctx = ctx.transpose(1, 2).reshape(B, T, -1)  # (B, T, H·hd)
        h = x + linear(ctx, att["o_proj.weight"], att.get("o_proj.bias"))
        x = h + swiglu(rmsnorm(h, p["post_attention_layernorm.weight"], eps), sub_dict(p, "mlp."))
    if last_only:
        x = x[:, -1:]  # (B, 1, C)
    return linear(rmsnorm(x, P["model.norm.weight"], eps), model.head_weight)  # (B, T or 1, V)
