"""GPT-2, the fast path: numpy_impl/gpt.py's body with the fast transformer blocks, and
GPTModel.loss_and_grads for kernels="fast", which frees memory as torch frees its graph: the
logits become the softmax and then d loss / d logits in place (numpy_impl/fast/loss.py), freed
after the output head's backward; each block's activations are freed once its gradients are
computed. Its forward's cache is used up (`backward` needs a new forward).
"""

from __future__ import annotations

import numpy as np

from numpy_impl.fast.loss import cross_entropy_backward_inplace, cross_entropy_inplace
from numpy_impl.fast.transformer import transformer_block_backward, transformer_block_forward
from numpy_impl.gpt import gpt_body_backward_with, gpt_body_with
from numpy_impl.linear import linear_backward
from twinlm.shared.validate import require_shape


def gpt_body_forward(
    idx: np.ndarray,
    params: dict[str, np.ndarray],
    cfg: dict,
    dropout_masks: dict[str, np.ndarray] | None = None,
    first_trainable: int = 0,
):
    """numpy_impl.gpt_body_forward with the fast blocks."""
    return gpt_body_with(
        transformer_block_forward, idx, params, cfg, dropout_masks, first_trainable
    )


def gpt_body_backward(dx: np.ndarray, cache) -> dict[str, np.ndarray]:
    """The body's parameter gradients; `cache` stays whole."""
    embed_cache, block_caches = cache
    return gpt_body_backward_with(transformer_block_backward, dx, (embed_cache, dict(block_caches)))


def _body_backward_freeing(dx: np.ndarray, cache) -> dict[str, np.ndarray]:
    """gpt_body_backward emptying the cache's dict of blocks as it goes."""
    return gpt_body_backward_with(transformer_block_backward, dx, cache)


def gpt_loss_and_grads(model, idx, targets, dropout_rng=None, dropout_masks=None):
    """GPTModel.loss_and_grads for kernels="fast" (module docstring). Returns (loss, grads)."""
    logits = model.forward(idx, dropout_rng, dropout_masks)  # (B, T, V)
    require_shape("targets", targets, idx.shape)
    loss, loss_cache = cross_entropy_inplace(logits, targets)  # logits now hold the softmax
    dlogits = cross_entropy_backward_inplace(np.ones((), dtype=model.dtype), loss_cache)
    del logits, loss_cache  # dlogits is the one name left for the (B, T, V) buffer
    _, body_cache, norm_cache, head_cache, ops = model._cache
    model._cache = None  # used up: the blocks' caches are ours alone, so popping frees
    dx, dhead, _ = linear_backward(dlogits, head_cache)  # (B, T, C)
    del dlogits  # freed here, before the blocks' backward
    grads = model._grads_below_head(ops, dx, dhead, norm_cache, _body_backward_freeing, body_cache)
    return float(loss), grads
