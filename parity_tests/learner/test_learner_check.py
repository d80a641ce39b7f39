"""`twinlm check --impl` (twinlm/parity/learner_check.py) on code written as a learner would:

- numpy_impl itself and the correct alternatives of learner_right.py pass every op offered;
- every mistake in learner_wrong.py's bank FAILS, naming the op's failing cases and the output or
  gradient that is wrong (or the function, with what it returned or raised); the hint that
  describes the mistake fires, and no hint that does not;
- a forward without its backward is checked as a forward; a function that raises, or returns the
  wrong count, shape or dtype, fails its op while the other ops still run.
The sweep's shrinking is given a short budget here (its result is not what these tests look at).
"""

from __future__ import annotations

import types

import learner_right
import numpy as np
import pytest
from learner_wrong import WRONG

import numpy_impl
from twinlm.parity import learner_check
from twinlm.parity.learner import offered_ops
from twinlm.parity.learner_check import verify

EXAMPLES = 2
ISSUE_OPS = (
    "linear softmax gelu layernorm dropout embedding cross_entropy attention multihead_attention "
    "feedforward transformer_block lstm_cell gru_cell rnn_cell rmsnorm rope silu swiglu "
    "grouped_query_attention"
).split()


@pytest.fixture(autouse=True)
def short_shrinking(monkeypatch):
    monkeypatch.setattr(learner_check, "SHRINK_SECONDS", 0.3)


def module(name: str, **functions) -> types.ModuleType:
    m = types.ModuleType(name)
    vars(m).update(functions)
    return m


def test_the_ops_offered_include_the_issues():
    assert set(ISSUE_OPS) <= set(offered_ops())


def test_numpy_impl_passes_every_op():
    report = verify(numpy_impl, examples=EXAMPLES)
    assert [r.op for r in report.ops] == offered_ops()
    assert report.ok, str(report)
    assert all(r.status == "pass" and not r.hints for r in report.ops)
    for r in report.ops:  # every case ran, and float32 was judged
        assert all(c.float32 and c.main is not None for c in r.cases)


def test_correct_implementations_written_another_way_pass():
    """einsum, loops over rows / heads / gates, the log-softmax form, np.add.at, repeat_kv."""
    report = verify(learner_right, examples=EXAMPLES)
    assert len(report.ops) >= 18
    assert report.ok, str(report)
    worst = max(e for r in report.ops for c in r.cases for e in c.worst.values())
    assert worst < 1e-12


def test_the_bank_covers_many_ops_and_mistakes():
    assert len(WRONG) >= 25
    assert len({w.op for w in WRONG}) >= 15
    hints = {w.expected.hint for w in WRONG} - {None}
    assert len(hints) >= 20


@pytest.mark.parametrize("wrong", WRONG, ids=[w.name for w in WRONG])
def test_wrong_implementation_fails_where_and_why(wrong):
    report = verify(module(f"wrong_{id(wrong)}", **wrong.functions), examples=EXAMPLES)
    (op,) = report.ops
    assert op.op == wrong.op and op.status == "FAIL" and not report.ok, str(report)
    failing = {c.name: {f.what for f in c.failures} for c in op.cases if c.failures}
    expected = wrong.expected
    for case in expected.cases:
        assert case in failing, f"{wrong.name}: {case} passes\n{report}"
        assert set(expected.what) <= failing[case], f"{wrong.name}: {failing[case]}\n{report}"
    if expected.message:
        assert expected.message in str(report), str(report)
    fired = {h.key for h in op.hints}
    if expected.hint is not None:
        assert expected.hint in fired, f"{wrong.name}: hints {fired}\n{report}"
    assert fired <= {expected.hint, *expected.also}, f"{wrong.name}: hints {fired}\n{report}"
    for hint in op.hints:
        assert f"hint: {hint.text}" in str(report)


def test_a_forward_without_its_backward_is_checked_as_a_forward():
    only = module("forward_only", layernorm_forward=learner_right.layernorm_forward)
    report = verify(only, examples=EXAMPLES)
    (op,) = report.ops
    assert report.ok and op.forward_only
    assert all(set(c.worst) == {"forward output `y`"} for c in op.cases)
    assert "forward only" in str(report)
    wrong = module("forward_only_wrong", layernorm_forward=learner_wrong_forward())
    assert not verify(wrong, examples=EXAMPLES).ok


def learner_wrong_forward():
    from learner_wrong import layernorm_forward_unbiased

    return layernorm_forward_unbiased


def test_a_failing_op_does_not_stop_the_others():
    def softmax_forward(x):
        raise ZeroDivisionError("oops")

    mixed = module(
        "mixed",
        softmax_forward=softmax_forward,
        softmax_backward=learner_right.softmax_backward,
        silu_forward=learner_right.silu_forward,
        silu_backward=learner_right.silu_backward,
    )
    report = verify(mixed, examples=EXAMPLES)
    status = {r.op: r.status for r in report.ops}
    assert status == {"softmax": "FAIL", "silu": "pass"}
    text = str(report)
    assert (
        "softmax_forward raised ZeroDivisionError: oops" in text
        and "test_learner_check.py:" in text
    )


def test_nan_is_reported_as_such():
    def silu_forward(x):
        return x / (1 + np.exp(-x)) * np.where(x > 2, np.nan, 1.0), (x,)

    report = verify(module("nan", silu_forward=silu_forward), examples=EXAMPLES)
    assert not report.ok
    assert "forward output `y` is wrong (float64): NaN or inf in" in str(report)
    assert "(from silu_forward)" in str(report)


def test_the_report_is_reproducible_for_a_seed(monkeypatch):
    monkeypatch.setattr(learner_check, "SHRINK_SECONDS", 60.0)  # shrinking ends, not the clock
    wrong = next(w for w in WRONG if w.name == "layernorm without the mean term")
    runs = [
        str(verify(module("again", **wrong.functions), examples=EXAMPLES, seed=3)) for _ in "ab"
    ]
    strip = [line.rsplit("  ", 1)[0] for r in runs for line in r.splitlines()]  # timings differ
    assert strip[: len(strip) // 2] == strip[len(strip) // 2 :]


def test_the_notebook_entry_point(tmp_path):
    """docs/check-your-backward.md's three lines."""
    from twinlm.parity import verify as from_the_package

    path = tmp_path / "mine.py"
    path.write_text("from learner_right import np\n\n\n" + SILU)
    report = from_the_package(str(path), examples=EXAMPLES)
    assert report.ok and "silu: pass" in str(report)
    shown = []
    report._repr_pretty_(types.SimpleNamespace(text=shown.append), False)
    assert shown == [str(report)]


SILU = """def silu_forward(x):
    s = 1 / (1 + np.exp(-x))
    return x * s, (x, s)


def silu_backward(dy, cache):
    x, s = cache
    return dy * s * (1 + x * (1 - s))
"""
