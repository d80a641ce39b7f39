"""The one training loop, on the GPT task: resumable bit for bit, deterministic, and the same in
both backends."""

from __future__ import annotations

import numpy as np
import pytest

from twinlm.cli import main
from twinlm.training.lm import LMTask, TrainSettings
from twinlm.training.loop import Run

VOCAB = 67  # the "test" preset's vocabulary
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


def small_encode(text: str) -> list[int]:
    """Bytes folded into the test preset's vocabulary: fast, and needs no tokenizer files."""
    return [b % VOCAB for b in text.encode()]


TEXT = "".join(
    f"line {i}: the quick brown fox jumps over the lazy dog {i * i}\n" for i in range(60)
)


def run_of(backend: str, s: TrainSettings, text: str = TEXT) -> Run:
    return Run(LMTask(text, s, small_encode), backend)


def settings(**kw) -> TrainSettings:
    base = dict(
        preset="test",
        max_length=8,
        stride=8,
        batch_size=3,
        steps=12,
        warmup_steps=3,
        eval_every=4,
        eval_batches=2,
        seed=5,
    )
    return TrainSettings(**{**base, **kw})


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_same_seed_same_losses_and_dropout_matters(backend):
    runs = []
    for seed in (5, 5, 6):
        run = run_of(backend, settings(seed=seed, steps=4))
        runs.append([run.train_step() for _ in range(4)])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_backends_train_in_lockstep_float64(record_error):
    """Same init, batches, dropout masks and schedule: the loss curves agree to rounding."""
    s = settings(dtype="float64", steps=10)
    losses = {}
    task = LMTask(TEXT, s, small_encode)
    assert task.cfg["drop_rate"] > 0 and task.batch(0).masks  # the masks are replayed, not skipped
    for backend in ("numpy", "torch"):
        run = Run(task, backend)
        losses[backend] = np.array([run.train_step() for _ in range(s.steps)])
    gap = float(np.max(np.abs(losses["numpy"] - losses["torch"]) / np.abs(losses["torch"])))
    record_error("trainer numpy vs torch", "loss, 10 steps (f64)", gap, 1e-9)
    assert losses["numpy"][-1] < losses["numpy"][0]  # it learns


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="max_length"):
        run_of("numpy", settings(max_length=100))
    with pytest.raises(ValueError, match="backend"):
        run_of("jax", settings())
    with pytest.raises(ValueError, match="fewer than one batch"):
        run_of("numpy", settings(batch_size=50), TEXT[:200])


def test_cli_train_writes_checkpoint_and_plot_then_resumes(tmp_path, capsys):
    text = tmp_path / "story.txt"
    text.write_text(TEXT * 3, encoding="utf-8")
    out = tmp_path / "run"
    args = [
        "train",
        "--backend",
        "torch",
        "--text",
        str(text),
        "--preset",
        "tiny",
        "--steps",
        "2",
        "--batch-size",
        "1",
        "--max-length",
        "16",
        "--eval-every",
        "1",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert (out / "loss.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "val loss" in printed and "ppl" in printed
    ckpt = out / "checkpoint.safetensors"
    more = ["train", "--text", str(text), "--resume", str(ckpt), "--out", str(out)]
    assert main(more) == 0  # already at its last step: evaluates nothing new, rewrites outputs
