"""The GRU, in its two conventions. torch's (reset_after=True) is swept three ways against
torch.nn.GRUCell / GRU in the op registry (twinlm/parity/recurrent_cases.py), and as a layer here
by recurrent_layers.py's tests, shared with the vanilla RNN (test_rnn.py): one to three layers with
sizes 1 included, dropout between layers, the adjoint through time, chunked BPTT, the classes'
layout, init and dtype, torch's time-major layout, and bad input. Cho's (reset_after=False,
Karpathy's char-rnn) has no torch built-in, so here it is checked against a 2×2 example worked by
hand in Karpathy's own form, against finite differences (full Jacobian through time, adjoint with
dropout), against torch_impl in float64 with sizes 1 included, and in float32 against the float64
result, no worse than torch_impl (autograd) is. Both cells by hand, against torch built-ins:
by_hand/test_ops_by_hand_recurrent.py.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given
from recurrent_layers import SMALL_LAYERS, TOL_FD, RecurrentLayerTests

import numpy_impl
import torch_impl
from twinlm.parity.harness import (
    TOL_FLOAT64,
    Float32Runs,
    adjoint_error,
    compare_float32,
    finite_difference_jacobian,
    grads_error,
    outs_error,
    random_douts,
    run_numpy,
    run_torch,
)
from twinlm.parity.recurrent_cases import CELL_ARGS, GRU_CELL, gru_case

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


# ---- torch's convention as a layer: the tests shared with the RNN, and the GRU's bad options ----


@pytest.mark.parametrize("kind", ["gru"])
class TestGRULayer(RecurrentLayerTests):
    """recurrent_layers.py's layer tests, torch's convention (reset_after=True)."""


def test_bad_reset_after_num_layers_and_params():
    params = numpy_impl.RNN(3, 4).params
    x = np.zeros((2, 5, 3), np.float32)
    for bad in (
        lambda: numpy_impl.GRU(3, 4, reset_after="yes"),
        lambda: torch_impl.GRU(3, 4, reset_after=1),
        lambda: numpy_impl.gru_forward(x, numpy_impl.GRU(3, 4).params, reset_after=None),
    ):
        with pytest.raises(TypeError, match="reset_after must be True or False"):
            bad()
    with pytest.raises(ValueError, match="keyed like torch.nn.GRU's state_dict"):
        numpy_impl.gru_forward(x, {"weight_hh_l0": params["weight_hh_l0"]})
    with pytest.raises(ValueError, match=r"weight_hh_l0 must have shape \(12, 4\), got \(4, 4\)"):
        numpy_impl.gru_forward(x, params)  # an RNN's params are not a GRU's
    with pytest.raises(ValueError, match="num_layers must be >= 1, got 0"):
        numpy_impl.GRU(3, 4, 0)


def _sigmoid(a: float) -> float:
    return 1 / (1 + math.exp(-a))


# ---- a 2×2 example by hand, in Karpathy's form ---------------------------------------------------
# char-rnn's GRU.lua: z = σ(W_xz x + W_hz h), r = σ(W_xr x + W_hr h), ñ = tanh(W_xn x + W_hn (r ⊙ h)
# + b_hn), h' = z ⊙ ñ + (1 - z) ⊙ h. Rows are output units; other biases 0; x = (1, 0),
# h = (0.5, -1).
X, H_PREV = (1.0, 0.0), (0.5, -1.0)
W_X = {"r": [[1, 0], [0, 0]], "z": [[0, 0], [-1, 0]], "n": [[1, 0], [1, 0]]}
W_H = {"r": [[0, 0], [0, 2]], "z": [[2, 0], [0, 0]], "n": [[0, 1], [1, 0]]}  # W_hn mixes the units
B_HN = (0.5, -0.5)


def karpathy_by_hand() -> tuple[float, float]:
    """h' of the example, step by step:
    a_r = W_xr x + W_hr h = (1, 0) + (0, -2) = (1, -2)     r = (σ(1), σ(-2)) = (0.731, 0.119)
    a_z = W_xz x + W_hz h = (0, -1) + (1, 0) = (1, -1)     z = (σ(1), σ(-1)) = (0.731, 0.269)
    r ⊙ h = (0.5 σ(1), -σ(-2));  W_hn (r ⊙ h) swaps them = (-σ(-2), 0.5 σ(1))
    a_n = W_xn x + W_hn (r ⊙ h) + b_hn = (1 - σ(-2) + 0.5, 1 + 0.5 σ(1) - 0.5) = (1.381, 0.866)
    ñ = tanh(a_n) = (0.8811, 0.6991)
    h' = z ⊙ ñ + (1 - z) ⊙ h = (0.7786, -0.5430)"""
    s1, sm1, sm2 = _sigmoid(1), _sigmoid(-1), _sigmoid(-2)
    n = (math.tanh(1 - sm2 + 0.5), math.tanh(1 + 0.5 * s1 - 0.5))
    z = (s1, sm1)
    return tuple(zi * ni + (1 - zi) * hi for zi, ni, hi in zip(z, n, H_PREV, strict=True))


def torch_layout(negate_z: bool) -> dict[str, np.ndarray]:
    """The example's weights in torch.nn.GRU's layout (rows r, z, n). Karpathy's z is our 1 - z:
    σ(-a) = 1 - σ(a), so his cell is ours with the z rows of both weights and biases negated."""
    sign = {"r": 1.0, "z": -1.0 if negate_z else 1.0, "n": 1.0}
    stack = {w: np.concatenate([sign[g] * np.array(m[g], float) for g in "rzn"])
             for w, m in (("weight_ih", W_X), ("weight_hh", W_H))}  # fmt: skip
    return {**stack, "bias_ih": np.zeros(6), "bias_hh": np.array([0, 0, 0, 0, *B_HN], float)}


def test_reset_before_matches_karpathy_by_hand():
    x, h = np.array([X]), np.array([H_PREV])  # (1, 2) each
    expected = np.array([karpathy_by_hand()])
    np.testing.assert_allclose(expected, [[0.7786280843711118, -0.5430428282848654]], rtol=1e-15)
    p = torch_layout(negate_z=True)
    ours = numpy_impl.gru_cell_forward(x, h, *p.values(), reset_after=False)[0]
    tensors = [torch.from_numpy(a) for a in (x, h, *p.values())]
    theirs = torch_impl.gru_cell(*tensors, reset_after=False).numpy()
    layer = numpy_impl.gru_forward(  # the layer over one step, the same cell
        x[:, None], {f"{k}_l0": v for k, v in p.items()}, h[None], reset_after=False
    )[0][:, 0]
    for got in (ours, theirs, layer):
        np.testing.assert_allclose(got, expected, rtol=1e-15, atol=1e-15)
    # torch's convention resets gh_n = W_hn h + b_hn = (-0.5, 0) instead: a different cell.
    torch_conv = numpy_impl.gru_cell_forward(x, h, *p.values(), reset_after=True)[0]
    assert np.abs(torch_conv - expected).max() > 0.1
    ref = torch.nn.GRUCell(2, 2).double()
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in p.items()})
    np.testing.assert_allclose(torch_conv, ref(*tensors[:2]).detach().numpy(), rtol=1e-14)
    # Without the negation our interpolation runs the other way: (1 - z) ⊙ n + z ⊙ h.
    other_way = numpy_impl.gru_cell_forward(x, h, *torch_layout(False).values(), False)[0]
    assert np.abs(other_way - expected).max() > 0.1


# ---- Cho's convention: finite differences and torch_impl -----------------------------------------


def _cho_cell_forward(a):
    h_next, cache = numpy_impl.gru_cell_forward(*(a[k] for k in CELL_ARGS), reset_after=False)
    return (h_next,), cache


def _cho_cell_backward(douts, cache):
    return dict(zip(CELL_ARGS, numpy_impl.gru_cell_backward(*douts, cache), strict=True))


CHO_CELL = dataclasses.replace(
    GRU_CELL,
    name="gru_cell[reset_before]",
    np_forward=_cho_cell_forward,
    np_backward=_cho_cell_backward,
    torch_impl=lambda t: (torch_impl.gru_cell(*(t[k] for k in CELL_ARGS), False),),
    torch_ref=None,
)
CASES = {
    "cell": CHO_CELL,
    "L=2": gru_case(2, reset_after=False),
    "L=3 p=0.3": gru_case(3, 0.3, reset_after=False),
}


@pytest.mark.parametrize("name", ["cell", "L=2"])
def test_reset_before_finite_difference_full_jacobian(name, record_error):
    """Every output element (out at each step and h_n) against every input element."""
    case = CASES[name]
    for seed in (0, 1):
        arrays = case.sample(np.random.default_rng(seed), np.float64, case.fd_dims)
        error = finite_difference_jacobian(case, arrays)
        record_error(f"gru[Cho] {name}", "fd jacobian", error, TOL_FD)


@pytest.mark.parametrize("name", list(CASES))
def test_reset_before_adjoint_through_time(name, record_error):
    case = CASES[name]
    for seed in range(2):
        rng = np.random.default_rng(seed)
        dims = {**case.dims, "seq": 10} if "seq" in case.dims else case.dims
        arrays = case.sample(rng, np.float64, dims)
        error = adjoint_error(case, arrays, rng)
        record_error(f"gru[Cho] {name}", "fd adjoint", error, TOL_FD)


@given(*SMALL_LAYERS)
def test_reset_before_numpy_vs_torch_impl_float64(B, S, I, H, L, p, seed):
    case = gru_case(L, p, reset_after=False)
    rng = np.random.default_rng(seed)
    arrays = case.sample(rng, np.float64, {"batch": B, "seq": S, "d_in": I, "hidden": H})
    douts = random_douts(rng, run_numpy(case, arrays)[0])  # on out AND on h_n
    (outs, grads), (t_outs, t_grads) = (
        run_numpy(case, arrays, douts),
        run_torch(case, case.torch_impl, arrays, douts),
    )
    assert outs_error(outs, t_outs) <= TOL_FLOAT64
    assert grads_error(grads, t_grads) <= TOL_FLOAT64


@pytest.mark.parametrize("name", ["cell", "L=2"])
def test_reset_before_float32_no_worse_than_torch_impl(name, record_float32):
    """float32 against the float64 result: NumPy no worse than torch_impl (autograd), which stands
    in for the built-in torch lacks, by the harness's float32 standard over three examples."""
    case = dataclasses.replace(CASES[name], torch_ref=CASES[name].torch_impl)
    runs = Float32Runs()
    for seed in range(3):
        rng = np.random.default_rng(seed)
        arrays = case.sample(rng, np.float64, {**case.dims, "hidden": 8, "d_in": 6})
        compare_float32(case, arrays, random_douts(rng, run_numpy(case, arrays)[0]), runs)
    record_float32(f"gru {name} (reset before)", runs)
