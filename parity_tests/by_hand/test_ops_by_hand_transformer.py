"""Attention, multi-head attention, feed-forward and the transformer block, by hand: the NumPy
forward and hand-written backward next to torch autograd on built-ins (never torch_impl).

Read test_ops_by_hand.py first: the same four steps and the same tolerance (rtol 1e-10, atol 1e-12
for the O(1) values here) hold in this file.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import leaf
from numpy.testing import assert_allclose

from numpy_impl import (
    attention_backward,
    attention_forward,
    feedforward_backward,
    feedforward_forward,
    multihead_attention_backward,
    multihead_attention_forward,
    transformer_block_backward,
    transformer_block_forward,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: fastest for tiny ops
t = leaf  # t(a): a float64 leaf tensor that collects its gradient in .grad


# ---- attention, multi-head attention, feed-forward, transformer block ----------------------------


@pytest.mark.parametrize(("causal", "t_k"), [(True, 4), (True, 7), (False, 6)])
def test_attention(causal, t_k):
    """y = softmax(q kᵀ/√d, causal: key j > i + Tk - Tq hidden) v;  dq, dk, dv."""
    rng = np.random.default_rng(6)
    q = rng.standard_normal((2, 3, 4, 5))  # (B, H, Tq, d)
    k = rng.standard_normal((2, 3, t_k, 5))  # (B, H, Tk, d); causal Tk > Tq: a KV cache's layout
    v = rng.standard_normal((2, 3, t_k, 5))  # (B, H, Tk, d)
    y, cache = attention_forward(q, k, v, causal=causal)
    dy = rng.standard_normal(y.shape)
    dq, dk, dv = attention_backward(dy, cache)

    qt, kt, vt = t(q), t(k), t(v)
    # (Tq, Tk) True where query i may see key j ≤ i + Tk - Tq: the queries are the last positions
    visible = torch.ones(4, t_k, dtype=torch.bool).tril(t_k - 4) if causal else None
    yt = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=visible)
    yt.backward(torch.from_numpy(dy))

    assert_allclose(y, yt.detach(), rtol=1e-10, atol=1e-12)
    assert_allclose(dq, qt.grad, rtol=1e-10, atol=1e-12)
    assert_allclose(dk, kt.grad, rtol=1e-10, atol=1e-12)
    assert_allclose(dv, vt.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("causal", [True, False])
def test_attention_with_dropout_mask(causal):
    """y = (softmax(q kᵀ/√d) ⊙ M / (1 - p)) v, M a given 0/1 mask on the weights;  dq, dk, dv."""
    p = 0.2
    rng = np.random.default_rng(7)
    q, k, v = (rng.standard_normal((2, 3, 4, 5)) for _ in "qkv")  # (B, H, T, d) each
    M = rng.random((2, 3, 4, 4)) >= p  # (B, H, Tq, Tk)
    y, cache = attention_forward(q, k, v, causal=causal, dropout_mask=M, p=p)
    dy = rng.standard_normal(y.shape)
    dq, dk, dv = attention_backward(dy, cache)

    # Written out: scaled_dot_product_attention draws its own dropout mask.
    qt, kt, vt = t(q), t(k), t(v)
    scores = qt @ kt.transpose(-2, -1) / 5**0.5  # (B, H, Tq, Tk)
    if causal:
        scores = scores.masked_fill(~torch.ones(4, 4, dtype=torch.bool).tril(), -torch.inf)
    yt = (torch.softmax(scores, dim=-1) * torch.from_numpy(M) / (1 - p)) @ vt
    yt.backward(torch.from_numpy(dy))

    assert_allclose(y, yt.detach(), rtol=1e-10, atol=1e-12)
    assert_allclose(dq, qt.grad, rtol=1e-10, atol=1e-12)
    assert_allclose(dk, kt.grad, rtol=1e-10, atol=1e-12)
    assert_allclose(dv, vt.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("qkv_bias", [False, True])
@pytest.mark.parametrize("p", [0.0, 0.2])
def test_multihead_attention(qkv_bias, p):
    """y = merge_heads(causal attention(split(x W_qᵀ), split(x W_kᵀ), split(x W_vᵀ))) W_oᵀ + b_o."""
    rng = np.random.default_rng(8)
    B, T, d_in, H, hd = 2, 5, 6, 2, 3  # H heads of size hd, d_out = H·hd
    x = rng.standard_normal((B, T, d_in))
    params = {}
    for n in ("W_query", "W_key", "W_value"):
        params[f"{n}.weight"] = rng.standard_normal((H * hd, d_in)) / d_in**0.5  # (d_out, d_in)
        if qkv_bias:
            params[f"{n}.bias"] = rng.standard_normal(H * hd)  # (d_out,)
    params["out_proj.weight"] = rng.standard_normal((H * hd, H * hd)) / (H * hd) ** 0.5
    params["out_proj.bias"] = rng.standard_normal(H * hd)
    M = rng.random((B, H, T, T)) >= p  # dropout on the attention weights (p = 0: none given)
    y, cache = multihead_attention_forward(x, params, H, dropout_mask=M if p else None, p=p)
    dy = rng.standard_normal(y.shape)
    dx, dparams = multihead_attention_backward(dy, cache)

    xt, pt = t(x), {name: t(w) for name, w in params.items()}
    q, k, v = (
        F.linear(xt, pt[f"{n}.weight"], pt.get(f"{n}.bias")).view(B, T, H, hd).transpose(1, 2)
        for n in ("W_query", "W_key", "W_value")
    )  # (B, H, T, hd) each
    future = ~torch.ones(T, T).bool().tril()  # (T, T) True where key j > query i: hidden
    scores = (q @ k.transpose(-2, -1) / hd**0.5).masked_fill(future, -torch.inf)
    weights = torch.softmax(scores, dim=-1) * torch.from_numpy(M) / (1 - p)
    ctx = (weights @ v).transpose(1, 2).reshape(B, T, H * hd)  # merge heads
    yt = F.linear(ctx, pt["out_proj.weight"], pt["out_proj.bias"])
    yt.backward(torch.from_numpy(dy))

    assert_allclose(y, yt.detach(), rtol=1e-10, atol=1e-12)
    assert_allclose(dx, xt.grad, rtol=1e-10, atol=1e-12)
    assert dparams.keys() == params.keys()
    # dW_key.bias is 0 up to rounding (a bias on every key shifts a whole score row, which softmax
    # ignores): there only atol, 1e-12 of the O(1) gradients around it, can judge.
    for name in params:
        assert_allclose(dparams[name], pt[name].grad, rtol=1e-10, atol=1e-12, err_msg=name)


def test_feedforward():
    """y = GELU_tanh(x W₀ᵀ + b₀) W₂ᵀ + b₂;  dx and the four parameter gradients."""
    rng = np.random.default_rng(9)
    D = 4  # hidden size 4·D, as in GPT-2
    x = rng.standard_normal((2, 3, D))
    params = {
        "layers.0.weight": rng.standard_normal((4 * D, D)) / D**0.5,
        "layers.0.bias": rng.standard_normal(4 * D),
        "layers.2.weight": rng.standard_normal((D, 4 * D)) / (4 * D) ** 0.5,
        "layers.2.bias": rng.standard_normal(D),
    }
    y, cache = feedforward_forward(x, params)
    dy = rng.standard_normal(y.shape)
    dx, dparams = feedforward_backward(dy, cache)

    xt, pt = t(x), {name: t(w) for name, w in params.items()}
    h = F.gelu(F.linear(xt, pt["layers.0.weight"], pt["layers.0.bias"]), approximate="tanh")
    yt = F.linear(h, pt["layers.2.weight"], pt["layers.2.bias"])
    yt.backward(torch.from_numpy(dy))

    assert_allclose(y, yt.detach(), rtol=1e-10, atol=1e-12)
    assert_allclose(dx, xt.grad, rtol=1e-10, atol=1e-12)
    assert dparams.keys() == params.keys()
    for name in params:
        assert_allclose(dparams[name], pt[name].grad, rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("p", [0.0, 0.2])
def test_transformer_block(p):
    """h = x + drop(att(ln1(x))), y = h + drop(ff(ln2(h)));  dx and every parameter gradient."""
    rng = np.random.default_rng(10)
    B, T, C, H = 2, 4, 6, 2  # H heads of size C/H
    att = ("W_query", "W_key", "W_value", "out_proj")
    shapes = {f"att.{n}.weight": (C, C) for n in att} | {f"att.{n}.bias": (C,) for n in att}
    shapes |= {"ff.layers.0.weight": (4 * C, C), "ff.layers.0.bias": (4 * C,)}
    shapes |= {"ff.layers.2.weight": (C, 4 * C), "ff.layers.2.bias": (C,)}
    shapes |= {f"norm{i}.{w}": (C,) for i in (1, 2) for w in ("scale", "shift")}
    params = {k: rng.standard_normal(s) / s[-1] ** 0.5 for k, s in shapes.items()}
    params["norm1.scale"] += 1.0  # scales near 1, but not 1
    params["norm2.scale"] += 1.0
    x = rng.standard_normal((B, T, C))
    masks = {  # p = 0: all True, and the block is given none
        "att.dropout": rng.random((B, H, T, T)) >= p,  # on the attention weights
        "drop_shortcut.att": rng.random((B, T, C)) >= p,  # on each branch, before its shortcut
        "drop_shortcut.ff": rng.random((B, T, C)) >= p,
    }
    y, cache = transformer_block_forward(x, params, H, dropout_masks=masks if p else None, p=p)
    dy = rng.standard_normal(y.shape)
    dx, dparams = transformer_block_backward(dy, cache)

    xt, P = t(x), {name: t(w) for name, w in params.items()}
    keep = {name: torch.from_numpy(m) / (1 - p) for name, m in masks.items()}
    n1 = F.layer_norm(xt, (C,), P["norm1.scale"], P["norm1.shift"], eps=1e-5)
    q, k, v = (
        F.linear(n1, P[f"att.{n}.weight"], P[f"att.{n}.bias"]).view(B, T, H, -1).transpose(1, 2)
        for n in att[:3]
    )  # (B, H, T, C/H) each
    future = ~torch.ones(T, T).bool().tril()  # (T, T) True where key j > query i: hidden
    scores = (q @ k.transpose(-2, -1) / (C // H) ** 0.5).masked_fill(future, -torch.inf)
    ctx = ((torch.softmax(scores, dim=-1) * keep["att.dropout"]) @ v).transpose(1, 2)
    ctx = ctx.reshape(B, T, C)  # merge heads
    a = F.linear(ctx, P["att.out_proj.weight"], P["att.out_proj.bias"])
    h = xt + a * keep["drop_shortcut.att"]
    n2 = F.layer_norm(h, (C,), P["norm2.scale"], P["norm2.shift"], eps=1e-5)
    f = F.gelu(F.linear(n2, P["ff.layers.0.weight"], P["ff.layers.0.bias"]), approximate="tanh")
    f = F.linear(f, P["ff.layers.2.weight"], P["ff.layers.2.bias"])
    yt = h + f * keep["drop_shortcut.ff"]
    yt.backward(torch.from_numpy(dy))

    assert_allclose(y, yt.detach(), rtol=1e-10, atol=1e-12)
    assert_allclose(dx, xt.grad, rtol=1e-10, atol=1e-12)
    assert dparams.keys() == params.keys()
    for name in params:  # att.W_key.bias: 0 up to rounding, see test_multihead_attention
        assert_allclose(dparams[name], P[name].grad, rtol=1e-10, atol=1e-12, err_msg=name)
