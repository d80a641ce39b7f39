"""Scaled dot-product attention, and causal multi-head attention built from it (book chapter 3).

Attention, for each leading (batch, head) index; q (Tq, d), k (Tk, d), v (Tk, d):
    S = q kᵀ / √d                          (Tq, Tk)  scores
    S_ij = -inf  where j > i + (Tk - Tq)   causal: query row i sits at key position i + Tk - Tq, so
                                           with a KV cache (Tq < Tk) the queries are the last rows
    A = softmax(S)  over keys              (Tq, Tk)  attention weights; masked entries are exactly 0
    Ã = A ⊙ M / (1 - p)                    (Tq, Tk)  inverted dropout, M ∈ {0, 1} drawn by the caller
    y = Ã v                                (Tq, d)
Backward, from dy (Tq, d):
    dv = Ãᵀ dy                             (Tk, d)
    dÃ = dy vᵀ                             (Tq, Tk)
    dA = dÃ ⊙ M / (1 - p)                  (Tq, Tk)
    dS = A ⊙ (dA - Σ_j dA_j A_j)           (Tq, Tk)  softmax backward; 0 where masked, as A is 0 there
    dq = dS k / √d                         (Tq, d)
    dk = dSᵀ q / √d                        (Tk, d)
Every causal row keeps key j = 0 .. i + Tk - Tq ≥ 0 visible (Tq ≤ Tk is required), so the row max
is finite and -inf turns into an exact 0 weight; a fully masked row cannot occur. The softmax and
the dropout are their own ops (numpy_impl/softmax.py, dropout.py); the softmax backward removes
its rounding residual, which dq = dS k would otherwise multiply by whatever all keys share (a key
bias, say).

Multi-head attention, x (B, T, d_in), H heads of size hd = d_out / H:
    q, k, v = x W_qᵀ (+ b_q), x W_kᵀ (+ b_k), x W_vᵀ (+ b_v)            (B, T, d_out) each
    split:    (B, T, d_out) → view (B, T, H, hd) → transpose (B, H, T, hd)
    ctx = attention(q, k, v, causal)                                    (B, H, T, hd)
    merge:    (B, H, T, hd) → transpose (B, T, H, hd) → view (B, T, d_out)
    y = ctx W_oᵀ + b_o                                                  (B, T, d_out)
Backward runs the same chain in reverse: linear backward, merge⁻¹ (= split), attention backward,
split⁻¹ (= merge), and the three projections' backwards, whose dx add up.
"""

from __future__ import annotations

import math

import numpy as np

from numpy_impl.dropout import maybe_dropout_backward, maybe_dropout_forward
from numpy_impl.linear import linear_backward, linear_forward
from numpy_impl.softmax import softmax_backward, softmax_forward
from twinlm.shared.naming import QKV_PROJECTIONS
from twinlm.shared.validate import require_attention_inputs, require_mha_inputs


def attention_forward(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    causal: bool = True,
    dropout_mask: np.ndarray | None = None,
    p: float = 0.0,
):
    """y = dropout(softmax(q kᵀ/√d + causal mask)) v. q (..., Tq, d), k, v (..., Tk, d).

    dropout_mask (..., Tq, Tk) of 0/1 keeps weight ij where it is 1 and scales kept weights by
    1/(1-p); None means no dropout (then p must be 0). Returns (y, cache).
    """
    require_attention_inputs(q, k, v, causal, dropout_mask, p)
    t_q, t_k = q.shape[-2], k.shape[-2]
    scores = (q @ np.swapaxes(k, -1, -2)) / math.sqrt(q.shape[-1])  # (..., Tq, Tk)
    if causal:
        visible = np.arange(t_k) <= np.arange(t_q)[:, None] + (t_k - t_q)  # (Tq, Tk)
        scores = np.where(visible, scores, -np.inf)  # (..., Tq, Tk)
    weights, softmax_cache = softmax_forward(scores)  # (..., Tq, Tk) A
    dropped, dropout_cache = maybe_dropout_forward(weights, dropout_mask, p)  # (..., Tq, Tk) Ã
    y = dropped @ v  # (..., Tq, d)
    return y, (q, k, v, dropped, softmax_cache, dropout_cache)


def attention_backward(dy: np.ndarray, cache):
    """Returns (dq, dk, dv)."""
    q, k, v, dropped, softmax_cache, dropout_cache = cache
    sqrt_d = math.sqrt(q.shape[-1])
    dv = np.swapaxes(dropped, -1, -2) @ dy  # (..., Tk, d)
    ddropped = dy @ np.swapaxes(v, -1, -2)  # (..., Tq, Tk) dÃ
    dweights = maybe_dropout_backward(ddropped, dropout_cache)  # (..., Tq, Tk) dA
    dscores = softmax_backward(dweights, softmax_cache)  # (..., Tq, Tk) dS, 0 where masked
    dq = (dscores @ k) / sqrt_d  # (..., Tq, d)
    dk = (np.swapaxes(dscores, -1, -2) @ q) / sqrt_d  # (..., Tk, d)
    return dq, dk, dv


# ---- multi-head attention ------------------------------------------------------------------------


def multihead_attention_forward(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    num_heads: int,
    dropout_mask: np.ndarray | None = None,
    p: float = 0.0,
):
    """Causal multi-head self-attention. x (B, T, d_in); params keyed like the book's
    MultiHeadAttention state_dict; dropout_mask (B, H, T, T). Returns (y (B, T, d_out), cache)."""
    return multihead_attention_with(attention_forward, x, params, num_heads, dropout_mask, p)


def multihead_attention_backward(dy: np.ndarray, cache):
    """Returns (dx, dparams); dparams has exactly the keys of the forward's params."""
    return multihead_attention_backward_with(attention_backward, dy, cache)


def multihead_attention_with(attention, x, params, num_heads: int, dropout_mask, p: float):
    """multihead_attention_forward with `attention` (an attention_forward) as its core: this
    file's, or the fast path's (numpy_impl/fast/attention.py)."""
    d_out = require_mha_inputs(x, params, num_heads)
    B, T, _ = x.shape
    head_dim = d_out // num_heads
    heads, proj_caches = [], []
    for name in QKV_PROJECTIONS:
        h, c = linear_forward(
            x, params[f"{name}.weight"], params.get(f"{name}.bias")
        )  # (B, T, d_out)
        heads.append(h.reshape(B, T, num_heads, head_dim).transpose(0, 2, 1, 3))  # (B, H, T, hd)
        proj_caches.append(c)
    ctx, att_cache = attention(*heads, causal=True, dropout_mask=dropout_mask, p=p)
    ctx = ctx.transpose(0, 2, 1, 3).reshape(B, T, d_out)  # merge heads: (B, T, d_out)
    y, out_cache = linear_forward(ctx, params["out_proj.weight"], params["out_proj.bias"])
    return y, (proj_caches, att_cache, out_cache, num_heads, tuple(params))


def multihead_attention_backward_with(attention_backward, dy: np.ndarray, cache):
    """multihead_attention_backward with the attention_backward that matches the forward's core."""
    proj_caches, att_cache, out_cache, num_heads, keys = cache
    B, T, d_out = dy.shape
    grads = {}
    dctx, grads["out_proj.weight"], grads["out_proj.bias"] = linear_backward(dy, out_cache)
    dctx = dctx.reshape(B, T, num_heads, d_out // num_heads).transpose(0, 2, 1, 3)  # (B, H, T, hd)
    dheads = attention_backward(dctx, att_cache)  # dq, dk, dv: (B, H, T, hd) each
    dx = None
    for name, dh, c in zip(QKV_PROJECTIONS, dheads, proj_caches):
        dh = dh.transpose(0, 2, 1, 3).reshape(B, T, d_out)  # merge heads: (B, T, d_out)
        dx_part, grads[f"{name}.weight"], grads[f"{name}.bias"] = linear_backward(dh, c)
        if dx is None:
            dx = dx_part  # (B, T, d_in)
        else:
            dx += dx_part  # x feeds all three projections, so their dx add up
    return dx, {key: grads[key] for key in keys}
