"""GPT-2 (the book's GPTModel, chapter 4) in PyTorch; autograd supplies the backward.

    x = tok_emb[idx] + pos_emb[0..T-1]     (B, T, C)
    x = drop(x)                            mask "drop_emb"
    x = block_i(x)  i = 0 .. n_layers-1    pre-LN blocks (torch_impl/transformer.py)
    logits = out_head(final_norm(x))       (B, T, V), out_head without bias

`gpt_body(idx, params, cfg, dropout_masks, first_trainable)` is the part below final_norm, with
numpy_impl/gpt.py's gpt_body_forward arguments; it is shared with torch_impl/classifier.py. Blocks
below first_trainable (and the embeddings, unless it is 0) run under torch.no_grad(): the torch
meaning of NumPy's "no backward below this block".

The module tree and state_dict keys are the book's (tok_emb, pos_emb, trf_blocks, final_norm,
out_head, created in its order, so torch.manual_seed(s); GPTModel(cfg) draws the book's weights),
and its checkpoints load (their `att.mask` buffers are dropped by MultiHeadAttention). The module
only resolves its dropout masks (torch_impl/dropout.py) and calls gpt_body. `GPTModel(cfg, seed=s)`
starts from the shared NumPy initializer (twinlm/shared/init.py), so it holds exactly
numpy_impl.GPTModel(cfg, seed=s)'s weights.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from torch_impl.dropout import maybe_dropout, resolve_dropout_masks
from torch_impl.embedding import embedding
from torch_impl.layernorm import LayerNorm
from torch_impl.linear import linear
from torch_impl.transformer import TransformerBlock, transformer_block
from twinlm.shared.config import validate_config
from twinlm.shared.init import init_gpt_params
from twinlm.shared.naming import gpt_dropout_mask_shapes, sub_dict
from twinlm.shared.validate import require_token_batch

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def gpt_body(
    idx: torch.Tensor,
    params: dict[str, torch.Tensor],
    cfg: dict,
    dropout_masks: dict[str, torch.Tensor] | None = None,
    first_trainable: int = 0,
) -> torch.Tensor:
    """x (B, T, C) = block_{L-1}( … block_0(drop(tok_emb[idx] + pos_emb[0..T-1])) ) for token ids
    idx (B, T); params and dropout_masks keyed like the whole model's."""
    masks = dropout_masks or {}
    T, p = idx.shape[1], cfg["drop_rate"]
    frozen = torch.no_grad() if first_trainable > 0 else contextlib.nullcontext()
    with frozen:  # no graph below the first trainable block
        tok = embedding(idx, params["tok_emb.weight"])  # (B, T, C)
        pos = embedding(torch.arange(T, device=idx.device), params["pos_emb.weight"])  # (T, C)
        x = maybe_dropout(tok + pos, masks.get("drop_emb"), p)  # (B, T, C)
    for i in range(cfg["n_layers"]):
        prefix = f"trf_blocks.{i}."
        with torch.no_grad() if i < first_trainable else contextlib.nullcontext():
            x = transformer_block(
                x, sub_dict(params, prefix), cfg["n_heads"], sub_dict(masks, prefix), p
            )  # (B, T, C)
    return x


class GPTModel(nn.Module):
    """The book's GPTModel. seed: fill from twinlm.shared.init (else torch's default init, like the
    book); dtype: torch.float32 (default) or torch.float64."""

    def __init__(self, cfg: dict, seed: int | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        self.cfg = validate_config(dict(cfg))
        V, C = cfg["vocab_size"], cfg["emb_dim"]
        self.tok_emb = nn.Embedding(V, C)
        self.pos_emb = nn.Embedding(cfg["context_length"], C)
        self.trf_blocks = nn.Sequential(
            *[TransformerBlock(self.cfg) for _ in range(cfg["n_layers"])]
        )
        self.final_norm = LayerNorm(C)
        self.out_head = nn.Linear(C, V, bias=False)
        if dtype is not None:
            self.to(dtype)
        if seed is not None:
            np_dtype = _NUMPY_DTYPES[self.out_head.weight.dtype]
            params = init_gpt_params(self.cfg, seed, np_dtype)
            self.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})

    def forward(
        self, in_idx: torch.Tensor, dropout_masks: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Logits (B, T, V) for token ids in_idx (B, T). dropout_masks (names as numpy_impl/gpt.py):
        replay these in either mode; None: drawn in training mode as the book's nn.Dropout
        modules would draw them, none in eval mode."""
        cfg = self.cfg
        require_token_batch(
            "idx", in_idx, cfg["vocab_size"], cfg["context_length"], backend="torch"
        )
        shapes = gpt_dropout_mask_shapes(cfg, *in_idx.shape)
        w = self.out_head.weight
        masks = resolve_dropout_masks(dropout_masks, shapes, cfg["drop_rate"], self.training, w)
        x = gpt_body(in_idx, dict(self.named_parameters()), cfg, masks)  # (B, T, C)
        return linear(self.final_norm(x), w)  # (B, T, V)
