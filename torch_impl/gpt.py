"""GPT-2 (the book's GPTModel, chapter 4) in PyTorch; autograd supplies the backward.

    x = tok_emb[idx] + pos_emb[0..T-1]     (B, T, C)
    x = drop_emb(x)
    x = trf_blocks(x)                      n_layers pre-LN blocks (torch_impl/transformer.py)
    logits = out_head(final_norm(x))       (B, T, V), out_head without bias

The module tree and state_dict keys are the book's, so its checkpoints load (their `att.mask`
buffers are dropped by MultiHeadAttention). Embedding lookups and the output projection go through
torch_impl's own `embedding` / `linear`. `GPTModel(cfg, seed=s)` starts from the shared NumPy
initializer (twinlm/shared/init.py), so it holds exactly numpy_impl.GPTModel(cfg, seed=s)'s weights.
`forward(idx, dropout_masks=...)` replays NumPy-drawn dropout masks (names in numpy_impl/gpt.py).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from torch_impl.dropout import dropout
from torch_impl.embedding import embedding
from torch_impl.layernorm import LayerNorm
from torch_impl.linear import linear
from torch_impl.transformer import TransformerBlock
from twinlm.shared.config import validate_config
from twinlm.shared.init import init_gpt_params
from twinlm.shared.naming import gpt_dropout_mask_shapes
from twinlm.shared.validate import require_token_batch

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def body(model: nn.Module, in_idx: torch.Tensor, dropout_masks: dict | None) -> torch.Tensor:
    """x (B, T, C) = trf_blocks(drop_emb(tok_emb[idx] + pos_emb[0..T-1])): the part below
    final_norm, which GPTModel and GPTClassifier share (same module names). dropout_masks: replay
    these (names as numpy_impl/gpt.py) in either mode; None: the modules' own dropout."""
    cfg = model.cfg
    if dropout_masks is not None:
        known = list(gpt_dropout_mask_shapes(cfg, 1, 1))
        unknown = sorted(set(dropout_masks) - set(known))
        if unknown:
            raise ValueError(f"dropout_masks has unknown names {unknown}; expected some of {known}")
    T = in_idx.shape[1]
    tok = embedding(in_idx, model.tok_emb.weight)  # (B, T, C)
    pos = embedding(torch.arange(T, device=in_idx.device), model.pos_emb.weight)  # (T, C)
    x = tok + pos  # (B, T, C)
    if dropout_masks is None:
        x = model.drop_emb(x)
    elif "drop_emb" in dropout_masks:
        x = dropout(x, dropout_masks["drop_emb"], cfg["drop_rate"])
    for i, block in enumerate(model.trf_blocks):
        prefix = f"trf_blocks.{i}."
        block_masks = None
        if dropout_masks is not None:
            block_masks = {
                k[len(prefix) :]: m for k, m in dropout_masks.items() if k.startswith(prefix)
            }
        x = block(x, block_masks)  # (B, T, C)
    return x


def add_gpt_body(module: nn.Module, cfg: dict) -> None:
    """The book's module tree below the output head, in its order: tok_emb, pos_emb, drop_emb,
    trf_blocks, final_norm. Shared by GPTModel and the classifier, which differ only in the head."""
    V, C = cfg["vocab_size"], cfg["emb_dim"]
    module.tok_emb = nn.Embedding(V, C)
    module.pos_emb = nn.Embedding(cfg["context_length"], C)
    module.drop_emb = nn.Dropout(cfg["drop_rate"])
    module.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
    module.final_norm = LayerNorm(C)


class GPTModel(nn.Module):
    """The book's GPTModel. seed: fill from twinlm.shared.init (else torch's default init, like the
    book); dtype: torch.float32 (default) or torch.float64."""

    def __init__(self, cfg: dict, seed: int | None = None, dtype: torch.dtype | None = None):
        super().__init__()
        self.cfg = validate_config(dict(cfg))
        V, C = cfg["vocab_size"], cfg["emb_dim"]
        add_gpt_body(self, self.cfg)
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
        """Logits (B, T, V) for token ids in_idx (B, T). dropout_masks: replay these masks (in
        either mode) instead of torch's dropout; None: the book's behaviour."""
        cfg = self.cfg
        require_token_batch("idx", in_idx, cfg["vocab_size"], cfg["context_length"])
        x = body(self, in_idx, dropout_masks)  # (B, T, C)
        x = self.final_norm(x)  # (B, T, C)
        return linear(x, self.out_head.weight)  # (B, T, V)
