"""The GRU cell and the multi-layer GRU with backpropagation through time (BPTT), in both
conventions for where the reset gate acts.

Layout and names are torch.nn.GRU's: weight_ih (3H, I), weight_hh (3H, H), two biases (3H,), gate
rows in the order r (reset), z (update), n (candidate). x (B, I), h (B, H):
    gi = x W_ihᵀ + b_ih = [gi_r gi_z gi_n]                                  (B, 3H)
    r = σ(gi_r + h W_hrᵀ + b_hr)     z = σ(gi_z + h W_hzᵀ + b_hz)           (B, H) each
    reset_after=True  (torch, cuDNN; the default):  n = tanh(gi_n + r ⊙ (h W_hnᵀ + b_hn))
    reset_after=False (Cho et al. 2014, Karpathy):  n = tanh(gi_n + (r ⊙ h) W_hnᵀ + b_hn)
    h' = (1 - z) ⊙ n + z ⊙ h  =  n + z ⊙ (h - n)                          (B, H)
The conventions differ only in n: torch resets the hidden matmul's result, so one (B, H) @ (H, 3H)
matmul per step serves all three gates (cuDNN's choice); Cho resets h before a second matmul. And
Karpathy interpolates h' = z ⊙ n + (1 - z) ⊙ h: his z is our 1 - z (our z rows and biases negated).
parity_tests/models/test_gru.py works a 2×2 example by hand in his form.

Cell backward, given dh' (B, H); σ' = σ(1 - σ), tanh' = 1 - tanh² (computed as (1 - n)(1 + n):
near |n| = 1, 1 - n·n cancels away the digits the float32 rule measures):
    dn = dh' ⊙ (1 - z)     dz = dh' ⊙ (h - n)     dh = dh' ⊙ z          (the direct path)
    da_n = dn ⊙ (1 - n²)   da_z = dz ⊙ z(1 - z)                          pre-activation grads
    reset_after=True:   dr = da_n ⊙ (h W_hnᵀ + b_hn)
                        dgh = [da_r, da_z, da_n ⊙ r]   on gh = h W_hhᵀ + b_hh
                        dh += dgh W_hh    dW_hh = dghᵀ h    db_hh = Σ_batch dgh
    reset_after=False:  d(r⊙h) = da_n W_hn    dr = d(r⊙h) ⊙ h    dh += d(r⊙h) ⊙ r
                        dh += [da_r da_z] W_h{r,z}    dW_h{r,z} = [da_r da_z]ᵀ h
                        dW_hn = da_nᵀ (r ⊙ h)    db_hh = Σ_batch dgi   (b_hn sits outside r)
    da_r = dr ⊙ r(1 - r);  dgi = [da_r, da_z, da_n]:  dx = dgi W_ih   dW_ih = dgiᵀ x
    db_ih = Σ_batch dgi

Layer over time (`gru_forward` / `gru_backward`; `GRU` is a thin class over the pair), x (B, T, I),
layer k's state h_0 → h_T, layers stacked with dropout between them (numpy_impl/recurrent.py):
    GI = X W_ihᵀ + b_ih (+ b_hr, b_hz, and b_hn when reset_after=False)   ONE matmul, all steps
    per step: the recurrent matmul(s) and the cell above; h_t is the layer's output at step t.
BPTT, t = T-1 … 0, dh'_t = dout_t + (what step t+1 sends back). Every factor that does not depend
on dh'_t is computed for all T steps at once before the loop, so each step is a few (B, ·)
products and one or two matmuls; e.g. for reset_after=True
    dgi_t = dh'_t ⊙ C_t,  C = [(1-z)(1-n²) ⊙ gh_n ⊙ r(1-r),  (h-n) ⊙ z(1-z),  (1-z)(1-n²)]
    dgh_t = dh'_t ⊙ D_t,  D = C with its n block times r
    dh_{t-1} gets  dh'_t ⊙ z_t + dgh_t W_hh
and after the loop, over all T·B rows at once: dW_ih = ΣdGIᵀ X, dW_hh, the biases, dX = dGI W_ih.
Arrays are time-major (T, B, ·) so each step's slice is contiguous.
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
from twinlm.shared.init import init_gru_params
from twinlm.shared.validate import (
    require_bool,
    require_recurrent_cell_inputs,
    require_recurrent_inputs,
    require_recurrent_params,
)


def _sigmoid(z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """σ(z) = (1 + tanh(z/2)) / 2: no overflow for any z, and four vectorized passes (NumPy's
    float32 tanh is far faster than its exp); its error is absolute, ≤ 1 ulp of 1."""
    out = np.multiply(z, 0.5, out=out)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def gru_cell_forward(
    x: np.ndarray,
    h: np.ndarray,
    weight_ih: np.ndarray,
    weight_hh: np.ndarray,
    bias_ih: np.ndarray,
    bias_hh: np.ndarray,
    reset_after: bool = True,
):
    """One GRU step (torch.nn.GRUCell when reset_after, else Cho 2014's cell). Returns
    (h_next (B, H), cache)."""
    require_bool("reset_after", reset_after)
    require_recurrent_cell_inputs(x, {"h": h}, weight_ih, weight_hh, bias_ih, bias_hh, 3)
    H = h.shape[-1]
    gi = x @ weight_ih.T + bias_ih  # (B, 3H)
    if reset_after:
        gh = h @ weight_hh.T + bias_hh  # (B, 3H)
        rz = _sigmoid(gi[:, : 2 * H] + gh[:, : 2 * H])  # (B, 2H)  [r z]
        r, z = rz[:, :H], rz[:, H:]
        gh_n = gh[:, 2 * H :]  # (B, H)  h W_hnᵀ + b_hn
        n = np.tanh(gi[:, 2 * H :] + r * gh_n)  # (B, H)
        rh = None
    else:
        gh_rz = h @ weight_hh[: 2 * H].T + bias_hh[: 2 * H]  # (B, 2H)
        rz = _sigmoid(gi[:, : 2 * H] + gh_rz)
        r, z = rz[:, :H], rz[:, H:]
        rh = r * h  # (B, H)
        n = np.tanh(gi[:, 2 * H :] + rh @ weight_hh[2 * H :].T + bias_hh[2 * H :])  # (B, H)
        gh_n = None
    h_next = n + z * (h - n)  # (B, H)  (1 - z) ⊙ n + z ⊙ h
    return h_next, (x, h, weight_ih, weight_hh, r, z, n, gh_n, rh)


def gru_cell_backward(dh_next: np.ndarray, cache):
    """Returns (dx, dh, dweight_ih, dweight_hh, dbias_ih, dbias_hh)."""
    x, h, weight_ih, weight_hh, r, z, n, gh_n, rh = cache
    H = h.shape[-1]
    da_n = dh_next * (1 - z) * (1 - n) * (1 + n)  # (B, H)
    da_z = dh_next * (h - n) * z * (1 - z)  # (B, H)
    dh = dh_next * z  # (B, H)  the direct path
    if rh is None:  # reset_after: n = tanh(gi_n + r ⊙ gh_n)
        da_r = da_n * gh_n * r * (1 - r)
        dgi = np.concatenate([da_r, da_z, da_n], axis=1)  # (B, 3H)
        dgh = np.concatenate([da_r, da_z, da_n * r], axis=1)  # (B, 3H)
        dh += dgh @ weight_hh
        dweight_hh = dgh.T @ h  # (3H, H)
        dbias_hh = dgh.sum(axis=0)
    else:  # n = tanh(gi_n + (r ⊙ h) W_hnᵀ + b_hn)
        drh = da_n @ weight_hh[2 * H :]  # (B, H)
        da_r = drh * h * r * (1 - r)
        dgi = np.concatenate([da_r, da_z, da_n], axis=1)  # (B, 3H)
        dh += drh * r + dgi[:, : 2 * H] @ weight_hh[: 2 * H]
        dweight_hh = np.concatenate([dgi[:, : 2 * H].T @ h, da_n.T @ rh])  # (3H, H)
        dbias_hh = dgi.sum(axis=0)
    return dgi @ weight_ih, dh, dgi.T @ x, dweight_hh, dgi.sum(axis=0), dbias_hh


# ---- the multi-layer GRU over time ---------------------------------------------------------------


def gru_forward(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    h0: np.ndarray | None = None,
    dropout_masks: list[np.ndarray | None] | None = None,
    p: float = 0.0,
    reset_after: bool = True,
):
    """Multi-layer GRU over time, batch first (see the module docstring). x (B, T, I); params
    keyed like torch.nn.GRU's state_dict (num_layers and hidden size read off them); h0 (L, B, H),
    zeros if None; dropout_masks None or L-1 keep-masks (B, T, H) (or None entries) applied to
    each layer's output but the last, scaled by 1/(1 - p). Returns (out (B, T, H), h_n, cache)."""
    require_bool("reset_after", reset_after)
    I, H, L = require_recurrent_params(params, 3, "torch.nn.GRU")
    dtype = params["weight_ih_l0"].dtype
    require_recurrent_inputs(
        x, {"h0": h0}, dropout_masks, p, input_size=I, hidden_size=H, num_layers=L, dtype=dtype
    )
    h0 = np.zeros((L, x.shape[0], H), dtype) if h0 is None else h0

    def layer(k: int, layer_in: np.ndarray):
        return _layer_forward(layer_in, h0[k], *layer_params(params, k), reset_after)

    out, (h_n,), cache = stack_layers_forward(x, L, layer, dropout_masks, p)
    return out, h_n, cache


def gru_backward(dout: np.ndarray, dh_n: np.ndarray | None, cache):
    """BPTT. dout (B, T, H) on `out`; dh_n (L, B, H) on the final state, or None.
    Returns (dx (B, T, I), dh0 (L, B, H), grads keyed like params, in state_dict order)."""
    dstates = None if dh_n is None else {"dh_n": dh_n}
    dx, (dh0,), grads = stack_layers_backward(dout, dstates, cache, _layer_backward)
    return dx, dh0, grads


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


class GRU(RecurrentLayer):
    """Multi-layer GRU (torch.nn.GRU, batch first): a thin class over gru_forward / gru_backward.
    reset_after=True is torch's cell, False Cho 2014's (module docstring); every parameter
    U(-1/√H, 1/√H) as torch."""

    gates = 3

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        seed: int = 0,
        dtype=np.float32,
        reset_after: bool = True,
    ):
        require_bool("reset_after", reset_after)
        self.reset_after = reset_after
        super().__init__(input_size, hidden_size, num_layers, seed, dtype)

    def _init(self, input_size, hidden_size, num_layers, seed, dtype):
        return init_gru_params(input_size, hidden_size, num_layers, seed, dtype)

    def _forward(self, x, params, h0, dropout_masks, p):
        return gru_forward(x, params, h0, dropout_masks, p, self.reset_after)

    def _backward(self, dout, dh_n, cache):
        return gru_backward(dout, dh_n, cache)
