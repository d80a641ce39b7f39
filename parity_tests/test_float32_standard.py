"""The float32 standard (twinlm/parity/harness.py) can fail.

Deliberately degraded float32 implementations are caught: a GELU with a 1e-4 relative error (by the
per-example bound and by R), and one with a 1e-6 error, inside the per-example bound (by R alone).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import numpy_impl
from twinlm.parity.harness import (
    FLOAT32_BOUND,
    FLOAT32_RATIO,
    U32,
    Float32Run,
    Float32Runs,
    compare_float32,
    random_douts,
    run_numpy,
)
from twinlm.parity.opcases import CASES_BY_NAME

RUN = 12  # examples per run: the ci profile's length, the shortest the sweep makes


def _run(case, seed: int = 0, n: int = RUN) -> Float32Runs:
    """compare_float32 over n examples at the case's default sizes."""
    runs = Float32Runs()
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        inputs = case.sample(rng, np.float64, case.dims)
        compare_float32(case, inputs, random_douts(rng, run_numpy(case, inputs)[0]), runs)
    return runs


# ---- the rule itself ---------------------------------------------------------------------------


def test_equal_noise_gives_ratio_near_one():
    rng = np.random.default_rng(0)
    run = Float32Run()
    for _ in range(200):
        exact = rng.standard_normal(3)
        noisy = [exact + 1e-7 * rng.standard_normal(3) for _ in range(2)]
        run.add([noisy[0], exact], [noisy[1], exact], [exact, exact])
    assert len(run.shares) == 400  # the tensors exact in both count as even: share ½
    assert 0.8 < run.ratio < 1.25


def test_one_lucky_reference_rounding_does_not_decide_a_run():
    """The reference exact on a 1-element result, the backend 3 u off: that tensor counts once."""
    run = Float32Run()
    run.add([np.array([1.0 + 3 * U32])], [np.array([1.0])], [np.array([1.0])])
    assert run.ratio == pytest.approx(3.0)  # alone, it would fail
    rng = np.random.default_rng(1)
    for _ in range(30):
        e = rng.standard_normal(50)
        run.add([e + U32 * rng.standard_normal(50)], [e + U32 * rng.standard_normal(50)], [e])
    assert run.ratio < FLOAT32_RATIO


def test_a_result_small_through_cancellation_is_judged_against_the_reference():
    """log(1 + e⁻²⁰) ≈ 2e-9 from float32 logits [10, -10]: 1 + e⁻²⁰ rounds to 1, the loss to 0, in
    NumPy and torch alike: 100 % off, 2²⁴ u, which the reference's own error allows."""
    logits, targets = np.array([[10.0, -10.0]], dtype=np.float32), np.array([0])
    exact = F.cross_entropy(torch.tensor(logits).double(), torch.tensor(targets)).numpy()
    ref32 = F.cross_entropy(torch.tensor(logits), torch.tensor(targets)).numpy()
    loss, _ = numpy_impl.cross_entropy_forward(logits, targets)
    run = Float32Run()
    run.add([loss], [ref32], [exact])
    assert run.worst > FLOAT32_BOUND and run.worst == run.worst_ref
    assert run.tightest[0] <= run.tightest[1]
    run.add([np.float32(1e-6)], [ref32], [exact])  # but not 500× the reference's error
    assert run.tightest[0] > run.tightest[1]


def test_non_finite_fails_and_subnormal_results_are_judged_by_their_spacing():
    run = Float32Run()
    run.add([np.array([np.nan])], [np.array([1.0])], [np.array([1.0])])
    assert run.worst == np.inf and run.ratio == np.inf
    tiny = np.array([3e-42], dtype=np.float32)  # subnormal: spacing 2^-149, 1000× u |x| here
    run = Float32Run()
    run.add([tiny * np.float32(1.001)], [tiny], [tiny.astype(np.float64)])
    assert run.worst < FLOAT32_BOUND


# ---- degraded implementations are caught -----------------------------------------------------------


def _with_relative_error(case, rel: float):
    def np_forward(a):
        outs, cache = case.np_forward(a)
        return tuple(o * o.dtype.type(1 + rel) for o in outs), cache

    return dataclasses.replace(case, np_forward=np_forward)


@pytest.mark.parametrize("approximate", ["tanh", "none"])
def test_gelu_with_a_1e_4_relative_error_fails_both_parts(approximate):
    case = CASES_BY_NAME[f"gelu[{approximate}]"]
    assert _run(case).ok()
    runs = _run(_with_relative_error(case, 1e-4))
    assert runs["numpy", "fwd"].worst > FLOAT32_BOUND  # ~1700 u
    assert runs["numpy", "fwd"].ratio > 100 * FLOAT32_RATIO
    assert not runs.ok()


def test_gelu_with_a_1e_6_relative_error_fails_the_ratio_alone():
    """17 u: inside the per-example bound, so only the comparison with torch over the run sees it."""
    runs = _run(_with_relative_error(CASES_BY_NAME["gelu[tanh]"], 1e-6))
    assert runs["numpy", "fwd"].worst < FLOAT32_BOUND
    assert runs["numpy", "fwd"].ratio > 5 * FLOAT32_RATIO
