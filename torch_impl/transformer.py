"""The GPT-2 transformer block (pre-LayerNorm, book chapter 4); autograd supplies the backward.

    h = x + drop(att(norm1(x)))          attention branch and shortcut      (B, T, C)
    y = h + drop(ff(norm2(h)))           feed-forward branch and shortcut   (B, T, C)

`transformer_block(x, params, n_heads, dropout_masks, p)` takes numpy_impl/transformer.py's
arguments: params keyed relative to the block, masks named "att.dropout", "drop_shortcut.att",
"drop_shortcut.ff" (any subset; a missing name is no dropout there), so NumPy's masks replay bit for
bit. `TransformerBlock` is the book's module (att, ff, norm1, norm2) over it: it resolves its masks
(torch_impl/dropout.py: given, drawn in training mode, or none) and calls `transformer_block`.
"""

from __future__ import annotations

import torch
from torch import nn

from torch_impl.attention import MultiHeadAttention, multihead_attention
from torch_impl.dropout import maybe_dropout, resolve_dropout_masks
from torch_impl.feedforward import FeedForward, feedforward
from torch_impl.layernorm import LayerNorm, layernorm
from twinlm.shared.naming import block_dropout_mask_shapes, sub_dict
from twinlm.shared.validate import require_ndim


def transformer_block(
    x: torch.Tensor,
    params: dict[str, torch.Tensor],
    n_heads: int,
    dropout_masks: dict[str, torch.Tensor] | None = None,
    p: float = 0.0,
) -> torch.Tensor:
    """One pre-LN block. x (B, T, C); params keyed relative to the block; dropout_masks maps
    BLOCK_DROPOUT_NAMES (any subset; None: no dropout) to 0/1 masks, applied with rate p."""
    masks = dropout_masks or {}
    att_mask = masks.get("att.dropout")

    n1 = layernorm(x, params["norm1.scale"], params["norm1.shift"])  # (B, T, C)
    a = multihead_attention(
        n1, sub_dict(params, "att."), n_heads, att_mask, p if att_mask is not None else 0.0
    )  # (B, T, C)
    a = maybe_dropout(a, masks.get("drop_shortcut.att"), p)  # (B, T, C)
    h = x + a  # (B, T, C)

    n2 = layernorm(h, params["norm2.scale"], params["norm2.shift"])  # (B, T, C)
    f = feedforward(n2, sub_dict(params, "ff."))  # (B, T, C)
    f = maybe_dropout(f, masks.get("drop_shortcut.ff"), p)  # (B, T, C)
    return h + f  # (B, T, C)


class TransformerBlock(nn.Module):
    """The book's TransformerBlock(cfg): submodules att, ff, norm1, norm2, created in its order."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.att = MultiHeadAttention(
            d_in=cfg["emb_dim"],
            d_out=cfg["emb_dim"],
            context_length=cfg["context_length"],
            dropout=cfg["drop_rate"],
            num_heads=cfg["n_heads"],
            qkv_bias=cfg["qkv_bias"],
        )
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg["emb_dim"])
        self.norm2 = LayerNorm(cfg["emb_dim"])
        self.drop_rate = float(cfg["drop_rate"])

    def forward(
        self, x: torch.Tensor, dropout_masks: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """y (B, T, C) for x (B, T, C). dropout_masks: replay these (either mode); None: drawn in
        training mode (as the book's nn.Dropout modules would), none in eval mode."""
        require_ndim("x", x, 3, 3)
        B, T, C = x.shape
        if T > self.att.context_length:
            raise ValueError(
                f"x has {T} tokens, more than context_length {self.att.context_length}"
            )
        cfg = {"emb_dim": C, "n_heads": self.att.num_heads}
        shapes = block_dropout_mask_shapes(cfg, B, T)
        masks = resolve_dropout_masks(dropout_masks, shapes, self.drop_rate, self.training, x)
        params = dict(self.named_parameters())
        return transformer_block(x, params, self.att.num_heads, masks, self.drop_rate)
