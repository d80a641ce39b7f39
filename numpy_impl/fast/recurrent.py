"""What the fast layers over time (numpy_impl/fast/rnn.py, gru.py, lstm.py) share: each layer's
pre-activations take the input part for all T steps in one matmul, G_x = X W_ihᵀ + b_ih (+ …)
(T, B, G), so its backward is three products over all T·B rows at once (`input_projection_grads`):
dX = dG W_ih, dW_ih = dGᵀ X, db_ih = Σ dG — not T small ones per step, as the reference's cell
loop takes them.
"""

from __future__ import annotations

import numpy as np


def input_projection_grads(dG: np.ndarray, layer_in: np.ndarray, weight_ih: np.ndarray):
    """G = X W_ihᵀ + b_ih (+ …) for all steps at once, dG (T, B, G), X = layer_in (T, B, I): the
    rows are the T·B (step, sequence) pairs. Returns (dX (T, B, I), dW_ih (G, I), db_ih (G,))."""
    T, B, G = dG.shape
    rows = dG.reshape(T * B, G)
    return (
        (rows @ weight_ih).reshape(T, B, -1),  # dX = dG W_ih
        rows.T @ layer_in.reshape(T * B, -1),  # dW_ih = dGᵀ X
        rows.sum(axis=0),  # db_ih = Σ dG
    )
