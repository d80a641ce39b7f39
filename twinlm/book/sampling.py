"""The book's two generation loops, with either backend's model, on float32 logits as the book's
model returns them:

    generate_text_simple (ch. 4)   idx_next = argmax(softmax(logits of the last position))
    generate (ch. 5)               top-k: logits < the k-th largest → -inf
                                   temperature τ > 0: probs = softmax(logits / τ),
                                                      idx_next = torch.multinomial(probs, 1)
                                   τ = 0: idx_next = argmax(logits)

torch.multinomial(probs, 1) on the CPU draws q ~ Exp(1) of probs' shape and returns
argmax(probs / q): if q_j ~ Exp(1), then q_j / p_j ~ Exp(p_j), and the smallest of independent
exponentials is j with probability p_j / Σ p. `multinomial` does the same with q from the book's
stream (BookStream.exponential), so the token and the generator's state after it are torch's.

The softmax is the backend's own (numpy_impl.softmax_forward, torch_impl.softmax), in float32 as
the book's; generate_text_simple takes the argmax of the probabilities, not of the logits, as the
book does (two logits can round to the same float32 probability; argmax then takes the first, in
NumPy as in torch). The model runs in evaluation mode (no dropout, no draws), as in the book.
"""

from __future__ import annotations

import contextlib

import numpy as np

import numpy_impl
from twinlm.book.stream import BookStream
from twinlm.generation import NumpyLM, language_model


def softmax(logits: np.ndarray, lm) -> np.ndarray:
    """softmax over the last axis of float32 logits, in the backend of `lm`."""
    if isinstance(lm, NumpyLM):
        return numpy_impl.softmax_forward(logits)[0]
    import torch

    import torch_impl

    return torch_impl.softmax(torch.from_numpy(logits)).numpy()


def cross_entropy(logits: np.ndarray, targets: np.ndarray, lm) -> float:
    """Mean cross entropy of float32 logits (..., V) against targets (...), in the backend of
    `lm` (the book's F.cross_entropy over the flattened batch)."""
    if isinstance(lm, NumpyLM):
        return float(numpy_impl.cross_entropy_forward(logits, targets)[0])
    import torch

    import torch_impl

    return float(torch_impl.cross_entropy(torch.from_numpy(logits), torch.from_numpy(targets)))


def multinomial(probs: np.ndarray, stream: BookStream) -> np.ndarray:
    """torch.multinomial(probs, num_samples=1) for probs (B, V) or (V,), with the stream's draws:
    argmax(probs / q), q ~ Exp(1). Returns int64 (B,) (or a 0-d array for a 1-D probs)."""
    q = stream.exponential(probs.shape, probs.dtype)  # what multinomial draws
    return np.argmax(probs / q, axis=-1)


def top_k_filter(logits: np.ndarray, top_k: int) -> np.ndarray:
    """torch.where(logits < topk(logits, k).values[:, -1], -inf, logits), rows of (B, V)."""
    V = logits.shape[-1]
    min_val = np.partition(logits, V - top_k, axis=-1)[..., V - top_k, None]  # (B, 1) k-th largest
    return np.where(logits < min_val, np.float32(-np.inf), logits)


class _EvalMode:
    """The model in evaluation mode for a `with` block (torch), restored after."""

    def __init__(self, model):
        self.model, self.was_training = model, getattr(model, "training", False)

    def __enter__(self):
        if self.was_training:
            self.model.eval()

    def __exit__(self, *exc):
        if self.was_training:
            self.model.train()


def model_logits(model, idx: np.ndarray, masks: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """float32 logits (B, T, V) of either backend's GPTModel for ids idx (B, T): with `masks`,
    the book's training-mode forward with those dropout masks; without, evaluation mode."""
    if isinstance(language_model(model), NumpyLM):
        return model.forward(np.asarray(idx), dropout_masks=masks)
    import torch

    x = torch.from_numpy(np.ascontiguousarray(idx))
    given = None if masks is None else {k: torch.from_numpy(m) for k, m in masks.items()}
    with torch.no_grad(), _EvalMode(model) if masks is None else contextlib.nullcontext():
        return model(x, dropout_masks=given).numpy()


def _last_logits(lm, idx: np.ndarray, context_size: int) -> np.ndarray:
    """float32 logits (B, V) of the last position of idx[:, -context_size:] (the float64 the
    adapter returns holds the float32 values exactly)."""
    return lm.last_logits(idx[:, -context_size:]).astype(np.float32)


def generate_text_simple(
    model, idx: np.ndarray, max_new_tokens: int, context_size: int
) -> np.ndarray:
    """The book's chapter-4 greedy loop: idx (B, T) int64 in, (B, T + max_new_tokens) out."""
    lm = language_model(model)
    idx = np.array(idx, dtype=np.int64)
    with _EvalMode(model):
        for _ in range(max_new_tokens):
            probas = softmax(_last_logits(lm, idx, context_size), lm)  # (B, V)
            idx_next = np.argmax(probas, axis=-1)  # (B,)
            idx = np.concatenate([idx, idx_next[:, None]], axis=1)
    return idx


def generate(
    model,
    idx: np.ndarray,
    max_new_tokens: int,
    context_size: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    stream: BookStream | None = None,
) -> np.ndarray:
    """The book's chapter-5 `generate` (module docstring); sampling draws from `stream`."""
    if temperature > 0.0 and stream is None:
        raise ValueError("stream must be the book's BookStream when temperature > 0 (sampling)")
    lm = language_model(model)
    idx = np.array(idx, dtype=np.int64)
    with _EvalMode(model):
        for _ in range(max_new_tokens):
            logits = _last_logits(lm, idx, context_size)  # (B, V) float32
            if top_k is not None:
                logits = top_k_filter(logits, top_k)
            if temperature > 0.0:
                probs = softmax(logits / np.float32(temperature), lm)  # (B, V)
                idx_next = multinomial(probs, stream)  # (B,)
            else:
                idx_next = np.argmax(logits, axis=-1)  # (B,)
            idx = np.concatenate([idx, idx_next[:, None]], axis=1)
    return idx
