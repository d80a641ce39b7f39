"""Token embedding: a table lookup, y[..., :] = W[ids[...], :].

Forward:   y = S W                        ids (...) integers in [0, V), W (V, D), y (..., D)
           where S (N, V) is the one-hot selection matrix of the N = ids.size ids: S[n, ids[n]] = 1.
Backward:  dW = Sᵀ dy                      (V, D)
           i.e. row v of dW is the sum of the upstream rows dy[n] over every n with ids[n] = v;
           ids that repeat accumulate, ids that never occur get zero rows.

S is never built. The ids are sorted (stably, so equal ids keep their order), which puts each id's
rows next to each other: an id read once gets its row in one vectorized scatter, and each id read
more than once gets the sum of its rows, one id at a time. At GPT-2's shape (V = 50257, N = 1024,
D = 768) the zeroed (V, D) result costs far more than the scatter; with few distinct ids (char-RNN,
V = 65) the loop has at most V steps. np.add.at and np.add.reduceat (which reduces across rows)
are slower.
"""

from __future__ import annotations

import numpy as np

from twinlm.shared.validate import require_float, require_ids, require_ndim


def embedding_forward(ids: np.ndarray, weight: np.ndarray):
    """y = weight[ids]. Returns (y, cache)."""
    require_ndim("weight", weight, 2, 2)
    require_float("weight", weight)
    require_ids("ids", ids, weight.shape[0])
    y = weight[ids]  # (..., D)
    return y, (ids, weight.shape[0])


def embedding_backward(dy: np.ndarray, cache) -> np.ndarray:
    """Returns dweight (V, D): the rows of dy summed into the rows their ids selected."""
    ids, vocab_size = cache
    n, d = ids.size, dy.shape[-1]
    dweight = np.zeros((vocab_size, d), dy.dtype)  # (V, D)
    sum_rows_into(dweight, ids.reshape(n), dy.reshape(n, d))
    return dweight


def sum_rows_into(dweight: np.ndarray, ids: np.ndarray, rows: np.ndarray) -> None:
    """dweight[v] = Σ rows[n] over every n with ids[n] = v, for the ids present; dweight (V, D) is
    zero where they are not (the caller's zeros). ids (N,), rows (N, D)."""
    if ids.size == 0:
        return
    order = np.argsort(ids, kind="stable")  # (N,) equal ids side by side, in their order
    sorted_ids = ids[order]  # (N,)
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])  # (U,) each id's run
    counts = np.diff(np.r_[starts, ids.size])  # (U,) how often each distinct id was read
    once = counts == 1
    dweight[sorted_ids[starts[once]]] = rows[order[starts[once]]]  # read once: that row
    for start, count in zip(starts[~once].tolist(), counts[~once].tolist()):
        dweight[sorted_ids[start]] = rows[order[start : start + count]].sum(axis=0)  # the sum
