"""The LSTM cell: edge regimes, the LSTMCell module and bad input.

The hypothesis sweep of the ordinary regime lives in test_parity_ops.py (case "lstm_cell"), the cell
by hand in by_hand/test_ops_by_hand_recurrent.py, the layer over time in
models/test_lstm_layer.py. Here: saturated gates, independent biases, float32 staying float32, the
LSTMCell module, and the errors raised for bad input by both backends. References are torch
built-ins, float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import numpy_impl
import torch_impl
from twinlm.parity.harness import (
    TOL_FLOAT64,
    grads_error,
    outs_error,
    random_douts,
    rel_error,
    run_torch,
)
from twinlm.parity.opcases import LSTM_CELL

CELL_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _cell_inputs(rng, B=3, I=4, H=5, dtype=np.float64) -> dict[str, np.ndarray]:
    return LSTM_CELL.sample(rng, dtype, {"batch": B, "d_in": I, "hidden": H})


def _cell_three_way(arrays, rng, record_error, label):
    """NumPy, torch_impl and torch.nn.LSTMCell agree on (h', c') and all seven gradients."""
    outs, _ = LSTM_CELL.np_forward(arrays)
    douts = random_douts(rng, outs)
    results = [
        (outs, LSTM_CELL.np_backward(douts, LSTM_CELL.np_forward(arrays)[1])),
        run_torch(LSTM_CELL, LSTM_CELL.torch_impl, arrays, douts),
        run_torch(LSTM_CELL, LSTM_CELL.torch_ref, arrays, douts),
    ]
    for name, (o, g) in zip(("numpy", "torch_impl"), results[:2]):
        assert all(np.all(np.isfinite(a)) for a in (*o, *g.values()))
        record_error(label, f"{name} fwd vs torch", outs_error(o, results[2][0]), TOL_FLOAT64)
        record_error(label, f"{name} grad vs torch", grads_error(g, results[2][1]), TOL_FLOAT64)
    return results


@pytest.mark.parametrize("scale", [50.0, 500.0])
def test_lstm_cell_saturated_gates_finite_and_match_torch(scale, record_error):
    """Pre-activations around ±scale: σ and tanh at their limits, no overflow warnings."""
    rng = np.random.default_rng(6)
    arrays = _cell_inputs(rng)
    H4 = arrays["bias_ih"].shape[0]
    # A third of the gates saturated each way, a third moderate, so gradients still flow.
    arrays["bias_ih"] = scale * rng.choice([-1.0, 0.0, 1.0], H4) + rng.standard_normal(H4)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        _cell_three_way(arrays, rng, record_error, "lstm_cell saturated")
        arrays32 = {k: a.astype(np.float32) for k, a in arrays.items()}
        (h, c), cache = numpy_impl.lstm_cell_forward(*(arrays32[k] for k in LSTM_CELL.grad_inputs))
        grads = numpy_impl.lstm_cell_backward(np.ones_like(h), np.ones_like(c), cache)
    assert h.dtype == c.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    assert np.all(np.isfinite(h)) and all(np.all(np.isfinite(g)) for g in grads)


def test_lstm_cell_float32_stays_float32():
    arrays = _cell_inputs(np.random.default_rng(7), dtype=np.float32)
    (h, c), cache = numpy_impl.lstm_cell_forward(*(arrays[k] for k in LSTM_CELL.grad_inputs))
    grads = numpy_impl.lstm_cell_backward(h, c, cache)
    assert h.dtype == c.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)


def test_lstm_cell_two_independent_biases(record_error):
    """Both bias vectors enter; a backend that used bias_ih twice (or dropped one) must fail."""
    rng = np.random.default_rng(8)
    arrays = _cell_inputs(rng)
    assert np.all(arrays["bias_ih"] != 0) and np.all(arrays["bias_hh"] != 0)
    results = _cell_three_way(arrays, rng, record_error, "lstm_cell biases")
    # The test data can tell the difference: one bias copied into both moves the output by O(1).
    doubled = {**arrays, "bias_hh": arrays["bias_ih"]}
    assert outs_error(LSTM_CELL.np_forward(doubled)[0], results[2][0]) > 1e-2
    # Each bias gets the same gradient Σ_batch dz, as torch says, and they are separate arrays.
    g = results[0][1]
    assert np.array_equal(g["bias_ih"], g["bias_hh"]) and g["bias_ih"] is not g["bias_hh"]
    assert rel_error(results[2][1]["bias_hh"], results[2][1]["bias_ih"]) <= TOL_FLOAT64


def test_lstm_cell_module_matches_torch_and_shares_its_state_dict(record_error):
    torch.manual_seed(0)
    I, H = 4, 6
    ref = torch.nn.LSTMCell(I, H, dtype=torch.float64)
    ours = torch_impl.LSTMCell(I, H).double()
    assert list(ours.state_dict()) == list(ref.state_dict()) == list(CELL_PARAMS)
    bound = 1 / math.sqrt(H)
    assert all(p.abs().max() <= bound for p in ours.parameters())
    assert all(p.std() > bound / 4 for p in ours.parameters())  # actually drawn, not zeros
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(3, I, dtype=torch.float64)
    for state in (
        None,
        (torch.randn(3, H, dtype=torch.float64), torch.randn(3, H, dtype=torch.float64)),
    ):
        for a, b in zip(ours(x, state), ref(x, state), strict=True):
            record_error(
                "LSTMCell module", "fwd vs torch", rel_error(a.detach(), b.detach()), TOL_FLOAT64
            )
    ref.load_state_dict(ours.state_dict())  # and back


def _both_cells(arrays):
    args = [arrays[k] for k in LSTM_CELL.grad_inputs]
    return [
        lambda: numpy_impl.lstm_cell_forward(*args),
        lambda: torch_impl.lstm_cell(*(torch.from_numpy(a) for a in args)),
    ]


LSTM_CELL_BAD_INPUT = {
    "h shape": ({"h": np.zeros((3, 4))}, ValueError, r"h must have shape \(3, 5\), got \(3, 4\)"),
    "c batch": ({"c": np.zeros((2, 5))}, ValueError, r"c must have shape \(3, 5\), got \(2, 5\)"),
    "c 3-d": (
        {"c": np.zeros((1, 3, 5))},
        ValueError,
        r"c must have shape \(3, 5\), got \(1, 3, 5\)",
    ),
    "input size": (
        {"x": np.zeros((3, 7))},
        ValueError,
        r"x must have last dimension 4 .*got shape \(3, 7\)",
    ),
    "x 1-d": ({"x": np.zeros(4)}, ValueError, r"x must have 2 dimensions, got shape \(4,\)"),
    "weight_hh": (
        {"weight_hh": np.zeros((20, 4))},
        ValueError,
        r"weight_hh must have shape \(16, 4\), got \(20, 4\)",
    ),
    "weight_ih": (
        {"weight_ih": np.zeros((16, 4))},
        ValueError,
        r"weight_ih must have shape \(20, \*\), got \(16, 4\)",
    ),
    "bias_hh": (
        {"bias_hh": np.zeros(5)},
        ValueError,
        r"bias_hh must have shape \(20\), got \(5,\)",
    ),
    "int x": ({"x": np.zeros((3, 4), np.int64)}, TypeError, "x must be a floating-point array"),
    "mixed dtype": ({"bias_ih": np.zeros(20, np.float32)}, TypeError, "must have the same dtype"),
    "float32 x": (
        {"x": np.zeros((3, 4), np.float32)},
        TypeError,
        "x and h and c and weight_ih must have the same dtype",
    ),
}


@pytest.mark.parametrize(
    "change, error, match", LSTM_CELL_BAD_INPUT.values(), ids=LSTM_CELL_BAD_INPUT.keys()
)
def test_lstm_cell_bad_input(change, error, match):
    arrays = {**_cell_inputs(np.random.default_rng(9)), **change}
    for call in _both_cells(arrays):
        with pytest.raises(error, match=match):
            call()
