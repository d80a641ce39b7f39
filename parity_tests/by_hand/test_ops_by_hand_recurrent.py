"""The recurrent cells by hand: LSTM, GRU (torch's reset-after and Cho's reset-before) and the
vanilla RNN (tanh, relu), the NumPy forward and hand-written backward next to torch autograd on
built-ins (never torch_impl).

Read test_ops_by_hand.py first: the same four steps and the same tolerance (rtol 1e-10, atol 1e-12
for the O(1) values here) hold in this file. The cells share torch's layout: weight_ih (G·H, I),
weight_hh (G·H, H) and two independent biases (G·H,), the G gates' rows stacked. Cho's GRU has no
torch built-in: its reference is written out from F.linear, torch.sigmoid and torch.tanh.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import leaf
from numpy.testing import assert_allclose

from numpy_impl import (
    gru_cell_backward,
    gru_cell_forward,
    lstm_cell_backward,
    lstm_cell_forward,
    rnn_cell_backward,
    rnn_cell_forward,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py: fastest for tiny ops
t = leaf  # t(a): a float64 leaf tensor that collects its gradient in .grad


# ---- LSTM ----------------------------------------------------------------------------------------


def test_lstm_cell():
    """[i f g o] = [σ σ tanh σ](x W_ihᵀ + b_ih + h W_hhᵀ + b_hh), c' = f c + i g, h' = o tanh c'."""
    rng = np.random.default_rng(12)
    B, I, H = 3, 4, 5
    x, h, c = rng.standard_normal((B, I)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    w = {
        "weight_ih": rng.standard_normal((4 * H, I)) / I**0.5,  # rows: gates i, f, g, o
        "weight_hh": rng.standard_normal((4 * H, H)) / H**0.5,
        "bias_ih": rng.standard_normal(4 * H),  # two independent biases, as torch has them
        "bias_hh": rng.standard_normal(4 * H),
    }
    (h1, c1), cache = lstm_cell_forward(x, h, c, **w)
    dh1, dc1 = rng.standard_normal((B, H)), rng.standard_normal((B, H))  # upstream, for h' and c'
    dx, dh, dc, *dw = lstm_cell_backward(dh1, dc1, cache)  # dw: in the order of w

    cell = torch.nn.LSTMCell(I, H, dtype=torch.float64)
    with torch.no_grad():
        for name, value in w.items():
            getattr(cell, name).copy_(torch.from_numpy(value))
    xt, ht, ct = t(x), t(h), t(c)
    h1t, c1t = cell(xt, (ht, ct))
    torch.autograd.backward([h1t, c1t], [torch.from_numpy(dh1), torch.from_numpy(dc1)])

    assert_allclose(h1, h1t.detach(), rtol=1e-10, atol=1e-12)
    assert_allclose(c1, c1t.detach(), rtol=1e-10, atol=1e-12)
    assert_allclose(dx, xt.grad, rtol=1e-10, atol=1e-12)
    assert_allclose(dh, ht.grad, rtol=1e-10, atol=1e-12)
    assert_allclose(dc, ct.grad, rtol=1e-10, atol=1e-12)
    for name, grad in zip(w, dw):
        assert_allclose(grad, getattr(cell, name).grad, rtol=1e-10, atol=1e-12, err_msg=name)


# ---- GRU, both conventions -----------------------------------------------------------------------


def test_gru_cell():
    """torch's GRU (reset after): [r z] = σ(x W_i{r,z}ᵀ + b_i{r,z} + h W_h{r,z}ᵀ + b_h{r,z}),
    n = tanh(x W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn)), h' = (1 - z) ⊙ n + z ⊙ h."""
    rng = np.random.default_rng(18)
    B, I, H = 3, 4, 5
    x, h = rng.standard_normal((B, I)), rng.standard_normal((B, H))
    w = {
        "weight_ih": rng.standard_normal((3 * H, I)) / I**0.5,  # rows: gates r, z, n
        "weight_hh": rng.standard_normal((3 * H, H)) / H**0.5,
        "bias_ih": rng.standard_normal(3 * H),  # two independent biases, as torch has them
        "bias_hh": rng.standard_normal(3 * H),
    }
    h1, cache = gru_cell_forward(x, h, **w, reset_after=True)
    dh1 = rng.standard_normal((B, H))
    dx, dh, *dw = gru_cell_backward(dh1, cache)  # dw: in the order of w

    cell = torch.nn.GRUCell(I, H, dtype=torch.float64)
    with torch.no_grad():
        for name, value in w.items():
            getattr(cell, name).copy_(torch.from_numpy(value))
    xt, ht = t(x), t(h)
    h1t = cell(xt, ht)
    h1t.backward(torch.from_numpy(dh1))

    assert_allclose(h1, h1t.detach(), rtol=1e-10, atol=1e-12)
    assert_allclose(dx, xt.grad, rtol=1e-10, atol=1e-12)
    assert_allclose(dh, ht.grad, rtol=1e-10, atol=1e-12)
    for name, grad in zip(w, dw):
        assert_allclose(grad, getattr(cell, name).grad, rtol=1e-10, atol=1e-12, err_msg=name)


def test_gru_cell_reset_before():
    """Cho et al. 2014, Karpathy's char-rnn: the reset gate acts on h before its matmul,
    n = tanh(x W_inᵀ + b_in + (r ⊙ h) W_hnᵀ + b_hn); r, z and h' as in torch's cell."""
    rng = np.random.default_rng(19)
    B, I, H = 3, 4, 5
    x, h = rng.standard_normal((B, I)), rng.standard_normal((B, H))
    w = {
        "weight_ih": rng.standard_normal((3 * H, I)) / I**0.5,  # rows: gates r, z, n
        "weight_hh": rng.standard_normal((3 * H, H)) / H**0.5,
        "bias_ih": rng.standard_normal(3 * H),
        "bias_hh": rng.standard_normal(3 * H),
    }
    h1, cache = gru_cell_forward(x, h, **w, reset_after=False)
    dh1 = rng.standard_normal((B, H))
    dx, dh, *dw = gru_cell_backward(dh1, cache)  # dw: in the order of w

    # No torch built-in: the cell written out, gate by gate.
    xt, ht, wt = t(x), t(h), {name: t(value) for name, value in w.items()}
    gi_r, gi_z, gi_n = F.linear(xt, wt["weight_ih"], wt["bias_ih"]).chunk(3, dim=-1)  # (B, H)
    W_hr, W_hz, W_hn = wt["weight_hh"].chunk(3)  # (H, H) each
    b_hr, b_hz, b_hn = wt["bias_hh"].chunk(3)  # (H,) each
    r = torch.sigmoid(gi_r + F.linear(ht, W_hr, b_hr))
    z = torch.sigmoid(gi_z + F.linear(ht, W_hz, b_hz))
    n = torch.tanh(gi_n + F.linear(r * ht, W_hn, b_hn))  # torch's cell: gi_n + r ⊙ (h W_hnᵀ + b_hn)
    h1t = (1 - z) * n + z * ht
    h1t.backward(torch.from_numpy(dh1))

    assert_allclose(h1, h1t.detach(), rtol=1e-10, atol=1e-12)
    assert_allclose(dx, xt.grad, rtol=1e-10, atol=1e-12)
    assert_allclose(dh, ht.grad, rtol=1e-10, atol=1e-12)
    for name, grad in zip(w, dw):
        assert_allclose(grad, wt[name].grad, rtol=1e-10, atol=1e-12, err_msg=name)


# ---- vanilla RNN ---------------------------------------------------------------------------------


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_cell(nonlinearity):
    """h' = act(a), a = x W_ihᵀ + b_ih + h W_hhᵀ + b_hh;  da = dh' ⊙ act'(a): 1 - h'² or [a > 0]."""
    rng = np.random.default_rng(20)
    B, I, H = 3, 4, 5
    x, h = rng.standard_normal((B, I)), rng.standard_normal((B, H))
    w = {
        "weight_ih": rng.standard_normal((H, I)) / I**0.5,
        "weight_hh": rng.standard_normal((H, H)) / H**0.5,
        "bias_ih": rng.standard_normal(H),
        "bias_hh": rng.standard_normal(H),
    }
    h1, cache = rnn_cell_forward(x, h, **w, nonlinearity=nonlinearity)
    dh1 = rng.standard_normal((B, H))
    dx, dh, *dw = rnn_cell_backward(dh1, cache)  # dw: in the order of w

    cell = torch.nn.RNNCell(I, H, nonlinearity=nonlinearity, dtype=torch.float64)
    with torch.no_grad():
        for name, value in w.items():
            getattr(cell, name).copy_(torch.from_numpy(value))
    xt, ht = t(x), t(h)
    h1t = cell(xt, ht)
    h1t.backward(torch.from_numpy(dh1))

    if nonlinearity == "relu":
        assert 0 < (h1 == 0).sum() < h1.size  # units on both sides of the kink
    assert_allclose(h1, h1t.detach(), rtol=1e-10, atol=1e-12)
    assert_allclose(dx, xt.grad, rtol=1e-10, atol=1e-12)
    assert_allclose(dh, ht.grad, rtol=1e-10, atol=1e-12)
    for name, grad in zip(w, dw):
        assert_allclose(grad, getattr(cell, name).grad, rtol=1e-10, atol=1e-12, err_msg=name)
