"""GPT-2 or Qwen3 with its output head replaced by a class head (the book's chapter 6), hand-written
backward.

Forward, idx (B, T) token ids; the body is numpy_impl/gpt.py's up to the last block:
    x = drop(tok_emb[idx] + pos_emb[0..T-1])     (B, T, C)
    x = block_i(x)   for i = 0 .. n_layers-1     (B, T, C)
    h = x[b, pos_b]                              (B, C)    the classified position of each row
    n = final_norm(h)                            (B, C)
    logits = n W_headᵀ + b_head                  (B, K)
pos_b = T - 1 ("last", the book) or the last b-row index whose id is not pad_id ("last-non-pad").
LayerNorm and the head are per position, so norm-then-pick equals pick-then-norm; picking first
skips T - 1 of every T rows.

Backward, from dlogits (B, K), only as far as the first trainable layer (twinlm/shared/classifier.py):
    dW_head = dlogitsᵀ n,  db_head = Σ_b dlogits,  dn = dlogits W_head      (K, C), (K,), (B, C)
    dh = ∂final_norm(dn)                                                    (B, C)
    dx[b, pos_b] = dh[b], 0 at every other position                         (B, T, C)
    dx = ∂block_i(dx)   for i = n_layers-1 down to the first trainable block
    then, for trainable="all", the dropout and the embeddings' scatter-adds (numpy_impl/gpt.py).
The body is numpy_impl/gpt.py's gpt_body_forward / gpt_body_backward with first_trainable: frozen
blocks run forward and drop their caches at once, so nothing is kept that backward won't use, and
no gradient is computed for a frozen parameter. Gradients come back for the trainable parameters
only.

Qwen3Classifier is the same code path (the class _Decapitated) with numpy_impl/qwen3.py's body
(qwen3_body_forward / qwen3_body_backward), an RMSNorm for final_norm (model.norm), the head under
lm_head, and no dropout.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import numpy_impl
from numpy_impl.gpt import select_dropout_masks
from numpy_impl.linear import linear_backward, linear_forward
from numpy_impl.qwen3 import qwen3_body_backward, qwen3_body_forward
from numpy_impl.rmsnorm import rmsnorm_backward, rmsnorm_forward
from twinlm.shared.classifier import (
    PAD_ID,
    QWEN3_PAD_ID,
    check_classifier_options,
    classifier_param_shapes,
    decapitate,
    trainable_keys,
)
from twinlm.shared.config import validate_config, validate_qwen3_config
from twinlm.shared.init import init_gpt_params, init_qwen3_params
from twinlm.shared.naming import LMNames
from twinlm.shared.validate import (
    require_backend,
    require_exact_keys,
    require_ids,
    require_no_dropout,
    require_shape,
    require_token_batch,
)


def token_positions(idx: np.ndarray, position: str, pad_id: int) -> np.ndarray:
    """The classified position of each row of idx (B, T): (B,) int64."""
    B, T = idx.shape
    if position == "last":
        return np.full(B, T - 1, dtype=np.int64)
    not_pad = idx != pad_id  # (B, T)
    empty = ~not_pad.any(axis=1)  # (B,)
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise ValueError(
            f"idx row {row} holds only pad tokens ({pad_id}); position='last-non-pad' needs at "
            "least one other token"
        )
    # argmax finds the first True: in the reversed row that is the last non-pad token.
    return (T - 1 - np.argmax(not_pad[:, ::-1], axis=1)).astype(np.int64)  # (B,)


class _Decapitated:
    """What a decapitated GPT and a decapitated Qwen3 share: the constructor, options, params, the
    forward from the body's output to the class logits and its backward. A subclass supplies its
    architecture: `names`, `default_pad_id`, `check_config` (its config's validation), `_init(seed,
    dtype)` (a fresh backbone), `_body` / `_body_backward` (the body op pair), `_norm` /
    `_norm_backward` (final_norm's, over (B, C)), from the op set `_ops`, and `_masks` (the dropout
    masks). kernels: "reference" or "fast" (numpy_impl.kernel_ops), an attribute a caller may also
    set later."""

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
        dtype=np.float32,
        backbone: dict | None = None,
        kernels: str = "reference",
    ):
        numpy_impl.kernel_ops(kernels)  # a known name, or a ValueError naming `kernels`
        self.kernels = kernels
        self.cfg = self.check_config(dict(cfg))  # GPT's or Qwen3's: the other kind is refused
        pad_id = self.default_pad_id if pad_id is None else pad_id
        self.first_trainable = check_classifier_options(
            self.cfg, num_classes, trainable, k, position, pad_id
        )
        self.num_classes, self.trainable, self.k = num_classes, trainable, k
        self.position, self.pad_id = position, pad_id
        if backbone is None:
            backbone = self._init(seed, dtype)
        self.params: dict[str, np.ndarray] = decapitate(
            backbone, self.cfg, num_classes, seed, dtype
        )
        self.trainable_keys = trainable_keys(self.cfg, num_classes, trainable, k)
        self.last_dropout_masks: dict[str, np.ndarray] = {}
        self._cache = None

    @property
    def dtype(self) -> np.dtype:
        return self.params[self.names.head + "weight"].dtype

    @property
    def _ops(self):
        """The op set `kernels` names (numpy_impl.kernel_ops)."""
        return numpy_impl.kernel_ops(self.kernels)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state: dict) -> None:
        """Load arrays keyed like `params` (same shapes); they take the model's dtype."""
        shapes = classifier_param_shapes(self.cfg, self.num_classes)
        state = {k: v for k, v in state.items() if not k.endswith(".att.mask")}
        require_exact_keys("state", state, shapes)
        for name, value in state.items():
            require_shape(f"state[{name!r}]", value, shapes[name])
            self.params[name][...] = value  # in place: an optimizer holding the arrays sees them

    # ---- forward / backward --------------------------------------------------------------------

    def forward(self, idx: np.ndarray, dropout_rng=None, dropout_masks=None) -> np.ndarray:
        """Class logits (B, K) for token ids idx (B, T). Dropout as in the backbone's model."""
        cfg, P, head = self.cfg, self.params, self.names.head
        require_token_batch("idx", idx, cfg["vocab_size"], cfg["context_length"], backend="numpy")
        B, T = idx.shape
        positions = token_positions(idx, self.position, self.pad_id)  # (B,)
        masks = self._masks(B, T, dropout_rng, dropout_masks)
        self.last_dropout_masks = masks

        # x (B, T, C); caches are kept only from the first trainable block up
        x, body_cache = self._body(idx, masks)
        h = x[np.arange(B), positions]  # (B, C)
        n, norm_cache = self._norm(h)  # (B, C)
        logits, head_cache = linear_forward(n, P[head + "weight"], P[head + "bias"])  # (B, K)
        self._cache = ((B, T), positions, body_cache, norm_cache, head_cache)
        return logits

    def backward(self, dlogits: np.ndarray) -> dict[str, np.ndarray]:
        """Gradients of the trainable parameters (keys `trainable_keys`) given d loss / d logits."""
        if self._cache is None:
            raise RuntimeError("backward needs a forward first")
        (B, T), positions, body_cache, norm_cache, head_cache = self._cache
        require_shape("dlogits", dlogits, (B, self.num_classes))
        head, grads = self.names.head, {}

        dn, grads[head + "weight"], grads[head + "bias"] = linear_backward(dlogits, head_cache)
        if self.trainable == "head":
            return grads  # the body is frozen: stop here
        dh, norm_grads = self._norm_backward(dn, norm_cache)  # (B, C)
        grads |= norm_grads
        dx = np.zeros((B, T, dh.shape[-1]), dtype=dh.dtype)  # (B, T, C)
        dx[np.arange(B), positions] = dh  # only the classified positions reach the loss
        grads |= self._body_backward(dx, body_cache)  # trainable blocks (+ embeddings)
        return {k: grads[k] for k in self.trainable_keys}

    def loss_and_grads(self, idx, labels, dropout_rng=None, dropout_masks=None):
        """Mean cross entropy of the class logits against labels (B,) and the trainable
        parameters' gradients. Returns (loss as a Python float, grads)."""
        require_backend("labels", labels, "numpy")
        logits = self.forward(idx, dropout_rng, dropout_masks)  # (B, K) idx checked here
        require_ids("labels", labels, self.num_classes)
        require_shape("labels", labels, (idx.shape[0],))
        loss, loss_cache = self._ops.cross_entropy_forward(logits, labels)
        dlogits = self._ops.cross_entropy_backward(np.ones((), logits.dtype), loss_cache)  # (B, K)
        return float(loss), self.backward(dlogits)


class GPTClassifier(_Decapitated):
    """The book's decapitated GPTModel: `params` keyed like its state_dict, with out_head.weight
    (num_classes, C) and out_head.bias (num_classes,).

    trainable: "last-block" (book), "last-k" (with k), "head" or "all"; position: "last" (book)
    or "last-non-pad"; pad_id: default GPT-2's <|endoftext|> (50256); backbone: a GPT's params
    (book keys, e.g. from twinlm.weights.load_gpt2 or GPTModel.params; copied, its out_head
    ignored), default a fresh init_gpt_params(cfg, seed). The new head is drawn from `seed`
    (twinlm.shared.classifier.init_head_params)."""

    names = LMNames(qwen3=False)
    default_pad_id = PAD_ID
    check_config = staticmethod(validate_config)

    def _init(self, seed, dtype):
        return init_gpt_params(self.cfg, seed, dtype)

    def _masks(self, B, T, dropout_rng, dropout_masks):
        return select_dropout_masks(self.cfg, B, T, self.dtype, dropout_rng, dropout_masks)

    def _body(self, idx, masks):
        return self._ops.gpt_body_forward(idx, self.params, self.cfg, masks, self.first_trainable)

    def _body_backward(self, dx, cache):
        return self._ops.gpt_body_backward(dx, cache)

    def _norm(self, h):
        P = self.params
        return self._ops.layernorm_forward(h, P["final_norm.scale"], P["final_norm.shift"])

    def _norm_backward(self, dn, cache):
        dh, dscale, dshift = self._ops.layernorm_backward(dn, cache)
        return dh, {"final_norm.scale": dscale, "final_norm.shift": dshift}


class Qwen3Classifier(_Decapitated):
    """Qwen3 decapitated (the Qwen3-0.6B-Base spam classifier): `params` keyed like Hugging Face's
    state_dict without the head, plus lm_head.weight (num_classes, C) and lm_head.bias
    (num_classes,). Arguments as GPTClassifier's; backbone: a Qwen3's params (e.g. from
    twinlm.weights.load_qwen3; an lm_head is ignored), default init_qwen3_params(cfg, seed); pad_id
    defaults to Qwen3's <|endoftext|>. Dropout-free. The math is GPTClassifier's with
    numpy_impl/qwen3.py's body and an RMSNorm for final_norm."""

    names = LMNames(qwen3=True)
    default_pad_id = QWEN3_PAD_ID
    check_config = staticmethod(validate_qwen3_config)

    def _init(self, seed, dtype):
        return init_qwen3_params(self.cfg, seed, dtype)

    def _masks(self, B, T, dropout_rng, dropout_masks):
        require_no_dropout(dropout_rng, dropout_masks)
        return {}

    def _body(self, idx, masks):
        return qwen3_body_forward(idx, self.params, self.cfg, self.first_trainable)

    def _body_backward(self, dx, cache):
        return qwen3_body_backward(dx, cache)

    def _norm(self, h):
        return rmsnorm_forward(h, self.params["model.norm.weight"], self.cfg["rms_norm_eps"])

    def _norm_backward(self, dn, cache):
        dh, dweight = rmsnorm_backward(dn, cache)
        return dh, {"model.norm.weight": dweight}
