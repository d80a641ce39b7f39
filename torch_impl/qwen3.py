"""Qwen3 (Hugging Face's Qwen3ForCausalLM) in PyTorch; autograd supplies the backward.

    cos, sin = rope_angles(0 .. T-1)           (T, hd/2), in the model's dtype
    x = embed_tokens[idx]                      (B, T, C)
    x = layer_i(x)   i = 0 .. n_layers-1       torch_impl/qwen3_block.py
    logits = rmsnorm(x) Wᵀ                     W = lm_head.weight, or embed_tokens when tied

`qwen3_body(idx, params, cfg, first_trainable)` is the part below model.norm, with
numpy_impl/qwen3.py's qwen3_body_forward arguments; layers below first_trainable (and the
embedding, unless it is 0) run under torch.no_grad(), as torch_impl/gpt.py's gpt_body does.

The module tree and state_dict keys are Hugging Face's (model.embed_tokens, model.layers.{i}.…,
model.norm, lm_head only when untied), so a checkpoint's tensors load without renaming. A tied
model holds one matrix and uses it twice: autograd sums both uses' gradients into it. Weights
start from the shared NumPy initializer (twinlm/shared/init.py): Qwen3Model(cfg, seed=s) holds
exactly numpy_impl.Qwen3Model(cfg, seed=s)'s weights. The modules are built on the meta device and
then materialised, so a 0.6B model is not first filled by torch's own init.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from torch_impl.embedding import embedding
from torch_impl.linear import linear
from torch_impl.qwen3_block import Qwen3DecoderLayer, qwen3_block
from torch_impl.rmsnorm import RMSNorm, rmsnorm
from torch_impl.rope import rope_angles
from twinlm.shared.config import Qwen3AttentionArgs, validate_qwen3_config
from twinlm.shared.init import init_qwen3_params
from twinlm.shared.naming import sub_dict
from twinlm.shared.validate import require_no_dropout, require_token_batch

EMBEDDING = "model.embed_tokens.weight"
_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


def qwen3_body(
    idx: torch.Tensor, params: dict[str, torch.Tensor], cfg: dict, first_trainable: int = 0
) -> torch.Tensor:
    """x (B, T, C) = layer_{L-1}( … layer_0(embed_tokens[idx]) ) for token ids idx (B, T) at
    positions 0 .. T-1; params keyed like the whole model's."""
    T = idx.shape[1]
    with torch.no_grad() if first_trainable > 0 else contextlib.nullcontext():
        x = embedding(idx, params[EMBEDDING])  # (B, T, C)
    positions = torch.arange(T, device=idx.device)
    cos, sin = rope_angles(positions, cfg["head_dim"], cfg["rope_base"], x.dtype)  # (T, hd/2)
    args = Qwen3AttentionArgs.of(cfg, cos, sin)
    for i in range(cfg["n_layers"]):
        with torch.no_grad() if i < first_trainable else contextlib.nullcontext():
            x = qwen3_block(x, sub_dict(params, f"model.layers.{i}."), *args)  # (B, T, C)
    return x


class Qwen3Backbone(nn.Module):
    """Hugging Face's Qwen3Model (the `model.` part): embed_tokens, layers, norm."""

    def __init__(self, cfg: dict):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.layers = nn.ModuleList(Qwen3DecoderLayer(cfg) for _ in range(cfg["n_layers"]))
        self.norm = RMSNorm(cfg["emb_dim"], cfg["rms_norm_eps"])


def materialize(module: nn.Module, params: dict[str, np.ndarray], dtype: torch.dtype) -> None:
    """Give a module built on the meta device real CPU storage of `dtype` holding `params` (NumPy
    arrays keyed like its state_dict)."""
    module.to_empty(device="cpu").to(dtype)
    module.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})


class Qwen3Model(nn.Module):
    """Qwen3ForCausalLM with Hugging Face's keys. seed: the shared initializer's seed (None: zeros,
    for a model whose weights are loaded next); dtype: torch.float32 (default) or torch.float64."""

    def __init__(self, cfg: dict, seed: int | None = 0, dtype: torch.dtype | None = None):
        super().__init__()
        self.cfg = validate_qwen3_config(dict(cfg))
        with torch.device("meta"):
            self.model = Qwen3Backbone(self.cfg)
            if not self.cfg["tie_embeddings"]:
                self.lm_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)
        dtype = dtype or torch.float32
        materialize(self, init_qwen3_params(self.cfg, seed, _NUMPY_DTYPES[dtype]), dtype)

    @property
    def head_weight(self) -> torch.Tensor:
        """The output head: the token embedding itself when tied."""
        return self.model.embed_tokens.weight if self.cfg["tie_embeddings"] else self.lm_head.weight

    def forward(
        self, idx: torch.Tensor, dropout_masks: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Logits (B, T, V) for token ids idx (B, T). dropout_masks exists for the training
        loop's sake and must be empty: Qwen3 is dropout-free."""
        cfg = self.cfg
        require_no_dropout(None, dropout_masks)
        require_token_batch("idx", idx, cfg["vocab_size"], cfg["context_length"], backend="torch")
        x = qwen3_body(idx, dict(self.named_parameters()), cfg)  # (B, T, C)
        x = rmsnorm(x, self.model.norm.weight, cfg["rms_norm_eps"])
        return linear(x, self.head_weight)  # (B, T, V)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Hugging Face's state_dict of a tied model lists the shared matrix as lm_head.weight too.
        if self.cfg["tie_embeddings"]:
            state_dict.pop(prefix + "lm_head.weight", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
