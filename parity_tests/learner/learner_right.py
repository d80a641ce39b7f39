"""Correct implementations of the offered ops written another way than numpy_impl, as a learner
would (einsum, loops over heads or gates, logsumexp, np.add.at, one-hot matrices, rotate_half):
`twinlm check --impl` must pass every one (test_learner_check.py). learner_wrong.py builds its bank
of realistic mistakes on these, changing one thing at a time.

Each op is a forward / backward pair with numpy_impl's signatures; the caches are this file's own.
"""

import math

import numpy as np
from scipy.special import erf


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # no overflow for large |z|


# ---- linear, softmax, embedding, dropout ------------------------------------------------------


def linear_forward(x, weight, bias=None):
    y = np.einsum("...i,oi->...o", x, weight)
    if bias is not None:
        y = y + bias
    return y, (x, weight, bias is not None)


def linear_backward(dy, cache):
    x, weight, has_bias = cache
    dx = np.einsum("...o,oi->...i", dy, weight)
    rows = dy.reshape(-1, dy.shape[-1]), x.reshape(-1, x.shape[-1])
    dweight = np.einsum("ro,ri->oi", *rows)
    dbias = dy.reshape(-1, dy.shape[-1]).sum(axis=0) if has_bias else None
    return dx, dweight, dbias


def softmax_forward(x):
    """exp of the log-softmax (x - m) - log Σ exp(x - m), m the row max."""
    shifted = x - x.max(axis=-1, keepdims=True)
    s = np.exp(shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True)))
    return s, s


def softmax_backward(ds, cache):
    s = cache
    return s * (ds - np.sum(ds * s, axis=-1, keepdims=True))


def embedding_forward(ids, weight):
    return weight[ids], (ids, weight.shape)


def embedding_backward(dy, cache):
    ids, shape = cache
    dweight = np.zeros(shape, dy.dtype)
    np.add.at(dweight, ids.reshape(-1), dy.reshape(-1, shape[1]))
    return dweight


def dropout_forward(x, mask, p):
    keep = mask.astype(x.dtype) / (1 - p)
    return x * keep, keep


def dropout_backward(dy, cache):
    return dy * cache


# ---- GELU, SiLU, LayerNorm, RMSNorm ------------------------------------------------------------


def gelu_forward(x, approximate="tanh"):
    if approximate == "tanh":
        c = math.sqrt(2.0 / math.pi)
        t = np.tanh(c * (x + 0.044715 * x**3))
        return 0.5 * x * (1.0 + t), (x, t, approximate)
    cdf = 0.5 * (1.0 + erf(x / math.sqrt(2.0)))
    return x * cdf, (x, cdf, approximate)


def gelu_backward(dy, cache):
    x, t, approximate = cache
    if approximate == "tanh":
        c = math.sqrt(2.0 / math.pi)
        du = c * (1.0 + 3 * 0.044715 * x**2)
        return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t**2) * du)
    pdf = np.exp(-0.5 * x**2) / math.sqrt(2.0 * math.pi)
    return dy * (t + x * pdf)


def silu_forward(x):
    s = _sigmoid(x)
    return x * s, (x, s)


def silu_backward(dy, cache):
    x, s = cache
    return dy * (s + x * s * _sigmoid(-x))


def layernorm_forward(x, scale, shift, eps=1e-5):
    """One row at a time, as a loop a learner might write first."""
    rows = x.reshape(-1, x.shape[-1])
    xhat, inv = np.empty_like(rows), np.empty((rows.shape[0], 1), x.dtype)
    for i, row in enumerate(rows):
        centred = row - row.mean()
        inv[i] = 1.0 / np.sqrt((centred**2).mean() + eps)
        xhat[i] = centred * inv[i]
    return (xhat * scale + shift).reshape(x.shape), (xhat, inv, scale, x.shape)


def layernorm_backward(dy, cache):
    xhat, inv, scale, shape = cache
    g = dy.reshape(xhat.shape) * scale
    D = xhat.shape[-1]
    dx = inv / D * (D * g - g.sum(-1, keepdims=True) - xhat * (g * xhat).sum(-1, keepdims=True))
    dy2 = dy.reshape(xhat.shape)
    return dx.reshape(shape), np.einsum("rd,rd->d", dy2, xhat), dy2.sum(axis=0)


def rmsnorm_forward(x, weight, eps=1e-6):
    r = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return x * r * weight, (x * r, r, weight)


def rmsnorm_backward(dy, cache):
    xhat, r, weight = cache
    g = dy * weight
    dx = r * (g - xhat * np.mean(g * xhat, axis=-1, keepdims=True))
    return dx, (dy * xhat).reshape(-1, xhat.shape[-1]).sum(axis=0)


# ---- cross entropy -----------------------------------------------------------------------------


def cross_entropy_forward(logits, targets, ignore_index=-100):
    """logsumexp minus the target's logit, averaged over the kept rows."""
    z = logits.reshape(-1, logits.shape[-1])
    t = targets.reshape(-1)
    kept = t != ignore_index
    safe = np.where(kept, t, 0)
    shifted = z - z.max(axis=-1, keepdims=True)  # log-softmax = shifted - log Σ exp(shifted)
    log_sum = np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    nll = log_sum[:, 0] - shifted[np.arange(len(t)), safe]
    n = int(kept.sum())
    loss = np.asarray(nll[kept].sum() / n if n else np.nan, dtype=logits.dtype)
    return loss, (np.exp(shifted - log_sum), safe, kept, n, logits.shape)


def cross_entropy_backward(dloss, cache):
    p, safe, kept, n, shape = cache
    d = p.copy()
    d[np.arange(len(safe)), safe] -= 1
    d *= (kept * (dloss / max(n, 1)))[:, None]
    return d.reshape(shape).astype(p.dtype)


# ---- attention, multi-head attention, grouped-query attention ---------------------------------


def attention_forward(q, k, v, causal=True, dropout_mask=None, p=0.0):
    d, t_q, t_k = q.shape[-1], q.shape[-2], k.shape[-2]
    scores = np.einsum("...id,...jd->...ij", q, k) / math.sqrt(d)
    if causal:
        hidden = np.triu(np.ones((t_q, t_k), bool), k=t_k - t_q + 1)
        scores = np.where(hidden, -np.inf, scores)
    a, _ = softmax_forward(scores)
    dropped = a if dropout_mask is None else a * dropout_mask / (1 - p)
    return np.einsum("...ij,...jd->...id", dropped, v), (q, k, v, a, dropped, dropout_mask, p)


def attention_backward(dy, cache):
    q, k, v, a, dropped, dropout_mask, p = cache
    dv = np.einsum("...ij,...id->...jd", dropped, dy)
    da = np.einsum("...id,...jd->...ij", dy, v)
    if dropout_mask is not None:
        da = da * dropout_mask / (1 - p)
    ds = softmax_backward(da, a) / math.sqrt(q.shape[-1])
    return np.einsum("...ij,...jd->...id", ds, k), np.einsum("...ij,...id->...jd", ds, q), dv


def _project(x, params, name):
    return linear_forward(x, params[f"{name}.weight"], params.get(f"{name}.bias"))


def multihead_attention_forward(x, params, num_heads, dropout_mask=None, p=0.0):
    """One head at a time: a loop over the heads' column blocks."""
    B, T, _ = x.shape
    projections = [_project(x, params, n) for n in ("W_query", "W_key", "W_value")]
    q, k, v = (y for y, _ in projections)
    hd = q.shape[-1] // num_heads
    ctx, heads = np.empty_like(q), []
    for h in range(num_heads):
        cols = slice(h * hd, (h + 1) * hd)
        mask = None if dropout_mask is None else dropout_mask[:, h]
        ctx[..., cols], cache = attention_forward(
            q[..., cols], k[..., cols], v[..., cols], True, mask, p
        )
        heads.append(cache)
    y, out_cache = _project(ctx, params, "out_proj")
    return y, (projections, heads, hd, out_cache, sorted(params))


def multihead_attention_backward(dy, cache):
    projections, heads, hd, out_cache, keys = cache
    dctx, dw_out, db_out = linear_backward(dy, out_cache)
    grads = {"out_proj.weight": dw_out, "out_proj.bias": db_out}
    dqkv = [np.empty_like(dctx) for _ in range(3)]
    for h, head in enumerate(heads):
        cols = slice(h * hd, (h + 1) * hd)
        for d, g in zip(dqkv, attention_backward(dctx[..., cols], head)):
            d[..., cols] = g
    dx = 0
    for name, d, (_, proj_cache) in zip(("W_query", "W_key", "W_value"), dqkv, projections):
        g_x, g_w, g_b = linear_backward(d, proj_cache)
        dx = dx + g_x
        grads[f"{name}.weight"] = g_w
        if f"{name}.bias" in keys:
            grads[f"{name}.bias"] = g_b
    return dx, grads


def grouped_query_attention_forward(q, k, v, causal=True):
    """K and V repeated for every query head (Hugging Face's repeat_kv), then attention."""
    groups = q.shape[1] // k.shape[1]
    y, cache = attention_forward(
        q, np.repeat(k, groups, axis=1), np.repeat(v, groups, axis=1), causal
    )
    return y, (cache, groups, k.shape)


def grouped_query_attention_backward(dy, cache):
    attention_cache, groups, shape = cache
    dq, dk, dv = attention_backward(dy, attention_cache)
    B, Hkv, T, d = shape
    return dq, dk.reshape(B, Hkv, groups, T, d).sum(2), dv.reshape(B, Hkv, groups, T, d).sum(2)


# ---- feed-forwards, RoPE -----------------------------------------------------------------------


def feedforward_forward(x, params):
    h, c0 = linear_forward(x, params["layers.0.weight"], params["layers.0.bias"])
    g, cg = gelu_forward(h, "tanh")
    y, c2 = linear_forward(g, params["layers.2.weight"], params["layers.2.bias"])
    return y, (c0, cg, c2)


def feedforward_backward(dy, cache):
    c0, cg, c2 = cache
    dg, dw2, db2 = linear_backward(dy, c2)
    dx, dw0, db0 = linear_backward(gelu_backward(dg, cg), c0)
    grads = {"layers.0.weight": dw0, "layers.0.bias": db0}
    return dx, {**grads, "layers.2.weight": dw2, "layers.2.bias": db2}


def swiglu_forward(x, params):
    g, cg = linear_forward(x, params["gate_proj.weight"])
    u, cu = linear_forward(x, params["up_proj.weight"])
    a, ca = silu_forward(g)
    y, cd = linear_forward(a * u, params["down_proj.weight"])
    return y, (cg, cu, ca, cd, a, u)


def swiglu_backward(dy, cache):
    cg, cu, ca, cd, a, u = cache
    dh, dw_down, _ = linear_backward(dy, cd)
    dx_g, dw_gate, _ = linear_backward(silu_backward(dh * u, ca), cg)
    dx_u, dw_up, _ = linear_backward(dh * a, cu)
    grads = {"gate_proj.weight": dw_gate, "up_proj.weight": dw_up, "down_proj.weight": dw_down}
    return dx_g + dx_u, grads


def _rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def rope_forward(x, cos, sin):
    """Hugging Face's form: x ⊙ cos + rotate_half(x) ⊙ sin, the tables repeated to full width."""
    c, s = np.concatenate([cos, cos], -1), np.concatenate([sin, sin], -1)
    return x * c + _rotate_half(x) * s, (c, s)


def rope_backward(dy, cache):
    c, s = cache
    return dy * c - _rotate_half(dy * s)  # rotate_half is antisymmetric: its transpose is -itself


# ---- recurrent cells ---------------------------------------------------------------------------


def rnn_cell_forward(x, h, weight_ih, weight_hh, bias_ih, bias_hh, nonlinearity="tanh"):
    a = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh
    h_next = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)
    return h_next, (x, h, weight_ih, weight_hh, h_next, nonlinearity)


def rnn_cell_backward(dh_next, cache):
    x, h, weight_ih, weight_hh, h_next, nonlinearity = cache
    slope = 1 - h_next**2 if nonlinearity == "tanh" else (h_next > 0).astype(h_next.dtype)
    da = dh_next * slope
    db = da.sum(axis=0)
    return da @ weight_ih, da @ weight_hh, da.T @ x, da.T @ h, db, db.copy()


def lstm_cell_forward(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh):
    """The four gates one by one, from their row blocks."""
    H = h.shape[-1]
    z = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh
    i, f, g, o = (z[:, k * H : (k + 1) * H] for k in range(4))
    i, f, g, o = _sigmoid(i), _sigmoid(f), np.tanh(g), _sigmoid(o)
    c_next = f * c + i * g
    tanh_c = np.tanh(c_next)
    h_next = o * tanh_c
    return (h_next, c_next), (x, h, c, weight_ih, weight_hh, i, f, g, o, tanh_c)


def lstm_cell_backward(dh_next, dc_next, cache):
    x, h, c, weight_ih, weight_hh, i, f, g, o, tanh_c = cache
    dc = dc_next + dh_next * o * (1 - tanh_c**2)
    dz = np.concatenate(
        [
            dc * g * i * (1 - i),
            dc * c * f * (1 - f),
            dc * i * (1 - g**2),
            dh_next * tanh_c * o * (1 - o),
        ],
        axis=1,
    )
    db = dz.sum(axis=0)
    return dz @ weight_ih, dz @ weight_hh, dc * f, dz.T @ x, dz.T @ h, db, db.copy()


def gru_cell_forward(x, h, weight_ih, weight_hh, bias_ih, bias_hh, reset_after=True):
    """torch's GRUCell (reset_after) or Cho's, with h' = (1 - z) n + z h written as such."""
    H = h.shape[-1]
    gi = x @ weight_ih.T + bias_ih
    W_rz, W_n, b_rz, b_n = (
        weight_hh[: 2 * H],
        weight_hh[2 * H :],
        bias_hh[: 2 * H],
        bias_hh[2 * H :],
    )
    rz = _sigmoid(gi[:, : 2 * H] + h @ W_rz.T + b_rz)
    r, z = rz[:, :H], rz[:, H:]
    hn = h @ W_n.T + b_n if reset_after else (r * h) @ W_n.T + b_n
    n = np.tanh(gi[:, 2 * H :] + (r * hn if reset_after else hn))
    h_next = (1 - z) * n + z * h
    return h_next, (x, h, weight_ih, weight_hh, r, z, n, hn, reset_after)


def gru_cell_backward(dh_next, cache):
    x, h, weight_ih, weight_hh, r, z, n, hn, reset_after = cache
    H = h.shape[-1]
    W_rz, W_n = weight_hh[: 2 * H], weight_hh[2 * H :]
    da_n = dh_next * (1 - z) * (1 - n * n)
    da_z = dh_next * (h - n) * z * (1 - z)
    if reset_after:
        da_r = da_n * hn * r * (1 - r)
        d_hn = da_n * r
        dh = dh_next * z + d_hn @ W_n
        dW_n = d_hn.T @ h
        db_n = d_hn.sum(axis=0)
    else:
        d_rh = da_n @ W_n
        da_r = d_rh * h * r * (1 - r)
        dh = dh_next * z + d_rh * r
        dW_n = da_n.T @ (r * h)
        db_n = da_n.sum(axis=0)
    d_rz = np.concatenate([da_r, da_z], axis=1)
    dh = dh + d_rz @ W_rz
    dgi = np.concatenate([d_rz, da_n], axis=1)
    dweight_hh = np.concatenate([d_rz.T @ h, dW_n])
    dbias_hh = np.concatenate([d_rz.sum(axis=0), db_n])
    return dgi @ weight_ih, dh, dgi.T @ x, dweight_hh, dgi.sum(axis=0), dbias_hh
