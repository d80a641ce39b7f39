"""A training run is never lost, through the command line (`twinlm.cli.main`): --out checked and
locked before any work, periodic checkpoints, a checkpoint on SIGINT/SIGTERM, stale temporaries
removed, no silent overwrite, resuming that extends a run, the divergence guard, a full disk.
The cases are issue 10's; the char-RNN (a few ms per step) stands in for every model, since all
three share the loop (twinlm/training/loop.py), except where a case is about the GPT itself."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
from types import SimpleNamespace

import numpy as np
import pytest
from cli_helpers import TEXT, step_of
from cli_helpers import charrnn_argv as charrnn

from twinlm.cli import main
from twinlm.data import files
from twinlm.data.files import LOCK_NAME, exclusive
from twinlm.training import loop
from twinlm.training.charrnn import CharRNNSettings, CharRNNTask
from twinlm.training.checkpoint import load_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


def fails(argv: list[str], capsys, code: int) -> str:
    assert main(argv) == code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return err


# ---- --out, before any work --------------------------------------------------------------------


def test_out_that_cannot_hold_a_run_is_refused_at_start(text, tmp_path, monkeypatch, capsys):
    """Before: a bad --out was found only after training, with a traceback."""
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    err = fails(charrnn(text, a_file, "--steps", "5"), capsys, 2)
    assert f"--out {a_file} is a file, not a folder" in err and "step" not in err
    err = fails(charrnn(text, a_file / "run", "--steps", "5"), capsys, 2)
    assert f"--out {a_file / 'run'}: cannot create the folder" in err

    def read_only(*args, **kwargs):  # what a read-only folder answers (root writes anywhere)
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    err = fails(charrnn(text, tmp_path / "ro", "--steps", "5"), capsys, 2)
    assert f"--out {tmp_path / 'ro'}: cannot write in the folder: Permission denied" in err


@pytest.mark.skipif(getattr(os, "geteuid", lambda: 1)() == 0, reason="root writes anywhere")
def test_read_only_out_folder(text, tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        err = fails(charrnn(text, folder, "--steps", "5"), capsys, 2)
    finally:
        folder.chmod(0o700)
    assert "cannot write in the folder" in err


def test_a_second_run_into_the_same_out_is_refused(text, tmp_path, capsys):
    """Before: both runs exited 0 and the last one won. The lock is held by the first run for as
    long as it lives (here: by this process, through another open file)."""
    out = tmp_path / "run"
    out.mkdir()
    with exclusive(out / LOCK_NAME, "the first run"):
        err = fails(charrnn(text, out, "--steps", "3"), capsys, 1)
    assert f"--out {out} is in use by another twinlm process (pid {os.getpid()})" in err
    assert main(charrnn(text, out, "--steps", "3")) == 0  # free again


def test_a_fresh_run_does_not_replace_a_checkpoint(text, tmp_path, capsys):
    """Before: `train --steps 0 --out runs/x` replaced a trained checkpoint with an untrained one."""
    out, ckpt = tmp_path / "run", tmp_path / "run" / "checkpoint.safetensors"
    assert main(charrnn(text, out, "--steps", "4")) == 0
    err = fails(charrnn(text, out, "--steps", "2"), capsys, 2)
    assert f"already holds a checkpoint (step 4 of a charrnn run): continue it with --resume {ckpt}" in err  # fmt: skip
    assert step_of(ckpt) == 4
    assert main(charrnn(text, out, "--steps", "2", "--force")) == 0
    assert step_of(ckpt) == 2


def test_temporaries_a_killed_save_left_are_removed(text, tmp_path):
    """Before: every kill -9 during a save left a `.checkpoint.safetensors.*.tmp` behind."""
    out = tmp_path / "run"
    out.mkdir()
    (out / ".checkpoint.safetensors.k9x_2ab.tmp").write_bytes(b"\0" * 100)
    (out / "notes.tmp").write_text("not ours")
    assert main(charrnn(text, out, "--steps", "2")) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        ".twinlm.lock", "checkpoint.safetensors", "loss.png", "notes.tmp"
    ]  # fmt: skip


# ---- periodic checkpoints, signals ---------------------------------------------------------


def test_checkpoints_by_steps_and_by_time(text, tmp_path, monkeypatch):
    saves = []
    original = loop.Run.save

    def save(self, path):
        saves.append(self.step)
        return original(self, path)

    monkeypatch.setattr(loop.Run, "save", save)
    assert main(charrnn(text, tmp_path / "a", "--steps", "7", "--checkpoint-every", "3")) == 0
    assert saves == [3, 6, 7]  # every 3 steps, and at the end
    saves.clear()
    clock = iter(range(0, 10_000, 40))  # a clock that moves 40 s at every reading
    monkeypatch.setattr(loop, "time", SimpleNamespace(monotonic=lambda: next(clock)))
    args = ["--steps", "6", "--checkpoint-every", "0", "--checkpoint-minutes", "2"]
    assert main(charrnn(text, tmp_path / "b", *args)) == 0
    assert saves == [3, 6]  # 120 s after the start (one reading per step), and at the end


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_a_checkpoint_then_exits(sig, code, text, tmp_path, monkeypatch, capsys):
    """Before: Ctrl-C or SIGTERM lost everything (nothing saved before the end), with a traceback
    for Ctrl-C. Now the step under way finishes, the checkpoint is written, exit 128 + signal."""
    original = loop.Run.train_step

    def step_then_signal(self):
        loss = original(self)
        if self.step == 3:
            os.kill(os.getpid(), sig)  # delivered to the handler train() installed
        return loss

    monkeypatch.setattr(loop.Run, "train_step", step_then_signal)
    out = tmp_path / "run"
    err = fails(charrnn(text, out, "--steps", "50"), capsys, code)
    ckpt = out / "checkpoint.safetensors"
    name = signal.Signals(sig).name
    assert f"stopped by {name} at step 3; checkpoint saved: {ckpt} (continue with --resume" in err
    assert step_of(ckpt) == 3
    assert signal.getsignal(sig) is not loop._StopOnSignal._handle  # handlers restored
    monkeypatch.undo()
    assert main(charrnn(text, out, "--resume", ckpt, "--steps", "5")) == 0
    assert step_of(ckpt) == 5


def test_a_second_ctrl_c_stops_at_once_without_saving(text, tmp_path, monkeypatch, capsys):
    original = loop.Run.train_step

    def step_then_two_signals(self):
        loss = original(self)
        if self.step == 2:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return loss

    monkeypatch.setattr(loop.Run, "train_step", step_then_two_signals)
    err = fails(charrnn(text, tmp_path / "run", "--steps", "50"), capsys, 130)
    assert "stopped at once at step 2; no checkpoint was written" in err


# ---- resuming extends a run -------------------------------------------------------------------


def test_resume_extends_a_gpt_run_and_says_so(text, tmp_path, capsys):
    """Before: `train --resume ck --steps 4` after a 2-step run did nothing and exited 0, and
    --lr and --batch-size given with --resume were silently ignored. (1 step, then 2: the same.)"""
    out, ckpt = tmp_path / "run", tmp_path / "run" / "checkpoint.safetensors"
    args = ["train", "--text", text, "--batch-size", "1", "--max-length", "8", "--eval-every", "2"]
    args = [str(a) for a in [*args, "--checkpoint-minutes", "0", "--out", out]]
    assert main([*args, "--steps", "1"]) == 0
    capsys.readouterr()
    assert main([*args, "--resume", str(ckpt), "--steps", "2", "--lr", "5e-4"]) == 0
    printed = capsys.readouterr().out
    assert "resuming at step 1 with steps 1 → 2, peak_lr 0.001 → 0.0005, min_lr" in printed
    assert "the learning rates from here on follow the schedule of the new settings" in printed
    saved = load_run(ckpt, "gpt")
    assert saved.meta["step"] == 2 and saved.meta["settings"]["steps"] == 2
    assert saved.meta["history"]["resumed"] == [
        {"step": 1, "changes": {"steps": [1, 2], "peak_lr": [1e-3, 5e-4], "min_lr": [1e-4, 5e-5]}}
    ]
    err = fails([*args, "--resume", str(ckpt), "--steps", "3", "--batch-size", "2"], capsys, 2)
    assert "--batch-size would change the model or the data of the run being resumed" in err


def test_resume_refuses_model_flags_and_keeps_the_optimizer_changes(text, tmp_path, capsys):
    out, ckpt = tmp_path / "run", tmp_path / "run" / "checkpoint.safetensors"
    assert main(charrnn(text, out, "--steps", "3")) == 0
    err = fails(charrnn(text, out, "--resume", ckpt, "--steps", "5", "--hidden-size", "16", "--seq-length", "4"), capsys, 2)  # fmt: skip
    assert "--hidden-size, --seq-length would change the model or the data" in err
    same = charrnn(text, out, "--resume", ckpt, "--hidden-size", "8", "--steps", "5")  # no change
    assert main([*same, "--lr", "1e-3", "--clip", "1"]) == 0
    saved = load_run(ckpt, "charrnn")
    assert saved.meta["settings"]["lr"] == 1e-3 and saved.meta["settings"]["clip"] == 1.0
    assert saved.meta["history"]["resumed"] == [
        {"step": 3, "changes": {"steps": [3, 5], "lr": [2e-3, 1e-3], "clip": [5.0, 1.0]}}
    ]


def test_resume_to_fewer_steps_is_refused(text, tmp_path, capsys):
    """Before: char-RNN resume with --steps below the current step wrote "step 10 of 3"."""
    out, ckpt = tmp_path / "run", tmp_path / "run" / "checkpoint.safetensors"
    assert main(charrnn(text, out, "--steps", "6")) == 0
    err = fails(charrnn(text, out, "--resume", ckpt, "--steps", "3"), capsys, 2)
    assert f"{ckpt} is at step 6, past the 3 steps this run would take" in err
    before = ckpt.stat().st_mtime_ns
    assert main(charrnn(text, out, "--resume", ckpt)) == 0  # at its last step: nothing to do
    assert "already at step 6, the run's last: nothing to train" in capsys.readouterr().out
    assert ckpt.stat().st_mtime_ns == before


# ---- the divergence guard, a full disk ------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_divergence_stops_and_keeps_the_last_good_checkpoint(backend, text, tmp_path, capsys):
    """Before: --lr inf (GPT, torch) and --lr nan (char-RNN) trained to the end and saved a NaN
    checkpoint with exit 0. (Those values are now refused up front; a finite but huge lr makes the
    loss overflow to inf a step after it is applied.)"""
    out, ckpt = tmp_path / "run", tmp_path / "run" / "checkpoint.safetensors"
    assert main(charrnn(text, out, "--steps", "4", "--backend", backend)) == 0
    more = ["--resume", ckpt, "--steps", "20", "--lr", "1e37", "--checkpoint-every", "100"]
    err = fails(charrnn(text, out, *more), capsys, 1)
    diverged = re.search(
        r"training diverged at step (\d+) \(learning rate 1e\+37\): the loss is", err
    )
    assert diverged and int(diverged[1]) > 5, err
    assert f"the checkpoint of step 4 is kept: {ckpt}. Try a lower --lr." in err
    saved = load_run(ckpt)
    assert saved.meta["step"] == 4
    assert all(np.isfinite(a).all() for a in saved.params.values())


def test_a_non_finite_model_is_never_saved(tmp_path):
    """The library path: Run.save itself refuses."""
    settings = CharRNNSettings(hidden_size=8, emb_dim=4, batch_size=2)
    run = loop.Run(CharRNNTask(TEXT, settings), "numpy")
    run.engine.params()["lstm.weight_hh_l0"][0, 0] = np.nan
    with pytest.raises(loop.DivergenceError, match="lstm.weight_hh_l0 is not finite after step 0"):
        run.save(tmp_path / "c.safetensors")
    assert not (tmp_path / "c.safetensors").exists()


def test_a_full_disk_stops_with_one_line_and_keeps_the_last_checkpoint(text, tmp_path, monkeypatch, capsys):  # fmt: skip
    out, ckpt = tmp_path / "run", tmp_path / "run" / "checkpoint.safetensors"
    calls, fsync = [], os.fsync

    def fsync_then_full(fd):
        calls.append(fd)
        if len(calls) > 1:  # the first checkpoint fits, the second does not
            raise OSError(errno.ENOSPC, "No space left on device")
        fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_then_full)
    err = fails(charrnn(text, out, "--steps", "9", "--checkpoint-every", "3"), capsys, 1)
    assert f"cannot write the checkpoint {ckpt}: No space left on device; the checkpoint of step 3 is kept" in err  # fmt: skip
    monkeypatch.undo()
    assert step_of(ckpt) == 3
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []
    assert json.loads(json.dumps(load_run(ckpt).meta["history"]))  # readable, whole
