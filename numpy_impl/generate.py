"""GPT's and Qwen3's forward pass over a KV cache (book chapter 5 `generate`, made fast), for inference.

In causal attention a token's key and value at layer l depend only on the tokens up to it, so
generation can keep them instead of recomputing them at every step:
    cache K_l, V_l   (B, H, max_len, hd)   filled for positions [0, start)
    x = tok_emb[idx] + pos_emb[start .. start+T-1]                       (B, T, C)  the new tokens
    per layer: q, k, v = n1 W_qᵀ, n1 W_kᵀ, n1 W_vᵀ   with n1 = norm1(x)     (B, H, T, hd)
               K_l[:, :, start:start+T] = k, V_l[:, :, start:start+T] = v
               y = softmax(q K_l[:, :, :start+T]ᵀ / √hd + causal offset) V_l[:, :, :start+T]
    logits of the last position only (generation needs no more)          (B, 1, V)
Per new token this is O(t) in attention and O(1) elsewhere, instead of O(t²) and O(t).

Qwen3 caches the same way, with two differences: the cache holds Hkv key/value heads (grouped-query
attention: H / Hkv times less than a GPT's H), and the keys are cached after RoPE, so the new
tokens are rotated at their true positions start .. start+T-1 (rope_angles of those positions) and
the cached keys never move. A KV cache that got the positions wrong would still give plausible
text; twinlm tests that cached logits equal uncached ones.

Only the math lives here. The cache object, the reuse/crop rule and the sampling loop are
twinlm/generation.py's (the same for both backends): forward_cached reads `cache.length` as the
first new position and writes each layer through `cache.append(layer, k, v)`, which returns that
layer's keys and values for positions [0, length + T); the caller advances the cache afterwards.
"""

from __future__ import annotations

import numpy as np

import numpy_impl
from numpy_impl.embedding import embedding_forward
from numpy_impl.gpt import GPTModel
from numpy_impl.gqa import grouped_query_attention_forward
from numpy_impl.linear import linear_forward
from numpy_impl.qwen3 import Qwen3Model
from numpy_impl.qwen3_block import qwen3_qkv_forward
from numpy_impl.rmsnorm import rmsnorm_forward
from numpy_impl.rope import rope_angles
from numpy_impl.swiglu import swiglu_forward
from twinlm.shared.config import Qwen3AttentionArgs
from twinlm.shared.kv_cache import KVCache
from twinlm.shared.naming import QKV_PROJECTIONS, sub_dict
from twinlm.shared.validate import require_cached_ids


def _attention_cached(
    ops, x: np.ndarray, p: dict, n_heads: int, cache: KVCache, layer: int
) -> np.ndarray:
    """Causal multi-head attention of x (B, T, C), the tokens at positions [cache.length,
    cache.length + T), over themselves and every cached position; ops: the model's op set."""
    B, T, C = x.shape
    hd = C // n_heads
    q, k, v = (
        linear_forward(x, p[f"att.{name}.weight"], p.get(f"att.{name}.bias"))[0]
        .reshape(B, T, n_heads, hd)
        .transpose(0, 2, 1, 3)  # (B, H, T, hd)
        for name in QKV_PROJECTIONS
    )
    k_all, v_all = cache.append(layer, k, v)  # (B, H, length + T, hd)
    # The T queries are the last T positions: attention_forward offsets the causal mask for Tq < Tk.
    ctx, _ = ops.attention_forward(q, k_all, v_all, causal=True)  # (B, H, T, hd)
    ctx = ctx.transpose(0, 2, 1, 3).reshape(B, T, C)  # merge heads: (B, T, C)
    return linear_forward(ctx, p["att.out_proj.weight"], p["att.out_proj.bias"])[0]  # (B, T, C)


def forward_cached(
    model: GPTModel | Qwen3Model, idx: np.ndarray, cache: KVCache, last_only: bool = True
) -> np.ndarray:
    """model.forward without dropout for idx (B, T), the tokens at positions [cache.length,
    cache.length + T); attention also sees every cached key and value. Returns the logits (B, 1, V)
    of the last position (last_only) or (B, T, V)."""
    require_cached_ids(idx, model.cfg, cache, backend="numpy")
    if isinstance(model, Qwen3Model):
        return _qwen3_forward_cached(model, idx, cache, last_only)
    cfg, P, ops = model.cfg, model.params, numpy_impl.kernel_ops(model.kernels)
    start, T = cache.length, idx.shape[1]
    tok, _ = embedding_forward(idx, P["tok_emb.weight"])  # (B, T, C)
    x = tok + P["pos_emb.weight"][start : start + T]  # (B, T, C) positions start .. start+T-1
    for layer in range(cfg["n_layers"]):
        p = sub_dict(P, f"trf_blocks.{layer}.")  # this block's params, keyed like `norm1.scale`
        n1, _ = ops.layernorm_forward(x, p["norm1.scale"], p["norm1.shift"])  # (B, T, C)
        h = x + _attention_cached(ops, n1, p, cfg["n_heads"], cache, layer)  # (B, T, C)
        n2, _ = ops.layernorm_forward(h, p["norm2.scale"], p["norm2.shift"])  # (B, T, C)
        x = h + ops.feedforward_forward(n2, sub_dict(p, "ff."))[0]  # (B, T, C)
    if last_only:
        x = x[:, -1:]  # (B, 1, C) only the last position's logits are needed to generate
    x, _ = ops.layernorm_forward(x, P["final_norm.scale"], P["final_norm.shift"])
    return linear_forward(x, P["out_head.weight"])[0]  # (B, T or 1, V)


def _qwen3_forward_cached(
    model: Qwen3Model, idx: np.ndarray, cache: KVCache, last_only: bool
) -> np.ndarray:
    cfg, P, eps = model.cfg, model.params, model.cfg["rms_norm_eps"]
    start, T = cache.length, idx.shape[1]
    x, _ = embedding_forward(idx, P["model.embed_tokens.weight"])  # (B, T, C)
    positions = np.arange(start, start + T)  # the new tokens' true positions
    cos, sin = rope_angles(positions, cfg["head_dim"], cfg["rope_base"], x.dtype)  # (T, hd/2)
    args = Qwen3AttentionArgs.of(cfg, cos, sin)
    B = idx.shape[0]
    for layer in range(cfg["n_layers"]):
        p = sub_dict(P, f"model.layers.{layer}.")
        att = sub_dict(p, "self_attn.")
        n1, _ = rmsnorm_forward(x, p["input_layernorm.weight"], eps)  # (B, T, C)
        (q, k, v), _ = qwen3_qkv_forward(n1, att, *args)
        k_all, v_all = cache.append(layer, k, v)  # (B, Hkv, length + T, hd), rotated keys
        ctx, _ = grouped_query_attention_forward(q, k_all, v_all, causal=True)  # (B, H, T, hd)
        ctx = ctx.transpose(0, 2, 1, 3).reshape(B, T, -1)  # (B, T, H·hd)
        h = x + linear_forward(ctx, att["o_proj.weight"], att.get("o_proj.bias"))[0]
        n2, _ = rmsnorm_forward(h, p["post_attention_layernorm.weight"], eps)
        x = h + swiglu_forward(n2, sub_dict(p, "mlp."))[0]  # (B, T, C)
    if last_only:
        x = x[:, -1:]  # (B, 1, C)
    x, _ = rmsnorm_forward(x, P["model.norm.weight"], eps)
    return linear_forward(x, P[model.head_key])[0]  # (B, T or 1, V)
