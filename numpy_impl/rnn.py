"""The vanilla (Elman) RNN cell and the multi-layer RNN with backpropagation through time (BPTT).

Layout and names are torch.nn.RNN's: weight_ih (H, I), weight_hh (H, H), two biases (H,);
nonlinearity φ = tanh (the default) or relu. Karpathy's min-char-rnn and the snippets of "The
Unreasonable Effectiveness of Recurrent Neural Networks" are this cell with φ = tanh.

Cell forward, x (B, I), h (B, H):
    a  = x W_ihᵀ + b_ih + h W_hhᵀ + b_hh          (B, H)  pre-activation
    h' = φ(a)                                      (B, H)
Cell backward, given dh' (B, H):
    da = dh' ⊙ φ'(a),   φ'(a) = sech²(a) for tanh, [a > 0] for relu (at a = 0 the relu's
                        derivative is taken as 0, as torch does)
tanh' is taken from the pre-activation a, not as 1 - h'² from the output: h' rounded carries
u / (1 - |h'|) relative into 1 - h'² as |h'| → 1, all of it once h' rounds to ±1
(numpy_impl.recurrent.tanh_derivative). So the cache holds a, not h'.
    dx = da W_ih    dh = da W_hh    dW_ih = daᵀ x    dW_hh = daᵀ h    db_ih = db_hh = Σ_batch da

Layer over time (`rnn_forward` / `rnn_backward`; `RNN` is a thin class over the pair),
x (B, T, I), layer k's state h_0 → h_T: h_t = the cell at step t, the layer's output at step t.
Layers stack: layer k+1 reads layer k's outputs (times a dropout keep-mask / (1 - p) between
layers, as torch.nn.RNN's `dropout` does); out = the last layer's h_1..h_T; h_n = every layer's h_T.
BPTT runs t = T-1 … 0, carrying dh backwards from the upstream dh_n:
    dh'_t = dout_t + dh_{t+1}              h_t feeds the output and step t+1 (dh from its cell)
    the cell's backward at step t; the weight gradients add up over the steps.
dh_0 is what remains after step 0. A mask of None between two layers (or dropout_masks None) is
no dropout there. The loop over the cell, the stacking of layers and the `RecurrentLayer` class
(torch's layout and keys, state_dict/load_state_dict) are numpy_impl/recurrent.py's;
numpy_impl/fast/rnn.py computes the same layers faster.
"""

from __future__ import annotations

import functools

import numpy as np

from numpy_impl.recurrent import (
    RecurrentLayer,
    single_state_backward_with,
    single_state_layers,
    single_state_with,
    tanh_derivative,
)
from twinlm.shared.init import init_rnn_params
from twinlm.shared.validate import require_choice, require_recurrent_cell_inputs

NONLINEARITIES = ("tanh", "relu")


def _phi(a: np.ndarray, nonlinearity: str) -> np.ndarray:
    """φ(a): tanh or relu."""
    return np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)


def derivative(a: np.ndarray, nonlinearity: str) -> np.ndarray:
    """φ'(a) from the pre-activation a: sech²(a) (tanh; not 1 - φ(a)², which cancels as
    |φ(a)| → 1) or [a > 0] (relu), in a's dtype."""
    if nonlinearity == "tanh":
        return tanh_derivative(a)
    return (a > 0).astype(a.dtype)


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
    h_next = _phi(a, nonlinearity)  # (B, H)
    return h_next, (x, h, weight_ih, weight_hh, a, nonlinearity)


def rnn_cell_backward(dh_next: np.ndarray, cache):
    """Returns (dx, dh, dweight_ih, dweight_hh, dbias_ih, dbias_hh)."""
    x, h, weight_ih, weight_hh, a, nonlinearity = cache
    da = dh_next * derivative(a, nonlinearity)  # (B, H)  h' = φ(a)
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
    """Multi-layer vanilla RNN over time, batch first (module docstring), params keyed like
    torch.nn.RNN's state_dict, φ = nonlinearity; the other arguments as
    numpy_impl.recurrent.single_state_with takes them. Returns (out (B, T, H), h_n, cache)."""
    require_choice("nonlinearity", nonlinearity, NONLINEARITIES)
    layer = functools.partial(_layer_forward, nonlinearity=nonlinearity)
    return single_state_with(layer, x, params, h0, dropout_masks, p, 1, "torch.nn.RNN")


def rnn_backward(dout: np.ndarray, dh_n: np.ndarray | None, cache):
    """BPTT of rnn_forward from dout (B, T, H) and dh_n (L, B, H) or None: numpy_impl.recurrent's
    single_state_backward_with. Returns (dx, dh0, grads keyed like params, in their order)."""
    return single_state_backward_with(_layer_backward, dout, dh_n, cache)


# one layer over time: the cell at each step (numpy_impl/recurrent.py)
_layer_forward, _layer_backward = single_state_layers(rnn_cell_forward, rnn_cell_backward)


class RNN(RecurrentLayer):
    """Multi-layer vanilla RNN (torch.nn.RNN, batch first): a thin class over rnn_forward /
    rnn_backward (numpy_impl's, or numpy_impl/fast's with kernels="fast"). nonlinearity "tanh" or
    "relu"; every parameter U(-1/√H, 1/√H) as torch."""

    gates, op, option, init_params = 1, "rnn", "nonlinearity", staticmethod(init_rnn_params)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        seed: int = 0,
        dtype=np.float32,
        kernels: str = "reference",
    ):
        require_choice("nonlinearity", nonlinearity, NONLINEARITIES)
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, seed, dtype, kernels)
