"""The op pairs above the ops, three ways: numpy_impl's `<name>_forward`/`<name>_backward` vs
torch_impl's `<name>` (autograd) vs the same computation from torch built-ins, with dropout masks
(every subset of the named places) and random upstream gradients on every output.

    transformer_block   reference: F.layer_norm, F.linear, F.scaled_dot_product_attention (or,
                        with an attention mask, torch.softmax ⊙ mask / (1 - p)), F.gelu
    gpt_body            reference: F.embedding and the block reference; every first_trainable
    lstm                reference: torch.nn.LSTM (one single-layer nn.LSTM per layer when masks
                        go between the layers), masks given per layer or None
    charrnn             reference: F.embedding, the lstm reference, F.linear
Each is an OpCase, so the harness of the single ops measures it (twinlm/parity/harness.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch.func import functional_call

import numpy_impl
import torch_impl
from twinlm.parity.harness import (
    TOL_FLOAT64,
    OpCase,
    adjoint_error,
    compare_float32,
    compare_float64,
    grads_error,
    outs_error,
    random_douts,
    run_numpy,
    run_torch,
)
from twinlm.shared.naming import (
    BLOCK_DROPOUT_NAMES,
    QKV_PROJECTIONS,
    charrnn_dropout_mask_shapes,
    charrnn_param_shapes,
    gpt_dropout_mask_shapes,
    gpt_param_shapes,
    lstm_param_shapes,
    sub_dict,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py
TOL_FD = 1e-7  # central differences along random directions, eps 1e-6, float64
P = 0.3  # dropout rate wherever a mask is given


def _masks(a: dict) -> dict:
    """The masks among an OpCase's arrays, stored as "mask:<name>", by name."""
    return {k.removeprefix("mask:"): m for k, m in a.items() if k.startswith("mask:")}


def _params(a: dict) -> dict:
    return {
        k: v
        for k, v in a.items()
        if k not in ("x", "idx", "h0", "c0", "num_heads") and not k.startswith("mask:")
    }


def _drop(x, mask):
    """Inverted dropout written out for the references: x ⊙ m / (1 - p), or x when no mask."""
    return x if mask is None else x * mask.to(x.dtype) / (1 - P)


def _record(record_error, op: str, errors) -> None:
    record_error(op, "float64 forward (3 ways)", errors.forward, TOL_FLOAT64)
    record_error(op, "float64 grads (3 ways)", errors.grad, TOL_FLOAT64)


# ---- transformer_block ------------------------------------------------------------------------------


def _block_params(rng, dtype, C: int, prefix: str = "") -> dict:
    """Every block parameter (qkv biases on) ~ 1/√fan_in, biases and LayerNorms non-trivial."""
    shapes = {f"att.{n}.weight": (C, C) for n in QKV_PROJECTIONS}
    shapes |= {f"att.{n}.bias": (C,) for n in QKV_PROJECTIONS}
    shapes |= {
        "att.out_proj.weight": (C, C),
        "att.out_proj.bias": (C,),
        "ff.layers.0.weight": (4 * C, C),
        "ff.layers.0.bias": (4 * C,),
        "ff.layers.2.weight": (C, 4 * C),
        "ff.layers.2.bias": (C,),
    }
    params = {}
    for k, s in shapes.items():
        scale = s[1] ** -0.5 if len(s) == 2 else 0.5
        params[prefix + k] = (scale * rng.standard_normal(s)).astype(dtype)
    for norm in ("norm1", "norm2"):
        params[f"{prefix}{norm}.scale"] = (1 + 0.3 * rng.standard_normal(C)).astype(dtype)
        params[f"{prefix}{norm}.shift"] = (0.3 * rng.standard_normal(C)).astype(dtype)
    return params


def _block_ref(x, p: dict, H: int, masks: dict):
    """The pre-LN block from torch built-ins (p: block-relative keys)."""
    B, T, C = x.shape
    n1 = F.layer_norm(x, (C,), p["norm1.scale"], p["norm1.shift"], eps=1e-5)
    q, k, v = (
        F.linear(n1, p[f"att.{n}.weight"], p[f"att.{n}.bias"]).view(B, T, H, -1).transpose(1, 2)
        for n in QKV_PROJECTIONS
    )
    if "att.dropout" in masks:  # SDPA draws its own masks, so the weights are written out
        causal = torch.ones(T, T, dtype=torch.bool).tril()
        scores = (q @ k.transpose(-2, -1) / math.sqrt(C // H)).masked_fill(~causal, -math.inf)
        ctx = _drop(torch.softmax(scores, dim=-1), masks["att.dropout"]) @ v
    else:
        ctx = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    a = F.linear(
        ctx.transpose(1, 2).reshape(B, T, C), p["att.out_proj.weight"], p["att.out_proj.bias"]
    )
    h = x + _drop(a, masks.get("drop_shortcut.att"))
    n2 = F.layer_norm(h, (C,), p["norm2.scale"], p["norm2.shift"], eps=1e-5)
    f = F.gelu(F.linear(n2, p["ff.layers.0.weight"], p["ff.layers.0.bias"]), approximate="tanh")
    f = F.linear(f, p["ff.layers.2.weight"], p["ff.layers.2.bias"])
    return h + _drop(f, masks.get("drop_shortcut.ff"))


def block_case(mask_names: tuple[str, ...]) -> OpCase:
    def sample(rng, dtype, d):
        B, T, H = d["batch"], d["seq"], d["heads"]
        C = H * d["head_dim"]
        a = {"x": rng.standard_normal((B, T, C)).astype(dtype), "num_heads": np.array(H)}
        a |= _block_params(rng, dtype, C)
        shapes = gpt_dropout_mask_shapes({"emb_dim": C, "n_heads": H, "n_layers": 1}, B, T)
        for name in mask_names:
            a[f"mask:{name}"] = rng.random(shapes[f"trf_blocks.0.{name}"]) >= P
        return a

    def np_forward(a):
        y, cache = numpy_impl.transformer_block_forward(
            a["x"], _params(a), int(a["num_heads"]), _masks(a), P
        )
        return (y,), cache

    def np_backward(douts, cache):
        dx, grads = numpy_impl.transformer_block_backward(*douts, cache)
        return {"x": dx, **grads}

    def torch_fn(t):
        return (
            torch_impl.transformer_block(t["x"], _params(t), int(t["num_heads"]), _masks(t), P),
        )

    keys = tuple(_block_params(np.random.default_rng(0), np.float64, 4))
    return OpCase(
        f"transformer_block{list(mask_names)}",
        sample,
        np_forward,
        np_backward,
        torch_impl=torch_fn,
        torch_ref=lambda t: (_block_ref(t["x"], _params(t), int(t["num_heads"]), _masks(t)),),
        grad_inputs=("x", *(k for k in keys)),
        dims={"batch": 2, "seq": 6, "heads": 2, "head_dim": 4},
        fd_dims={"batch": 1, "seq": 2, "heads": 2, "head_dim": 2},
    )


MASK_SUBSETS = [
    (),
    BLOCK_DROPOUT_NAMES,
    ("att.dropout",),
    ("drop_shortcut.att", "drop_shortcut.ff"),
]


def _inputs(case: OpCase, seed: int, **dims):
    rng = np.random.default_rng(seed)
    arrays = case.sample(rng, np.float64, {**case.dims, **dims})
    return arrays, random_douts(rng, run_numpy(case, arrays)[0]), rng


@pytest.mark.parametrize("names", MASK_SUBSETS, ids=lambda n: "+".join(n) or "no-masks")
@pytest.mark.parametrize("heads, head_dim", [(1, 4), (2, 3), (4, 2)])
def test_transformer_block_three_way_float64(names, heads, head_dim, record_error):
    case = block_case(names)
    arrays, douts, _ = _inputs(case, seed=heads, heads=heads, head_dim=head_dim, seq=7)
    _record(record_error, "transformer_block +masks", compare_float64(case, arrays, douts))


def test_transformer_block_masks_act_and_adjoint(record_error):
    case = block_case(BLOCK_DROPOUT_NAMES)
    arrays, _, rng = _inputs(case, seed=3)
    plain = {k: v for k, v in arrays.items() if not k.startswith("mask:")}
    assert outs_error(run_numpy(case, arrays)[0], run_numpy(block_case(()), plain)[0]) > 1e-2
    for seed in range(2):
        arrays, _, rng = _inputs(case, seed)
        err = adjoint_error(case, arrays, rng)
        record_error("transformer_block +masks", "fd adjoint", err, TOL_FD)


# ---- gpt_body ---------------------------------------------------------------------------------------


def _gpt_cfg(d: dict) -> dict:
    return {
        "vocab_size": d["vocab"],
        "context_length": d["seq"],
        "emb_dim": 2 * d["heads"],
        "n_heads": d["heads"],
        "n_layers": d["layers"],
        "drop_rate": P,
        "qkv_bias": True,
    }


def _cfg_of(a: dict) -> dict:
    V, C = a["tok_emb.weight"].shape
    L = len({k.split(".")[1] for k in a if k.startswith("trf_blocks.")})
    return {
        "vocab_size": int(V),
        "context_length": int(a["idx"].shape[1]),
        "emb_dim": int(C),
        "n_heads": int(a["num_heads"]),
        "n_layers": L,
        "drop_rate": P,
        "qkv_bias": True,
    }


def _gpt_body_ref(t: dict, cfg: dict):
    T = t["idx"].shape[1]
    masks = _masks(t)
    x = F.embedding(t["idx"], t["tok_emb.weight"]) + F.embedding(
        torch.arange(T), t["pos_emb.weight"]
    )
    x = _drop(x, masks.get("drop_emb"))
    for i in range(cfg["n_layers"]):
        prefix = f"trf_blocks.{i}."
        x = _block_ref(x, sub_dict(t, prefix), cfg["n_heads"], sub_dict(masks, prefix))
    return x


def _trainable(cfg: dict, first_trainable: int) -> list[str]:
    """Written out apart from the code under test: the blocks from first_trainable up, and the
    embeddings when it is 0."""
    blocks = tuple(f"trf_blocks.{i}." for i in range(first_trainable, cfg["n_layers"]))
    embeddings = ("tok_emb.", "pos_emb.") if first_trainable == 0 else ()
    return [k for k in gpt_param_shapes(cfg) if k.startswith(blocks + embeddings)]


def gpt_body_case(first_trainable: int, layers: int, mask_every: int) -> OpCase:
    """mask_every: 0 no masks, 1 all of them, k > 1 every k-th name (a subset)."""
    dims = {"batch": 2, "seq": 5, "vocab": 13, "heads": 2, "layers": layers}

    def sample(rng, dtype, d):
        cfg = _gpt_cfg(d)
        a = {"idx": rng.integers(0, d["vocab"], (d["batch"], d["seq"])), "num_heads": np.array(2)}
        for k, s in gpt_param_shapes(cfg).items():
            if k.startswith(("tok_emb", "pos_emb")):
                a[k] = rng.standard_normal(s).astype(dtype)
        for i in range(cfg["n_layers"]):
            a |= _block_params(rng, dtype, cfg["emb_dim"], f"trf_blocks.{i}.")
        names = list(gpt_dropout_mask_shapes(cfg, d["batch"], d["seq"]).items())
        for name, shape in names[:: max(mask_every, 1)] if mask_every else []:
            a[f"mask:{name}"] = rng.random(shape) >= P
        return a

    def np_forward(a):
        x, cache = numpy_impl.gpt_body_forward(
            a["idx"], _params(a), _cfg_of(a), _masks(a), first_trainable
        )
        return (x,), cache

    def np_backward(douts, cache):
        grads = numpy_impl.gpt_body_backward(*douts, cache)
        assert sorted(grads) == sorted(_trainable(cfg, first_trainable))  # no more, no fewer
        return grads

    def torch_fn(t):
        return (torch_impl.gpt_body(t["idx"], _params(t), _cfg_of(t), _masks(t), first_trainable),)

    cfg = _gpt_cfg(dims)
    return OpCase(
        f"gpt_body[first_trainable={first_trainable}]",
        sample,
        np_forward,
        np_backward,
        torch_impl=torch_fn,
        torch_ref=lambda t: (_gpt_body_ref(t, _cfg_of(t)),),
        grad_inputs=tuple(_trainable(cfg, first_trainable)),
        dims=dims,
        fd_dims=dims,
    )


@pytest.mark.parametrize("mask_every", [0, 1, 2], ids=["no-masks", "all-masks", "some-masks"])
@pytest.mark.parametrize("first_trainable", [0, 1, 2])
def test_gpt_body_three_way_float64(first_trainable, mask_every, record_error):
    """Gradients exactly for the blocks from first_trainable up (and the embeddings at 0): the
    NumPy backward returns those keys, torch builds no graph below them (torch.no_grad)."""
    case = gpt_body_case(first_trainable, layers=3, mask_every=mask_every)
    arrays, douts, _ = _inputs(case, seed=first_trainable + 10 * mask_every)
    _record(record_error, "gpt_body", compare_float64(case, arrays, douts))
    if first_trainable > 0:  # torch_impl: the frozen part has no graph at all
        tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
        for k in _params(tensors):  # every parameter asks for a gradient
            tensors[k].requires_grad_(True)
        x = case.torch_impl(tensors)[0]
        torch.autograd.backward(x, torch.from_numpy(douts[0]))
        got = {k for k, t in tensors.items() if t.grad is not None}
        assert got == set(case.grad_inputs)


def test_gpt_body_all_frozen():
    """first_trainable = n_layers (a classifier training only its head): no gradient at all."""
    case = gpt_body_case(3, layers=3, mask_every=1)
    arrays, douts, _ = _inputs(case, seed=0)
    (x,), cache = case.np_forward(arrays)
    assert cache == (None, {})  # nothing kept for a backward
    assert numpy_impl.gpt_body_backward(douts[0], cache) == {}
    tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
    for k in _params(tensors):
        tensors[k].requires_grad_(True)
    t_x = case.torch_impl(tensors)[0]
    assert not t_x.requires_grad  # no graph: every block ran under torch.no_grad()
    assert outs_error((x,), (t_x.numpy(),)) <= TOL_FLOAT64


def test_gpt_body_float32_and_adjoint(record_error, record_float32):
    case = gpt_body_case(0, layers=2, mask_every=2)
    arrays, douts, rng = _inputs(case, seed=5)
    record_float32("gpt_body", compare_float32(case, arrays, douts))
    record_error("gpt_body", "fd adjoint", adjoint_error(case, arrays, rng), TOL_FD)


# ---- lstm -------------------------------------------------------------------------------------------


def _lstm_ref(x, params: dict, state, masks: list | None):
    """torch.nn.LSTM: the multi-layer module without masks, else one single-layer module per layer
    with x·m/(1-p) between them (a None mask: nothing there)."""
    I, H = params["weight_ih_l0"].shape[1], params["weight_hh_l0"].shape[1]
    L = sum(k.startswith("weight_ih") for k in params)
    B = x.shape[0]
    h0, c0 = state if state is not None else (x.new_zeros(L, B, H), x.new_zeros(L, B, H))
    if masks is None:
        lstm = torch.nn.LSTM(I, H, L, batch_first=True).to(x.dtype)
        return functional_call(lstm, params, (x, (h0, c0)))
    layer_in, hs, cs = x, [], []
    for k in range(L):
        lstm = torch.nn.LSTM(layer_in.shape[-1], H, 1, batch_first=True).to(x.dtype)
        layer = {
            f"{w}_l0": params[f"{w}_l{k}"] for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        }
        out, (h_k, c_k) = functional_call(lstm, layer, (layer_in, (h0[k : k + 1], c0[k : k + 1])))
        hs.append(h_k)
        cs.append(c_k)
        layer_in = _drop(out, masks[k]) if k < L - 1 else out
    return layer_in, (torch.cat(hs), torch.cat(cs))


def lstm_case(num_layers: int, masks: str, with_state: bool) -> OpCase:
    """masks: "none" (None), "all" (L-1 masks), "some" (every other one None)."""
    L = num_layers

    def sample(rng, dtype, d):
        B, T, I, H = d["batch"], d["seq"], d["d_in"], d["hidden"]
        a = {"x": rng.standard_normal((B, T, I)).astype(dtype)}
        if with_state:
            a["h0"] = (0.5 * rng.standard_normal((L, B, H))).astype(dtype)
            a["c0"] = rng.standard_normal((L, B, H)).astype(dtype)
        for name, shape in lstm_param_shapes(I, H, L).items():
            scale = shape[1] ** -0.5 if len(shape) == 2 else 0.5
            a[name] = (scale * rng.standard_normal(shape)).astype(dtype)
        for k in range(L - 1):
            if masks == "all" or (masks == "some" and k % 2 == 0):
                a[f"mask:{k}"] = rng.random((B, T, H)) >= P
        return a

    def mask_list(a):
        return None if masks == "none" else [a.get(f"mask:{k}") for k in range(L - 1)]

    p = 0.0 if masks == "none" else P  # a rate without masks is refused

    def state(a):
        return (a["h0"], a["c0"]) if with_state else None

    def np_forward(a):
        out, (h_n, c_n), cache = numpy_impl.lstm_forward(
            a["x"], _params(a), state(a), mask_list(a), p
        )
        return (out, h_n, c_n), cache

    def np_backward(douts, cache):
        dout, dh_n, dc_n = douts
        dx, (dh0, dc0), grads = numpy_impl.lstm_backward(dout, (dh_n, dc_n), cache)
        return {"x": dx, "h0": dh0, "c0": dc0, **grads}

    def torch_fn(t):
        out, (h_n, c_n) = torch_impl.lstm(t["x"], _params(t), state(t), mask_list(t), p)
        return out, h_n, c_n

    def ref(t):
        out, (h_n, c_n) = _lstm_ref(t["x"], _params(t), state(t), mask_list(t))
        return out, h_n, c_n

    names = tuple(lstm_param_shapes(1, 1, L))
    return OpCase(
        f"lstm[L={L}, masks={masks}]",
        sample,
        np_forward,
        np_backward,
        torch_impl=torch_fn,
        torch_ref=ref,
        grad_inputs=("x", *(("h0", "c0") if with_state else ()), *names),
        dims={"batch": 3, "seq": 6, "d_in": 5, "hidden": 4},
        fd_dims={"batch": 1, "seq": 2, "d_in": 2, "hidden": 2},
    )


@pytest.mark.parametrize("with_state", [True, False], ids=["state", "zero-state"])
@pytest.mark.parametrize(
    "num_layers, masks", [(1, "none"), (2, "none"), (2, "all"), (3, "some"), (4, "all")]
)
def test_lstm_three_way_float64(num_layers, masks, with_state, record_error):
    case = lstm_case(num_layers, masks, with_state)
    arrays, douts, _ = _inputs(case, seed=num_layers, seq=7)
    _record(record_error, "lstm (functional)", compare_float64(case, arrays, douts))


@given(
    st.integers(1, 3),
    st.integers(1, 5),
    st.integers(1, 4),
    st.integers(1, 4),
    st.integers(1, 3),
    st.sampled_from(["none", "all", "some"]),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_lstm_hypothesis_small_shapes(B, T, I, H, L, masks, with_state, seed):
    case = lstm_case(L, masks, with_state)
    arrays, douts, _ = _inputs(case, seed, batch=B, seq=T, d_in=I, hidden=H)
    errors = compare_float64(case, arrays, douts)
    assert errors.forward <= TOL_FLOAT64 and errors.grad <= TOL_FLOAT64, errors


def test_lstm_adjoint_with_masks(record_error):
    case = lstm_case(3, "some", with_state=True)
    for seed in range(2):
        arrays, _, rng = _inputs(case, seed)
        record_error("lstm (functional)", "fd adjoint", adjoint_error(case, arrays, rng), TOL_FD)


# ---- charrnn ----------------------------------------------------------------------------------------


def charrnn_case(num_layers: int, mask_names: str) -> OpCase:
    """mask_names: "none", "all", "lstm" (only between layers) or "decoder" (only "dropout")."""
    L = num_layers

    def cfg_of(a):
        V, D = a["embedding.weight"].shape
        return {
            "vocab_size": int(V),
            "emb_dim": int(D),
            "hidden_size": int(a["h0"].shape[-1]),
            "num_layers": L,
            "drop_rate": P,
        }

    def sample(rng, dtype, d):
        B, T, H = d["batch"], d["seq"], d["hidden"]
        cfg = {
            "vocab_size": d["vocab"],
            "emb_dim": d["emb"],
            "hidden_size": H,
            "num_layers": L,
            "drop_rate": P,
        }
        a = {
            "x": rng.integers(0, d["vocab"], (B, T)),
            "h0": (0.5 * rng.standard_normal((L, B, H))).astype(dtype),
            "c0": rng.standard_normal((L, B, H)).astype(dtype),
        }
        for name, shape in charrnn_param_shapes(cfg).items():
            scale = shape[1] ** -0.5 if len(shape) == 2 and name != "embedding.weight" else 0.5
            a[name] = (scale * rng.standard_normal(shape)).astype(dtype)
        wanted = {
            "none": (),
            "all": ("lstm", "dropout"),
            "lstm": ("lstm",),
            "decoder": ("dropout",),
        }[mask_names]
        for name, shape in charrnn_dropout_mask_shapes(cfg, B, T).items():
            if name.split(".")[0] in wanted:
                a[f"mask:{name}"] = rng.random(shape) >= P
        return a

    def params(a):
        return {k: v for k, v in _params(a).items() if k != "x"}

    def np_forward(a):
        logits, (h_n, c_n), cache = numpy_impl.charrnn_forward(
            a["x"], params(a), cfg_of(a), (a["h0"], a["c0"]), _masks(a)
        )
        return (logits, h_n, c_n), cache

    def np_backward(douts, cache):
        dlogits, dh_n, dc_n = douts
        grads, (dh0, dc0) = numpy_impl.charrnn_backward(dlogits, (dh_n, dc_n), cache)
        return {"h0": dh0, "c0": dc0, **grads}

    def torch_fn(t):
        logits, (h_n, c_n) = torch_impl.charrnn(
            t["x"], params(t), cfg_of(t), (t["h0"], t["c0"]), _masks(t)
        )
        return logits, h_n, c_n

    def ref(t):
        masks = _masks(t)
        between = [masks.get(f"lstm.dropout.{k}") for k in range(L - 1)]
        e = F.embedding(t["x"], t["embedding.weight"])
        h, (h_n, c_n) = _lstm_ref(e, sub_dict(t, "lstm."), (t["h0"], t["c0"]), between)
        h = _drop(h, masks.get("dropout"))
        return F.linear(h, t["decoder.weight"], t["decoder.bias"]), h_n, c_n

    dims = {"batch": 3, "seq": 6, "vocab": 11, "emb": 5, "hidden": 7}
    cfg = {"vocab_size": 11, "emb_dim": 5, "hidden_size": 7, "num_layers": L, "drop_rate": P}
    return OpCase(
        f"charrnn[L={L}, masks={mask_names}]",
        sample,
        np_forward,
        np_backward,
        torch_impl=torch_fn,
        torch_ref=ref,
        grad_inputs=("h0", "c0", *charrnn_param_shapes(cfg)),
        dims=dims,
        fd_dims=dims,
    )


@pytest.mark.parametrize("mask_names", ["none", "all", "lstm", "decoder"])
@pytest.mark.parametrize("num_layers", [1, 3])
def test_charrnn_three_way_float64(num_layers, mask_names, record_error):
    case = charrnn_case(num_layers, mask_names)
    arrays, douts, rng = _inputs(case, seed=num_layers)
    expected = {"none": 0, "all": num_layers, "lstm": num_layers - 1, "decoder": 1}[mask_names]
    assert len(_masks(arrays)) == expected
    _record(record_error, "charrnn (functional)", compare_float64(case, arrays, douts))
    record_error("charrnn (functional)", "fd adjoint", adjoint_error(case, arrays, rng), TOL_FD)


def test_classes_are_thin_over_the_pairs(record_error):
    """numpy_impl.LSTM / CharRNN / GPTModel give exactly what their op pairs give."""
    case = lstm_case(2, "all", with_state=True)
    arrays, douts, _ = _inputs(case, seed=1)
    outs, grads = run_numpy(case, arrays, douts)
    layer = numpy_impl.LSTM(5, 4, 2, dtype=np.float64)
    layer.load_state_dict(_params(arrays))
    out, (h_n, c_n) = layer.forward(
        arrays["x"], (arrays["h0"], arrays["c0"]), [arrays["mask:0"]], P
    )
    dx, (dh0, dc0), g = layer.backward(douts[0], douts[1:])
    assert all(np.array_equal(a, b) for a, b in zip((out, h_n, c_n), outs, strict=True))
    assert np.array_equal(dx, grads["x"]) and np.array_equal(dc0, grads["c0"])
    assert all(np.array_equal(g[k], grads[k]) for k in g)
    t_outs, t_grads = run_torch(case, case.torch_impl, arrays, douts)
    record_error(
        "lstm (functional)", "numpy vs torch_impl", grads_error(grads, t_grads), TOL_FLOAT64
    )
