"""The char-RNN, the fast path: numpy_impl/charrnn.py's model with the fast recurrent layers."""

from __future__ import annotations

import numpy as np

from numpy_impl.charrnn import State, charrnn_backward_with, charrnn_with
from numpy_impl.fast.gru import gru_backward, gru_forward
from numpy_impl.fast.lstm import lstm_backward, lstm_forward
from numpy_impl.fast.rnn import rnn_backward, rnn_forward


def charrnn_forward(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    cfg: dict,
    state: State | None = None,
    dropout_masks: dict[str, np.ndarray] | None = None,
):
    """numpy_impl.charrnn_forward with the fast layers."""
    layers = (lstm_forward, gru_forward, rnn_forward)
    return charrnn_with(layers, x, params, cfg, state, dropout_masks)


def charrnn_backward(
    dlogits: np.ndarray, dstate: State | None, cache
) -> tuple[dict[str, np.ndarray], State]:
    """Returns (grads, the gradient on the initial state)."""
    return charrnn_backward_with(
        (lstm_backward, gru_backward, rnn_backward), dlogits, dstate, cache
    )
