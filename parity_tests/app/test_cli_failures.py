"""Foreseeable failures through the command line (`twinlm.cli.main`): each bad value refused up front
with one line naming the flag or the file, no traceback, and the exit status saying which kind of
failure it was — 2 bad input, 1 a runtime failure, 70 a bug (with its traceback). The cases are
issue 10's; the runs that are never lost are in test_run_safety.py, the data cache in test_data.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cli_helpers import TEXT, fails, parse_fails
from safetensors.numpy import save_file

from twinlm.cli import main
from twinlm.parity import check
from twinlm.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py

# ---- bad values, refused before any work (one check per flag, the same in every command) -----


BAD_VALUES = [
    ("train", "--steps", "-5", "must be >= 1, got -5"),
    ("train", "--steps", "0", "must be >= 1, got 0"),  # would have replaced a trained checkpoint
    ("train", "--batch-size", "0", "must be >= 1, got 0"),
    ("train", "--eval-every", "0", "must be >= 1, got 0"),
    ("train", "--eval-every", "-1", "must be >= 1, got -1"),
    ("train", "--checkpoint-every", "-1", "must be >= 0, got -1"),
    ("train", "--stride", "0", "must be >= 1, got 0"),
    ("train", "--seed", "-1", "must be >= 0, got -1"),
    ("train", "--lr", "inf", "must be a finite number in (0, inf), got inf"),
    ("train", "--lr", "-1", "must be a finite number in (0, inf), got -1"),
    ("train", "--drop-rate", "1", "must be a finite number in [0, 1), got 1"),
    ("charrnn train", "--lr", "nan", "must be a finite number in (0, inf), got nan"),
    ("charrnn train", "--batch-size", "0", "must be >= 1, got 0"),
    ("classify train", "--batch-size", "0", "must be >= 1, got 0"),
    ("generate --checkpoint c", "--temperature", "-1", "must be a finite number in [0, inf)"),
    ("generate --checkpoint c", "--top-k", "0", "must be >= 1, got 0"),
    ("charrnn sample --checkpoint c", "--top-k", "0", "must be >= 1, got 0"),
    ("demo", "--steps", "-3", "must be >= 1, got -3"),
    ("train", "--batch-size", "two", "must be an integer >= 1, got 'two'"),
]


@pytest.mark.parametrize("command, flag, value, expected", BAD_VALUES)
def test_bad_values_are_refused_by_name_before_any_work(command, flag, value, expected, capsys):
    """Before: --steps -5, --stride 0, --checkpoint-every -1, --eval-every -1 and demo --steps -3
    were accepted (demo "passed"); --batch-size 0 and --eval-every 0 ended in tracebacks (the latter
    after the first step); --lr inf/nan trained to a NaN checkpoint, --lr -1 trained uphill;
    --seed -1 did not name the flag; GPT train and charrnn train checked the same flags differently.
    Now: one check per flag name, applied by the parser in every command, exit 2."""
    line = parse_fails([*command.split(), flag, value], capsys)
    assert f"argument {flag}: {expected}" in line


def test_the_same_flag_is_checked_the_same_way_in_every_command(capsys):
    lines = {
        command: parse_fails([*command.split(), "--batch-size", "0"], capsys)
        for command in ("train", "charrnn train", "classify train")
    }
    assert {line.split(": ", 1)[1] for line in lines.values()} == {
        "error: argument --batch-size: must be >= 1, got 0"
    }


def test_empty_text_to_classify_is_refused(capsys):
    """Before: `classify predict --text ''` printed a label. Now refused, before any loading."""
    line = fails(["classify", "predict", "--checkpoint", "none", "--text", ""], capsys)
    assert "--text must not be empty" in line


# ---- files of the wrong kind, or with the wrong content ------------------------------------------


def test_text_that_is_not_utf8_names_the_file(tmp_path, capsys):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("café crème ".encode("latin-1") * 50)
    line = fails(["train", "--text", bad, "--out", tmp_path / "run"], capsys)
    assert f"--text {bad} is not UTF-8 text (byte 0xe9 at offset 3)" in line


def test_missing_text_names_the_flag(tmp_path, capsys):
    line = fails(["charrnn", "train", "--text", tmp_path / "no.txt", "--out", tmp_path], capsys)
    assert f"--text {tmp_path / 'no.txt'}: No such file or directory" in line


def test_too_short_validation_split_is_named(tmp_path, capsys):
    short = tmp_path / "short.txt"
    short.write_text(TEXT[:400], encoding="utf-8")
    line = fails(["train", "--text", short, "--max-length", "32", "--out", tmp_path / "r"], capsys)
    assert "the validation split (the last 10 % of the text) has" in line
    assert "max_length + 1 = 33" in line


def test_preset_whose_vocabulary_the_tokenizer_overflows(text, tmp_path, capsys):
    """Before: "idx must lie in [0, 67), got 6434" from inside the model."""
    args = ["train", "--text", text, "--preset", "test", "--max-length", "8"]
    line = fails([*args, "--out", tmp_path / "r"], capsys)
    assert "preset 'test' has vocab_size 67" in line and "tokenizer and the model disagree" in line


def _damaged(src, dst, damage: str):
    """A copy of checkpoint `src` with one kind of damage."""
    tensors, meta = load_checkpoint(src)
    meta_text = {"list": "[1, 2]", "malformed": json.dumps(meta)[:-3]}.get(damage)
    if damage == "no step":
        meta_text = json.dumps({k: v for k, v in meta.items() if k != "step"})
    if damage == "int64":
        tensors = {k: v.astype(np.int64) if k.startswith("model.") else v for k, v in tensors.items()}  # fmt: skip
    if damage == "no optimizer":
        tensors = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
    save_file(tensors, str(dst), {"twinlm": meta_text or json.dumps(meta)})
    return dst


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A char-RNN checkpoint written by `twinlm charrnn train` (2 steps), and a GPT one of the
    test preset (1 step) written by the same loop."""
    from twinlm.training.lm import LMTask, TrainSettings
    from twinlm.training.loop import Run

    folder = tmp_path_factory.mktemp("ckpts")
    text = folder / "fox.txt"
    text.write_text(TEXT, encoding="utf-8")
    args = ["charrnn", "train", "--text", text, "--hidden-size", "8", "--emb-dim", "4", "--steps"]
    args += ["2", "--batch-size", "2", "--seq-length", "8", "--out", folder / "charrnn"]
    assert main([str(a) for a in args]) == 0
    settings = TrainSettings(preset="test", max_length=8, stride=8, batch_size=2, steps=1)
    run = Run(LMTask(TEXT, settings, lambda t: [b % 67 for b in t.encode()]), "numpy")
    run.train_step()
    gpt = run.save(folder / "gpt.safetensors")
    return {"charrnn": folder / "charrnn" / "checkpoint.safetensors", "gpt": gpt, "text": text}


@pytest.mark.parametrize(
    "damage, expected",
    [
        ("list", "its twinlm metadata must be a JSON object, got list"),
        ("no step", "its metadata must give 'step' as an integer >= 0, got None"),
        ("malformed", "its twinlm metadata is not valid JSON"),
        ("int64", "is int64; parameters are floating point"),
        ("no optimizer", "holds no optimizer state for"),
    ],
)
@pytest.mark.parametrize("command", ["resume", "generate"])
def test_damaged_checkpoints_are_refused_naming_the_file(checkpoints, damage, expected, command, tmp_path, capsys):  # fmt: skip
    """Before: a metadata list or a missing step gave a KeyError traceback, malformed metadata a
    bare JSON parser error, int64 tensors were cast to float, a torch resume without optimizer
    tensors a KeyError. Now one line naming the file, exit 2."""
    if damage == "no optimizer" and command == "generate":
        pytest.skip("generating needs no optimizer state")
    if command == "generate":
        bad = _damaged(checkpoints["gpt"], tmp_path / "bad.safetensors", damage)
        argv = ["generate", "--checkpoint", bad, "--max-new-tokens", "1"]
    else:
        bad = _damaged(checkpoints["charrnn"], tmp_path / "bad.safetensors", damage)
        argv = ["charrnn", "train", "--text", checkpoints["text"], "--resume", bad]
        argv += ["--backend", "torch", "--steps", "3", "--out", tmp_path / "r"]
    line = fails(argv, capsys)
    assert str(bad) in line and expected in line


def test_generate_device_that_is_not_there(checkpoints, capsys):
    """Before: `--device cuda` on a CPU build and `--device banana` ended in tracebacks."""
    ckpt = checkpoints["gpt"]
    base = ["generate", "--backend", "torch", "--checkpoint", ckpt, "--max-new-tokens", "1"]
    assert "device must be a torch device" in fails([*base, "--device", "banana"], capsys)
    assert "device 'cuda:99'" in fails([*base, "--device", "cuda:99"], capsys)
    if not torch.cuda.is_available():
        assert "device 'cuda' is not available" in fails([*base, "--device", "cuda"], capsys)


def test_weights_that_are_not_weights(tmp_path, capsys):
    """Before: torch's advice to re-run with weights_only=False — unsafe, and wrong here."""
    (tmp_path / "notes.pth").write_text("not weights at all")
    torch.save(torch.nn.Linear(2, 2), tmp_path / "module.pth")  # a pickled module, not a dict
    for name in ("notes.pth", "module.pth"):
        line = fails(["generate", "--weights", tmp_path / name], capsys)
        assert f"{tmp_path / name} is not a readable PyTorch weights file" in line
        assert "weights_only=False" not in line and "Re-running" not in line


# ---- the boundary itself ---------------------------------------------------------------------


def test_offline_tokenizer_is_one_message_exit_1(text, tmp_path, monkeypatch, capsys):
    """Before: good text inside a RuntimeError traceback."""
    import tiktoken

    from twinlm.data import tokenizer

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setenv("TWINLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    monkeypatch.setattr(tokenizer, "download_whisper_sdist", offline)
    tokenizer.get_tokenizer.cache_clear()
    try:
        assert main([str(a) for a in ["train", "--text", text, "--out", tmp_path / "r"]]) == 1
    finally:
        tokenizer.get_tokenizer.cache_clear()  # the next user loads the real one again
    err = capsys.readouterr().err
    assert "could not load the GPT-2 tokenizer" in err and "Traceback" not in err


def test_a_bug_shows_its_traceback_and_says_so(monkeypatch, capsys):
    def broken(args):
        return {}["missing"]

    monkeypatch.setattr(check, "main_check", broken)  # the handler cli.main imports and calls
    assert main(["check"]) == 70
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'missing'" in err
    assert "twinlm check: internal error: this is a bug in twinlm" in err
