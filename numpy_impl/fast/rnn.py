"""The multi-layer vanilla RNN, the fast path: numpy_impl/rnn.py's math (its docstring has it),
with each layer over time computed so:
    A = X W_ihᵀ + b_ih + b_hh                      (T, B, H)  ONE matmul for every step
    a_t = A[t] += h_{t-1} W_hhᵀ,  h_t = φ(a_t)     A becomes the pre-activations, kept for BPTT
BPTT, t = T-1 … 0: dh'_t = dout_t + da_{t+1} W_hh, da_t = dh'_t ⊙ φ'(a_t) with φ'(a) for all T
steps at once before the loop, from the pre-activations (sech²(a), not 1 - h², which cancels as
|h| → 1: numpy_impl/rnn.py); after the loop, over all T·B rows at once
(numpy_impl/fast/recurrent.py):
    dW_ih = Σ_t da_tᵀ x_t    dW_hh = Σ_t da_tᵀ h_{t-1}    db = Σ_t Σ_batch da_t    dX = dA W_ih
Arrays are kept time-major (T, B, ·) so each step's slice is contiguous.
"""

from __future__ import annotations

import functools

import numpy as np

from numpy_impl.fast.recurrent import input_projection_grads, tanh_derivative_
from numpy_impl.recurrent import single_state_backward_with, single_state_with
from numpy_impl.rnn import NONLINEARITIES
from twinlm.shared.validate import require_choice


def rnn_forward(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    h0: np.ndarray | None = None,
    dropout_masks: list[np.ndarray | None] | None = None,
    p: float = 0.0,
    nonlinearity: str = "tanh",
):
    """numpy_impl.rnn_forward with the fast layers."""
    require_choice("nonlinearity", nonlinearity, NONLINEARITIES)
    layer = functools.partial(_layer_forward, nonlinearity=nonlinearity)
    return single_state_with(layer, x, params, h0, dropout_masks, p, 1, "torch.nn.RNN")


def rnn_backward(dout: np.ndarray, dh_n: np.ndarray | None, cache):
    """Returns (dx, dh0, grads)."""
    return single_state_backward_with(_layer_backward, dout, dh_n, cache)


def _activate(a: np.ndarray, nonlinearity: str, out: np.ndarray) -> np.ndarray:
    """φ(a) into out."""
    if nonlinearity == "tanh":
        return np.tanh(a, out=out)
    return np.maximum(a, 0, out=out)


def _derivative_(a: np.ndarray, nonlinearity: str) -> np.ndarray:
    """φ'(a) in place of the pre-activations a (numpy_impl.rnn.derivative)."""
    if nonlinearity == "tanh":
        return tanh_derivative_(a, out=a)
    return np.greater(a, 0, out=a)  # [a > 0] as 0 or 1 in a's dtype


def _layer_forward(layer_in, h0, W_ih, W_hh, b_ih, b_hh, nonlinearity):
    """One layer over time: layer_in (T, B, I), h0 (B, H). Returns (its outputs (T, B, H),
    (h_T,), cache)."""
    T, B, _ = layer_in.shape
    H = W_hh.shape[0]
    # The input part of every step's pre-activation at once: (T·B, I) @ (I, H).
    a = (layer_in.reshape(T * B, -1) @ W_ih.T).reshape(T, B, H)  # (T, B, H)
    a += b_ih + b_hh
    hs = np.empty((T + 1, B, H), layer_in.dtype)  # hs[0] = h_0, hs[t+1] = h_t (the output)
    hs[0] = h0
    for t in range(T):
        np.matmul(hs[t], W_hh.T, out=hs[t + 1])  # (B, H)  h_{t-1} W_hhᵀ
        a[t] += hs[t + 1]  # a_t, kept
        _activate(a[t], nonlinearity, out=hs[t + 1])  # h_t = φ(a_t)
    return hs[1:], (hs[T],), (layer_in, hs, a, W_ih, W_hh, nonlinearity)


def _layer_backward(d_out, dfinal, cache):
    """One layer's BPTT: d_out (T, B, H) on its outputs, dfinal (dh_T,) or None.
    Returns (d_in (T, B, I), (dh_0,), (dW_ih, dW_hh, db_ih, db_hh))."""
    layer_in, hs, a, W_ih, W_hh, nonlinearity = cache
    T, B, H = d_out.shape
    da = _derivative_(a.copy(), nonlinearity)  # (T, B, H)  φ'(a_t), then da_t in place
    dh_next = np.zeros((B, H), hs.dtype) if dfinal is None else dfinal[0]
    for t in reversed(range(T)):
        da[t] *= d_out[t] + dh_next  # da_t = (dout_t + dh_{t+1}) ⊙ φ'_t
        dh_next = da[t] @ W_hh  # (B, H)  a_t = … + h_{t-1} W_hhᵀ
    d_in, dW_ih, db = input_projection_grads(da, layer_in, W_ih)  # A_x = X W_ihᵀ + b
    dW_hh = da.reshape(T * B, H).T @ hs[:-1].reshape(T * B, H)  # (H, H)
    return d_in, (dh_next,), (dW_ih, dW_hh, db, db.copy())  # the same da; separate arrays
