"""Cross entropy, the fast path: numpy_impl/loss.py's math (its docstring has it, with the log1p
and -r / (1 + r) forms that keep r to full precision), each chain of passes run on a block of rows
at a time (numpy_impl/fast/blocks.py), so a row is read from memory once, not once per pass, with
the blocks shared out among threads. `cross_entropy_inplace` / `cross_entropy_backward_inplace`
turn the caller's logits into the softmax and then into dlogits in place (GPTModel's fast
loss_and_grads, numpy_impl/fast/gpt.py): one (B, T, V) buffer instead of three.
"""

from __future__ import annotations

import numpy as np

from numpy_impl.fast.blocks import as_rows, for_blocks, rows_per_block
from numpy_impl.loss import require_cross_entropy_inputs


def cross_entropy_forward(logits: np.ndarray, targets: np.ndarray, ignore_index: int = -100):
    """Mean cross entropy of `logits` (..., V) against integer `targets` (...).

    Returns (loss, cache); loss is a 0-d array of logits' dtype.
    """
    return _cross_entropy(logits, targets, ignore_index, inplace=False)


def cross_entropy_backward(dloss: np.ndarray, cache) -> np.ndarray:
    """Returns dlogits (..., V)."""
    return _dlogits(dloss, cache, inplace=False)


def cross_entropy_inplace(logits: np.ndarray, targets: np.ndarray, ignore_index: int = -100):
    """cross_entropy_forward computing the softmax over `logits` itself, for a caller that owns the
    logits and needs them no more (GPTModel.loss_and_grads): a (B, T, V) buffer saved."""
    return _cross_entropy(logits, targets, ignore_index, inplace=True)


def cross_entropy_backward_inplace(dloss: np.ndarray, cache) -> np.ndarray:
    """cross_entropy_backward writing dlogits over the cached softmax: the cache is used up."""
    return _dlogits(dloss, cache, inplace=True)


def _cross_entropy(logits: np.ndarray, targets: np.ndarray, ignore_index: int, inplace: bool):
    require_cross_entropy_inputs(logits, targets, ignore_index)
    V = logits.shape[-1]
    kept = targets != ignore_index  # (...)
    n = int(kept.sum())
    safe_targets = np.where(kept, targets, 0)  # (...)  any valid index on ignored rows
    logits2 = as_rows(logits)  # (rows, V)
    rows = logits2.shape[0]
    at_target = safe_targets.reshape(rows, 1)  # (rows, 1)  index for take/put_along_axis
    z = logits2 if inplace else np.empty_like(logits2)  # (rows, V)  becomes the softmax
    z_target = np.empty(rows, logits.dtype)  # z_y - m
    e_target, rest = np.empty((rows, 1), logits.dtype), np.empty((rows, 1), logits.dtype)

    def block(lo: int, hi: int) -> None:
        zb, lb, at = z[lo:hi], logits2[lo:hi], at_target[lo:hi]
        np.subtract(lb, lb.max(axis=-1, keepdims=True), out=zb)  # z - m: max entry is 0
        z_target[lo:hi] = np.take_along_axis(zb, at, axis=-1)[:, 0]  # 0: the target is a max
        np.exp(zb, out=zb)  # e = exp(z - m)
        e_target[lo:hi] = np.take_along_axis(zb, at, axis=-1)
        np.put_along_axis(zb, at, 0, axis=-1)
        np.sum(zb, axis=-1, keepdims=True, out=rest[lo:hi])  # r = Σ_{v≠y} e_v
        np.put_along_axis(zb, at, e_target[lo:hi], axis=-1)
        zb /= e_target[lo:hi] + rest[lo:hi]  # softmax = e / Σ e

    for_blocks(block, rows, rows_per_block(V))
    sum_exp = e_target + rest  # (rows, 1)
    # -log p[y]: log1p(r) where the target is a largest logit (e_y = 1), else log Σ e - (z_y - m)
    nll = np.where(z_target == 0, np.log1p(rest[:, 0]), np.log(sum_exp[:, 0]) - z_target)
    if n == 0:
        loss = np.asarray(np.nan, dtype=logits.dtype)
    else:
        loss = np.asarray(np.where(kept.reshape(rows), nll, 0).sum() / n, dtype=logits.dtype)  # ()
    cache = (
        z.reshape(logits.shape),
        safe_targets,
        kept,
        n,
        (rest / sum_exp).reshape(*kept.shape, 1),
    )
    return loss, cache


def _dlogits(dloss: np.ndarray, cache, inplace: bool) -> np.ndarray:
    probs, safe_targets, kept, n, others = cache  # others = 1 - p_y, as r / Σ e  (..., 1)
    dlogits = probs if inplace else np.empty_like(probs)  # (..., V)
    probs2, dlogits2 = as_rows(probs), as_rows(dlogits)  # (rows, V)
    rows, V = probs2.shape
    scale = np.asarray(dloss, dtype=probs.dtype) / max(n, 1)  # ()  n = 0: every row is ignored
    row_scale = (kept * scale).reshape(rows, 1)  # (rows, 1)  ignored rows get 0
    at_target, minus_others = safe_targets.reshape(rows, 1), -others.reshape(rows, 1)

    def block(lo: int, hi: int) -> None:
        db = dlogits2[lo:hi]
        if not inplace:
            np.copyto(db, probs2[lo:hi])
        np.put_along_axis(db, at_target[lo:hi], minus_others[lo:hi], axis=-1)  # softmax - onehot
        db *= row_scale[lo:hi]

    for_blocks(block, rows, rows_per_block(V))
    return dlogits
