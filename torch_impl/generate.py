"""Text generation with GPT (book chapter 5 `generate`) in PyTorch, with and without a KV cache.

The twin of numpy_impl/generate.py, whose docstring derives the method:
    uncached:  every step runs the model on idx[:, -context_size:] and keeps the last logits;
    cached:    K_l, V_l (B, H, context_size, hd) per layer, preallocated; the prompt is run once
               (prefill), then each step runs only the new token at position t, writes its key and
               value at t and attends over positions 0 .. t; logits of the last position only.
Past `context_size` the book's crop moves every token to a new absolute position, so the cache is
rebuilt from the cropped window at every step, which keeps the tokens exactly those of uncached
generation.

Logits go to twinlm.shared.sampling.next_tokens as float64 NumPy, the sampler NumPy uses too, so the same
seed gives the same tokens in both backends. Runs under torch.no_grad() in eval mode (the model's
training flag is restored afterwards), on the model's device.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import torch

from torch_impl.attention import attention
from torch_impl.embedding import embedding
from torch_impl.gpt import GPTModel
from torch_impl.linear import linear
from twinlm.shared.sampling import check_generate_args, next_tokens
from twinlm.shared.validate import require_cache_room, require_token_batch


class KVCache:
    """Keys and values of every layer for the first `length` positions of a sequence.

    keys[l], values[l]: (B, H, max_len, hd) preallocated; positions [0, length) are filled.
    tokens: (B, max_len) the token ids those positions hold.
    """

    def __init__(
        self, n_layers: int, batch: int, n_heads: int, head_dim: int, max_len: int, dtype, device
    ):
        shape = (batch, n_heads, max_len, head_dim)
        self.keys = [torch.empty(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.values = [torch.empty(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.tokens = torch.zeros((batch, max_len), dtype=torch.long, device=device)
        self.length = 0

    @classmethod
    def for_model(cls, model: GPTModel, batch: int, max_len: int | None = None) -> KVCache:
        cfg, w = model.cfg, model.out_head.weight
        max_len = cfg["context_length"] if max_len is None else max_len
        head_dim = cfg["emb_dim"] // cfg["n_heads"]
        return cls(cfg["n_layers"], batch, cfg["n_heads"], head_dim, max_len, w.dtype, w.device)

    @property
    def max_len(self) -> int:
        return self.tokens.shape[1]

    def reset(self) -> None:
        self.length = 0

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Write k, v (B, H, T, hd) at positions [length, length + T) of `layer`; return that
        layer's keys and values for positions [0, length + T) (views, no copy)."""
        end = self.length + k.shape[2]
        self.keys[layer][:, :, self.length : end] = k  # O(T) slice write, no reallocation
        self.values[layer][:, :, self.length : end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]  # (B, H, end, hd)


def _attention_cached(x: torch.Tensor, att, cache: KVCache, layer: int) -> torch.Tensor:
    """Causal multi-head attention of x (B, T, C), the tokens at positions [cache.length,
    cache.length + T), over themselves and every cached position. `att` is the block's
    MultiHeadAttention (its weights only)."""
    B, T, C = x.shape
    H = att.num_heads
    q, k, v = (
        linear(x, proj.weight, proj.bias)  # (B, T, C)
        .view(B, T, H, C // H)
        .transpose(1, 2)  # (B, H, T, hd)
        for proj in (att.W_query, att.W_key, att.W_value)
    )
    k_all, v_all = cache.append(layer, k, v)  # (B, H, length + T, hd)
    # The T queries are the last T positions: attention() offsets the causal mask for Tq < Tk.
    ctx = attention(q, k_all, v_all, causal=True)  # (B, H, T, hd)
    ctx = ctx.transpose(1, 2).contiguous().view(B, T, C)  # merge heads: (B, T, C)
    return linear(ctx, att.out_proj.weight, att.out_proj.bias)  # (B, T, C)


def forward_cached(
    model: GPTModel, idx: torch.Tensor, cache: KVCache, last_only: bool = True
) -> torch.Tensor:
    """GPTModel.forward (without dropout) for idx (B, T), the tokens that follow the cache's
    `length` positions: positions continue from cache.length, and attention also sees every cached
    key and value. Appends the new keys, values and tokens to the cache. Returns the logits
    (B, 1, V) of the last position (last_only) or (B, T, V) of all T."""
    require_token_batch("idx", idx, model.cfg["vocab_size"])
    B, T = idx.shape
    start = cache.length
    require_cache_room(idx, cache.tokens.shape[0], start, cache.max_len)

    tok = embedding(idx, model.tok_emb.weight)  # (B, T, C)
    x = tok + model.pos_emb.weight[start : start + T]  # (B, T, C) positions start .. start+T-1
    for layer, block in enumerate(model.trf_blocks):
        h = x + _attention_cached(block.norm1(x), block.att, cache, layer)  # (B, T, C)
        x = h + block.ff(block.norm2(h))  # (B, T, C)
    cache.tokens[:, start : start + T] = idx
    cache.length = start + T  # every layer has written positions [start, start + T)

    if last_only:
        x = x[:, -1:]  # (B, 1, C) only the last position's logits are needed to generate
    return linear(model.final_norm(x), model.out_head.weight)  # (B, T or 1, V)


def last_logits(model: GPTModel, idx: torch.Tensor, context_size: int) -> torch.Tensor:
    """Uncached, the book's step: logits (B, V) of the last position of idx[:, -context_size:]."""
    return model(idx[:, -context_size:])[:, -1, :]  # (B, V)


class CachedLogits:
    """Called with a growing idx (B, L), returns the same logits (B, V) as
    `last_logits(model, idx, context_size)`, reusing the keys and values of earlier calls.

    While L ≤ context_size and the cache holds a prefix of idx, only the tokens after it are run.
    Otherwise (the first call, a different sequence, or L > context_size, when the cropped window
    puts every token at a new absolute position) the cache is rebuilt from idx[:, -context_size:].
    """

    def __init__(self, model: GPTModel, batch: int, context_size: int):
        self.model = model
        self.cache = KVCache.for_model(model, batch, context_size)

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        cache, L = self.cache, idx.shape[1]
        n = cache.length
        reusable = n < L <= cache.max_len and torch.equal(cache.tokens[:, :n], idx[:, :n])
        if not reusable:
            cache.reset()  # rebuild: prefill the (cropped) window at positions 0 ..
            n, idx = 0, idx[:, -cache.max_len :]
        logits = forward_cached(self.model, idx[:, n:], cache, last_only=True)  # (B, 1, V)
        return logits[:, -1, :]  # (B, V)


@torch.no_grad()
def generate(
    model: GPTModel,
    idx: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    eos_id: int | None = None,
    rng: np.random.Generator | None = None,
    use_cache: bool = True,
    context_size: int | None = None,
) -> torch.Tensor:
    """Extend the token ids idx (B, T) by up to max_new_tokens tokens; returns a LongTensor
    (B, T + n) on the model's device. Arguments and the eos_id rule as numpy_impl.generate:
    temperature 0 greedy, > 0 samples with the NumPy `rng`; a row that has drawn eos_id is padded
    with it, and the loop stops (appending nothing) once every row has drawn it."""
    if not isinstance(idx, torch.Tensor):
        raise TypeError(f"idx must be a torch integer tensor (B, T), got {type(idx).__name__}")
    cfg = model.cfg
    context_size = check_generate_args(
        idx, max_new_tokens, cfg["vocab_size"], cfg["context_length"], temperature, top_k, eos_id,
        rng, context_size,
    )  # fmt: skip
    device = model.out_head.weight.device
    idx = idx.to(device=device, dtype=torch.long, copy=True)  # the caller's tensor is never written
    B = idx.shape[0]
    was_training = model.training
    model.eval()
    if use_cache:
        step_logits = CachedLogits(model, B, context_size)
    else:
        step_logits = partial(last_logits, model, context_size=context_size)
    done = np.zeros(B, dtype=bool)  # rows that have drawn eos_id

    try:
        for _ in range(max_new_tokens):
            logits = step_logits(idx)  # (B, V) of the last position
            token = next_tokens(logits.double().cpu().numpy(), temperature, top_k, rng)  # (B,)
            if eos_id is not None:
                token[done] = eos_id  # finished rows are padded with eos_id
                done |= token == eos_id
                if done.all():
                    break
            idx = torch.cat([idx, torch.from_numpy(token).to(device)[:, None]], dim=1)  # (B, L+1)
    finally:
        model.train(was_training)
    return idx
