"""The LSTM cell and the multi-layer LSTM with backpropagation through time (BPTT).

Layout and names are torch.nn.LSTM's: weight_ih (4H, I), weight_hh (4H, H), two biases (4H,), gate
rows in the order i, f, g, o.

Cell forward, x (B, I), h and c (B, H):
    z = x W_ihᵀ + b_ih + h W_hhᵀ + b_hh              (B, 4H)  pre-activations [z_i z_f z_g z_o]
    i = σ(z_i)  f = σ(z_f)  g = tanh(z_g)  o = σ(z_o)  (B, H) each
    c' = f ⊙ c + i ⊙ g                                (B, H)
    h' = o ⊙ tanh(c')                                 (B, H)
σ(z) = ½ + ½ tanh(z/2): no overflow for any z, and NumPy's float32 tanh is far faster than its exp
(its error is absolute, ≤ 1 ulp of 1). So one tanh over the whole (B, 4H) block activates all four
gates: gates = tanh(s ⊙ z) ⊙ s + b with s = [½ ½ 1 ½] and b = [½ ½ 0 ½] per gate block.

Cell backward, given dh' and dc' (the gradient reaching c' from the next step):
    dc  = dc' + dh' ⊙ o ⊙ (1 - tanh²(c'))              total gradient on c'       (B, H)
    dz_i = dc ⊙ g ⊙ i(1 - i)     dz_f = dc ⊙ c ⊙ f(1 - f)                        σ' = σ(1 - σ)
    dz_g = dc ⊙ i ⊙ (1 - g²)     dz_o = dh' ⊙ tanh(c') ⊙ o(1 - o)                 tanh' = 1 - tanh²
    dx = dz W_ih    dh = dz W_hh    dc_prev = dc ⊙ f
    dW_ih = dzᵀ x   dW_hh = dzᵀ h   db_ih = db_hh = Σ_batch dz   (the biases add: each gets dz)

Layer over time (`lstm_forward` / `lstm_backward`; `LSTM` is a thin class over the pair),
x (B, T, I), layer k's state (h_0, c_0) → (h_T, c_T):
    Z_x = X W_ihᵀ + b_ih + b_hh                       (T, B, 4H)  ONE matmul for every step
    z_t = Z_x[t] + h_{t-1} W_hhᵀ,  then the cell as above; h_t is the layer's output at step t.
    Layers stack: layer k+1 reads layer k's outputs (times a dropout mask / (1 - p) between layers,
    as torch.nn.LSTM's `dropout` does); out = the last layer's h_1..h_T; (h_n, c_n) = every
    layer's h_T, c_T.
BPTT runs t = T-1 … 0, carrying the state gradients backwards from the upstream (dh_n, dc_n):
    dh'_t = dout_t + dz_{t+1} W_hh         h_t feeds the output and step t+1
    dc'_t = dc_{t+1} ⊙ f_{t+1}             c_t feeds step t+1 only
    dz_t from the cell backward; after the loop, for the whole sequence at once:
    dW_ih = Σ_t dz_tᵀ x_t    dW_hh = Σ_t dz_tᵀ h_{t-1}    db = Σ_t Σ_batch dz_t    dX = dZ W_ih
    three matmuls (and a sum) over all T·B rows, not T small ones. dh_0, dc_0 are what remains
    after step 0. Arrays are kept time-major (T, B, ·) so each step's slice is contiguous.
Few NumPy calls per step, since at B = 32 each call's overhead rivals its work. Forward: the rows of
W_ih, W_hh and the biases are pre-scaled by s (exact: s is ½ or 1), so z_t arrives as s ⊙ z_t and
a step is the recurrent matmul, an add, the fused activation (3 calls) and the state update (5).
Backward: everything in dz_t that does not depend on (dh'_t, dc'_t) is computed for all steps at
once before the loop, F = [g σ'_i, c σ'_f, i (1 - g²), tanh(c') σ'_o] and P = o (1 - tanh² c'),
so a step is dc = dc' + dh' ⊙ P_t, dz_t = [dc dc dc dh'] ⊙ F_t and the two products (6 calls).
A mask of None between two layers (or dropout_masks None) is no dropout there. The stacking of
layers and the `RecurrentLayer` class are numpy_impl/recurrent.py's.
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
from twinlm.shared.blocks import for_blocks, rows_per_block
from twinlm.shared.init import init_lstm_params
from twinlm.shared.validate import (
    require_lstm_cell_inputs,
    require_lstm_inputs,
    require_lstm_params,
)


def _gate_scale(H: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(s, b), each (4H,): gates = tanh(s ⊙ z) ⊙ s + b is [σ(z_i) σ(z_f) tanh(z_g) σ(z_o)]."""
    s = np.full(4 * H, 0.5, dtype)
    s[2 * H : 3 * H] = 1.0
    b = s.copy()
    b[2 * H : 3 * H] = 0.0
    return s, b


def _activate(z: np.ndarray) -> np.ndarray:
    """Pre-activations z (B, 4H) → gates [i f g o] (B, 4H), in place: σ on i, f, o; tanh on g."""
    s, b = _gate_scale(z.shape[-1] // 4, z.dtype)
    z *= s
    np.tanh(z, out=z)
    z *= s
    z += b  # σ(z) = ½ + ½ tanh(z/2), tanh(z) unchanged
    return z


def _gates_backward(dh, dc_next, gates, tanh_c, c, out=None):
    """One cell's backward from the gates: returns (dz (B, 4H), dc_prev (B, H)).

    dh, dc_next: gradients on h', c'; gates: activated [i f g o]; tanh_c = tanh(c');
    c: the previous cell state.
    """
    H = dh.shape[-1]
    i, f, g, o = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H : 3 * H], gates[:, 3 * H :]
    dz = np.empty_like(gates) if out is None else out  # (B, 4H)
    dc = dc_next + dh * o * (1 - tanh_c * tanh_c)  # (B, H)  total gradient on c'
    np.multiply(dc * g, i * (1 - i), out=dz[:, :H])  # dz_i
    np.multiply(dc * c, f * (1 - f), out=dz[:, H : 2 * H])  # dz_f
    np.multiply(dc * i, 1 - g * g, out=dz[:, 2 * H : 3 * H])  # dz_g
    np.multiply(dh * tanh_c, o * (1 - o), out=dz[:, 3 * H :])  # dz_o
    return dz, dc * f  # dc_prev = dc ⊙ f


def _step_factors(gates, c_prev, tanh_c) -> tuple[np.ndarray, np.ndarray]:
    """The parts of every step's backward that do not depend on the incoming gradients, for all
    T steps at once: F (T, B, 4H) = [g σ'_i, c σ'_f, i (1 - g²), tanh(c') σ'_o] (σ' = σ(1 - σ))
    and P (T, B, H) = o (1 - tanh² c'); a few steps at a time, so each block stays in cache."""
    T, B, H = tanh_c.shape
    F, P = np.empty_like(gates), np.empty_like(tanh_c)

    def steps(lo: int, hi: int) -> None:
        a, f4, p = gates[lo:hi], F[lo:hi], P[lo:hi]
        i, g, o = a[..., :H], a[..., 2 * H : 3 * H], a[..., 3 * H :]
        np.subtract(1.0, a, out=f4)  # 1 - [i f g o]
        f4[..., : 2 * H] *= a[..., : 2 * H]  # σ'_i, σ'_f
        f4[..., 3 * H :] *= o  # σ'_o
        np.multiply(g, g, out=f4[..., 2 * H : 3 * H])
        np.subtract(1.0, f4[..., 2 * H : 3 * H], out=f4[..., 2 * H : 3 * H])  # 1 - g²
        f4[..., :H] *= g
        f4[..., H : 2 * H] *= c_prev[lo:hi]
        f4[..., 2 * H : 3 * H] *= i
        f4[..., 3 * H :] *= tanh_c[lo:hi]
        np.multiply(tanh_c[lo:hi], tanh_c[lo:hi], out=p)
        np.subtract(1.0, p, out=p)
        p *= o  # o (1 - tanh² c')

    for_blocks(steps, T, rows_per_block(B * 4 * H))  # a block of steps
    return F, P


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
    gates = _activate(z)  # (B, 4H)  [i f g o]
    H = h.shape[-1]
    i, f, g, o = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H : 3 * H], gates[:, 3 * H :]
    c_next = f * c + i * g  # (B, H)
    tanh_c = np.tanh(c_next)  # (B, H)
    h_next = o * tanh_c  # (B, H)
    return (h_next, c_next), (x, h, c, weight_ih, weight_hh, gates, tanh_c)


def lstm_cell_backward(dh_next: np.ndarray, dc_next: np.ndarray, cache):
    """Returns (dx, dh, dc, dweight_ih, dweight_hh, dbias_ih, dbias_hh)."""
    x, h, c, weight_ih, weight_hh, gates, tanh_c = cache
    dz, dc = _gates_backward(dh_next, dc_next, gates, tanh_c, c)  # (B, 4H), (B, H)
    dbias = dz.sum(axis=0)  # (4H,)
    return (
        dz @ weight_ih,  # dx (B, I)
        dz @ weight_hh,  # dh (B, H)
        dc,
        dz.T @ x,  # dweight_ih (4H, I)
        dz.T @ h,  # dweight_hh (4H, H)
        dbias,
        dbias.copy(),  # both biases enter z the same way; separate arrays, so no aliasing
    )


# ---- the multi-layer LSTM over time ---------------------------------------------------------------


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
    I, H, L = require_lstm_params(params)
    dtype = params["weight_ih_l0"].dtype
    require_lstm_inputs(
        x, state, dropout_masks, p, input_size=I, hidden_size=H, num_layers=L, dtype=dtype
    )
    if state is None:
        state = (np.zeros((L, x.shape[0], H), dtype), np.zeros((L, x.shape[0], H), dtype))
    h0, c0 = state

    def layer(k: int, layer_in: np.ndarray):
        return _layer_forward(layer_in, h0[k], c0[k], *layer_params(params, k))

    out, (h_n, c_n), cache = stack_layers_forward(x, L, layer, dropout_masks, p)
    return out, (h_n, c_n), cache


def lstm_backward(
    dout: np.ndarray,
    dstate: tuple[np.ndarray, np.ndarray] | None,
    cache,
):
    """BPTT. dout (B, T, H) on `out`; dstate (dh_n, dc_n) each (L, B, H) on the final state, or
    None. Returns (dx (B, T, I), (dh0, dc0), grads keyed like params, in state_dict order)."""
    dstates = None if dstate is None else dict(zip(("dh_n", "dc_n"), dstate, strict=True))
    return stack_layers_backward(dout, dstates, cache, _layer_backward)


def _layer_forward(layer_in, h0, c0, W_ih, W_hh, b_ih, b_hh):
    """One layer over time: layer_in (T, B, I), h0 and c0 (B, H). Returns (its outputs (T, B, H),
    (h_T, c_T), cache)."""
    T, B, _ = layer_in.shape
    H, dtype = W_hh.shape[1], layer_in.dtype
    s, b = _gate_scale(H, dtype)  # (4H,) each
    # (H, 4H) rows pre-scaled by s, so z arrives as s ⊙ z; stored transposed, as BLAS is ~1.5x
    # faster on a (B, H) @ (H, 4H) product than on the transposed view at this size
    W_hh_sT = np.ascontiguousarray((W_hh * s[:, None]).T)
    # The input part of every step's pre-activation at once: (T·B, I) @ (I, 4H).
    z = (layer_in.reshape(T * B, -1) @ (W_ih * s[:, None]).T).reshape(T, B, 4 * H)  # s ⊙ z
    z += (b_ih + b_hh) * s
    hs = np.empty((T + 1, B, H), dtype)  # hs[0] = h_0, hs[t+1] = h_t (the output)
    cs = np.empty((T + 1, B, H), dtype)  # cs[0] = c_0, cs[t+1] = c_t
    tanh_cs = np.empty((T, B, H), dtype)
    hs[0], cs[0] = h0, c0
    recurrent, ig = np.empty((B, 4 * H), dtype), np.empty((B, H), dtype)
    for t in range(T):
        np.matmul(hs[t], W_hh_sT, out=recurrent)  # (B, 4H)
        z[t] += recurrent
        np.tanh(z[t], out=z[t])  # one tanh for all four gates (see _gate_scale)
        z[t] *= s
        z[t] += b  # z[t] now holds the gates [i f g o]
        i, f, g, o = (z[t, :, j * H : (j + 1) * H] for j in range(4))
        np.multiply(f, cs[t], out=cs[t + 1])  # c_t = f ⊙ c_{t-1} + i ⊙ g
        cs[t + 1] += np.multiply(i, g, out=ig)
        np.tanh(cs[t + 1], out=tanh_cs[t])
        np.multiply(o, tanh_cs[t], out=hs[t + 1])  # h_t = o ⊙ tanh(c_t)
    return hs[1:], (hs[T], cs[T]), (layer_in, z, hs, cs, tanh_cs, W_ih, W_hh)


def _layer_backward(d_out, dfinal, cache):
    """One layer's BPTT: d_out (T, B, H) on its outputs, dfinal (dh_T, dc_T) or None.
    Returns (d_in (T, B, I), (dh_0, dc_0), (dW_ih, dW_hh, db_ih, db_hh))."""
    layer_in, gates, hs, cs, tanh_cs, W_ih, W_hh = cache
    T, B, H = d_out.shape
    if dfinal is None:
        dh_next, dc_next = np.zeros((B, H), hs.dtype), np.zeros((B, H), hs.dtype)
    else:
        dh_next, dc_next = dfinal
    dz, P = _step_factors(gates, cs[:-1], tanh_cs)  # (T, B, 4H) F, (T, B, H) P
    dz4, f = dz.reshape(T, B, 4, H), gates[:, :, H : 2 * H]
    dc = np.empty((B, H), hs.dtype)
    for t in reversed(range(T)):
        dh = d_out[t] + dh_next  # (B, H)  h_t feeds the output and step t+1
        np.multiply(dh, P[t], out=dc)
        dc += dc_next  # dc = dc' + dh' ⊙ o ⊙ (1 - tanh² c')
        dz4[t, :, :3] *= dc[:, None, :]  # dz_i, dz_f, dz_g = dc ⊙ F
        dz4[t, :, 3] *= dh  # dz_o = dh' ⊙ F_o
        dc_next = dc * f[t]  # dc_prev = dc ⊙ f
        dh_next = dz[t] @ W_hh  # (B, H)  z_t = … + h_{t-1} W_hhᵀ
    d_in, dW_ih, db = input_projection_grads(dz, layer_in, W_ih)  # Z_x = X W_ihᵀ + b
    dW_hh = dz.reshape(T * B, 4 * H).T @ hs[:-1].reshape(T * B, H)  # (4H, H)
    return d_in, (dh_next, dc_next), (dW_ih, dW_hh, db, db.copy())  # the same dz; separate arrays


class LSTM(RecurrentLayer):
    """Multi-layer LSTM (torch.nn.LSTM, batch first): a thin class over lstm_forward /
    lstm_backward, every parameter U(-1/√H, 1/√H) as torch.

    forward(x (B, T, I), state=(h0, c0) each (num_layers, B, H)) -> (out (B, T, H), (h_n, c_n));
    backward(dout, dstate=(dh_n, dc_n)) -> (dx, (dh0, dc0), grads) with grads keyed like params.
    """

    gates = 4

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        seed: int = 0,
        dtype=np.float32,
    ):
        super().__init__(input_size, hidden_size, num_layers, seed, dtype)

    def _init(self, input_size, hidden_size, num_layers, seed, dtype):
        return init_lstm_params(input_size, hidden_size, num_layers, seed, dtype)

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

    def _forward(self, x, params, state, dropout_masks, p):
        return lstm_forward(x, params, state, dropout_masks, p)

    def _backward(self, dout, dstate, cache):
        return lstm_backward(dout, dstate, cache)
