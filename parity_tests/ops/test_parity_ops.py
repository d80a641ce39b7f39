"""Every registered op (twinlm.parity.opcases.CASES), swept with hypothesis:

1. float64 three-way agreement (NumPy, torch_impl, torch built-in), outputs and every gradient;
2. float32: each backend against float64, as accurate as torch's own float32 over the run (the
   standard in twinlm/parity/harness.py: R ≤ 2, and every example within 1024 u);
3. the full finite-difference Jacobian and the adjoint identity for the NumPy backward.
Upstream gradients are standard normal; the first gradient input is drawn by hypothesis
(bounded, finite, no subnormals, no fill), the rest from a seeded generator.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

from twinlm.parity.harness import (
    TOL_FD,
    TOL_FLOAT64,
    Float32Runs,
    adjoint_error,
    compare_float32,
    compare_float64,
    finite_difference_jacobian,
    random_douts,
    run_numpy,
)
from twinlm.parity.opcases import CASES
from twinlm.parity.strategies import case_inputs

ids = [c.name for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_float64_three_way(case, record_error):
    @given(case_inputs(case))
    def check(drawn):
        inputs, rng = drawn
        outs, _ = run_numpy(case, inputs)
        errors = compare_float64(case, inputs, random_douts(rng, outs))
        record_error(case.name, "float64 forward", errors.forward, TOL_FLOAT64)
        record_error(case.name, "float64 grad", errors.grad, TOL_FLOAT64)

    check()


@pytest.mark.parametrize("case", CASES, ids=ids)
def test_float32_no_worse_than_torch(case, record_float32):
    """Every example within the fixed bound (hypothesis shrinks a failure), then R over the run."""
    runs = Float32Runs()

    @given(case_inputs(case))
    def check(drawn):
        inputs, rng = drawn
        outs, _ = run_numpy(case, inputs)
        record_float32(
            case.name, compare_float32(case, inputs, random_douts(rng, outs), runs), False
        )

    check()
    record_float32(case.name, runs)


@pytest.mark.parametrize("case", CASES, ids=ids)
@pytest.mark.parametrize("seed", [0, 1])
def test_finite_difference_jacobian(case, seed, record_error):
    rng = np.random.default_rng(seed)
    inputs = case.sample(rng, np.float64, case.fd_dims)
    record_error(case.name, "fd jacobian", finite_difference_jacobian(case, inputs), TOL_FD)
    record_error(case.name, "fd adjoint", adjoint_error(case, inputs, rng), TOL_FD)
