"""`twinlm check --impl`'s exit codes: 0 every op checked passes; 1 one fails or is not
implemented; 2 bad input, one line naming the file (and line) or the function: no such file, a
syntax error, an exception at import, a signature unlike numpy_impl's, a backward without its
forward, no op's name, an --op not there. Loading a folder runs its files, not its tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from twinlm.cli import main
from twinlm.parity import learner_check
from twinlm.parity.learner import ImplError, load_impl

HERE = Path(__file__).parent
SOFTMAX = """\
    import numpy as np


    def softmax_forward(x):
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        s = e / e.sum(axis=-1, keepdims=True)
        return s, s


    def softmax_backward(ds, cache):
        return cache * (ds - (ds * cache).sum(axis=-1, keepdims=True))
"""


@pytest.fixture(autouse=True)
def short_shrinking(monkeypatch):
    monkeypatch.setattr(learner_check, "SHRINK_SECONDS", 0.5)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def check(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["check", "--examples", "2", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_pass_fail_and_one_op(tmp_path, capsys):
    good = write(tmp_path, "good.py", SOFTMAX)
    code, out, _ = check(capsys, "--impl", str(good))
    assert code == 0 and "softmax: pass" in out and "1 op checked: 1 pass" in out
    bad = write(
        tmp_path, "bad.py", SOFTMAX.replace("return cache * (ds - ", "return cache * (ds + ")
    )
    code, out, _ = check(capsys, "--impl", str(bad))
    assert code == 1 and "softmax: FAIL" in out and "gradient of `x` is wrong" in out
    code, out, _ = check(capsys, "--impl", str(HERE / "learner_right.py"), "--op", "rope")
    assert code == 0 and "rope: pass" in out and "softmax" not in out


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("syntax.py", "def softmax_forward(x):\n    return x +\n", "syntax.py:2: SyntaxError"),
        ("raises.py", "import numpy\n\nraise RuntimeError('boom')\n", "raises.py:3: loading"),
        ("signature.py", "def softmax_forward(x, axis=-1):\n    pass\n",
         "softmax_forward(x, axis=-1) differs from numpy_impl's softmax_forward(x)"),
        ("defaults.py", "def layernorm_forward(x, scale, shift, eps=1e-6):\n    pass\n",
         "numpy_impl's layernorm_forward(x, scale, shift, eps=1e-05)"),
        ("orphan.py", "def softmax_backward(ds, cache):\n    pass\n",
         "softmax_backward without softmax_forward"),
        ("nothing.py", "def helper(x):\n    return x\n", "no function named like an op's pair"),
        ("notes.txt", "", "expected a .py file"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_naming_the_file(tmp_path, capsys, name, text, message):
    path = write(tmp_path, name, text)
    code, out, err = check(capsys, "--impl", str(path))
    assert code == 2 and out == ""
    assert message in err and err.count("\n") <= 2, err
    assert "Traceback" not in err


def test_missing_paths_and_ops_exit_2(tmp_path, capsys):
    code, _, err = check(capsys, "--impl", str(tmp_path / "nope.py"))
    assert code == 2 and "nope.py: no such file or folder" in err
    code, _, err = check(capsys, "--impl", str(tmp_path))
    assert code == 2 and "no .py file" in err
    good = write(tmp_path, "good.py", SOFTMAX)
    code, _, err = check(capsys, "--impl", str(good), "--op", "layernorm")
    assert code == 2 and "defines no layernorm_forward" in err
    code, _, err = check(capsys, "--impl", str(good), "--op", "layer_norm")
    assert code == 2 and "no op named 'layer_norm'" in err
    with pytest.raises(SystemExit) as stop:
        main(["check", "--impl", str(good), "--examples", "0"])
    assert stop.value.code == 2


def test_a_folder_of_files_that_import_each_other(tmp_path, capsys):
    write(tmp_path, "softmax.py", SOFTMAX)
    write(
        tmp_path,
        "attention.py",
        """\
        import math

        from softmax import softmax_backward, softmax_forward


        def attention_forward(q, k, v, causal=True, dropout_mask=None, p=0.0):
            t_q, t_k = q.shape[-2], k.shape[-2]
            s = q @ k.swapaxes(-1, -2) / math.sqrt(q.shape[-1])
            if causal:
                j, i = __import__("numpy").ogrid[:t_q, :t_k]
                s = __import__("numpy").where(i > j + t_k - t_q, -__import__("numpy").inf, s)
            a, _ = softmax_forward(s)
            m = a if dropout_mask is None else a * dropout_mask / (1 - p)
            return m @ v, (q, k, v, a, m, dropout_mask, p)


        def attention_backward(dy, cache):
            q, k, v, a, m, mask, p = cache
            da = dy @ v.swapaxes(-1, -2)
            if mask is not None:
                da = da * mask / (1 - p)
            ds = softmax_backward(da, a) / math.sqrt(q.shape[-1])
            return ds @ k, ds.swapaxes(-1, -2) @ q, m.swapaxes(-1, -2) @ dy
        """,
    )
    write(tmp_path, "test_mine.py", "raise SystemExit('a test file is not loaded')\n")
    write(tmp_path, "helpers.py", "def layer_norm_forward(x, scale, shift, eps=1e-5):\n    pass\n")
    code, out, _ = check(capsys, "--impl", str(tmp_path))
    assert code == 0, out
    assert "softmax: pass" in out and "attention: pass" in out
    assert "layer_norm_forward" in out and "did you mean layernorm_forward?" in out
    # edited between two checks in one process (a notebook): the new code is what runs
    write(tmp_path, "softmax.py", SOFTMAX.replace("return s, s", "return s * 1.5, s"))
    code, out, _ = check(capsys, "--impl", str(tmp_path))
    assert code == 1 and "softmax: FAIL" in out and "attention: FAIL" in out


def test_the_plain_check_takes_op_and_examples(capsys):
    assert main(["check", "--op", "silu", "--examples", "2"]) == 0
    out = capsys.readouterr().out
    assert "silu" in out and "layernorm" not in out and "over the 2 examples" in out


def test_a_signature_unlike_numpy_impls_in_any_file_of_a_folder(tmp_path):
    write(tmp_path, "a.py", SOFTMAX)
    assert set(load_impl(tmp_path).ops) == {"softmax"}
    write(tmp_path, "b.py", "def silu_forward(y):\n    pass\n")
    with pytest.raises(ImplError, match=r"b\.py:1: silu_forward\(y\) differs"):
        load_impl(tmp_path)
