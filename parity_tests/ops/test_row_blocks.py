"""Blocks and threads change nothing: every NumPy op that runs its passes on blocks of rows over
threads (twinlm/shared/blocks.py) gives bit for bit its one-block, one-thread result when the
blocks are a dozen elements and two threads share them. The parity tests' small shapes fit in one
block, so without this test the block edges would go unchecked."""

from __future__ import annotations

import numpy as np
import pytest

import numpy_impl
import twinlm.shared.blocks as blocks
from numpy_impl.gelu import gelu_inplace
from numpy_impl.loss import cross_entropy_backward_inplace, cross_entropy_inplace
from twinlm.shared.init import init_lstm_params


def _gelu(rng, dtype, approximate):
    x = rng.uniform(-6, 6, (2, 37, 5)).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    y, cache = numpy_impl.gelu_forward(x, approximate)
    y_in_place, cache_in_place = gelu_inplace(x.copy(), approximate)
    dx = numpy_impl.gelu_backward(dy, cache)
    return [y, dx, y_in_place, numpy_impl.gelu_backward(dy, cache_in_place)]


def _layernorm(rng, dtype, eps):
    x = (3 * rng.standard_normal((3, 13, 7)) + 1).astype(dtype)
    x[0, 0] = 2.5  # a constant row
    scale, shift = (rng.standard_normal(7).astype(dtype) for _ in range(2))
    y, cache = numpy_impl.layernorm_forward(x, scale, shift, eps)
    return [y, *numpy_impl.layernorm_backward(rng.standard_normal(x.shape).astype(dtype), cache)]


def _cross_entropy(rng, dtype, ignore_index):
    logits = (4 * rng.standard_normal((3, 11, 9))).astype(dtype)
    targets = rng.integers(0, 9, (3, 11))
    targets[0, ::3] = ignore_index
    logits[1, 0, targets[1, 0]] = 40.0  # the target holds nearly all the probability
    dloss = np.asarray(rng.standard_normal(), dtype)
    loss, cache = numpy_impl.cross_entropy_forward(logits, targets, ignore_index)
    dlogits = numpy_impl.cross_entropy_backward(dloss, cache)
    loss2, cache2 = cross_entropy_inplace(logits.copy(), targets, ignore_index)
    return [loss, dlogits, loss2, cross_entropy_backward_inplace(dloss, cache2)]


def _attention(rng, dtype, causal, p):
    q = rng.standard_normal((2, 3, 11, 4)).astype(dtype)
    k, v = (rng.standard_normal((2, 3, 13, 4)).astype(dtype) for _ in range(2))  # Tq < Tk
    mask = (rng.random((2, 3, 11, 13)) > p).astype(dtype) if p else None
    y, cache = numpy_impl.attention_forward(q, k, v, causal, mask, p)
    return [y, *numpy_impl.attention_backward(rng.standard_normal(y.shape).astype(dtype), cache)]


def _lstm(rng, dtype):
    params = init_lstm_params(5, 6, num_layers=2, seed=1, dtype=dtype)
    x = rng.standard_normal((3, 9, 5)).astype(dtype)
    out, (h_n, c_n), cache = numpy_impl.lstm_forward(x, params)
    dstate = tuple(rng.standard_normal(h_n.shape).astype(dtype) for _ in range(2))
    dx, dstate0, grads = numpy_impl.lstm_backward(
        rng.standard_normal(out.shape).astype(dtype), dstate, cache
    )
    return [out, h_n, c_n, dx, *dstate0, *grads.values()]


def _adamw(rng, dtype):
    params = {f"p{n}": rng.standard_normal(n).astype(dtype) for n in (5, 37, 12, 1)}
    opt = numpy_impl.AdamW(params, lr=0.01, weight_decay=0.1)
    for scale in (1.0, 0.3, 1.0):
        opt.step({k: rng.standard_normal(p.shape).astype(dtype) for k, p in params.items()}, scale)
    return [*params.values(), *opt.exp_avg.values(), *opt.exp_avg_sq.values()]


CASES = {
    "gelu[tanh]": lambda rng, dtype: _gelu(rng, dtype, "tanh"),
    "gelu[none]": lambda rng, dtype: _gelu(rng, dtype, "none"),
    "layernorm[eps=1e-5]": lambda rng, dtype: _layernorm(rng, dtype, 1e-5),
    "layernorm[eps=0.1]": lambda rng, dtype: _layernorm(rng, dtype, 0.1),
    "cross_entropy[ignore=-100]": lambda rng, dtype: _cross_entropy(rng, dtype, -100),
    "cross_entropy[ignore=3]": lambda rng, dtype: _cross_entropy(rng, dtype, 3),
    "attention[causal]": lambda rng, dtype: _attention(rng, dtype, True, 0.0),
    "attention[causal, dropout]": lambda rng, dtype: _attention(rng, dtype, True, 0.3),
    "attention[full]": lambda rng, dtype: _attention(rng, dtype, False, 0.0),
    "lstm": _lstm,
    "adamw": _adamw,
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", list(CASES))
def test_blocks_and_threads_change_nothing(case, dtype, monkeypatch):
    monkeypatch.setattr(blocks, "THREADS", 1)
    one_block = CASES[case](np.random.default_rng(0), dtype)
    monkeypatch.setattr(blocks, "BLOCK_ELEMENTS", 12)
    monkeypatch.setattr(blocks, "THREADS", 2)
    in_blocks = CASES[case](np.random.default_rng(0), dtype)
    assert len(in_blocks) == len(one_block)
    for got, want in zip(in_blocks, one_block):
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_a_wrong_block_edge_is_caught(monkeypatch):
    """The comparison above can fail: blocks that each run their last row again (an in-place
    update applied twice at every block edge; in one block there is no edge)."""
    import numpy_impl.loss as loss

    original = blocks.for_blocks

    def overlapping(fn, n, block):
        original(lambda lo, hi: (fn(lo, hi), hi < n and fn(hi - 1, hi)), n, block)

    monkeypatch.setattr(loss, "for_blocks", overlapping)
    with pytest.raises(AssertionError):
        test_blocks_and_threads_change_nothing(
            "cross_entropy[ignore=-100]", np.float64, monkeypatch
        )
