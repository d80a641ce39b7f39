"""The LSTM cell and the multi-layer LSTM with backpropagation through time (BPTT).

Layout and names are torch.nn.LSTM's: weight_ih (4H, I), weight_hh (4H, H), two biases (4H,), gate
rows in the order i, f, g, o.

Cell forward, x (B, I), h and c (B, H):
    z = x W_ihᵀ + b_ih + h W_hhᵀ + b_hh              (B, 4H)  pre-activations [z_i z_f z_g z_o]
    i = σ(z_i)  f = σ(z_f)  g = tanh(z_g)  o = σ(z_o)  (B, H) each
    c' = f ⊙ c + i ⊙ g                                (B, H)
    h' = o ⊙ tanh(c')                                 (B, H)
σ(z) = 1 / (1 + e^-z) (numpy_impl/recurrent.py): a few ulp relative for every z, no overflow.

Cell backward, given dh' and dc' (the gradient reaching c' from the next step):
    dc  = dc' + dh' ⊙ o ⊙ tanh'(c')                    total gradient on c'       (B, H)
    dz_i = dc ⊙ g ⊙ σ'(z_i)      dz_f = dc ⊙ c ⊙ σ'(z_f)                      σ'(z) = σ(z)σ(-z)
    dz_g = dc ⊙ i ⊙ tanh'(z_g)   dz_o = dh' ⊙ tanh(c') ⊙ σ'(z_o)        tanh'(a) = 1 - tanh²(a)
σ' and tanh' are taken from the pre-activations z and from c' (numpy_impl/recurrent.py), not as
σ(1 - σ) or 1 - tanh² of the rounded values, which cancel as σ → 1 or |tanh| → 1. The cache
holds z and c' in place of the gates and tanh(c'), which the backward recomputes.
    dx = dz W_ih    dh = dz W_hh    dc_prev = dc ⊙ f
    dW_ih = dzᵀ x   dW_hh = dzᵀ h   db_ih = db_hh = Σ_batch dz   (the biases add: each gets dz)

Layer over time (`lstm_forward` / `lstm_backward`; `LSTM` is a thin class over the pair),
x (B, T, I), layer k's state (h_0, c_0) → (h_T, c_T): the cell at t = 0 .. T-1, h_t the layer's
output at step t (numpy_impl/recurrent.py's loop over the cell). Layers stack: layer k+1 reads
layer k's outputs (times a dropout mask / (1 - p) between layers, as torch.nn.LSTM's `dropout`
does); out = the last layer's h_1..h_T; (h_n, c_n) = every layer's h_T, c_T.
BPTT runs t = T-1 … 0, carrying the state gradients backwards from the upstream (dh_n, dc_n):
    dh'_t = dout_t + dh_{t+1}              h_t feeds the output and step t+1 (dh from its cell)
    dc'_t = dc_{t+1}                       c_t feeds step t+1 only (dc_prev from its cell)
    the cell's backward at step t; the weight gradients add up over the steps.
dh_0, dc_0 are what remains after step 0. A mask of None between two layers (or dropout_masks
None) is no dropout there. numpy_impl/fast/lstm.py computes the same layers faster.
"""

from __future__ import annotations

import numpy as np

from numpy_impl.recurrent import (
    RecurrentLayer,
    layers_with,
    sigmoid,
    sigmoid_derivative,
    stack_layers_backward,
    tanh_derivative,
    time_loop,
    time_loop_backward,
)
from twinlm.shared.init import init_lstm_params
from twinlm.shared.validate import require_lstm_cell_inputs


def lstm_cell_forward(
    x: np.ndarray,
    h: np.ndarray,
    c: np.ndarray,
    weight_ih: np.ndarray,
    weight_hh: np.ndarray,
    bias_ih: np.ndarray,
    bias_hh: np.ndarray,
):
    """One LSTM step (torch.nn.LSTMCell). Returns ((h_next, c_next), cache)."""
    require_lstm_cell_inputs(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh)
    z = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh  # (B, 4H)
    z_i, z_f, z_g, z_o = np.split(z, 4, axis=-1)  # (B, H) each
    i, f, g, o = sigmoid(z_i), sigmoid(z_f), np.tanh(z_g), sigmoid(z_o)  # (B, H) each
    c_next = f * c + i * g  # (B, H)
    tanh_c = np.tanh(c_next)  # (B, H)
    h_next = o * tanh_c  # (B, H)
    return (h_next, c_next), (x, h, c, weight_ih, weight_hh, z, c_next)  # pre-activations


def lstm_cell_backward(dh_next: np.ndarray, dc_next: np.ndarray, cache):
    """Returns (dx, dh, dc, dweight_ih, dweight_hh, dbias_ih, dbias_hh)."""
    x, h, c, weight_ih, weight_hh, z, c_next = cache
    z_i, z_f, z_g, z_o = np.split(z, 4, axis=-1)  # (B, H) each
    i, f, g, o = sigmoid(z_i), sigmoid(z_f), np.tanh(z_g), sigmoid(z_o)  # the forward's gates
    tanh_c = np.tanh(c_next)  # (B, H)
    dc = dc_next + dh_next * o * tanh_derivative(c_next)  # (B, H)  total gradient on c'
    dz = np.concatenate(
        [
            dc * g * sigmoid_derivative(z_i),  # dz_i
            dc * c * sigmoid_derivative(z_f),  # dz_f
            dc * i * tanh_derivative(z_g),  # dz_g
            dh_next * tanh_c * sigmoid_derivative(z_o),  # dz_o
        ],
        axis=-1,
    )  # (B, 4H)
    dbias = dz.sum(axis=0)  # (4H,)
    return (
        dz @ weight_ih,  # dx (B, I)
        dz @ weight_hh,  # dh (B, H)
        dc * f,  # dc_prev
        dz.T @ x,  # dweight_ih (4H, I)
        dz.T @ h,  # dweight_hh (4H, H)
        dbias,
        dbias.copy(),  # both biases enter z the same way; separate arrays, so no aliasing
    )


# ---- the multi-layer LSTM over time --------------------------------------------------------------


def lstm_forward(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    state: tuple[np.ndarray, np.ndarray] | None = None,
    dropout_masks: list[np.ndarray | None] | None = None,
    p: float = 0.0,
):
    """Multi-layer LSTM over time, batch first (see the module docstring). x (B, T, I); params
    keyed like torch.nn.LSTM's state_dict (num_layers and hidden size read off them); state (h0,
    c0) each (L, B, H), zeros if None; dropout_masks None or L-1 keep-masks (B, T, H) (or None
    entries) applied to each layer's output but the last, scaled by 1/(1 - p).
    Returns (out (B, T, H), (h_n, c_n), cache)."""
    return lstm_with(_layer_forward, x, params, state, dropout_masks, p)


def lstm_backward(
    dout: np.ndarray,
    dstate: tuple[np.ndarray, np.ndarray] | None,
    cache,
):
    """BPTT. dout (B, T, H) on `out`; dstate (dh_n, dc_n) each (L, B, H) on the final state, or
    None. Returns (dx (B, T, I), (dh0, dc0), grads keyed like params, in state_dict order)."""
    return lstm_backward_with(_layer_backward, dout, dstate, cache)


def lstm_with(layer, x, params, state, dropout_masks, p: float):
    """lstm_forward with `layer(layer_in, h0, c0, *weights)` for each layer's loop over time: this
    file's, or the fast path's (numpy_impl/fast/lstm.py)."""
    states = {} if state is None else dict(zip(("h0", "c0"), state, strict=True))
    out, (h_n, c_n), cache = layers_with(
        layer, x, params, states, dropout_masks, p, 4, "torch.nn.LSTM"
    )
    return out, (h_n, c_n), cache


def lstm_backward_with(layer_backward, dout, dstate, cache):
    """lstm_backward with the layer backward that matches the forward's layer."""
    dstates = None if dstate is None else dict(zip(("dh_n", "dc_n"), dstate, strict=True))
    return stack_layers_backward(dout, dstates, cache, layer_backward)


def _layer_forward(layer_in, h0, c0, W_ih, W_hh, b_ih, b_hh):
    """One layer over time, the cell at each step: layer_in (T, B, I), h0 and c0 (B, H).
    Returns (its outputs (T, B, H), (h_T, c_T), the steps' caches)."""

    def cell(x_t, state):
        return lstm_cell_forward(x_t, *state, W_ih, W_hh, b_ih, b_hh)

    return time_loop(cell, layer_in, (h0, c0))


def _layer_backward(d_out, dfinal, caches):
    """One layer's BPTT: d_out (T, B, H) on its outputs, dfinal (dh_T, dc_T) or None.
    Returns (d_in (T, B, I), (dh_0, dc_0), (dW_ih, dW_hh, db_ih, db_hh))."""

    def step_backward(dstate, cache):
        dx, dh, dc, *dweights = lstm_cell_backward(*dstate, cache)
        return dx, (dh, dc), dweights

    zeros = np.zeros_like(d_out[0])  # (B, H)
    return time_loop_backward(step_backward, d_out, dfinal or (zeros, zeros), caches)


class LSTM(RecurrentLayer):
    """Multi-layer LSTM (torch.nn.LSTM, batch first): a thin class over lstm_forward /
    lstm_backward (numpy_impl's, or numpy_impl/fast's with kernels="fast"), every parameter
    U(-1/√H, 1/√H) as torch.

    forward(x (B, T, I), state=(h0, c0) each (num_layers, B, H)) -> (out (B, T, H), (h_n, c_n));
    backward(dout, dstate=(dh_n, dc_n)) -> (dx, (dh0, dc0), grads) with grads keyed like params.
    """

    gates, op, init_params = 4, "lstm", staticmethod(init_lstm_params)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        seed: int = 0,
        dtype=np.float32,
        kernels: str = "reference",
    ):
        super().__init__(input_size, hidden_size, num_layers, seed, dtype, kernels)

    def forward(
        self,
        x: np.ndarray,
        state: tuple[np.ndarray, np.ndarray] | None = None,
        dropout_masks: list[np.ndarray | None] | None = None,
        p: float = 0.0,
    ):
        """lstm_forward with this layer's params. Returns (out (B, T, H), (h_n, c_n))."""
        return super().forward(x, state, dropout_masks, p)

    def backward(self, dout: np.ndarray, dstate: tuple[np.ndarray, np.ndarray] | None = None):
        """lstm_backward of the last forward. Returns (dx, (dh0, dc0), grads keyed like params)."""
        return super().backward(dout, dstate)
