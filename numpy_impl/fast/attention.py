"""Attention, the fast path: numpy_impl/attention.py's math (its docstring has it), computed so:

The query rows go in blocks of ROW_BLOCK; a causal block of rows r0 .. r1-1 sees keys
0 .. r1-1 + Tk-Tq only, so the scores of the keys after it are never computed, nor the six products
that would touch them (with blocks of 128 rows: 1/4 of the work at T = 256, 7/16 at T = 1024).
Within a block every (batch, head) is one batched product on the head views (matmul reads the
transposed, strided operands as fast as copies). Mask, softmax and the softmax backward run in
place on the block's scores (numpy_impl/softmax.py's arithmetic), a few (batch, head) matrices at a
time on threads (numpy_impl/fast/blocks.py). 1/√d is folded into q (exact for d = 64: a power of
two). Each block costs one BLAS call per (batch, head) and product, so blocks are not made smaller.

Multi-head attention is numpy_impl/attention.py's, with this attention at its core.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from numpy_impl.attention import multihead_attention_backward_with, multihead_attention_with
from numpy_impl.fast.blocks import for_blocks, rows_per_block
from twinlm.shared.validate import require_attention_inputs

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
    a time on threads (numpy_impl/fast/blocks.py). w, others: fresh (..., rows, e) arrays."""
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
    """numpy_impl.attention_forward in blocks of query rows (module docstring). Returns (y,
    cache)."""
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


def multihead_attention_forward(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    num_heads: int,
    dropout_mask: np.ndarray | None = None,
    p: float = 0.0,
):
    """numpy_impl.multihead_attention_forward with this file's attention."""
    return multihead_attention_with(attention_forward, x, params, num_heads, dropout_mask, p)


def multihead_attention_backward(dy: np.ndarray, cache):
    """Returns (dx, dparams)."""
    return multihead_attention_backward_with(attention_backward, dy, cache)
