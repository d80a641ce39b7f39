"""The KV cache of generation, which both backends' `forward_cached` write (numpy_impl/generate.py,
torch_impl/generate.py); twinlm/generation.py says when it is reused and when rebuilt.

Backend-neutral: the buffers are whatever `empty(shape, like)` returns (a NumPy array, or a torch
tensor on the model's device); only the token ids, which the caller compares, are NumPy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class KVCache:
    """Keys and values of every layer for the first `length` positions of a batch of sequences.

    keys[l], values[l]: (B, H, max_len, hd), allocated at the layer's first append with
    `empty(shape, like)` (a buffer of `like`'s kind, dtype and device), then written in place.
    tokens: (B, max_len) the ids those positions hold, so a caller can check the cache still
    matches its sequence. A backend's forward_cached reads `length` as the first new position and
    calls `append` once per layer; the caller then calls `advance` with the ids it ran.
    """

    def __init__(self, n_layers: int, batch: int, max_len: int, empty: Callable):
        self.keys: list = [None] * n_layers
        self.values: list = [None] * n_layers
        self.tokens = np.zeros((batch, max_len), dtype=np.int64)
        self.length = 0
        self._empty = empty

    @property
    def max_len(self) -> int:
        return self.tokens.shape[1]

    def append(self, layer: int, k, v):
        """Write k, v (B, H, T, hd) at positions [length, length + T) of `layer`; return that
        layer's keys and values for positions [0, length + T) (views, no copy)."""
        if self.keys[layer] is None:
            shape = (*k.shape[:2], self.max_len, k.shape[3])
            self.keys[layer], self.values[layer] = self._empty(shape, k), self._empty(shape, v)
        end = self.length + k.shape[2]
        self.keys[layer][:, :, self.length : end] = k  # O(T) slice write, no reallocation
        self.values[layer][:, :, self.length : end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def advance(self, idx: np.ndarray) -> None:
        """Record that the ids idx (B, T) now fill positions [length, length + T)."""
        end = self.length + idx.shape[1]
        self.tokens[:, self.length : end] = idx
        self.length = end
