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

a_r, a_z, a_n are the pre-activations of r, z, n: r = σ(a_r), z = σ(a_z), n = tanh(a_n).
Cell backward, given dh' (B, H); σ'(a) = σ(a)σ(-a) and tanh'(a) = 1 - tanh²(a) = sech²(a) taken
from the pre-activations (numpy_impl/recurrent.py), not as z(1 - z) or 1 - n² from the rounded
gates, which cancel as z → 1 or |n| → 1 (the cache holds the pre-activations; the backward
recomputes the gates from them):
    dn = dh' ⊙ (1 - z)     dz = dh' ⊙ (h - n)     dh = dh' ⊙ z          (the direct path)
                           (1 - z = σ(-a_z), not a difference that cancels as z → 1)
    da_n = dn ⊙ tanh'(a_n)   da_z = dz ⊙ σ'(a_z)                        pre-activation grads
    reset_after=True:   dr = da_n ⊙ (h W_hnᵀ + b_hn)
                        dgh = [da_r, da_z, da_n ⊙ r]   on gh = h W_hhᵀ + b_hh
                        dh += dgh W_hh    dW_hh = dghᵀ h    db_hh = Σ_batch dgh
    reset_after=False:  d(r⊙h) = da_n W_hn    dr = d(r⊙h) ⊙ h    dh += d(r⊙h) ⊙ r
                        dh += [da_r da_z] W_h{r,z}    dW_h{r,z} = [da_r da_z]ᵀ h
                        dW_hn = da_nᵀ (r ⊙ h)    db_hh = Σ_batch dgi   (b_hn sits outside r)
    da_r = dr ⊙ σ'(a_r);  dgi = [da_r, da_z, da_n]:  dx = dgi W_ih   dW_ih = dgiᵀ x
    db_ih = Σ_batch dgi

Layer over time (`gru_forward` / `gru_backward`; `GRU` is a thin class over the pair), x (B, T, I),
layer k's state h_0 → h_T: the cell at t = 0 .. T-1, h_t the layer's output at step t; BPTT runs
t = T-1 … 0 with dh'_t = dout_t + dh_{t+1} (the cell's dh), the weight gradients adding up over the
steps (numpy_impl/recurrent.py's loop over the cell); layers stacked with dropout between them.
numpy_impl/fast/gru.py computes the same layers faster.
"""

from __future__ import annotations

import functools

import numpy as np

from numpy_impl.recurrent import (
    RecurrentLayer,
    sigmoid,
    sigmoid_derivative,
    single_state_backward_with,
    single_state_layers,
    single_state_with,
    tanh_derivative,
)
from twinlm.shared.init import init_gru_params
from twinlm.shared.validate import require_bool, require_recurrent_cell_inputs


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
        a_rz = gi[:, : 2 * H] + gh[:, : 2 * H]  # (B, 2H)  [a_r a_z]
        rz = sigmoid(a_rz)  # (B, 2H)  [r z]
        r, z = rz[:, :H], rz[:, H:]
        gh_n = gh[:, 2 * H :]  # (B, H)  h W_hnᵀ + b_hn
        a_n = gi[:, 2 * H :] + r * gh_n  # (B, H)
        rh = None
    else:
        gh_rz = h @ weight_hh[: 2 * H].T + bias_hh[: 2 * H]  # (B, 2H)
        a_rz = gi[:, : 2 * H] + gh_rz
        rz = sigmoid(a_rz)
        r, z = rz[:, :H], rz[:, H:]
        rh = r * h  # (B, H)
        a_n = gi[:, 2 * H :] + rh @ weight_hh[2 * H :].T + bias_hh[2 * H :]  # (B, H)
        gh_n = None
    n = np.tanh(a_n)  # (B, H)
    h_next = n + z * (h - n)  # (B, H)  (1 - z) ⊙ n + z ⊙ h
    return h_next, (x, h, weight_ih, weight_hh, a_rz, a_n, gh_n, rh)  # pre-activations, not gates


def gru_cell_backward(dh_next: np.ndarray, cache):
    """Returns (dx, dh, dweight_ih, dweight_hh, dbias_ih, dbias_hh)."""
    x, h, weight_ih, weight_hh, a_rz, a_n, gh_n, rh = cache
    H = h.shape[-1]
    # h' = (1 - z) ⊙ n + z ⊙ h,  n = tanh(a_n),  [r z] = σ([a_r a_z]): the forward's gates again
    rz, n = sigmoid(a_rz), np.tanh(a_n)  # (B, 2H), (B, H)
    r, z = rz[:, :H], rz[:, H:]
    d_rz = sigmoid_derivative(a_rz)  # (B, 2H)  [σ'(a_r) σ'(a_z)]
    one_minus_z = sigmoid(-a_rz[:, H:])  # (B, H)  1 - z = σ(-a_z): no cancellation as z → 1
    da_n = dh_next * one_minus_z * tanh_derivative(a_n)  # (B, H)
    da_z = dh_next * (h - n) * d_rz[:, H:]  # (B, H)
    dh = dh_next * z  # (B, H)  the direct path
    if rh is None:  # reset_after: a_n = gi_n + r ⊙ gh_n
        da_r = da_n * gh_n * d_rz[:, :H]
        dgi = np.concatenate([da_r, da_z, da_n], axis=1)  # (B, 3H)
        dgh = np.concatenate([da_r, da_z, da_n * r], axis=1)  # (B, 3H)
        dh += dgh @ weight_hh
        dweight_hh = dgh.T @ h  # (3H, H)
        dbias_hh = dgh.sum(axis=0)
    else:  # n = tanh(gi_n + (r ⊙ h) W_hnᵀ + b_hn)
        drh = da_n @ weight_hh[2 * H :]  # (B, H)
        da_r = drh * h * d_rz[:, :H]
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
    """Multi-layer GRU over time, batch first (module docstring), params keyed like torch.nn.GRU's
    state_dict; the other arguments as numpy_impl.recurrent.single_state_with takes them.
    Returns (out (B, T, H), h_n (L, B, H), cache)."""
    require_bool("reset_after", reset_after)
    layer = functools.partial(_layer_forward, reset_after=reset_after)
    return single_state_with(layer, x, params, h0, dropout_masks, p, 3, "torch.nn.GRU")


def gru_backward(dout: np.ndarray, dh_n: np.ndarray | None, cache):
    """gru_forward's BPTT (dout on `out`, dh_n on h_n or None), as
    numpy_impl.recurrent.single_state_backward_with. Returns (dx, dh0, grads keyed like params)."""
    return single_state_backward_with(_layer_backward, dout, dh_n, cache)


# one layer over time: the cell at each step (numpy_impl/recurrent.py)
_layer_forward, _layer_backward = single_state_layers(gru_cell_forward, gru_cell_backward)


class GRU(RecurrentLayer):
    """Multi-layer GRU (torch.nn.GRU, batch first): a thin class over gru_forward / gru_backward
    (numpy_impl's, or numpy_impl/fast's with kernels="fast"). reset_after=True is torch's cell,
    False Cho 2014's (module docstring); every parameter U(-1/√H, 1/√H) as torch."""

    gates, op, option, init_params = 3, "gru", "reset_after", staticmethod(init_gru_params)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        seed: int = 0,
        dtype=np.float32,
        reset_after: bool = True,
        kernels: str = "reference",
    ):
        require_bool("reset_after", reset_after)
        self.reset_after = reset_after
        super().__init__(input_size, hidden_size, num_layers, seed, dtype, kernels)
