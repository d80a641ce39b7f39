"""Cross-entropy loss over the last axis (mean over kept targets), and perplexity.

Forward, for logits z (..., V) and integer targets y (...); rows whose target is `ignore_index`
are left out, n = number of kept rows:
    m      = max_v z_v                              (..., 1)   subtracted so exp never overflows
    e      = exp(z - m),  r = Σ_{v≠y} e_v           (..., V), (...)   r: every term but the target's
    -log p[y] = log(e_y + r) - (z_y - m)            (...)
              = log1p(r)                            where y holds a largest logit (e_y = 1)
    loss   = -(1/n) Σ_kept log p[y]                 ()
Backward: ∂(-log p[y]) / ∂z = softmax(z) - onehot(y), so
    dz     = dloss / n · (softmax(z) - onehot(y))   on kept rows, 0 on ignored rows
    with p_y - 1 = -r / (e_y + r)                   summed from the other terms, not 1 - p_y
Where the target holds nearly all the probability, 1 + r and p_y - 1 would round away r: in float32
at r = 1e-5 that is a 0.6 % error in the loss and the target's gradient (torch's own cross_entropy
has it); log1p(r) and -r / (1 + r) keep r to full precision.
All targets ignored (n = 0): the loss is nan and the gradient zero, exactly what
torch.nn.functional.cross_entropy returns (the mean of nothing is 0/0).

How it is computed. Each chain of passes runs on a block of rows at a time
(twinlm/shared/blocks.py), so a row is read from memory once, not once per pass, and two threads
take half the rows each.

perplexity = exp(loss): the size of a uniform vocabulary that would be as surprising. Uniform logits
give loss = ln V, perplexity = V.
"""

from __future__ import annotations

import numpy as np

from twinlm.shared.blocks import as_rows, for_blocks, rows_per_block
from twinlm.shared.validate import require_float, require_ids, require_ndim, require_shape


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
    require_float("logits", logits)
    require_ndim("logits", logits, 1)
    V = logits.shape[-1]
    if V == 0:
        raise ValueError(
            f"logits must have a non-empty last (vocabulary) axis, got shape {logits.shape}"
        )
    require_ids("targets", targets, V, allowed=(ignore_index,))
    require_shape("targets", targets, logits.shape[:-1])

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


def perplexity(loss):
    """exp(loss), in the loss's dtype."""
    return np.exp(loss)
