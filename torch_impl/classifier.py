"""GPT-2 with its output head replaced by a class head (the book's chapter 6); autograd backward.

    x = drop(tok_emb[idx] + pos_emb[0..T-1])        (B, T, C)   mask "drop_emb"
    x = trf_blocks(x)                               (B, T, C)   torch_impl/gpt.py's gpt_body
    h = x[b, pos_b]                                 (B, C)   classified position of each row
    logits = out_head(final_norm(h))                (B, K)   out_head: Linear(C, K) with bias

The module tree is the book's GPTModel after `model.out_head = torch.nn.Linear(emb_dim, 2)`, so
the state_dict keys match numpy_impl.GPTClassifier's params. Frozen parameters get
requires_grad_(False) (the book's `param.requires_grad = False`), and gpt_body runs the blocks below
the first trainable one under torch.no_grad(), so autograd builds no graph there and the backward
stops by itself. Dropout masks follow torch_impl/dropout.py's rule. Options, parameter names
and the seeded head come from twinlm/shared/classifier.py; numpy_impl/classifier.py has the math written out.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from torch_impl.dropout import resolve_dropout_masks
from torch_impl.gpt import gpt_body
from torch_impl.layernorm import LayerNorm
from torch_impl.linear import linear
from torch_impl.transformer import TransformerBlock
from twinlm.shared.classifier import (
    PAD_ID,
    check_classifier_options,
    decapitate,
    trainable_keys,
)
from twinlm.shared.config import validate_config
from twinlm.shared.init import init_gpt_params
from twinlm.shared.naming import gpt_dropout_mask_shapes
from twinlm.shared.validate import require_token_batch

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def token_positions(idx: torch.Tensor, position: str, pad_id: int) -> torch.Tensor:
    """The classified position of each row of idx (B, T): (B,) int64."""
    B, T = idx.shape
    if position == "last":
        return torch.full((B,), T - 1, dtype=torch.int64, device=idx.device)
    not_pad = idx != pad_id  # (B, T)
    empty = ~not_pad.any(dim=1)  # (B,)
    if bool(empty.any()):
        row = int(torch.nonzero(empty)[0, 0])
        raise ValueError(
            f"idx row {row} holds only pad tokens ({pad_id}); position='last-non-pad' needs at "
            "least one other token"
        )
    # argmax returns the first maximum: in the flipped row, the last non-pad token.
    return T - 1 - torch.argmax(not_pad.flip(1).to(torch.int64), dim=1)  # (B,)


class GPTClassifier(nn.Module):
    """The book's decapitated GPTModel; arguments as numpy_impl.GPTClassifier's, dtype a
    torch dtype (default float32). Starts from the same NumPy-drawn weights for the same seed."""

    def __init__(
        self,
        cfg: dict,
        num_classes: int = 2,
        *,
        trainable: str = "last-block",
        k: int | None = None,
        position: str = "last",
        pad_id: int = PAD_ID,
        seed: int = 0,
        dtype: torch.dtype | None = None,
        backbone: dict | None = None,
    ):
        super().__init__()
        self.cfg = validate_config(dict(cfg))
        self.first_trainable = check_classifier_options(
            self.cfg, num_classes, trainable, k, position, pad_id
        )
        self.num_classes, self.trainable, self.k = num_classes, trainable, k
        self.position, self.pad_id = position, pad_id
        C = cfg["emb_dim"]
        self.tok_emb = nn.Embedding(cfg["vocab_size"], C)
        self.pos_emb = nn.Embedding(cfg["context_length"], C)
        self.trf_blocks = nn.Sequential(
            *[TransformerBlock(self.cfg) for _ in range(cfg["n_layers"])]
        )
        self.final_norm = LayerNorm(C)
        self.out_head = nn.Linear(C, num_classes)
        if dtype is not None:
            self.to(dtype)
        np_dtype = _NUMPY_DTYPES[self.out_head.weight.dtype]
        if backbone is None:
            backbone = init_gpt_params(self.cfg, seed, np_dtype)
        else:  # torch tensors or NumPy arrays
            backbone = {
                k: v.detach().cpu().numpy() if hasattr(v, "detach") else v
                for k, v in backbone.items()
            }
        params = decapitate(backbone, self.cfg, num_classes, seed, np_dtype)
        self.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
        self.trainable_keys = trainable_keys(self.cfg, num_classes, trainable, k)
        for name, p in self.named_parameters():
            p.requires_grad_(name in self.trainable_keys)  # the book: requires_grad = False

    def forward(
        self, in_idx: torch.Tensor, dropout_masks: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Class logits (B, K) for token ids in_idx (B, T). dropout_masks (names as numpy_impl/gpt.py):
        replay these in either mode; None: drawn in training mode, none in eval mode."""
        cfg = self.cfg
        require_token_batch("idx", in_idx, cfg["vocab_size"], cfg["context_length"])
        B, T = in_idx.shape
        positions = token_positions(in_idx, self.position, self.pad_id)  # (B,)
        shapes = gpt_dropout_mask_shapes(cfg, B, T)
        w = self.out_head.weight
        masks = resolve_dropout_masks(dropout_masks, shapes, cfg["drop_rate"], self.training, w)
        params = dict(self.named_parameters())
        x = gpt_body(in_idx, params, cfg, masks, self.first_trainable)  # (B, T, C)
        h = x[torch.arange(B, device=x.device), positions]  # (B, C)
        return linear(self.final_norm(h), w, self.out_head.bias)  # (B, K)
