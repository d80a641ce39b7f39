"""The multi-layer GRU, the fast path: numpy_impl/gru.py's math (its docstring has it, cell and
both conventions), with each layer over time computed so:
    GI = X W_ihᵀ + b_ih (+ b_hr, b_hz, and b_hn when reset_after=False)   ONE matmul, all steps
    per step: the recurrent matmul(s) added in, GI[t] becoming the pre-activations [a_r a_z a_n]
    (kept for BPTT in place of the gates), then the gates into scratch and h_t, the layer's
    output at step t.
BPTT, t = T-1 … 0, dh'_t = dout_t + (what step t+1 sends back). Every factor that does not depend
on dh'_t is computed for all T steps at once before the loop, the gates and their derivatives
from the pre-activations (σ'(a) = σ(a)σ(-a), tanh'(a) = sech²(a), 1 - z = σ(-a_z): no
cancellation as z → 1 or |n| → 1; numpy_impl/gru.py), so each step is a few (B, ·) products and
one or two matmuls; e.g. for reset_after=True
    dgi_t = dh'_t ⊙ C_t,  C = [(1-z) tanh'(a_n) ⊙ gh_n ⊙ σ'(a_r),  (h-n) ⊙ σ'(a_z),  (1-z) tanh'(a_n)]
    dgh_t = dh'_t ⊙ D_t,  D = C with its n block times r
    dh_{t-1} gets  dh'_t ⊙ z_t + dgh_t W_hh
and after the loop, over all T·B rows at once: dW_ih = ΣdGIᵀ X, dW_hh, the biases, dX = dGI W_ih
(numpy_impl/fast/recurrent.py). Arrays are time-major (T, B, ·) so each step's slice is contiguous.
"""

from __future__ import annotations

import functools

import numpy as np

from numpy_impl.fast.recurrent import (
    input_projection_grads,
    sigmoid_,
    sigmoid_pair,
    tanh_derivative_,
)
from numpy_impl.recurrent import single_state_backward_with, single_state_with
from twinlm.shared.validate import require_bool


def gru_forward(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    h0: np.ndarray | None = None,
    dropout_masks: list[np.ndarray | None] | None = None,
    p: float = 0.0,
    reset_after: bool = True,
):
    """numpy_impl.gru_forward with the fast layers."""
    require_bool("reset_after", reset_after)
    layer = functools.partial(_layer_forward, reset_after=reset_after)
    return single_state_with(layer, x, params, h0, dropout_masks, p, 3, "torch.nn.GRU")


def gru_backward(dout: np.ndarray, dh_n: np.ndarray | None, cache):
    """Returns (dx, dh0, grads)."""
    return single_state_backward_with(_layer_backward, dout, dh_n, cache)


def _layer_forward(layer_in, h0, W_ih, W_hh, b_ih, b_hh, reset_after):
    """One layer over time: layer_in (T, B, I), h0 (B, H). Returns (its outputs (T, B, H),
    (h_T,), cache)."""
    T, B, _ = layer_in.shape
    H = W_hh.shape[1]
    # The input part of every step's pre-activations at once: (T·B, I) @ (I, 3H).
    g = (layer_in.reshape(T * B, -1) @ W_ih.T).reshape(T, B, 3 * H)  # (T, B, 3H)
    g += b_ih
    g[..., : 2 * H] += b_hh[: 2 * H]  # b_hr, b_hz add like b_ih
    if not reset_after:
        g[..., 2 * H :] += b_hh[2 * H :]  # and b_hn too, outside r
    hs = np.empty((T + 1, B, H), layer_in.dtype)  # hs[0] = h_0, hs[t+1] = h_t (the output)
    hs[0] = h0
    step = _steps_reset_after if reset_after else _steps_reset_before
    extra = step(g, hs, W_hh, b_hh[2 * H :])  # g now holds the pre-activations [a_r a_z a_n]
    return hs[1:], (hs[T],), (layer_in, hs, g, extra, W_ih, W_hh, reset_after)


def _layer_backward(d_out, dfinal, cache):
    """One layer's BPTT: d_out (T, B, H) on its outputs, dfinal (dh_T,) or None.
    Returns (d_in (T, B, I), (dh_0,), (dW_ih, dW_hh, db_ih, db_hh))."""
    layer_in, hs, pre, extra, W_ih, W_hh, reset_after = cache
    dh_last = np.zeros(hs.shape[1:], hs.dtype) if dfinal is None else dfinal[0]
    bptt = _bptt_reset_after if reset_after else _bptt_reset_before
    dgi, dh0, dW_hh, db_hh = bptt(d_out, dh_last, hs, _factors(pre, hs), extra, W_hh)
    d_in, dW_ih, db_ih = input_projection_grads(dgi, layer_in, W_ih)  # GI = X W_ihᵀ + b
    return d_in, (dh0,), (dW_ih, dW_hh, db_ih, db_hh)


# ---- one layer's time loops, each convention -----------------------------------------------------


def _steps_reset_after(g, hs, W_hh, b_hn):
    """Forward of one layer, torch's convention. g (T, B, 3H): the input parts, turned in place
    into the pre-activations [a_r a_z a_n]; hs (T+1, B, H) filled. Returns gh_n (T, B, H) =
    h W_hnᵀ + b_hn."""
    T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    gh = np.empty((B, 3 * H), g.dtype)  # h_{t-1} W_hhᵀ
    gates = np.empty((B, 3 * H), g.dtype)  # [r z n] of the step
    rz, n = gates[:, : 2 * H], gates[:, 2 * H :]
    gh_n = np.empty((T, B, H), g.dtype)
    for t in range(T):
        np.matmul(hs[t], W_hh.T, out=gh)  # (B, 3H)  ONE recurrent matmul for all three gates
        a_rz, a_n = g[t, :, : 2 * H], g[t, :, 2 * H :]
        a_rz += gh[:, : 2 * H]
        sigmoid_(a_rz, out=rz)  # [r z]
        np.add(gh[:, 2 * H :], b_hn, out=gh_n[t])
        a_n += rz[:, :H] * gh_n[t]  # a_n = gi_n + r ⊙ gh_n
        np.tanh(a_n, out=n)
        np.subtract(hs[t], n, out=hs[t + 1])  # h_t = n + z ⊙ (h_{t-1} - n)
        hs[t + 1] *= rz[:, H:]
        hs[t + 1] += n
    return gh_n


def _steps_reset_before(g, hs, W_hh, b_hn):
    """Forward of one layer, Cho's convention (b_hn already in g; g turned into the
    pre-activations). Returns r ⊙ h_{t-1} (T, B, H)."""
    T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    W_hrz_T, W_hn_T = W_hh[: 2 * H].T, W_hh[2 * H :].T
    rec = np.empty((B, 2 * H), g.dtype)
    gates = np.empty((B, 3 * H), g.dtype)  # [r z n] of the step
    rz, n = gates[:, : 2 * H], gates[:, 2 * H :]
    rh = np.empty((T, B, H), g.dtype)
    for t in range(T):
        a_rz, a_n = g[t, :, : 2 * H], g[t, :, 2 * H :]
        a_rz += np.matmul(hs[t], W_hrz_T, out=rec)  # (B, 2H)
        sigmoid_(a_rz, out=rz)  # [r z]
        np.multiply(rz[:, :H], hs[t], out=rh[t])  # r ⊙ h_{t-1}
        a_n += rh[t] @ W_hn_T  # the second, dependent matmul
        np.tanh(a_n, out=n)
        np.subtract(hs[t], n, out=hs[t + 1])  # h_t = n + z ⊙ (h_{t-1} - n)
        hs[t + 1] *= rz[:, H:]
        hs[t + 1] += n
    return rh


def _factors(pre, hs):
    """What BPTT needs of the gates, for all steps at once, from the pre-activations pre
    (T, B, 3H) = [a_r a_z a_n]: r, z and σ'(a_r), each (T, B, H), and C (T, B, 3H) with its z and
    n blocks (h - n) σ'(a_z) and (1 - z) tanh'(a_n) (1 - z = σ(-a_z)); its r block is the
    convention's to fill."""
    H = hs.shape[2]
    a_r, a_z, a_n = pre[..., :H], pre[..., H : 2 * H], pre[..., 2 * H :]
    r, z, one_minus = (np.empty_like(a_r) for _ in range(3))
    C = np.empty_like(pre)
    cz, cn = C[..., H : 2 * H], C[..., 2 * H :]
    dr = sigmoid_pair(a_r, r, one_minus)  # r, σ'(a_r)
    np.multiply(sigmoid_pair(a_z, z, one_minus), hs[:-1] - np.tanh(a_n), out=cz)  # (h - n) σ'(a_z)
    tanh_derivative_(a_n, out=cn)
    cn *= one_minus  # (1 - z) tanh'(a_n)
    return r, z, dr, C


def _bptt_reset_after(d_out, dh_next, hs, factors, gh_n, W_hh):
    """One layer's BPTT, torch's convention (module docstring). d_out (T, B, H) on its outputs,
    dh_next (B, H) on h_T, factors from _factors. Returns (dGI (T, B, 3H), dh_0, dW_hh (3H, H),
    db_hh (3H,))."""
    T, B, H = d_out.shape
    r, z, dr, C = factors  # C (T, B, 3H): the factors that do not depend on dh', all steps
    cn = C[..., 2 * H :]
    np.multiply(cn * gh_n, dr, out=C[..., :H])  # (1-z) tanh'(a_n) gh_n σ'(a_r)
    D = C.copy()  # for dgh
    D[..., 2 * H :] *= r  # dgh_n = da_n ⊙ r
    D4, C4 = D.reshape(T, B, 3, H), C.reshape(T, B, 3, H)
    dhs = np.empty((T, B, H), d_out.dtype)  # dh'_t
    for t in reversed(range(T)):
        dh = np.add(d_out[t], dh_next, out=dhs[t])  # (B, H)
        D4[t] *= dh[:, None, :]  # D[t] becomes dgh_t (B, 3H)
        dh_next = dh * z[t]  # the direct path h' = … + z ⊙ h
        dh_next += D[t] @ W_hh  # gh = h W_hhᵀ + b_hh
    C4 *= dhs[:, :, None, :]  # C becomes dGI, all steps at once
    dgh_rows = D.reshape(T * B, 3 * H)
    dW_hh = dgh_rows.T @ hs[:-1].reshape(T * B, H)  # (3H, H)
    return C, dh_next, dW_hh, dgh_rows.sum(axis=0)


def _bptt_reset_before(d_out, dh_next, hs, factors, rh, W_hh):
    """One layer's BPTT, Cho's convention. Returns (dGI (T, B, 3H), dh_0, dW_hh, db_hh)."""
    T, B, H = d_out.shape
    r, z, dr, C = factors
    W_hrz, W_hn = W_hh[: 2 * H], W_hh[2 * H :]
    cz, cn = C[..., H : 2 * H], C[..., 2 * H :]  # da_z = dh' ⊙ cz, da_n = dh' ⊙ cn
    er = np.multiply(hs[:-1], dr, out=dr)  # da_r = d(r⊙h) ⊙ er, er = h σ'(a_r)
    dgi = np.empty_like(C)  # (T, B, 3H)  [da_r da_z da_n]
    for t in reversed(range(T)):
        dh = d_out[t] + dh_next  # (B, H)
        da_n = np.multiply(dh, cn[t], out=dgi[t, :, 2 * H :])
        np.multiply(dh, cz[t], out=dgi[t, :, H : 2 * H])
        drh = da_n @ W_hn  # (B, H)  d(r ⊙ h)
        np.multiply(drh, er[t], out=dgi[t, :, :H])
        dh_next = dh * z[t]  # the direct path
        dh_next += drh * r[t]  # through r ⊙ h
        dh_next += dgi[t, :, : 2 * H] @ W_hrz  # through the r and z pre-activations
    rows = dgi.reshape(T * B, 3 * H)
    dW_hh = np.concatenate(
        [rows[:, : 2 * H].T @ hs[:-1].reshape(T * B, H), rows[:, 2 * H :].T @ rh.reshape(T * B, H)]
    )  # (3H, H)
    return dgi, dh_next, dW_hh, rows.sum(axis=0)  # b_hh enters like b_ih
