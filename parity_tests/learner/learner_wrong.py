"""A bank of realistic wrong implementations: mistakes people make deriving and writing these ops,
each one change to a correct pair of learner_right.py. `twinlm check --impl` must FAIL every one,
naming the op and the output or gradient that is wrong (or the function, for what it returns or
raises); the hints that describe the mistake must fire, and no other (test_learner_check.py).

WRONG lists them: (name, functions, expected) with expected.cases the case names that must fail,
expected.what the outputs / gradients named in them ("function" for a failure of what a function
returns or raises, with expected.message a piece of its text), expected.hint the hint's key (None:
no hint applies).
"""

import math
from dataclasses import dataclass, field

import learner_right as right
import numpy as np
from learner_right import _rotate_half, _sigmoid


@dataclass(frozen=True)
class Expected:
    cases: tuple[str, ...]
    what: tuple[str, ...]
    hint: str | None
    message: str = ""
    also: tuple[str, ...] = ()  # other hints that describe this mistake too, and may fire


@dataclass(frozen=True)
class Wrong:
    name: str
    op: str
    mistake: str
    functions: dict = field(hash=False)
    expected: Expected


def _wrong(name, op, mistake, expected, forward=None, backward=None) -> Wrong:
    functions = {
        f"{op}_forward": forward or getattr(right, f"{op}_forward"),
        f"{op}_backward": backward or getattr(right, f"{op}_backward"),
    }
    return Wrong(name, op, mistake, functions, expected)


# ---- linear ------------------------------------------------------------------------------------


def linear_backward_dweight_transposed(dy, cache):
    x, weight, has_bias = cache
    dx, _, dbias = right.linear_backward(dy, cache)
    rows = dy.reshape(-1, dy.shape[-1]), x.reshape(-1, x.shape[-1])
    return dx, rows[1].T @ rows[0], dbias  # xᵀ dy: (in, out)


def linear_backward_dbias_first_axis(dy, cache):
    dx, dweight, _ = right.linear_backward(dy, cache)
    return dx, dweight, dy.sum(axis=0) if cache[2] else None  # (seq, out): batch summed only


def linear_backward_dbias_mean(dy, cache):
    dx, dweight, _ = right.linear_backward(dy, cache)
    return dx, dweight, dy.reshape(-1, dy.shape[-1]).mean(axis=0) if cache[2] else None


def linear_backward_dx_weight_transposed(dy, cache):
    x, weight, has_bias = cache
    _, dweight, dbias = right.linear_backward(dy, cache)
    return dy @ weight.T, dweight, dbias  # (…, out) @ (in, out): does not even multiply


# ---- softmax -----------------------------------------------------------------------------------


def softmax_forward_no_max(x):
    e = np.exp(x)
    s = e / e.sum(axis=-1, keepdims=True)
    return s, s


def softmax_backward_diagonal(ds, cache):
    s = cache
    return s * (1 - s) * ds  # ∂s_i/∂x_i only


def softmax_backward_no_sum_term(ds, cache):
    return cache * ds


def softmax_forward_minus_logsumexp(x):
    m = x.max(axis=-1, keepdims=True)
    lse = m + np.log(np.exp(x - m).sum(axis=-1, keepdims=True))
    s = np.exp(x - lse)  # x - lse rounds relative to |lse|, not to |x - m|
    return s, s


def softmax_forward_wrong_axis(x):
    e = np.exp(x - x.max(axis=0, keepdims=True))
    s = e / e.sum(axis=0, keepdims=True)
    return s, s


# ---- embedding, dropout --------------------------------------------------------------------------


def embedding_backward_assign(dy, cache):
    ids, shape = cache
    dweight = np.zeros(shape, dy.dtype)
    dweight[ids.reshape(-1)] = dy.reshape(-1, shape[1])  # the last row of a repeated id wins
    return dweight


def embedding_backward_float64(dy, cache):
    ids, shape = cache
    dweight = np.zeros(shape)  # float64 whatever dy is
    np.add.at(dweight, ids.reshape(-1), dy.reshape(-1, shape[1]))
    return dweight


def dropout_backward_no_scale(dy, cache):
    return dy * (cache > 0)  # the mask, but not 1/(1 - p)


def dropout_backward_identity(dy, cache):
    return dy.copy()


# ---- GELU, SiLU ------------------------------------------------------------------------------


def gelu_backward_no_product_rule(dy, cache):
    x, t, approximate = cache
    return dy * (0.5 * (1.0 + t) if approximate == "tanh" else t)  # d(x s)/dx taken as s


def gelu_forward_always_tanh(x, approximate="tanh"):
    return right.gelu_forward(x, "tanh")  # `approximate` ignored


def gelu_backward_tanh_not_squared(dy, cache):
    x, t, approximate = cache
    if approximate != "tanh":
        return right.gelu_backward(dy, cache)
    du = math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * x**2)
    return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t) * du)  # tanh' = 1 - t, not 1 - t²


def silu_backward_no_product_rule(dy, cache):
    x, s = cache
    return dy * s


# ---- LayerNorm, RMSNorm ------------------------------------------------------------------------


def _ln_parts(dy, cache):
    xhat, inv, scale, shape = cache
    g = dy.reshape(xhat.shape) * scale
    dy2 = dy.reshape(xhat.shape)
    return xhat, inv, g, shape, (np.einsum("rd,rd->d", dy2, xhat), dy2.sum(axis=0))


def layernorm_backward_no_mean_term(dy, cache):
    xhat, inv, g, shape, rest = _ln_parts(dy, cache)
    dx = inv * (g - xhat * (g * xhat).mean(-1, keepdims=True))  # μ taken as a constant
    return (dx.reshape(shape), *rest)


def layernorm_backward_no_variance_term(dy, cache):
    xhat, inv, g, shape, rest = _ln_parts(dy, cache)
    dx = inv * (g - g.mean(-1, keepdims=True))  # σ taken as a constant
    return (dx.reshape(shape), *rest)


def layernorm_backward_no_dshift(dy, cache):
    dx, dscale, _ = right.layernorm_backward(dy, cache)
    return dx, dscale  # the shift's gradient forgotten


def layernorm_forward_unbiased(x, scale, shift, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    inv = 1.0 / np.sqrt(x.var(-1, ddof=1, keepdims=True) + eps)  # torch.var's default, not LN's
    xhat = (x - mean) * inv
    rows = x.shape[-1]
    return xhat * scale + shift, (xhat.reshape(-1, rows), inv.reshape(-1, 1), scale, x.shape)


def layernorm_forward_eps_outside(x, scale, shift, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    inv = 1.0 / (np.sqrt(((x - mean) ** 2).mean(-1, keepdims=True)) + eps)
    xhat = (x - mean) * inv
    rows = x.shape[-1]
    return xhat * scale + shift, (xhat.reshape(-1, rows), inv.reshape(-1, 1), scale, x.shape)


def layernorm_forward_in_place(x, scale, shift, eps=1e-5):
    x -= x.mean(-1, keepdims=True)  # the caller's x, changed
    return right.layernorm_forward(x, scale, shift, eps)


def rmsnorm_forward_eps_outside(x, weight, eps=1e-6):
    r = 1.0 / (np.sqrt(np.mean(x * x, axis=-1, keepdims=True)) + eps)
    return x * r * weight, (x * r, r, weight)


def rmsnorm_forward_3d(x, weight, eps=1e-6):
    B, T = x.shape[:2]
    rows = x.reshape(B * T, -1)  # written for (B, T, D): (B, T, heads, hd) gets heads·hd per row
    y, (xhat, r, _) = right.rmsnorm_forward(
        rows, np.tile(weight, rows.shape[1] // len(weight)), eps
    )
    return y.reshape(x.shape), (xhat.reshape(x.shape), r, weight, B, T)


def rmsnorm_backward_3d(dy, cache):
    xhat, r, weight, B, T = cache
    rows, xrows = dy.reshape(B * T, -1), xhat.reshape(B * T, -1)
    g = rows * np.tile(weight, rows.shape[1] // len(weight))
    dx = r * (g - xrows * np.mean(g * xrows, axis=-1, keepdims=True))
    return dx.reshape(dy.shape), (dy * xhat).reshape(-1, len(weight)).sum(axis=0)


def rmsnorm_backward_no_rms_term(dy, cache):
    xhat, r, weight = cache
    return r * dy * weight, (dy * xhat).reshape(-1, xhat.shape[-1]).sum(axis=0)


# ---- cross entropy -------------------------------------------------------------------------------


def cross_entropy_forward_no_max(logits, targets, ignore_index=-100):
    z, t = logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    kept = t != ignore_index
    safe = np.where(kept, t, 0)
    e = np.exp(z)
    p = e / e.sum(axis=-1, keepdims=True)
    nll = -np.log(p[np.arange(len(t)), safe])
    n = int(kept.sum())
    loss = np.asarray(nll[kept].sum() / n if n else np.nan, dtype=logits.dtype)
    return loss, (p, safe, kept, n, logits.shape)


def cross_entropy_forward_mean_over_all(logits, targets, ignore_index=-100):
    loss, (p, safe, kept, n, shape) = right.cross_entropy_forward(logits, targets, ignore_index)
    total = np.asarray(loss * n / len(safe), dtype=logits.dtype)  # divided by every row
    return total, (p, safe, kept, len(safe), shape)


def cross_entropy_backward_no_dloss(dloss, cache):
    return right.cross_entropy_backward(np.ones_like(dloss), cache)  # as if dloss were 1


def cross_entropy_forward_python_float(logits, targets, ignore_index=-100):
    loss, cache = right.cross_entropy_forward(logits, targets, ignore_index)
    return float(loss), cache


# ---- attention, multi-head, grouped-query ------------------------------------------------------


def attention_backward_no_scale(dy, cache):
    dq, dk, dv = right.attention_backward(dy, cache)
    d = math.sqrt(cache[0].shape[-1])
    return dq * d, dk * d, dv  # the 1/√d of the scores forgotten


def attention_forward_mask_after_softmax(q, k, v, causal=True, dropout_mask=None, p=0.0):
    t_q, t_k = q.shape[-2], k.shape[-2]
    scores = np.einsum("...id,...jd->...ij", q, k) / math.sqrt(q.shape[-1])
    a, _ = right.softmax_forward(scores)
    if causal:  # zeroed after the softmax: the rows no longer sum to 1
        a = a * np.tril(np.ones((t_q, t_k)), k=t_k - t_q)
    dropped = a if dropout_mask is None else a * dropout_mask / (1 - p)
    return np.einsum("...ij,...jd->...id", dropped, v), (q, k, v, a, dropped, dropout_mask, p)


def attention_forward_always_causal(q, k, v, causal=True, dropout_mask=None, p=0.0):
    return right.attention_forward(q, k, v, True, dropout_mask, p)  # `causal` ignored


def attention_backward_no_dropout(dy, cache):
    q, k, v, a, dropped, dropout_mask, p = cache
    return right.attention_backward(dy, (q, k, v, a, dropped, None, p))


def attention_forward_top_left_mask(q, k, v, causal=True, dropout_mask=None, p=0.0):
    t_q, t_k = q.shape[-2], k.shape[-2]
    scores = np.einsum("...id,...jd->...ij", q, k) / math.sqrt(q.shape[-1])
    if causal:
        scores = np.where(np.triu(np.ones((t_q, t_k), bool), k=1), -np.inf, scores)  # Tk - Tq lost
    a, _ = right.softmax_forward(scores)
    dropped = a if dropout_mask is None else a * dropout_mask / (1 - p)
    return np.einsum("...ij,...jd->...id", dropped, v), (q, k, v, a, dropped, dropout_mask, p)


def multihead_attention_forward_heads_last(x, params, num_heads, dropout_mask=None, p=0.0):
    B, T, _ = x.shape
    projections = [right._project(x, params, n) for n in ("W_query", "W_key", "W_value")]
    q, k, v = (y.reshape(B, T, -1, num_heads).transpose(0, 3, 1, 2) for y, _ in projections)
    ctx, cache = right.attention_forward(q, k, v, True, dropout_mask, p)  # heads as (hd, H)
    y, out_cache = right._project(ctx.transpose(0, 2, 3, 1).reshape(B, T, -1), params, "out_proj")
    return y, (projections, cache, num_heads, out_cache, sorted(params))


def multihead_attention_backward_heads_last(dy, cache):
    projections, att_cache, num_heads, out_cache, keys = cache
    dctx, dw_out, db_out = right.linear_backward(dy, out_cache)
    B, T, _ = dy.shape
    dctx = dctx.reshape(B, T, -1, num_heads).transpose(0, 3, 1, 2)
    grads = {"out_proj.weight": dw_out, "out_proj.bias": db_out}
    dx = 0
    names = ("W_query", "W_key", "W_value")
    for name, d, (_, c) in zip(names, right.attention_backward(dctx, att_cache), projections):
        g_x, g_w, g_b = right.linear_backward(d.transpose(0, 2, 3, 1).reshape(B, T, -1), c)
        dx = dx + g_x
        grads[f"{name}.weight"] = g_w
        if f"{name}.bias" in keys:
            grads[f"{name}.bias"] = g_b
    return dx, grads


def multihead_attention_backward_no_qkv_bias(dy, cache):
    dx, grads = right.multihead_attention_backward(dy, cache)
    return dx, {k: g for k, g in grads.items() if k == "out_proj.bias" or k.endswith("weight")}


def grouped_query_attention_backward_first_head(dy, cache):
    attention_cache, groups, shape = cache
    dq, dk, dv = right.attention_backward(dy, attention_cache)
    return dq, dk[:, ::groups], dv[:, ::groups]  # one query head's share, not the group's sum


def grouped_query_attention_forward_interleaved(q, k, v, causal=True):
    heads = q.shape[1]
    kv = np.arange(heads) % k.shape[1]  # head h reads kv head h mod Hkv (not h // G)
    y, cache = right.attention_forward(q, k[:, kv], v[:, kv], causal)
    return y, (cache, kv, k.shape)


def grouped_query_attention_backward_interleaved(dy, cache):
    attention_cache, kv, shape = cache
    dq, dk_heads, dv_heads = right.attention_backward(dy, attention_cache)
    dk, dv = np.zeros(shape, dy.dtype), np.zeros(shape, dy.dtype)
    np.add.at(dk, (slice(None), kv), dk_heads)
    np.add.at(dv, (slice(None), kv), dv_heads)
    return dq, dk, dv


# ---- feed-forward, SwiGLU ------------------------------------------------------------------------


def feedforward_forward_exact_gelu(x, params):
    h, c0 = right.linear_forward(x, params["layers.0.weight"], params["layers.0.bias"])
    g, cg = right.gelu_forward(h, "none")  # GPT-2's feed-forward uses the tanh form
    y, c2 = right.linear_forward(g, params["layers.2.weight"], params["layers.2.bias"])
    return y, (c0, cg, c2)


def swiglu_backward_swapped(dy, cache):
    cg, cu, ca, cd, a, u = cache
    return right.swiglu_backward(dy, (cg, cu, ca, cd, u, a))  # dh ⊙ a and dh ⊙ u exchanged


# ---- RoPE --------------------------------------------------------------------------------------


def rope_forward_off_by_one(x, cos, sin):
    y = np.empty_like(x)
    for t in range(x.shape[-2]):  # position t rotated with row t - 1 (and t = 0 with the last)
        c, s = np.concatenate([cos[t - 1]] * 2), np.concatenate([sin[t - 1]] * 2)
        y[..., t, :] = x[..., t, :] * c + _rotate_half(x[..., t, :]) * s
    c, s = np.concatenate([cos, cos], -1), np.concatenate([sin, sin], -1)
    return y, (np.roll(c, 1, axis=0), np.roll(s, 1, axis=0))


def rope_backward_same_rotation(dy, cache):
    c, s = cache
    return dy * c + _rotate_half(dy) * s  # R again instead of Rᵀ


# ---- recurrent cells ---------------------------------------------------------------------------


def lstm_cell_forward_ifog(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    H = h.shape[-1]
    z = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh
    i, f, o, g = (z[:, k * H : (k + 1) * H] for k in range(4))  # i, f, o, g: not torch's i, f, g, o
    i, f, g, o = _sigmoid(i), _sigmoid(f), np.tanh(g), _sigmoid(o)
    c_next = f * c + i * g
    tanh_c = np.tanh(c_next)
    return (o * tanh_c, c_next), (x, h, c, weight_ih, weight_hh, i, f, g, o, tanh_c)


def lstm_cell_backward_ifog(dh_next, dc_next, cache):
    x, h, c, weight_ih, weight_hh, i, f, g, o, tanh_c = cache
    dc = dc_next + dh_next * o * (1 - tanh_c**2)
    blocks = [dc * g * i * (1 - i), dc * c * f * (1 - f), dh_next * tanh_c * o * (1 - o)]
    dz = np.concatenate([*blocks, dc * i * (1 - g**2)], axis=1)
    db = dz.sum(axis=0)
    return dz @ weight_ih, dz @ weight_hh, dc * f, dz.T @ x, dz.T @ h, db, db.copy()


def lstm_cell_backward_no_forget(dh_next, dc_next, cache):
    dx, dh, dc, *rest = right.lstm_cell_backward(dh_next, dc_next, cache)
    f = cache[6]
    return (dx, dh, dc / f, *rest)  # dc_prev = dc, the forget gate left out


def gru_cell_forward_reset_before(x, h, weight_ih, weight_hh, bias_ih, bias_hh, reset_after=True):
    return right.gru_cell_forward(x, h, weight_ih, weight_hh, bias_ih, bias_hh, False)  # Cho's


def gru_cell_backward_reset_before(dh_next, cache):
    return right.gru_cell_backward(dh_next, cache)


def gru_cell_forward_karpathy(x, h, weight_ih, weight_hh, bias_ih, bias_hh, reset_after=True):
    h_next, cache = right.gru_cell_forward(x, h, weight_ih, weight_hh, bias_ih, bias_hh)
    x, h, weight_ih, weight_hh, r, z, n, hn, reset_after = cache
    return z * n + (1 - z) * h, cache  # Karpathy's interpolation, with torch's z


def gru_cell_backward_karpathy(dh_next, cache):
    x, h, weight_ih, weight_hh, r, z, n, hn, reset_after = cache
    return right.gru_cell_backward(dh_next, (x, h, weight_ih, weight_hh, r, 1 - z, n, hn, True))


def rnn_cell_backward_relu_slope_one(dh_next, cache):
    x, h, weight_ih, weight_hh, h_next, nonlinearity = cache
    if nonlinearity == "tanh":
        return right.rnn_cell_backward(dh_next, cache)
    da = dh_next  # relu's slope taken as 1 everywhere
    db = da.sum(axis=0)
    return da @ weight_ih, da @ weight_hh, da.T @ x, da.T @ h, db, db.copy()


def rnn_cell_forward_keeps_a(x, h, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity="tanh"):
    h_next, cache = right.rnn_cell_forward(
        x, h, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity
    )
    a = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh
    return h_next, (*cache, a)


def rnn_cell_backward_slope_of_preactivation(dh_next, cache):
    *cache, a = cache
    x, h, weight_ih, weight_hh, h_next, nonlinearity = cache
    if nonlinearity != "tanh":
        return right.rnn_cell_backward(dh_next, tuple(cache))
    da = dh_next * (1 - a**2)  # tanh'(a) written as 1 - a², a the pre-activation
    db = da.sum(axis=0)
    return da @ weight_ih, da @ weight_hh, da.T @ x, da.T @ h, db, db.copy()


E = Expected
WRONG = [
    _wrong("linear dW transposed", "linear", "dW = xᵀ dy, (in, out)",
           E(("linear",), ("function",), None, "the transpose"),
           backward=linear_backward_dweight_transposed),
    _wrong("linear db over the batch only", "linear", "db = dy.sum(axis=0)",
           E(("linear",), ("function",), None, "summed over too few axes"),
           backward=linear_backward_dbias_first_axis),
    _wrong("linear db as a mean", "linear", "db = mean over the rows",
           E(("linear",), ("gradient of `bias`",), "variant", "1/(batch·seq)",
             also=("constant factor",)),
           backward=linear_backward_dbias_mean),
    _wrong("linear dx = dy Wᵀ", "linear", "dx = dy @ W.T: the shapes do not even fit",
           E(("linear", "linear[no bias]"), ("function",), None, "linear_backward raised ValueError"),
           backward=linear_backward_dx_weight_transposed),
    _wrong("softmax without the max", "softmax", "exp(x) overflows at large logits",
           E(("softmax",), ("forward output `s`", "gradient of `x`"), "large inputs", "NaN or inf"),
           forward=softmax_forward_no_max),
    _wrong("softmax diagonal Jacobian", "softmax", "ds_i/dx_i only: dx = s (1 - s) ds",
           E(("softmax",), ("gradient of `x`",), "softmax diagonal"),
           backward=softmax_backward_diagonal),
    _wrong("softmax without the sum term", "softmax", "dx = s ⊙ ds",
           E(("softmax",), ("gradient of `x`",), "softmax sum term"),
           backward=softmax_backward_no_sum_term),
    _wrong("softmax exp(x - logsumexp)", "softmax", "right, but loses float32 precision",
           E(("softmax",), ("float32 forward outputs",), "float32 only"),
           forward=softmax_forward_minus_logsumexp),
    _wrong("softmax over axis 0", "softmax", "normalised over the first axis",
           E(("softmax",), ("forward output `s`",), "wrong axis"),
           forward=softmax_forward_wrong_axis),
    _wrong("embedding assigns", "embedding", "dW[ids] = dy: repeated ids overwrite",
           E(("embedding",), ("gradient of `weight`",), "repeated ids"),
           backward=embedding_backward_assign),
    _wrong("embedding float64 gradient", "embedding", "np.zeros(shape): float64 for float32",
           E(("embedding",), ("function",), "float64 promotion", "as float64 for float32"),
           backward=embedding_backward_float64),
    _wrong("dropout backward without 1/(1-p)", "dropout", "the mask, not the scale",
           E(("dropout",), ("gradient of `x`",), "constant factor", "0.9 = 1 - p"),
           backward=dropout_backward_no_scale),
    _wrong("dropout backward identity", "dropout", "dx = dy",
           E(("dropout",), ("gradient of `x`",), "identity"),
           backward=dropout_backward_identity),
    _wrong("gelu without the product rule", "gelu", "dx = dy Φ(x)",
           E(("gelu[tanh]", "gelu[none]"), ("gradient of `x`",), "product rule"),
           backward=gelu_backward_no_product_rule),
    _wrong("gelu ignores approximate", "gelu", "always the tanh form",
           E(("gelu[none]",), ("forward output `y`",), "variant"),
           forward=gelu_forward_always_tanh),
    _wrong("gelu tanh' = 1 - t", "gelu", "the tanh derivative not squared",
           E(("gelu[tanh]",), ("gradient of `x`",), "variant"),
           backward=gelu_backward_tanh_not_squared),
    _wrong("silu without the product rule", "silu", "dx = dy σ(x)",
           E(("silu",), ("gradient of `x`",), "product rule"),
           backward=silu_backward_no_product_rule),
    _wrong("layernorm without the mean term", "layernorm", "μ treated as a constant",
           E(("layernorm",), ("gradient of `x`",), "layernorm mean term"),
           backward=layernorm_backward_no_mean_term),
    _wrong("layernorm without the variance term", "layernorm", "σ treated as a constant",
           E(("layernorm",), ("gradient of `x`",), "layernorm variance term"),
           backward=layernorm_backward_no_variance_term),
    _wrong("layernorm unbiased variance", "layernorm", "var with ddof=1",
           E(("layernorm",), ("forward output `y`",), "unbiased variance"),
           forward=layernorm_forward_unbiased),
    _wrong("layernorm ε outside the root", "layernorm", "1 / (σ + ε)",
           E(("layernorm",), ("forward output `y`",), "eps inside"),
           forward=layernorm_forward_eps_outside),
    _wrong("layernorm backward returns two", "layernorm", "(dx, dscale): dshift forgotten",
           E(("layernorm",), ("function",), None, "layernorm_backward returned a tuple of 2"),
           backward=layernorm_backward_no_dshift),
    _wrong("layernorm changes x", "layernorm", "x -= mean in place",
           E(("layernorm",), ("function",), None, "changed its argument `x` in place"),
           forward=layernorm_forward_in_place),
    _wrong("rmsnorm ε outside the root", "rmsnorm", "1 / (rms + ε)",
           E(("rmsnorm", "rmsnorm[qk_norm]"), ("forward output `y`",), "eps inside"),
           forward=rmsnorm_forward_eps_outside),
    _wrong("rmsnorm rows of (B, T)", "rmsnorm", "reshape(B * T, -1): QK-norm over heads·hd",
           E(("rmsnorm[qk_norm]",), ("forward output `y`",), "variant"),
           forward=rmsnorm_forward_3d, backward=rmsnorm_backward_3d),
    _wrong("rmsnorm without the rms term", "rmsnorm", "r treated as a constant",
           E(("rmsnorm", "rmsnorm[qk_norm]"), ("gradient of `x`",), "rmsnorm term"),
           backward=rmsnorm_backward_no_rms_term),
    _wrong("cross entropy without the max", "cross_entropy", "exp(z) overflows",
           E(("cross_entropy",), ("forward output `loss`",), "large inputs"),
           forward=cross_entropy_forward_no_max),
    _wrong("cross entropy mean over ignored rows", "cross_entropy", "divides by every row",
           E(("cross_entropy[ignore_index]",), ("forward output `loss`",), "variant",
             "n/N: a mean over all N rows", also=("constant factor",)),
           forward=cross_entropy_forward_mean_over_all),
    _wrong("cross entropy ignores dloss", "cross_entropy", "the upstream gradient dropped",
           E(("cross_entropy",), ("gradient of `logits`",), "constant factor", "= 1/dloss"),
           backward=cross_entropy_backward_no_dloss),
    _wrong("cross entropy returns a float", "cross_entropy", "float(loss)",
           E(("cross_entropy",), ("function",), None, "returned float"),
           forward=cross_entropy_forward_python_float),
    _wrong("attention backward without 1/√d", "attention", "dq, dk off by √d",
           E(("attention",), ("gradient of `q`", "gradient of `k`"), "constant factor",
             "factor 4 = √head_dim"),
           backward=attention_backward_no_scale),
    _wrong("attention mask after the softmax", "attention", "weights zeroed, not renormalised",
           E(("attention",), ("forward output `y`",), "mask after softmax", also=("variant",)),
           forward=attention_forward_mask_after_softmax),
    _wrong("attention always causal", "attention", "the causal flag ignored",
           E(("attention[non-causal]",), ("forward output `y`",), "variant"),
           forward=attention_forward_always_causal),
    _wrong("attention backward without dropout", "attention", "the mask skipped in backward",
           E(("attention[dropout]",), ("gradient of `q`", "gradient of `k`"), "variant"),
           backward=attention_backward_no_dropout),
    _wrong("attention mask top-left", "attention", "tril(k=0): a KV cache misaligned",
           E(("attention",), ("forward output `y`",), "kv cache", also=("variant",)),
           forward=attention_forward_top_left_mask),
    _wrong("multi-head split (hd, H)", "multihead_attention", "heads as the last axis",
           E(("multihead_attention",), ("forward output `y`",), "heads"),
           forward=multihead_attention_forward_heads_last,
           backward=multihead_attention_backward_heads_last),
    _wrong("multi-head without q/k/v bias gradients", "multihead_attention", "biases forgotten",
           E(("multihead_attention[qkv_bias]",), ("function",), None, "returned None"),
           backward=multihead_attention_backward_no_qkv_bias),
    _wrong("GQA dk from one head", "grouped_query_attention", "no sum over the group",
           E(("grouped_query_attention",), ("gradient of `k`", "gradient of `v`"), "groups"),
           backward=grouped_query_attention_backward_first_head),
    _wrong("GQA heads interleaved", "grouped_query_attention", "kv head h % Hkv",
           E(("grouped_query_attention",), ("forward output `y`",), "gqa mapping"),
           forward=grouped_query_attention_forward_interleaved,
           backward=grouped_query_attention_backward_interleaved),
    _wrong("feed-forward with exact GELU", "feedforward", "erf GELU, not tanh",
           E(("feedforward",), ("forward output `y`",), "exact gelu"),
           forward=feedforward_forward_exact_gelu),
    _wrong("SwiGLU product rule swapped", "swiglu", "da = dh ⊙ a, du = dh ⊙ u",
           E(("swiglu",), ("gradient of `x`",), None),
           backward=swiglu_backward_swapped),
    _wrong("RoPE off by one position", "rope", "cos[t - 1]",
           E(("rope",), ("forward output `y`",), "rope off by one"),
           forward=rope_forward_off_by_one),
    _wrong("RoPE backward rotates forward", "rope", "R instead of Rᵀ",
           E(("rope",), ("gradient of `x`",), "rope inverse"),
           backward=rope_backward_same_rotation),
    _wrong("LSTM gates i, f, o, g", "lstm_cell", "the gate rows in the wrong order",
           E(("lstm_cell",), ("forward output `h_next`",), "gate order"),
           forward=lstm_cell_forward_ifog, backward=lstm_cell_backward_ifog),
    _wrong("LSTM dc without the forget gate", "lstm_cell", "dc_prev = dc",
           E(("lstm_cell",), ("gradient of `c`",), None),
           backward=lstm_cell_backward_no_forget),
    _wrong("GRU reset before the matmul", "gru_cell", "Cho's cell for torch's",
           E(("gru_cell",), ("forward output `h_next`",), "gru reset before"),
           forward=gru_cell_forward_reset_before, backward=gru_cell_backward_reset_before),
    _wrong("GRU z and 1 - z swapped", "gru_cell", "Karpathy's interpolation",
           E(("gru_cell",), ("forward output `h_next`",), "gru z swapped"),
           forward=gru_cell_forward_karpathy, backward=gru_cell_backward_karpathy),
    _wrong("RNN relu' = 1", "rnn_cell", "relu's slope forgotten",
           E(("rnn_cell[relu]",), ("gradient of `x`",), "variant"),
           backward=rnn_cell_backward_relu_slope_one),
    _wrong("RNN tanh' = 1 - a²", "rnn_cell", "the slope from the pre-activation",
           E(("rnn_cell[tanh]",), ("gradient of `x`",), "tanh slope", also=("variant",)),
           forward=rnn_cell_forward_keeps_a, backward=rnn_cell_backward_slope_of_preactivation),
]  # fmt: skip
