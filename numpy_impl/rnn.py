"""The vanilla (Elman) RNN cell and the multi-layer RNN with backpropagation through time (BPTT).

Layout and names are torch.nn.RNN's: weight_ih (H, I), weight_hh (H, H), two biases (H,);
nonlinearity φ = tanh (the default) or relu. Karpathy's min-char-rnn and the snippets of "The
Unreasonable Effectiveness of Recurrent Neural Networks" are this cell with φ = tanh.

Cell forward, x (B, I), h (B, H):
    a  = x W_ihᵀ + b_ih + h W_hhᵀ + b_hh          (B, H)  pre-activation
    h' = φ(a)                                      (B, H)
Cell backward, given dh' (B, H):
    da = dh' ⊙ φ'(a),   φ'(a) = 1 - h'² for tanh, [h' > 0] for relu (read off the output; at
                        a = 0 the relu's derivative is taken as 0, as torch does)
    dx = da W_ih    dh = da W_hh    dW_ih = daᵀ x    dW_hh = daᵀ h    db_ih = db_hh = Σ_batch da

Layer over time (`rnn_forward` / `rnn_backward`; `RNN` is a thin class over the pair),
x (B, T, I), layer k's state h_0 → h_T:
    A_x = X W_ihᵀ + b_ih + b_hh                    (T, B, H)  ONE matmul for every step
    h_t = φ(A_x[t] + h_{t-1} W_hhᵀ)                h_t is the layer's output at step t
    Layers stack: layer k+1 reads layer k's outputs (times a dropout keep-mask / (1 - p) between
    layers, as torch.nn.RNN's `dropout` does); out = the last layer's h_1..h_T; h_n = every
    layer's h_T.
BPTT runs t = T-1 … 0, carrying dh backwards from the upstream dh_n:
    dh'_t = dout_t + da_{t+1} W_hh                 h_t feeds the output and step t+1
    da_t  = dh'_t ⊙ φ'_t                           φ' for all T steps at once, before the loop
    after the loop, for the whole sequence at once (rows are the T·B (step, sequence) pairs):
    dW_ih = Σ_t da_tᵀ x_t    dW_hh = Σ_t da_tᵀ h_{t-1}    db = Σ_t Σ_batch da_t    dX = dA W_ih
dh_0 is what remains after step 0. Arrays are kept time-major (T, B, ·) so each step's slice is
contiguous. A mask of None between two layers (or dropout_masks None) is no dropout there.

The stacking of layers with dropout between them and the `RecurrentLayer` class (torch's layout
and keys, state_dict/load_state_dict) are numpy_impl/recurrent.py's.
"""

from __future__ import annotations

import numpy as np

from numpy_impl.recurrent import (
    RecurrentLayer,
    input_projection_grads,
    layer_params,
    stack_layers_backward,
    stack_layers_forward,
)
from twinlm.shared.init import init_rnn_params
from twinlm.shared.validate import (
    require_choice,
    require_recurrent_cell_inputs,
    require_recurrent_inputs,
    require_recurrent_params,
)

NONLINEARITIES = ("tanh", "relu")


def _activate(a: np.ndarray, nonlinearity: str) -> np.ndarray:
    """φ(a) in place."""
    if nonlinearity == "tanh":
        return np.tanh(a, out=a)
    return np.maximum(a, 0, out=a)


def _derivative(h: np.ndarray, nonlinearity: str) -> np.ndarray:
    """φ'(a) from the output h = φ(a): 1 - h² (tanh) or [h > 0] (relu), in h's dtype."""
    if nonlinearity == "tanh":
        return (1 - h) * (1 + h)  # = 1 - h², without the cancellation of 1 - h·h near |h| = 1
    return (h > 0).astype(h.dtype)


def rnn_cell_forward(
    x: np.ndarray,
    h: np.ndarray,
    weight_ih: np.ndarray,
    weight_hh: np.ndarray,
    bias_ih: np.ndarray,
    bias_hh: np.ndarray,
    nonlinearity: str = "tanh",
):
    """One vanilla RNN step (torch.nn.RNNCell). Returns (h_next (B, H), cache)."""
    require_choice("nonlinearity", nonlinearity, NONLINEARITIES)
    require_recurrent_cell_inputs(x, {"h": h}, weight_ih, weight_hh, bias_ih, bias_hh, 1)
    a = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh  # (B, H)
    h_next = _activate(a, nonlinearity)  # (B, H)
    return h_next, (x, h, weight_ih, weight_hh, h_next, nonlinearity)


def rnn_cell_backward(dh_next: np.ndarray, cache):
    """Returns (dx, dh, dweight_ih, dweight_hh, dbias_ih, dbias_hh)."""
    x, h, weight_ih, weight_hh, h_next, nonlinearity = cache
    da = dh_next * _derivative(h_next, nonlinearity)  # (B, H)
    dbias = da.sum(axis=0)  # (H,)
    return (
        da @ weight_ih,  # dx (B, I)
        da @ weight_hh,  # dh (B, H)
        da.T @ x,  # dweight_ih (H, I)
        da.T @ h,  # dweight_hh (H, H)
        dbias,
        dbias.copy(),  # both biases enter a the same way; separate arrays, so no aliasing
    )


# ---- the multi-layer RNN over time ---------------------------------------------------------------


def rnn_forward(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    h0: np.ndarray | None = None,
    dropout_masks: list[np.ndarray | None] | None = None,
    p: float = 0.0,
    nonlinearity: str = "tanh",
):
    """Multi-layer vanilla RNN over time, batch first (see the module docstring). x (B, T, I);
    params keyed like torch.nn.RNN's state_dict (num_layers and hidden size read off them); h0
    (L, B, H), zeros if None; dropout_masks None or L-1 keep-masks (B, T, H) (or None entries)
    applied to each layer's output but the last, scaled by 1/(1 - p).
    Returns (out (B, T, H), h_n (L, B, H), cache)."""
    require_choice("nonlinearity", nonlinearity, NONLINEARITIES)
    I, H, L = require_recurrent_params(params, 1, "torch.nn.RNN")
    dtype = params["weight_ih_l0"].dtype
    require_recurrent_inputs(
        x, {"h0": h0}, dropout_masks, p, input_size=I, hidden_size=H, num_layers=L, dtype=dtype
    )
    h0 = np.zeros((L, x.shape[0], H), dtype) if h0 is None else h0

    def layer(k: int, layer_in: np.ndarray):
        return _layer_forward(layer_in, h0[k], *layer_params(params, k), nonlinearity)

    out, (h_n,), cache = stack_layers_forward(x, L, layer, dropout_masks, p)
    return out, h_n, cache


def rnn_backward(dout: np.ndarray, dh_n: np.ndarray | None, cache):
    """BPTT. dout (B, T, H) on `out`; dh_n (L, B, H) on the final state, or None.
    Returns (dx (B, T, I), dh0 (L, B, H), grads keyed like params, in state_dict order)."""
    dstates = None if dh_n is None else {"dh_n": dh_n}
    dx, (dh0,), grads = stack_layers_backward(dout, dstates, cache, _layer_backward)
    return dx, dh0, grads


def _layer_forward(layer_in, h0, W_ih, W_hh, b_ih, b_hh, nonlinearity):
    """One layer over time: layer_in (T, B, I), h0 (B, H). Returns (its outputs (T, B, H),
    (h_T,), cache)."""
    T, B, _ = layer_in.shape
    H = W_hh.shape[0]
    # The input part of every step's pre-activation at once: (T·B, I) @ (I, H).
    a_x = (layer_in.reshape(T * B, -1) @ W_ih.T).reshape(T, B, H)  # (T, B, H)
    a_x += b_ih + b_hh
    hs = np.empty((T + 1, B, H), layer_in.dtype)  # hs[0] = h_0, hs[t+1] = h_t (the output)
    hs[0] = h0
    for t in range(T):
        np.matmul(hs[t], W_hh.T, out=hs[t + 1])  # (B, H)  h_{t-1} W_hhᵀ
        hs[t + 1] += a_x[t]
        _activate(hs[t + 1], nonlinearity)  # h_t = φ(a_t)
    return hs[1:], (hs[T],), (layer_in, hs, W_ih, W_hh, nonlinearity)


def _layer_backward(d_out, dfinal, cache):
    """One layer's BPTT: d_out (T, B, H) on its outputs, dfinal (dh_T,) or None.
    Returns (d_in (T, B, I), (dh_0,), (dW_ih, dW_hh, db_ih, db_hh))."""
    layer_in, hs, W_ih, W_hh, nonlinearity = cache
    T, B, H = d_out.shape
    da = _derivative(hs[1:], nonlinearity)  # (T, B, H)  φ'_t, then da_t in place
    dh_next = np.zeros((B, H), hs.dtype) if dfinal is None else dfinal[0]
    for t in reversed(range(T)):
        da[t] *= d_out[t] + dh_next  # da_t = (dout_t + dh_{t+1}) ⊙ φ'_t
        dh_next = da[t] @ W_hh  # (B, H)  a_t = … + h_{t-1} W_hhᵀ
    d_in, dW_ih, db = input_projection_grads(da, layer_in, W_ih)  # A_x = X W_ihᵀ + b
    dW_hh = da.reshape(T * B, H).T @ hs[:-1].reshape(T * B, H)  # (H, H)
    return d_in, (dh_next,), (dW_ih, dW_hh, db, db.copy())  # the same da; separate arrays


class RNN(RecurrentLayer):
    """Multi-layer vanilla RNN (torch.nn.RNN, batch first): a thin class over rnn_forward /
    rnn_backward. nonlinearity "tanh" or "relu"; every parameter U(-1/√H, 1/√H) as torch."""

    gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        seed: int = 0,
        dtype=np.float32,
    ):
        require_choice("nonlinearity", nonlinearity, NONLINEARITIES)
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, seed, dtype)

    def _init(self, input_size, hidden_size, num_layers, seed, dtype):
        return init_rnn_params(input_size, hidden_size, num_layers, seed, dtype)

    def _forward(self, x, params, h0, dropout_masks, p):
        return rnn_forward(x, params, h0, dropout_masks, p, self.nonlinearity)

    def _backward(self, dout, dh_n, cache):
        return rnn_backward(dout, dh_n, cache)
