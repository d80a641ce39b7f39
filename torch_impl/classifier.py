"""GPT-2 or Qwen3 with its output head replaced by a class head (the book's chapter 6); autograd
backward.

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

Qwen3Classifier shares the code path (_Decapitated) with Hugging Face's module tree (model.…,
lm_head = Linear(C, K) with a bias), torch_impl/qwen3.py's qwen3_body and an RMSNorm for
final_norm. Both are built on the meta device and then filled, so a 0.6B backbone is not first
initialised by torch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from torch_impl.dropout import resolve_dropout_masks
from torch_impl.gpt import gpt_body
from torch_impl.layernorm import LayerNorm, layernorm
from torch_impl.linear import linear
from torch_impl.qwen3 import Qwen3Backbone, materialize, qwen3_body
from torch_impl.rmsnorm import rmsnorm
from torch_impl.transformer import TransformerBlock
from twinlm.shared.classifier import (
    PAD_ID,
    QWEN3_PAD_ID,
    check_classifier_options,
    decapitate,
    trainable_keys,
)
from twinlm.shared.config import validate_config, validate_qwen3_config
from twinlm.shared.init import init_gpt_params, init_qwen3_params
from twinlm.shared.naming import LMNames, gpt_dropout_mask_shapes
from twinlm.shared.validate import require_no_dropout, require_token_batch

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


class _Decapitated(nn.Module):
    """What a decapitated GPT and a decapitated Qwen3 share: the constructor, options, the seeded
    weights, the frozen parameters and the forward from the body's output to the class logits. A
    subclass builds its module tree (`_build`) and supplies `names`, `default_pad_id`,
    `check_config`, `_init`, `_masks`, `_body` and `_norm`."""

    names: LMNames
    default_pad_id: int
    check_config: Callable[[dict], dict]

    def __init__(
        self,
        cfg: dict,
        num_classes: int = 2,
        *,
        trainable: str = "last-block",
        k: int | None = None,
        position: str = "last",
        pad_id: int | None = None,
        seed: int = 0,
        dtype: torch.dtype | None = None,
        backbone: dict | None = None,
    ):
        super().__init__()
        self.cfg = self.check_config(dict(cfg))  # GPT's or Qwen3's: the other kind is refused
        pad_id = self.default_pad_id if pad_id is None else pad_id
        self.first_trainable = check_classifier_options(
            self.cfg, num_classes, trainable, k, position, pad_id
        )
        self.num_classes, self.trainable, self.k = num_classes, trainable, k
        self.position, self.pad_id = position, pad_id
        with torch.device("meta"):
            self._build()
        dtype = dtype or torch.float32
        np_dtype = _NUMPY_DTYPES[dtype]
        if backbone is None:
            backbone = self._init(seed, np_dtype)
        else:  # torch tensors or NumPy arrays
            backbone = {
                k: v.detach().cpu().numpy() if hasattr(v, "detach") else v
                for k, v in backbone.items()
            }
        materialize(self, decapitate(backbone, self.cfg, num_classes, seed, np_dtype), dtype)
        self.trainable_keys = trainable_keys(self.cfg, num_classes, trainable, k)
        for name, p in self.named_parameters():
            p.requires_grad_(name in self.trainable_keys)  # the book: requires_grad = False

    def forward(
        self, in_idx: torch.Tensor, dropout_masks: dict[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Class logits (B, K) for token ids in_idx (B, T). dropout_masks (GPT only, names as
        numpy_impl/gpt.py): replay these in either mode; None: drawn in training mode, none in
        eval mode."""
        cfg, head = self.cfg, self.names.head
        require_token_batch(
            "idx", in_idx, cfg["vocab_size"], cfg["context_length"], backend="torch"
        )
        B, T = in_idx.shape
        positions = token_positions(in_idx, self.position, self.pad_id)  # (B,)
        params = dict(self.named_parameters())
        masks = self._masks(B, T, dropout_masks, params[head + "weight"])
        x = self._body(in_idx, params, masks)  # (B, T, C)
        h = x[torch.arange(B, device=x.device), positions]  # (B, C)
        return linear(self._norm(h, params), params[head + "weight"], params[head + "bias"])


class GPTClassifier(_Decapitated):
    """The book's decapitated GPTModel; arguments as numpy_impl.GPTClassifier's, dtype a
    torch dtype (default float32). Starts from the same NumPy-drawn weights for the same seed."""

    names = LMNames(qwen3=False)
    default_pad_id = PAD_ID
    check_config = staticmethod(validate_config)

    def _build(self) -> None:
        cfg, C = self.cfg, self.cfg["emb_dim"]
        self.tok_emb = nn.Embedding(cfg["vocab_size"], C)
        self.pos_emb = nn.Embedding(cfg["context_length"], C)
        self.trf_blocks = nn.Sequential(*[TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(C)
        self.out_head = nn.Linear(C, self.num_classes)

    def _init(self, seed, np_dtype):
        return init_gpt_params(self.cfg, seed, np_dtype)

    def _masks(self, B, T, dropout_masks, like):
        shapes = gpt_dropout_mask_shapes(self.cfg, B, T)
        return resolve_dropout_masks(
            dropout_masks, shapes, self.cfg["drop_rate"], self.training, like
        )

    def _body(self, idx, params, masks):
        return gpt_body(idx, params, self.cfg, masks, self.first_trainable)

    def _norm(self, h, params):
        return layernorm(h, params["final_norm.scale"], params["final_norm.shift"])


class Qwen3Classifier(_Decapitated):
    """Qwen3 decapitated (numpy_impl.Qwen3Classifier's twin): Hugging Face's module tree (model.…)
    with lm_head = Linear(C, num_classes) and a bias; arguments as numpy_impl.Qwen3Classifier's,
    dtype a torch dtype. Dropout-free."""

    names = LMNames(qwen3=True)
    default_pad_id = QWEN3_PAD_ID
    check_config = staticmethod(validate_qwen3_config)

    def _build(self) -> None:
        self.model = Qwen3Backbone(self.cfg)
        self.lm_head = nn.Linear(self.cfg["emb_dim"], self.num_classes)

    def _init(self, seed, np_dtype):
        return init_qwen3_params(self.cfg, seed, np_dtype)

    def _masks(self, B, T, dropout_masks, like):
        require_no_dropout(None, dropout_masks)
        return {}

    def _body(self, idx, params, masks):
        return qwen3_body(idx, params, self.cfg, self.first_trainable)

    def _norm(self, h, params):
        return rmsnorm(h, params["model.norm.weight"], self.cfg["rms_norm_eps"])
