"""`make demo` end to end, shortened: both backends train in lockstep and generate the same text;
the picture is written, the verdict printed, and a disagreement exits non-zero."""

from __future__ import annotations

import numpy as np

from twinlm import demo
from twinlm.demo import Trace, run_demo, verdict
from twinlm.report.plots import plot_lockstep

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_demo_runs_and_backends_agree(tmp_path, capsys):
    assert run_demo(steps=3, dtype="float64", corpus_bytes=40_000, out_dir=tmp_path) == 0
    out = capsys.readouterr().out
    assert "identical text: yes" in out
    assert "checks passed" in out and "FAIL" not in out
    assert f"picture: {tmp_path / 'demo.png'}" in out
    assert (tmp_path / "demo.png").read_bytes().startswith(PNG_MAGIC)
    assert "Verdict: the two implementations agree. Over 3 AdamW steps" in out
    assert "demo passed" in out


def test_demo_exits_nonzero_when_the_losses_disagree(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(demo.LOSS_GAP_LIMIT, "float64", -1.0)  # any gap, even 0, is too large
    monkeypatch.setattr(demo, "run_check", lambda: 0)  # the parity table has its own tests
    assert run_demo(steps=1, dtype="float64", corpus_bytes=40_000, out_dir=tmp_path) == 1
    out = capsys.readouterr().out
    assert "Verdict: the backends DISAGREE: the losses differ by up to" in out
    assert "demo FAILED" in out


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
        "Verdict: the backends DISAGREE: the generated texts differ; ops failed the parity "
        "table above."
    )


def test_plot_lockstep_writes_a_png(tmp_path):
    steps = np.arange(1, 6)
    losses = {"numpy": [5.0, 4.0, 3.5, 3.2, 3.0], "torch": [5.0, 4.0, 3.5, 3.2, 3.0]}
    gaps = [0.0, 1.1e-16, 0.0, 2.2e-16, 0.0]  # zeros are drawn along the bottom edge
    path = plot_lockstep(tmp_path / "sub" / "lockstep.png", steps, losses, gaps)
    assert path == tmp_path / "sub" / "lockstep.png"
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert plot_lockstep(tmp_path / "zeros.png", steps, losses, [0.0] * 5).is_file()
