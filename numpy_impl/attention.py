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
is finite and -inf turns into an exact 0 weight; a fully masked row cannot occur.

How it is computed. The query rows go in blocks of ROW_BLOCK; a causal block of rows r0 .. r1-1
sees keys 0 .. r1-1 + Tk-Tq only, so the scores of the keys after it are never computed, nor the
six products that would touch them (with blocks of 128 rows: 1/4 of the work at T = 256, 7/16 at
T = 1024). Within a block every (batch, head) is one batched product on the head views (matmul
reads the transposed, strided operands as fast as copies here). Mask, softmax and the softmax
backward run in place on the block's scores, a few (batch, head) matrices at a time on two
threads (twinlm/shared/blocks.py). 1/√d is folded into q (exact for d = 64: a power of two). Each
block costs one BLAS call per (batch, head) and product, so blocks are not made smaller: at
T = 256, 64-row blocks did no better than 128 on one thread and worse on two.

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

import functools
import math

import numpy as np

from numpy_impl.linear import linear_backward, linear_forward
from twinlm.shared.blocks import for_blocks, rows_per_block
from twinlm.shared.naming import QKV_PROJECTIONS
from twinlm.shared.validate import require_attention_inputs, require_mha_inputs

ROW_BLOCK = 128  # query rows per block: masked keys are skipped block by block


def _row_blocks(t_q: int, t_k: int, causal: bool):
    """(r0, r1, e) per block: query rows r0 .. r1-1 look at keys 0 .. e-1 (all Tk unless causal)."""
    for r0 in range(0, t_q, ROW_BLOCK):
        r1 = min(r0 + ROW_BLOCK, t_q)
        yield r0, r1, (r1 + t_k - t_q if causal else t_k)


@functools.lru_cache(maxsize=8)
def _after_diagonal(rows: int) -> np.ndarray:
    """(rows, rows) bool, True above the diagonal: in a causal block's last `rows` keys, the keys
    after each query. Cached and read-only."""
    mask = np.triu(np.ones((rows, rows), dtype=bool), 1)
    mask.flags.writeable = False
    return mask


def _masked_softmax_(w: np.ndarray, causal: bool) -> None:
    """w ← softmax(w + causal mask) over the last axis, in place (numpy_impl/softmax.py's
    arithmetic). w (n, rows, e): a causal block's last `rows` keys hold the diagonal."""
    if causal:  # hide the keys after each query
        rows, e = w.shape[-2:]
        np.copyto(w[..., e - rows :], -np.inf, where=_after_diagonal(rows))
    w -= w.max(axis=-1, keepdims=True)
    np.exp(w, out=w)
    w /= w.sum(axis=-1, keepdims=True)


def _softmax_backward_(ds: np.ndarray, a: np.ndarray) -> None:
    """ds ← A ⊙ (dA - Σ_j dA_j A_j), in place over dA; then once more minus its row sums' share.

    Rows of dS sum to 0 (softmax ignores a constant added to a row), but rounding leaves a
    residual that dq = dS k multiplies by whatever all keys share (a key bias, say), which can
    swamp the small differences dq really depends on: project it out once more (zero in exact
    arithmetic; masked entries stay 0 because A is 0 there). torch autograd gets the same effect
    from the gradient through the max subtracted inside softmax."""
    tmp = ds * a
    ds -= tmp.sum(axis=-1, keepdims=True)
    ds *= a
    np.multiply(a, ds.sum(axis=-1, keepdims=True), out=tmp)
    ds -= tmp


def _for_matrices(w: np.ndarray, chain, *others: np.ndarray) -> None:
    """chain(w[i:j], *(o[i:j] for o in others)) over w's leading (batch, head) matrices, a few at
    a time on two threads (twinlm/shared/blocks.py). w, others: fresh (..., rows, e) arrays."""
    w3 = w.reshape(-1, *w.shape[-2:])  # (n, rows, e) a view
    o3 = [o.reshape(w3.shape) for o in others]
    per_block = rows_per_block(w3[0].size)
    for_blocks(lambda lo, hi: chain(w3[lo:hi], *(o[lo:hi] for o in o3)), w3.shape[0], per_block)


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
    scale = 1.0 / math.sqrt(q.shape[-1])  # a Python float: float32 stays float32
    qs = q * scale  # (..., Tq, d) q/√d
    kt = np.swapaxes(k, -1, -2)  # (..., d, Tk) a view: matmul reads transposed operands as fast
    keep = None
    if dropout_mask is not None:  # 0/1 in q's dtype, and 1/(1-p), as numpy_impl/dropout.py
        keep = (dropout_mask.astype(q.dtype, copy=False), 1.0 / (1.0 - float(p)))
    y = np.empty(q.shape, q.dtype)  # (..., Tq, d)
    blocks = []
    for r0, r1, e in _row_blocks(t_q, t_k, causal):
        w = qs[..., r0:r1, :] @ kt[..., :e]  # (..., rows, e) scores of the keys these rows can see
        _for_matrices(w, functools.partial(_masked_softmax_, causal=causal))  # (..., rows, e) A
        dropped = w
        if keep is not None:
            dropped = w * keep[0][..., r0:r1, :e]  # (..., rows, e) Ã = A ⊙ M / (1 - p)
            dropped *= keep[1]
        np.matmul(dropped, v[..., :e, :], out=y[..., r0:r1, :])  # (..., rows, d)
        blocks.append((w, dropped))
    return y, (qs, k, v, keep, blocks, causal, scale)


def attention_backward(dy: np.ndarray, cache):
    """Returns (dq, dk, dv)."""
    qs, k, v, keep, blocks, causal, scale = cache
    t_q, t_k = qs.shape[-2], k.shape[-2]
    dq = np.empty(qs.shape, qs.dtype)  # (..., Tq, d)
    dk = np.zeros(k.shape, k.dtype)  # (..., Tk, d) summed over the query blocks
    dv = np.zeros(v.shape, v.dtype)  # (..., Tk, d)
    for (r0, r1, e), (a, dropped) in zip(_row_blocks(t_q, t_k, causal), blocks):
        dy_b = dy[..., r0:r1, :]  # (..., rows, d)
        dv[..., :e, :] += np.swapaxes(dropped, -1, -2) @ dy_b  # dv = Ãᵀ dy
        ds = dy_b @ np.swapaxes(v[..., :e, :], -1, -2)  # (..., rows, e) dÃ = dy vᵀ
        if keep is not None:
            ds *= keep[0][..., r0:r1, :e]  # dA = dÃ ⊙ M / (1 - p)
            ds *= keep[1]
        _for_matrices(ds, _softmax_backward_, a)  # (..., rows, e) dS, in place
        np.matmul(ds, k[..., :e, :], out=dq[..., r0:r1, :])  # dq = dS k  (· 1/√d below)
        dk[..., :e, :] += np.swapaxes(ds, -1, -2) @ qs[..., r0:r1, :]  # dk = dSᵀ q/√d
    dq *= scale
    return dq, dk, dv


# ---- multi-head attention --------------------------------------------------------------------------


def multihead_attention_forward(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    num_heads: int,
    dropout_mask: np.ndarray | None = None,
    p: float = 0.0,
):
    """Causal multi-head self-attention. x (B, T, d_in); params keyed like the book's
    MultiHeadAttention state_dict; dropout_mask (B, H, T, T). Returns (y (B, T, d_out), cache)."""
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
    ctx, att_cache = attention_forward(*heads, causal=True, dropout_mask=dropout_mask, p=p)
    ctx = ctx.transpose(0, 2, 1, 3).reshape(B, T, d_out)  # merge heads: (B, T, d_out)
    y, out_cache = linear_forward(ctx, params["out_proj.weight"], params["out_proj.bias"])
    return y, (proj_caches, att_cache, out_cache, num_heads, tuple(params))


def multihead_attention_backward(dy: np.ndarray, cache):
    """Returns (dx, dparams); dparams has exactly the keys of the forward's params."""
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
