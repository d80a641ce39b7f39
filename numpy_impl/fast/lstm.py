"""The multi-layer LSTM, the fast path: numpy_impl/lstm.py's math (its docstring has it, cell and
BPTT), with each layer over time computed so:
    Z_x = X W_ihᵀ + b_ih + b_hh                      (T, B, 4H)  ONE matmul for every step
    z_t = Z_x[t] + h_{t-1} W_hhᵀ,  then the cell; h_t is the layer's output at step t.
BPTT carries dh'_t = dout_t + dz_{t+1} W_hh and dc'_t = dc_{t+1} ⊙ f_{t+1}; after the loop, for
the whole sequence at once:
    dW_ih = Σ_t dz_tᵀ x_t    dW_hh = Σ_t dz_tᵀ h_{t-1}    db = Σ_t Σ_batch dz_t    dX = dZ W_ih
three matmuls (and a sum) over all T·B rows, not T small ones (numpy_impl/fast/recurrent.py).
Arrays are kept time-major (T, B, ·) so each step's slice is contiguous.
Few NumPy calls per step, since at B = 32 each call's overhead rivals its work. Forward: the
rows of W_ih, W_hh and the biases of the σ gates (i, f, o) are pre-negated (exact), so z_t arrives
as s ⊙ z_t, s = [-1 -1 1 -1] per gate block, and one exp over the whole (B, 4H) block, + 1 and a
reciprocal give σ(z) = 1 / (1 + e^-z) for the three σ gates (g's block is then overwritten by
tanh(z_g)); s ⊙ z_t stays in the pre-activation array, which the cache keeps in place of the gates.
Backward: everything in dz_t that does not depend on (dh'_t, dc'_t) is computed for all steps at
once before the loop, the gates recomputed and the derivatives taken from the pre-activations
(σ'(z) = σ(z)σ(-z) = e/(1 + e)², tanh'(a) = sech²(a), e = e^-|·|: no cancellation as σ → 1 or
|tanh| → 1; numpy_impl/lstm.py): F = [g σ'(z_i), c σ'(z_f), i tanh'(z_g), tanh(c') σ'(z_o)] and
P = o tanh'(c'), so a step is dc = dc' + dh' ⊙ P_t, dz_t = [dc dc dc dh'] ⊙ F_t and the two
products (6 calls).
"""

from __future__ import annotations

import numpy as np

from numpy_impl.fast.blocks import for_blocks, rows_per_block
from numpy_impl.fast.recurrent import input_projection_grads, tanh_derivative_
from numpy_impl.lstm import lstm_backward_with, lstm_with


def lstm_forward(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    state: tuple[np.ndarray, np.ndarray] | None = None,
    dropout_masks: list[np.ndarray | None] | None = None,
    p: float = 0.0,
):
    """numpy_impl.lstm_forward with the fast layers."""
    return lstm_with(_layer_forward, x, params, state, dropout_masks, p)


def lstm_backward(
    dout: np.ndarray,
    dstate: tuple[np.ndarray, np.ndarray] | None,
    cache,
):
    """Returns (dx, (dh0, dc0), grads)."""
    return lstm_backward_with(_layer_backward, dout, dstate, cache)


def _gate_sign(H: int, dtype) -> np.ndarray:
    """s (4H,): -1 on the σ gates' rows, 1 on g's, so s ⊙ z is [-z_i -z_f z_g -z_o]."""
    s = np.full(4 * H, -1.0, dtype)
    s[2 * H : 3 * H] = 1.0
    return s


def _activate(zs: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The gates [i f g o] into out from zs = s ⊙ z (…, 4H): 1 / (1 + e^-z) on the σ gates, tanh
    on g (4 calls: the σ passes run over g's block too, which tanh then overwrites)."""
    H = zs.shape[-1] // 4
    with np.errstate(over="ignore", under="ignore"):  # e^-z = inf: σ = 0 exactly
        np.exp(zs, out=out)  # e^-z on the σ gates
    out += 1
    np.reciprocal(out, out=out)
    np.tanh(zs[..., 2 * H : 3 * H], out=out[..., 2 * H : 3 * H])
    return out


def _step_factors(pre, c_prev, c_next, tanh_c) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The parts of every step's backward that do not depend on the incoming gradients, for all
    T steps at once, from the pre-activations pre = s ⊙ z (T, B, 4H) and c (T+1 steps' c split as
    c_prev, c_next): F (T, B, 4H) = [g σ'(z_i), c σ'(z_f), i tanh'(z_g), tanh(c') σ'(z_o)],
    P (T, B, H) = o tanh'(c') and the forget gates f (T, B, H); a few steps at a time, so each
    block stays in cache. σ'(z) = e/(1 + e)² (even in z, so the sign s does not matter),
    tanh'(z) = 4e²/(1 + e²)², e = e^-|z|."""
    T, B, H = tanh_c.shape
    F, P, forget = np.empty_like(pre), np.empty_like(tanh_c), np.empty_like(tanh_c)

    def steps(lo: int, hi: int) -> None:
        zs, f4, p = pre[lo:hi], F[lo:hi], P[lo:hi]
        e = np.abs(zs, out=f4)
        np.negative(e, out=e)
        with np.errstate(under="ignore"):
            np.exp(e, out=e)  # e^-|z|
            e[..., 2 * H : 3 * H] *= e[..., 2 * H : 3 * H]  # e^-2|z_g|
        d = e + 1
        d *= d
        f4 /= d  # [σ'_i σ'_f tanh'_g/4 σ'_o]
        f4[..., 2 * H : 3 * H] *= 4
        a = _activate(zs, np.empty_like(zs))  # the gates, as the forward computed them
        i, f, g, o = (a[..., j * H : (j + 1) * H] for j in range(4))
        f4[..., :H] *= g
        f4[..., H : 2 * H] *= c_prev[lo:hi]
        f4[..., 2 * H : 3 * H] *= i
        f4[..., 3 * H :] *= tanh_c[lo:hi]
        tanh_derivative_(c_next[lo:hi], out=p)
        p *= o  # o tanh'(c')
        forget[lo:hi] = f

    for_blocks(steps, T, rows_per_block(B * 4 * H))  # a block of steps
    return F, P, forget


def _layer_forward(layer_in, h0, c0, W_ih, W_hh, b_ih, b_hh):
    """One layer over time: layer_in (T, B, I), h0 and c0 (B, H). Returns (its outputs (T, B, H),
    (h_T, c_T), cache)."""
    T, B, _ = layer_in.shape
    H, dtype = W_hh.shape[1], layer_in.dtype
    s = _gate_sign(H, dtype)  # (4H,)
    # (H, 4H) rows pre-scaled by s, so z arrives as s ⊙ z; stored transposed, as BLAS is faster
    # on a (B, H) @ (H, 4H) product than on the transposed view at this size
    W_hh_sT = np.ascontiguousarray((W_hh * s[:, None]).T)
    # The input part of every step's pre-activation at once: (T·B, I) @ (I, 4H).
    z = (layer_in.reshape(T * B, -1) @ (W_ih * s[:, None]).T).reshape(T, B, 4 * H)  # s ⊙ z
    z += (b_ih + b_hh) * s
    hs = np.empty((T + 1, B, H), dtype)  # hs[0] = h_0, hs[t+1] = h_t (the output)
    cs = np.empty((T + 1, B, H), dtype)  # cs[0] = c_0, cs[t+1] = c_t
    tanh_cs = np.empty((T, B, H), dtype)
    hs[0], cs[0] = h0, c0
    recurrent, ig = np.empty((B, 4 * H), dtype), np.empty((B, H), dtype)
    gates = np.empty((B, 4 * H), dtype)  # [i f g o] of the step
    i, f, g, o = (gates[:, j * H : (j + 1) * H] for j in range(4))
    for t in range(T):
        np.matmul(hs[t], W_hh_sT, out=recurrent)  # (B, 4H)
        z[t] += recurrent  # s ⊙ z_t, kept for BPTT
        _activate(z[t], out=gates)
        np.multiply(f, cs[t], out=cs[t + 1])  # c_t = f ⊙ c_{t-1} + i ⊙ g
        cs[t + 1] += np.multiply(i, g, out=ig)
        np.tanh(cs[t + 1], out=tanh_cs[t])
        np.multiply(o, tanh_cs[t], out=hs[t + 1])  # h_t = o ⊙ tanh(c_t)
    return hs[1:], (hs[T], cs[T]), (layer_in, z, hs, cs, tanh_cs, W_ih, W_hh)


def _layer_backward(d_out, dfinal, cache):
    """One layer's BPTT: d_out (T, B, H) on its outputs, dfinal (dh_T, dc_T) or None.
    Returns (d_in (T, B, I), (dh_0, dc_0), (dW_ih, dW_hh, db_ih, db_hh))."""
    layer_in, pre, hs, cs, tanh_cs, W_ih, W_hh = cache
    T, B, H = d_out.shape
    if dfinal is None:
        dh_next, dc_next = np.zeros((B, H), hs.dtype), np.zeros((B, H), hs.dtype)
    else:
        dh_next, dc_next = dfinal
    dz, P, f = _step_factors(pre, cs[:-1], cs[1:], tanh_cs)  # (T, B, 4H) F, (T, B, H) P and f
    dz4 = dz.reshape(T, B, 4, H)
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
