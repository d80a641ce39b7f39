"""The multi-layer GRU, the fast path: numpy_impl/gru.py's math (its docstring has it, cell and
both conventions), with each layer over time computed so:
    GI = X W_ihᵀ + b_ih (+ b_hr, b_hz, and b_hn when reset_after=False)   ONE matmul, all steps
    per step: the recurrent matmul(s) and the cell, in place; h_t is the layer's output at step t.
BPTT, t = T-1 … 0, dh'_t = dout_t + (what step t+1 sends back). Every factor that does not depend
on dh'_t is computed for all T steps at once before the loop, so each step is a few (B, ·)
products and one or two matmuls; e.g. for reset_after=True
    dgi_t = dh'_t ⊙ C_t,  C = [(1-z)(1-n²) ⊙ gh_n ⊙ r(1-r),  (h-n) ⊙ z(1-z),  (1-z)(1-n²)]
    dgh_t = dh'_t ⊙ D_t,  D = C with its n block times r
    dh_{t-1} gets  dh'_t ⊙ z_t + dgh_t W_hh
and after the loop, over all T·B rows at once: dW_ih = ΣdGIᵀ X, dW_hh, the biases, dX = dGI W_ih
(numpy_impl/fast/recurrent.py). Arrays are time-major (T, B, ·) so each step's slice is contiguous.
"""

from __future__ import annotations

import functools

import numpy as np

from numpy_impl.fast.recurrent import input_projection_grads
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


def _sigmoid(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """numpy_impl.recurrent.sigmoid into `out` (which may be z): four passes, no temporaries."""
    out = np.multiply(z, 0.5, out=out)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


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
    extra = step(g, hs, W_hh, b_hh[2 * H :])  # g now holds the gates [r z n]
    return hs[1:], (hs[T],), (layer_in, hs, g, extra, W_ih, W_hh, reset_after)


def _layer_backward(d_out, dfinal, cache):
    """One layer's BPTT: d_out (T, B, H) on its outputs, dfinal (dh_T,) or None.
    Returns (d_in (T, B, I), (dh_0,), (dW_ih, dW_hh, db_ih, db_hh))."""
    layer_in, hs, gates, extra, W_ih, W_hh, reset_after = cache
    dh_last = np.zeros(hs.shape[1:], hs.dtype) if dfinal is None else dfinal[0]
    bptt = _bptt_reset_after if reset_after else _bptt_reset_before
    dgi, dh0, dW_hh, db_hh = bptt(d_out, dh_last, hs, gates, extra, W_hh)
    d_in, dW_ih, db_ih = input_projection_grads(dgi, layer_in, W_ih)  # GI = X W_ihᵀ + b
    return d_in, (dh0,), (dW_ih, dW_hh, db_ih, db_hh)


# ---- one layer's time loops, each convention -----------------------------------------------------


def _steps_reset_after(g, hs, W_hh, b_hn):
    """Forward of one layer, torch's convention. g (T, B, 3H): the input parts, turned in place
    into the gates [r z n]; hs (T+1, B, H) filled. Returns gh_n (T, B, H) = h W_hnᵀ + b_hn."""
    T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    gh = np.empty((B, 3 * H), g.dtype)  # h_{t-1} W_hhᵀ
    gh_n = np.empty((T, B, H), g.dtype)
    for t in range(T):
        np.matmul(hs[t], W_hh.T, out=gh)  # (B, 3H)  ONE recurrent matmul for all three gates
        rz, n = g[t, :, : 2 * H], g[t, :, 2 * H :]
        rz += gh[:, : 2 * H]
        _sigmoid(rz, out=rz)  # [r z]
        np.add(gh[:, 2 * H :], b_hn, out=gh_n[t])
        n += rz[:, :H] * gh_n[t]
        np.tanh(n, out=n)  # n = tanh(gi_n + r ⊙ gh_n)
        np.subtract(hs[t], n, out=hs[t + 1])  # h_t = n + z ⊙ (h_{t-1} - n)
        hs[t + 1] *= rz[:, H:]
        hs[t + 1] += n
    return gh_n


def _steps_reset_before(g, hs, W_hh, b_hn):
    """Forward of one layer, Cho's convention (b_hn already in g). Returns r ⊙ h_{t-1} (T, B, H)."""
    T, B, H = hs.shape[0] - 1, hs.shape[1], hs.shape[2]
    W_hrz_T, W_hn_T = W_hh[: 2 * H].T, W_hh[2 * H :].T
    rec = np.empty((B, 2 * H), g.dtype)
    rh = np.empty((T, B, H), g.dtype)
    for t in range(T):
        rz, n = g[t, :, : 2 * H], g[t, :, 2 * H :]
        rz += np.matmul(hs[t], W_hrz_T, out=rec)  # (B, 2H)
        _sigmoid(rz, out=rz)  # [r z]
        np.multiply(rz[:, :H], hs[t], out=rh[t])  # r ⊙ h_{t-1}
        n += rh[t] @ W_hn_T  # the second, dependent matmul
        np.tanh(n, out=n)
        np.subtract(hs[t], n, out=hs[t + 1])  # h_t = n + z ⊙ (h_{t-1} - n)
        hs[t + 1] *= rz[:, H:]
        hs[t + 1] += n
    return rh


def _bptt_reset_after(d_out, dh_next, hs, gates, gh_n, W_hh):
    """One layer's BPTT, torch's convention (module docstring). d_out (T, B, H) on its outputs,
    dh_next (B, H) on h_T. Returns (dGI (T, B, 3H), dh_0, dW_hh (3H, H), db_hh (3H,))."""
    T, B, H = d_out.shape
    r, z, n = gates[..., :H], gates[..., H : 2 * H], gates[..., 2 * H :]  # (T, B, H) each
    # The factors that do not depend on dh', for all steps at once: C for dgi, D for dgh.
    C = np.empty_like(gates)  # (T, B, 3H)
    cn = C[..., 2 * H :]
    np.multiply(1 - z, (1 - n) * (1 + n), out=cn)  # (1 - z)(1 - n²)
    np.multiply((hs[:-1] - n) * z, 1 - z, out=C[..., H : 2 * H])  # (h - n) z(1 - z)
    np.multiply(cn * gh_n, r * (1 - r), out=C[..., :H])  # (1-z)(1-n²) gh_n r(1 - r)
    D = C.copy()
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


def _bptt_reset_before(d_out, dh_next, hs, gates, rh, W_hh):
    """One layer's BPTT, Cho's convention. Returns (dGI (T, B, 3H), dh_0, dW_hh, db_hh)."""
    T, B, H = d_out.shape
    r, z, n = gates[..., :H], gates[..., H : 2 * H], gates[..., 2 * H :]  # (T, B, H) each
    W_hrz, W_hn = W_hh[: 2 * H], W_hh[2 * H :]
    cn = (1 - z) * (1 - n) * (1 + n)  # (T, B, H)  da_n = dh' ⊙ cn
    cz = (hs[:-1] - n) * z * (1 - z)  # da_z = dh' ⊙ cz
    er = hs[:-1] * r * (1 - r)  # da_r = d(r⊙h) ⊙ er
    dgi = np.empty_like(gates)  # (T, B, 3H)  [da_r da_z da_n]
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
