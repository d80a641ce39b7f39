"""Edge regimes shared by several ops of the parity registry (OpCase.edges): each makes an Edge, or
the `adjust` of one, that changes the inputs a case drew into the regime."""

from __future__ import annotations

import numpy as np

from twinlm.parity.harness import Arrays, Edge


def every_other_row(name: str, make):
    """An Edge's adjust replacing every other row (last axis) of arrays[name] by make(rng, n, width),
    so the ordinary rows left between them keep setting the gradient scale errors are judged by."""

    def adjust(rng: np.random.Generator, a: Arrays) -> Arrays:
        x = np.array(a[name])
        rows = x.reshape(-1, x.shape[-1])
        rows[::2] = make(rng, len(rows[::2]), x.shape[-1])
        return {**a, name: x}

    return adjust


def huge(scale: float):
    """Rows of ±scale plus a standard normal: softmax far past exp's range without a max shift."""
    return lambda rng, n, d: scale * rng.choice([-1.0, 1.0], (n, d)) + rng.standard_normal((n, d))


def saturated(name: str, low: float = 300.0, high: float = 400.0) -> Edge:
    """|arrays[name]| drawn in [low, high], both signs: an activation at its limits."""

    def adjust(rng: np.random.Generator, a: Arrays) -> Arrays:
        x = a[name]
        sign = rng.choice([-1.0, 1.0], x.shape)
        return {**a, name: (sign * rng.uniform(low, high, x.shape)).astype(x.dtype)}

    return Edge(f"|{name}| {low:g}-{high:g}", adjust=adjust)


def saturate_gates(rng: np.random.Generator, a: Arrays) -> Arrays:
    """bias_ih at ±50 on a third of the gates each way (the rest moderate, so gradients still flow):
    σ and tanh at their limits."""
    b = a["bias_ih"]
    big = 50.0 * rng.choice([-1.0, 0.0, 1.0], b.shape) + rng.standard_normal(b.shape)
    return {**a, "bias_ih": big.astype(b.dtype)}
