"""Every edge regime the registry declares (OpCase.edges: large logits, constant and zero rows,
saturated activations and gates, one id everywhere, all but one target ignored, T = 1, one kv head,
RoPE from position 0), through the sweep's float64 rule: NumPy, torch_impl and the torch built-in
agree on the outputs and every gradient, all finite. `twinlm check --impl` holds a learner's ops to
the same regimes (twinlm/parity/learner.py); the per-op files test more of each (exactness, float32,
no warnings)."""

from __future__ import annotations

import numpy as np
import pytest

from twinlm.parity.harness import TOL_FLOAT64, compare_float64, random_douts, run_numpy
from twinlm.parity.opcases import CASES

EDGES = [(case, edge) for case in CASES for edge in case.edges]


def test_every_op_family_declares_an_edge_regime():
    """Ops whose only hard regime is their ordinary one (linear, dropout, the feed-forwards) excepted."""
    plain = {"linear", "dropout", "feedforward", "swiglu"}
    missing = {c.op for c in CASES if not c.edges} - plain
    assert not missing, f"ops without an edge regime: {sorted(missing)}"


@pytest.mark.parametrize(("case", "edge"), EDGES, ids=[f"{c.name}-{e.label}" for c, e in EDGES])
def test_edge_regime_three_way(case, edge, record_error):
    for seed in range(2):
        rng = np.random.default_rng(seed)
        inputs = edge.sample(case, rng)
        douts = random_douts(rng, run_numpy(case, inputs)[0])
        outs, grads = run_numpy(case, inputs, douts)
        assert all(np.all(np.isfinite(a)) for a in (*outs, *grads.values()))
        errors = compare_float64(case, inputs, douts)
        record_error(case.name, f"{edge.label} f64 forward", errors.forward, TOL_FLOAT64)
        record_error(case.name, f"{edge.label} f64 grad", errors.grad, TOL_FLOAT64)
