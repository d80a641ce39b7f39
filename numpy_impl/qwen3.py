"""Qwen3 (Hugging Face's Qwen3ForCausalLM) in NumPy, with a hand-written backward pass.

Forward, idx (B, T) token ids; cfg as twinlm.shared.config's Qwen3 keys:
    cos, sin = rope_angles(0 .. T-1)            (T, hd/2)   numpy_impl/rope.py, in the model dtype
    x = embed_tokens[idx]                       (B, T, C)   no position embedding: RoPE instead
    x = layer_i(x)  for i = 0 .. n_layers-1     (B, T, C)   numpy_impl/qwen3_block.py
    x = rmsnorm(x; model.norm.weight)           (B, T, C)
    logits = x Wᵀ                               (B, T, V)   W = lm_head.weight, or embed_tokens
                                                            itself when tie_embeddings
Backward runs the chain in reverse. With tied embeddings the one matrix is used twice, so its
gradient is the sum of both uses: the head's matmul gradient dlogitsᵀ x (V, C), dense, plus the
lookup's scatter-add of dx into the rows that were read (numpy_impl/embedding.py).

What differs from GPT-2 (numpy_impl/gpt.py): RMSNorm for LayerNorm, RoPE for learned positions,
grouped-query attention with QK-norm, SwiGLU for GELU, no biases (unless attention_bias), no
dropout, a tied head. Keys are Hugging Face's state_dict keys, so a checkpoint folder loads as is.

The body (everything below model.norm) is an op pair, qwen3_body_forward / qwen3_body_backward,
shared with numpy_impl/classifier.py; first_trainable says where its backward stops, as for
numpy_impl/gpt.py's gpt_body. torch_impl.qwen3_body takes the same arguments.

Precision: RMSNorm and the RoPE angles run in the model's dtype. Hugging Face runs both in float32
whatever the model's dtype, so a float32 model here follows it step for step, and a float64 model
is float64 throughout (which is what lets it agree with a float64 reference to 1e-13).
"""

from __future__ import annotations

import numpy as np

import numpy_impl
from numpy_impl.embedding import embedding_backward, embedding_forward
from numpy_impl.linear import linear_backward, linear_forward
from numpy_impl.qwen3_block import qwen3_block_backward, qwen3_block_forward
from numpy_impl.rmsnorm import rmsnorm_backward, rmsnorm_forward
from numpy_impl.rope import rope_angles
from twinlm.shared.config import Qwen3AttentionArgs, validate_qwen3_config
from twinlm.shared.init import init_qwen3_params, numpy_state_dict
from twinlm.shared.naming import qwen3_param_shapes, sub_dict, with_prefix
from twinlm.shared.validate import (
    require_backend,
    require_no_dropout,
    require_shape,
    require_token_batch,
)

EMBEDDING = "model.embed_tokens.weight"


def qwen3_body_forward(
    idx: np.ndarray, params: dict[str, np.ndarray], cfg: dict, first_trainable: int = 0
):
    """x (B, T, C) = layer_{L-1}( … layer_0(embed_tokens[idx]) ) for token ids idx (B, T) at
    positions 0 .. T-1; params keyed like the whole model's. Returns (x, cache); the cache holds
    what qwen3_body_backward needs from first_trainable up, nothing below."""
    T = idx.shape[1]
    x, embed_cache = embedding_forward(idx, params[EMBEDDING])  # (B, T, C)
    cos, sin = rope_angles(np.arange(T), cfg["head_dim"], cfg["rope_base"], x.dtype)
    args = Qwen3AttentionArgs.of(cfg, cos, sin)
    block_caches = {}
    for i in range(cfg["n_layers"]):
        layer = sub_dict(params, f"model.layers.{i}.")
        x, block_cache = qwen3_block_forward(x, layer, *args)  # (B, T, C)
        if i >= first_trainable:
            block_caches[i] = block_cache  # a frozen layer's cache is dropped at once
    return x, (embed_cache if first_trainable == 0 else None, block_caches)


def qwen3_body_backward(dx: np.ndarray, cache) -> dict[str, np.ndarray]:
    """Gradients of the body's parameters from dx (B, T, C) on its output: the layers from the
    top down to first_trainable, then the embedding's scatter-add when first_trainable was 0."""
    embed_cache, block_caches = cache
    grads = {}
    for i in reversed(block_caches):
        dx, block_grads = qwen3_block_backward(dx, block_caches[i])  # (B, T, C)
        grads |= with_prefix(block_grads, f"model.layers.{i}.")
    if embed_cache is not None:
        grads[EMBEDDING] = embedding_backward(dx, embed_cache)  # (V, C)
    return grads


class Qwen3Model:
    """Qwen3ForCausalLM: `params` holds every weight under Hugging Face's state_dict key.

    seed: the shared initializer's seed (twinlm.shared.init.init_qwen3_params); None leaves the
    weights at zero, for a model whose weights are loaded next (no 0.6B random draw). kernels:
    "reference" or "fast" (numpy_impl.kernel_ops), an attribute a caller may also set later."""

    def __init__(
        self, cfg: dict, seed: int | None = 0, dtype=np.float32, kernels: str = "reference"
    ):
        numpy_impl.kernel_ops(kernels)  # a known name, or a ValueError naming `kernels`
        self.kernels = kernels
        self.cfg = validate_qwen3_config(dict(cfg))
        self.params: dict[str, np.ndarray] = init_qwen3_params(self.cfg, seed, dtype)
        self._cache = None

    @property
    def dtype(self) -> np.dtype:
        return self.params[EMBEDDING].dtype

    @property
    def head_key(self) -> str:
        """The output head's weight: the embedding itself when tied."""
        return EMBEDDING if self.cfg["tie_embeddings"] else "lm_head.weight"

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter, keyed like Hugging Face's state_dict."""
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state: dict) -> None:
        """Load NumPy arrays or CPU torch tensors with Hugging Face's keys; a tied model ignores a
        stored lm_head.weight (Hugging Face's own state_dict lists the tied weight under both
        names). The model takes the arrays' dtype (float32 or float64)."""
        if self.cfg["tie_embeddings"]:
            state = {k: v for k, v in state.items() if k != "lm_head.weight"}
        self.params.update(numpy_state_dict(state, qwen3_param_shapes(self.cfg)))

    def forward(self, idx: np.ndarray, dropout_rng=None, dropout_masks=None) -> np.ndarray:
        """Logits (B, T, V) for token ids idx (B, T). Stores what backward needs. The dropout
        arguments exist for the training loop's sake and must be empty."""
        cfg, P = self.cfg, self.params
        require_no_dropout(dropout_rng, dropout_masks)
        require_token_batch("idx", idx, cfg["vocab_size"], cfg["context_length"], backend="numpy")
        x, body_cache = qwen3_body_forward(idx, P, cfg)  # (B, T, C)
        x, norm_cache = rmsnorm_forward(x, P["model.norm.weight"], cfg["rms_norm_eps"])
        logits, head_cache = linear_forward(x, P[self.head_key])  # (B, T, V)
        self._cache = (idx.shape, body_cache, norm_cache, head_cache)
        return logits

    def backward(self, dlogits: np.ndarray) -> dict[str, np.ndarray]:
        """Gradient of every parameter (same keys as `params`) given d loss / d logits (B, T, V)."""
        if self._cache is None:
            raise RuntimeError("backward needs a forward first")
        (B, T), body_cache, norm_cache, head_cache = self._cache
        require_shape("dlogits", dlogits, (B, T, self.cfg["vocab_size"]))
        grads = {}
        dx, dhead, _ = linear_backward(dlogits, head_cache)  # (B, T, C), (V, C)
        dx, grads["model.norm.weight"] = rmsnorm_backward(dx, norm_cache)
        grads |= qwen3_body_backward(dx, body_cache)
        if self.cfg["tie_embeddings"]:
            grads[EMBEDDING] += dhead  # both uses of the one matrix
        else:
            grads["lm_head.weight"] = dhead
        return {k: grads[k] for k in self.params}

    def loss_and_grads(self, idx, targets, dropout_rng=None, dropout_masks=None):
        """Mean cross-entropy of the next-token targets (B, T) (ignore_index -100), and every
        parameter's gradient. Returns (loss as a Python float, grads)."""
        require_backend("targets", targets, "numpy")
        logits = self.forward(idx, dropout_rng, dropout_masks)  # (B, T, V)
        require_shape("targets", targets, idx.shape)
        ops = numpy_impl.kernel_ops(self.kernels)
        loss, loss_cache = ops.cross_entropy_forward(logits, targets)
        dlogits = ops.cross_entropy_backward(np.ones((), dtype=logits.dtype), loss_cache)  # (B,T,V)
        return float(loss), self.backward(dlogits)
