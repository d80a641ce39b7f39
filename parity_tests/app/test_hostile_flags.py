"""Hostile values through the command line (issue 22: "values read wrong in silence", "tracebacks for
bad input", "exit codes and messages"): every case exits 2 with one line naming the flag, key or
file — never a traceback, never a default read into an empty value, never a flag ignored without a
word —, a read-only path is bad input (2), and a signal outside training exits 130 / 143 saying
so. The runs that are kept are test_runs_kept.py's; ranks that differ, test_distributed.py's."""

from __future__ import annotations

import errno
import os
import signal
import time

import pytest
from cli_helpers import TEXT, fails, parse_fails

from twinlm import cli
from twinlm.cli import main
from twinlm.data import files
from twinlm.models import build, require_memory
from twinlm.training.charrnn import CharRNNSettings, CharRNNTask
from twinlm.training.classify import ClassifySettings, ClassifyTask

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py

TINY_BOOK = ["--set", "emb_dim=8", "n_layers=1", "n_heads=2"]


def charrnn(text, out, *more) -> list[str]:
    args = ["charrnn", "train", "--text", text, "--hidden-size", "8", "--emb-dim", "4"]
    args += ["--num-layers", "1", "--batch-size", "2", "--seq-length", "8", "--eval-batches", "1"]
    return [str(a) for a in [*args, "--steps", "1", "--out", out, *more]]


# ---- empty values ---------------------------------------------------------------------------------


EMPTY = [
    ("charrnn train", "--out"),
    ("train", "--out"),
    ("classify train", "--out"),
    ("train", "--preset"),
    ("classify train", "--preset"),
    ("train", "--text"),
    ("charrnn train", "--text"),
    ("charrnn train", "--resume"),
    ("classify train", "--weights"),
    ("generate --checkpoint c", "--device"),
    ("generate", "--checkpoint"),
    ("generate", "--weights"),
    ("generate --checkpoint c", "--prompt"),
    ("data get verdict", "--sha256"),
    ("data get verdict", "--url"),
    ("data get verdict", "--cache-dir"),
    ("score --checkpoint c --text x", "--png"),
    ("book ch04", "--json"),
    ("book ch05", "--save"),
    ("book ch05", "--text"),
    ("book ch06", "--weights"),
    ("book ch06", "--data"),
    ("classify predict --checkpoint c --text x", "--tokenizer"),
    ("classify predict --text x", "--checkpoint"),
    ("bench", "--out"),
    ("bench", "--json"),
    ("bench", "-k"),
    ("demo", "--out"),
    ("charrnn compare", "--out"),
    ("charrnn compare", "--text"),
    ("charrnn sample", "--checkpoint"),
]


@pytest.mark.parametrize("command, flag", EMPTY)
def test_an_empty_value_is_refused_not_read_as_the_default(command, flag, capsys):
    """Before: `--out ''` trained into the current folder, `--device ''` meant cpu, `--sha256 ''`
    the pinned hash, `--weights ''` searched the current folder, `book --json ''` wrote nothing and
    said nothing, `--text ''` read "Is a directory"."""
    line = parse_fails([*command.split(), flag, ""], capsys)
    assert line.endswith(f"error: argument {flag}: must not be empty"), line


def test_an_empty_primer_is_a_value(tmp_path):
    parsed = cli.build_parser().parse_args(["charrnn", "sample", "--checkpoint", "c", "--primer", ""])  # fmt: skip
    assert parsed.primer == ""


# ---- paths twinlm may not write ------------------------------------------------------------------


def read_only(monkeypatch, error=errno.EROFS):
    """Every probe of a folder answers as a read-only file system would (root writes anywhere,
    so chmod cannot make one here)."""

    def refuse(*args, **kwargs):
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr(files.tempfile, "mkstemp", refuse)


@pytest.mark.parametrize("error", [errno.EROFS, errno.EACCES, errno.EPERM])
def test_an_out_that_cannot_be_written_is_bad_input(error, text, tmp_path, monkeypatch, capsys):
    """Before: a read-only file system (EROFS) exited 1, a runtime failure, where an unwritable
    folder (EACCES) exited 2."""
    read_only(monkeypatch, error)
    line = fails(charrnn(text, tmp_path / "run"), capsys)
    said = f"--out {tmp_path / 'run'}: cannot write in the folder: {os.strerror(error)}"
    assert said in line


def test_a_cache_dir_that_cannot_be_written_is_bad_input(tmp_path, monkeypatch, capsys):
    read_only(monkeypatch)
    line = fails(["data", "get", "verdict", "--cache-dir", tmp_path / "cache"], capsys)
    assert "cannot write in the folder: Read-only file system" in line


@pytest.mark.parametrize("root", ["/proc", "/sys"])
def test_an_out_under_a_system_folder_is_bad_input(root, text, capsys):
    """Paths not writable even for root: /proc refuses a new folder (ENOENT), /sys (EPERM)."""
    line = fails(charrnn(text, f"{root}/twinlm-out"), capsys)
    assert f"--out {root}/twinlm-out: cannot create the folder" in line


def test_exit_codes_of_file_system_errors():
    """A path to change (2) against a condition to wait out or fix elsewhere (1)."""
    code = cli._exit_code
    assert [code(OSError(e, os.strerror(e))) for e in (errno.EROFS, errno.EACCES, errno.EPERM)] == [2, 2, 2]  # fmt: skip
    assert [code(OSError(e, os.strerror(e))) for e in (errno.ENOSPC, errno.EIO)] == [1, 1]


# ---- signals outside training --------------------------------------------------------------------


@pytest.fixture
def checkpoint(tmp_path_factory):
    """A GPT checkpoint of the test preset (bytes folded into its 67 tokens)."""
    from twinlm.training.lm import LMTask, TrainSettings
    from twinlm.training.loop import Run

    settings = TrainSettings(preset="test", max_length=8, stride=8, batch_size=2, steps=1)
    run = Run(LMTask(TEXT, settings, lambda t: [b % 67 for b in t.encode()]), "numpy")
    return run.save(tmp_path_factory.mktemp("ckpt") / "gpt.safetensors")


@pytest.mark.parametrize("how, code, said", [("ctrl-c", 130, "interrupted"), ("sigterm", 143, "stopped by SIGTERM")])  # fmt: skip
def test_a_signal_outside_training_says_so(how, code, said, checkpoint, monkeypatch, capsys):
    """Before: Ctrl-C printed `twinlm generate: ` and nothing (an exception is true even when its
    message is empty); SIGTERM killed the process at once, its cleanup not run, no line."""
    from twinlm import generation

    def stop(*args, **kwargs):
        if how == "ctrl-c":
            raise KeyboardInterrupt
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises first
        pytest.fail("SIGTERM did not stop the command")

    monkeypatch.setattr(generation, "generate_ids", stop)
    before = signal.getsignal(signal.SIGTERM)
    argv = ["generate", "--checkpoint", str(checkpoint), "--prompt", "1", "--max-new-tokens", "2"]
    assert main(argv) == code  # (the prompt: GPT-2 id 16, inside the test preset's 67)
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"twinlm generate: {said}"
    assert signal.getsignal(signal.SIGTERM) is before  # main's handler is gone again


# ---- flags that would be ignored --------------------------------------------------------------


@pytest.mark.parametrize("model, value", [("lstm", "relu"), ("gru", "relu"), ("lstm", "tanh")])
def test_nonlinearity_is_refused_for_a_cell_that_has_its_own(model, value, text, tmp_path, capsys):
    """Before: `--nonlinearity relu` trained an LSTM (or GRU) without a word."""
    line = fails(charrnn(text, tmp_path, "--model", model, "--nonlinearity", value), capsys)
    assert f"--nonlinearity is for --model rnn; the {model} has its own" in line
    with pytest.raises(ValueError, match="nonlinearity is the vanilla RNN's"):
        CharRNNTask(TEXT, CharRNNSettings(model=model, nonlinearity="relu", batch_size=2))


def test_nonlinearity_with_the_vanilla_rnn_trains(text, tmp_path):
    assert main(charrnn(text, tmp_path, "--model", "rnn", "--nonlinearity", "relu")) == 0


def test_ignored_flags_of_generate_and_classify(checkpoint, tmp_path, capsys):
    """Before: each was read and dropped: --n-heads with a checkpoint, --n-heads without --weights,
    --synthetic-size with the SMS data (which then went online), --preset with --weights."""
    line = fails(["generate", "--checkpoint", checkpoint, "--n-heads", "3"], capsys)
    assert "--n-heads is for --weights" in line
    out = ["--out", tmp_path / "c"]
    line = fails(["classify", "train", "--n-heads", "4", *out], capsys)
    assert "n_heads is for weights (GPT-2's), got n_heads=4 without" in line
    line = fails(["classify", "train", "--data", "sms-spam", "--synthetic-size", "40", *out], capsys)  # fmt: skip
    assert "--synthetic-size is for --data synthetic" in line
    line = fails(["classify", "train", "--weights", tmp_path, "--preset", "tiny", *out], capsys)
    assert "--preset is for a fresh model; --weights brings its own size" in line
    with pytest.raises(ValueError, match="n_heads is for weights"):
        ClassifyTask(ClassifySettings(n_heads=2))


@pytest.mark.parametrize(
    "chapter, flag, value",
    [
        ("ch04", "--save", "m.safetensors"),
        ("ch04", "--epochs", "3"),
        ("ch04", "--text", "t.txt"),
        ("ch04", "--data", "d.tsv"),
        ("ch04", "--weights", "w"),
        ("ch05", "--data", "d.tsv"),
        ("ch06", "--text", "t.txt"),
        ("ch06", "--save", "m.safetensors"),
        ("ch06", "--set", "emb_dim=8"),
    ],
)
def test_a_flag_the_chapter_would_ignore_is_refused(chapter, flag, value, capsys):
    """Before: `book ch04 --save m` (and --epochs, --text, --data, --weights) ran and ignored it."""
    line = fails(["book", chapter, flag, value], capsys)
    assert f"--{flag[2:]} is for " in line and f"not {chapter}" in line


# ---- the book's values ---------------------------------------------------------------------------


BOOK_VALUES = [
    ("ch05", "context_length=1000000000000", "from context_length 1000000000000"),
    ("ch04", "context_length=1000000000000", "from context_length 1000000000000"),
    ("ch04", "context_length=3", "context_length=3: the chapters feed the model sequences of 4"),
    ("ch05", "context_length=1", "context_length must be at least 4"),
    ("ch04", "vocab_size=10", "--set vocab_size=10: the chapters read GPT-2 token ids"),
    ("ch05", "eval_freq=0", "eval_freq must be >= 1, got 0"),
    ("ch05", "eval_iter=0", "eval_iter must be >= 1, got 0"),
    ("ch05", "eval_iter=abc", "eval_iter must be an int"),
    ("ch05", "sample_tokens=-1", "sample_tokens must be >= 0, got -1"),
    ("ch05", "lr=-1", "lr must be a finite number in (0, inf), got -1"),
    ("ch05", "weight_decay=nan", "weight_decay must be a finite number in [0, inf), got nan"),
    ("ch05", "train_ratio=2", "train_ratio must be a finite number in (0, 1], got 2"),
    ("ch05", "batch_size=0", "batch_size must be >= 1, got 0"),
    ("ch04", "max_new_tokens=-1", "max_new_tokens must be >= 0, got -1"),
]


@pytest.mark.parametrize("chapter, pair, said", BOOK_VALUES)
def test_book_values_are_refused_by_key(chapter, pair, said, text, monkeypatch, capsys):
    """Before: context_length 10¹² and eval_freq=0 / eval_iter=0 ended in tracebacks (exit 70),
    eval_iter=abc in "'<' not supported between instances of 'int' and 'str'", vocab_size=10 in
    "idx must lie in [0, 10), got 6109", sample_tokens=-1 and max_new_tokens=-1 ran."""
    monkeypatch.setattr(build, "physical_memory", lambda: 64 * 2**30)  # any machine's
    argv = ["book", chapter, "--set", pair]
    line = fails([*argv, "--text", text] if chapter == "ch05" else argv, capsys)
    assert said in line, line


def test_a_model_larger_than_the_machines_memory_is_refused_by_key(monkeypatch, text, tmp_path, capsys):  # fmt: skip
    """Before: charrnn --hidden-size 10⁹ exited 1 "Unable to allocate 119. GiB" from inside NumPy;
    context_length 10¹² was torch's allocator error in a traceback. Now refused before building."""
    line = fails(charrnn(text, tmp_path, "--hidden-size", "1000000000"), capsys)
    assert "more than this machine's" in line and "from hidden_size 1000000000" in line
    cfg = {"cell": "gru", "vocab_size": 5, "emb_dim": 3, "hidden_size": 7, "num_layers": 1}
    require_memory("CharRNN", {**cfg, "drop_rate": 0.0})  # fits
    monkeypatch.setattr(build, "physical_memory", lambda: 1000)
    with pytest.raises(
        ValueError, match=r"gru.weight_hh_l0 alone is \(21, 7\), from hidden_size 7"
    ):
        require_memory("CharRNN", {**cfg, "drop_rate": 0.0}, "float64")
    monkeypatch.setattr(build, "physical_memory", lambda: None)  # not known: not refused
    require_memory("CharRNN", {**cfg, "drop_rate": 0.0})


def test_book_text_that_is_not_utf8_names_the_file(tmp_path, capsys):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("café crème ".encode("latin-1") * 50)
    line = fails(["book", "ch05", "--text", bad, *TINY_BOOK], capsys)
    assert f"--text {bad} is not UTF-8 text (byte 0xe9 at offset 3)" in line


SPAM_TABLES = {  # content -> what the line says
    "ham\thello there\nspam this line has no tab\n": "line 2: expected label<TAB>text (2 fields), got 1",  # fmt: skip
    "ham\thello\tthere\n": "line 1: expected label<TAB>text (2 fields), got 3",
    "": "holds 0 ham and 0 spam messages",
    "".join(f"ham\thello {i}\n" for i in range(40)): "holds 40 ham and 0 spam messages",
    "".join("ham\t\nspam\t\n" for _ in range(30)): "every training text is empty",
}


@pytest.mark.parametrize("table", SPAM_TABLES, ids=["no tab", "two tabs", "empty", "only ham", "empty texts"])  # fmt: skip
def test_book_ch06_data_that_does_not_fit_names_the_file(table, tmp_path, capsys):
    """Before: a line without a tab ended in an IndexError traceback (exit 70); an empty table or
    one without spam in "max() arg is an empty sequence"; texts all empty in "idx must hold at
    least one position"; a line with two tabs was cut silently. (The weights are read after the
    table, so none are needed here.)"""
    data = tmp_path / "sms.tsv"
    data.write_text(table, encoding="utf-8")
    line = fails(["book", "ch06", "--weights", tmp_path / "none", "--data", data], capsys)
    assert f"--data {data}" in line and SPAM_TABLES[table] in line, line


def test_book_ch06_data_that_is_not_text(tmp_path, capsys):
    data = tmp_path / "sms.tsv"
    data.write_bytes("ham\tcafé\n".encode("latin-1"))
    line = fails(["book", "ch06", "--weights", tmp_path / "none", "--data", data], capsys)
    assert f"--data {data} is not UTF-8 text" in line
    line = fails(["book", "ch06", "--weights", tmp_path / "none", "--data", tmp_path], capsys)
    assert f"--data {tmp_path}: Is a directory" in line
