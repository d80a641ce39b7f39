"""Picking the next token from a row of logits (book chapter 5): greedy, temperature, top-k.

One sampler for both backends. It works on float64 NumPy logits (torch passes
`logits.double().cpu().numpy()`) and draws from a caller-owned `numpy.random.Generator`, so NumPy and
torch given the same logits and the same seed pick the same tokens.

For each row of logits z (V,):
    top-k:        z_j ← -inf  where z_j < z_(k)         z_(k) the k-th largest; ties with it are kept,
                                                         as in the book's `torch.where(z < min_val, …)`
    temperature 0: token = argmax_j z_j                  greedy (top-k cannot change the argmax)
    temperature τ > 0:
        w_j = exp((z_j - max z) / τ)                     (V,)  unnormalised softmax(z/τ); subtracting
                                                               the max first keeps tiny τ from
                                                               overflowing, and -inf gives w_j = 0
        c_j = w_0 + … + w_j                              (V,)  cumulative weights, c_{V-1} = Σ w
        u ~ Uniform[0, 1)                                      one draw per row from `rng`
        token = #{j : c_j ≤ u·c_{V-1}}                         the j with c_{j-1} ≤ u·Σw < c_j, picked
                                                               with probability w_j / Σ w
u·Σw < Σw holds exactly in floating point for u < 1, so the count is at most V-1, and a token with
w_j = 0 (filtered out by top-k) has c_j = c_{j-1} and can never be picked.
"""

from __future__ import annotations

import numbers

import numpy as np

from twinlm.shared.validate import require_int, require_ndim, require_token_batch


def check_sampling_args(temperature, top_k, vocab_size: int, rng) -> None:
    """temperature ≥ 0 (a real number); top_k None or an int in [1, vocab_size]; rng a
    numpy.random.Generator whenever temperature > 0. Raises TypeError/ValueError naming the argument."""
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(
            f"temperature must be a real number, got {type(temperature).__name__} {temperature!r}"
        )
    if not temperature >= 0.0 or not np.isfinite(temperature):
        raise ValueError(f"temperature must be finite and >= 0 (0 is greedy), got {temperature}")
    if top_k is not None:
        require_int("top_k", top_k, 1)
        if top_k > vocab_size:
            raise ValueError(f"top_k must be at most the vocabulary size {vocab_size}, got {top_k}")
    if temperature > 0:
        if rng is None:
            raise ValueError(
                f"rng must be a numpy.random.Generator when temperature > 0 (sampling), "
                f"got None (temperature {temperature})"
            )
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")


def top_k_filter(logits: np.ndarray, top_k: int) -> np.ndarray:
    """logits (B, V) with every entry below its row's k-th largest set to -inf (ties kept)."""
    V = logits.shape[-1]
    kth = np.partition(logits, V - top_k, axis=-1)[:, V - top_k, None]  # (B, 1) k-th largest
    return np.where(logits < kth, -np.inf, logits)  # (B, V)


def next_tokens(
    logits: np.ndarray,
    temperature: float = 0.0,
    top_k: int | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """The next token of each row of float64 logits (B, V): int64 array (B,).

    temperature 0 is greedy (argmax, rng unused); temperature > 0 samples from softmax(logits /
    temperature) with exactly one rng.random() draw per row; top_k keeps the k largest logits."""
    if not isinstance(logits, np.ndarray) or logits.dtype != np.float64:
        raise TypeError(
            f"logits must be a float64 NumPy array (torch: logits.double().cpu().numpy()), got "
            f"{type(logits).__name__} {getattr(logits, 'dtype', '')}".rstrip()
        )
    require_ndim("logits", logits, 2, 2)
    B, V = logits.shape
    check_sampling_args(temperature, top_k, V, rng)
    row_max = logits.max(axis=-1) if V else np.zeros(B)  # (B,)
    if V == 0 or np.isnan(logits).any() or not np.isfinite(row_max).all():
        raise ValueError(
            "logits must be free of NaN and +inf and hold at least one finite value per row, "
            f"got shape {logits.shape} with {int(np.isnan(logits).sum())} NaN and row maxima "
            f"{row_max[~np.isfinite(row_max)][:3].tolist()}"
        )

    if top_k is not None:
        logits = top_k_filter(logits, top_k)  # (B, V)
    if temperature == 0:
        return np.argmax(logits, axis=-1).astype(np.int64)  # (B,) greedy
    weights = np.exp((logits - row_max[:, None]) / temperature)  # (B, V) softmax numerators ≤ 1
    cdf = np.cumsum(weights, axis=-1)  # (B, V) unnormalised CDF
    u = rng.random(B) * cdf[:, -1]  # (B,) one uniform draw per row, scaled to the row's total
    return (cdf <= u[:, None]).sum(axis=-1).astype(np.int64)  # (B,) first j with c_j > u


def check_generate_args(
    idx,
    max_new_tokens,
    *,
    vocab_size: int,
    context_length: int,
    temperature,
    top_k,
    eos_id,
    rng,
    context_size,
) -> int:
    """Validate the arguments both backends' `generate` share; returns the context size to use
    (context_size, or the model's context_length when it is None). idx may be NumPy or torch."""
    require_token_batch("idx", idx, vocab_size)  # any length: longer prompts are cropped
    require_int("max_new_tokens", max_new_tokens, 0)
    check_sampling_args(temperature, top_k, vocab_size, rng)
    if eos_id is not None:
        require_int("eos_id", eos_id, 0)
        if eos_id >= vocab_size:
            raise ValueError(f"eos_id must lie in [0, {vocab_size}), got {eos_id}")
    if context_size is None:
        return context_length
    require_int("context_size", context_size, 1)
    if context_size > context_length:
        raise ValueError(
            f"context_size must be at most the model's context_length {context_length}, "
            f"got {context_size}"
        )
    return int(context_size)
