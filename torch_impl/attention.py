"""Scaled dot-product attention and causal multi-head attention from matmul, exp and masking.

    y = dropout(softmax(q kᵀ/√d + causal mask)) v      q (..., Tq, d), k, v (..., Tk, d)
Causal: query row i sits at key position i + (Tk - Tq), so it sees keys j ≤ i + Tk - Tq; with a KV
cache (Tq < Tk) the queries are the last Tq positions. Masked scores are -inf; every causal row keeps
key 0 visible, so the softmax turns them into exact zeros.

`MultiHeadAttention` mirrors the book's chapter-3 class (same constructor and state_dict keys) but
holds no `mask` buffer: the causal mask is computed each call, and a `mask` entry in a state_dict
saved from the book's class is dropped on load.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from torch_impl.dropout import dropout, resolve_dropout_masks
from torch_impl.linear import linear
from torch_impl.softmax import softmax
from twinlm.shared.naming import QKV_PROJECTIONS
from twinlm.shared.validate import (
    require_attention_inputs,
    require_divisible,
    require_mha_inputs,
    require_ndim,
    require_probability,
)


def _causal_visible(t_q: int, t_k: int, device) -> torch.Tensor:
    """(Tq, Tk) bool: query i may look at key j iff j ≤ i + (Tk - Tq)."""
    rows = torch.arange(t_q, device=device)[:, None]
    cols = torch.arange(t_k, device=device)[None, :]
    return cols <= rows + (t_k - t_q)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = True,
    dropout_mask: torch.Tensor | None = None,
    p: float = 0.0,
) -> torch.Tensor:
    """dropout_mask (..., Tq, Tk) of 0/1 keeps weight ij where it is 1 and scales kept weights by
    1/(1-p); None means no dropout (then p must be 0)."""
    require_attention_inputs(q, k, v, causal, dropout_mask, p)
    scores = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # (..., Tq, Tk)
    if causal:
        visible = _causal_visible(q.shape[-2], k.shape[-2], q.device)  # (Tq, Tk)
        scores = scores.masked_fill(~visible, float("-inf"))
    weights = softmax(scores)  # (..., Tq, Tk)
    if dropout_mask is not None:
        weights = dropout(weights, dropout_mask, p)  # (..., Tq, Tk) inverted dropout
    return weights @ v  # (..., Tq, d)


# ---- multi-head attention --------------------------------------------------------------------------


def multihead_attention(
    x: torch.Tensor,
    params: dict[str, torch.Tensor],
    num_heads: int,
    dropout_mask: torch.Tensor | None = None,
    p: float = 0.0,
) -> torch.Tensor:
    """Causal multi-head self-attention. x (B, T, d_in); params keyed like the book's
    MultiHeadAttention state_dict; dropout_mask (B, H, T, T). Returns (B, T, d_out)."""
    d_out = require_mha_inputs(x, params, num_heads)
    B, T, _ = x.shape
    head_dim = d_out // num_heads
    q, k, v = (
        linear(x, params[f"{name}.weight"], params.get(f"{name}.bias"))  # (B, T, d_out)
        .view(B, T, num_heads, head_dim)
        .transpose(1, 2)  # (B, H, T, hd)
        for name in QKV_PROJECTIONS
    )
    ctx = attention(q, k, v, causal=True, dropout_mask=dropout_mask, p=p)  # (B, H, T, hd)
    ctx = ctx.transpose(1, 2).contiguous().view(B, T, d_out)  # merge heads: (B, T, d_out)
    return linear(ctx, params["out_proj.weight"], params["out_proj.bias"])


class MultiHeadAttention(nn.Module):
    """The book's MultiHeadAttention (chapter 3): same arguments, submodules and state_dict keys.

    `dropout` is the probability p. In training mode with p > 0, forward draws a keep-mask with
    torch's generator, as the book's nn.Dropout does; pass `dropout_mask` (B, H, T, T) to replay a
    given mask instead (it is then applied in either mode). The causal mask is computed per call,
    so the state_dict holds only parameters.
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        dropout: float,
        num_heads: int,
        qkv_bias: bool = False,
    ):
        super().__init__()
        require_divisible("d_out", d_out, "num_heads", num_heads)
        require_probability("dropout", dropout)
        self.d_out = d_out
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.context_length = context_length
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = float(dropout)

    def forward(self, x: torch.Tensor, dropout_mask: torch.Tensor | None = None) -> torch.Tensor:
        """y (B, T, d_out). dropout_mask (B, H, T, T): replayed in either mode; None: drawn in
        training mode with p > 0 (torch_impl/dropout.py's rule, under the name "dropout")."""
        require_ndim("x", x, 3, 3)
        B, T = x.shape[:2]
        if T > self.context_length:
            raise ValueError(f"x has {T} tokens, more than context_length {self.context_length}")
        given = None if dropout_mask is None else {"dropout": dropout_mask}
        shapes = {"dropout": (B, self.num_heads, T, T)}
        mask = resolve_dropout_masks(given, shapes, self.dropout, self.training, x).get("dropout")
        p = self.dropout if mask is not None else 0.0
        return multihead_attention(x, dict(self.named_parameters()), self.num_heads, mask, p)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The book registers its causal mask as a buffer, so its state_dicts hold `mask`; ours
        # computes the mask, so drop that entry rather than report it as unexpected.
        state_dict.pop(prefix + "mask", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
