"""Qwen3's ops for the parity registry (twinlm/parity/opcases.py appends QWEN3_CASES to CASES).

References, all torch built-ins: F.rms_norm, F.silu, F.linear, F.scaled_dot_product_attention with
enable_gqa=True, and RoPE written out the way Hugging Face writes it (x ⊙ cos + rotate_half(x) ⊙
sin with full-width tables; parity_tests/ops/test_qwen3_ops.py also checks it against transformers'
own apply_rotary_pos_emb and rotary-embedding tables). Head counts ride along as 0-d int arrays,
because an OpCase's functions see only the arrays.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import numpy_impl
import torch_impl
from twinlm.parity.edges import every_other_row, huge, saturated
from twinlm.parity.harness import Edge, OpCase, numpy_op, pair, params_backward, params_pair

EPS = 1e-6  # Qwen3's rms_norm_eps
ROPE_BASE = (
    10_000.0  # angles that turn several times over a few positions (Qwen3's 1e6 barely does)
)


def _normal(rng: np.random.Generator, dtype, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (scale * rng.standard_normal(shape)).astype(dtype)


def _norm_weight(rng, dtype, n: int) -> np.ndarray:
    """A non-trivial norm weight (all ones would hide a missing multiply)."""
    return (1.0 + 0.3 * rng.standard_normal(n)).astype(dtype)


def _tables(start: int, T: int, head_dim: int):
    """RoPE cos, sin (T, head_dim/2) for positions start .. start+T-1, in float64 (cast by the
    caller)."""
    return numpy_impl.rope_angles(np.arange(start, start + T), head_dim, ROPE_BASE, np.float64)


def _rope_ref(x, cos, sin):
    """Hugging Face's form: x ⊙ cos + rotate_half(x) ⊙ sin, cos and sin repeated to full width."""
    h = x.shape[-1] // 2
    rotated = torch.cat((-x[..., h:], x[..., :h]), dim=-1)
    return x * torch.cat((cos, cos), -1) + rotated * torch.cat((sin, sin), -1)


def _gqa_ref(q, k, v, causal: bool):
    """SDPA with enable_gqa; is_causal aligns top-left, so Tq < Tk gets an explicit mask."""
    t_q, t_k = q.shape[-2], k.shape[-2]
    if not causal or t_q == t_k:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
    mask = torch.ones(t_q, t_k, dtype=torch.bool).tril(diagonal=t_k - t_q)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)


# ---- RMSNorm (over emb_dim, and over head_dim as QK-norm), RoPE, SiLU, SwiGLU -------------------


def _rmsnorm_case(qk: bool) -> OpCase:
    # qk: the QK-norm layout, (B, T, heads, head_dim) normalised over head_dim.
    def sample(rng, dtype, d):
        lead = (d["batch"], d["seq"], d["heads"]) if qk else (d["batch"], d["seq"])
        return {
            "x": _normal(rng, dtype, *lead, d["dim"]),
            "weight": _norm_weight(rng, dtype, d["dim"]),
        }

    lead_dims = {"batch": 2, "seq": 8, "heads": 3} if qk else {"batch": 4, "seq": 16}
    lead_fd = {"batch": 1, "seq": 2, "heads": 2} if qk else {"batch": 2, "seq": 2}
    return OpCase(
        "rmsnorm[qk_norm]" if qk else "rmsnorm",
        sample,
        **numpy_op("rmsnorm", pair(("x", "weight"), ("x", "weight"), eps=EPS)),
        torch_impl=lambda t: (torch_impl.rmsnorm(t["x"], t["weight"], EPS),),
        torch_ref=lambda t: (F.rms_norm(t["x"], t["x"].shape[-1:], t["weight"], EPS),),
        grad_inputs=("x", "weight"),
        dims={**lead_dims, "dim": 8 if qk else 32},
        fd_dims={**lead_fd, "dim": 4},
        # dim ≥ 2: over one feature y = w·x/√(x² + ε) is flat, dx = r g ε/(x² + ε) ≈ 1e-6 g is
        # what is left of g (1 - x̂²) after cancellation; test_qwen3_ops.py checks dim 1 apart.
        min_dims={"dim": 2},
        edges=(
            Edge("zero rows", adjust=every_other_row("x", lambda rng, n, d: np.zeros((n, d)))),
            Edge("rows of ±1e4", adjust=every_other_row("x", huge(1e4))),
        ),
    )


def _rope_sample(rng, dtype, d):
    cos, sin = _tables(d["start"], d["seq"], 2 * d["half"])
    x = _normal(rng, dtype, d["batch"], d["heads"], d["seq"], 2 * d["half"])
    return {"x": x, "cos": cos.astype(dtype), "sin": sin.astype(dtype)}


ROPE = OpCase(
    "rope",
    _rope_sample,
    **numpy_op("rope", pair(("x", "cos", "sin"), ("x",))),
    torch_impl=lambda t: (torch_impl.rope(t["x"], t["cos"], t["sin"]),),
    torch_ref=lambda t: (_rope_ref(t["x"], t["cos"], t["sin"]),),
    grad_inputs=("x",),
    # start: the first position (a KV cache rotates new tokens at start > 0); up to 30000.
    dims={"batch": 2, "heads": 3, "seq": 8, "half": 8, "start": 30000},
    fd_dims={"batch": 1, "heads": 2, "seq": 3, "half": 2, "start": 5},
    min_dims={"start": 0},
    edges=(Edge("positions from 0", {"start": 0}), Edge("T = 1", {"seq": 1})),
)

# The moderate range, where SiLU bends (its minimum is at x ≈ -1.28). d ≥ 8 for the reason given at
# gelu in opcases.py: a lone element near the minimum has a gradient of pure rounding.
SILU = OpCase(
    "silu",
    lambda rng, dtype, d: {"x": _normal(rng, dtype, d["batch"], d["seq"], d["d"], scale=3.0)},
    **numpy_op("silu", pair(("x",), ("x",))),
    torch_impl=lambda t: (torch_impl.silu(t["x"]),),
    torch_ref=lambda t: (F.silu(t["x"]),),
    grad_inputs=("x",),
    dims={"batch": 4, "seq": 16, "d": 32},
    fd_dims={"batch": 2, "seq": 2, "d": 3},
    bound=8.0,
    min_dims={"d": 8},
    edges=(saturated("x"),),
)

_SWIGLU_KEYS = ("gate_proj.weight", "up_proj.weight", "down_proj.weight")


def _swiglu_sample(rng, dtype, d):
    emb, hidden = d["emb"], d["hidden"]
    return {
        "x": _normal(rng, dtype, d["batch"], d["seq"], emb),
        "gate_proj.weight": _normal(rng, dtype, hidden, emb, scale=2 * emb**-0.5),
        "up_proj.weight": _normal(rng, dtype, hidden, emb, scale=emb**-0.5),
        "down_proj.weight": _normal(rng, dtype, emb, hidden, scale=hidden**-0.5),
    }


def _swiglu_ref(t):
    gate = F.silu(F.linear(t["x"], t["gate_proj.weight"]))
    return (F.linear(gate * F.linear(t["x"], t["up_proj.weight"]), t["down_proj.weight"]),)


SWIGLU = OpCase(
    "swiglu",
    _swiglu_sample,
    **numpy_op("swiglu", params_pair(_SWIGLU_KEYS)),
    torch_impl=lambda t: (torch_impl.swiglu(t["x"], {k: t[k] for k in _SWIGLU_KEYS}),),
    torch_ref=_swiglu_ref,
    grad_inputs=("x", *_SWIGLU_KEYS),
    dims={"batch": 2, "seq": 8, "emb": 12, "hidden": 36},
    fd_dims={"batch": 1, "seq": 2, "emb": 3, "hidden": 4},
)


# ---- grouped-query attention ----------------------------------------------------------------


def _gqa_case(causal: bool) -> OpCase:
    # heads = kv_heads · groups; causal: Tk = Tq + past (the KV-cache layout), else Tk independent.
    def sample(rng, dtype, d):
        B, Hkv, hd = d["batch"], d["kv_heads"], d["head_dim"]
        t_q = d["seq"]
        t_k = t_q + d["past"] if causal else d["kv_seq"]
        return {
            "q": _normal(rng, dtype, B, Hkv * d["groups"], t_q, hd),
            "k": _normal(rng, dtype, B, Hkv, t_k, hd),
            "v": _normal(rng, dtype, B, Hkv, t_k, hd),
        }

    kv = {"past": 4} if causal else {"kv_seq": 9}
    kv_fd = {"past": 1} if causal else {"kv_seq": 2}
    return OpCase(
        "grouped_query_attention" if causal else "grouped_query_attention[non-causal]",
        sample,
        **numpy_op(
            "grouped_query_attention", pair(("q", "k", "v"), ("q", "k", "v"), causal=causal)
        ),
        torch_impl=lambda t: (torch_impl.grouped_query_attention(t["q"], t["k"], t["v"], causal),),
        torch_ref=lambda t: (_gqa_ref(t["q"], t["k"], t["v"], causal),),
        grad_inputs=("q", "k", "v"),
        # kv_heads 1 is multi-query attention, groups 1 multi-head attention: both are drawn.
        dims={"batch": 2, "kv_heads": 2, "groups": 3, "seq": 8, **kv, "head_dim": 8},
        fd_dims={"batch": 1, "kv_heads": 2, "groups": 2, "seq": 2, **kv_fd, "head_dim": 2},
        min_dims={"past": 0},
        edges=(
            Edge("one kv head (multi-query)", {"kv_heads": 1}),
            Edge("T = 1", {"seq": 1, "past": 0} if causal else {"seq": 1, "kv_seq": 1}),
        ),
    )


# ---- Qwen3 attention (projections, QK-norm, RoPE, GQA, output) and the decoder layer -----------


def _attention_keys(bias: bool) -> tuple[str, ...]:
    keys = ["q_proj.weight", "k_proj.weight", "v_proj.weight", "o_proj.weight"]
    keys += ["q_norm.weight", "k_norm.weight"]
    if bias:
        keys += ["q_proj.bias", "k_proj.bias", "v_proj.bias", "o_proj.bias"]
    return tuple(keys)


def _attention_params(rng, dtype, d, bias: bool, prefix: str = "") -> dict[str, np.ndarray]:
    C, hd, H, Hkv = d["emb"], 2 * d["half_head"], d["kv_heads"] * d["groups"], d["kv_heads"]
    outs = {"q_proj": H * hd, "k_proj": Hkv * hd, "v_proj": Hkv * hd}
    a = {}
    for name, out in outs.items():
        a[f"{prefix}{name}.weight"] = _normal(rng, dtype, out, C, scale=C**-0.5)
        if bias:
            a[f"{prefix}{name}.bias"] = _normal(rng, dtype, out, scale=0.5)
    a[f"{prefix}o_proj.weight"] = _normal(rng, dtype, C, H * hd, scale=(H * hd) ** -0.5)
    if bias:
        a[f"{prefix}o_proj.bias"] = _normal(rng, dtype, C, scale=0.5)
    a[f"{prefix}q_norm.weight"] = _norm_weight(rng, dtype, hd)
    a[f"{prefix}k_norm.weight"] = _norm_weight(rng, dtype, hd)
    return a


def _heads_and_tables(rng, dtype, d) -> dict[str, np.ndarray]:
    cos, sin = _tables(0, d["seq"], 2 * d["half_head"])
    return {
        "x": _normal(rng, dtype, d["batch"], d["seq"], d["emb"]),
        "n_heads": np.array(d["kv_heads"] * d["groups"]),
        "n_kv_heads": np.array(d["kv_heads"]),
        "cos": cos.astype(dtype),
        "sin": sin.astype(dtype),
    }


def _attention_ref(t, p: dict, prefix: str = ""):
    """Qwen3Attention from built-ins: F.linear, F.rms_norm over head_dim, rotate-half RoPE,
    SDPA with enable_gqa."""
    x, H, Hkv = t["x"], int(t["n_heads"]), int(t["n_kv_heads"])
    B, T, _ = x.shape
    hd = p[f"{prefix}q_norm.weight"].shape[0]

    def heads(name, count):
        h = F.linear(x, p[f"{prefix}{name}_proj.weight"], p.get(f"{prefix}{name}_proj.bias"))
        h = h.view(B, T, count, hd)
        if name != "v":
            h = F.rms_norm(h, (hd,), p[f"{prefix}{name}_norm.weight"], EPS)
            return _rope_ref(h.transpose(1, 2), t["cos"], t["sin"])
        return h.transpose(1, 2)

    ctx = F.scaled_dot_product_attention(
        heads("q", H), heads("k", Hkv), heads("v", Hkv), is_causal=True, enable_gqa=True
    )
    ctx = ctx.transpose(1, 2).reshape(B, T, H * hd)
    return F.linear(ctx, p[f"{prefix}o_proj.weight"], p.get(f"{prefix}o_proj.bias"))


_STATIC = ("x", "n_heads", "n_kv_heads", "cos", "sin")


def _qwen3_pair(keys: tuple[str, ...]):
    """The bind of `<op>_forward(x, params, n_heads, n_kv_heads, cos, sin, eps)` (Qwen3's attention
    and decoder layer); the backward returns (dx, dparams)."""

    def bind(forward, backward):
        def np_forward(a):
            x, H, Hkv, cos, sin = (a[k] for k in _STATIC)
            y, cache = forward(x, {k: a[k] for k in keys}, int(H), int(Hkv), cos, sin, EPS)
            return (y,), cache

        return np_forward, params_backward(backward)

    return bind


def _qwen3_attention_case(bias: bool) -> OpCase:
    keys = _attention_keys(bias)

    def sample(rng, dtype, d):
        return {**_heads_and_tables(rng, dtype, d), **_attention_params(rng, dtype, d, bias)}

    def impl(t):
        x, H, Hkv, cos, sin = (t[k] for k in _STATIC)
        params = {k: t[k] for k in keys}
        return (torch_impl.qwen3_attention(x, params, int(H), int(Hkv), cos, sin, EPS),)

    return OpCase(
        "qwen3_attention[bias]" if bias else "qwen3_attention",
        sample,
        **numpy_op("qwen3_attention", _qwen3_pair(keys)),
        torch_impl=impl,
        torch_ref=lambda t: (_attention_ref(t, t),),
        grad_inputs=("x", *keys),
        # head_dim = 2 · half_head: RoPE needs pairs, and QK-norm over one entry is flat (rmsnorm)
        dims={"batch": 2, "seq": 6, "emb": 12, "kv_heads": 2, "groups": 2, "half_head": 3},
        fd_dims={"batch": 1, "seq": 2, "emb": 3, "kv_heads": 1, "groups": 2, "half_head": 1},
        # emb ≥ 2: from one input feature, QK-norm leaves ±w/rms(w) whatever x is, so the scores do
        # not depend on x and the q/k gradients are zero in exact arithmetic: noise against noise.
        min_dims={"emb": 2},
        edges=(Edge("T = 1", {"seq": 1}),),
    )


_BLOCK_KEYS = (
    *(f"self_attn.{k}" for k in _attention_keys(bias=False)),
    *(f"mlp.{k}" for k in _SWIGLU_KEYS),
    "input_layernorm.weight",
    "post_attention_layernorm.weight",
)


def _block_sample(rng, dtype, d):
    a = {
        **_heads_and_tables(rng, dtype, d),
        **_attention_params(rng, dtype, d, False, "self_attn."),
    }
    mlp = _swiglu_sample(rng, dtype, d)
    a |= {f"mlp.{k}": mlp[k] for k in _SWIGLU_KEYS}
    a["input_layernorm.weight"] = _norm_weight(rng, dtype, d["emb"])
    a["post_attention_layernorm.weight"] = _norm_weight(rng, dtype, d["emb"])
    return a


def _block_impl(t):
    x, H, Hkv, cos, sin = (t[k] for k in _STATIC)
    params = {k: t[k] for k in _BLOCK_KEYS}
    return (torch_impl.qwen3_block(x, params, int(H), int(Hkv), cos, sin, EPS),)


def qwen3_block_builtin(t):
    """Qwen3DecoderLayer from built-ins: x + attn(rms_norm(x)), then h + mlp(rms_norm(h))."""
    x, C = t["x"], t["x"].shape[-1]
    h = x + _attention_ref(
        {**t, "x": F.rms_norm(x, (C,), t["input_layernorm.weight"], EPS)}, t, "self_attn."
    )
    n2 = F.rms_norm(h, (C,), t["post_attention_layernorm.weight"], EPS)
    mlp = {"x": n2, **{k: t[f"mlp.{k}"] for k in _SWIGLU_KEYS}}
    return (h + _swiglu_ref(mlp)[0],)


QWEN3_BLOCK = OpCase(
    "qwen3_block",
    _block_sample,
    **numpy_op("qwen3_block", _qwen3_pair(_BLOCK_KEYS)),
    torch_impl=_block_impl,
    torch_ref=qwen3_block_builtin,
    grad_inputs=("x", *_BLOCK_KEYS),
    dims={"batch": 2, "seq": 6, "emb": 8, "kv_heads": 2, "groups": 2, "half_head": 2, "hidden": 24},
    fd_dims={
        "batch": 1,
        "seq": 2,
        "emb": 4,
        "kv_heads": 1,
        "groups": 2,
        "half_head": 1,
        "hidden": 3,
    },
    min_dims={"emb": 2},  # RMSNorm over one feature is flat (see rmsnorm)
    edges=(Edge("T = 1", {"seq": 1}),),
)

QWEN3_CASES: list[OpCase] = [
    _rmsnorm_case(qk=False),
    _rmsnorm_case(qk=True),
    ROPE,
    SILU,
    SWIGLU,
    _gqa_case(causal=True),
    _gqa_case(causal=False),
    _qwen3_attention_case(bias=False),
    _qwen3_attention_case(bias=True),
    QWEN3_BLOCK,
]
