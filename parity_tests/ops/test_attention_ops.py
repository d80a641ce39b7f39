"""Attention, multi-head attention and feed-forward: edge regimes, the nn.Modules, bad input.

The generic hypothesis sweep (test_parity_ops.py) covers parity at ordinary sizes. Here:
- T = 1 and every other dimension 1;
- the KV-cache layout (Tq < Tk, causal) against the full sequence's last Tq rows;
- the key-projection bias, whose gradient is 0 in exact arithmetic;
- dq's invariance to one offset added to every key and another to every value;
- MultiHeadAttention / FeedForward against the functional ops, NumPy and the book's classes
  written with torch built-ins (state_dict keys, the book's `mask` buffer on load);
- bad input in both backends.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import BookMultiHeadAttention
from torch import nn

import numpy_impl
import numpy_impl.fast.attention as fast_attention
import torch_impl
from twinlm.parity.harness import TOL_FLOAT64, compare_float64, random_douts, rel_error, run_numpy
from twinlm.parity.opcases import CASES_BY_NAME

MHA_KEYS = ["W_query.weight", "W_key.weight", "W_value.weight", "out_proj.weight", "out_proj.bias"]
MHA_BIAS_KEYS = ["W_query.weight", "W_query.bias", "W_key.weight", "W_key.bias", "W_value.weight"]
MHA_BIAS_KEYS += ["W_value.bias", "out_proj.weight", "out_proj.bias"]
FFN_KEYS = ["layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias"]
EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, copy=True))


# ---- the book's classes, from torch built-ins (the independent reference for the modules) --------
# BookMultiHeadAttention: in helpers.py, shared with test_gpt_model.py.


class BookFeedForward(nn.Module):
    """Chapter 4's FeedForward, with torch's own tanh GELU in place of the book's GELU class."""

    def __init__(self, cfg):
        super().__init__()
        d = cfg["emb_dim"]
        self.layers = nn.Sequential(
            nn.Linear(d, 4 * d), nn.GELU(approximate="tanh"), nn.Linear(4 * d, d)
        )

    def forward(self, x):
        return self.layers(x)


def _mha_params(rng, d_in, d_out, qkv_bias, dtype=np.float64) -> dict[str, np.ndarray]:
    params = {}
    for name in ("W_query", "W_key", "W_value"):
        params[f"{name}.weight"] = (rng.standard_normal((d_out, d_in)) / math.sqrt(d_in)).astype(
            dtype
        )
        if qkv_bias:
            params[f"{name}.bias"] = rng.standard_normal(d_out).astype(dtype)
    params["out_proj.weight"] = (rng.standard_normal((d_out, d_out)) / math.sqrt(d_out)).astype(
        dtype
    )
    params["out_proj.bias"] = rng.standard_normal(d_out).astype(dtype)
    return params


def _mha_ref(x, params, num_heads, keep=None, p=0.0) -> torch.Tensor:
    """F.linear + SDPA (or, with a replayed dropout mask, softmax ⊙ mask / (1 - p))."""
    B, T_, _ = x.shape

    def heads(name):
        h = F.linear(x, params[f"{name}.weight"], params.get(f"{name}.bias"))
        return h.view(B, T_, num_heads, -1).transpose(1, 2)

    q, k, v = heads("W_query"), heads("W_key"), heads("W_value")
    if keep is None:
        ctx = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    else:
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
        future = torch.ones(T_, T_, dtype=torch.bool).triu(diagonal=1)
        weights = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
        ctx = (weights * (keep / (1 - p))) @ v
    ctx = ctx.transpose(1, 2).reshape(B, T_, -1)
    return F.linear(ctx, params["out_proj.weight"], params["out_proj.bias"])


# ---- edge regimes ---------------------------------------------------------------------------------

ALL_ONES = {
    "attention": {"batch": 1, "heads": 1, "seq": 1, "past": 0, "head_dim": 1},
    "attention[non-causal]": {"batch": 1, "heads": 1, "seq": 1, "kv_seq": 1, "head_dim": 1},
    "attention[dropout]": {"batch": 1, "heads": 1, "seq": 1, "past": 0, "head_dim": 1},
    "multihead_attention": {"batch": 1, "seq": 1, "d_in": 1, "heads": 1, "head_dim": 1},
    "multihead_attention[qkv_bias]": {"batch": 1, "seq": 1, "d_in": 1, "heads": 1, "head_dim": 1},
    "feedforward": {"batch": 1, "seq": 1, "emb": 1, "hidden": 1},
}
ONE_TOKEN = {  # T = 1 with the other sizes ordinary
    "attention": {"batch": 2, "heads": 3, "seq": 1, "past": 0, "head_dim": 8},
    "multihead_attention": {"batch": 2, "seq": 1, "d_in": 6, "heads": 3, "head_dim": 4},
    "multihead_attention[qkv_bias]": {"batch": 2, "seq": 1, "d_in": 6, "heads": 3, "head_dim": 4},
    "feedforward": {"batch": 2, "seq": 1, "emb": 6, "hidden": 24},
}
SIZE_ONE_CASES = [(name, "all ones", d) for name, d in ALL_ONES.items()]
SIZE_ONE_CASES += [(name, "T = 1", d) for name, d in ONE_TOKEN.items()]


@pytest.mark.parametrize(
    ("name", "label", "dims"), SIZE_ONE_CASES, ids=[f"{n}-{lb}" for n, lb, _ in SIZE_ONE_CASES]
)
def test_size_one_dimensions(name, label, dims, record_error):
    """A single token (the softmax over one key is exactly 1) and size-1 batch / head / width."""
    case = CASES_BY_NAME[name]
    for seed in range(3):
        rng = np.random.default_rng(seed)
        inputs = case.sample(rng, np.float64, dims)
        errors = compare_float64(case, inputs, random_douts(rng, run_numpy(case, inputs)[0]))
        record_error(name, f"float64 fwd, {label}", errors.forward, TOL_FLOAT64)
        record_error(name, f"float64 grad, {label}", errors.grad, TOL_FLOAT64)


@pytest.mark.parametrize(("t_q", "t_k"), [(1, 1), (1, 7), (3, 7), (7, 7)])
def test_kv_cache_layout_matches_last_rows_of_full_sequence(t_q, t_k, record_error):
    """Causal with Tq < Tk: the queries are the last Tq positions of a Tk-long sequence.

    Reference: attention over all Tk queries (torch SDPA, and each backend itself), last Tq rows.
    Gradients: an upstream gradient that is 0 on the first Tk - Tq rows gives the same dk, dv and
    the last Tq rows of dq."""
    rng = np.random.default_rng(t_q * 100 + t_k)
    B, H, d = 2, 3, 8
    q_full = rng.standard_normal((B, H, t_k, d))
    k = rng.standard_normal((B, H, t_k, d))
    v = rng.standard_normal((B, H, t_k, d))
    dy = rng.standard_normal((B, H, t_q, d))
    q = q_full[..., t_k - t_q :, :]
    dy_full = np.zeros((B, H, t_k, d))
    dy_full[..., t_k - t_q :, :] = dy

    sdpa = F.scaled_dot_product_attention(_t(q_full), _t(k), _t(v), is_causal=True).numpy()
    y_full, cache_full = numpy_impl.attention_forward(q_full, k, v, causal=True)
    dq_full, dk_full, dv_full = numpy_impl.attention_backward(dy_full, cache_full)

    y, cache = numpy_impl.attention_forward(q.copy(), k, v, causal=True)
    dq, dk, dv = numpy_impl.attention_backward(dy, cache)
    record_error(
        "attention", "kv-cache fwd numpy/SDPA", rel_error(y, sdpa[..., -t_q:, :]), TOL_FLOAT64
    )
    record_error(
        "attention", "kv-cache fwd numpy", rel_error(y, y_full[..., -t_q:, :]), TOL_FLOAT64
    )
    for got, want in ((dq, dq_full[..., -t_q:, :]), (dk, dk_full), (dv, dv_full)):
        record_error("attention", "kv-cache grad numpy", rel_error(got, want), TOL_FLOAT64)

    tq, tk, tv = (_t(a).requires_grad_(True) for a in (q, k, v))
    y_t = torch_impl.attention(tq, tk, tv, causal=True)
    y_t.backward(_t(dy))
    record_error(
        "attention",
        "kv-cache fwd torch_impl/SDPA",
        rel_error(y_t.detach().numpy(), sdpa[..., -t_q:, :]),
        TOL_FLOAT64,
    )
    for got, want in ((tq.grad, dq_full[..., -t_q:, :]), (tk.grad, dk_full), (tv.grad, dv_full)):
        record_error(
            "attention", "kv-cache grad torch_impl", rel_error(got.numpy(), want), TOL_FLOAT64
        )


@pytest.mark.parametrize("row_block", [1, 3])
@pytest.mark.parametrize(("t_q", "t_k", "causal", "p"), [(7, 7, True, 0.0), (4, 9, True, 0.0),
                         (7, 7, True, 0.3), (5, 9, False, 0.0), (8, 3, False, 0.3)])  # fmt: skip
def test_query_row_blocks_match_torch_impl(row_block, t_q, t_k, causal, p, record_error,
                                           monkeypatch):  # fmt: skip
    """The fast path's attention in several query-row blocks (the sweep's shapes fit in one
    block): causal blocks that skip keys, with a KV cache (Tq < Tk) and dropout, against
    torch_impl."""
    monkeypatch.setattr(fast_attention, "ROW_BLOCK", row_block)
    rng = np.random.default_rng(row_block * 1000 + t_q * 10 + t_k)
    q, dy = rng.standard_normal((2, 3, t_q, 4)), rng.standard_normal((2, 3, t_q, 4))
    k, v = rng.standard_normal((2, 3, t_k, 4)), rng.standard_normal((2, 3, t_k, 4))
    mask = (rng.random((2, 3, t_q, t_k)) >= p).astype(np.float64) if p else None
    y, cache = fast_attention.attention_forward(q, k, v, causal, mask, p)
    grads = fast_attention.attention_backward(dy, cache)
    tq, tk, tv = (_t(a).requires_grad_(True) for a in (q, k, v))
    y_t = torch_impl.attention(tq, tk, tv, causal, None if mask is None else _t(mask), p)
    y_t.backward(_t(dy))
    label = f"attention[{row_block}-row blocks]"
    record_error(label, "fwd numpy/torch_impl", rel_error(y, y_t.detach().numpy()), TOL_FLOAT64)
    for got, want in zip(grads, (tq.grad, tk.grad, tv.grad)):
        record_error(label, "grad numpy/torch_impl", rel_error(got, want.numpy()), TOL_FLOAT64)


def test_non_causal_allows_more_queries_than_keys(record_error):
    rng = np.random.default_rng(0)
    q, k, v = (
        rng.standard_normal((2, 5, 4)),
        rng.standard_normal((2, 3, 4)),
        rng.standard_normal((2, 3, 4)),
    )
    ref = F.scaled_dot_product_attention(_t(q), _t(k), _t(v)).numpy()
    y, _ = numpy_impl.attention_forward(q, k, v, causal=False)
    y_t = torch_impl.attention(_t(q), _t(k), _t(v), causal=False).numpy()
    record_error(
        "attention[non-causal]",
        "Tq > Tk fwd",
        max(rel_error(y, ref), rel_error(y_t, ref)),
        TOL_FLOAT64,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_key_bias_gradient_is_zero_and_agrees(dtype, record_error):
    """A constant added to every key shifts each score row uniformly, which softmax ignores: the
    key bias's gradient is 0 in exact arithmetic. Every backend must hold only rounding noise
    there (≤ 32 eps of the op's gradient scale), and in float64 the three agree like any other
    gradient. (The generic sweep holds it to the float32 standard like every other gradient.)"""
    case = CASES_BY_NAME["multihead_attention[qkv_bias]"]
    eps = EPS32 if dtype == np.float32 else EPS64
    for seed, dims in enumerate(
        [
            {"batch": 2, "seq": 8, "d_in": 12, "heads": 3, "head_dim": 4},
            {"batch": 1, "seq": 5, "d_in": 1, "heads": 1, "head_dim": 1},
            {"batch": 3, "seq": 4, "d_in": 6, "heads": 2, "head_dim": 2},
        ]
    ):
        rng = np.random.default_rng(seed)
        a = case.sample(rng, dtype, dims)
        params = {k: a[k] for k in MHA_BIAS_KEYS}
        heads = int(a["num_heads"])
        y, cache = numpy_impl.multihead_attention_forward(a["x"], params, heads)
        dy = rng.standard_normal(y.shape).astype(dtype)
        _, grads_np = numpy_impl.multihead_attention_backward(dy, cache)

        torch_grads = {}
        for label, fn in (("torch_impl", torch_impl.multihead_attention), ("torch", _mha_ref)):
            p_t = {k: _t(v).requires_grad_(True) for k, v in params.items()}
            fn(_t(a["x"]), p_t, heads).backward(_t(dy))
            torch_grads[label] = {k: v.grad.numpy() for k, v in p_t.items()}

        everything = [grads_np, *torch_grads.values()]
        scale = max(float(np.abs(g).max()) for grads in everything for g in grads.values())
        for label, grads in [("numpy", grads_np), *torch_grads.items()]:
            noise = float(np.abs(grads["W_key.bias"]).max()) / scale
            record_error(
                "multihead_attention[qkv_bias]",
                f"|dW_key.bias| {label} {np.dtype(dtype).name}",
                noise,
                32 * eps,
            )
        if dtype == np.float64:
            ref = torch_grads["torch"]["W_key.bias"]
            for label, got in (("numpy", grads_np), ("torch_impl", torch_grads["torch_impl"])):
                err = rel_error(got["W_key.bias"], ref, floor=1e-3 * scale)
                record_error(
                    "multihead_attention[qkv_bias]",
                    f"float64 dW_key.bias {label}/torch",
                    err,
                    TOL_FLOAT64,
                )


SHIFT_TOL = {np.float64: 1e-12, np.float32: 1e-4}


def _dq(backend: str, q, k, v, dy, causal: bool) -> np.ndarray:
    if backend == "numpy":
        _, cache = numpy_impl.attention_forward(q, k, v, causal)
        return numpy_impl.attention_backward(dy, cache)[0]
    q_t = _t(q).requires_grad_(True)
    torch_impl.attention(q_t, _t(k), _t(v), causal).backward(_t(dy))
    return q_t.grad.numpy()


@pytest.mark.parametrize("backend", ["numpy", "torch_impl"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dq_is_invariant_to_shifting_all_keys_and_all_values(backend, dtype, record_error):
    """One offset added to every key shifts each score row by a constant, which softmax ignores;
    one offset added to every value shifts y by that offset (the weights sum to 1). So dq must not
    change — exactly, in exact arithmetic. In floating point the rows of dS sum to rounding noise
    proportional to the value offset, which dq = dS k multiplies by the key offset: NumPy's
    backward projects that noise out (the line `dscores -= weights * dscores.sum(...)` in
    attention_backward; without it the worst case here is ~9x the float64 tolerance and ~50x the
    float32 one), torch autograd through the max subtracted in softmax. Offsets of size 100, causal
    and not, the KV-cache shape Tq < Tk."""
    worst = 0.0
    for seed, (tq, tk, causal) in enumerate([(7, 7, True), (7, 7, False), (3, 9, True)] * 3):
        rng = np.random.default_rng(seed)
        q = rng.standard_normal((2, 3, tq, 8)).astype(dtype)
        k, v = (rng.standard_normal((2, 3, tk, 8)).astype(dtype) for _ in range(2))
        dy = rng.standard_normal((2, 3, tq, 8)).astype(dtype)
        key_offset, value_offset = (100 * rng.standard_normal((2, 8))).astype(dtype)
        dq = _dq(backend, q, k, v, dy, causal)
        shifted = _dq(backend, q, k + key_offset, v + value_offset, dy, causal)
        worst = max(worst, rel_error(shifted, dq))
    name = np.dtype(dtype).name
    record_error("attention", f"dq shift invariance {backend} {name}", worst, SHIFT_TOL[dtype])


# ---- the nn.Modules -------------------------------------------------------------------------------


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_multihead_attention_module_matches_book_functional_and_numpy(qkv_bias, record_error):
    torch.manual_seed(0)
    d_in, d_out, heads, ctx_len = 6, 8, 2, 10
    book = BookMultiHeadAttention(d_in, d_out, ctx_len, 0.1, heads, qkv_bias).double().eval()
    ours = torch_impl.MultiHeadAttention(d_in, d_out, ctx_len, 0.1, heads, qkv_bias).double().eval()

    expected_keys = MHA_BIAS_KEYS if qkv_bias else MHA_KEYS
    assert sorted(ours.state_dict()) == sorted(expected_keys)  # exactly the book's, and no mask
    assert sorted(book.state_dict()) == sorted([*expected_keys, "mask"])
    ours.load_state_dict(book.state_dict())  # strict: the book's `mask` buffer is dropped

    x = torch.randn(3, 7, d_in, dtype=torch.float64)
    params = {k: v.detach() for k, v in ours.named_parameters()}
    y_book = book(x).detach()
    y_ours = ours(x)
    y_fn = torch_impl.multihead_attention(x, params, heads).detach()
    y_ref = _mha_ref(x, params, heads)
    record_error(
        "MultiHeadAttention",
        "module vs book",
        rel_error(y_ours.detach().numpy(), y_book.numpy()),
        TOL_FLOAT64,
    )
    record_error(
        "MultiHeadAttention",
        "module vs SDPA ref",
        rel_error(y_ours.detach().numpy(), y_ref.numpy()),
        TOL_FLOAT64,
    )
    assert torch.equal(y_ours.detach(), y_fn)  # one code path: the module is the functional op

    # Gradients: the module's autograd vs the NumPy backward on the same weights.
    dy = torch.randn_like(y_ours)
    y_ours.backward(dy)
    params_np = {k: v.numpy() for k, v in params.items()}
    y_np, cache = numpy_impl.multihead_attention_forward(x.numpy(), params_np, heads)
    _, grads_np = numpy_impl.multihead_attention_backward(dy.numpy(), cache)
    record_error(
        "MultiHeadAttention", "module vs numpy fwd", rel_error(y_np, y_ref.numpy()), TOL_FLOAT64
    )
    scale = max(float(np.abs(g).max()) for g in grads_np.values())
    assert sorted(grads_np) == sorted(expected_keys)
    for name, param in ours.named_parameters():
        err = rel_error(grads_np[name], param.grad.numpy(), floor=1e-3 * scale)
        record_error("MultiHeadAttention", "module vs numpy grad", err, TOL_FLOAT64)


def test_multihead_attention_module_dropout(record_error):
    """A replayed mask gives the same output in the module, the functional op, NumPy and the
    softmax ⊙ mask / (1 - p) reference; without one, training mode draws its own mask."""
    torch.manual_seed(1)
    d_in, d_out, heads, p = 4, 6, 3, 0.25
    module = torch_impl.MultiHeadAttention(d_in, d_out, 8, p, heads).double().train()
    x = torch.randn(2, 5, d_in, dtype=torch.float64)
    keep = (torch.rand(2, heads, 5, 5) >= p).double()
    params = {k: v.detach() for k, v in module.named_parameters()}
    y = module(x, dropout_mask=keep).detach()
    y_ref = _mha_ref(x, params, heads, keep=keep, p=p)
    y_np, _ = numpy_impl.multihead_attention_forward(
        x.numpy(), {k: v.numpy() for k, v in params.items()}, heads, dropout_mask=keep.numpy(), p=p
    )
    record_error(
        "MultiHeadAttention",
        "dropout replay vs ref",
        rel_error(y.numpy(), y_ref.numpy()),
        TOL_FLOAT64,
    )
    record_error(
        "MultiHeadAttention", "dropout replay numpy", rel_error(y_np, y_ref.numpy()), TOL_FLOAT64
    )
    assert torch.equal(
        y, torch_impl.multihead_attention(x, params, heads, dropout_mask=keep, p=p).detach()
    )

    y_eval = module.eval()(x).detach()
    assert not torch.allclose(y, y_eval)  # the mask did something
    torch.manual_seed(7)
    y_drawn = module.train()(x).detach()
    torch.manual_seed(7)
    assert torch.equal(y_drawn, module(x).detach())  # torch's generator drives the drawn mask
    assert not torch.allclose(y_drawn, y_eval)

    no_dropout = torch_impl.MultiHeadAttention(d_in, d_out, 8, 0.0, heads).double()
    assert torch.equal(no_dropout.train()(x), no_dropout.eval()(x))  # p = 0: nothing is drawn


def test_multihead_attention_state_dict_with_mask_loads_nested():
    """A model's state_dict holds `<prefix>.mask` for each block; the prefix is respected, other
    unexpected keys still fail under strict loading, and the caller's dict is left intact."""
    book = nn.ModuleDict({"att": BookMultiHeadAttention(4, 4, 6, 0.0, 2, qkv_bias=True)})
    ours = nn.ModuleDict({"att": torch_impl.MultiHeadAttention(4, 4, 6, 0.0, 2, qkv_bias=True)})
    state = book.state_dict()
    assert "att.mask" in state
    ours.load_state_dict(state)
    assert "att.mask" in state
    for name, value in ours.state_dict().items():
        assert torch.equal(value, state[name])
    with pytest.raises(RuntimeError, match="bogus"):
        ours.load_state_dict({**state, "att.bogus": torch.zeros(1)})


def test_feedforward_module_matches_book_functional_and_numpy(record_error):
    torch.manual_seed(0)
    cfg = {"emb_dim": 6}
    book = BookFeedForward(cfg).double()
    ours = torch_impl.FeedForward(cfg).double()
    assert sorted(ours.state_dict()) == sorted(FFN_KEYS)
    assert sorted(book.state_dict()) == sorted(FFN_KEYS)
    assert isinstance(ours.layers[1], torch_impl.GELU)
    assert ours.layers[0].weight.shape == (24, 6)  # hidden = 4 · emb_dim
    ours.load_state_dict(book.state_dict())

    x = torch.randn(2, 5, 6, dtype=torch.float64)
    params = {k: v.detach() for k, v in ours.named_parameters()}
    y = ours(x)
    record_error(
        "FeedForward",
        "module vs book",
        rel_error(y.detach().numpy(), book(x).detach().numpy()),
        TOL_FLOAT64,
    )
    assert torch.equal(y.detach(), torch_impl.feedforward(x, params))

    dy = torch.randn_like(y)
    y.backward(dy)
    y_np, cache = numpy_impl.feedforward_forward(
        x.numpy(), {k: v.numpy() for k, v in params.items()}
    )
    _, grads_np = numpy_impl.feedforward_backward(dy.numpy(), cache)
    record_error(
        "FeedForward", "module vs numpy fwd", rel_error(y_np, y.detach().numpy()), TOL_FLOAT64
    )
    assert sorted(grads_np) == sorted(FFN_KEYS)
    for name, param in ours.named_parameters():
        record_error(
            "FeedForward",
            "module vs numpy grad",
            rel_error(grads_np[name], param.grad.numpy()),
            TOL_FLOAT64,
        )


def test_feedforward_hidden_size_comes_from_the_weights(record_error):
    """Not only 4·D: the hidden width is whatever layers.0.weight says."""
    rng = np.random.default_rng(0)
    D, hidden = 5, 3
    params = {
        "layers.0.weight": rng.standard_normal((hidden, D)),
        "layers.0.bias": rng.standard_normal(hidden),
        "layers.2.weight": rng.standard_normal((D, hidden)),
        "layers.2.bias": rng.standard_normal(D),
    }
    x = rng.standard_normal((4, D))  # any leading shape
    ref = F.linear(
        F.gelu(
            F.linear(_t(x), _t(params["layers.0.weight"]), _t(params["layers.0.bias"])),
            approximate="tanh",
        ),
        _t(params["layers.2.weight"]),
        _t(params["layers.2.bias"]),
    ).numpy()
    y, _ = numpy_impl.feedforward_forward(x, params)
    y_t = torch_impl.feedforward(_t(x), {k: _t(v) for k, v in params.items()}).numpy()
    record_error(
        "feedforward", "hidden ≠ 4·D fwd", max(rel_error(y, ref), rel_error(y_t, ref)), TOL_FLOAT64
    )


# ---- bad input ------------------------------------------------------------------------------------


def _backend_call(backend: str, fn_name: str, *args, **kwargs):
    """Call NumPy's `<fn>_forward` or torch_impl's `<fn>` with the arrays converted to its type."""

    def conv(a):
        if backend == "torch" and isinstance(a, np.ndarray):
            return _t(a)
        if isinstance(a, dict):
            return {k: conv(v) for k, v in a.items()}
        return a

    args = [conv(a) for a in args]
    kwargs = {k: conv(v) for k, v in kwargs.items()}
    if backend == "numpy":
        return getattr(numpy_impl, f"{fn_name}_forward")(*args, **kwargs)
    return getattr(torch_impl, fn_name)(*args, **kwargs)


def _qkv(q_shape=(2, 3, 4, 8), kv_shape=(2, 3, 4, 8)):
    rng = np.random.default_rng(0)
    return (
        rng.standard_normal(q_shape),
        rng.standard_normal(kv_shape),
        rng.standard_normal(kv_shape),
    )


BACKENDS = ["numpy", "torch"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_attention_rejects_bad_input(backend):
    q, k, v = _qkv()
    call = _backend_call
    with pytest.raises(ValueError, match=r"k and v must have the same shape"):
        call(backend, "attention", q, k, v[..., :5])
    with pytest.raises(ValueError, match=r"k and v must have the same shape"):
        call(backend, "attention", q, k, v[..., :3, :])
    with pytest.raises(ValueError, match=r"q must have shape \(2, 3, \*, 8\), got \(2, 3, 4, 5\)"):
        call(backend, "attention", q[..., :5], k, v)
    with pytest.raises(ValueError, match=r"q must have shape \(2, 3, \*, 8\), got \(1, 3, 4, 8\)"):
        call(backend, "attention", q[:1], k, v)
    with pytest.raises(ValueError, match=r"q must have at least 2 dimensions"):
        call(backend, "attention", q[0, 0, 0], k, v)
    q_long, k_short, v_short = _qkv((2, 3, 5, 8), (2, 3, 4, 8))
    with pytest.raises(ValueError, match=r"causal attention needs no more queries than keys"):
        call(backend, "attention", q_long, k_short, v_short, causal=True)
    with pytest.raises(
        ValueError, match=r"dropout_mask must have shape \(2, 3, 4, 4\), got \(2, 3, 4, 3\)"
    ):
        call(backend, "attention", q, k, v, dropout_mask=np.ones((2, 3, 4, 3)), p=0.1)
    for p in (1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
            call(backend, "attention", q, k, v, dropout_mask=np.ones((2, 3, 4, 4)), p=p)
    with pytest.raises(ValueError, match=r"needs a dropout_mask"):
        call(backend, "attention", q, k, v, p=0.1)
    with pytest.raises(TypeError, match=r"k must be a floating-point array"):
        call(backend, "attention", q, k.astype(np.int64), v)


@pytest.mark.parametrize("backend", BACKENDS)
def test_multihead_attention_rejects_bad_input(backend):
    rng = np.random.default_rng(0)
    params = _mha_params(rng, d_in=4, d_out=6, qkv_bias=False)
    x = rng.standard_normal((2, 3, 4))
    call = _backend_call
    with pytest.raises(ValueError, match=r"d_out \(6\) must be divisible by num_heads \(4\)"):
        call(backend, "multihead_attention", x, params, 4)
    with pytest.raises(ValueError, match=r"num_heads \(0\)"):
        call(backend, "multihead_attention", x, params, 0)
    with pytest.raises(ValueError, match=r"x must have shape \(\*, \*, 4\), got \(2, 3, 5\)"):
        call(backend, "multihead_attention", rng.standard_normal((2, 3, 5)), params, 2)
    with pytest.raises(ValueError, match=r"x must have shape \(\*, \*, 4\), got \(3, 4\)"):
        call(backend, "multihead_attention", x[0], params, 2)
    missing = {k: v for k, v in params.items() if k != "out_proj.bias"}
    with pytest.raises(ValueError, match=r"missing \['out_proj.bias'\], unexpected \[\]"):
        call(backend, "multihead_attention", x, missing, 2)
    with pytest.raises(ValueError, match=r"unexpected \['mask'\]"):
        call(backend, "multihead_attention", x, {**params, "mask": np.ones((3, 3))}, 2)
    bad_out = {**params, "out_proj.weight": rng.standard_normal((6, 5))}
    with pytest.raises(ValueError, match=r"out_proj.weight must have shape \(6, 6\)"):
        call(backend, "multihead_attention", x, bad_out, 2)
    bad_key = {**params, "W_key.weight": rng.standard_normal((6, 5))}
    with pytest.raises(ValueError, match=r"W_key.weight must have shape \(6, 4\)"):
        call(backend, "multihead_attention", x, bad_key, 2)
    with pytest.raises(ValueError, match=r"dropout_mask must have shape \(2, 2, 3, 3\)"):
        call(backend, "multihead_attention", x, params, 2, dropout_mask=np.ones((2, 3, 3)), p=0.1)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        call(
            backend, "multihead_attention", x, params, 2, dropout_mask=np.ones((2, 2, 3, 3)), p=1.0
        )


@pytest.mark.parametrize("backend", BACKENDS)
def test_feedforward_rejects_bad_input(backend):
    rng = np.random.default_rng(0)
    params = {
        "layers.0.weight": rng.standard_normal((8, 4)),
        "layers.0.bias": rng.standard_normal(8),
        "layers.2.weight": rng.standard_normal((4, 8)),
        "layers.2.bias": rng.standard_normal(4),
    }
    call = _backend_call
    with pytest.raises(ValueError, match=r"x must have last dimension 4 .*got shape \(2, 3, 5\)"):
        call(backend, "feedforward", rng.standard_normal((2, 3, 5)), params)
    with pytest.raises(ValueError, match=r"missing \['layers.2.bias'\]"):
        call(
            backend,
            "feedforward",
            rng.standard_normal((2, 3, 4)),
            {k: v for k, v in params.items() if k != "layers.2.bias"},
        )
    with pytest.raises(ValueError, match=r"layers.2.weight must have shape \(4, 8\)"):
        call(
            backend,
            "feedforward",
            rng.standard_normal((2, 3, 4)),
            {**params, "layers.2.weight": rng.standard_normal((4, 7))},
        )
    with pytest.raises(TypeError, match=r"x must be a floating-point array"):
        call(backend, "feedforward", np.ones((2, 3, 4), dtype=np.int64), params)


def test_modules_reject_bad_input():
    with pytest.raises(ValueError, match=r"d_out \(6\) must be divisible by num_heads \(4\)"):
        torch_impl.MultiHeadAttention(4, 6, 8, 0.0, 4)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\)"):
        torch_impl.MultiHeadAttention(4, 8, 8, 1.0, 4)
    module = torch_impl.MultiHeadAttention(4, 8, context_length=3, dropout=0.0, num_heads=2)
    with pytest.raises(ValueError, match=r"x has 4 tokens, more than context_length 3"):
        module(torch.randn(1, 4, 4))
    with pytest.raises(ValueError, match=r"x must have shape \(\*, \*, 4\), got \(1, 3, 5\)"):
        module(torch.randn(1, 3, 5))
    with pytest.raises(ValueError, match=r"x must have 3 dimensions"):
        module(torch.randn(3, 4))
    with pytest.raises(ValueError, match=r"x must have last dimension 6"):
        torch_impl.FeedForward({"emb_dim": 6})(torch.randn(2, 3, 5))
