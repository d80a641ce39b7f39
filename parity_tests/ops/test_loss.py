"""Cross entropy and perplexity: edge regimes and bad input.

The hypothesis sweep of the ordinary regime lives in test_parity_ops.py (cases "cross_entropy",
"cross_entropy[ignore_index]"). Here: logits ±1e4, single rows, all-but-one and all targets
ignored, a custom ignore_index, uniform logits, perplexity, and the errors raised for bad input by
both backends. References are torch built-ins, float64.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import numpy_impl
import torch_impl
from twinlm.parity.harness import TOL_FLOAT64, rel_error


def _t(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.from_numpy(np.array(a, copy=True)).requires_grad_(grad)


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
