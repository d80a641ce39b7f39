"""Every accuracy a numpy_impl docstring claims, shown in the regime it claims it.

The parity sweeps draw moderate inputs (|x| ≤ 8), so a claim such as SiLU's "σ(-x) computed
directly, accurate at x = 17" went untested. Each test here evaluates the op where the claim
matters, against a reference computed with Python's `decimal` at 40 digits from the very inputs
the op saw (exact: a float converts to Decimal without rounding), and measures the error in ulps of
the result's dtype. Each test also evaluates the naive formula the docstring warns against, in the
same dtype, and asserts it is worse: that is the evidence the test can fail.

(The tanh′ claims of the recurrent cells are test_recurrent_numerics' business, not this file's.)
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np
import pytest
import scipy.special

import numpy_impl
from numpy_impl.gelu import C as GELU_C
from numpy_impl.gelu import K as GELU_K
from numpy_impl.optim import lerp_
from numpy_impl.recurrent import sigmoid

DTYPES = [np.float32, np.float64]
PREC = 40


def dec(v) -> Decimal:
    return Decimal(float(v))  # exact


def sig(z: Decimal) -> Decimal:
    return 1 / (1 + (-z).exp())


def ulps(got, ref: list[Decimal], dtype) -> np.ndarray:
    """|got - ref| in ulps of the reference rounded to `dtype` (per element)."""
    got = np.asarray(got).ravel()
    out = np.empty(len(ref))
    with localcontext() as ctx:
        ctx.prec = PREC
        for i, (g, r) in enumerate(zip(got, ref, strict=True)):
            unit = np.spacing(np.abs(dtype(float(r))))
            out[i] = float(abs(dec(g) - r) / dec(unit))
    return out


def ref_map(f, xs) -> list[Decimal]:
    with localcontext() as ctx:
        ctx.prec = PREC
        return [f(dec(x)) for x in np.asarray(xs).ravel()]


# ---- SiLU: σ(-x) computed directly (numpy_impl/silu.py) -------------------------------------------

SILU_BOUND = 4  # "accurate to a few ulps for every x"


@pytest.mark.parametrize("dtype", DTYPES)
def test_silu_forward_and_backward_at_large_x(dtype):
    mag = np.linspace(15.0, 40.0, 51)
    x = np.concatenate([mag, -mag, [17.0]]).astype(dtype)
    y, cache = numpy_impl.silu_forward(x)
    dx = numpy_impl.silu_backward(np.ones_like(x), cache)  # dy = 1: dx is dy/dx itself
    y_ref = ref_map(lambda v: v * sig(v), x)
    d_ref = ref_map(lambda v: sig(v) * (1 + v * sig(-v)), x)
    assert ulps(y, y_ref, dtype).max() <= SILU_BOUND
    ours = ulps(dx, d_ref, dtype)
    assert ours.max() <= SILU_BOUND, ours.max()
    # The naive σ(-x) = 1 - s cancels where s ≈ 1 (x > 0): several ulps off, 0 at x = 17 in float32.
    s = 1 / (1 + np.exp(-x))
    naive = ulps(s * (1 + x * (1 - s)), d_ref, dtype)
    assert naive.max() > SILU_BOUND and naive.max() > 2 * ours.max(), (naive.max(), ours.max())


# ---- σ as (1 + tanh(z/2)) / 2 (numpy_impl/recurrent.py) -------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_error_is_at_most_one_ulp_of_one_and_never_overflows(dtype):
    z = np.concatenate([np.linspace(-40, 40, 161), [-1e4, 1e4, -88.8, 89.0]]).astype(dtype)
    with np.errstate(all="raise"):  # "no overflow for any z"
        got = sigmoid(z)
    ref = ref_map(sig, z)
    with localcontext() as ctx:
        ctx.prec = PREC
        abs_err = max(float(abs(dec(g) - r)) for g, r in zip(got, ref))
    assert abs_err <= np.finfo(dtype).eps, abs_err  # ≤ 1 ulp of 1
    # The naive 1 / (1 + e^-z) overflows e^-z for z ≪ 0.
    with pytest.raises(FloatingPointError), np.errstate(over="raise"):
        _ = 1 / (1 + np.exp(-z))


# ---- cross entropy: log1p(r) at near-certain logits (numpy_impl/loss.py) --------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_keeps_r_at_near_certain_logits(dtype):
    """The target holds a largest logit and the others sit d below it: r = Σ_{v≠y} e^(z_v - z_y)
    runs from 1e-2 down to 1e-20, where 1 + r rounds r away."""
    gaps = np.linspace(5.0, 48.0, 30)
    rng = np.random.default_rng(0)
    ours_loss, ours_grad, naive_loss, naive_grad, ref_loss, ref_grad = [], [], [], [], [], []
    for d in gaps:
        logits = np.concatenate([[0.0], -d - rng.uniform(0, 1, 4)]).astype(dtype)[None]  # (1, 5)
        targets = np.array([0])
        loss, cache = numpy_impl.cross_entropy_forward(logits, targets)
        grad = numpy_impl.cross_entropy_backward(np.asarray(1.0, dtype), cache)
        with localcontext() as ctx:
            ctx.prec = PREC
            r = sum((dec(z) - dec(logits[0, 0])).exp() for z in logits[0, 1:])
            ref_loss.append((1 + r).ln())
            ref_grad.append(-r / (1 + r))  # p_y - 1
        ours_loss.append(loss), ours_grad.append(grad[0, 0])
        e = np.exp(logits - logits.max())  # the naive: log Σe - z_y and p_y - 1
        naive_loss.append(np.log(e.sum()) - logits[0, 0]), naive_grad.append(e[0, 0] / e.sum() - 1)
    for ours, naive, ref in ((ours_loss, naive_loss, ref_loss), (ours_grad, naive_grad, ref_grad)):
        err, bad = ulps(ours, ref, dtype), ulps(naive, ref, dtype)
        assert err.max() <= 8, err.max()  # "full precision": a few ulps
        assert bad.max() > 1e3 * max(err.max(), 1), bad.max()  # 1 + r rounds r away


# ---- LayerNorm: two-pass centring (numpy_impl/layernorm.py) ---------------------------------------


def _naive_layernorm(x: np.ndarray, eps: float) -> np.ndarray:
    d = x - x.mean(axis=-1, keepdims=True)  # one pass: carries the rounded mean's error
    return d / np.sqrt((d * d).mean(axis=-1, keepdims=True) + eps)


@pytest.mark.parametrize("dtype", DTYPES)
def test_layernorm_centring_with_a_large_mean(dtype):
    """Rows of mean 1e4 (float32) or 1e12 (float64) and spread 1e-1: x - μ is exact to the
    rounding of each entry, so x̂ is accurate relative to |x - μ|; the naive one-pass x - μ̂
    carries μ̂'s rounding error (an ulp of |μ|, large against σ)."""
    mean = 1e4 if dtype == np.float32 else 1e12
    rng = np.random.default_rng(1)
    x = (mean + 0.1 * rng.standard_normal((16, 7))).astype(dtype)
    eps = 1e-5 * 1e-3  # small against the variance: the result is x̂ itself
    ones, zeros = np.ones(7, dtype), np.zeros(7, dtype)
    y, _ = numpy_impl.layernorm_forward(x, ones, zeros, eps)

    def exact(row):
        m = sum(row) / len(row)
        var = sum((v - m) ** 2 for v in row) / len(row)
        return [(v - m) / (var + dec(eps)).sqrt() for v in row]

    with localcontext() as ctx:
        ctx.prec = PREC
        ref = [v for row in x for v in exact([dec(a) for a in row])]
    # x̂ entries are O(1): an absolute error of a few ulps of 1 is full precision
    ours = ulps(y, ref, dtype).max()
    naive = ulps(_naive_layernorm(x, eps), ref, dtype).max()
    assert ours <= 8, ours
    assert naive > 100 * ours, (naive, ours)
    # A constant row gives exactly 0, so y = shift exactly; the naive one does not.
    const = np.full((3, 7), dtype(mean + 0.1), dtype)
    shift = np.arange(7, dtype=dtype)
    y_const, _ = numpy_impl.layernorm_forward(const, ones, shift, eps)
    assert np.array_equal(y_const, np.broadcast_to(shift, const.shape))
    assert not np.all(_naive_layernorm(const, eps) == 0)


# ---- softmax: the max subtracted, and the backward's residual handed back -------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_backward_where_one_probability_is_near_one(dtype):
    """In rows like x = [10, -10] the gradient of the large entry is tiny, and the naive
    s_k (dy_k - Σ dy s) leaves it with the sum's rounding error (up to 100 % in float32)."""
    rng = np.random.default_rng(2)
    x = np.array([[10.0, -10.0], [12.0, -4.0], [20.0, -5.0], [9.0, -9.5], [15.0, 0.0]], dtype)
    x = np.concatenate([x, x[:, ::-1]]).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    s, cache = numpy_impl.softmax_forward(x)
    dx = numpy_impl.softmax_backward(dy, cache)

    def exact(xr, dyr):
        e = [v.exp() for v in xr]
        p = [v / sum(e) for v in e]
        dot = sum(a * b for a, b in zip(dyr, p))
        return [pk * (gk - dot) for pk, gk in zip(p, dyr)]

    with localcontext() as ctx:
        ctx.prec = PREC
        ref = [
            v for xr, dr in zip(x, dy) for v in exact([dec(a) for a in xr], [dec(a) for a in dr])
        ]

    # per-entry relative error, in units of the dtype's eps
    def rel(got):
        return np.array([float(abs(dec(g) - r) / abs(r)) for g, r in zip(np.ravel(got), ref)])

    naive_dx = s * (dy - (dy * s).sum(axis=-1, keepdims=True))
    ours, naive = rel(dx) / np.finfo(dtype).eps, rel(naive_dx) / np.finfo(dtype).eps
    assert ours.max() <= 16, ours.max()
    assert naive.max() > 1e3 * ours.max(), (naive.max(), ours.max())
    # The forward's max subtraction: no overflow where e^x would (x = 1000).
    big = np.array([[1000.0, 999.0]], dtype)
    with np.errstate(all="raise"):
        s_big, _ = numpy_impl.softmax_forward(big)
    assert abs(s_big[0, 0] - 1 / (1 + math.exp(-1.0))) <= 2 * np.finfo(dtype).eps
    with np.errstate(over="ignore", invalid="ignore"):
        assert np.isnan(np.exp(big) / np.exp(big).sum()).all()


# ---- GELU: σ(2u) and erfc, not 1 + tanh u and 1 + erf (numpy_impl/gelu.py) -----------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_tanh_forward_for_negative_x(dtype):
    """Near x = -4 in float32, ½ x (1 + tanh u) keeps 2 to 3 of 7 digits; x σ(2u) keeps them all
    up to the conditioning of σ(2u) in u (relative error 2|u| times u's own rounding)."""
    x = np.linspace(-6.0 if dtype == np.float32 else -12.0, -2.0, 41).astype(dtype)
    y, _ = numpy_impl.gelu_forward(x)
    c, k = dec(GELU_C), dec(GELU_K)
    ref = ref_map(lambda v: v * sig(2 * c * (v + k * v**3)), x)
    u = np.abs(GELU_C * (x.astype(np.float64) + GELU_K * x.astype(np.float64) ** 3))
    ours = ulps(y, ref, dtype)
    assert np.all(ours <= 4 * (1 + 2 * u)), (ours / (1 + 2 * u)).max()
    uu = dtype(GELU_C) * (x + dtype(GELU_K) * x**3)
    naive = ulps(0.5 * x * (1 + np.tanh(uu)), ref, dtype)
    assert np.any(naive > 100 * (1 + 2 * u)), (naive / (1 + 2 * u)).max()


@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_erf_forward_for_negative_x(dtype):
    """Φ = ½ erfc(-x/√2) rather than ½ (1 + erf(x/√2)); math.erfc (float64) is the reference.
    The rounding of x/√2 is amplified by Φ's conditioning, |d ln Φ / d ln x| ≈ x² for x ≪ 0, so
    the bound is a few ulps times 1 + x²; the naive form loses every digit by x = -6 in float32."""
    x = np.linspace(-8.0, -2.0, 41).astype(dtype)
    y, _ = numpy_impl.gelu_forward(x, approximate="none")
    ref = [dec(v) * dec(0.5 * math.erfc(-float(v) / math.sqrt(2.0))) for v in x]
    ours = ulps(y, ref, dtype)
    naive = ulps(x * (0.5 * (1 + scipy.special.erf(x / dtype(math.sqrt(2.0))))), ref, dtype)
    cond = 1 + x.astype(np.float64) ** 2
    assert np.all(ours <= 4 * cond), (ours / cond).max()
    assert np.any(naive > 1e3 * cond), (naive / cond).max()


@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_tanh_backward_for_positive_x(dtype):
    """σ(-2u) = e s, not 1 - s, which cancels where s ≈ 1 (x > 0)."""
    x = np.linspace(3.0, 8.0 if dtype == np.float32 else 14.0, 41).astype(dtype)
    y, cache = numpy_impl.gelu_forward(x)
    dx = numpy_impl.gelu_backward(np.ones_like(x), cache)
    c, k = dec(GELU_C), dec(GELU_K)

    def deriv(v):
        u = c * (v + k * v**3)
        return sig(2 * u) + v * 2 * sig(2 * u) * sig(-2 * u) * c * (1 + 3 * k * v**2)

    ref = ref_map(deriv, x)
    ours = ulps(dx, ref, dtype)
    s = cache[1]
    cu = dtype(GELU_C) * (1 + 3 * dtype(GELU_K) * x * x)
    naive = ulps(s + x * (2 * s * (1 - s) * cu), ref, dtype)
    assert ours.max() <= 8, ours.max()
    assert naive.max() > 2 * ours.max() and naive.max() > 8, (naive.max(), ours.max())


# ---- AdamW's lerp: torch.lerp's two branches (numpy_impl/optim.py) --------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_lerp_second_branch_for_weight_above_half(dtype):
    """start + w (end - start) with w near 1 and |end| ≪ |start| cancels; end - (1 - w)(end -
    start) does not."""
    rng = np.random.default_rng(4)
    start = (1.0 + rng.uniform(0, 1, 64)).astype(dtype)
    end = (1e-6 * rng.standard_normal(64)).astype(dtype)
    w = 0.999  # 1 - β1 for β1 = 0.001, or 1 - β2-like weights
    got = start.copy()
    lerp_(got, end, w)
    with localcontext() as ctx:
        ctx.prec = PREC
        ref = [dec(a) + dec(w) * (dec(b) - dec(a)) for a, b in zip(start, end)]
    ours = ulps(got, ref, dtype)
    naive = ulps(start + (end - start) * w, ref, dtype)
    assert ours.max() <= 4, ours.max()
    assert naive.max() > 10 * max(ours.max(), 1), naive.max()
