"""Qwen3's ops by hand: RMSNorm, RoPE, SiLU, the SwiGLU feed-forward and grouped-query attention,
the NumPy forward and hand-written backward next to torch autograd on built-ins (never torch_impl).

Read test_ops_by_hand.py first: the same four steps and the same tolerance (rtol 1e-10, atol 1e-12
for the O(1) values here) hold in this file. RoPE has no torch built-in: its reference is Hugging
Face's "rotate half" written out from torch.cat, cos and sin.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import leaf
from numpy.testing import assert_allclose

from numpy_impl import (
    grouped_query_attention_backward,
    grouped_query_attention_forward,
    rmsnorm_backward,
    rmsnorm_forward,
    rope_angles,
    rope_backward,
    rope_forward,
    silu_backward,
    silu_forward,
    swiglu_backward,
    swiglu_forward,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: fastest for tiny ops
t = leaf  # t(a): a float64 leaf tensor that collects its gradient in .grad


# ---- RMSNorm, RoPE -------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [1e-6, 0.5])
def test_rmsnorm(eps):
    """y = x / √(mean(x²) + ε) ⊙ w over the last axis;  dx = r (g - x̂ mean(g ⊙ x̂)), g = dy ⊙ w."""
    rng = np.random.default_rng(13)
    x = 2.0 * rng.standard_normal((2, 3, 6)) + 0.5  # (B, T, D), mean(x²) ~4: ε = 0.5 shows
    w = 1.0 + 0.5 * rng.standard_normal(6)  # not 1: with w = 1 bugs in dx can cancel
    y, cache = rmsnorm_forward(x, w, eps=eps)
    dy = rng.standard_normal(y.shape)
    dx, dw = rmsnorm_backward(dy, cache)

    xt, wt = t(x), t(w)
    yt = F.rms_norm(xt, (6,), wt, eps=eps)
    yt.backward(torch.from_numpy(dy))

    assert_allclose(y, yt.detach(), rtol=1e-10, atol=1e-12)
    assert_allclose(dx, xt.grad, rtol=1e-10, atol=1e-12)
    assert_allclose(dw, wt.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("start", "base"), [(0, 1e4), (5, 1e6)], ids=["positions 0-3, base 1e4", "5-8, base 1e6"]
)
def test_rope(start, base):
    """Pair (x_i, x_{i+d/2}) of a head at position p rotated by p θ_i, θ_i = base^(-2i/d):
    y = x ⊙ cos + rotate_half(x) ⊙ sin with rotate_half(x) = [-x₂, x₁];  dx = dy rotated back."""
    rng = np.random.default_rng(14)
    B, H, T, d = 2, 3, 4, 6
    x = rng.standard_normal((B, H, T, d))
    positions = np.arange(start, start + T)  # start > 0: the new rows of a KV cache
    cos, sin = rope_angles(positions, d, base)  # (T, d/2) each
    y, cache = rope_forward(x, cos, sin)
    dy = rng.standard_normal(y.shape)
    dx = rope_backward(dy, cache)

    # Hugging Face's convention (Llama, Qwen3) from built-ins: each angle twice, then rotate half.
    inv_freq = 1.0 / base ** (torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,) θ_i
    angles = torch.arange(start, start + T, dtype=torch.float64)[:, None] * inv_freq  # (T, d/2)
    emb = torch.cat([angles, angles], dim=-1)  # (T, d)
    xt = t(x)
    x1, x2 = xt[..., : d // 2], xt[..., d // 2 :]
    yt = xt * emb.cos() + torch.cat([-x2, x1], dim=-1) * emb.sin()
    yt.backward(torch.from_numpy(dy))

    assert_allclose(cos, angles.cos(), rtol=1e-10, atol=1e-12)
    assert_allclose(sin, angles.sin(), rtol=1e-10, atol=1e-12)
    assert_allclose(y, yt.detach(), rtol=1e-10, atol=1e-12)
    assert_allclose(dx, xt.grad, rtol=1e-10, atol=1e-12)


# ---- SiLU, SwiGLU --------------------------------------------------------------------------------


def test_silu():
    """y = x σ(x);  dx = dy ⊙ σ(x) (1 + x σ(-x))."""
    rng = np.random.default_rng(15)
    x = 4.0 * rng.standard_normal((3, 8))  # both tails: σ(x) near 0 and near 1
    y, cache = silu_forward(x)
    dy = rng.standard_normal(y.shape)
    dx = silu_backward(dy, cache)

    xt = t(x)
    yt = F.silu(xt)
    yt.backward(torch.from_numpy(dy))

    assert_allclose(y, yt.detach(), rtol=1e-10, atol=1e-12)
    assert_allclose(dx, xt.grad, rtol=1e-10, atol=1e-12)


def test_swiglu():
    """y = (silu(x W_gᵀ) ⊙ x W_uᵀ) W_dᵀ, no biases;  dx (two branches add up), dW_g, dW_u, dW_d."""
    rng = np.random.default_rng(16)
    D, hidden = 4, 6
    x = rng.standard_normal((2, 3, D))
    params = {
        "gate_proj.weight": rng.standard_normal((hidden, D)) / D**0.5,  # (hidden, D)
        "up_proj.weight": rng.standard_normal((hidden, D)) / D**0.5,  # (hidden, D)
        "down_proj.weight": rng.standard_normal((D, hidden)) / hidden**0.5,  # (D, hidden)
    }
    y, cache = swiglu_forward(x, params)
    dy = rng.standard_normal(y.shape)
    dx, dparams = swiglu_backward(dy, cache)

    xt, pt = t(x), {name: t(w) for name, w in params.items()}
    h = F.silu(F.linear(xt, pt["gate_proj.weight"])) * F.linear(xt, pt["up_proj.weight"])
    yt = F.linear(h, pt["down_proj.weight"])
    yt.backward(torch.from_numpy(dy))

    assert_allclose(y, yt.detach(), rtol=1e-10, atol=1e-12)
    assert_allclose(dx, xt.grad, rtol=1e-10, atol=1e-12)
    assert dparams.keys() == params.keys()
    for name in params:
        assert_allclose(dparams[name], pt[name].grad, rtol=1e-10, atol=1e-12, err_msg=name)


# ---- grouped-query attention ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("causal", "t_k", "kv_heads"),
    [(True, 4, 2), (True, 7, 1), (False, 6, 4)],
    ids=["causal, 2 groups of 2", "causal Tk > Tq, 1 kv head (MQA)", "full, 4 kv heads (MHA)"],
)
def test_grouped_query_attention(causal, t_k, kv_heads):
    """Query head h reads key/value head h // G, G = H / Hkv: y = softmax(q kᵀ/√d, causal: key
    j > i + Tk - Tq hidden) v;  dq, and dk, dv summed over the G query heads sharing them."""
    rng = np.random.default_rng(17)
    q = rng.standard_normal((2, 4, 4, 5))  # (B, H, Tq, d)
    k = rng.standard_normal((2, kv_heads, t_k, 5))  # (B, Hkv, Tk, d)
    v = rng.standard_normal((2, kv_heads, t_k, 5))  # (B, Hkv, Tk, d)
    y, cache = grouped_query_attention_forward(q, k, v, causal=causal)
    dy = rng.standard_normal(y.shape)
    dq, dk, dv = grouped_query_attention_backward(dy, cache)

    qt, kt, vt = t(q), t(k), t(v)
    # (Tq, Tk) True where query i may see key j ≤ i + Tk - Tq: the queries are the last positions
    visible = torch.ones(4, t_k, dtype=torch.bool).tril(t_k - 4) if causal else None
    # enable_gqa: kv head j serves query heads jG .. jG+G-1, as Hugging Face's repeat_kv
    yt = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=visible, enable_gqa=True)
    yt.backward(torch.from_numpy(dy))

    assert_allclose(y, yt.detach(), rtol=1e-10, atol=1e-12)
    assert_allclose(dq, qt.grad, rtol=1e-10, atol=1e-12)
    assert_allclose(dk, kt.grad, rtol=1e-10, atol=1e-12)
    assert_allclose(dv, vt.grad, rtol=1e-10, atol=1e-12)
