"""The recurrent cells' derivatives in saturation, against exact references.

tanh'(a) = 1 - h² from the output h = tanh(a) rounded is off by u / (1 - |h|) relative as |h| → 1,
all of it once h rounds to ±1 (float32: |a| ≳ 9; float64: |a| ≳ 19); σ(1 - σ) likewise as σ → 1;
and a σ accurate only to ~u absolute (½ + ½ tanh(z/2)) loses all of σ → 0, which the backward
multiplies by (dc ⊙ f, dh' ⊙ z). numpy_impl takes the derivatives from the pre-activations
(numpy_impl/recurrent.py) and σ as 1 / (1 + e^-z). Here, with every pre-activation at |a| in 5..20:
1. the derivative helpers elementwise against a 40-digit `decimal` reference, and the naive
   formulas shown off by up to all of their value;
2. whole cells and two-layer layers over time, reference and fast path, float32 and float64,
   against float64 autograd whose tanh and σ backward are sech²(a) and 1 / (2 + 2 cosh z) (exact
   to a few float64 ulps for these |a|, and written from torch built-ins, not from numpy_impl);
   the cells rebuilt with the naive formulas fail the same bounds, so the test can fail.
torch's own float32 and float64 cells use 1 - h² (the float32 sweep's per-example bound is 8× its
worst, so that is allowed there; here the bound is absolute).
"""

from __future__ import annotations

import decimal
import sys

import numpy as np
import pytest
import torch

import numpy_impl
import numpy_impl.fast
import numpy_impl.gru  # noqa: F401  (sys.modules: the cells' helpers replaced by the naive ones)
import numpy_impl.lstm  # noqa: F401
import numpy_impl.rnn  # noqa: F401
from numpy_impl.recurrent import sigmoid, sigmoid_derivative, tanh_derivative
from twinlm.parity.harness import FLOAT32_BOUND, U32

pytestmark = pytest.mark.usefixtures("one_torch_thread")

U64 = 2.0**-53
# Whole cells: the worst tensor's max|error| / max|exact|. float32 in units of u: the sweep's
# per-example bound (seen: ≤ ~220 u, from rounding the pre-activations, |a| up to 20). float64:
# seen ≤ 1.1e-14; the naive formulas 1e-12 … 1.
BOUND = {np.float32: FLOAT32_BOUND * U32, np.float64: 1e-13}
ELEMENTWISE_ULPS = 16  # the helpers, per element, relative, in units of u (seen: ≤ 6)
CTX = decimal.Context(prec=40)


# ---- 1. the helpers, elementwise -----------------------------------------------------------------


def _exact(fn: str, a: float) -> float:
    """sech²(a), σ'(a) = σ(a)σ(-a) or σ(a) to 40 digits, from a's exact value."""
    d = CTX.create_decimal(float(a))
    if fn == "tanh'":
        e = CTX.exp(2 * d)
        return float(4 * e / (e + 1) ** 2)
    e = CTX.exp(-d)
    return float(e / (1 + e) ** 2) if fn == "σ'" else float(1 / (1 + e))


def _naive(fn: str, a: np.ndarray) -> np.ndarray:
    if fn == "tanh'":
        h = np.tanh(a)
        return 1 - h * h
    s = np.tanh(a * 0.5) * 0.5 + 0.5  # σ accurate to ~u absolute
    return s * (1 - s) if fn == "σ'" else s


HELPERS = {"tanh'": tanh_derivative, "σ'": sigmoid_derivative, "σ": sigmoid}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fn", list(HELPERS))
def test_helpers_are_exact_in_saturation_where_the_naive_formulas_are_not(fn, dtype, record_error):
    rng = np.random.default_rng(0)
    a = (rng.choice([-1.0, 1.0], 400) * rng.uniform(5, 20, 400)).astype(dtype)
    exact = np.array([_exact(fn, v) for v in a])
    u = U32 if dtype == np.float32 else U64

    def worst(got: np.ndarray) -> float:  # relative, per element, in units of u
        assert got.dtype == dtype
        return float(np.max(np.abs(got - exact) / exact)) / u

    record_error(f"{fn} (|a| in 5..20)", f"{np.dtype(dtype).name} elementwise (u)",
                 worst(HELPERS[fn](a)), ELEMENTWISE_ULPS)  # fmt: skip
    # σ's naive form is exact for σ → 1; the derivatives' are not for either sign
    assert worst(_naive(fn, a)) > 1e3 * ELEMENTWISE_ULPS


def test_helpers_have_no_overflow_and_the_right_limits():
    for dtype in (np.float32, np.float64):
        big = np.array([-np.finfo(dtype).max, -1e4, 1e4, np.finfo(dtype).max], dtype)
        with np.errstate(all="raise"):
            assert tanh_derivative(big).tolist() == [0, 0, 0, 0]
            assert sigmoid_derivative(big).tolist() == [0, 0, 0, 0]
            assert sigmoid(big).tolist() == [0, 0, 1, 1]
            zero = np.zeros(1, dtype)
            assert tanh_derivative(zero)[0] == 1 and sigmoid_derivative(zero)[0] == 0.25


# ---- 2. cells and layers, against float64 autograd with exact derivatives --------------------------


class _Tanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return torch.tanh(a)

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        return g / torch.cosh(a) ** 2  # sech²(a)


class _Sigmoid(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z):
        ctx.save_for_backward(z)
        return 1 / (1 + torch.exp(-z))

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        return g / (2 + 2 * torch.cosh(z))  # σ(z)σ(-z) = 1 / ((1 + e^z)(1 + e^-z))


def _ref_cell(kind: str, x, state, w_ih, w_hh, b_ih, b_hh):
    """One step, torch.nn's gate layouts; GRU h' = σ(-a_z) ⊙ n + σ(a_z) ⊙ h (1 - z exact)."""
    tanh, sig = _Tanh.apply, _Sigmoid.apply
    if kind.startswith("gru"):
        (h,) = state
        H = h.shape[-1]
        gi = x @ w_ih.T + b_ih
        gh_rz = h @ w_hh[: 2 * H].T + b_hh[: 2 * H]
        r, a_z = sig(gi[:, :H] + gh_rz[:, :H]), gi[:, H : 2 * H] + gh_rz[:, H:]
        if kind == "gru":  # reset after the hidden matmul (torch)
            a_n = gi[:, 2 * H :] + r * (h @ w_hh[2 * H :].T + b_hh[2 * H :])
        else:  # Cho's: before it
            a_n = gi[:, 2 * H :] + (r * h) @ w_hh[2 * H :].T + b_hh[2 * H :]
        return (sig(-a_z) * tanh(a_n) + sig(a_z) * h,)
    a = x @ w_ih.T + b_ih + state[0] @ w_hh.T + b_hh
    if kind == "rnn":
        return (tanh(a),)
    z_i, z_f, z_g, z_o = a.chunk(4, dim=-1)
    c = sig(z_f) * state[1] + sig(z_i) * tanh(z_g)
    return sig(z_o) * tanh(c), c


GATES = {"rnn": 1, "gru": 3, "gru_before": 3, "lstm": 4}
WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


# Saturation regimes: the signs of the pre-activations, mixed, all negative (σ → 0, tanh → -1) or
# all positive (σ → 1, tanh → 1); their magnitudes in a band of 2 starting at each of BANDS, so
# that in every tensor all elements are about as deep (an error relative to the largest is then
# relative to each: the measure is max|error| / max|exact| per tensor).
SIGNS = ("mixed", "-", "+")
BANDS = (5.0, 9.0, 13.0, 17.0)


def _saturated(rng, kind: str, sign: str, band: float, B: int, I: int, H: int, carry=False):
    """Cell inputs whose pre-activations all lie at |a| in ~band..band + 2: small weights, biases
    of that magnitude with the regime's signs. carry (GRU): z → 1 whatever the regime, so that h
    carries over time (with z → 0, h_t ≈ n_t ≈ n_{t+1} = ±1 and h - n cancels in the exact math
    itself, which no formula for the derivatives can help)."""
    G = GATES[kind]
    signs = {"mixed": rng.choice([-1.0, 1.0], G * H), "-": -np.ones(G * H), "+": np.ones(G * H)}
    signs = signs[sign]
    if carry:
        signs[H : 2 * H] = 1.0
    a = {
        "x": rng.standard_normal((B, I)),
        "h": 0.5 * rng.standard_normal((B, H)),
        "weight_ih": 0.05 * rng.standard_normal((G * H, I)),
        "weight_hh": 0.05 * rng.standard_normal((G * H, H)),
        "bias_ih": signs * rng.uniform(band, band + 2, G * H),
        "bias_hh": 0.1 * rng.standard_normal(G * H),
    }
    if kind == "lstm":
        a["c"] = 0.5 * rng.standard_normal((B, H))
    return a


def _cell_names(kind: str) -> tuple[str, ...]:
    return ("x", "h", *(("c",) if kind == "lstm" else ()), *WEIGHTS)


def _exact_cell_grads(kind, a, douts):
    """Gradients of Σ douts ⊙ cell(a) in float64 with exact derivatives."""
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in a.items()}
    state = (t["h"], t["c"]) if kind == "lstm" else (t["h"],)
    outs = _ref_cell(kind, t["x"], state, *(t[w] for w in WEIGHTS))
    torch.autograd.backward(outs, [torch.tensor(d, dtype=torch.float64) for d in douts])
    return {k: v.grad.numpy() for k, v in t.items()}


def _numpy_cell_grads(kind, a, douts):
    op = "gru" if kind.startswith("gru") else kind
    forward = getattr(numpy_impl, f"{op}_cell_forward")
    backward = getattr(numpy_impl, f"{op}_cell_backward")
    options = {"reset_after": kind == "gru"} if op == "gru" else {}
    _, cache = forward(*(a[k] for k in _cell_names(kind)), **options)
    return dict(zip(_cell_names(kind), backward(*douts, cache), strict=True))


def _worst(got: dict, exact: dict) -> float:
    """max over tensors of max|got - exact| / max|exact|."""
    return max(float(np.max(np.abs(got[k] - exact[k])) / np.max(np.abs(exact[k]))) for k in exact)


def _cell_worst(kind: str, dtype) -> float:
    worst = 0.0
    for sign in SIGNS:
        for band in BANDS:
            rng = np.random.default_rng([SIGNS.index(sign), int(band), GATES[kind]])
            cell = _saturated(rng, kind, sign, band, 4, 16, 12)
            a = {k: v.astype(dtype) for k, v in cell.items()}
            B, H = a["h"].shape
            douts = [rng.standard_normal((B, H)).astype(dtype) for _ in range(1 + (kind == "lstm"))]
            exact = _exact_cell_grads(kind, a, douts)  # from the same (float32) inputs
            worst = max(worst, _worst(_numpy_cell_grads(kind, a, douts), exact))
    return worst


def _naive_sigmoid(z):
    return np.tanh(z * 0.5) * 0.5 + 0.5


NAIVE = {  # the cells' helpers, as 1 - h² and σ(1 - σ) from the rounded outputs
    "tanh_derivative": lambda a: 1 - np.tanh(a) ** 2,
    "sigmoid_derivative": lambda z: _naive_sigmoid(z) * (1 - _naive_sigmoid(z)),
    "sigmoid": _naive_sigmoid,
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", list(GATES))
def test_cell_gradients_in_saturation(kind, dtype, record_error, monkeypatch):
    name = {"gru": "gru_cell", "gru_before": "gru_cell[reset_before]"}.get(kind, f"{kind}_cell")
    bound = BOUND[dtype]
    record_error(name, f"saturated {np.dtype(dtype).name} grad", _cell_worst(kind, dtype), bound)
    module = sys.modules["numpy_impl.gru" if kind.startswith("gru") else f"numpy_impl.{kind}"]
    for helper, naive in NAIVE.items():
        if hasattr(module, helper):
            monkeypatch.setattr(module, helper, naive)
    assert _cell_worst(kind, dtype) > 10 * bound  # the naive formulas fail the same check


def _exact_layer_grads(kind, x, h0, c0, params, dout, dstates, num_layers):
    """A layer over time as torch.nn's (batch first), the reference cell at each step, float64."""
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    x_t, h0_t = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (x, h0))
    c0_t = None if c0 is None else torch.tensor(c0, dtype=torch.float64, requires_grad=True)
    layer_in, finals = x_t, []
    for k in range(num_layers):
        state = (h0_t[k],) if c0_t is None else (h0_t[k], c0_t[k])
        weights = [t[f"{w}_l{k}"] for w in WEIGHTS]
        outs = []
        for step in range(x.shape[1]):
            state = _ref_cell(kind, layer_in[:, step], state, *weights)
            outs.append(state[0])
        layer_in = torch.stack(outs, dim=1)
        finals.append(state)
    final = [torch.stack(s) for s in zip(*finals, strict=True)]
    torch.autograd.backward(
        [layer_in, *final], [torch.tensor(d, dtype=torch.float64) for d in (dout, *dstates)]
    )
    grads = {
        "x": x_t.grad.numpy(),
        "h0": h0_t.grad.numpy(),
        **{k: v.grad.numpy() for k, v in t.items()},
    }
    if c0_t is not None:
        grads["c0"] = c0_t.grad.numpy()
    return grads


@pytest.mark.parametrize("kernels", ["reference", "fast"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", list(GATES))
def test_layer_gradients_in_saturation(kind, dtype, kernels, record_error):
    """Two layers over 5 steps; layer 1 reads layer 0's outputs."""
    ops = numpy_impl if kernels == "reference" else numpy_impl.fast
    op = "gru" if kind.startswith("gru") else kind
    options = {"reset_after": kind == "gru"} if op == "gru" else {}
    B, T, I, H, L = 3, 5, 6, 5, 2
    worst = 0.0
    for sign, band in ((sign, band) for sign in SIGNS for band in BANDS):
        rng = np.random.default_rng([SIGNS.index(sign), int(band), GATES[kind], 7])
        params = {}
        for k in range(L):
            cell = _saturated(rng, kind, sign, band, 1, I if k == 0 else H, H, op == "gru")
            params.update({f"{w}_l{k}": cell[w].astype(dtype) for w in WEIGHTS})
        x = rng.standard_normal((B, T, I)).astype(dtype)
        h0 = (0.5 * rng.standard_normal((L, B, H))).astype(dtype)
        c0 = (0.5 * rng.standard_normal((L, B, H))).astype(dtype) if op == "lstm" else None
        dout = rng.standard_normal((B, T, H)).astype(dtype)
        dstates = [
            rng.standard_normal((L, B, H)).astype(dtype) for _ in range(1 + (c0 is not None))
        ]
        forward, backward = (getattr(ops, f"{op}_{way}") for way in ("forward", "backward"))
        if op == "lstm":
            _, _, cache = forward(x, params, (h0, c0))
            dx, (dh0, dc0), grads = backward(dout, tuple(dstates), cache)
            got = {"x": dx, "h0": dh0, "c0": dc0, **grads}
        else:
            _, _, cache = forward(x, params, h0, **options)
            dx, dh0, grads = backward(dout, dstates[0], cache)
            got = {"x": dx, "h0": dh0, **grads}
        exact = _exact_layer_grads(kind, x, h0, c0, params, dout, dstates, L)
        worst = max(worst, _worst(got, exact))
    name = f"{kind}[L=2, {kernels}]"
    record_error(name, f"saturated {np.dtype(dtype).name} grad", worst, BOUND[dtype])
