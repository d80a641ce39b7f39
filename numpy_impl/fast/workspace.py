"""The training step's memory, kept from one step to the next (the fast GPT step, gpt.py).

A step of GPT-2 124M writes about 2 GB of activations, gradients and scratch. Allocated afresh each
step, glibc hands the large blocks back to the kernel when they are freed and the kernel zeroes new
pages for them on the next step (tens of thousands of page faults a step). A Workspace keeps every
such array: `ws.array(key, shape, dtype)` returns the same array for the same key, step after step,
and a new one only when the shape or dtype asked for changes (a new batch or sequence length), so a
run at one shape allocates once. No process-wide allocator setting is involved.

Lifetime: an array handed out is overwritten by the next step that asks for its key. What the fast
step returns from its workspace (the gradients) is therefore valid until the model's next
loss_and_grads call; a caller that keeps gradients across steps copies them.
"""

from __future__ import annotations

import numpy as np


class Workspace:
    """Named arrays reused across calls (module docstring)."""

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}
        self._layout = None

    def reset_unless(self, layout) -> None:
        """Let every array go when `layout` (what decides the arrays' shapes: the batch and
        sequence length, the dtype, …) differs from the last call's, so that arrays of an earlier
        shape are not kept beside the new ones."""
        if layout != self._layout:
            self.clear()
            self._layout = layout

    def array(self, key: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """The array for `key`, of `shape` and `dtype`; its contents are whatever the last user left."""
        shape, dtype = tuple(shape), np.dtype(dtype)
        a = self._arrays.get(key)
        if a is None or a.shape != shape or a.dtype != dtype:
            self._arrays.pop(key, None)  # freed before its replacement is made: no double memory
            a = self._arrays[key] = np.empty(shape, dtype)
        return a

    def nbytes(self) -> int:
        """The bytes held."""
        return sum(a.nbytes for a in self._arrays.values())

    def clear(self) -> None:
        """Let every array go."""
        self._arrays.clear()
