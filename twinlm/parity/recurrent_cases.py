"""The vanilla RNN and GRU in the op registry: cells and two-layer layers over time, each against
torch's own module (torch.nn.RNNCell / GRUCell / RNN / GRU) as the independent third
implementation. opcases.CASES includes RECURRENT_CASES.

A layer is an op of (x, h0, params…, masks…) -> (out, h_n), so the harness puts random upstream
gradients on the output at every step AND on the final state, and its finite-difference Jacobian
runs through time (and through both layers). With dropout the reference is one single-layer torch
module per layer with the same keep-mask applied between them (torch draws its own masks inside
a multi-layer module). Cho's GRU (reset_after=False) has no torch built-in, so it is checked in
parity_tests/models/test_gru.py instead (finite differences, torch_impl, a hand-worked example).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.func import functional_call

import torch_impl
from twinlm.parity.edges import saturate_gates
from twinlm.parity.harness import Edge, OpCase, numpy_op, pair
from twinlm.shared.naming import recurrent_param_shapes

CELL_ARGS = ("x", "h", "weight_ih", "weight_hh", "bias_ih", "bias_hh")
LAYERS = 2  # the registered layers stack two, so inter-layer dropout and dh between layers act


def _normal(rng: np.random.Generator, dtype, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (scale * rng.standard_normal(shape)).astype(dtype)


def _cell_sample(gates: int):
    def sample(rng, dtype, d):
        B, I, H = d["batch"], d["d_in"], d["hidden"]
        return {
            "x": _normal(rng, dtype, B, I),
            "h": _normal(rng, dtype, B, H, scale=0.5),
            "weight_ih": _normal(rng, dtype, gates * H, I, scale=I**-0.5),
            "weight_hh": _normal(rng, dtype, gates * H, H, scale=H**-0.5),
            # Independent non-zero biases: copying one into both would double it and be caught.
            "bias_ih": _normal(rng, dtype, gates * H, scale=0.5),
            "bias_hh": _normal(rng, dtype, gates * H, scale=0.5),
        }

    return sample


def _builtin_cell(make):
    """A torch built-in cell run with our tensors as its parameters, so gradients reach them."""

    def ref(t):
        cell = make(t["x"].shape[-1], t["h"].shape[-1]).to(t["x"].dtype)
        params = {k: t[k] for k in CELL_ARGS[2:]}
        return (functional_call(cell, params, (t["x"], t["h"])),)

    return ref


def _rnn_cell_case(nonlinearity: str) -> OpCase:
    return OpCase(
        f"rnn_cell[{nonlinearity}]",
        _cell_sample(1),
        **numpy_op("rnn_cell", pair(CELL_ARGS, CELL_ARGS, nonlinearity=nonlinearity)),
        torch_impl=lambda t: (torch_impl.rnn_cell(*(t[k] for k in CELL_ARGS), nonlinearity),),
        torch_ref=_builtin_cell(lambda i, h: torch.nn.RNNCell(i, h, nonlinearity=nonlinearity)),
        grad_inputs=CELL_ARGS,
        dims={"batch": 4, "d_in": 16, "hidden": 12},
        fd_dims={"batch": 2, "d_in": 3, "hidden": 2},
        edges=(Edge("saturated", adjust=saturate_gates),),
    )


GRU_CELL = OpCase(
    "gru_cell",
    _cell_sample(3),
    **numpy_op("gru_cell", pair(CELL_ARGS, CELL_ARGS)),
    torch_impl=lambda t: (torch_impl.gru_cell(*(t[k] for k in CELL_ARGS)),),
    torch_ref=_builtin_cell(torch.nn.GRUCell),
    grad_inputs=CELL_ARGS,
    dims={"batch": 4, "d_in": 16, "hidden": 12},
    fd_dims={"batch": 2, "d_in": 3, "hidden": 2},
    edges=(Edge("saturated gates", adjust=saturate_gates),),
)


# ---- two-layer layers over time ------------------------------------------------------------------


def layer_case(
    name: str,
    gates: int,
    op: str,
    torch_fn,
    builtin,
    num_layers: int = LAYERS,
    p: float = 0.0,
    **options,
) -> OpCase:
    """A layer over time as an op of (x, h0, params…, mask0…) -> (out, h_n). op: the NumPy pair's
    name ("rnn": rnn_forward, rnn_backward); torch_fn: torch_impl's twin; builtin(I, H, L):
    torch's module, or None (no built-in: torch_ref is None, and only the harness's two-way and
    finite-difference checks apply). options go to all three (nonlinearity, reset_after)."""
    L = num_layers
    params = tuple(recurrent_param_shapes(gates, 1, 1, L))

    def sample(rng, dtype, d):
        B, S, I, H = d["batch"], d["seq"], d["d_in"], d["hidden"]
        arrays = {"x": _normal(rng, dtype, B, S, I), "h0": _normal(rng, dtype, L, B, H, scale=0.5)}
        for key, shape in recurrent_param_shapes(gates, I, H, L).items():
            scale = shape[1] ** -0.5 if len(shape) == 2 else 0.5  # biases independent, non-zero
            arrays[key] = _normal(rng, dtype, *shape, scale=scale)
        if p > 0:
            for k in range(L - 1):
                keep = rng.random((B, S, H)) >= p
                keep.flat[0] = False  # at least one dropped, so the mask always acts
                arrays[f"mask{k}"] = keep
        return arrays

    def masks(a):
        return [a[f"mask{k}"] for k in range(L - 1)] if p > 0 else None

    def bind(forward, backward):
        def np_forward(a):
            out, h_n, cache = forward(a["x"], {k: a[k] for k in params}, a["h0"], masks(a), p,
                                      **options)  # fmt: skip
            return (out, h_n), cache

        def np_backward(douts, cache):
            dx, dh0, grads = backward(*douts, cache)
            return {"x": dx, "h0": dh0, **grads}

        return np_forward, np_backward

    def torch_impl_forward(t):
        return torch_fn(t["x"], {k: t[k] for k in params}, t["h0"], masks(t), p, **options)

    def reference(t):
        """torch's module over all layers, or one per layer with the masks between them."""
        x, h0 = t["x"], t["h0"]
        if p == 0:
            module = builtin(x.shape[-1], h0.shape[-1], L).to(x.dtype)
            return functional_call(module, {k: t[k] for k in params}, (x, h0))
        layer_in, h_n = x, []
        for k in range(L):
            module = builtin(layer_in.shape[-1], h0.shape[-1], 1).to(x.dtype)
            layer = {f"{w}_l0": t[f"{w}_l{k}"] for w in ("weight_ih", "weight_hh", "bias_ih",
                                                          "bias_hh")}  # fmt: skip
            out, h_k = functional_call(module, layer, (layer_in, h0[k : k + 1]))
            h_n.append(h_k)
            layer_in = out if k == L - 1 else out * t[f"mask{k}"].to(out.dtype) / (1 - p)
        return layer_in, torch.cat(h_n)

    return OpCase(
        name,
        sample,
        **numpy_op(op, bind),
        torch_impl=torch_impl_forward,
        torch_ref=reference if builtin is not None else None,
        grad_inputs=("x", "h0", *params),
        dims={"batch": 3, "seq": 6, "d_in": 5, "hidden": 4},
        fd_dims={"batch": 1, "seq": 3, "d_in": 2, "hidden": 2},
        # H, I ≥ 2. With 1×1 weights each weight gradient is one sum of B·T products, often small
        # by cancellation: its float32 error is rounding against rounding (torch_impl fails
        # "≤ 2 × torch" there as often as NumPy). Sizes 1 are checked in float64 in
        # parity_tests/models/recurrent_layers.py.
        min_dims={"d_in": 2, "hidden": 2},
        edges=(Edge("T = 1", {"seq": 1}),),
    )


def rnn_case(nonlinearity: str, num_layers: int = LAYERS, p: float = 0.0) -> OpCase:
    def builtin(i, h, layers):
        return torch.nn.RNN(i, h, layers, nonlinearity=nonlinearity, batch_first=True)

    drop = f", p={p}" if p else ""
    return layer_case(
        f"rnn[{nonlinearity}, L={num_layers}{drop}]",
        1,
        "rnn",
        torch_impl.rnn,
        builtin,
        num_layers,
        p,
        nonlinearity=nonlinearity,
    )


def gru_case(num_layers: int = LAYERS, p: float = 0.0, reset_after: bool = True) -> OpCase:
    def builtin(i, h, layers):
        return torch.nn.GRU(i, h, layers, batch_first=True)

    drop = f", p={p}" if p else ""
    convention = "" if reset_after else ", reset_before"
    return layer_case(
        f"gru[L={num_layers}{drop}{convention}]",
        3,
        "gru",
        torch_impl.gru,
        builtin if reset_after else None,
        num_layers,
        p,
        reset_after=reset_after,
    )


RECURRENT_CASES: list[OpCase] = [
    _rnn_cell_case("tanh"),
    _rnn_cell_case("relu"),
    GRU_CELL,
    rnn_case("tanh"),
    rnn_case("relu"),
    rnn_case("tanh", p=0.3),
    gru_case(),
    gru_case(p=0.3),
]
