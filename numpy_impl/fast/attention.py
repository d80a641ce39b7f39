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
`attention_into` / `attention_backward_into` write into the caller's arrays and take their scores
and scratch from an allocator: the fast GPT step's workspace (gpt.py), or fresh arrays.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from numpy_impl.attention import multihead_attention_backward_with, multihead_attention_with
from numpy_impl.fast.blocks import for_blocks, rows_per_block
from twinlm.shared.validate import require_attention_inputs

ROW_BLOCK = 128  # query rows per block: masked keys are skipped block by block


def row_blocks(t_q: int, t_k: int, causal: bool):
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
    scale = 1.0 / math.sqrt(q.shape[-1])  # a Python float: float32 stays float32
    qs = q * scale  # (..., Tq, d) q/√d
    keep = dropout_keep(dropout_mask, q.dtype, p)
    y = np.empty(q.shape, q.dtype)  # (..., Tq, d)
    return y, attention_into(qs, k, v, causal, keep, y, scale, _fresh)


def _fresh(key, shape: tuple[int, ...], dtype) -> np.ndarray:
    """The allocator of the functions below when no workspace is given: a new array each call."""
    return np.empty(shape, dtype)


def dropout_keep(dropout_mask: np.ndarray | None, dtype, p: float):
    """None, or (the mask as 0/1 in `dtype`, 1/(1-p)), as numpy_impl/dropout.py applies them."""
    if dropout_mask is None:
        return None
    return dropout_mask.astype(dtype, copy=False), 1.0 / (1.0 - float(p))


def attention_into(qs, k, v, causal: bool, keep, y, scale: float, alloc):
    """The forward on q/√d `qs`, k, v (..., T, d) into the caller's y (..., Tq, d), any strides;
    alloc(key, shape, dtype) gives the scores' arrays (a workspace's, or fresh). Returns the cache."""
    t_q, t_k = qs.shape[-2], k.shape[-2]
    kt = np.swapaxes(k, -1, -2)  # (..., d, Tk) a view: matmul reads transposed operands as fast
    blocks = []
    for r0, r1, e in row_blocks(t_q, t_k, causal):
        shape = (*qs.shape[:-2], r1 - r0, e)
        w = np.matmul(qs[..., r0:r1, :], kt[..., :e], out=alloc(f"w{r0}", shape, qs.dtype))
        _for_matrices(w, functools.partial(_masked_softmax_, causal=causal))  # (..., rows, e) A
        dropped = w
        if keep is not None:  # Ã = A ⊙ M / (1 - p)
            dropped = alloc(f"dropped{r0}", shape, qs.dtype)
            np.multiply(w, keep[0][..., r0:r1, :e], out=dropped)
            dropped *= keep[1]
        np.matmul(dropped, v[..., :e, :], out=y[..., r0:r1, :])  # (..., rows, d)
        blocks.append((w, dropped))
    return qs, k, v, keep, blocks, causal, scale


def attention_backward(dy: np.ndarray, cache):
    """Returns (dq, dk, dv)."""
    qs, k, v = cache[:3]
    dq = np.empty(qs.shape, qs.dtype)  # (..., Tq, d)
    dk = np.empty(k.shape, k.dtype)  # (..., Tk, d)
    dv = np.empty(v.shape, v.dtype)  # (..., Tk, d)
    attention_backward_into(dy, cache, dq, dk, dv, _fresh)
    return dq, dk, dv


def attention_backward_into(dy, cache, dq, dk, dv, alloc) -> None:
    """attention_backward into the caller's dq, dk, dv (any strides); alloc(key, shape, dtype)
    gives the scratch arrays (a workspace's, or fresh)."""
    qs, k, v, keep, blocks, causal, scale = cache
    t_q, t_k = qs.shape[-2], k.shape[-2]
    dk[...] = 0  # summed over the query blocks
    dv[...] = 0
    for (r0, r1, e), (a, dropped) in zip(row_blocks(t_q, t_k, causal), blocks):
        dy_b = dy[..., r0:r1, :]  # (..., rows, d)
        part = alloc(f"part{r0}", (*k.shape[:-2], e, k.shape[-1]), k.dtype)  # (..., e, d)
        dv[..., :e, :] += np.matmul(np.swapaxes(dropped, -1, -2), dy_b, out=part)  # dv = Ãᵀ dy
        ds = np.matmul(
            dy_b, np.swapaxes(v[..., :e, :], -1, -2), out=alloc(f"ds{r0}", a.shape, a.dtype)
        )
        if keep is not None:  # (..., rows, e) dÃ = dy vᵀ
            ds *= keep[0][..., r0:r1, :e]  # dA = dÃ ⊙ M / (1 - p)
            ds *= keep[1]
        _for_matrices(ds, _softmax_backward_, a)  # (..., rows, e) dS, in place
        np.matmul(ds, k[..., :e, :], out=dq[..., r0:r1, :])  # dq = dS k  (· 1/√d below)
        dk[..., :e, :] += np.matmul(
            np.swapaxes(ds, -1, -2), qs[..., r0:r1, :], out=part
        )  # dSᵀ q/√d
    dq *= scale


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
