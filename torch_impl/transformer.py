"""The GPT-2 transformer block (pre-LayerNorm, book chapter 4); autograd supplies the backward.

    h = x + drop(att(norm1(x)))          attention branch and shortcut      (B, T, C)
    y = h + drop(ff(norm2(h)))           feed-forward branch and shortcut   (B, T, C)

Without masks, forward is the book's: the modules' own dropout in training mode, none in eval mode.
With a dict of masks (the names of numpy_impl/transformer.py: "att.dropout", "drop_shortcut.att",
"drop_shortcut.ff"), exactly those masks are applied, in either mode, and a missing name means no
dropout there — so NumPy's masks replay bit for bit.
"""

from __future__ import annotations

import torch
from torch import nn

from torch_impl.attention import MultiHeadAttention, multihead_attention
from torch_impl.dropout import dropout
from torch_impl.feedforward import FeedForward
from torch_impl.layernorm import LayerNorm


class TransformerBlock(nn.Module):
    """The book's TransformerBlock: submodules att, ff, norm1, norm2, drop_shortcut."""

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
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])
        self.drop_rate = float(cfg["drop_rate"])

    def forward(
        self, x: torch.Tensor, dropout_masks: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        shortcut = x
        x = self.norm1(x)  # (B, T, C)
        x = self._attention(x, dropout_masks)  # (B, T, C)
        x = self._drop(x, dropout_masks, "drop_shortcut.att")
        x = x + shortcut

        shortcut = x
        x = self.norm2(x)  # (B, T, C)
        x = self.ff(x)  # (B, T, C)
        x = self._drop(x, dropout_masks, "drop_shortcut.ff")
        return x + shortcut

    def _attention(self, x: torch.Tensor, masks) -> torch.Tensor:
        if masks is None:
            return self.att(x)  # the book's path: the module draws its own dropout mask
        mask = masks.get("att.dropout")
        p = self.drop_rate if mask is not None else 0.0
        params = dict(self.att.named_parameters())
        return multihead_attention(x, params, self.att.num_heads, dropout_mask=mask, p=p)

    def _drop(self, x: torch.Tensor, masks, name: str) -> torch.Tensor:
        if masks is None:
            return self.drop_shortcut(x)
        mask = masks.get(name)
        return x if mask is None else dropout(x, mask, self.drop_rate)
