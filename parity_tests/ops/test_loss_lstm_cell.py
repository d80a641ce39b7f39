"""Cross entropy, perplexity and the LSTM cell: edge regimes and bad input.

The hypothesis sweep of the ordinary regime lives in test_parity_ops.py (cases "cross_entropy",
"cross_entropy[ignore_index]", "lstm_cell"). Here: logits ±1e4, single rows, all-but-one and all
targets ignored, uniform logits, saturated gates, independent biases, the LSTMCell module, and the
errors raised for bad input by both backends. References are torch built-ins, float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

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


def _t(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.from_numpy(np.array(a, copy=True)).requires_grad_(grad)


# ---- cross entropy -------------------------------------------------------------------------------


def _cross_entropy_three_ways(logits: np.ndarray, targets: np.ndarray, dloss: float):
    """(loss, dlogits) from NumPy, torch_impl and F.cross_entropy, in that order."""
    loss_np, cache = numpy_impl.cross_entropy_forward(logits, targets)
    results = [(loss_np, numpy_impl.cross_entropy_backward(np.asarray(dloss, logits.dtype), cache))]
    for fn in (
        lambda z, y: torch_impl.cross_entropy(z, y),
        lambda z, y: F.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1), ignore_index=-100),
    ):
        z = _t(logits, grad=True)
        loss = fn(z, _t(targets))
        loss.backward(torch.tensor(dloss, dtype=z.dtype))
        results.append((loss.detach().numpy(), z.grad.numpy()))
    return results


def _assert_cross_entropy_matches(logits, targets, record_error, label, dloss=-1.3):
    (loss_np, d_np), (loss_ti, d_ti), (loss_ref, d_ref) = _cross_entropy_three_ways(
        logits, targets, dloss
    )
    assert np.isfinite(loss_np) and np.all(np.isfinite(d_np))
    assert loss_np.shape == () and loss_np.dtype == logits.dtype and d_np.dtype == logits.dtype
    for name, loss, d in (("numpy", loss_np, d_np), ("torch_impl", loss_ti, d_ti)):
        record_error(label, f"{name} loss vs torch", rel_error(loss, loss_ref), TOL_FLOAT64)
        record_error(label, f"{name} grad vs torch", rel_error(d, d_ref), TOL_FLOAT64)


def test_cross_entropy_extreme_logits_finite_and_match_torch(record_error):
    rng = np.random.default_rng(0)
    V = 7
    logits = 1e4 * rng.choice([-1.0, 1.0], size=(3, 5, V)) + rng.standard_normal((3, 5, V))
    targets = rng.integers(0, V, (3, 5))
    _assert_cross_entropy_matches(logits, targets, record_error, "cross_entropy ±1e4")
    # float32 too: finite, no overflow in exp.
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, cache = numpy_impl.cross_entropy_forward(logits.astype(np.float32), targets)
        dlogits = numpy_impl.cross_entropy_backward(np.float32(1.0), cache)
    assert np.isfinite(loss) and np.all(np.isfinite(dlogits)) and dlogits.dtype == np.float32


@pytest.mark.parametrize("shape", [(1, 1), (1,), ()], ids=["B=T=1", "one row", "unbatched"])
def test_cross_entropy_single_row(shape, record_error):
    rng = np.random.default_rng(1)
    V = 11
    logits = 3 * rng.standard_normal((*shape, V))
    targets = rng.integers(0, V, shape)
    _assert_cross_entropy_matches(logits, targets, record_error, "cross_entropy one row")
    # One row: loss = log Σ exp(z) - z[y] (computed here without max subtraction; |z| is small).
    z, y = logits.reshape(V), int(targets.reshape(()))
    loss, _ = numpy_impl.cross_entropy_forward(logits, targets)
    assert rel_error(loss, math.log(np.exp(z).sum()) - z[y]) <= TOL_FLOAT64


def test_cross_entropy_all_but_one_target_ignored(record_error):
    rng = np.random.default_rng(2)
    B, S, V = 3, 4, 6
    logits = 2 * rng.standard_normal((B, S, V))
    targets = np.full((B, S), -100)
    targets[1, 2] = 4
    _assert_cross_entropy_matches(logits, targets, record_error, "cross_entropy all-but-one")
    loss, cache = numpy_impl.cross_entropy_forward(logits, targets)
    dlogits = numpy_impl.cross_entropy_backward(np.asarray(0.7), cache)
    kept_row = logits[1, 2]
    expected = -(kept_row[4] - math.log(np.exp(kept_row).sum()))
    assert rel_error(loss, expected) <= TOL_FLOAT64
    others = np.ones((B, S), bool)
    others[1, 2] = False
    assert np.all(dlogits[others] == 0)  # ignored rows get exactly no gradient
    assert rel_error(dlogits[1, 2].sum(), 0.0, floor=1.0) <= 1e-15  # softmax - onehot sums to 0


def test_cross_entropy_all_targets_ignored_is_nan_like_torch():
    logits = np.random.default_rng(3).standard_normal((2, 3, 5))
    targets = np.full((2, 3), -100)
    (loss_np, d_np), (loss_ti, d_ti), (loss_ref, d_ref) = _cross_entropy_three_ways(
        logits, targets, 1.0
    )
    assert np.isnan(loss_ref) and np.all(d_ref == 0)  # what torch does: 0/0 loss, zero gradient
    assert np.isnan(loss_np) and np.isnan(loss_ti)
    assert np.all(d_np == 0) and np.all(d_ti == 0)


def test_cross_entropy_custom_ignore_index(record_error):
    rng = np.random.default_rng(4)
    logits = rng.standard_normal((4, 6))
    targets = np.array([1, 5, 0, 5])
    loss_np, _ = numpy_impl.cross_entropy_forward(logits, targets, ignore_index=5)
    loss_ti = torch_impl.cross_entropy(_t(logits), _t(targets), ignore_index=5)
    ref = F.cross_entropy(_t(logits), _t(targets), ignore_index=5)
    record_error(
        "cross_entropy ignore=5",
        "numpy loss vs torch",
        rel_error(loss_np, ref.numpy()),
        TOL_FLOAT64,
    )
    record_error(
        "cross_entropy ignore=5",
        "torch_impl loss vs torch",
        rel_error(loss_ti.numpy(), ref.numpy()),
        TOL_FLOAT64,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("V", [1, 2, 50257])
def test_uniform_logits_give_ln_v_and_perplexity_v(dtype, V):
    logits = np.full((2, 3, V), 0.37, dtype)  # any constant row is uniform after the max shift
    targets = np.random.default_rng(5).integers(0, V, (2, 3))
    loss, _ = numpy_impl.cross_entropy_forward(logits, targets)
    assert loss.dtype == dtype
    assert loss == dtype(math.log(V))  # ln V, exactly (in the logits' precision)
    loss_t = torch_impl.cross_entropy(torch.from_numpy(logits), torch.from_numpy(targets))
    assert loss_t.item() == dtype(math.log(V))
    ppl_tol = (math.log(V) + 2) * np.finfo(dtype).eps * V  # exp amplifies ln V's rounding by ln V
    assert abs(float(numpy_impl.perplexity(loss)) - V) <= ppl_tol
    assert abs(float(torch_impl.perplexity(loss_t)) - V) <= ppl_tol


def test_perplexity_is_exp_of_loss():
    for loss in (0.0, 0.5, 2.302585092994046, 10.8):
        assert numpy_impl.perplexity(np.asarray(loss)) == math.exp(loss)
        assert torch_impl.perplexity(torch.tensor(loss, dtype=torch.float64)).item() == math.exp(
            loss
        )
    loss32 = np.asarray(1.5, np.float32)
    assert numpy_impl.perplexity(loss32).dtype == np.float32
    assert torch_impl.perplexity(torch.tensor(1.5)).dtype == torch.float32


def _both_cross_entropy(logits, targets):
    return [
        lambda: numpy_impl.cross_entropy_forward(logits, targets),
        lambda: torch_impl.cross_entropy(torch.from_numpy(logits), torch.from_numpy(targets)),
    ]


CROSS_ENTROPY_BAD_INPUT = {
    "shape mismatch": (
        np.zeros((2, 3, 5)),
        np.zeros((3, 2), np.int64),
        ValueError,
        r"targets must have shape \(2, 3\), got \(3, 2\)",
    ),
    "float targets": (
        np.zeros((2, 3, 5)),
        np.zeros((2, 3)),
        TypeError,
        "targets must be an integer array, got (torch.)?float64",
    ),
    "target = V": (
        np.zeros((2, 3, 5)),
        np.full((2, 3), 5),
        ValueError,
        r"targets must lie in \[0, 5\), got 5",
    ),
    "target = -1": (
        np.zeros((2, 3, 5)),
        np.full((2, 3), -1),
        ValueError,
        r"targets must lie in \[0, 5\), got -1",
    ),
    "int logits": (
        np.zeros((2, 3), np.int64),
        np.zeros(2, np.int64),
        TypeError,
        "logits must be a floating-point array",
    ),
    "0-d logits": (
        np.zeros(()),
        np.zeros((), np.int64),
        ValueError,
        "logits must have at least 1 dimensions",
    ),
    "V = 0": (
        np.zeros((2, 0)),
        np.zeros(2, np.int64),
        ValueError,
        "logits must have a non-empty last",
    ),
}


@pytest.mark.parametrize(
    "logits, targets, error, match",
    CROSS_ENTROPY_BAD_INPUT.values(),
    ids=CROSS_ENTROPY_BAD_INPUT.keys(),
)
def test_cross_entropy_bad_input(logits, targets, error, match):
    for call in _both_cross_entropy(logits, targets):
        with pytest.raises(error, match=match):
            call()


# ---- LSTM cell -----------------------------------------------------------------------------------


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
