"""What the multi-layer recurrent layers (numpy_impl/rnn.py, gru.py, lstm.py) share around their
cells (torch_impl/recurrent.py is the torch side).

A layer over time is a loop over its cell op pair (`time_loop` / `time_loop_backward`):
    forward   state_t = cell(x_t, state_{t-1})  for t = 0 .. T-1, output h_t (the state's first part)
    backward  t = T-1 … 0: the gradient on h_t is dout_t plus what step t+1 sent back (h_t feeds
              both); the cell's backward turns it into dx_t, the gradient on state_{t-1} and its
              weight gradients, which add up over the steps (every step uses the same weights)
The state is (h,) for the RNN and GRU (`single_state_layers` makes their loops from the cell), (h, c)
for the LSTM.

Stacking, x (B, T, I), L layers, each with its own time loop: layer 0 reads x, layer k > 0 reads
layer k-1's outputs times a dropout keep-mask / (1 - p) (between layers, not after the last, as
torch's `dropout` does); out = the last layer's outputs, and each final state (h_n; c_n for the
LSTM) stacks every layer's. Inside, arrays are time-major (T, B, ·) so each step's slice is
contiguous.
    forward   layers_with(layer, x, params, states, masks, p, …) checks the inputs, puts zeros
              for initial states not given, and calls stack_layers_forward(x, L, layer, masks, p)
              with layer(layer_in (T, B, I_k), initial states of layer k…, its four weights) ->
              (its outputs (T, B, H), its final states ((B, H), …), its cache)
    backward  stack_layers_backward: k = L-1 … 0, layer k's BPTT from the gradient on its outputs
              and on its final states; then through the dropout to layer k-1's outputs. dx is
              layer 0's d_in.

`RecurrentLayer` is the class RNN, GRU and LSTM are: torch's parameter layout and keys,
state_dict/load_state_dict, forward/backward over the layer's op pair (numpy_impl's reference ops,
or numpy_impl/fast's: `kernels`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import numpy_impl
from numpy_impl.dropout import maybe_dropout_backward, maybe_dropout_forward
from twinlm.shared.naming import recurrent_param_shapes
from twinlm.shared.validate import (
    RECURRENT_WEIGHTS,
    require_float,
    require_int,
    require_keys,
    require_recurrent_inputs,
    require_recurrent_params,
    require_shape,
)

States = tuple[np.ndarray, ...]


def sigmoid(z: np.ndarray) -> np.ndarray:
    """σ(z) = 1 / (1 + e^-z): a few ulp relative for every z (where e^-z overflows, σ = 0, its
    correctly rounded value). ½ + ½ tanh(z/2) is only accurate to ~u absolute, which is all of σ
    as σ → 0; the backward multiplies by the gates (dc ⊙ f, dh' ⊙ z), where relative error counts.
    1 - σ(z) is σ(-z), computed as such where σ → 1."""
    with np.errstate(over="ignore", under="ignore"):
        return 1 / (1 + np.exp(-z))


def sigmoid_derivative(z: np.ndarray) -> np.ndarray:
    """σ'(z) = σ(z) σ(-z) = e / (1 + e)², e = e^-|z| ∈ (0, 1]: from the pre-activation, a few ulp
    relative for every z, no overflow. σ(1 - σ) from the gate inherits σ's rounding: u / (1 - σ)
    relative as σ → 1 (all of it once σ rounds to 1), and σ's absolute error as σ → 0."""
    with np.errstate(under="ignore"):  # e^-|z| → 0: σ' is 0 or tiny, correctly
        e = np.exp(-np.abs(z))
        return e / ((1 + e) * (1 + e))


def tanh_derivative(a: np.ndarray) -> np.ndarray:
    """tanh'(a) = 1 - tanh²(a) = sech²(a) = 4e / (1 + e)², e = e^-2|a| ∈ (0, 1]: from the
    pre-activation, a few ulp relative for every a, no overflow (e is squared from e^-|a|, so 2|a|
    is never formed). 1 - h² from h = tanh(a) rounded is off by up to u / (2(1 - |h|)) relative as
    |h| → 1 (~2000 u at |a| = 4.5 in float32; all of it once h rounds to ±1), whether as 1 - h·h
    or (1 - h)(1 + h)."""
    with np.errstate(under="ignore"):  # e → 0: tanh' is 0 or tiny, correctly
        e = np.exp(-np.abs(a))
        e *= e  # e^-2|a|
        return 4 * e / ((1 + e) * (1 + e))


# ---- a layer over time: a loop over its cell -----------------------------------------------------


def time_loop(cell, layer_in: np.ndarray, state: States):
    """One layer over time (module docstring): cell(x_t (B, I), state) -> (new state, cache), the
    state (h,) or (h, c), each (B, H). layer_in (T, B, I). Returns (its outputs (T, B, H), the
    final state, the steps' caches)."""
    outs, caches = [], []
    for x_t in layer_in:  # (B, I), t = 0 .. T-1
        state, cache = cell(x_t, state)
        outs.append(state[0])  # h_t
        caches.append(cache)
    return np.stack(outs), state, caches


def time_loop_backward(cell_backward, d_out: np.ndarray, dstate: States, caches):
    """BPTT through time_loop: cell_backward(dstate, cache) -> (dx_t, the gradient on
    the step's input state, the step's weight gradients); d_out (T, B, H) on the outputs, dstate
    the gradients on the final state. Returns (d_in (T, B, I), the gradients on the initial state,
    the weight gradients summed over the steps)."""
    d_in, dweights = [None] * len(caches), None
    for t in reversed(range(len(caches))):
        dh, *rest = dstate
        d_in[t], dstate, step_grads = cell_backward((dh + d_out[t], *rest), caches[t])
        dweights = step_grads if dweights is None else [a + g for a, g in zip(dweights, step_grads)]
    return np.stack(d_in), dstate, tuple(dweights)


def single_state_layers(cell_forward, cell_backward):
    """The layer pair (layer_forward, layer_backward) that loops over a cell op pair with one
    state h (rnn_cell_…, gru_cell_…): layer_forward(layer_in, h0, *weights, **cell options) and
    layer_backward(d_out, dfinal or None, cache), as stack_layers_forward/backward call them."""

    def layer_forward(layer_in, h0, *weights, **options):
        def cell(x_t, state):
            h, cache = cell_forward(x_t, *state, *weights, **options)
            return (h,), cache

        return time_loop(cell, layer_in, (h0,))

    def layer_backward(d_out, dfinal, caches):
        def step_backward(dstate, cache):
            dx, dh, *dweights = cell_backward(*dstate, cache)
            return dx, (dh,), dweights

        dstate = dfinal or (np.zeros_like(d_out[0]),)
        return time_loop_backward(step_backward, d_out, dstate, caches)

    return layer_forward, layer_backward


# ---- layers stacked ------------------------------------------------------------------------------


def layer_params(params: dict[str, np.ndarray], k: int) -> list[np.ndarray]:
    """Layer k's weight_ih, weight_hh, bias_ih, bias_hh (torch's state_dict order)."""
    return [params[f"{w}_l{k}"] for w in RECURRENT_WEIGHTS]


def layers_with(layer, x, params, states: dict, dropout_masks, p: float, gates: int, module: str):
    """A multi-layer op's forward (lstm_forward, …) with `layer` for each layer's loop over time
    (module docstring): x (B, T, I); params keyed like `module`'s state_dict, with `gates`
    pre-activations per hidden unit; states the initial states by name ({"h0": …}, and "c0" for
    the LSTM), each (L, B, H), zeros where absent or None. Returns (out (B, T, H), the final
    states stacked, each (L, B, H), cache)."""
    I, H, L = require_recurrent_params(params, gates, module)
    dtype = params["weight_ih_l0"].dtype
    require_recurrent_inputs(
        x, states, dropout_masks, p, input_size=I, hidden_size=H, num_layers=L, dtype=dtype
    )
    names = ("h0", "c0") if gates == 4 else ("h0",)
    zeros = np.zeros((L, x.shape[0], H), dtype)
    init = [zeros if states.get(name) is None else states[name] for name in names]

    def one_layer(k: int, layer_in: np.ndarray):
        return layer(layer_in, *(s[k] for s in init), *layer_params(params, k))

    return stack_layers_forward(x, L, one_layer, dropout_masks, p)


def single_state_with(layer, x, params, h0, dropout_masks, p, gates: int, module: str):
    """rnn_forward and gru_forward: layers_with for the one state h. x (B, T, I); params keyed
    like `module`'s state_dict (num_layers and hidden size read off them); h0 (L, B, H), zeros if
    None; dropout_masks None or L-1 keep-masks (B, T, H) (or None entries) applied to each layer's
    output but the last, scaled by 1/(1 - p). Returns (out (B, T, H), h_n (L, B, H), cache)."""
    states = {"h0": h0}
    out, (h_n,), cache = layers_with(layer, x, params, states, dropout_masks, p, gates, module)
    return out, h_n, cache


def single_state_backward_with(layer_backward, dout, dh_n, cache):
    """rnn_backward and gru_backward: BPTT from dout (B, T, H) on `out` and dh_n (L, B, H) on the
    final state, or None. Returns (dx (B, T, I), dh0 (L, B, H), grads keyed like params, in
    state_dict order)."""
    dstates = None if dh_n is None else {"dh_n": dh_n}
    dx, (dh0,), grads = stack_layers_backward(dout, dstates, cache, layer_backward)
    return dx, dh0, grads


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


class RecurrentLayer:
    """A multi-layer recurrent layer, batch first, torch's parameter names and layout: a thin
    class over an op pair (rnn_forward / rnn_backward, gru_…, lstm_…) holding `params` and the
    last forward's cache. Subclasses set the gate count, the op's name, the initializer and the
    name of the op's one option (nonlinearity, reset_after), held in that attribute. kernels:
    "reference" (numpy_impl's op pair) or "fast" (numpy_impl/fast's), an attribute a caller may
    also set later.

    forward(x (B, T, I), h0 (num_layers, B, H)) -> (out (B, T, H), h_n) (the LSTM: its state
    (h0, c0) in, (h_n, c_n) out); backward(dout, dh_n) -> (dx, dh0, grads) with grads keyed like
    params (the LSTM: (dh_n, dc_n) in, (dh0, dc0) out).
    """

    gates: int  # stacked pre-activations per hidden unit: 1 (RNN), 3 (GRU), 4 (LSTM)
    op: str  # the op pair's name: "rnn" for rnn_forward / rnn_backward, …
    option: str | None = None  # the op's keyword option ("nonlinearity", "reset_after"), if any
    init_params: Callable  # (input_size, hidden_size, num_layers, seed, dtype) -> params

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int, seed: int, dtype, kernels: str
    ):
        require_int("input_size", input_size, 1)
        require_int("hidden_size", hidden_size, 1)
        require_int("num_layers", num_layers, 1)
        numpy_impl.kernel_ops(kernels)  # a known name, or a ValueError naming `kernels`
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.kernels = kernels
        self.params = self.init_params(input_size, hidden_size, num_layers, seed, dtype)
        self._cache = None

    def _options(self) -> dict:
        """The op pair's keyword options: {option: its value}, or none."""
        return {} if self.option is None else {self.option: getattr(self, self.option)}

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
        ops = numpy_impl.kernel_ops(self.kernels)
        forward = getattr(ops, f"{self.op}_forward")
        out, h_n, cache = forward(x, self.params, h0, dropout_masks, p, **self._options())
        self._cache = (getattr(ops, f"{self.op}_backward"), cache)
        return out, h_n

    def backward(self, dout: np.ndarray, dh_n: np.ndarray | None = None):
        """BPTT of the last forward. Returns (dx, dh0, grads keyed like params)."""
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward needs a forward call first")
        backward, cache = self._cache
        return backward(dout, dh_n, cache)
