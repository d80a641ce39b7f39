"""The layer tests the vanilla RNN (test_rnn.py) and the GRU (test_gru.py) share: NumPy
(hand-written BPTT) vs torch_impl vs torch.nn.RNN / GRU, beyond the registered two-layer cases the
op sweep runs (twinlm/parity/recurrent_cases.py): one to three layers with sizes 1 included,
dropout between layers, the adjoint identity on longer sequences, chunked BPTT == whole-sequence
BPTT, the classes' layout, init and dtype, torch's time-major layout, and bad input.

A test file runs them for its layers by subclassing RecurrentLayerTests under a parametrize mark
on `kind` ("rnn_tanh", "rnn_relu" or "gru"). pytest collects only classes named Test…, and this
file is not a test file, so the tests run once per subclass and kind.
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
    adjoint_error,
    compare_float64,
    grads_error,
    random_douts,
    rel_error,
    run_numpy,
)
from twinlm.parity.recurrent_cases import gru_case, rnn_case
from twinlm.shared.naming import gru_param_shapes, rnn_param_shapes

TOL_FD = 1e-7  # as in test_parity_ops.py: central differences, eps 1e-6, float64
SMALL_LAYERS = (  # for @given(*SMALL_LAYERS): sizes 1 included, with and without dropout
    st.integers(1, 3),  # batch
    st.integers(1, 5),  # seq
    st.integers(1, 4),  # d_in
    st.integers(1, 4),  # hidden
    st.integers(1, 3),  # num_layers
    st.sampled_from([0.0, 0.4]),  # p, dropout between layers
    st.integers(0, 2**32 - 1),  # seed of the inputs
)


def case_of(kind: str, num_layers: int, p: float = 0.0):
    if kind == "gru":
        return gru_case(num_layers, p)
    return rnn_case(kind.removeprefix("rnn_"), num_layers, p)


def layer_inputs(case, seed: int, **dims):
    rng = np.random.default_rng(seed)
    arrays = case.sample(rng, np.float64, {**case.dims, **dims})
    douts = random_douts(rng, run_numpy(case, arrays)[0])  # on out AND on h_n
    return arrays, douts, rng


def numpy_layer(kind: str, I: int, H: int, L: int, dtype=np.float64, seed: int = 0):
    if kind == "gru":
        return numpy_impl.GRU(I, H, L, seed=seed, dtype=dtype)
    return numpy_impl.RNN(I, H, L, kind.removeprefix("rnn_"), seed=seed, dtype=dtype)


def torch_layers(kind: str, I: int, H: int, L: int, batch_first: bool = True):
    """(torch_impl module, torch.nn module) of the same kind."""
    if kind == "gru":
        return torch_impl.GRU(I, H, L, batch_first), torch.nn.GRU(I, H, L, batch_first=batch_first)
    nl = kind.removeprefix("rnn_")
    return (
        torch_impl.RNN(I, H, L, nl, batch_first),
        torch.nn.RNN(I, H, L, nonlinearity=nl, batch_first=batch_first),
    )


def forward_calls(kind: str, x, h0=None, **kwargs):
    """The same call on the NumPy class (I=3, H=4, L=2, float64), the functional torch_impl op with
    such a layer's params, and (unless a rate comes without masks, when the module draws its own)
    the torch_impl module."""
    module = torch_layers(kind, 3, 4, 2)[0].double()
    params = dict(module.named_parameters())
    fn = torch_impl.gru if kind == "gru" else torch_impl.rnn
    th0 = h0 if h0 is None else torch.from_numpy(h0) if isinstance(h0, np.ndarray) else (h0,)
    tkw = {k: [torch.from_numpy(m) for m in v] if k == "dropout_masks" else v
           for k, v in kwargs.items()}  # fmt: skip
    calls = [
        lambda: numpy_layer(kind, 3, 4, 2).forward(x, h0, **kwargs),
        lambda: fn(torch.from_numpy(x), params, th0, **tkw),
    ]
    if "dropout_masks" in kwargs or kwargs.get("p", 0.0) == 0:
        calls.append(lambda: module(torch.from_numpy(x), th0, **tkw))
    return calls


_X = np.zeros((2, 5, 3))
BAD = {
    "h0 layers": (_X, np.zeros((1, 2, 4)), {}, ValueError, r"h0 must have shape \(2, 2, 4\)"),
    "h0 as a tuple": (_X, (np.zeros((2, 2, 4)),), {}, TypeError, "h0 must be a floating-point"),
    "input size": (np.zeros((2, 5, 7)), None, {}, ValueError, r"last dimension 3 \(input_size\)"),
    "T = 0": (np.zeros((2, 0, 3)), None, {}, ValueError, "at least one step"),
    "float32 x": (_X.astype(np.float32), None, {}, TypeError, "x must have the parameters' dtype"),
    "p without masks": (_X, None, {"p": 0.5}, ValueError, r"p = 0.5 needs dropout_masks"),
    "mask shape": (
        _X,
        None,
        {"p": 0.5, "dropout_masks": [np.ones((2, 4, 4))]},
        ValueError,
        r"dropout_masks\[0\] must have shape \(2, 5, 4\)",
    ),
}


class RecurrentLayerTests:
    """The tests, each given `kind` by the subclass's parametrize mark."""

    @given(*SMALL_LAYERS)
    def test_hypothesis_small_shapes_three_way(self, kind, B, S, I, H, L, p, seed):
        """float64, outputs and every gradient, sizes 1 included, with and without dropout."""
        case = case_of(kind, L, p)
        arrays, douts, _ = layer_inputs(case, seed, batch=B, seq=S, d_in=I, hidden=H)
        errors = compare_float64(case, arrays, douts)
        assert errors.forward <= TOL_FLOAT64 and errors.grad <= TOL_FLOAT64, errors

    @pytest.mark.parametrize("num_layers, p", [(1, 0.0), (3, 0.3)])
    def test_adjoint_through_time(self, kind, num_layers, p, record_error):
        """⟨J·t, c⟩ by central differences along random t (x, h0, every parameter) = ⟨t, Jᵀc⟩,
        over 12 steps: the backward carries the gradient through time and between layers."""
        case = case_of(kind, num_layers, p)
        for seed in range(2):
            arrays, _, rng = layer_inputs(case, seed, batch=3, seq=12, d_in=4, hidden=5)
            record_error(f"{kind} layer", "fd adjoint", adjoint_error(case, arrays, rng), TOL_FD)

    def test_upstream_state_gradient_and_masks_matter(self, kind):
        """Not vacuous: dropping dh_n changes dx and dh0 by O(1); the masks change the output."""
        case = case_of(kind, 2, 0.3)
        arrays, (dout, dh_n), _ = layer_inputs(case, seed=11)
        with_state = run_numpy(case, arrays, (dout, dh_n))[1]
        without = run_numpy(case, arrays, (dout, 0 * dh_n))[1]
        assert rel_error(without["x"], with_state["x"]) > 1e-2
        assert rel_error(without["h0"], with_state["h0"]) > 1e-2
        plain = {k: v for k, v in arrays.items() if not k.startswith("mask")}
        out_plain = run_numpy(case_of(kind, 2), plain)[0][0]
        assert rel_error(out_plain, run_numpy(case, arrays)[0][0]) > 1e-2

    def test_chunked_bptt_equals_whole_sequence(self, kind, record_error):
        """Steps in chunks, h carried forward and dh0 of a later chunk handed back as dh_n of the
        earlier one, == one call over all T (truncated BPTT's bookkeeping); the chunks' parameter
        gradients add up to the whole sequence's."""
        L, B, S, I, H = 2, 3, 7, 4, 5
        layer = numpy_layer(kind, I, H, L)
        rng = np.random.default_rng(3)
        x, h0 = rng.standard_normal((B, S, I)), rng.standard_normal((L, B, H))
        dout, dh_n = rng.standard_normal((B, S, H)), rng.standard_normal((L, B, H))

        def run(chunk: int):
            caches, outs, h = [], [], h0
            for start in range(0, S, chunk):
                out, h = layer.forward(x[:, start : start + chunk], h)
                caches.append(layer._cache)
                outs.append(out)
            dxs, dh, grads = [], dh_n, {k: 0.0 for k in layer.params}
            for i in reversed(range(len(caches))):
                layer._cache = caches[i]
                dx, dh, g = layer.backward(dout[:, i * chunk : (i + 1) * chunk], dh)
                dxs.insert(0, dx)
                grads = {k: grads[k] + g[k] for k in grads}
            return (np.concatenate(outs, axis=1), h, np.concatenate(dxs, axis=1), dh), grads

        (whole, g_whole), (steps, g_steps) = run(S), run(3)
        for name, a, b in zip(("out", "h_n", "dx", "dh0"), steps, whole, strict=True):
            record_error(f"{kind} chunked", name, rel_error(a, b), TOL_FLOAT64)
        record_error(f"{kind} chunked", "dparams", grads_error(g_steps, g_whole), TOL_FLOAT64)

    # ---- the classes: layout, init, dtype --------------------------------------------------------

    def test_numpy_class_init_and_state_dict_match_torch_layout(self, kind):
        I, H, L = 3, 8, 2
        model = numpy_layer(kind, I, H, L, np.float32)
        ours_t, ref = torch_layers(kind, I, H, L)
        shapes = (gru_param_shapes if kind == "gru" else rnn_param_shapes)(I, H, L)
        keys = list(shapes)
        assert list(model.params) == list(ref.state_dict()) == list(ours_t.state_dict()) == keys
        for k, v in ref.state_dict().items():
            assert model.params[k].shape == tuple(v.shape) == shapes[k]
            assert model.params[k].dtype == np.float32
        bound = 1 / math.sqrt(H)
        for a in model.params.values():  # U(-1/√H, 1/√H), actually drawn
            assert np.abs(a).max() <= bound and a.std() > bound / 4
        for b in ours_t.state_dict().values():  # torch_impl's own init draws the same distribution
            assert float(b.abs().max()) <= bound and float(b.std()) > bound / 4
        again, other = numpy_layer(kind, I, H, L, np.float32), numpy_layer(kind, I, H, L, seed=1)
        assert all(np.array_equal(model.params[k], again.params[k]) for k in shapes)
        assert not np.array_equal(model.params["weight_hh_l1"], other.params["weight_hh_l1"])
        model64 = numpy_layer(kind, I, H, L)  # float64 init is the same draw before rounding
        assert all(
            np.array_equal(model64.params[k].astype(np.float32), model.params[k]) for k in shapes
        )
        # Ours load into torch.nn and torch_impl; theirs into ours, taking their dtype.
        ref.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
        ours_t.load_state_dict(ref.state_dict())
        ref.load_state_dict(ours_t.state_dict())
        model.load_state_dict(ref.double().state_dict())
        assert model.dtype == np.float64

    def test_numpy_float32_stays_float32(self, kind):
        model = numpy_layer(kind, 3, 4, 2, np.float32)
        x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
        out, h_n = model.forward(x)
        dx, dh0, grads = model.backward(np.ones_like(out), h_n)
        assert all(a.dtype == np.float32 for a in (out, h_n, dx, dh0, *grads.values()))
        assert list(grads) == list(model.params)
        assert grads["bias_ih_l0"] is not grads["bias_hh_l0"]

    def test_torch_impl_time_major_layout_and_cells_match_torch(self, kind, record_error):
        torch.manual_seed(0)
        ours, ref = (m.double() for m in torch_layers(kind, 3, 4, 2, batch_first=False))
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(6, 2, 3, dtype=torch.float64)  # (T, B, I)
        h0 = torch.randn(2, 2, 4, dtype=torch.float64)
        for a, b in zip(ours(x, h0), ref(x, h0), strict=True):
            err = rel_error(a.detach().numpy(), b.detach().numpy())
            record_error(f"{kind} layer", "torch_impl time-major", err, TOL_FLOAT64)
        if kind == "gru":
            cell, ref_cell = torch_impl.GRUCell(3, 4), torch.nn.GRUCell(3, 4)
        else:
            nl = kind.removeprefix("rnn_")
            cell, ref_cell = torch_impl.RNNCell(3, 4, nl), torch.nn.RNNCell(3, 4, nonlinearity=nl)
        cell.load_state_dict(ref_cell.state_dict())
        ref_cell.load_state_dict(cell.state_dict())
        x1 = torch.randn(2, 3)  # float32
        assert rel_error(cell(x1).detach().numpy(), ref_cell(x1).detach().numpy()) <= 1e-6

    # ---- bad input -------------------------------------------------------------------------------

    @pytest.mark.parametrize("x, h0, kwargs, error, match", BAD.values(), ids=BAD.keys())
    def test_forward_bad_input(self, kind, x, h0, kwargs, error, match):
        for call in forward_calls(kind, x, h0, **kwargs):
            with pytest.raises(error, match=match):
                call()

    def test_backward_needs_forward_and_checks_shapes(self, kind):
        layer = numpy_layer(kind, 3, 4, 2, np.float32)
        x = np.zeros((2, 5, 3), np.float32)
        with pytest.raises(RuntimeError, match="needs a forward call first"):
            layer.backward(np.zeros((2, 5, 4), np.float32))
        out, _ = layer.forward(x)
        with pytest.raises(ValueError, match=r"dout must have shape \(2, 5, 4\)"):
            layer.backward(out[:, 1:])
        with pytest.raises(ValueError, match=r"dh_n must have shape \(2, 2, 4\)"):
            layer.backward(out, np.zeros((2, 4), np.float32))
        with pytest.raises(ValueError, match=r"unexpected \['weight_ih_l2'\]"):
            layer.load_state_dict({**layer.params, "weight_ih_l2": layer.params["weight_ih_l1"]})
