"""Hypothesis profiles and the worst-error ledger printed at the end of the run."""

from __future__ import annotations

import os
from collections import defaultdict

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

# (op, measure) -> (worst error seen, tolerance)
_LEDGER: dict[tuple[str, str], tuple[float, float]] = defaultdict(lambda: (0.0, 0.0))


@pytest.fixture
def record_error():
    """record_error(op, measure, error, tol): assert error ≤ tol and keep the worst for the summary."""

    def record(op: str, measure: str, error: float, tol: float) -> None:
        worst, _ = _LEDGER[(op, measure)]
        _LEDGER[(op, measure)] = (max(worst, error), tol)
        assert error <= tol, f"{op} {measure}: error {error:.3e} exceeds tolerance {tol:.1e}"

    return record


def pytest_terminal_summary(terminalreporter):
    if not _LEDGER:
        return
    tr = terminalreporter
    tr.section("worst error per op (fraction of tolerance used)")
    tr.write_line(f"{'op':<28}{'measure':<28}{'worst':>11}{'tol':>10}{'used':>8}")
    for (op, measure), (worst, tol) in sorted(_LEDGER.items()):
        used = worst / tol if tol else 0.0
        tr.write_line(f"{op:<28}{measure:<28}{worst:>11.2e}{tol:>10.1e}{used:>8.1%}")
