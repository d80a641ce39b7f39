"""The multi-layer LSTM: NumPy (hand-written BPTT) vs torch_impl vs torch.nn.LSTM(batch_first=True).

The layer is wrapped in an OpCase (inputs x, h0, c0 and every parameter; outputs out, h_n, c_n), so
the same harness as the single ops measures it: float64 three-way agreement on outputs and every
gradient with random upstream gradients on out AND on (h_n, c_n), the full finite-difference
Jacobian on a tiny case, and the adjoint identity along random directions on larger ones.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import numpy_impl
import torch_impl
from twinlm.parity.harness import (
    TOL_FLOAT64,
    OpCase,
    adjoint_error,
    compare_float32,
    compare_float64,
    finite_difference_jacobian,
    grads_error,
    outs_error,
    random_douts,
    rel_error,
    run_numpy,
    run_torch,
)
from twinlm.shared.naming import lstm_param_shapes

TOL_FD = 1e-7  # as in test_parity_ops.py: central differences, eps 1e-6, float64


def _param_names(num_layers: int) -> tuple[str, ...]:
    return tuple(
        f"{w}_l{k}"
        for k in range(num_layers)
        for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    )


def lstm_case(num_layers: int, dropout_p: float = 0.0) -> OpCase:
    """The layer as an op of (x, h0, c0, params…) -> (out, h_n, c_n). With dropout_p > 0 the inputs
    carry keep-masks and there is no torch.nn.LSTM reference (its masks are drawn inside)."""
    L = num_layers
    params = _param_names(L)

    def sample(rng, dtype, d):
        B, S, I, H = d["batch"], d["seq"], d["d_in"], d["hidden"]
        arrays = {
            "x": rng.standard_normal((B, S, I)).astype(dtype),
            "h0": (0.5 * rng.standard_normal((L, B, H))).astype(dtype),
            "c0": rng.standard_normal((L, B, H)).astype(dtype),
        }
        for name, shape in lstm_param_shapes(I, H, L).items():
            # Weights ~ 1/√fan_in; both biases independent and non-zero.
            scale = shape[1] ** -0.5 if len(shape) == 2 else 0.5
            arrays[name] = (scale * rng.standard_normal(shape)).astype(dtype)
        for k in range(L - 1):
            if dropout_p > 0:
                arrays[f"mask{k}"] = rng.random((B, S, H)) >= dropout_p
        return arrays

    def masks(a):
        return [a[f"mask{k}"] for k in range(L - 1)] if dropout_p > 0 else None

    def np_forward(a):
        I, H = a["x"].shape[-1], a["h0"].shape[-1]
        model = numpy_impl.LSTM(I, H, L)
        model.load_state_dict({k: a[k] for k in params})
        out, (h_n, c_n) = model.forward(a["x"], (a["h0"], a["c0"]), masks(a), dropout_p)
        return (out, h_n, c_n), model

    def np_backward(douts, model):
        dout, dh_n, dc_n = douts
        dx, (dh0, dc0), grads = model.backward(dout, (dh_n, dc_n))
        return {"x": dx, "h0": dh0, "c0": dc0, **grads}

    def torch_run(module_class, a):
        I, H = a["x"].shape[-1], a["h0"].shape[-1]
        module = module_class(I, H, L, batch_first=True).to(a["x"].dtype)
        extra = {"dropout_masks": masks(a), "p": dropout_p} if dropout_p > 0 else {}
        out, (h_n, c_n) = torch.func.functional_call(
            module, {k: a[k] for k in params}, (a["x"], (a["h0"], a["c0"])), extra
        )
        return out, h_n, c_n

    return OpCase(
        f"lstm[L={L}{f', p={dropout_p}' if dropout_p else ''}]",
        sample,
        np_forward,
        np_backward,
        torch_impl=lambda a: torch_run(torch_impl.LSTM, a),
        torch_ref=(lambda a: torch_run(torch.nn.LSTM, a)) if dropout_p == 0 else None,
        grad_inputs=("x", "h0", "c0", *params),
        dims={"batch": 3, "seq": 6, "d_in": 5, "hidden": 4},
        fd_dims={"batch": 1, "seq": 2, "d_in": 2, "hidden": 2},
    )


def _inputs(case: OpCase, seed: int, **dims):
    rng = np.random.default_rng(seed)
    arrays = case.sample(rng, np.float64, {**case.dims, **dims})
    douts = random_douts(rng, run_numpy(case, arrays)[0])  # on out AND on (h_n, c_n)
    return arrays, douts, rng


@pytest.mark.parametrize("num_layers", [2, 3])
def test_three_way_float64(num_layers, record_error):
    """Outputs, (h_n, c_n) and every gradient (x, h0, c0, all parameters), tensor by tensor."""
    case = lstm_case(num_layers)
    arrays, douts, _ = _inputs(case, seed=num_layers, batch=3, seq=7, d_in=5, hidden=6)
    results = {
        "numpy": run_numpy(case, arrays, douts),
        "torch_impl": run_torch(case, case.torch_impl, arrays, douts),
    }
    ref_outs, ref_grads = run_torch(case, case.torch_ref, arrays, douts)
    scale = max(float(np.abs(g).max()) for g in ref_grads.values())
    for backend, (outs, grads) in results.items():
        for name, o, r in zip(("out", "h_n", "c_n"), outs, ref_outs, strict=True):
            record_error("lstm layer", f"{backend} {name}", rel_error(o, r), TOL_FLOAT64)
        assert set(grads) == set(ref_grads) == set(case.grad_inputs)
        for k, g in grads.items():
            assert g.shape == ref_grads[k].shape and g.dtype == np.float64
            err = rel_error(g, ref_grads[k], floor=1e-3 * scale)
            record_error("lstm layer", f"{backend} d{k.split('_l')[0]}", err, TOL_FLOAT64)


def test_upstream_state_gradient_matters():
    """The (h_n, c_n) gradient really enters BPTT: dropping it changes dx by O(1)."""
    case = lstm_case(2)
    arrays, (dout, dh_n, dc_n), _ = _inputs(case, seed=11)
    with_state = run_numpy(case, arrays, (dout, dh_n, dc_n))[1]
    without = run_numpy(case, arrays, (dout, 0 * dh_n, 0 * dc_n))[1]
    assert rel_error(without["x"], with_state["x"]) > 1e-2
    assert rel_error(without["c0"], with_state["c0"]) > 1e-2


def test_float32_no_worse_than_torch(record_float32):
    """float32, each backend against the float64 torch.nn.LSTM, torch's float32 as the reference
    (the float32 standard in twinlm/parity/harness.py)."""
    case = lstm_case(2)
    arrays, douts, _ = _inputs(case, seed=3, batch=4, seq=12, d_in=8, hidden=8)
    record_float32("lstm layer", compare_float32(case, arrays, douts))


@given(
    st.integers(1, 3),  # batch
    st.integers(1, 5),  # seq
    st.integers(1, 4),  # d_in
    st.integers(1, 4),  # hidden
    st.integers(1, 3),  # num_layers
    st.integers(0, 2**32 - 1),
)
def test_hypothesis_small_shapes(B, S, I, H, L, seed):
    case = lstm_case(L)
    arrays, douts, _ = _inputs(case, seed, batch=B, seq=S, d_in=I, hidden=H)
    errors = compare_float64(case, arrays, douts)
    assert errors.forward <= TOL_FLOAT64 and errors.grad <= TOL_FLOAT64, errors


def test_finite_difference_full_jacobian(record_error):
    """B=1, T=2, I=2, H=2, two layers: every output element against every input element."""
    case = lstm_case(2)
    for seed in (0, 1):
        arrays = case.sample(np.random.default_rng(seed), np.float64, case.fd_dims)
        record_error("lstm layer", "fd jacobian", finite_difference_jacobian(case, arrays), TOL_FD)


@pytest.mark.parametrize("num_layers, dropout_p", [(1, 0.0), (3, 0.0), (3, 0.3)])
def test_finite_difference_random_directions(num_layers, dropout_p, record_error):
    case = lstm_case(num_layers, dropout_p)
    for seed in range(3):
        arrays, _, rng = _inputs(case, seed, batch=4, seq=9, d_in=6, hidden=5)
        record_error("lstm layer", "fd adjoint", adjoint_error(case, arrays, rng), TOL_FD)


def test_dropout_between_layers_numpy_matches_torch_impl(record_error):
    case = lstm_case(3, dropout_p=0.3)
    arrays, douts, _ = _inputs(case, seed=5)
    assert not arrays["mask0"].all() and arrays["mask0"].any()
    (outs_np, g_np), (outs_t, g_t) = (
        run_numpy(case, arrays, douts),
        run_torch(case, case.torch_impl, arrays, douts),
    )
    record_error(
        "lstm layer dropout", "numpy vs torch_impl fwd", outs_error(outs_np, outs_t), TOL_FLOAT64
    )
    record_error(
        "lstm layer dropout", "numpy vs torch_impl grad", grads_error(g_np, g_t), TOL_FLOAT64
    )
    # The masks act: without them the output differs; with all-ones masks it is the plain LSTM
    # scaled between layers, which at p = 0 is exactly the plain LSTM.
    plain = lstm_case(3)
    plain_arrays = {k: v for k, v in arrays.items() if not k.startswith("mask")}
    assert outs_error(run_numpy(plain, plain_arrays)[0], outs_np) > 1e-2
    model = numpy_impl.LSTM(5, 4, 3)
    model.load_state_dict({k: arrays[k] for k in _param_names(3)})
    ones = [np.ones((3, 6, 4), bool)] * 2
    out_ones = model.forward(arrays["x"], (arrays["h0"], arrays["c0"]), ones, 0.0)[0]
    out_plain = model.forward(arrays["x"], (arrays["h0"], arrays["c0"]))[0]
    assert np.array_equal(out_ones, out_plain)


@pytest.mark.parametrize("backend", ["numpy", "torch_impl"])
def test_sequential_equals_batched(backend, record_error):
    """T steps one at a time, carrying (h, c) forward and (dh, dc) backward, == one call on all T.

    Gradients of the chunks: the later chunk's (dh0, dc0) is the earlier chunk's dstate, and the
    parameter gradients of the chunks add up to the whole sequence's."""
    L, B, S, I, H = 2, 3, 6, 4, 5
    rng = np.random.default_rng(21)
    case = lstm_case(L)
    arrays = case.sample(rng, np.float64, {"batch": B, "seq": S, "d_in": I, "hidden": H})
    params = {k: arrays[k] for k in _param_names(L)}
    x, h0, c0 = arrays["x"], arrays["h0"], arrays["c0"]
    dout = rng.standard_normal((B, S, H))
    dh_n, dc_n = rng.standard_normal((L, B, H)), rng.standard_normal((L, B, H))
    step = _numpy_chunks if backend == "numpy" else _torch_chunks
    whole = step(params, x, h0, c0, dout, (dh_n, dc_n), chunk=S)
    one_at_a_time = step(params, x, h0, c0, dout, (dh_n, dc_n), chunk=1)
    for name, a, b in zip(("out", "h_n", "c_n", "dx", "dh0", "dc0"), one_at_a_time[0], whole[0]):
        record_error("lstm sequential", f"{backend} {name}", rel_error(a, b), TOL_FLOAT64)
    record_error(
        "lstm sequential",
        f"{backend} dparams",
        grads_error(one_at_a_time[1], whole[1]),
        TOL_FLOAT64,
    )


def _numpy_chunks(params, x, h0, c0, dout, dstate, chunk):
    S = x.shape[1]
    models, outs, state = [], [], (h0, c0)
    for start in range(0, S, chunk):
        model = numpy_impl.LSTM(x.shape[-1], h0.shape[-1], h0.shape[0])
        model.load_state_dict(params)
        out, state = model.forward(x[:, start : start + chunk], state)
        models.append(model)
        outs.append(out)
    dxs, grads = [], {k: 0.0 for k in params}
    for i in reversed(range(len(models))):
        dx, dstate, g = models[i].backward(dout[:, i * chunk : (i + 1) * chunk], dstate)
        dxs.insert(0, dx)
        grads = {k: grads[k] + g[k] for k in params}
    arrays = (np.concatenate(outs, axis=1), *state, np.concatenate(dxs, axis=1), *dstate)
    return arrays, grads


def _torch_chunks(params, x, h0, c0, dout, dstate, chunk):
    S = x.shape[1]
    model = torch_impl.LSTM(x.shape[-1], h0.shape[-1], h0.shape[0]).double()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    x, h0, c0 = (torch.from_numpy(a).requires_grad_() for a in (x, h0, c0))
    outs, state = [], (h0, c0)
    for start in range(0, S, chunk):
        out, state = model(x[:, start : start + chunk], state)
        outs.append(out)
    out = torch.cat(outs, dim=1)
    upstream = [torch.from_numpy(a) for a in (dout, *dstate)]
    torch.autograd.backward((out, *state), upstream)
    arrays = tuple(t.detach().numpy() for t in (out, *state, x.grad, h0.grad, c0.grad))
    return arrays, {k: p.grad.numpy() for k, p in model.named_parameters()}


# ---- the module classes: init, state_dict, dtype -------------------------------------------------


def test_numpy_lstm_init_and_state_dict_match_torch_layout():
    I, H, L = 3, 8, 2
    model = numpy_impl.LSTM(I, H, L, seed=0)
    ref = torch.nn.LSTM(I, H, L, batch_first=True)
    assert (
        list(model.params) == list(ref.state_dict()) == list(torch_impl.LSTM(I, H, L).state_dict())
    )
    for k, v in ref.state_dict().items():
        assert model.params[k].shape == tuple(v.shape) and model.params[k].dtype == np.float32
    bound = 1 / math.sqrt(H)
    for a in model.params.values():  # U(-1/√H, 1/√H), actually drawn
        assert np.abs(a).max() <= bound and a.std() > bound / 4
    assert all(
        np.array_equal(a, b)
        for a, b in zip(model.params.values(), numpy_impl.LSTM(I, H, L, seed=0).params.values())
    )
    assert not np.array_equal(
        model.params["weight_ih_l0"], numpy_impl.LSTM(I, H, L, seed=1).params["weight_ih_l0"]
    )
    # float64 init is the same draw before rounding.
    model64 = numpy_impl.LSTM(I, H, L, seed=0, dtype=np.float64)
    assert all(
        np.array_equal(a.astype(np.float32), b)
        for a, b in zip(model64.params.values(), model.params.values())
    )
    # Our params load into torch.nn.LSTM and torch_impl.LSTM; theirs into ours.
    ref.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    ours_t = torch_impl.LSTM(I, H, L)
    ours_t.load_state_dict(ref.state_dict())
    ref.load_state_dict(ours_t.state_dict())
    model.load_state_dict(torch.nn.LSTM(I, H, L).double().state_dict())
    assert model.dtype == np.float64  # follows the loaded params


def test_numpy_lstm_float32_forward_backward_stay_float32():
    model = numpy_impl.LSTM(3, 4, 2, seed=0)
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    out, (h_n, c_n) = model.forward(x)
    dx, (dh0, dc0), grads = model.backward(np.ones_like(out), (h_n, c_n))
    arrays = (out, h_n, c_n, dx, dh0, dc0, *grads.values())
    assert all(a.dtype == np.float32 for a in arrays)
    assert list(grads) == list(model.params)
    assert grads["bias_ih_l0"] is not grads["bias_hh_l0"]


def test_torch_impl_lstm_time_major_layout_matches_torch(record_error):
    torch.manual_seed(0)
    ref = torch.nn.LSTM(3, 4, 2, batch_first=False, dtype=torch.float64)
    ours = torch_impl.LSTM(3, 4, 2, batch_first=False).double()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(6, 2, 3, dtype=torch.float64)  # (T, B, I)
    for a, b in zip((ours(x)[0], *ours(x)[1]), (ref(x)[0], *ref(x)[1]), strict=True):
        record_error(
            "lstm layer", "torch_impl time-major", rel_error(a.detach(), b.detach()), TOL_FLOAT64
        )


# ---- bad input -----------------------------------------------------------------------------------


def _forward_both(x, state=None, **kwargs):
    """The same call on a NumPy LSTM(input_size=3, hidden_size=4, num_layers=2), the functional
    torch_impl.lstm with such a layer's params, and (unless a rate comes without masks, when the
    module draws its own: test_module_draws_the_masks_torch_nn_lstm_draws) the torch_impl.LSTM
    module."""
    torch_state = None if state is None else tuple(torch.from_numpy(s) for s in state)
    torch_kwargs = {
        k: [torch.from_numpy(m) for m in v] if k == "dropout_masks" and v is not None else v
        for k, v in kwargs.items()
    }
    module = torch_impl.LSTM(3, 4, 2).double()
    params = dict(module.named_parameters())
    calls = [
        lambda: numpy_impl.LSTM(3, 4, 2, dtype=np.float64).forward(x, state, **kwargs),
        lambda: torch_impl.lstm(torch.from_numpy(x), params, torch_state, **torch_kwargs),
    ]
    if "dropout_masks" in kwargs or kwargs.get("p", 0.0) == 0:
        calls.append(lambda: module(torch.from_numpy(x), torch_state, **torch_kwargs))
    return calls


_X = np.zeros((2, 5, 3))
_S = np.zeros((2, 2, 4))


FORWARD_BAD_INPUT = {
    "h0 layers": (
        _X,
        (np.zeros((1, 2, 4)), _S),
        {},
        ValueError,
        r"h0 must have shape \(2, 2, 4\), got \(1, 2, 4\)",
    ),
    "c0 batch": (
        _X,
        (_S, np.zeros((2, 3, 4))),
        {},
        ValueError,
        r"c0 must have shape \(2, 2, 4\), got \(2, 3, 4\)",
    ),
    "c0 hidden": (
        _X,
        (_S, np.zeros((2, 2, 5))),
        {},
        ValueError,
        r"c0 must have shape \(2, 2, 4\), got \(2, 2, 5\)",
    ),
    "input size": (
        np.zeros((2, 5, 7)),
        None,
        {},
        ValueError,
        r"x must have last dimension 3 \(input_size\), got shape \(2, 5, 7\)",
    ),
    "T = 0": (
        np.zeros((2, 0, 3)),
        None,
        {},
        ValueError,
        r"at least one step, got shape \(2, 0, 3\)",
    ),
    "2-d x": (
        np.zeros((5, 3)),
        None,
        {},
        ValueError,
        r"x must have 3 dimensions, got shape \(5, 3\)",
    ),
    "float32 x": (
        _X.astype(np.float32),
        None,
        {},
        TypeError,
        "x must have the parameters' dtype",
    ),
    "int x": (_X.astype(np.int64), None, {}, TypeError, "x must be a floating-point array"),
    "p without masks": (_X, None, {"p": 0.5}, ValueError, r"p = 0.5 needs dropout_masks"),
    "p = 1": (
        _X,
        None,
        {"p": 1.0, "dropout_masks": [np.ones((2, 5, 4))]},
        ValueError,
        r"p must be in \[0, 1\), got 1.0",
    ),
    "mask count": (
        _X,
        None,
        {"p": 0.5, "dropout_masks": []},
        ValueError,
        "dropout_masks must hold 1 masks",
    ),
    "mask shape": (
        _X,
        None,
        {"p": 0.5, "dropout_masks": [np.ones((2, 4, 4))]},
        ValueError,
        r"dropout_masks\[0\] must have shape \(2, 5, 4\)",
    ),
}


@pytest.mark.parametrize(
    "x, state, kwargs, error, match", FORWARD_BAD_INPUT.values(), ids=FORWARD_BAD_INPUT.keys()
)
def test_forward_bad_input(x, state, kwargs, error, match):
    for call in _forward_both(x, state, **kwargs):
        with pytest.raises(error, match=match):
            call()


def test_numpy_load_state_dict_bad_keys_and_shapes():
    model = numpy_impl.LSTM(3, 4, 2)
    good = model.state_dict()
    missing = {k: v for k, v in good.items() if k != "bias_hh_l1"}
    with pytest.raises(ValueError, match=r"state_dict must have keys .*missing \['bias_hh_l1'\]"):
        model.load_state_dict(missing)
    with pytest.raises(ValueError, match=r"unexpected \['weight_ih_l2'\]"):
        model.load_state_dict({**good, "weight_ih_l2": good["weight_ih_l1"]})
    with pytest.raises(ValueError, match=r"weight_ih_l0 must have shape \(16, 3\), got \(16, 4\)"):
        model.load_state_dict({**good, "weight_ih_l0": np.zeros((16, 4), np.float32)})
    with pytest.raises(ValueError, match=r"weight_hh_l1 must have shape \(16, 4\), got \(12, 3\)"):
        model.load_state_dict({**good, "weight_hh_l1": np.zeros((12, 3), np.float32)})
    with pytest.raises(ValueError, match=r"bias_ih_l1 must have shape \(16\), got \(4,\)"):
        model.load_state_dict({**good, "bias_ih_l1": np.zeros(4, np.float32)})
    with pytest.raises(TypeError, match="bias_hh_l0 must be a floating-point array"):
        model.load_state_dict({**good, "bias_hh_l0": np.zeros(16, np.int64)})
    with pytest.raises(TypeError, match="state_dict values must share one dtype"):
        model.load_state_dict({**good, "bias_hh_l0": np.zeros(16)})
    with pytest.raises(TypeError, match="state_dict values must share one dtype"):
        model.load_state_dict(
            {**good, **{k: v.astype(np.float64) for k, v in good.items() if k.endswith("l1")}}
        )
    assert all(model.params[k] is good[k] for k in good)  # a failed load leaves the model as it was


def test_torch_impl_load_state_dict_bad_keys_and_shapes():
    model = torch_impl.LSTM(3, 4, 2)
    good = model.state_dict()
    with pytest.raises(RuntimeError, match='Missing key.*"bias_hh_l1"'):
        model.load_state_dict({k: v for k, v in good.items() if k != "bias_hh_l1"})
    with pytest.raises(RuntimeError, match="size mismatch for weight_ih_l0"):
        model.load_state_dict({**good, "weight_ih_l0": torch.zeros(16, 4)})


def test_backward_needs_forward_and_checks_shapes():
    model = numpy_impl.LSTM(3, 4, 2)
    with pytest.raises(RuntimeError, match="needs a forward call first"):
        model.backward(np.zeros((2, 5, 4), np.float32))
    out, _ = model.forward(np.zeros((2, 5, 3), np.float32))
    with pytest.raises(ValueError, match=r"dout must have shape \(2, 5, 4\)"):
        model.backward(np.zeros((2, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"dc_n must have shape \(2, 2, 4\)"):
        model.backward(out, (np.zeros((2, 2, 4), np.float32), np.zeros((2, 4), np.float32)))


@pytest.mark.parametrize("cls", [numpy_impl.LSTM, torch_impl.LSTM])
@pytest.mark.parametrize(
    "bad, error, match",
    [
        ({"hidden_size": 0}, ValueError, "hidden_size must be >= 1, got 0"),
        ({"num_layers": 0}, ValueError, "num_layers must be >= 1, got 0"),
        ({"input_size": 2.5}, TypeError, "input_size must be an integer, got float 2.5"),
    ],
)
def test_constructor_bad_sizes(cls, bad, error, match):
    with pytest.raises(error, match=match):
        cls(**{"input_size": 3, "hidden_size": 4, "num_layers": 1, **bad})
