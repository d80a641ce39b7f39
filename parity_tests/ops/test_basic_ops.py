"""Embedding, dropout, GELU and LayerNorm in the regimes the generic sweep does not reach, and their
bad-input errors. Parity at ordinary inputs is test_parity_ops.py's job (cases in twinlm.parity.opcases).

References are independent of the code under test: torch's built-ins (F.gelu, F.layer_norm,
F.embedding), exact arithmetic facts (a constant row normalizes to 0, a dropped unit is 0), and
float64. Upstream gradients are standard normal.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import numpy_impl
import torch_impl
from twinlm.parity.harness import (
    FLOAT32_RATIO,
    TOL_FLOAT64,
    Float32Run,
    compare_float32,
    compare_float64,
    random_douts,
    rel_error,
    run_numpy,
    run_torch,
)
from twinlm.parity.opcases import CASES_BY_NAME

DTYPES = [np.float32, np.float64]


def _t(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.from_numpy(np.array(a, copy=True)).requires_grad_(grad)


def _record_parity(record_error, record_float32, case, inputs, douts, label: str) -> None:
    """The sweep's two rules on hand-picked inputs: float64 three-way, and the float32 standard
    (one example: worst ≤ 1024 u, R ≤ 2 over its tensors)."""
    e64 = compare_float64(case, inputs, douts)
    record_error(case.name, f"{label} f64 forward", e64.forward, TOL_FLOAT64)
    record_error(case.name, f"{label} f64 grad", e64.grad, TOL_FLOAT64)
    record_float32(f"{case.name} {label}", compare_float32(case, inputs, douts))


# ---- GELU: saturation --------------------------------------------------------------------------


def _saturated(rng: np.random.Generator) -> np.ndarray:
    """|x| in [300, 400], both signs, the end points included."""
    x = rng.uniform(300.0, 400.0, (4, 16)) * rng.choice([-1.0, 1.0], (4, 16))
    x[0, :4] = [300.0, -300.0, 400.0, -400.0]
    return x


@pytest.mark.parametrize("approximate", ["tanh", "none"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_saturated_is_finite_without_warnings(approximate, dtype):
    x = _saturated(np.random.default_rng(0)).astype(dtype)
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        y, cache = numpy_impl.gelu_forward(x, approximate)
        dx = numpy_impl.gelu_backward(dy, cache)
        xt = _t(x, grad=True)
        yt = torch_impl.gelu(xt, approximate)
        yt.backward(_t(dy))
    for name, a in [
        ("numpy y", y),
        ("numpy dx", dx),
        ("torch_impl y", yt),
        ("torch_impl dx", xt.grad),
    ]:
        a = a.detach().numpy() if isinstance(a, torch.Tensor) else a
        assert a.dtype == dtype, name
        assert np.isfinite(a).all(), name
    # Saturated GELU is x or 0 with slope 1 or 0, exactly: both forms round to it.
    positive = x > 0
    np.testing.assert_array_equal(y, np.where(positive, x, 0.0).astype(dtype))
    np.testing.assert_array_equal(dx, np.where(positive, dy, 0.0).astype(dtype))


@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_gelu_saturated_matches_torch(approximate, record_error, record_float32):
    case = CASES_BY_NAME[f"gelu[{approximate}]"]
    rng = np.random.default_rng(2)
    inputs = {"x": _saturated(rng)[None]}
    with np.errstate(all="raise"):
        _record_parity(
            record_error,
            record_float32,
            case,
            inputs,
            random_douts(rng, (inputs["x"],)),
            "|x| 300-400",
        )


@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_gelu_left_tail_keeps_relative_precision(approximate):
    """At x ∈ [-5, -3] GELU is tiny; σ(2u) and erfc give it to full relative precision in float32,
    where 1 + tanh u and 1 + erf cancel (near x = -4, 1 + tanh u keeps 2-3 digits). Reference: the
    built-in in float64 on the same float32 inputs, accurate to ~1e-9 relative down to x = -5."""
    x = np.linspace(-5.0, -3.0, 201).astype(np.float32)
    dy = np.random.default_rng(3).standard_normal(x.shape).astype(np.float32)
    ref_y = F.gelu(_t(x.astype(np.float64), grad=True), approximate=approximate)
    y, cache = numpy_impl.gelu_forward(x, approximate)
    dx = numpy_impl.gelu_backward(dy, cache)
    xt = _t(x, grad=True)
    yt = torch_impl.gelu(xt, approximate)
    yt.backward(_t(dy))
    xr = _t(x.astype(np.float64), grad=True)
    F.gelu(xr, approximate=approximate).backward(_t(dy.astype(np.float64)))
    for got, want in [(y, ref_y.detach().numpy()), (yt.detach().numpy(), ref_y.detach().numpy())]:
        assert np.max(np.abs(got / want - 1.0)) < 1e-5  # elementwise relative: 1e-5 ≈ 100 ulp
    for got in (dx, xt.grad.numpy()):
        assert np.max(np.abs(got / xr.grad.numpy() - 1.0)) < 1e-5


def test_gelu_module():
    x = torch.randn(2, 3, 8, dtype=torch.float64)
    for approximate in ("tanh", "none"):
        m = torch_impl.GELU(approximate)
        assert list(m.state_dict()) == []
        assert rel_error(m(x).numpy(), F.gelu(x, approximate=approximate).numpy()) <= TOL_FLOAT64
    assert torch_impl.GELU().approximate == "tanh"


# ---- LayerNorm: constant rows and the degenerate widths ----------------------------------------


def _layernorm_inputs(rng, dtype, rows: int, emb: int, constant: bool) -> dict[str, np.ndarray]:
    x = 3.0 * rng.standard_normal((rows, 1 if constant else emb))
    return {
        "x": np.broadcast_to(x, (rows, emb)).astype(dtype),
        "scale": (1.0 + 0.5 * rng.standard_normal(emb)).astype(dtype),
        "shift": rng.standard_normal(emb).astype(dtype),
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("emb", [1, 2, 5, 768])
def test_layernorm_constant_rows_give_shift(emb, dtype):
    """Variance 0: x̂ = 0 exactly, so y == shift exactly and dx = (g - mean g)/√ε is finite."""
    rng = np.random.default_rng(emb)
    a = _layernorm_inputs(rng, dtype, rows=6, emb=emb, constant=True)
    dy = rng.standard_normal(a["x"].shape).astype(dtype)
    with np.errstate(all="raise"):
        y, cache = numpy_impl.layernorm_forward(a["x"], a["scale"], a["shift"])
        grads = numpy_impl.layernorm_backward(dy, cache)
    yt = torch_impl.layernorm(_t(a["x"]), _t(a["scale"]), _t(a["shift"]))
    want = np.broadcast_to(a["shift"], a["x"].shape)
    np.testing.assert_array_equal(y, want)
    np.testing.assert_array_equal(yt.numpy(), want)
    assert all(np.isfinite(g).all() and g.dtype == dtype for g in grads)
    np.testing.assert_array_equal(grads[1], np.zeros(emb, dtype))  # dscale = Σ dy x̂ = 0


@pytest.mark.parametrize("emb", [2, 5, 768])
def test_layernorm_constant_rows_match_torch(emb, record_error):
    case = CASES_BY_NAME["layernorm"]
    rng = np.random.default_rng(10 + emb)
    inputs = _layernorm_inputs(rng, np.float64, rows=6, emb=emb, constant=True)
    douts = random_douts(rng, run_numpy(case, inputs)[0])
    e64 = compare_float64(case, inputs, douts)
    record_error("layernorm", "constant rows f64 forward", e64.forward, TOL_FLOAT64)
    record_error("layernorm", "constant rows f64 grad", e64.grad, TOL_FLOAT64)


def test_layernorm_mixed_constant_rows_match_torch(record_error, record_float32):
    """Constant rows next to ordinary ones, at the sweep's float64 and float32 rules."""
    case = CASES_BY_NAME["layernorm"]
    rng = np.random.default_rng(20)
    inputs = _layernorm_inputs(rng, np.float64, rows=8, emb=16, constant=False)
    inputs["x"] = np.array(inputs["x"])
    inputs["x"][::2] = rng.standard_normal((4, 1))  # every other row constant
    _record_parity(
        record_error, record_float32, case, inputs, random_douts(rng, (inputs["x"],)), "mixed rows"
    )


def test_layernorm_width_1(record_error):
    """emb = 1: y = shift for every x, so dx and dscale are exactly 0 (the built-in returns rounding
    noise amplified by 1/√ε there) and dshift = Σ dy."""
    case = CASES_BY_NAME["layernorm"]
    rng = np.random.default_rng(30)
    inputs = _layernorm_inputs(rng, np.float64, rows=12, emb=1, constant=False)
    douts = random_douts(rng, (inputs["x"],))
    ref = run_torch(case, case.torch_ref, inputs, douts)[1]
    for backend in ("numpy", "torch_impl"):
        if backend == "numpy":
            outs, grads = run_numpy(case, inputs, douts)
        else:
            outs, grads = run_torch(case, case.torch_impl, inputs, douts)
        np.testing.assert_array_equal(outs[0], np.broadcast_to(inputs["shift"], (12, 1)))
        np.testing.assert_array_equal(grads["x"], 0.0)
        np.testing.assert_array_equal(grads["scale"], 0.0)
        error = rel_error(grads["shift"], ref["shift"])
        record_error("layernorm", "emb=1 f64 dshift", error, TOL_FLOAT64)


@pytest.mark.parametrize("emb", [2, 3])
def test_layernorm_narrow_rows(emb, record_error, record_float32):
    """emb = 2 and 3, which the sweep leaves out (see twinlm.parity.opcases): float64 at the sweep's rule,
    and for emb = 3 float32 too, over enough rows that one ill-conditioned row does not decide."""
    case = CASES_BY_NAME["layernorm"]
    rng = np.random.default_rng(31 + emb)
    inputs = _layernorm_inputs(rng, np.float64, rows=16, emb=emb, constant=False)
    douts = random_douts(rng, (inputs["x"],))
    if emb == 3:
        _record_parity(record_error, record_float32, case, inputs, douts, f"emb={emb}")
        return
    e64 = compare_float64(case, inputs, douts)
    record_error("layernorm", f"emb={emb} f64 forward", e64.forward, TOL_FLOAT64)
    record_error("layernorm", f"emb={emb} f64 grad", e64.grad, TOL_FLOAT64)


def test_layernorm_module():
    m = torch_impl.LayerNorm(8)
    assert set(m.state_dict()) == {"scale", "shift"}
    assert torch.equal(m.scale, torch.ones(8)) and torch.equal(m.shift, torch.zeros(8))
    m = m.double()
    with torch.no_grad():
        m.scale.normal_()
        m.shift.normal_()
    x = torch.randn(2, 3, 8, dtype=torch.float64)
    ref = F.layer_norm(x, (8,), m.scale, m.shift, 1e-5)
    assert rel_error(m(x).detach().numpy(), ref.detach().numpy()) <= TOL_FLOAT64
    assert torch_impl.LayerNorm(4, eps=1e-6).eps == 1e-6


@pytest.mark.parametrize("eps", [1e-2, 0.25, 3.0])
def test_layernorm_eps_is_used(eps, record_error):
    """A non-default ε three ways — NumPy, torch_impl (function and module), F.layer_norm — forward
    and every gradient, float64. The rows' variance (~0.1) is of the order of ε, so an ε that were
    ignored or hard-coded to 1e-5 would be off by far more than rounding (asserted below)."""
    rng = np.random.default_rng(int(eps * 100))
    x = 0.3 * rng.standard_normal((5, 7)) + rng.standard_normal((5, 1))  # (rows, emb)
    scale, shift = 1.0 + 0.5 * rng.standard_normal(7), rng.standard_normal(7)
    dy = rng.standard_normal(x.shape)

    y, cache = numpy_impl.layernorm_forward(x, scale, shift, eps=eps)
    grads_np = numpy_impl.layernorm_backward(dy, cache)  # (dx, dscale, dshift)
    ref_in = [_t(a, grad=True) for a in (x, scale, shift)]
    ref = F.layer_norm(ref_in[0], (7,), ref_in[1], ref_in[2], eps=eps)
    ref.backward(_t(dy))
    ref_grads = [t.grad.numpy() for t in ref_in]

    fn_in = [_t(a, grad=True) for a in (x, scale, shift)]
    y_fn = torch_impl.layernorm(*fn_in, eps)
    y_fn.backward(_t(dy))
    module = torch_impl.LayerNorm(7, eps=eps).double()
    module.load_state_dict({"scale": _t(scale), "shift": _t(shift)})
    y_mod = module(_t(x))

    for label, got, grads in (
        ("numpy", y, grads_np),
        ("torch_impl", y_fn.detach().numpy(), [t.grad.numpy() for t in fn_in]),
    ):
        record_error("layernorm", f"eps≠1e-5 f64 forward {label}", rel_error(got, ref.detach().numpy()), TOL_FLOAT64)  # fmt: skip
        for name, g, r in zip(("dx", "dscale", "dshift"), grads, ref_grads, strict=True):
            record_error("layernorm", f"eps≠1e-5 f64 {name} {label}", rel_error(g, r), TOL_FLOAT64)
    record_error("layernorm", "eps≠1e-5 f64 LayerNorm module", rel_error(y_mod.detach().numpy(), ref.detach().numpy()), TOL_FLOAT64)  # fmt: skip
    default = F.layer_norm(_t(x), (7,), _t(scale), _t(shift)).numpy()  # ε = 1e-5
    assert rel_error(default, ref.detach().numpy()) > 1e3 * TOL_FLOAT64  # ε matters here


# ---- Embedding: accumulation and small shapes --------------------------------------------------


def _repeated_ids(rng, vocab: int) -> np.ndarray:
    ids = rng.integers(0, vocab - 2, (6, 40))  # ids repeat ~50×; the last two rows are never used
    ids[0, :3] = 0  # and one id three times in a row
    return ids


def test_embedding_repeated_ids_accumulate(record_error, record_float32):
    """dweight against F.embedding's weight gradient, at the sweep's float64 and float32 rules."""
    case = CASES_BY_NAME["embedding"]
    rng = np.random.default_rng(40)
    inputs = {"ids": _repeated_ids(rng, vocab=7), "weight": rng.standard_normal((7, 5))}
    douts = random_douts(rng, run_numpy(case, inputs)[0])
    _record_parity(record_error, record_float32, case, inputs, douts, "repeated ids")


@pytest.mark.parametrize("dtype", DTYPES)
def test_embedding_rows_are_sums_of_their_ids(dtype):
    """Row v of dweight is Σ dy[n] over ids[n] = v (summed here by a loop); unused rows are 0."""
    rng = np.random.default_rng(41)
    ids = _repeated_ids(rng, vocab=7)
    weight = rng.standard_normal((7, 5)).astype(dtype)
    y, cache = numpy_impl.embedding_forward(ids, weight)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dweight = numpy_impl.embedding_backward(dy, cache)
    assert y.dtype == dweight.dtype == dtype
    np.testing.assert_array_equal(y, np.stack([weight[i] for i in ids.ravel()]).reshape(y.shape))
    np.testing.assert_array_equal(dweight[5:], 0.0)
    flat_ids, rows = ids.ravel(), dy.reshape(-1, 5)
    loop_sums = [
        np.stack([rows[flat_ids == v].sum(axis=0) for v in range(5)])
        for rows in (rows, rows.astype(np.float64))
    ]
    if dtype == np.float64:
        assert rel_error(dweight[:5], loop_sums[1]) <= TOL_FLOAT64
    else:  # the float32 standard, with the float32 loop as the reference
        run = Float32Run()
        run.add([dweight[:5]], [loop_sums[0]], [loop_sums[1]])
        assert run.tightest[0] <= run.tightest[1] and run.ratio <= FLOAT32_RATIO


@pytest.mark.parametrize(
    "ids_shape, vocab, emb",
    [((), 3, 4), ((1,), 1, 1), ((1, 1), 2, 1), ((3, 1), 1, 3), ((1, 5), 4, 1), ((0,), 3, 2)],
)
@pytest.mark.parametrize("ids_dtype", [np.int64, np.int32, np.uint8])
def test_embedding_small_shapes(ids_shape, vocab, emb, ids_dtype, record_error):
    rng = np.random.default_rng(50)
    ids = rng.integers(0, vocab, ids_shape).astype(ids_dtype)
    weight = rng.standard_normal((vocab, emb))
    dy = rng.standard_normal((*ids_shape, emb))
    y, cache = numpy_impl.embedding_forward(ids, weight)
    dweight = numpy_impl.embedding_backward(dy, cache)
    w = _t(weight, grad=True)
    yt = F.embedding(_t(ids.astype(np.int64)), w)
    yt.backward(_t(dy))
    wi = _t(weight, grad=True)
    yi = torch_impl.embedding(_t(ids), wi)
    yi.backward(_t(dy))
    assert y.shape == yi.shape == (*ids_shape, emb)
    assert dweight.shape == (vocab, emb)
    record_error("embedding", "small shapes f64", rel_error(y, yt.detach().numpy()), TOL_FLOAT64)
    record_error(
        "embedding", "small shapes f64 dweight", rel_error(dweight, w.grad.numpy()), TOL_FLOAT64
    )
    record_error(
        "embedding",
        "small shapes f64 dweight",
        rel_error(wi.grad.numpy(), w.grad.numpy()),
        TOL_FLOAT64,
    )


# ---- Dropout: identity, exact masking, dtype -----------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_p0_is_identity(dtype):
    rng = np.random.default_rng(60)
    x = rng.standard_normal((3, 4, 5)).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    mask = np.ones(x.shape, dtype=bool)
    y, cache = numpy_impl.dropout_forward(x, mask, 0.0)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(numpy_impl.dropout_backward(dy, cache), dy)
    np.testing.assert_array_equal(torch_impl.dropout(_t(x), _t(mask), 0.0).numpy(), x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mask_shape", [(3, 4, 5), (3, 1, 5), (5,), (1, 1, 1)])
def test_dropout_applies_the_mask_exactly(dtype, mask_shape):
    rng = np.random.default_rng(61)
    p = 0.3
    x = rng.standard_normal((3, 4, 5)).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    mask = rng.random(mask_shape) >= p
    if mask.size > 1:
        mask.flat[:2] = [False, True]  # at least one dropped and one kept
    keep = np.broadcast_to(mask, x.shape)
    y, cache = numpy_impl.dropout_forward(x, mask, p)
    dx = numpy_impl.dropout_backward(dy, cache)
    xt = _t(x, grad=True)
    yt = torch_impl.dropout(xt, _t(mask), p)
    yt.backward(_t(dy))
    ref = _t(x) * _t(mask) / (1 - p)  # the reference written out: torch has no mask-taking dropout
    for out, grad in [(y, dx), (yt.detach().numpy(), xt.grad.numpy())]:
        assert out.dtype == grad.dtype == dtype
        assert np.all(out[~keep] == 0) and np.all(grad[~keep] == 0)  # dropped: exactly 0
        # kept: x / (1 - p) to within one rounding of the scale
        np.testing.assert_allclose(out, ref.numpy(), rtol=2 * np.finfo(dtype).eps, atol=0)
        np.testing.assert_allclose(grad, dy * keep / (1 - p), rtol=2 * np.finfo(dtype).eps, atol=0)


@pytest.mark.parametrize("mask_dtype", [np.bool_, np.int64, np.uint8, np.float64, np.float32])
def test_dropout_float32_stays_float32(mask_dtype):
    """Whatever the mask's dtype, and with p a NumPy float64 scalar, float32 stays float32."""
    rng = np.random.default_rng(62)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    mask = (rng.random(x.shape) >= 0.5).astype(mask_dtype)
    p = np.float64(0.5)
    y, cache = numpy_impl.dropout_forward(x, mask, p)
    dx = numpy_impl.dropout_backward(rng.standard_normal(y.shape).astype(np.float32), cache)
    assert y.dtype == dx.dtype == np.float32
    assert torch_impl.dropout(_t(x), _t(mask), p).dtype == torch.float32


# ---- dtype in = dtype out, all four ops, both backends -----------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["embedding", "dropout", "gelu[tanh]", "gelu[none]", "layernorm"])
def test_dtype_preserved(name, dtype):
    case = CASES_BY_NAME[name]
    rng = np.random.default_rng(70)
    inputs = {
        k: (a.astype(dtype) if a.dtype.kind == "f" else a)
        for k, a in case.sample(rng, np.float64, case.fd_dims).items()
    }
    outs, _ = run_numpy(case, inputs)
    douts = random_douts(rng, outs)
    for run in (
        lambda: run_numpy(case, inputs, douts),
        lambda: run_torch(case, case.torch_impl, inputs, douts),
    ):
        outs, grads = run()
        assert [o.dtype for o in outs] == [dtype] * len(outs)
        assert sorted(grads) == sorted(case.grad_inputs)
        assert all(g.dtype == dtype for g in grads.values()), {k: g.dtype for k, g in grads.items()}


# ---- bad input: same error, same message, in both backends -------------------------------------

_X = np.zeros((2, 3, 4))
_W = np.zeros((5, 4))
_IDS = np.array([[0, 1], [4, 2]])
_BAD_INPUT = {
    # id: (function name in both packages, args, exception, argument named in the message)
    "embedding float ids": ("embedding", (_IDS.astype(np.float64), _W), TypeError, "ids"),
    "embedding id = vocab": ("embedding", (np.array([0, 5]), _W), ValueError, "ids"),
    "embedding id < 0": ("embedding", (np.array([[-1]]), _W), ValueError, "ids"),
    "embedding weight 1-D": ("embedding", (_IDS, np.zeros(5)), ValueError, "weight"),
    "embedding weight 3-D": ("embedding", (_IDS, np.zeros((5, 4, 1))), ValueError, "weight"),
    "dropout integer x": (
        "dropout",
        (np.zeros(3, np.int64), np.ones(3, bool), 0.1),
        TypeError,
        "x",
    ),
    "dropout p = 1": ("dropout", (_X, np.ones(_X.shape, bool), 1.0), ValueError, "p"),
    "dropout p < 0": ("dropout", (_X, np.ones(_X.shape, bool), -0.1), ValueError, "p"),
    "dropout mask shape": ("dropout", (_X, np.ones((2, 4, 3), bool), 0.1), ValueError, "mask"),
    "dropout mask larger": ("dropout", (_X, np.ones((2, 2, 3, 4), bool), 0.1), ValueError, "mask"),
    "gelu approximate": ("gelu", (_X, "erf"), ValueError, "approximate"),
    "gelu integer x": ("gelu", (np.zeros(3, np.int64), "tanh"), TypeError, "x"),
    "layernorm integer x": (
        "layernorm",
        (np.zeros((2, 4), np.int64), np.ones(4), np.zeros(4)),
        TypeError,
        "x",
    ),
    "layernorm scale": ("layernorm", (_X, np.ones(5), np.zeros(4)), ValueError, "scale"),
    "layernorm shift": ("layernorm", (_X, np.ones(4), np.zeros(3)), ValueError, "shift"),
    "layernorm scale 2-D": ("layernorm", (_X, np.ones((1, 4)), np.zeros(4)), ValueError, "scale"),
    "linear x vs weight": ("linear", (np.zeros((2, 3)), _W, None), ValueError, "x"),
    "linear bias": ("linear", (_X, _W, np.zeros(4)), ValueError, "bias"),
    "linear weight 1-D": ("linear", (_X, np.zeros(4), None), ValueError, "weight"),
}


@pytest.mark.parametrize("key", list(_BAD_INPUT))
def test_bad_input(key):
    fn, args, exc, arg_name = _BAD_INPUT[key]
    numpy_fn = getattr(numpy_impl, f"{fn}_forward")
    torch_fn = getattr(torch_impl, fn)
    torch_args = tuple(_t(a) if isinstance(a, np.ndarray) else a for a in args)
    pattern = rf"\b{arg_name}\b"
    with pytest.raises(exc, match=pattern) as from_numpy:
        numpy_fn(*args)
    with pytest.raises(exc, match=pattern) as from_torch:
        torch_fn(*torch_args)
    if exc is ValueError:  # TypeErrors name the dtype, which each library spells its own way
        assert str(from_numpy.value) == str(from_torch.value)


def test_gelu_module_rejects_unknown_approximation():
    with pytest.raises(ValueError, match=r"\bapproximate\b"):
        torch_impl.GELU("erf")
