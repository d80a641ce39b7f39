"""Qwen3's ops in the regimes the parity sweep (test_parity_ops.py, twinlm/parity/opcases_qwen3.py)
does not draw, and RoPE against transformers' own functions:

- RoPE equals transformers' apply_rotary_pos_emb (rotate-half), and our float32 angle tables equal
  transformers' Qwen3RotaryEmbedding's to the last bit or two at positions up to 32767, while
  float64 angles differ from them by up to ~1e-3 there (why a float64 reference needs float64
  angles); backward is the inverse rotation; a start offset gives the rows of a longer table.
- RMSNorm on zero rows, one-feature rows and rows of huge or tiny scale; SiLU saturated at
  |x| 300–400; GQA's kv gradient is the sum over its group, multi-query and multi-head included.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hf_qwen3 import hf_config
from transformers.models.qwen3.modeling_qwen3 import Qwen3RotaryEmbedding, apply_rotary_pos_emb

import numpy_impl
import torch_impl
from twinlm.parity.harness import rel_error
from twinlm.shared.config import get_config


def _leaf(a):
    return torch.tensor(a, requires_grad=True)


# ---- RoPE ---------------------------------------------------------------------------------------


def test_rope_is_transformers_apply_rotary_pos_emb(record_error):
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, 4, 7, 16)), rng.standard_normal((2, 2, 7, 16))
    cos, sin = numpy_impl.rope_angles(np.arange(100, 107), 16, 1e6, np.float64)  # (7, 8)
    full = (torch.from_numpy(np.concatenate([t, t], -1))[None] for t in (cos, sin))  # (1, 7, 16)
    ref_q, ref_k = apply_rotary_pos_emb(torch.from_numpy(q), torch.from_numpy(k), *full)
    for x, ref in ((q, ref_q), (k, ref_k)):
        ours = numpy_impl.rope_forward(x, cos, sin)[0]
        t_ours = torch_impl.rope(torch.from_numpy(x), torch.from_numpy(cos), torch.from_numpy(sin))
        record_error("rope", "vs apply_rotary_pos_emb (f64)", rel_error(ours, ref.numpy()), 1e-15)
        record_error("rope", "torch_impl vs apply_rotary (f64)", rel_error(t_ours.numpy(), ref.numpy()), 1e-15)  # fmt: skip


def test_float32_angles_are_transformers_float32_angles():
    cfg = get_config("qwen3-0.6b")
    rotary = Qwen3RotaryEmbedding(hf_config(cfg))
    positions = np.array([0, 1, 2, 1000, 20000, 32767])
    x = torch.zeros(1, dtype=torch.float32)
    hf_cos, hf_sin = (t[0, :, :64].numpy() for t in rotary(x, torch.from_numpy(positions)[None]))
    for dtype, backend in ((np.float32, "numpy"), (torch.float32, "torch")):
        if backend == "numpy":
            cos, sin = numpy_impl.rope_angles(positions, 128, 1e6, dtype)
        else:
            cos, sin = (t.numpy() for t in torch_impl.rope_angles(torch.from_numpy(positions), 128, 1e6, dtype))  # fmt: skip
        assert cos.dtype == np.float32
        # The same float32 arithmetic, up to a last-bit difference in a library's pow or cos: the
        # angle p·θ is then one float32 ulp away, which at p = 20000 is 2e-3 radians.
        tol = np.spacing(positions.astype(np.float32))[:, None] + 3e-7  # (T, 1) ulp(p) ≥ ulp(p·θ)
        assert (np.abs(cos - hf_cos) <= tol).all() and (np.abs(sin - hf_sin) <= tol).all()
        assert (np.abs(cos - hf_cos)[:3] <= 3e-7).all()  # small positions: cos's own rounding
    cos64, _ = numpy_impl.rope_angles(positions, 128, 1e6, np.float64)
    far = np.max(np.abs(cos64[-1] - hf_cos[-1]))
    assert 1e-5 < far < 1e-2  # float32 angles at position 32767 are off by ~1e-3: not float64


@pytest.mark.parametrize("start", [0, 5, 30000])
def test_rope_backward_is_the_inverse_rotation_and_start_offsets_slice(start):
    rng = np.random.default_rng(start)
    x = rng.standard_normal((2, 3, 5, 8))
    cos, sin = numpy_impl.rope_angles(np.arange(start, start + 5), 8, 1e4, np.float64)
    y, cache = numpy_impl.rope_forward(x, cos, sin)
    assert np.allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-14)
    np.testing.assert_allclose(numpy_impl.rope_backward(y, cache), x, rtol=0, atol=1e-14)
    long_cos, long_sin = numpy_impl.rope_angles(np.arange(start + 5), 8, 1e4, np.float64)
    np.testing.assert_array_equal(cos, long_cos[start:])
    np.testing.assert_array_equal(sin, long_sin[start:])


def test_rope_rejects_bad_shapes():
    cos, sin = numpy_impl.rope_angles(np.arange(4), 8, 1e4)
    with pytest.raises(ValueError, match="x must have an even last dimension"):
        numpy_impl.rope_forward(np.zeros((4, 7)), cos, sin)
    with pytest.raises(ValueError, match=r"cos must have shape \(3, 4\)"):
        torch_impl.rope(torch.zeros(3, 8), torch.from_numpy(cos), torch.from_numpy(sin))


# ---- RMSNorm ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x",
    [
        np.zeros((2, 6)),  # zero rows: y = 0, dx = g / √ε
        np.full((2, 6), 3.0),  # constant rows
        np.array([[0.7], [-2.0], [0.0]]),  # one feature: flat, dx ≈ ε g / x³ … tiny but exact
        1e4 * np.random.default_rng(1).standard_normal((3, 6)),  # huge rows
        1e-4 * np.random.default_rng(2).standard_normal((3, 6)),  # rows below √ε
    ],
    ids=["zero", "constant", "one-feature", "huge", "tiny"],
)
def test_rmsnorm_edge_rows_three_ways(x, record_error):
    rng = np.random.default_rng(0)
    w = 1 + 0.3 * rng.standard_normal(x.shape[-1])
    dy = rng.standard_normal(x.shape)
    y, cache = numpy_impl.rmsnorm_forward(x, w, 1e-6)
    dx, dw = numpy_impl.rmsnorm_backward(dy, cache)
    assert np.isfinite(dx).all() and np.isfinite(dw).all()
    for fn in (lambda a, b: torch_impl.rmsnorm(a, b, 1e-6), lambda a, b: F.rms_norm(a, a.shape[-1:], b, 1e-6)):  # fmt: skip
        xt, wt = _leaf(x), _leaf(w)
        yt = fn(xt, wt)
        yt.backward(torch.from_numpy(dy))
        record_error(
            "rmsnorm edge rows", "y (f64)", rel_error(y, yt.detach().numpy(), 1e-300), 1e-12
        )
        scale = max(np.abs(xt.grad.numpy()).max(), np.abs(wt.grad.numpy()).max())
        for ours, ref in ((dx, xt.grad), (dw, wt.grad)):
            record_error("rmsnorm edge rows", "grads (f64)", rel_error(ours, ref.numpy(), 1e-3 * scale), 1e-10)  # fmt: skip
    if not x.any():
        np.testing.assert_array_equal(y, 0)
        np.testing.assert_allclose(dx, dy * w / np.sqrt(1e-6), rtol=1e-15)


# ---- SiLU ---------------------------------------------------------------------------------------


def test_silu_saturates_without_overflow():
    x = np.array([-400.0, -300.0, 300.0, 400.0])
    for dtype in (np.float32, np.float64):
        xs = x.astype(dtype)
        with np.errstate(all="raise"):  # no overflow, no invalid value
            y, cache = numpy_impl.silu_forward(xs)
            dx = numpy_impl.silu_backward(np.ones_like(xs), cache)
        # x > 0: y = x, dy/dx = 1 exactly; x < 0: 0 in float32, ~1e-128 and less in float64
        np.testing.assert_array_equal(y[2:], xs[2:])
        np.testing.assert_array_equal(dx[2:], 1)
        assert (np.abs(y[:2]) <= 1e-120).all() and (np.abs(dx[:2]) <= 1e-120).all()
        for fn in (torch_impl.silu, F.silu):
            t = _leaf(xs)
            ref = fn(t)
            ref.backward(torch.ones_like(t))
            np.testing.assert_allclose(y, ref.detach().numpy(), rtol=1e-6, atol=0)
            np.testing.assert_allclose(dx, t.grad.numpy(), rtol=1e-6, atol=0)


# ---- grouped-query attention ---------------------------------------------------------------------


@pytest.mark.parametrize(("heads", "kv_heads"), [(6, 2), (4, 1), (3, 3)], ids=["gqa", "mqa", "mha"])
@pytest.mark.parametrize("t_q", [1, 5])
def test_gqa_is_attention_over_repeated_kv_with_group_summed_grads(
    heads, kv_heads, t_q, record_error
):
    """grouped_query_attention(q, k, v) = attention(q, repeat(k), repeat(v)) (transformers'
    repeat_kv layout), and its dk, dv are that attention's per-head dk, dv summed over each group.
    t_q 1 with 4 cached keys is a generation step."""
    rng = np.random.default_rng(heads + t_q)
    G, t_k = heads // kv_heads, t_q + 4
    q = rng.standard_normal((2, heads, t_q, 8))
    k, v = rng.standard_normal((2, kv_heads, t_k, 8)), rng.standard_normal((2, kv_heads, t_k, 8))
    dy = rng.standard_normal(q.shape)
    y, cache = numpy_impl.grouped_query_attention_forward(q, k, v)
    dq, dk, dv = numpy_impl.grouped_query_attention_backward(dy, cache)
    rep = lambda a: np.repeat(a, G, axis=1)  # noqa: E731  (B, H, Tk, d), head h reads kv head h // G
    y_ref, cache_ref = numpy_impl.attention_forward(q, rep(k), rep(v))
    dq_ref, dk_rep, dv_rep = numpy_impl.attention_backward(dy, cache_ref)
    group_sum = lambda a: a.reshape(2, kv_heads, G, t_k, 8).sum(axis=2)  # noqa: E731
    record_error(
        "grouped_query_attention", "vs repeated-kv attention (f64)", rel_error(y, y_ref), 1e-14
    )
    for ours, ref in ((dq, dq_ref), (dk, group_sum(dk_rep)), (dv, group_sum(dv_rep))):
        record_error(
            "grouped_query_attention", "grads vs group sums (f64)", rel_error(ours, ref), 1e-13
        )
    t = {n: _leaf(a) for n, a in (("q", q), ("k", k), ("v", v))}
    torch_impl.grouped_query_attention(t["q"], t["k"], t["v"]).backward(torch.from_numpy(dy))
    for ours, name in ((dq, "q"), (dk, "k"), (dv, "v")):
        record_error("grouped_query_attention", "numpy vs torch_impl (f64)", rel_error(ours, t[name].grad.numpy()), 1e-13)  # fmt: skip


def test_gqa_rejects_heads_that_do_not_group():
    q, k = np.zeros((1, 5, 2, 4)), np.zeros((1, 2, 2, 4))
    with pytest.raises(
        ValueError, match=r"q heads \(5\) must be divisible by key/value heads \(2\)"
    ):
        numpy_impl.grouped_query_attention_forward(q, k, k)
    with pytest.raises(ValueError, match="causal attention needs no more queries than keys"):
        numpy_impl.grouped_query_attention_forward(np.zeros((1, 4, 3, 4)), k, k)
