"""The transformer block, the fast path: numpy_impl/transformer.py's, built from the fast
LayerNorm, multi-head attention and feed-forward network."""

from __future__ import annotations

import numpy as np

from numpy_impl.fast.attention import multihead_attention_backward, multihead_attention_forward
from numpy_impl.fast.feedforward import feedforward_backward, feedforward_forward
from numpy_impl.fast.layernorm import layernorm_backward, layernorm_forward
from numpy_impl.transformer import transformer_block_backward_with, transformer_block_with


def transformer_block_forward(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    n_heads: int,
    dropout_masks: dict[str, np.ndarray] | None = None,
    p: float = 0.0,
):
    """numpy_impl.transformer_block_forward from the fast ops."""
    ops = (layernorm_forward, multihead_attention_forward, feedforward_forward)
    return transformer_block_with(ops, x, params, n_heads, dropout_masks, p)


def transformer_block_backward(dy: np.ndarray, cache):
    """Returns (dx, dparams)."""
    ops = (layernorm_backward, multihead_attention_backward, feedforward_backward)
    return transformer_block_backward_with(ops, dy, cache)
