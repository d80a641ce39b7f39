"""`make demo` end to end, shortened: both backends train in lockstep and generate the same text."""

from __future__ import annotations

from twinlm.demo import run_demo


def test_demo_runs_and_backends_agree(capsys):
    assert run_demo(steps=3, dtype="float64", corpus_bytes=40_000) == 0
    out = capsys.readouterr().out
    assert "identical text: yes" in out
    assert "checks passed" in out and "FAIL" not in out
    assert "demo passed" in out
