"""The GPT-2 transformer block (pre-LayerNorm, book chapter 4), forward and hand-written backward.

Forward, x (B, T, C); drop(·) is inverted dropout with a caller-drawn 0/1 mask, the identity when
the block is given no mask for that place:
    a = drop(att(norm1(x)))          (B, T, C)   causal multi-head attention branch
    h = x + a                        (B, T, C)   shortcut
    f = drop(ff(norm2(h)))           (B, T, C)   feed-forward branch: Linear, GELU, Linear
    y = h + f                        (B, T, C)   shortcut
Backward, from dy (B, T, C). A shortcut passes its gradient through unchanged and its branch adds
its own (d(h + branch(h))/dh = I + d branch/dh), so with ∂ for each op's backward:
    dh = dy + ∂norm2(∂ff(∂drop(dy)))
    dx = dh + ∂norm1(∂att(∂drop(dh)))
Parameter gradients come out of the ops' backwards on the way.

Names. Block parameters use the book's keys relative to the block (`att.W_query.weight`,
`ff.layers.0.bias`, `norm1.scale`, …). Dropout masks are named by where they act:
    att.dropout          (B, H, T, T)   attention weights (inside attention)
    drop_shortcut.att    (B, T, C)      attention branch, before its shortcut add
    drop_shortcut.ff     (B, T, C)      feed-forward branch, before its shortcut add
torch_impl/transformer.py takes the same names, so a test can replay NumPy's masks in torch.
"""

from __future__ import annotations

import numpy as np

from numpy_impl.attention import multihead_attention_backward, multihead_attention_forward
from numpy_impl.dropout import maybe_dropout_backward, maybe_dropout_forward
from numpy_impl.feedforward import feedforward_backward, feedforward_forward
from numpy_impl.layernorm import layernorm_backward, layernorm_forward
from twinlm.shared.naming import sub_dict, with_prefix


def transformer_block_forward(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    n_heads: int,
    dropout_masks: dict[str, np.ndarray] | None = None,
    p: float = 0.0,
):
    """One pre-LN block. x (B, T, C); params keyed relative to the block; dropout_masks maps
    BLOCK_DROPOUT_NAMES (any subset; None: no dropout) to 0/1 masks, applied with rate p.
    Returns (y (B, T, C), cache)."""
    ops = (layernorm_forward, multihead_attention_forward, feedforward_forward)
    return transformer_block_with(ops, x, params, n_heads, dropout_masks, p)


def transformer_block_backward(dy: np.ndarray, cache):
    """Returns (dx, dparams); dparams has the block-relative keys of the forward's params."""
    ops = (layernorm_backward, multihead_attention_backward, feedforward_backward)
    return transformer_block_backward_with(ops, dy, cache)


def transformer_block_with(ops, x, params, n_heads: int, dropout_masks, p: float):
    """transformer_block_forward built from ops = (layernorm, multi-head attention, feed-forward)
    forwards: this file's, or the fast path's (numpy_impl/fast/transformer.py)."""
    layernorm, attention, feedforward = ops
    masks = dropout_masks or {}
    att_mask = masks.get("att.dropout")

    n1, norm1_cache = layernorm(x, params["norm1.scale"], params["norm1.shift"])  # (B, T, C)
    a, att_cache = attention(
        n1, sub_dict(params, "att."), n_heads, att_mask, p if att_mask is not None else 0.0
    )  # (B, T, C)
    a, drop_att_cache = maybe_dropout_forward(a, masks.get("drop_shortcut.att"), p)  # (B, T, C)
    h = x + a  # (B, T, C)

    n2, norm2_cache = layernorm(h, params["norm2.scale"], params["norm2.shift"])  # (B, T, C)
    f, ff_cache = feedforward(n2, sub_dict(params, "ff."))  # (B, T, C)
    f, drop_ff_cache = maybe_dropout_forward(f, masks.get("drop_shortcut.ff"), p)  # (B, T, C)
    y = h + f  # (B, T, C)

    cache = (norm1_cache, att_cache, drop_att_cache, norm2_cache, ff_cache, drop_ff_cache)
    return y, cache


def transformer_block_backward_with(ops, dy: np.ndarray, cache):
    """transformer_block_backward from ops = the backwards matching the forward's ops."""
    layernorm_backward, attention_backward, feedforward_backward = ops
    norm1_cache, att_cache, drop_att_cache, norm2_cache, ff_cache, drop_ff_cache = cache
    grads = {}

    # y = h + f: the shortcut passes dy to h, the branch takes it through dropout, ff and norm2
    df = maybe_dropout_backward(dy, drop_ff_cache)  # (B, T, C)
    dn2, dff = feedforward_backward(df, ff_cache)  # (B, T, C)
    dh_branch, grads["norm2.scale"], grads["norm2.shift"] = layernorm_backward(dn2, norm2_cache)
    dh = dy + dh_branch  # (B, T, C)

    # h = x + a: the same for the attention branch
    da = maybe_dropout_backward(dh, drop_att_cache)  # (B, T, C)
    dn1, datt = attention_backward(da, att_cache)  # (B, T, C)
    dx_branch, grads["norm1.scale"], grads["norm1.shift"] = layernorm_backward(dn1, norm1_cache)
    dx = dh + dx_branch  # (B, T, C)

    return dx, grads | with_prefix(datt, "att.") | with_prefix(dff, "ff.")
