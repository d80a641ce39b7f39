"""The float32 standard (twinlm/parity/harness.py) can fail, and what it found.

1. Deliberately degraded float32 implementations are caught: a GELU with a 1e-4 relative error (by
   the per-example bound and by R), one with a 1e-6 error, inside the per-example bound (by R alone),
   and LayerNorm's old centring (by R, on rows whose first feature is an outlier).
2. Three float32 algorithms of ours that were less accurate than they could be, before and after:
   - softmax backward: s ⊙ (dy - Σ dy s) cancels in a row with one s_k ≈ 1; the rounding of the sum
     was all of the tiny dx there (100 % error at x = [10, -10]). It now hands that residual back
     (dx -= s Σ dx), as torch autograd does through the max subtracted in the forward (torch_impl).
     torch's own softmax backward keeps the old formula, so the standard, which allows what torch
     does, could not flag it; against float64 it is plain.
   - LayerNorm centred each row on its first entry, rounding x - x₀ relative to |x - x₀|: ~4×
     torch's error on rows whose first feature is an outlier. It now subtracts the mean, then the
     mean of what is left, which is as exact on constant rows.
   - cross entropy, where the target holds nearly all the probability: 1 + r and p_y - 1 rounded
     the other terms' sum r away (torch's own cross_entropy still does: 100 % off in float32 at
     logits [10, -10]). It now uses log1p(r) and -r / (1 + r).
3. Softmax and cross entropy on such peaked rows, which the sweep leaves out (its logits are
   bounded by 5 because torch's built-ins cannot referee them to 1e-10, even in float64): NumPy and
   torch_impl against a 60-digit reference, in float32 and float64.
"""

from __future__ import annotations

import dataclasses
import decimal

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import numpy_impl
import torch_impl
from twinlm.parity.harness import (
    FLOAT32_BOUND,
    FLOAT32_RATIO,
    U32,
    Float32Run,
    Float32Runs,
    compare_float32,
    np_pair,
    random_douts,
    run_numpy,
)
from twinlm.parity.opcases import CASES_BY_NAME

RUN = 12  # examples per run: the ci profile's length, the shortest the sweep makes


def _run(case, seed: int = 0, n: int = RUN) -> Float32Runs:
    """compare_float32 over n examples at the case's default sizes."""
    runs = Float32Runs()
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        inputs = case.sample(rng, np.float64, case.dims)
        compare_float32(case, inputs, random_douts(rng, run_numpy(case, inputs)[0]), runs)
    return runs


# ---- the rule itself ---------------------------------------------------------------------------


def test_equal_noise_gives_ratio_near_one():
    rng = np.random.default_rng(0)
    run = Float32Run()
    for _ in range(200):
        exact = rng.standard_normal(3)
        noisy = [exact + 1e-7 * rng.standard_normal(3) for _ in range(2)]
        run.add([noisy[0], exact], [noisy[1], exact], [exact, exact])
    assert len(run.shares) == 400  # the tensors exact in both count as even: share ½
    assert 0.8 < run.ratio < 1.25


def test_one_lucky_reference_rounding_does_not_decide_a_run():
    """The reference exact on a 1-element result, the backend 3 u off: that tensor counts once."""
    run = Float32Run()
    run.add([np.array([1.0 + 3 * U32])], [np.array([1.0])], [np.array([1.0])])
    assert run.ratio == pytest.approx(3.0)  # alone, it would fail
    rng = np.random.default_rng(1)
    for _ in range(30):
        e = rng.standard_normal(50)
        run.add([e + U32 * rng.standard_normal(50)], [e + U32 * rng.standard_normal(50)], [e])
    assert run.ratio < FLOAT32_RATIO


def test_a_result_small_through_cancellation_is_judged_against_the_reference():
    """log(1 + e⁻²⁰) ≈ 2e-9, the cross entropy of float32 logits [10, -10]: torch's float32
    cross_entropy rounds 1 + e⁻²⁰ to 1 and returns 0, 100 % off, 2²⁴ u. A backend that far off is
    no worse than the reference there (NumPy's is exact since it uses log1p); 9× as far is."""
    logits, targets = torch.tensor([[10.0, -10.0]]), torch.tensor([0])
    exact = F.cross_entropy(logits.double(), targets).numpy()
    ref32 = F.cross_entropy(logits, targets).numpy()
    run = Float32Run()
    run.add([np.float32(0.0)], [ref32], [exact])
    assert run.worst > FLOAT32_BOUND and run.worst == run.worst_ref
    assert run.tightest[0] <= run.tightest[1]
    run.add([np.float32(10 * exact)], [ref32], [exact])  # 9× the exact value off
    assert run.tightest[0] > run.tightest[1]


def test_non_finite_fails_and_subnormal_results_are_judged_by_their_spacing():
    run = Float32Run()
    run.add([np.array([np.nan])], [np.array([1.0])], [np.array([1.0])])
    assert run.worst == np.inf and run.ratio == np.inf
    tiny = np.array([3e-42], dtype=np.float32)  # subnormal: spacing 2^-149, 1000× u |x| here
    run = Float32Run()
    run.add([tiny * np.float32(1.001)], [tiny], [tiny.astype(np.float64)])
    assert run.worst < FLOAT32_BOUND


# ---- degraded implementations are caught -----------------------------------------------------------


def _with_relative_error(case, rel: float):
    def np_forward(a):
        outs, cache = case.np_forward(a)
        return tuple(o * o.dtype.type(1 + rel) for o in outs), cache

    return dataclasses.replace(case, np_forward=np_forward)


@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_gelu_with_a_1e_4_relative_error_fails_both_parts(approximate):
    case = CASES_BY_NAME[f"gelu[{approximate}]"]
    assert _run(case).ok()
    runs = _run(_with_relative_error(case, 1e-4))
    assert runs["numpy", "fwd"].worst > FLOAT32_BOUND  # ~1700 u
    assert runs["numpy", "fwd"].ratio > 100 * FLOAT32_RATIO
    assert not runs.ok()


def test_gelu_with_a_1e_6_relative_error_fails_the_ratio_alone():
    """17 u: inside the per-example bound, so only the comparison with torch over the run sees it."""
    runs = _run(_with_relative_error(CASES_BY_NAME["gelu[tanh]"], 1e-6))
    assert runs["numpy", "fwd"].worst < FLOAT32_BOUND
    assert runs["numpy", "fwd"].ratio > 5 * FLOAT32_RATIO


# ---- softmax backward: the residual of a row with one s_k ≈ 1 ----------------------------------------


def _softmax_backward_without_residual(ds, s):
    """numpy_impl.softmax_backward before: s ⊙ (dy - Σ dy s), nothing more (torch's own formula)."""
    return s * (ds - (ds * s).sum(axis=-1, keepdims=True))


def _peaked_softmax_case(backward):
    """Rows of three logits, one of them 16 to 20 above the others: one weight within 1e-7 of 1."""
    softmax = CASES_BY_NAME["softmax"]

    def sample(rng, dtype, d):
        x = rng.uniform(-10.0, -8.0, (d["batch"], d["rows"], d["n"]))
        x[..., 0] *= -1.0
        return {"x": rng.permuted(x, axis=-1).astype(dtype)}

    np_forward, np_backward = np_pair(numpy_impl.softmax_forward, backward, ("x",), ("x",))
    return dataclasses.replace(
        softmax,
        sample=sample,
        np_forward=np_forward,
        np_backward=np_backward,
        dims={"batch": 2, "rows": 8, "n": 3},
    )


def test_softmax_backward_before_and_after_on_peaked_rows():
    """x = [10, -10]: dx = ±s₀s₁(dy₀ - dy₁) ≈ 2e-9; before, dx₀ came out 0 (100 % error)."""
    x = np.array([[10.0, -10.0], [9.0, -9.0], [10.0, -9.5]], dtype=np.float32)
    dy = np.array([[0.3, -1.2], [1.0, 0.5], [-0.7, 0.2]], dtype=np.float32)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    torch.softmax(xt, dim=-1).backward(torch.tensor(dy, dtype=torch.float64))
    exact = xt.grad.numpy()
    s, cache = numpy_impl.softmax_forward(x)

    def row_errors(dx):  # each row relative to its own largest gradient
        return np.max(np.abs(dx - exact), axis=-1) / np.max(np.abs(exact), axis=-1)

    before = row_errors(_softmax_backward_without_residual(dy, s))
    after = row_errors(numpy_impl.softmax_backward(dy, cache))
    assert before[0] == pytest.approx(1.0) and np.all(before > 1e-3)
    assert np.all(after < 4 * U32)


def test_softmax_backward_on_peaked_rows_in_the_standards_units():
    """Before: as far off as torch's own softmax backward (the same formula), 2²⁴ u, i.e. 100 %."""
    before = _run(_peaked_softmax_case(_softmax_backward_without_residual))
    assert before["numpy", "grad"].worst == before["numpy", "grad"].worst_ref == 2.0**24
    after = _run(_peaked_softmax_case(numpy_impl.softmax_backward))
    assert after.ok(), after.verdicts()
    assert after["numpy", "grad"].worst < 64  # measured: 15 u


# ---- LayerNorm: centring on the mean, not on the first entry -----------------------------------------


def _layernorm_centred_on_first_entry(x, scale, shift, eps=1e-5):
    """numpy_impl.layernorm_forward before: x - μ as d - mean(d), d = x - x₀."""
    xc = x - x[..., :1]
    xc -= xc.mean(axis=-1, keepdims=True)
    std = np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + float(eps))
    xhat = xc / std
    return xhat * scale + shift, (xhat, std, scale)


def _outlier_first_layernorm_case(forward):
    """Rows of 128 features whose first is an outlier (60 next to standard normals), as in GPT-2's
    activations, where a few features are far larger than the rest."""
    layernorm = CASES_BY_NAME["layernorm"]

    def sample(rng, dtype, d):
        a = layernorm.sample(rng, np.float64, d)
        a["x"][..., 0] = 60.0
        a["shift"][:] = 0.0  # y = x̂ ⊙ scale: nothing added that would round the same in both
        return {k: v.astype(dtype) for k, v in a.items()}

    np_forward, np_backward = np_pair(
        forward, numpy_impl.layernorm_backward, ("x", "scale", "shift"), ("x", "scale", "shift")
    )
    return dataclasses.replace(
        layernorm,
        sample=sample,
        np_forward=np_forward,
        np_backward=np_backward,
        dims={"batch": 2, "seq": 4, "emb": 128},
    )


def test_layernorm_before_and_after_on_rows_with_an_outlier_first():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 64)).astype(np.float32)
    x[:, 0] = 60.0
    scale, shift = np.ones(64, np.float32), np.zeros(64, np.float32)
    exact = F.layer_norm(torch.tensor(x, dtype=torch.float64), (64,), eps=1e-5).numpy()
    ref32 = F.layer_norm(torch.tensor(x), (64,), eps=1e-5).numpy()

    def rms_u(y):
        return float(np.sqrt(np.mean((y - exact) ** 2))) / U32

    before = rms_u(_layernorm_centred_on_first_entry(x, scale, shift)[0])
    after = rms_u(numpy_impl.layernorm_forward(x, scale, shift)[0])
    torch_error = rms_u(ref32)
    assert before > 3 * torch_error  # measured: 4.9 u, torch 1.1 u
    assert after < 1.2 * torch_error  # measured: 0.8 u


def test_layernorm_centred_on_the_first_entry_fails_the_ratio():
    before = _run(_outlier_first_layernorm_case(_layernorm_centred_on_first_entry))
    assert before["numpy", "fwd"].ratio > FLOAT32_RATIO
    assert before["numpy", "fwd"].worst < FLOAT32_BOUND  # every example looks fine on its own
    after = _run(_outlier_first_layernorm_case(numpy_impl.layernorm_forward))
    assert after.ok(), after.verdicts()


# ---- peaked rows against a 60-digit reference ---------------------------------------------------

PEAKED = [[10.0, -10.0], [10.0, -4.0], [9.0, -6.0, -7.0], [8.7, -9.0, -2.18], [-20.0, 3.0, 1.0]]


def _exact_softmax_and_cross_entropy(row, dy, target):
    """(softmax, its gradient for upstream dy, cross entropy at target, its gradient), to 60 digits."""
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        e = [decimal.Decimal(float(v)).exp() for v in row]
        total = sum(e)
        s = [v / total for v in e]
        s_dy = sum(si * decimal.Decimal(float(d)) for si, d in zip(s, dy))
        ds = [si * (decimal.Decimal(float(d)) - s_dy) for si, d in zip(s, dy)]
        loss = total.ln() - decimal.Decimal(float(row[target]))
        dz = [si - (1 if j == target else 0) for j, si in enumerate(s)]
        return tuple(np.array([float(v) for v in a]) for a in (s, ds, [loss], dz))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_peaked_rows_against_a_60_digit_reference(dtype):
    eps = float(np.finfo(dtype).eps)
    rng = np.random.default_rng(3)
    t_dtype = torch.float32 if dtype == np.float32 else torch.float64
    for row in PEAKED:
        x = np.array([row], dtype=dtype)
        dy = rng.standard_normal(x.shape).astype(dtype)
        target = int(np.argmax(row))
        s, ds, loss, dz = _exact_softmax_and_cross_entropy(x[0], dy[0], target)

        y, cache = numpy_impl.softmax_forward(x)
        np_ds = numpy_impl.softmax_backward(dy, cache)
        np_loss, cache = numpy_impl.cross_entropy_forward(x, np.array([target]))
        np_dz = numpy_impl.cross_entropy_backward(np.ones((), dtype), cache)
        xt = torch.tensor(x, requires_grad=True)
        torch_impl.softmax(xt).backward(torch.tensor(dy))
        ti_ds = xt.grad.numpy().copy()
        xt.grad = None
        ti_loss = torch_impl.cross_entropy(xt, torch.tensor([target], dtype=torch.int64))
        ti_loss.backward()
        assert ti_loss.dtype == t_dtype

        def rel(got, want):
            got = np.asarray(got, dtype=np.float64).reshape(want.shape)
            return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))

        for name, got in (
            ("numpy", (y, np_ds, np_loss, np_dz)),
            ("torch_impl", (None, ti_ds, ti_loss.item(), xt.grad.numpy())),
        ):
            errors = [rel(g, w) for g, w in zip(got, (s, ds, loss, dz)) if g is not None]
            assert max(errors) < 8 * eps, (row, name, errors)
