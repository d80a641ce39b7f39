"""Text generation with GPT (book chapter 5 `generate`), with and without a KV cache.

Uncached, exactly the book's loop: at every step run the model on the last `context_size` tokens,
take the logits of the last position, pick a token (twinlm.shared.sampling.next_tokens), append it.
That recomputes the keys and values of every earlier token at every step: O(T) work per new token
(O(T²) in attention), for keys and values that never change while the window does not move.

KV cache. In causal attention a token's key and value at layer l depend only on the tokens up to
it, so they can be kept instead of recomputed:
    cache K_l, V_l   (B, H, context_size, hd)   preallocated, so appending is a slice write
    prefill:  run the prompt (T tokens) once, writing K_l, V_l[:, :, 0:T]
    decode:   feed only the new token at position t: x = tok_emb[id] + pos_emb[t]      (B, 1, C)
              per layer: q, k, v = x W_qᵀ, x W_kᵀ, x W_vᵀ                            (B, H, 1, hd)
                         K_l[:, :, t] = k, V_l[:, :, t] = v
                         y = softmax(q K_l[:, :, :t+1]ᵀ / √hd) V_l[:, :, :t+1]        (B, H, 1, hd)
              the single query sits at the last position, so nothing needs masking.
    logits:   final_norm and out_head on the last position only                        (B, 1, V)
Per new token this is O(t) in attention and O(1) elsewhere, instead of O(t²) and O(t).

Crossing the context. GPT-2's position embeddings are absolute: once the sequence is longer than
`context_size`, the book crops to the last `context_size` tokens, so every token of the window moves
to a new position (the oldest kept token becomes position 0) and every cached key and value is
stale. To give exactly the tokens of uncached generation, the cache is then rebuilt from the cropped
window (a prefill of context_size tokens) at every step: past the context the cache saves only
the output head on the other positions. (A sliding cache would need relative positions, e.g. RoPE.)

The cached path is inference only: no dropout and nothing kept for a backward pass; training still
goes through GPTModel.forward. Rows of a batch are independent; eos_id stops the loop at the step
where every row has produced it (see `generate`).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from numpy_impl.attention import attention_forward
from numpy_impl.embedding import embedding_forward
from numpy_impl.feedforward import feedforward_forward
from numpy_impl.gpt import GPTModel
from numpy_impl.layernorm import layernorm_forward
from numpy_impl.linear import linear_forward
from twinlm.shared.naming import QKV_PROJECTIONS, sub_dict
from twinlm.shared.sampling import check_generate_args, next_tokens
from twinlm.shared.validate import require_cache_room, require_token_batch


class KVCache:
    """Keys and values of every layer for the first `length` positions of a sequence.

    keys[l], values[l]: (B, H, max_len, hd) preallocated; positions [0, length) are filled.
    tokens: (B, max_len) the token ids those positions hold, so a caller can check the cache still
    matches its sequence.
    """

    def __init__(self, n_layers: int, batch: int, n_heads: int, head_dim: int, max_len: int, dtype):
        shape = (batch, n_heads, max_len, head_dim)
        self.keys = [np.empty(shape, dtype=dtype) for _ in range(n_layers)]
        self.values = [np.empty(shape, dtype=dtype) for _ in range(n_layers)]
        self.tokens = np.zeros((batch, max_len), dtype=np.int64)
        self.length = 0

    @classmethod
    def for_model(cls, model: GPTModel, batch: int, max_len: int | None = None) -> KVCache:
        cfg = model.cfg
        max_len = cfg["context_length"] if max_len is None else max_len
        head_dim = cfg["emb_dim"] // cfg["n_heads"]
        return cls(cfg["n_layers"], batch, cfg["n_heads"], head_dim, max_len, model.dtype)

    @property
    def max_len(self) -> int:
        return self.tokens.shape[1]

    def reset(self) -> None:
        self.length = 0

    def append(self, layer: int, k: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Write k, v (B, H, T, hd) at positions [length, length + T) of `layer`; return that
        layer's keys and values for positions [0, length + T) (views, no copy)."""
        end = self.length + k.shape[2]
        self.keys[layer][:, :, self.length : end] = k  # O(T) slice write, no reallocation
        self.values[layer][:, :, self.length : end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]  # (B, H, end, hd)


def _attention_cached(x, p, n_heads: int, cache: KVCache, layer: int) -> np.ndarray:
    """Causal multi-head attention of x (B, T, C), the tokens at positions [cache.length,
    cache.length + T), over themselves and every cached position."""
    B, T, C = x.shape
    hd = C // n_heads
    q, k, v = (
        linear_forward(x, p[f"att.{name}.weight"], p.get(f"att.{name}.bias"))[0]
        .reshape(B, T, n_heads, hd)
        .transpose(0, 2, 1, 3)  # (B, H, T, hd)
        for name in QKV_PROJECTIONS
    )
    k_all, v_all = cache.append(layer, k, v)  # (B, H, length + T, hd)
    # The T queries are the last T positions: attention_forward offsets the causal mask for Tq < Tk.
    ctx, _ = attention_forward(q, k_all, v_all, causal=True)  # (B, H, T, hd)
    ctx = ctx.transpose(0, 2, 1, 3).reshape(B, T, C)  # merge heads: (B, T, C)
    return linear_forward(ctx, p["att.out_proj.weight"], p["att.out_proj.bias"])[0]  # (B, T, C)


def forward_cached(
    model: GPTModel, idx: np.ndarray, cache: KVCache, last_only: bool = True
) -> np.ndarray:
    """GPTModel.forward (evaluation mode) for idx (B, T), the tokens that follow the cache's
    `length` positions: positions continue from cache.length, and attention also sees every cached
    key and value. Appends the new keys, values and tokens to the cache. Returns the logits
    (B, 1, V) of the last position (last_only) or (B, T, V) of all T."""
    cfg, P = model.cfg, model.params
    require_token_batch("idx", idx, cfg["vocab_size"])
    B, T = idx.shape
    start = cache.length
    require_cache_room(idx, cache.tokens.shape[0], start, cache.max_len)

    tok, _ = embedding_forward(idx, P["tok_emb.weight"])  # (B, T, C)
    x = tok + P["pos_emb.weight"][start : start + T]  # (B, T, C) positions start .. start+T-1
    for layer in range(cfg["n_layers"]):
        p = sub_dict(P, f"trf_blocks.{layer}.")  # this block's params, keyed like `norm1.scale`
        n1, _ = layernorm_forward(x, p["norm1.scale"], p["norm1.shift"])  # (B, T, C)
        h = x + _attention_cached(n1, p, cfg["n_heads"], cache, layer)  # (B, T, C)
        n2, _ = layernorm_forward(h, p["norm2.scale"], p["norm2.shift"])  # (B, T, C)
        x = h + feedforward_forward(n2, sub_dict(p, "ff."))[0]  # (B, T, C)
    cache.tokens[:, start : start + T] = idx
    cache.length = start + T  # every layer has written positions [start, start + T)

    if last_only:
        x = x[:, -1:]  # (B, 1, C) only the last position's logits are needed to generate
    x, _ = layernorm_forward(x, P["final_norm.scale"], P["final_norm.shift"])
    return linear_forward(x, P["out_head.weight"])[0]  # (B, T or 1, V)


def last_logits(model: GPTModel, idx: np.ndarray, context_size: int) -> np.ndarray:
    """Uncached, the book's step: logits (B, V) of the last position of idx[:, -context_size:]."""
    return model.forward(idx[:, -context_size:])[:, -1, :]  # (B, V)


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

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        cache, L = self.cache, idx.shape[1]
        n = cache.length
        reusable = n < L <= cache.max_len and np.array_equal(cache.tokens[:, :n], idx[:, :n])
        if not reusable:
            cache.reset()  # rebuild: prefill the (cropped) window at positions 0 ..
            n, idx = 0, idx[:, -cache.max_len :]
        logits = forward_cached(self.model, idx[:, n:], cache, last_only=True)  # (B, 1, V)
        return logits[:, -1, :]  # (B, V)


def generate(
    model: GPTModel,
    idx: np.ndarray,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    eos_id: int | None = None,
    rng: np.random.Generator | None = None,
    use_cache: bool = True,
    context_size: int | None = None,
) -> np.ndarray:
    """Extend the token ids idx (B, T) by up to max_new_tokens tokens; returns int64 (B, T + n).

    temperature 0 is greedy, > 0 samples with `rng` (one draw per row and step); top_k keeps the k
    largest logits; the model sees at most the last context_size tokens (default: its
    context_length). use_cache=False runs the book's loop; True gives the same tokens, faster.

    eos_id: the book's rule for one sequence: stop when eos_id is drawn, without appending it. In a
    batch, a row that has drawn eos_id is padded with eos_id from then on, and generation stops at
    the step where every row has drawn it (that step appends nothing). Cut each row at its first
    eos_id to get its text.
    """
    if not isinstance(idx, np.ndarray):
        raise TypeError(f"idx must be a NumPy integer array (B, T), got {type(idx).__name__}")
    cfg = model.cfg
    context_size = check_generate_args(
        idx, max_new_tokens, cfg["vocab_size"], cfg["context_length"], temperature, top_k, eos_id,
        rng, context_size,
    )  # fmt: skip
    idx = np.array(idx, dtype=np.int64)  # a copy: the caller's array is never written
    B = idx.shape[0]
    if use_cache:
        step_logits = CachedLogits(model, B, context_size)
    else:
        step_logits = partial(last_logits, model, context_size=context_size)
    done = np.zeros(B, dtype=bool)  # rows that have drawn eos_id

    for _ in range(max_new_tokens):
        logits = step_logits(idx)  # (B, V) of the last position
        token = next_tokens(logits.astype(np.float64), temperature, top_k, rng)  # (B,)
        if eos_id is not None:
            token[done] = eos_id  # finished rows are padded with eos_id
            done |= token == eos_id
            if done.all():
                break
        idx = np.concatenate([idx, token[:, None]], axis=1)  # (B, L + 1)
    return idx
