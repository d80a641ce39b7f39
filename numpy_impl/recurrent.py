"""What the multi-layer recurrent layers (numpy_impl/rnn.py, gru.py, lstm.py) share around their own
time loops (torch_impl/recurrent.py is the torch side).

Stacking, x (B, T, I), L layers, each with its own time loop: layer 0 reads x, layer k > 0 reads
layer k-1's outputs times a dropout keep-mask / (1 - p) (between layers, not after the last, as
torch's `dropout` does); out = the last layer's outputs, and each final state (h_n; c_n for the
LSTM) stacks every layer's. Inside, arrays are time-major (T, B, ·) so each step's slice is
contiguous.
    forward   stack_layers_forward(x, L, layer, masks, p), layer(k, layer_in (T, B, I_k)) ->
              (its outputs (T, B, H), its final states ((B, H), …), its cache)
    backward  k = L-1 … 0: layer k's BPTT from the gradient on its outputs and on its final
              states; then through the dropout to layer k-1's outputs. dx is layer 0's d_in.
Each layer's pre-activations take the input part for all T steps in one matmul,
G_x = X W_ihᵀ + b_ih (+ …) (T, B, G); its backward is three products over all T·B rows at once
(`input_projection_grads`): dX = dG W_ih, dW_ih = dGᵀ X, db_ih = Σ dG.

`RecurrentLayer` is the class RNN, GRU and LSTM are: torch's parameter layout and keys,
state_dict/load_state_dict, forward/backward over the layer's op pair.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from numpy_impl.dropout import maybe_dropout_backward, maybe_dropout_forward
from twinlm.shared.naming import recurrent_param_shapes
from twinlm.shared.validate import (
    RECURRENT_WEIGHTS,
    require_float,
    require_int,
    require_keys,
    require_shape,
)

States = tuple[np.ndarray, ...]


def layer_params(params: dict[str, np.ndarray], k: int) -> list[np.ndarray]:
    """Layer k's weight_ih, weight_hh, bias_ih, bias_hh (torch's state_dict order)."""
    return [params[f"{w}_l{k}"] for w in RECURRENT_WEIGHTS]


def stack_layers_forward(
    x: np.ndarray,
    num_layers: int,
    layer: Callable[[int, np.ndarray], tuple[np.ndarray, States, object]],
    dropout_masks: list[np.ndarray | None] | None,
    p: float,
):
    """Layers over time stacked, with dropout between them (module docstring). x (B, T, I).
    Returns (out (B, T, H), the final states stacked over layers, each (L, B, H), cache)."""
    layer_in = np.ascontiguousarray(x.transpose(1, 0, 2))  # (T, B, I)  time-major
    finals, caches, drop_caches = [], [], []
    for k in range(num_layers):
        layer_in, final, layer_cache = layer(k, layer_in)  # (T, B, H), ((B, H), …)
        finals.append(final)
        caches.append(layer_cache)
        if k < num_layers - 1:  # dropout between layers, not after the last
            mask = None if dropout_masks is None else dropout_masks[k]
            mask = None if mask is None else mask.transpose(1, 0, 2)  # (T, B, H)
            layer_in, drop_cache = maybe_dropout_forward(layer_in, mask, p)  # (T, B, H)
            drop_caches.append(drop_cache)
    out = np.ascontiguousarray(layer_in.transpose(1, 0, 2))  # (B, T, H)
    states_n = tuple(np.stack(s) for s in zip(*finals, strict=True))  # (L, B, H) each
    return out, states_n, (caches, drop_caches, out.shape)


def stack_layers_backward(
    dout: np.ndarray,
    dstates_n: dict[str, np.ndarray] | None,
    cache,
    layer_backward: Callable[[np.ndarray, States | None, object], tuple],
):
    """BPTT through the stack. dout (B, T, H) on `out`; dstates_n the gradients on the final
    states by name ({"dh_n": …} or with "dc_n"; each (L, B, H)), or None for none;
    layer_backward(d_out (T, B, H), dfinal ((B, H), …) or None, layer cache) -> (d_in (T, B, I_k),
    dinit ((B, H), …), (dweight_ih, dweight_hh, dbias_ih, dbias_hh)).
    Returns (dx (B, T, I), the initial states' gradients stacked, each (L, B, H), grads keyed
    like torch's state_dict, in its order)."""
    caches, drop_caches, (B, T, H) = cache
    L = len(caches)
    require_shape("dout", dout, (B, T, H))
    for name, d in (dstates_n or {}).items():
        require_shape(name, d, (L, B, H))
    d_layer_out = dout.transpose(1, 0, 2)  # (T, B, H)  time-major view
    dinits, layer_grads = [None] * L, [None] * L
    for k in reversed(range(L)):
        dfinal = None if dstates_n is None else tuple(d[k] for d in dstates_n.values())
        d_layer_in, dinits[k], layer_grads[k] = layer_backward(d_layer_out, dfinal, caches[k])
        if k > 0:  # layer k read drop(layer k-1's output)
            d_layer_in = maybe_dropout_backward(d_layer_in, drop_caches[k - 1])  # (T, B, H)
        d_layer_out = d_layer_in
    grads = {f"{w}_l{k}": g for k in range(L) for w, g in zip(RECURRENT_WEIGHTS, layer_grads[k])}
    dx = np.ascontiguousarray(d_layer_out.transpose(1, 0, 2))  # (B, T, I)
    return dx, tuple(np.stack(s) for s in zip(*dinits, strict=True)), grads


def input_projection_grads(dG: np.ndarray, layer_in: np.ndarray, weight_ih: np.ndarray):
    """G = X W_ihᵀ + b_ih (+ …) for all steps at once, dG (T, B, G), X = layer_in (T, B, I): the
    rows are the T·B (step, sequence) pairs. Returns (dX (T, B, I), dW_ih (G, I), db_ih (G,))."""
    T, B, G = dG.shape
    rows = dG.reshape(T * B, G)
    return (
        (rows @ weight_ih).reshape(T, B, -1),  # dX = dG W_ih
        rows.T @ layer_in.reshape(T * B, -1),  # dW_ih = dGᵀ X
        rows.sum(axis=0),  # db_ih = Σ dG
    )


class RecurrentLayer:
    """A multi-layer recurrent layer, batch first, torch's parameter names and layout: a thin
    class over an op pair (rnn_forward / rnn_backward, gru_…, lstm_…) holding `params` and the
    last forward's cache. Subclasses set the gate count, the initializer and how the pair is
    called (with their options: nonlinearity, reset_after).

    forward(x (B, T, I), h0 (num_layers, B, H)) -> (out (B, T, H), h_n) (the LSTM: its state
    (h0, c0) in, (h_n, c_n) out); backward(dout, dh_n) -> (dx, dh0, grads) with grads keyed like
    params (the LSTM: (dh_n, dc_n) in, (dh0, dc0) out).
    """

    gates: int  # stacked pre-activations per hidden unit: 1 (RNN), 3 (GRU), 4 (LSTM)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, seed: int, dtype):
        require_int("input_size", input_size, 1)
        require_int("hidden_size", hidden_size, 1)
        require_int("num_layers", num_layers, 1)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.params = self._init(input_size, hidden_size, num_layers, seed, dtype)
        self._cache = None

    def _init(self, input_size, hidden_size, num_layers, seed, dtype) -> dict[str, np.ndarray]:
        raise NotImplementedError

    @property
    def dtype(self) -> np.dtype:
        return self.params["weight_ih_l0"].dtype

    def state_dict(self) -> dict[str, np.ndarray]:
        return dict(self.params)

    def load_state_dict(self, state: dict) -> None:
        """Copy in parameters (NumPy arrays or CPU tensors) with exactly the torch module's keys
        and shapes; the layer takes their (common) float dtype."""
        I, H, L = self.input_size, self.hidden_size, self.num_layers
        shapes = recurrent_param_shapes(self.gates, I, H, L)
        require_keys("state_dict", state, shapes)
        new = {k: np.asarray(state[k]).copy() for k in shapes}  # np.asarray reads CPU tensors too
        for k, shape in shapes.items():
            require_float(k, new[k])
            require_shape(k, new[k], shape)
        dtypes = {k: str(a.dtype) for k, a in new.items()}
        if len(set(dtypes.values())) > 1:
            raise TypeError(f"state_dict values must share one dtype, got {dtypes}")
        self.params = new
        self._cache = None

    def forward(
        self,
        x: np.ndarray,
        h0: np.ndarray | None = None,
        dropout_masks: list[np.ndarray | None] | None = None,
        p: float = 0.0,
    ):
        """The op pair's forward with this layer's params. Returns (out (B, T, H), h_n)."""
        out, h_n, self._cache = self._forward(x, self.params, h0, dropout_masks, p)
        return out, h_n

    def backward(self, dout: np.ndarray, dh_n: np.ndarray | None = None):
        """BPTT of the last forward. Returns (dx, dh0, grads keyed like params)."""
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward needs a forward call first")
        return self._backward(dout, dh_n, self._cache)

    def _forward(self, x, params, h0, dropout_masks, p):
        raise NotImplementedError

    def _backward(self, dout, dh_n, cache):
        raise NotImplementedError
