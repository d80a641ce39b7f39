"""GPT-2 (the book's GPTModel, chapter 4) in NumPy, with a hand-written backward pass.

Forward, idx (B, T) token ids:
    x = tok_emb[idx] + pos_emb[0..T-1]         (B, T, C)   token plus position embedding
    x = drop(x)                                (B, T, C)   mask "drop_emb"
    x = block_i(x)   for i = 0 .. n_layers-1   (B, T, C)   numpy_impl/transformer.py
    x = final_norm(x)                          (B, T, C)
    logits = x W_outᵀ                          (B, T, V)   out_head, no bias (not tied to tok_emb)
Backward runs the chain in reverse. The two embeddings are lookups, so their gradients scatter-add
dx into the rows that were read: d tok_emb from dx at each token's id, d pos_emb[t] = Σ_b dx[b, t]
(every sequence in the batch reads the same positions).

The body (everything below final_norm) is an op pair, `gpt_body_forward` / `gpt_body_backward`,
shared with numpy_impl/classifier.py. Its `first_trainable` says where the backward stops: caches
are kept, and gradients returned, for blocks first_trainable .. n_layers-1 only, and for the
embeddings only when first_trainable is 0 (a classifier fine-tuning its top blocks keeps nothing
below them). torch_impl.gpt_body takes the same arguments.

Dropout is active only when GPTModel.forward is given a numpy.random.Generator (it then draws every
mask and keeps them in `last_dropout_masks`) or explicit masks; otherwise forward is deterministic
(evaluation mode). Mask names (twinlm.shared.naming.gpt_dropout_mask_shapes): "drop_emb" (B, T, C),
and for block i "trf_blocks.{i}." followed by "att.dropout" (B, H, T, T), "drop_shortcut.att"
(B, T, C), "drop_shortcut.ff" (B, T, C); any subset, a missing name is no dropout there.
torch_impl.GPTModel.forward(idx, dropout_masks=...) replays the same dict.

`GPTModel(cfg, kernels="fast")` runs the same model on numpy_impl/fast's ops (see
numpy_impl.kernel_ops); its loss_and_grads then also frees each activation as soon as it is used.
"""

from __future__ import annotations

import re

import numpy as np

import numpy_impl
from numpy_impl.dropout import maybe_dropout_backward, maybe_dropout_forward
from numpy_impl.embedding import embedding_backward, embedding_forward
from numpy_impl.linear import linear_backward, linear_forward
from numpy_impl.loss import cross_entropy_backward, cross_entropy_forward
from numpy_impl.transformer import transformer_block_backward, transformer_block_forward
from twinlm.shared.config import validate_config
from twinlm.shared.init import draw_dropout_masks, init_gpt_params, numpy_state_dict
from twinlm.shared.naming import gpt_dropout_mask_shapes, gpt_param_shapes, sub_dict, with_prefix
from twinlm.shared.validate import (
    require_backend,
    require_dropout_masks,
    require_shape,
    require_token_batch,
)

# The book's MultiHeadAttention registers its causal mask as a buffer, so its state_dicts hold it.
_BOOK_MASK_BUFFER = re.compile(r"trf_blocks\.\d+\.att\.mask")


def gpt_body_forward(
    idx: np.ndarray,
    params: dict[str, np.ndarray],
    cfg: dict,
    dropout_masks: dict[str, np.ndarray] | None = None,
    first_trainable: int = 0,
):
    """x (B, T, C) = block_{L-1}( … block_0(drop(tok_emb[idx] + pos_emb[0..T-1])) ) for token ids
    idx (B, T); params and dropout_masks keyed like the whole model's. Returns (x, cache); the
    cache holds what gpt_body_backward needs from first_trainable up, nothing below."""
    return gpt_body_with(
        transformer_block_forward, idx, params, cfg, dropout_masks, first_trainable
    )


def gpt_body_backward(dx: np.ndarray, cache) -> dict[str, np.ndarray]:
    """Gradients of the body's parameters from dx (B, T, C) on its output: the blocks from the
    top down to first_trainable, then the embeddings when first_trainable was 0."""
    embed_cache, block_caches = cache
    # a copy of the blocks' dict, which gpt_body_backward_with empties: `cache` stays whole
    return gpt_body_backward_with(transformer_block_backward, dx, (embed_cache, dict(block_caches)))


def gpt_body_with(block, idx, params, cfg: dict, dropout_masks, first_trainable: int):
    """gpt_body_forward with `block` (a transformer_block_forward) for each block: this package's,
    or the fast path's (numpy_impl/fast/gpt.py)."""
    masks = dropout_masks or {}
    T, p = idx.shape[1], cfg["drop_rate"]
    tok, tok_cache = embedding_forward(idx, params["tok_emb.weight"])  # (B, T, C)
    pos, pos_cache = embedding_forward(np.arange(T), params["pos_emb.weight"])  # (T, C)
    x, drop_cache = maybe_dropout_forward(tok + pos, masks.get("drop_emb"), p)  # (B, T, C)
    embed_cache = (tok_cache, pos_cache, drop_cache) if first_trainable == 0 else None
    block_caches = {}
    for i in range(cfg["n_layers"]):
        prefix = f"trf_blocks.{i}."
        x, block_cache = block(
            x, sub_dict(params, prefix), cfg["n_heads"], sub_dict(masks, prefix), p
        )  # (B, T, C)
        if i >= first_trainable:
            block_caches[i] = block_cache  # a frozen block's cache is dropped at once
    return x, (embed_cache, block_caches)


def gpt_body_backward_with(block_backward, dx: np.ndarray, cache) -> dict[str, np.ndarray]:
    """gpt_body_backward with the block backward that matches the forward's blocks. Pops each
    block's cache from the cache's dict as soon as its gradients are computed: when the caller
    holds the dict nowhere else, that block's activations are freed."""
    embed_cache, block_caches = cache
    grads = {}
    for i in sorted(block_caches, reverse=True):  # x = block_i(x), top down
        dx, block_grads = block_backward(dx, block_caches.pop(i))  # (B, T, C)
        grads |= with_prefix(block_grads, f"trf_blocks.{i}.")
    if embed_cache is not None:
        tok_cache, pos_cache, drop_cache = embed_cache
        dx = maybe_dropout_backward(dx, drop_cache)  # x = drop(tok + pos): (B, T, C)
        grads["tok_emb.weight"] = embedding_backward(dx, tok_cache)  # (V, C)
        grads["pos_emb.weight"] = embedding_backward(dx.sum(axis=0), pos_cache)  # (context, C)
    return grads


def select_dropout_masks(cfg: dict, B: int, T: int, dtype, dropout_rng, dropout_masks) -> dict:
    """One model forward's dropout masks (empty: no dropout): drawn from dropout_rng, or the
    caller's dropout_masks checked against gpt_dropout_mask_shapes' names and shapes."""
    if dropout_rng is not None and dropout_masks is not None:
        raise ValueError("pass dropout_rng or dropout_masks, not both")
    shapes = gpt_dropout_mask_shapes(cfg, B, T)
    if dropout_rng is not None and cfg["drop_rate"] == 0:
        return {}
    if dropout_rng is not None:
        return draw_dropout_masks(shapes, dropout_rng, cfg["drop_rate"], dtype)
    masks = {} if dropout_masks is None else dropout_masks
    require_dropout_masks("dropout_masks", masks, shapes)
    return dict(masks)


class GPTModel:
    """The book's GPTModel: `params` holds every weight under the torch state_dict key.

    kernels: "reference" (numpy_impl's ops) or "fast" (numpy_impl/fast's, the same results to
    rounding); an attribute a caller may also set later (twinlm's training engine does)."""

    def __init__(self, cfg: dict, seed: int = 0, dtype=np.float32, kernels: str = "reference"):
        numpy_impl.kernel_ops(kernels)  # a known name, or a ValueError naming `kernels`
        self.cfg = validate_config(dict(cfg))
        self.params: dict[str, np.ndarray] = init_gpt_params(self.cfg, seed, dtype)
        self.kernels = kernels
        self.last_dropout_masks: dict[str, np.ndarray] = {}
        self._cache = None

    @property
    def dtype(self) -> np.dtype:
        return self.params["tok_emb.weight"].dtype

    # ---- state dict ----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter, keyed like torch's state_dict."""
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state: dict) -> None:
        """Load NumPy arrays or CPU torch tensors keyed like the book's state_dict (its
        `att.mask` buffers are dropped). The model takes the arrays' dtype (float32 or float64)."""
        state = {k: v for k, v in state.items() if not _BOOK_MASK_BUFFER.fullmatch(k)}
        # Update the same dict, so an optimizer holding it sees the new arrays.
        self.params.update(numpy_state_dict(state, gpt_param_shapes(self.cfg)))

    # ---- forward / backward --------------------------------------------------------------------

    def forward(self, idx: np.ndarray, dropout_rng=None, dropout_masks=None) -> np.ndarray:
        """Logits (B, T, V) for token ids idx (B, T). Stores what backward needs."""
        cfg, P, ops = self.cfg, self.params, numpy_impl.kernel_ops(self.kernels)
        require_token_batch("idx", idx, cfg["vocab_size"], cfg["context_length"], backend="numpy")
        B, T = idx.shape
        masks = select_dropout_masks(cfg, B, T, self.dtype, dropout_rng, dropout_masks)
        self.last_dropout_masks = masks

        x, body_cache = ops.gpt_body_forward(idx, P, cfg, masks)  # (B, T, C)
        x, norm_cache = ops.layernorm_forward(x, P["final_norm.scale"], P["final_norm.shift"])
        logits, head_cache = linear_forward(x, P["out_head.weight"])  # (B, T, V)
        self._cache = ((B, T), body_cache, norm_cache, head_cache, ops)
        return logits

    def backward(self, dlogits: np.ndarray) -> dict[str, np.ndarray]:
        """Gradient of every parameter (same keys as `params`) given d loss / d logits (B, T, V)."""
        if self._cache is None:
            raise RuntimeError("backward needs a forward first")
        (B, T), body_cache, norm_cache, head_cache, ops = self._cache
        require_shape("dlogits", dlogits, (B, T, self.cfg["vocab_size"]))
        dx, dhead, _ = linear_backward(dlogits, head_cache)  # (B, T, C)
        return self._grads_below_head(ops, dx, dhead, norm_cache, ops.gpt_body_backward, body_cache)

    def _grads_below_head(self, ops, dx, dhead, norm_cache, body_backward, body_cache):
        """Every parameter's gradient, given dx (B, T, C) on the output head's input and the
        head's own gradient dhead: final_norm's backward (from the op set `ops`), then
        body_backward(dx, body_cache)."""
        grads = {"out_head.weight": dhead}
        dx, grads["final_norm.scale"], grads["final_norm.shift"] = ops.layernorm_backward(
            dx, norm_cache
        )
        grads |= body_backward(dx, body_cache)
        return {k: grads[k] for k in self.params}

    def loss_and_grads(self, idx, targets, dropout_rng=None, dropout_masks=None):
        """Mean cross-entropy of the next-token targets (B, T) (ignore_index -100), and every
        parameter's gradient. Returns (loss as a Python float, grads)."""
        require_backend("targets", targets, "numpy")
        if self.kernels == "fast":  # the same, freeing each activation once it is used
            from numpy_impl.fast.gpt import gpt_loss_and_grads

            return gpt_loss_and_grads(self, idx, targets, dropout_rng, dropout_masks)
        logits = self.forward(idx, dropout_rng, dropout_masks)  # (B, T, V)
        require_shape("targets", targets, idx.shape)
        loss, loss_cache = cross_entropy_forward(logits, targets)
        dlogits = cross_entropy_backward(np.ones((), dtype=self.dtype), loss_cache)  # (B, T, V)
        return float(loss), self.backward(dlogits)
