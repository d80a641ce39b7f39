"""Grouped-query attention (GQA): H query heads share Hkv key/value heads, G = H / Hkv per group.

Query head h uses key/value head h // G (Hugging Face's repeat_kv: kv head j serves query heads
jG .. jG+G-1). G = 1 is multi-head attention, Hkv = 1 multi-query attention. For each batch row
and kv head j, with the group's G queries stacked as one (G·Tq, d) matrix Q_j:
    S = Q_j K_jᵀ / √d                      (G·Tq, Tk)  row g·Tq + i is query head jG+g, position i
    S_ri = -inf  where key i is after query r's position (causal, bottom-right aligned as in
                 numpy_impl/attention.py: a query at row i sits at key position i + Tk - Tq)
    A = softmax(S)                         (G·Tq, Tk)
    Y_j = A V_j                            (G·Tq, d)   unstacked into the G query heads
Stacking is free (a reshape of q's (B, H, Tq, d) layout) and turns G small matmuls against the
same K_j into one larger one; K and V are never repeated in memory.
Backward, from dY_j (G·Tq, d):
    dV_j = Aᵀ dY_j                         (Tk, d)     sums over the G heads of the group
    dA = dY_j V_jᵀ,  dS = A ⊙ (dA - Σ_k dA_k A_k)     softmax backward (0 where masked)
    dS ← dS - A Σ_k dS_k                   removes the rounding residual (numpy_impl/attention.py)
    dQ_j = dS K_j / √d                     (G·Tq, d)
    dK_j = dSᵀ Q_j / √d                    (Tk, d)     sums over the G heads of the group
So each kv head's gradient is the sum over the query heads that share it, as it must be: one
tensor is read G times. Qwen3 has no attention dropout, so neither does this op.
"""

from __future__ import annotations

import numpy as np

from numpy_impl.softmax import softmax_backward, softmax_forward
from twinlm.shared.validate import require_gqa_inputs


def _stacked_visible(groups: int, t_q: int, t_k: int) -> np.ndarray:
    """(G·Tq, Tk) bool: row g·Tq + i (query position i) may look at key j iff j ≤ i + Tk - Tq."""
    visible = np.arange(t_k)[None, :] <= np.arange(t_q)[:, None] + (t_k - t_q)  # (Tq, Tk)
    return np.tile(visible, (groups, 1))


def grouped_query_attention_forward(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool = True
):
    """y (B, H, Tq, d) = softmax(q kᵀ/√d + causal mask) v with query head h reading key/value head
    h // (H / Hkv). q (B, H, Tq, d), k, v (B, Hkv, Tk, d). Returns (y, cache)."""
    G = require_gqa_inputs(q, k, v, causal)
    B, H, Tq, d = q.shape
    Hkv, Tk = k.shape[1], k.shape[2]
    sqrt_d = float(np.sqrt(d))
    qs = q.reshape(B, Hkv, G * Tq, d)  # (B, Hkv, G·Tq, d) each group's queries stacked
    scores = (qs @ np.swapaxes(k, -1, -2)) / sqrt_d  # (B, Hkv, G·Tq, Tk)
    if causal:
        scores[..., ~_stacked_visible(G, Tq, Tk)] = -np.inf
    weights, softmax_cache = softmax_forward(scores)  # (B, Hkv, G·Tq, Tk)
    y = (weights @ v).reshape(B, H, Tq, d)  # (B, H, Tq, d)
    return y, (qs, k, v, weights, softmax_cache, sqrt_d, q.shape)


def grouped_query_attention_backward(dy: np.ndarray, cache):
    """Returns (dq, dk, dv)."""
    qs, k, v, weights, softmax_cache, sqrt_d, q_shape = cache
    dys = dy.reshape(qs.shape)  # (B, Hkv, G·Tq, d)
    dv = np.swapaxes(weights, -1, -2) @ dys  # (B, Hkv, Tk, d) summed over the group's rows
    dweights = dys @ np.swapaxes(v, -1, -2)  # (B, Hkv, G·Tq, Tk)
    dscores = softmax_backward(dweights, softmax_cache)  # (B, Hkv, G·Tq, Tk)
    dscores -= weights * dscores.sum(axis=-1, keepdims=True)  # rounding residual, see docstring
    dscores /= sqrt_d
    dq = (dscores @ k).reshape(q_shape)  # (B, H, Tq, d)
    dk = np.swapaxes(dscores, -1, -2) @ qs  # (B, Hkv, Tk, d) summed over the group's rows
    return dq, dk, dv
