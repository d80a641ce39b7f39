"""The feed-forward network, the fast path: numpy_impl/feedforward.py's, with the GELU that writes
y over the hidden layer h and dx over dg (numpy_impl/fast/gelu.py): both are the FFN's own, so a
(..., 4·D) buffer is saved each way.
"""

from __future__ import annotations

import numpy as np

from numpy_impl.fast.gelu import gelu_backward_inplace, gelu_inplace
from numpy_impl.feedforward import feedforward_backward_with, feedforward_with


def feedforward_forward(x: np.ndarray, params: dict[str, np.ndarray]):
    """numpy_impl.feedforward_forward with the in-place GELU."""
    return feedforward_with(gelu_inplace, x, params)


def feedforward_backward(dy: np.ndarray, cache):
    """Returns (dx, dparams)."""
    return feedforward_backward_with(gelu_backward_inplace, dy, cache)
