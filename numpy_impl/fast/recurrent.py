"""What the fast layers over time (numpy_impl/fast/rnn.py, gru.py, lstm.py) share: each layer's
pre-activations take the input part for all T steps in one matmul, G_x = X W_ihᵀ + b_ih (+ …)
(T, B, G), so its backward is three products over all T·B rows at once (`input_projection_grads`):
dX = dG W_ih, dW_ih = dGᵀ X, db_ih = Σ dG — not T small ones per step, as the reference's cell
loop takes them.
The activations' derivatives are taken from the pre-activations, as the reference takes them
(numpy_impl/recurrent.py: σ'(a) = σ(a)σ(-a), tanh'(a) = sech²(a), both from e^-|a|), here into
preallocated arrays: the caches hold the pre-activations in place of the gates.
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


def sigmoid_(z: np.ndarray, out: np.ndarray) -> np.ndarray:
    """numpy_impl.recurrent.sigmoid(z) = 1 / (1 + e^-z) into `out` (which may be z)."""
    np.negative(z, out=out)
    with np.errstate(over="ignore", under="ignore"):  # e^-z = inf: σ = 0 exactly
        np.exp(out, out=out)
    out += 1
    return np.reciprocal(out, out=out)


def sigmoid_pair(a: np.ndarray, value: np.ndarray, complement: np.ndarray) -> np.ndarray:
    """σ(a) into value and σ(-a) = 1 - σ(a) into complement, each 1 / (1 + e^∓a) from its own
    exp, so both are a few ulp relative (no cancellation as σ → 1); their product is σ'(a).
    Returns σ'(a) = σ(a)σ(-a) as a new array."""
    sigmoid_(a, out=value)
    with np.errstate(over="ignore", under="ignore"):  # e^a = inf: σ(-a) = 0 exactly
        np.exp(a, out=complement)
    complement += 1
    np.reciprocal(complement, out=complement)
    return value * complement


def tanh_derivative_(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    """numpy_impl.recurrent.tanh_derivative(a) = sech²(a) = 4e / (1 + e)², e = e^-2|a|, into out
    (which may be a)."""
    e = np.abs(a, out=out)
    np.negative(e, out=e)
    with np.errstate(under="ignore"):
        np.exp(e, out=e)
        e *= e  # e^-2|a|
    d = e + 1
    d *= d
    e /= d
    e *= 4
    return e
