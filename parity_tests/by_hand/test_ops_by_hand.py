"""The ops by hand: the NumPy forward and hand-written backward next to torch autograd. Start here;
then test_ops_by_hand_transformer.py (attention, feed-forward, the block), test_ops_by_hand_qwen3.py
(RMSNorm, RoPE, SiLU, SwiGLU, grouped-query attention) and test_ops_by_hand_recurrent.py (the
LSTM, GRU and RNN cells).

Each test reads top to bottom (the style of micrograd's test_engine.py):
1. small float64 inputs from a seeded numpy Generator;
2. the NumPy `<op>_forward`, a standard-normal upstream gradient (never ones: a summed output makes
   softmax's and LayerNorm's input gradients vanish), the NumPy `<op>_backward`;
3. the same expression from torch built-ins (F.linear, F.layer_norm, …, never torch_impl) on leaf
   tensors, `.backward()` with the same upstream gradient;
4. outputs and every gradient compared.

Tolerance: rtol 1e-10, and atol 1e-12 times the scale of what is compared, for entries that happen
to sit near 0. Inputs, weights (scaled by 1/√fan_in) and upstream gradients are O(1), so outputs and
gradients are O(1) and atol is 1e-12 unless a test says otherwise. Float64 rounding is ~1e-16 per
operation, so a wrong formula cannot hide under either bound. The hypothesis sweep over every op,
float32 and finite differences is ops/test_parity_ops.py; these files are for reading.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import leaf
from numpy.testing import assert_allclose

from numpy_impl import (
    cross_entropy_backward,
    cross_entropy_forward,
    dropout_backward,
    dropout_forward,
    embedding_backward,
    embedding_forward,
    gelu_backward,
    gelu_forward,
    layernorm_backward,
    layernorm_forward,
    linear_backward,
    linear_forward,
    softmax_backward,
    softmax_forward,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: fastest for tiny ops
t = leaf  # t(a): a float64 leaf tensor that collects its gradient in .grad


# ---- linear, softmax, embedding, dropout, gelu, layernorm ----------------------------------------


@pytest.mark.parametrize("bias", [True, False])
def test_linear(bias):
    """y = x Wᵀ + b;  dx = dy W,  dW = Σ_rows dyᵀ x,  db = Σ_rows dy."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4))  # (B, T, in)
    W = rng.standard_normal((5, 4)) / 2.0  # (out, in)
    b = rng.standard_normal(5) if bias else None  # (out,)
    y, cache = linear_forward(x, W, b)
    dy = rng.standard_normal(y.shape)
    dx, dW, db = linear_backward(dy, cache)

    xt, Wt, bt = t(x), t(W), t(b) if bias else None
    yt = F.linear(xt, Wt, bt)
    yt.backward(torch.from_numpy(dy))

    assert_allclose(y, yt.detach(), rtol=1e-10, atol=1e-12)
    assert_allclose(dx, xt.grad, rtol=1e-10, atol=1e-12)
    assert_allclose(dW, Wt.grad, rtol=1e-10, atol=1e-12)
    if bias:
        assert_allclose(db, bt.grad, rtol=1e-10, atol=1e-12)
    else:
        assert db is None


def test_softmax():
    """s = exp(x) / Σ exp(x) over the last axis;  dx = s ⊙ (ds - Σ ds ⊙ s)."""
    rng = np.random.default_rng(1)
    x = 3.0 * rng.standard_normal((2, 3, 6))  # spread out: some rows close to one-hot
    s, cache = softmax_forward(x)
    ds = rng.standard_normal(s.shape)
    dx = softmax_backward(ds, cache)

    xt = t(x)
    st = torch.softmax(xt, dim=-1)
    st.backward(torch.from_numpy(ds))

    assert_allclose(s, st.detach(), rtol=1e-10, atol=1e-12)
    assert_allclose(dx, xt.grad, rtol=1e-10, atol=1e-12)


def test_embedding():
    """y = W[ids];  dW[v] = Σ_{n: ids[n] = v} dy[n] (repeated ids add up, unused rows stay 0)."""
    rng = np.random.default_rng(2)
    W = rng.standard_normal((6, 3))  # (V, D)
    ids = rng.integers(0, 5, (2, 7))  # (B, T): 14 ids from 5 rows, so they repeat; row 5 is unused
    y, cache = embedding_forward(ids, W)
    dy = rng.standard_normal(y.shape)
    dW = embedding_backward(dy, cache)

    Wt = t(W)
    yt = F.embedding(torch.from_numpy(ids), Wt)
    yt.backward(torch.from_numpy(dy))

    assert_allclose(y, yt.detach(), rtol=1e-10, atol=1e-12)
    assert_allclose(dW, Wt.grad, rtol=1e-10, atol=1e-12)
    assert not dW[5].any()


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout(p):
    """y = x ⊙ m / (1 - p);  dx = dy ⊙ m / (1 - p), with torch's own mask m."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6))  # no exact zeros, so y ≠ 0 exactly where m = 1

    torch.manual_seed(0)
    xt = t(x)
    yt = F.dropout(xt, p, training=True)  # torch draws the mask ...
    keep = (yt != 0).numpy()  # ... and we read it off its output
    y, cache = dropout_forward(x, keep, p)
    dy = rng.standard_normal(y.shape)
    dx = dropout_backward(dy, cache)
    yt.backward(torch.from_numpy(dy))

    assert 0 < keep.sum() < keep.size
    assert_allclose(y, yt.detach(), rtol=1e-10, atol=1e-12)
    assert_allclose(dx, xt.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_gelu(approximate):
    """y = x Φ(x), Φ exact (erf) or ½(1 + tanh(√(2/π)(x + 0.044715 x³)));  dx = dy ⊙ GELU'(x)."""
    rng = np.random.default_rng(4)
    x = 2.0 * rng.standard_normal((3, 8))  # the moderate range, where the two forms differ
    y, cache = gelu_forward(x, approximate=approximate)
    dy = rng.standard_normal(y.shape)
    dx = gelu_backward(dy, cache)

    xt = t(x)
    yt = F.gelu(xt, approximate=approximate)
    yt.backward(torch.from_numpy(dy))

    assert_allclose(y, yt.detach(), rtol=1e-10, atol=1e-12)
    assert_allclose(dx, xt.grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("eps", [1e-5, 0.5])
def test_layernorm(eps):
    """y = (x - μ)/√(σ² + ε) ⊙ scale + shift over the last axis;  dx, dscale, dshift."""
    rng = np.random.default_rng(5)
    x = 2.0 * rng.standard_normal((2, 3, 6)) + 0.5  # (B, T, D), variance ~4: ε = 0.5 shows
    scale = 1.0 + 0.5 * rng.standard_normal(6)  # not 1: with scale = 1 bugs in dx can cancel
    shift = rng.standard_normal(6)
    y, cache = layernorm_forward(x, scale, shift, eps=eps)
    dy = rng.standard_normal(y.shape)
    dx, dscale, dshift = layernorm_backward(dy, cache)

    xt, scale_t, shift_t = t(x), t(scale), t(shift)
    yt = F.layer_norm(xt, (6,), scale_t, shift_t, eps=eps)
    yt.backward(torch.from_numpy(dy))

    assert_allclose(y, yt.detach(), rtol=1e-10, atol=1e-12)
    assert_allclose(dx, xt.grad, rtol=1e-10, atol=1e-12)
    assert_allclose(dscale, scale_t.grad, rtol=1e-10, atol=1e-12)
    assert_allclose(dshift, shift_t.grad, rtol=1e-10, atol=1e-12)


# ---- cross entropy -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ignore_index", "drop"),
    [(-100, 0.0), (-100, 0.4), (2, 0.0)],
    ids=["none ignored", "40% set to -100", "class 2 ignored"],
)
def test_cross_entropy(ignore_index, drop):
    """loss = -(1/n) Σ_kept log softmax(z)[y];  dz = dloss/n · (softmax(z) - onehot(y)) if kept."""
    rng = np.random.default_rng(11)
    logits = 3.0 * rng.standard_normal((3, 4, 5))  # (B, T, V)
    targets = rng.integers(0, 5, (3, 4))  # (B, T); with ignore_index = 2 the 2s are left out
    targets[rng.random(targets.shape) < drop] = ignore_index
    n = int((targets != ignore_index).sum())  # kept targets: the loss is their mean
    loss, cache = cross_entropy_forward(logits, targets, ignore_index=ignore_index)
    dloss = rng.standard_normal(())  # the loss is a scalar; its upstream gradient is still random
    dlogits = cross_entropy_backward(dloss, cache)

    zt = t(logits)
    # F.cross_entropy wants (N, V) logits and (N,) targets
    loss_t = F.cross_entropy(
        zt.reshape(-1, 5), torch.from_numpy(targets).reshape(-1), ignore_index=ignore_index
    )
    loss_t.backward(torch.from_numpy(dloss))

    assert (n < targets.size) == (drop > 0 or ignore_index == 2)  # some left out iff meant to
    assert_allclose(loss, loss_t.detach(), rtol=1e-10, atol=1e-12)
    assert_allclose(dlogits, zt.grad, rtol=1e-10, atol=1e-12 / n)  # dz is O(1/n)
