"""Inverted dropout with a caller-drawn 0/1 mask, y = x ⊙ m / (1 - p), and the one rule by which
every nn.Module of this package gets its masks.

`maybe_dropout(x, mask, p)`: dropout where a mask is given, the identity where mask is None.

The modules (MultiHeadAttention, TransformerBlock, GPTModel, GPTClassifier, LSTM, CharRNN) resolve
their masks one way, `resolve_dropout_masks`:
    masks given           → exactly those, in either mode (a missing name: no dropout there)
    none, training, p > 0 → every mask drawn with torch's generator (`draw_dropout_masks`)
    none otherwise        → {} (no dropout)
and then call their functional op with the resolved dict. A drawn mask is what nn.Dropout draws
on the CPU, `torch.empty_like(x).bernoulli_(1 - p)`, drawn in the order the book's modules run
(twinlm.shared.naming's *_dropout_mask_shapes), so the random stream is the book's.
"""

from __future__ import annotations

from collections.abc import Collection

import torch

from twinlm.shared.validate import (
    require_broadcastable,
    require_dropout_masks,
    require_float,
    require_probability,
)


def dropout(x: torch.Tensor, mask: torch.Tensor, p: float) -> torch.Tensor:
    require_float("x", x)
    require_probability("p", p)
    require_broadcastable("mask", mask, x.shape)
    keep = mask.to(x.dtype)  # (...) 0/1 in x's dtype: a float64 mask would upcast float32 x
    return x * keep * (1.0 / (1.0 - float(p)))  # (...)


def maybe_dropout(x: torch.Tensor, mask: torch.Tensor | None, p: float) -> torch.Tensor:
    """dropout(x, mask, p) when a mask is given; x itself when not."""
    return x if mask is None else dropout(x, mask, p)


def draw_dropout_masks(
    shapes: dict[str, tuple[int, ...]],
    p: float,
    dtype: torch.dtype,
    device: torch.device | str | None = None,
    time_major: Collection[str] = (),
) -> dict[str, torch.Tensor]:
    """0/1 keep-masks by name (1 with probability 1 - p), drawn with torch's global generator in
    the order of `shapes`, each as nn.Dropout draws its noise on the CPU. A name in `time_major`
    (shape (B, T, …)) is drawn as (T, B, …) and handed back transposed (a view): torch.nn.LSTM
    applies its dropout to its time-major output, and its batch-first output is a transposed view
    of that, which bernoulli_ fills in memory order; so these are the masks of
    nn.LSTM(batch_first=True, dropout=p) and of an nn.Dropout right after it."""
    masks = {}
    for name, shape in shapes.items():
        if name in time_major:
            drawn = torch.empty((shape[1], shape[0], *shape[2:]), dtype=dtype, device=device)
            masks[name] = drawn.bernoulli_(1 - p).transpose(0, 1)  # (B, T, …) view
        else:
            masks[name] = torch.empty(shape, dtype=dtype, device=device).bernoulli_(1 - p)
    return masks


def resolve_dropout_masks(
    given: dict[str, torch.Tensor] | None,
    shapes: dict[str, tuple[int, ...]],
    p: float,
    training: bool,
    like: torch.Tensor,
    time_major: Collection[str] = (),
) -> dict[str, torch.Tensor]:
    """One forward's masks by the rule in the module docstring. `given` is checked against
    `shapes` (names and shapes); drawn masks take `like`'s dtype and device."""
    if given is not None:
        require_dropout_masks("dropout_masks", given, shapes)
        return dict(given)
    if training and p > 0:
        return draw_dropout_masks(shapes, p, like.dtype, like.device, time_major)
    return {}
