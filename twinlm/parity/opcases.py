"""The registry of ops checked for parity: for each, inputs and its NumPy / torch_impl / torch twins.

Each case's NumPy side runs numpy_impl's pair through the case's bind (harness.numpy_op), so the
same case runs another op set with numpy_impl's names (OpCase.on: numpy_impl.fast, held to the
reference by parity_tests/ops/test_fast_path.py) or a learner's pair (OpCase.with_numpy:
`twinlm check --impl`).

`CASES` is what `twinlm check` prints and what `parity_tests/ops/test_parity_ops.py` sweeps with
hypothesis; Qwen3's ops are in twinlm/parity/opcases_qwen3.py. The torch built-in (`torch_ref`) is the independent third implementation.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

import torch_impl
from twinlm.parity.edges import every_other_row, huge, saturate_gates, saturated
from twinlm.parity.harness import Arrays, Edge, OpCase, numpy_op, pair, params_pair
from twinlm.parity.opcases_qwen3 import QWEN3_CASES
from twinlm.parity.recurrent_cases import RECURRENT_CASES
from twinlm.shared.naming import QKV_PROJECTIONS


def _normal(rng: np.random.Generator, dtype, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (scale * rng.standard_normal(shape)).astype(dtype)


# ---- linear, softmax -----------------------------------------------------------------------------


def _linear_case(bias: bool) -> OpCase:
    def sample(rng, dtype, d):
        return {
            "x": _normal(rng, dtype, d["batch"], d["seq"], d["d_in"]),
            "weight": _normal(rng, dtype, d["d_out"], d["d_in"], scale=d["d_in"] ** -0.5),
            "bias": _normal(rng, dtype, d["d_out"]) if bias else None,
        }

    return OpCase(
        "linear" if bias else "linear[no bias]",
        sample,
        **numpy_op("linear", pair(("x", "weight", "bias"), ("x", "weight", "bias"))),
        torch_impl=lambda t: (torch_impl.linear(t["x"], t["weight"], t["bias"]),),
        torch_ref=lambda t: (F.linear(t["x"], t["weight"], t["bias"]),),
        grad_inputs=("x", "weight", "bias") if bias else ("x", "weight"),
        dims={"batch": 4, "seq": 16, "d_in": 32, "d_out": 24},
        fd_dims={"batch": 2, "seq": 2, "d_in": 3, "d_out": 4},
    )


# Bound 5 for softmax and cross entropy: the built-ins compute the backward as s ⊙ (dy - Σ dy s) and
# p - onehot, which cancel where one weight is ≈ 1: with logits ±10 a 2-entry row's gradient is
# ~2e-9 and the built-in's own float64 error there ~4e-8 relative, far above the 1e-10 it is asked
# to referee; with ±5, ~1e-11. Such rows get their own test against a 60-digit reference
# (parity_tests/ops/test_float32_standard.py), where NumPy and torch_impl are exact to float precision.
SOFTMAX = OpCase(
    "softmax",
    lambda rng, dtype, d: {"x": _normal(rng, dtype, d["batch"], d["rows"], d["n"], scale=3.0)},
    **numpy_op("softmax", pair(("x",), ("x",))),
    torch_impl=lambda t: (torch_impl.softmax(t["x"]),),
    torch_ref=lambda t: (torch.softmax(t["x"], dim=-1),),
    grad_inputs=("x",),
    dims={"batch": 4, "rows": 16, "n": 50},
    fd_dims={"batch": 2, "rows": 2, "n": 5},
    bound=5.0,
    edges=(Edge("logits ±1e4", adjust=every_other_row("x", huge(1e4))),),
)

# ---- embedding, dropout, gelu, layernorm ---------------------------------------------------------

# Few rows and many ids, so ids repeat and the backward's accumulation is exercised.
EMBEDDING = OpCase(
    "embedding",
    lambda rng, dtype, d: {
        "ids": rng.integers(0, d["vocab"], (d["batch"], d["seq"])),
        "weight": _normal(rng, dtype, d["vocab"], d["emb"]),
    },
    **numpy_op("embedding", pair(("ids", "weight"), ("weight",))),
    torch_impl=lambda t: (torch_impl.embedding(t["ids"], t["weight"]),),
    torch_ref=lambda t: (F.embedding(t["ids"], t["weight"]),),
    grad_inputs=("weight",),
    dims={"batch": 4, "seq": 16, "vocab": 8, "emb": 12},
    fd_dims={"batch": 2, "seq": 3, "vocab": 3, "emb": 2},
    edges=(
        Edge("one id everywhere", adjust=lambda rng, a: {**a, "ids": np.full_like(a["ids"], 1)}),
    ),
)

_DROPOUT_P = 0.1  # 1/(1 - p) is inexact in binary, so the scaling's rounding is exercised too

# The mask is bool, as a model draws it; the reference is written out: torch has no mask-taking
# dropout.
DROPOUT = OpCase(
    "dropout",
    lambda rng, dtype, d: {
        "x": _normal(rng, dtype, d["batch"], d["seq"], d["d"]),
        "mask": rng.random((d["batch"], d["seq"], d["d"])) >= _DROPOUT_P,
    },
    **numpy_op("dropout", pair(("x", "mask"), ("x",), p=_DROPOUT_P)),
    torch_impl=lambda t: (torch_impl.dropout(t["x"], t["mask"], _DROPOUT_P),),
    torch_ref=lambda t: (t["x"] * t["mask"] / (1 - _DROPOUT_P),),
    grad_inputs=("x",),
    dims={"batch": 4, "seq": 16, "d": 32},
    fd_dims={"batch": 2, "seq": 2, "d": 3},
)


def _gelu_case(approximate: str) -> OpCase:
    # The moderate range, where the tanh and erf forms differ; saturation has its own test. Bound 4:
    # the built-in computes 1 + tanh / 1 + erf, which cancels for x < 0, so on an array of only
    # x ≈ -5 its own float64 error is ~1e-9, above the 1e-10 it is asked to referee; at -4, ~3e-12.
    # d ≥ 8: a lone element near GELU's minimum (x ≈ -0.75, dy/dx = 0) has a gradient that is all
    # rounding, which no float32 rule can judge; with 8 independent elements another one sets the
    # gradient scale the error is measured against.
    return OpCase(
        f"gelu[{approximate}]",
        lambda rng, dtype, d: {"x": _normal(rng, dtype, d["batch"], d["seq"], d["d"], scale=2.0)},
        **numpy_op("gelu", pair(("x",), ("x",), approximate=approximate)),
        torch_impl=lambda t: (torch_impl.gelu(t["x"], approximate),),
        torch_ref=lambda t: (F.gelu(t["x"], approximate=approximate),),
        grad_inputs=("x",),
        dims={"batch": 4, "seq": 16, "d": 32},
        fd_dims={"batch": 2, "seq": 2, "d": 3},
        bound=4.0,
        min_dims={"d": 8},
        edges=(saturated("x"),),
    )


# Non-trivial scale and shift: with scale = 1 a summed upstream gradient makes dx vanish.
LAYERNORM = OpCase(
    "layernorm",
    lambda rng, dtype, d: {
        "x": _normal(rng, dtype, d["batch"], d["seq"], d["emb"], scale=2.0) + 0.5,
        "scale": (1.0 + 0.5 * rng.standard_normal(d["emb"])).astype(dtype),
        "shift": _normal(rng, dtype, d["emb"]),
    },
    **numpy_op("layernorm", pair(("x", "scale", "shift"), ("x", "scale", "shift"))),
    torch_impl=lambda t: (torch_impl.layernorm(t["x"], t["scale"], t["shift"]),),
    torch_ref=lambda t: (F.layer_norm(t["x"], t["x"].shape[-1:], t["scale"], t["shift"], 1e-5),),
    grad_inputs=("x", "scale", "shift"),
    dims={"batch": 4, "seq": 16, "emb": 32},
    fd_dims={"batch": 2, "seq": 2, "emb": 4},
    # emb ≥ 4. dx = (1/σ) P g, P projecting out 1 and x̂, is computed as g minus those components.
    # emb = 1: y = shift whatever x is, dx = dscale = 0 exactly, the built-in's are rounding noise
    # amplified by 1/√ε. emb = 2: P = 0 up to O(ε/σ²), so dx is what is left after cancellation.
    # emb = 3: P keeps one direction, and P g is often much smaller than g (a single row fails the
    # float32 rule ~0.5% of the time, numpy and torch_impl alike: noise against noise); at emb = 4
    # that tail is ~100× thinner. emb = 1, 2, 3 are checked with fixed inputs in test_basic_ops.
    min_dims={"emb": 4},
    edges=(
        Edge(
            "constant rows",
            adjust=every_other_row(
                "x", lambda rng, n, d: np.full((n, d), rng.standard_normal((n, 1)))
            ),
        ),
    ),
)

# ---- attention, multi-head attention, feed-forward -----------------------------------------------


def _causal_ref_mask(t_q: int, t_k: int) -> torch.Tensor:
    """(Tq, Tk) bool, True where query i may attend key j ≤ i + Tk - Tq (KV-cache alignment)."""
    return torch.ones(t_q, t_k, dtype=torch.bool).tril(diagonal=t_k - t_q)


def _sdpa_ref(q, k, v, causal: bool) -> torch.Tensor:
    """torch's fused attention. Its is_causal aligns the mask top-left, so Tq < Tk gets an explicit
    bottom-right mask."""
    t_q, t_k = q.shape[-2], k.shape[-2]
    if not causal or t_q == t_k:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=_causal_ref_mask(t_q, t_k))


def _attention_dropout_ref(q, k, v, keep, p: float) -> torch.Tensor:
    """SDPA draws its own dropout mask, so the reference with a given mask is written out."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~_causal_ref_mask(q.shape[-2], k.shape[-2]), float("-inf"))
    return (torch.softmax(scores, dim=-1) * (keep / (1 - p))) @ v


def _attention_case(name: str, causal: bool, p: float) -> OpCase:
    # Causal: Tk = Tq + past (past > 0 is the KV-cache layout). Non-causal: Tq, Tk independent.
    def sample(rng, dtype, d):
        t_q = d["seq"]
        t_k = d["seq"] + d["past"] if causal else d["kv_seq"]
        lead = (d["batch"], d["heads"])
        keep = (rng.random((*lead, t_q, t_k)) >= p).astype(dtype) if p else None
        return {
            "q": _normal(rng, dtype, *lead, t_q, d["head_dim"]),
            "k": _normal(rng, dtype, *lead, t_k, d["head_dim"]),
            "v": _normal(rng, dtype, *lead, t_k, d["head_dim"]),
            "dropout_mask": keep,
        }

    def ref(t):
        if p:
            return (_attention_dropout_ref(t["q"], t["k"], t["v"], t["dropout_mask"], p),)
        return (_sdpa_ref(t["q"], t["k"], t["v"], causal),)

    kv = {"past": 4} if causal else {"kv_seq": 9}
    kv_fd = {"past": 1} if causal else {"kv_seq": 2}
    return OpCase(
        name,
        sample,
        **numpy_op(
            "attention",
            pair(("q", "k", "v"), ("q", "k", "v"), ("dropout_mask",), causal=causal, p=p),
        ),
        torch_impl=lambda t: (
            torch_impl.attention(
                t["q"], t["k"], t["v"], causal=causal, dropout_mask=t["dropout_mask"], p=p
            ),
        ),
        torch_ref=ref,
        grad_inputs=("q", "k", "v"),
        dims={"batch": 2, "heads": 3, "seq": 12, **kv, "head_dim": 16},
        fd_dims={"batch": 1, "heads": 2, "seq": 3, **kv_fd, "head_dim": 2},
        min_dims={"past": 0},
        edges=(Edge("T = 1", {"seq": 1, "past": 0} if causal else {"seq": 1, "kv_seq": 1}),),
    )


def _mha_case(qkv_bias: bool) -> OpCase:
    # d_out = heads · head_dim, so heads always divides it. num_heads rides along as a 0-d int
    # array because the forward sees only the arrays.
    keys = (
        *(f"{n}.weight" for n in QKV_PROJECTIONS),
        *((f"{n}.bias" for n in QKV_PROJECTIONS) if qkv_bias else ()),
        "out_proj.weight",
        "out_proj.bias",
    )

    def sample(rng, dtype, d):
        d_in, d_out = d["d_in"], d["heads"] * d["head_dim"]
        a = {
            "x": _normal(rng, dtype, d["batch"], d["seq"], d_in),
            "num_heads": np.array(d["heads"]),
        }
        for n in QKV_PROJECTIONS:
            a[f"{n}.weight"] = _normal(rng, dtype, d_out, d_in, scale=d_in**-0.5)
            if qkv_bias:
                a[f"{n}.bias"] = _normal(rng, dtype, d_out)
        a["out_proj.weight"] = _normal(rng, dtype, d_out, d_out, scale=d_out**-0.5)
        a["out_proj.bias"] = _normal(rng, dtype, d_out)
        return a

    def ref(t):
        x, num_heads = t["x"], int(t["num_heads"])
        B, T_, _ = x.shape

        def heads(n):  # (B, T, d_out) -> (B, H, T, hd)
            h = F.linear(x, t[f"{n}.weight"], t.get(f"{n}.bias"))
            return h.view(B, T_, num_heads, -1).transpose(1, 2)

        ctx = F.scaled_dot_product_attention(*(heads(n) for n in QKV_PROJECTIONS), is_causal=True)
        ctx = ctx.transpose(1, 2).reshape(B, T_, -1)
        return (F.linear(ctx, t["out_proj.weight"], t["out_proj.bias"]),)

    return OpCase(
        "multihead_attention[qkv_bias]" if qkv_bias else "multihead_attention",
        sample,
        **numpy_op("multihead_attention", params_pair(keys, "num_heads")),
        torch_impl=lambda t: (
            torch_impl.multihead_attention(t["x"], {k: t[k] for k in keys}, int(t["num_heads"])),
        ),
        torch_ref=ref,
        # W_key.bias's gradient is 0 in exact arithmetic (a constant added to every key shifts each
        # softmax row uniformly): rounding noise in every float32 run, which the float32 standard
        # compares like any other error. parity_tests/ops/test_attention_ops.py bounds its size.
        grad_inputs=("x", *keys),
        dims={"batch": 2, "seq": 8, "d_in": 12, "heads": 3, "head_dim": 4},
        fd_dims={"batch": 1, "seq": 3, "d_in": 3, "heads": 2, "head_dim": 2},
        edges=(Edge("T = 1", {"seq": 1}),),
    )


_FFN_KEYS = ("layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias")


def _feedforward_sample(rng, dtype, d):
    emb, hidden = d["emb"], d["hidden"]
    return {
        "x": _normal(rng, dtype, d["batch"], d["seq"], emb),
        "layers.0.weight": _normal(rng, dtype, hidden, emb, scale=emb**-0.5),
        "layers.0.bias": _normal(rng, dtype, hidden, scale=0.5),
        "layers.2.weight": _normal(rng, dtype, emb, hidden, scale=hidden**-0.5),
        "layers.2.bias": _normal(rng, dtype, emb),
    }


def _feedforward_ref(t):
    h = F.gelu(F.linear(t["x"], t["layers.0.weight"], t["layers.0.bias"]), approximate="tanh")
    return (F.linear(h, t["layers.2.weight"], t["layers.2.bias"]),)


FEEDFORWARD = OpCase(
    "feedforward",
    _feedforward_sample,
    **numpy_op("feedforward", params_pair(_FFN_KEYS)),
    torch_impl=lambda t: (torch_impl.feedforward(t["x"], {k: t[k] for k in _FFN_KEYS}),),
    torch_ref=_feedforward_ref,
    grad_inputs=("x", *_FFN_KEYS),
    dims={"batch": 2, "seq": 8, "emb": 12, "hidden": 48},
    fd_dims={"batch": 1, "seq": 2, "emb": 3, "hidden": 5},
)


# ---- transformer block (composition of the ops above) ---------------------------------------------


def _block_keys(qkv_bias: bool) -> tuple[str, ...]:
    att = [f"att.{n}.weight" for n in QKV_PROJECTIONS] + (
        [f"att.{n}.bias" for n in QKV_PROJECTIONS] if qkv_bias else []
    )
    return (
        *att,
        "att.out_proj.weight",
        "att.out_proj.bias",
        "ff.layers.0.weight",
        "ff.layers.0.bias",
        "ff.layers.2.weight",
        "ff.layers.2.bias",
        "norm1.scale",
        "norm1.shift",
        "norm2.scale",
        "norm2.shift",
    )


def _block_sample(rng, dtype, d):
    C, heads = d["heads"] * d["head_dim"], d["heads"]
    shapes = {
        "att.out_proj.weight": (C, C),
        "ff.layers.0.weight": (4 * C, C),
        "ff.layers.2.weight": (C, 4 * C),
        "ff.layers.0.bias": (4 * C,),
    }
    a = {"x": _normal(rng, dtype, d["batch"], d["seq"], C), "num_heads": np.array(heads)}
    for k in _block_keys(qkv_bias=True):
        shape = shapes.get(k, (C, C) if k.endswith("weight") else (C,))
        scale = shape[-1] ** -0.5 if k.endswith("weight") else 0.5
        a[k] = _normal(rng, dtype, *shape, scale=scale)
    for norm in ("norm1", "norm2"):  # non-trivial scale and shift
        a[f"{norm}.scale"] = (1.0 + 0.3 * rng.standard_normal(C)).astype(dtype)
    return a


def _block_torch_impl(t):
    x, heads = t["x"], int(t["num_heads"])
    C = x.shape[-1]
    cfg = {
        "emb_dim": C,
        "n_heads": heads,
        "context_length": x.shape[1],
        "drop_rate": 0.0,
        "qkv_bias": True,
    }
    block = torch_impl.TransformerBlock(cfg).eval()
    params = {k: t[k] for k in _block_keys(qkv_bias=True)}
    return (torch.func.functional_call(block, params, (x,)),)


def _block_ref(t):
    """Pre-LN block from torch built-ins: x + att(ln1(x)), then h + ff(ln2(h))."""
    x, H = t["x"], int(t["num_heads"])
    B, T_, C = x.shape
    n1 = F.layer_norm(x, (C,), t["norm1.scale"], t["norm1.shift"], eps=1e-5)
    q, k, v = (
        F.linear(n1, t[f"att.{n}.weight"], t[f"att.{n}.bias"]).view(B, T_, H, -1).transpose(1, 2)
        for n in QKV_PROJECTIONS
    )
    ctx = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T_, C)
    h = x + F.linear(ctx, t["att.out_proj.weight"], t["att.out_proj.bias"])
    n2 = F.layer_norm(h, (C,), t["norm2.scale"], t["norm2.shift"], eps=1e-5)
    f = F.gelu(F.linear(n2, t["ff.layers.0.weight"], t["ff.layers.0.bias"]), approximate="tanh")
    return (h + F.linear(f, t["ff.layers.2.weight"], t["ff.layers.2.bias"]),)


TRANSFORMER_BLOCK = OpCase(
    "transformer_block",
    _block_sample,
    **numpy_op("transformer_block", params_pair(_block_keys(qkv_bias=True), "num_heads")),
    torch_impl=_block_torch_impl,
    torch_ref=_block_ref,
    grad_inputs=("x", *_block_keys(qkv_bias=True)),  # W_key.bias: see multihead_attention
    dims={"batch": 2, "seq": 6, "heads": 2, "head_dim": 4},
    fd_dims={"batch": 1, "seq": 2, "heads": 2, "head_dim": 2},
    min_dims={"heads": 2, "head_dim": 2},  # C ≥ 4: LayerNorm over fewer features is cancellation
    edges=(Edge("T = 1", {"seq": 1}),),
)


# ---- cross entropy, LSTM cell --------------------------------------------------------------------


def _all_but_one_ignored(rng: np.random.Generator, a: Arrays) -> Arrays:
    targets = np.full_like(a["targets"], -100)
    keep = int(rng.integers(targets.size))
    targets.flat[keep] = a["targets"].flat[keep] % a["logits"].shape[-1]
    return {**a, "targets": targets}


def _cross_entropy_case(ignore: bool) -> OpCase:
    def sample(rng, dtype, d):
        targets = rng.integers(0, d["vocab"], (d["batch"], d["seq"]))  # (B, T) int64
        if ignore:
            dropped = rng.random(targets.shape) < 0.4
            dropped.flat[rng.integers(targets.size)] = False  # at least one target is kept
            targets[dropped] = -100
        logits = _normal(rng, dtype, d["batch"], d["seq"], d["vocab"], scale=3.0)
        return {"logits": logits, "targets": targets}

    def reference(t):
        logits = t["logits"]
        flat = logits.reshape(-1, logits.shape[-1])  # F.cross_entropy wants (N, V) and (N,)
        return (F.cross_entropy(flat, t["targets"].reshape(-1), ignore_index=-100),)

    return OpCase(
        "cross_entropy[ignore_index]" if ignore else "cross_entropy",
        sample,
        **numpy_op("cross_entropy", pair(("logits", "targets"), ("logits",))),
        torch_impl=lambda t: (torch_impl.cross_entropy(t["logits"], t["targets"]),),
        torch_ref=reference,
        grad_inputs=("logits",),
        dims={"batch": 4, "seq": 16, "vocab": 50},
        fd_dims={"batch": 2, "seq": 3, "vocab": 5},
        bound=5.0,  # see SOFTMAX
        edges=(
            Edge("logits ±1e4", adjust=every_other_row("logits", huge(1e4))),
            *((Edge("all but one target ignored", adjust=_all_but_one_ignored),) if ignore else ()),
        ),
    )


_LSTM_ARGS = ("x", "h", "c", "weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _lstm_cell_sample(rng, dtype, d):
    B, I, H = d["batch"], d["d_in"], d["hidden"]
    return {
        "x": _normal(rng, dtype, B, I),
        "h": _normal(rng, dtype, B, H, scale=0.5),
        "c": _normal(rng, dtype, B, H),
        "weight_ih": _normal(rng, dtype, 4 * H, I, scale=I**-0.5),
        "weight_hh": _normal(rng, dtype, 4 * H, H, scale=H**-0.5),
        # Independent non-zero biases: copying one into both would double it and be caught.
        "bias_ih": _normal(rng, dtype, 4 * H, scale=0.5),
        "bias_hh": _normal(rng, dtype, 4 * H, scale=0.5),
    }


def _torch_lstm_cell(t):
    """torch.nn.LSTMCell run with our tensors as its parameters, so gradients reach them."""
    cell = torch.nn.LSTMCell(t["x"].shape[-1], t["h"].shape[-1], dtype=t["x"].dtype)
    params = {k: t[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    return tuple(torch.func.functional_call(cell, params, (t["x"], (t["h"], t["c"]))))


LSTM_CELL = OpCase(
    "lstm_cell",
    _lstm_cell_sample,
    **numpy_op("lstm_cell", pair(_LSTM_ARGS, _LSTM_ARGS)),
    torch_impl=lambda t: torch_impl.lstm_cell(*(t[k] for k in _LSTM_ARGS)),
    torch_ref=_torch_lstm_cell,
    grad_inputs=_LSTM_ARGS,
    dims={"batch": 4, "d_in": 16, "hidden": 12},
    fd_dims={"batch": 2, "d_in": 3, "hidden": 2},
    edges=(Edge("saturated gates", adjust=saturate_gates),),
)


CASES: list[OpCase] = [
    _linear_case(bias=True),
    _linear_case(bias=False),
    SOFTMAX,
    EMBEDDING,
    DROPOUT,
    _gelu_case("tanh"),
    _gelu_case("none"),
    LAYERNORM,
    _attention_case("attention", causal=True, p=0.0),
    _attention_case("attention[non-causal]", causal=False, p=0.0),
    _attention_case("attention[dropout]", causal=True, p=0.2),
    _mha_case(qkv_bias=False),
    _mha_case(qkv_bias=True),
    FEEDFORWARD,
    _cross_entropy_case(ignore=False),
    _cross_entropy_case(ignore=True),
    LSTM_CELL,
    TRANSFORMER_BLOCK,
    *RECURRENT_CASES,  # vanilla RNN and GRU cells and layers (twinlm/parity/recurrent_cases.py)
    *QWEN3_CASES,  # twinlm/parity/opcases_qwen3.py
]
CASES_BY_NAME = {c.name: c for c in CASES}
