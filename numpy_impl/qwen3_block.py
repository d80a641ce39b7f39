"""Qwen3's attention and decoder layer, forward and hand-written backward.

Attention (Hugging Face's Qwen3Attention), x (B, T, C), H query heads and Hkv key/value heads of
size hd (hd need not be C / H), RoPE tables cos, sin (T, hd/2) for the tokens' positions:
    q = rope(qnorm(x W_qᵀ (+ b_q) as (B, T, H, hd)))         (B, H, T, hd)   qwen3_qkv
    k = rope(knorm(x W_kᵀ (+ b_k) as (B, T, Hkv, hd)))       (B, Hkv, T, hd)
    v = x W_vᵀ (+ b_v) as (B, T, Hkv, hd)                    (B, Hkv, T, hd)
    ctx = grouped_query_attention(q, k, v, causal)           (B, H, T, hd)
    y = ctx (as (B, T, H·hd)) W_oᵀ (+ b_o)                   (B, T, C)
qnorm and knorm are QK-norm: an RMSNorm over hd with weights q_norm.weight, k_norm.weight (hd,),
the same for every head, applied to each head's vector before RoPE. It bounds the scores q·k/√hd
(|q|, |k| ≈ √hd · weight), which is why Qwen3 trains stably without attention-logit tricks.
Backward runs the chain in reverse: out_proj, GQA (which sums each group's dk, dv), then per branch
RoPE⁻¹ (the inverse rotation), the norm's backward and the projection's; the three dx add up.

Decoder layer (Qwen3DecoderLayer), pre-norm like GPT-2 but with RMSNorm and SwiGLU, no dropout:
    h = x + attn(rmsnorm(x; input_layernorm.weight))              (B, T, C)
    y = h + mlp(rmsnorm(h; post_attention_layernorm.weight))      (B, T, C)   numpy_impl/swiglu.py
    dh = dy + ∂rmsnorm(∂mlp(dy)),  dx = dh + ∂rmsnorm(∂attn(dh))   the shortcuts pass dy through
Keys are Hugging Face's, relative to the module (`self_attn.q_proj.weight`, `mlp.gate_proj.weight`,
`input_layernorm.weight`, …). torch_impl/qwen3_block.py takes the same arguments.
"""

from __future__ import annotations

import numpy as np

from numpy_impl.gqa import grouped_query_attention_backward, grouped_query_attention_forward
from numpy_impl.linear import linear_backward, linear_forward
from numpy_impl.rmsnorm import rmsnorm_backward, rmsnorm_forward
from numpy_impl.rope import rope_backward, rope_forward
from numpy_impl.swiglu import swiglu_backward, swiglu_forward
from twinlm.shared.naming import sub_dict, with_prefix
from twinlm.shared.validate import require_qwen3_attention_inputs


def qwen3_qkv_forward(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    n_heads: int,
    n_kv_heads: int,
    cos: np.ndarray,
    sin: np.ndarray,
    eps: float = 1e-6,
):
    """The attention's heads: q (B, H, T, hd) and k (B, Hkv, T, hd) projected, QK-normed and
    rotated, v (B, Hkv, T, hd) projected. Returns ((q, k, v), cache)."""
    hd = require_qwen3_attention_inputs(x, params, n_heads, n_kv_heads, cos, sin)
    B, T, _ = x.shape
    heads, caches = [], []
    for name, count in (("q", n_heads), ("k", n_kv_heads), ("v", n_kv_heads)):
        h, lin = linear_forward(x, params[f"{name}_proj.weight"], params.get(f"{name}_proj.bias"))
        h = h.reshape(B, T, count, hd)  # (B, T, heads, hd)
        norm = None
        if name != "v":
            h, norm = rmsnorm_forward(h, params[f"{name}_norm.weight"], eps)  # over hd
            h, _ = rope_forward(h.transpose(0, 2, 1, 3), cos, sin)  # (B, heads, T, hd)
        else:
            h = h.transpose(0, 2, 1, 3)  # (B, heads, T, hd)
        heads.append(h)
        caches.append((lin, norm))
    return tuple(heads), (caches, cos, sin, tuple(params))


def qwen3_qkv_backward(dq: np.ndarray, dk: np.ndarray, dv: np.ndarray, cache):
    """Returns (dx, dparams); dparams has exactly the keys of the forward's params."""
    caches, cos, sin, keys = cache
    grads, dx = {}, None
    for name, dh, (lin, norm) in zip("qkv", (dq, dk, dv), caches):
        if norm is not None:
            dh = rope_backward(dh, (cos, sin))  # (B, heads, T, hd) rotated back
            dh, grads[f"{name}_norm.weight"] = rmsnorm_backward(dh.transpose(0, 2, 1, 3), norm)
        else:
            dh = dh.transpose(0, 2, 1, 3)  # (B, T, heads, hd)
        dh = dh.reshape(*dh.shape[:2], -1)  # (B, T, heads·hd)
        dx_part, grads[f"{name}_proj.weight"], grads[f"{name}_proj.bias"] = linear_backward(dh, lin)
        if dx is None:
            dx = dx_part  # (B, T, C)
        else:
            dx += dx_part  # x feeds all three projections
    return dx, {key: grads[key] for key in keys if not key.startswith("o_proj.")}


def qwen3_attention_forward(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    n_heads: int,
    n_kv_heads: int,
    cos: np.ndarray,
    sin: np.ndarray,
    eps: float = 1e-6,
):
    """Causal self-attention of Qwen3. x (B, T, C); params keyed like Qwen3Attention (relative to
    `self_attn.`); cos, sin (T, hd/2) from rope_angles. Returns (y (B, T, C), cache)."""
    (q, k, v), qkv_cache = qwen3_qkv_forward(x, params, n_heads, n_kv_heads, cos, sin, eps)
    ctx, att_cache = grouped_query_attention_forward(q, k, v, causal=True)  # (B, H, T, hd)
    B, H, T, hd = ctx.shape
    ctx = ctx.transpose(0, 2, 1, 3).reshape(B, T, H * hd)  # merge heads: (B, T, H·hd)
    y, out_cache = linear_forward(ctx, params["o_proj.weight"], params.get("o_proj.bias"))
    return y, (qkv_cache, att_cache, out_cache, tuple(params))


def qwen3_attention_backward(dy: np.ndarray, cache):
    """Returns (dx, dparams); dparams has exactly the keys of the forward's params."""
    qkv_cache, att_cache, out_cache, keys = cache
    grads = {}
    dctx, grads["o_proj.weight"], grads["o_proj.bias"] = linear_backward(dy, out_cache)
    B, T, _ = dctx.shape
    hd = att_cache[0].shape[-1]
    dctx = dctx.reshape(B, T, -1, hd).transpose(0, 2, 1, 3)  # (B, H, T, hd)
    dq, dk, dv = grouped_query_attention_backward(dctx, att_cache)
    dx, qkv_grads = qwen3_qkv_backward(dq, dk, dv, qkv_cache)
    grads |= qkv_grads
    return dx, {key: grads[key] for key in keys}


def qwen3_block_forward(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    n_heads: int,
    n_kv_heads: int,
    cos: np.ndarray,
    sin: np.ndarray,
    eps: float = 1e-6,
):
    """One Qwen3 decoder layer. x (B, T, C); params keyed relative to `model.layers.{i}.`; cos,
    sin (T, hd/2). Returns (y (B, T, C), cache)."""
    n1, norm1 = rmsnorm_forward(x, params["input_layernorm.weight"], eps)  # (B, T, C)
    att = sub_dict(params, "self_attn.")
    a, att_cache = qwen3_attention_forward(n1, att, n_heads, n_kv_heads, cos, sin, eps)
    h = x + a  # (B, T, C)
    n2, norm2 = rmsnorm_forward(h, params["post_attention_layernorm.weight"], eps)  # (B, T, C)
    f, mlp_cache = swiglu_forward(n2, sub_dict(params, "mlp."))  # (B, T, C)
    return h + f, (norm1, att_cache, norm2, mlp_cache)


def qwen3_block_backward(dy: np.ndarray, cache):
    """Returns (dx, dparams); dparams has the layer-relative keys of the forward's params."""
    norm1, att_cache, norm2, mlp_cache = cache
    grads = {}
    dn2, dmlp = swiglu_backward(dy, mlp_cache)  # y = h + f
    dh, grads["post_attention_layernorm.weight"] = rmsnorm_backward(dn2, norm2)
    dh += dy  # (B, T, C)
    dn1, datt = qwen3_attention_backward(dh, att_cache)  # h = x + a
    dx, grads["input_layernorm.weight"] = rmsnorm_backward(dn1, norm1)
    dx += dh  # (B, T, C)
    return dx, with_prefix(datt, "self_attn.") | with_prefix(dmlp, "mlp.") | grads
