"""Hypothesis profiles and the worst-error ledger printed at the end of the run."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=15, deadline=None)
settings.register_profile(
    "ci",
    max_examples=12,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# (op, measure) -> (worst error seen, largest fraction of its tolerance used, that tolerance)
_LEDGER: dict[tuple[str, str], tuple[float, float, float]] = {}


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one thread for a whole test module. Tiny models run fastest so (on a busy machine
    torch's thread pool makes each tiny op wait for the other threads: measured 100x slower under
    load), and bitwise reproducibility of torch's reductions needs a fixed thread count.
    A module opts in with `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def record_error():
    """record_error(op, measure, error, tol): assert error ≤ tol and keep the worst for the summary.

    Some tolerances vary per call, so the ledger keeps the largest error/tolerance ratio separately
    from the largest error."""

    def record(op: str, measure: str, error: float, tol: float) -> None:
        worst, used, used_tol = _LEDGER.get((op, measure), (0.0, 0.0, tol))
        ratio = error / tol if tol > 0 else (0.0 if error == 0 else float("inf"))
        if ratio >= used:
            used, used_tol = ratio, tol
        _LEDGER[(op, measure)] = (max(worst, error), used, used_tol)
        assert error <= tol, f"{op} {measure}: error {error:.3e} exceeds tolerance {tol:.1e}"

    return record


@pytest.fixture
def record_float32(record_error):
    """record_float32(op, runs, ratio=True): the float32 standard (twinlm/parity/harness.py) on a
    Float32Runs, through record_error: each run's worst example in units of u ≤ 1024 and, unless
    ratio is False (inside a hypothesis example, the run still being collected), its R ≤ 2."""

    def record(op: str, runs, ratio: bool = True) -> None:
        for measure, value, tol in runs.verdicts(ratio):
            record_error(op, measure, value, tol)

    return record


def pytest_terminal_summary(terminalreporter):
    if not _LEDGER:
        return
    tr = terminalreporter
    tr.section("worst error per op (and the largest fraction of its tolerance used)")
    tr.write_line(
        "float32: 'worst (u)' is the worst example's max|error| in units of u · max|float64 result|"
        " (u = 2^-24); 'R' is the RMS error ratio to the float32 reference over the run"
    )
    tr.write_line(f"{'op':<32}{'measure':<34}{'worst':>10}{'used':>8}{'of tol':>10}")
    for (op, measure), (worst, used, tol) in sorted(_LEDGER.items()):
        tr.write_line(f"{op:<32}{measure:<34}{worst:>10.2e}{used:>8.1%}{tol:>10.1e}")
