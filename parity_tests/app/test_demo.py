"""`make demo` end to end, shortened: both backends train in lockstep and generate the same text;
the ops parity table is said in one line, the picture is written, the verdict printed, and a
disagreement (losses, or one failing op, whose rows are then shown) exits non-zero."""

from __future__ import annotations

import numpy as np

from twinlm import demo
from twinlm.demo import Trace, ops_summary, run_demo, verdict
from twinlm.parity.check import check_ops
from twinlm.parity.opcases import CASES
from twinlm.report.plots import plot_lockstep

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_demo_runs_and_backends_agree(tmp_path, capsys):
    assert run_demo(steps=3, dtype="float64", corpus_bytes=40_000, out_dir=tmp_path) == 0
    out = capsys.readouterr().out
    assert "identical text: yes" in out
    n_ops = len(CASES)
    summary = [line for line in out.splitlines() if line.startswith(f"all {n_ops} ops passed: ")]
    assert len(summary) == 1 and "the full table: twinlm check" in summary[0]
    assert "fwd err" not in out and "FAIL" not in out  # no table: one line says it
    assert f"picture: {tmp_path / 'demo.png'}" in out
    assert (tmp_path / "demo.png").read_bytes().startswith(PNG_MAGIC)
    assert "Verdict: the two implementations agree. Over 3 AdamW steps" in out
    assert "demo passed" in out


def test_demo_exits_nonzero_when_the_losses_disagree(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(demo.LOSS_GAP_LIMIT, "float64", -1.0)  # any gap, even 0, is too large
    rows = check_ops(names=["softmax"], examples=1)  # the parity table has its own tests
    monkeypatch.setattr(demo, "check_ops", lambda: rows)
    assert run_demo(steps=1, dtype="float64", corpus_bytes=40_000, out_dir=tmp_path) == 1
    out = capsys.readouterr().out
    assert "Verdict: the backends DISAGREE: the losses differ by up to" in out
    assert "demo FAILED" in out


def test_demo_exits_nonzero_and_shows_the_rows_of_a_failing_op(tmp_path, capsys, monkeypatch):
    rows = check_ops(names=["softmax", "gelu[tanh]"], examples=1)  # the real rows, computed once
    assert all(r["ok"] for r in rows) and len(rows) == 4
    rows[3] = {**rows[3], "grad": 2e3, "ok": False}  # gelu's float32 gradient, as if 2000 u off
    monkeypatch.setattr(demo, "check_ops", lambda: rows)
    assert run_demo(steps=1, dtype="float64", corpus_bytes=40_000, out_dir=tmp_path) == 1
    out = capsys.readouterr().out
    assert "1 of 2 ops FAILED (the full table: twinlm check):" in out
    shown = [line for line in out.splitlines() if line.startswith(("gelu[tanh] ", "softmax "))]
    assert len(shown) == 1 and shown[0].split()[:2] == ["gelu[tanh]", "float32"]
    assert shown[0].endswith("FAIL") and "2.0e+03" in shown[0]
    assert "ops passed" not in out
    assert "Verdict: the backends DISAGREE: ops failed their parity checks (rows above)." in out
    assert "demo FAILED" in out


def test_ops_summary_names_the_worst_op_of_each_dtype():
    rows = [
        dict(op="a", dtype="float64", fwd=1e-16, grad=3e-15, ok=True),
        dict(op="a", dtype="float32", fwd=9.0, grad=4.0, r_fwd=1.1, r_grad=0.9, ok=True),
        dict(op="b", dtype="float64", fwd=2e-15, grad=1e-15, ok=True),
        dict(op="b", dtype="float32", fwd=3.0, grad=5.0, r_fwd=0.8, r_grad=1.7, ok=True),
    ]
    ok, line = ops_summary(rows)
    assert ok and line == (
        "all 2 ops passed: worst float64 error 3.0e-15 (a; tolerance 1e-10), worst float32 R "
        "1.70 (b; tolerance 2); the full table: twinlm check"
    )


def test_verdict_names_every_failure():
    trace = Trace(["numpy", "torch"])
    for step, (a, b) in enumerate([(2.0, 2.0), (1.5, np.nextafter(1.5, 2))], start=1):
        assert trace.add(step, {"numpy": a, "torch": b}) == abs(a - b) / b
    assert trace.gaps[0] == 0.0 and trace.gaps[1] == 2**-52 / np.nextafter(1.5, 2)
    good = verdict(trace, "float64", 1e-15, True, True)
    assert good.startswith("Verdict: the two implementations agree. Over 2 AdamW steps")
    assert "1 of the 2 steps bit for bit" in good
    bad = verdict(trace, "float64", 1e-15, False, False)
    assert bad == (
        "Verdict: the backends DISAGREE: the generated texts differ; ops failed their parity "
        "checks (rows above)."
    )


def test_plot_lockstep_writes_a_png(tmp_path):
    steps = np.arange(1, 6)
    losses = {"numpy": [5.0, 4.0, 3.5, 3.2, 3.0], "torch": [5.0, 4.0, 3.5, 3.2, 3.0]}
    gaps = [0.0, 1.1e-16, 0.0, 2.2e-16, 0.0]  # zeros are drawn along the bottom edge
    path = plot_lockstep(tmp_path / "sub" / "lockstep.png", steps, losses, gaps)
    assert path == tmp_path / "sub" / "lockstep.png"
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert plot_lockstep(tmp_path / "zeros.png", steps, losses, [0.0] * 5).is_file()
