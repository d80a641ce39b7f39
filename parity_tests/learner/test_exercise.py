"""`twinlm exercise` (twinlm/parity/exercise.py): the stubs carry numpy_impl's exact signatures and
the forward's math but not the backward's; unfilled, `check --impl` reports every function "not
implemented" (exit 1); filled in correctly, it passes (exit 0); an existing file is kept."""

from __future__ import annotations

import importlib.util
import re

import pytest

from twinlm.cli import main
from twinlm.parity import learner_check
from twinlm.parity.exercise import forward_math, skeleton, write_exercise
from twinlm.parity.learner import offered_ops, plain_signature, reference


@pytest.fixture(autouse=True)
def short_shrinking(monkeypatch):
    monkeypatch.setattr(learner_check, "SHRINK_SECONDS", 0.5)


def _load(path):
    spec = importlib.util.spec_from_file_location(f"exercise_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("op", offered_ops())
def test_skeleton_signatures_are_numpy_impls(op, tmp_path):
    stubs = _load(write_exercise(op, tmp_path))
    for way in ("forward", "backward"):
        assert plain_signature(getattr(stubs, f"{op}_{way}")) == plain_signature(reference(op, way))
        with pytest.raises(NotImplementedError):
            getattr(stubs, f"{op}_{way}")(
                *[None] * len(plain_signature(reference(op, way)).parameters)
            )


@pytest.mark.parametrize("op", offered_ops())
def test_the_forward_math_is_there_and_the_backward_is_not(op):
    math = forward_math(op)
    assert "=" in math and len(math.splitlines()) >= 2
    for line in math.splitlines():
        assert not re.match(r"\s*(cell |layer )?(backward|derivation|bptt)\b", line, re.I), line
        assert not re.match(r"\s*d[\w₀-₉']* = ", line), line
    text = skeleton(op)
    assert math.splitlines()[0] in text and f"twinlm check --impl {op}.py" in text


def test_layernorm_exercise_shows_shapes_and_what_to_return():
    text = skeleton("layernorm")
    assert "σ = √(mean((x - μ)²) + ε)" in text and "dx = (1/σ)" not in text
    assert re.search(r"x:\s+\(batch, seq, emb\)\s+e\.g\. \(4, 16, 32\)", text)
    assert "Return (dx, dscale, dshift)" in text
    assert "dbias None when bias is None" in skeleton("linear")
    assert "params['W_query.bias']" in skeleton("multihead_attention")  # the [qkv_bias] case


def test_unfilled_skeletons_are_not_implemented(tmp_path, capsys):
    for op in offered_ops():
        write_exercise(op, tmp_path)
    assert main(["check", "--impl", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    for op in offered_ops():
        assert f"{op}: not implemented" in out
        assert f"not implemented: {op}_forward, {op}_backward" in out


def test_a_filled_exercise_passes(tmp_path, capsys):
    path = write_exercise("softmax", tmp_path)
    text = path.read_text().replace(
        '    raise NotImplementedError("softmax_forward")',
        "    e = np.exp(x - x.max(axis=-1, keepdims=True))\n"
        "    s = e / e.sum(axis=-1, keepdims=True)\n"
        "    return s, s",
    )
    half = tmp_path / "half" / "softmax.py"
    half.parent.mkdir()
    half.write_text(text)  # forward written, backward still a stub
    assert main(["check", "--impl", str(half), "--examples", "2"]) == 1
    out = capsys.readouterr().out
    assert "not implemented: softmax_backward" in out and "forward only" in out
    path.write_text(
        text.replace(
            '    raise NotImplementedError("softmax_backward")',
            "    return cache * (ds - (ds * cache).sum(axis=-1, keepdims=True))",
        )
    )
    assert main(["check", "--impl", str(path), "--examples", "2"]) == 0
    assert "softmax: pass" in capsys.readouterr().out


def test_exercise_keeps_an_existing_file_unless_forced(tmp_path, capsys):
    assert main(["exercise", "rope", "--out", str(tmp_path)]) == 0
    path = tmp_path / "rope.py"
    path.write_text("# my work\n")
    assert main(["exercise", "rope", "--out", str(tmp_path)]) == 2
    assert "rope.py exists" in capsys.readouterr().err and path.read_text() == "# my work\n"
    assert main(["exercise", "rope", "--out", str(tmp_path), "--force"]) == 0
    assert "def rope_forward(x, cos, sin)" in path.read_text()


def test_exercise_list_and_bad_names(capsys):
    assert main(["exercise", "--list"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == offered_ops()
    assert main(["exercise", "layer_norm"]) == 2
    assert "no exercise for 'layer_norm'" in capsys.readouterr().err
    assert main(["exercise"]) == 2
