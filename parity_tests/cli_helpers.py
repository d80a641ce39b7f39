"""What the command-line tests share (parity_tests/app): a small text, the flags of a tiny char-RNN
run, and the checks of a refusal (`from cli_helpers import ...`; pytest puts this folder on
sys.path). parity_tests/app/conftest.py gives the `text` fixture, that text in a file."""

from __future__ import annotations

import os

import pytest

from twinlm.cli import main
from twinlm.training.checkpoint import read_meta

TEXT = "".join(
    f"line {i}: the quick brown fox jumps over the lazy dog {i * i}\n" for i in range(80)
)


def charrnn_argv(text, out, *more) -> list[str]:
    """`twinlm charrnn train` of a tiny LSTM on `text` into `out`, checkpoints by steps only."""
    args = ["charrnn", "train", "--text", text, "--hidden-size", "8", "--emb-dim", "4"]
    args += ["--num-layers", "1", "--batch-size", "2", "--seq-length", "8", "--eval-batches", "1"]
    args += ["--eval-every", "2", "--checkpoint-minutes", "0", "--out", out, *more]
    return [str(a) for a in args]


def fails(argv: list, capsys, code: int = 2) -> str:
    """Run the command line; assert it exits `code` with one error line and no traceback; return
    that line."""
    assert main([str(a) for a in argv]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    return lines[0]


def parse_fails(argv: list, capsys) -> str:
    """An argparse refusal: exit 2 before any work, the message naming the flag."""
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    assert e.value.code == 2
    return capsys.readouterr().err.strip().splitlines()[-1]


def step_of(path) -> int | None:
    """The step of the checkpoint at `path`; None if there is none (or it cannot be read)."""
    meta = read_meta(path) if os.path.exists(path) else None
    return meta["step"] if meta else None
