"""Rotary position embedding (RoPE), in the "rotate half" convention of Hugging Face's Llama/Qwen3.

A head vector x (d entries, d even) is split into halves x₁ = x[:d/2], x₂ = x[d/2:], and pair
(x₁ᵢ, x₂ᵢ) is rotated by the angle p·θᵢ, p the token's absolute position:
    θᵢ = base^(-2i/d)                  i = 0 .. d/2-1   (base = rope_base, 1e6 for Qwen3)
    c = cos(p θᵢ), s = sin(p θᵢ)       (T, d/2)  one row per position: rope_angles
    y₁ = x₁ c - x₂ s                   (..., T, d/2)
    y₂ = x₂ c + x₁ s                   (..., T, d/2)
Hugging Face writes the same as y = x ⊙ cos + rotate_half(x) ⊙ sin with rotate_half(x) = [-x₂, x₁]
and cos, sin of width d (each angle twice). The original paper and GPT-J pair (2i, 2i+1) instead:
the same rotations of different pairs, so weights trained one way do not work the other way.

Backward. Each pair goes through a rotation matrix R(pθᵢ); the gradient goes back through Rᵀ, the
rotation by -pθᵢ, i.e. the same op with s negated:
    dx₁ = dy₁ c + dy₂ s,   dx₂ = dy₂ c - dy₁ s
Rotations keep lengths (|y| = |x|), so RoPE neither grows nor shrinks anything it touches.

Why it encodes position: for a query at position p and a key at position q,
⟨R(pθ) q, R(qθ) k⟩ = ⟨q, R((q-p)θ) k⟩, so attention scores depend on the offset q - p only. The
angles still use absolute positions: a KV cache must rotate a new token at its true position
(rope_angles(positions=start .. start+T-1)), and keeps the cached keys already rotated.

Precision: rope_angles computes θ, p·θ, cos and sin in the dtype asked for. Hugging Face always
uses float32 (`inv_freq` and `position_ids.float()`), so a float32 model here matches it step for
step, and a float64 model gets float64 angles (at p = 30000, float32 angles are already off by
up to ~2e-3 radians, which no float64 comparison could tolerate).
"""

from __future__ import annotations

import numpy as np

from twinlm.shared.validate import require_rope_inputs


def rope_angles(positions: np.ndarray, head_dim: int, base: float, dtype=np.float64):
    """(cos, sin), each (T, head_dim / 2), of the angles positions[t] · base^(-2i/head_dim),
    computed in `dtype` the way Hugging Face computes its float32 ones."""
    dtype = np.dtype(dtype)
    exponents = np.arange(0, head_dim, 2, dtype=dtype) / dtype.type(head_dim)  # (d/2,) 2i/d
    # base^(2i/d) rounded once to dtype: torch's float32 pow is all but correctly rounded, NumPy's
    # is not (for Qwen3-0.6B's 64 frequencies this agrees with transformers' on 63, powf on 50).
    powers = (float(base) ** exponents.astype(np.float64)).astype(dtype)  # (d/2,)
    inv_freq = 1.0 / powers  # (d/2,) θᵢ, divided in dtype as transformers does
    angles = np.asarray(positions).astype(dtype)[:, None] * inv_freq  # (T, d/2) p θᵢ
    return np.cos(angles), np.sin(angles)


def rope_forward(x: np.ndarray, cos: np.ndarray, sin: np.ndarray):
    """Rotate each pair (x[..., i], x[..., i + d/2]) of x (..., T, d) by the angle whose cos and sin
    are cos[t, i], sin[t, i] (T, d/2). Returns (y, cache)."""
    require_rope_inputs(x, cos, sin)
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]  # (..., T, d/2) each
    y = np.empty(x.shape, dtype=x.dtype)  # contiguous, even when x is a transposed view
    np.multiply(x1, cos, out=y[..., :h])
    y[..., :h] -= x2 * sin  # y₁ = x₁ c - x₂ s
    np.multiply(x2, cos, out=y[..., h:])
    y[..., h:] += x1 * sin  # y₂ = x₂ c + x₁ s
    return y, (cos, sin)


def rope_backward(dy: np.ndarray, cache) -> np.ndarray:
    """Returns dx: dy rotated back (the forward with the angles negated)."""
    cos, sin = cache
    return rope_forward(dy, cos, -sin)[0]
