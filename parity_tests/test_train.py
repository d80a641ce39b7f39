"""The training loop: resumable bit for bit, deterministic, and the same in both backends."""

from __future__ import annotations

import numpy as np
import pytest

from twinlm.cli import main
from twinlm.training.lm import Trainer, TrainSettings

VOCAB = 67  # the "test" preset's vocabulary
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


def small_encode(text: str) -> list[int]:
    """Bytes folded into the test preset's vocabulary: fast, and needs no tokenizer files."""
    return [b % VOCAB for b in text.encode()]


TEXT = "".join(
    f"line {i}: the quick brown fox jumps over the lazy dog {i * i}\n" for i in range(60)
)


def settings(**kw) -> TrainSettings:
    base = dict(preset="test", max_length=8, stride=8, batch_size=3, steps=12, warmup_steps=3,
                eval_every=4, eval_batches=2, seed=5)  # fmt: skip
    return TrainSettings(**{**base, **kw})


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_resume_continues_bit_for_bit(tmp_path, backend):
    s = settings()
    straight = Trainer(backend, TEXT, s, small_encode)
    for _ in range(s.steps):
        straight.train_step()

    first = Trainer(backend, TEXT, s, small_encode)
    for _ in range(5):
        first.train_step()
    first.evaluate()
    path = first.save(tmp_path / "ckpt.safetensors")
    resumed = Trainer.resume(path, TEXT, small_encode)
    assert resumed.step == 5
    while resumed.step < s.steps:
        resumed.train_step()

    assert resumed.history.step_loss == straight.history.step_loss  # exact, not approximate
    for k, v in straight.backend.params().items():
        np.testing.assert_array_equal(resumed.backend.params()[k], v, err_msg=k)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_same_seed_same_losses_and_dropout_matters(backend):
    runs = []
    for seed in (5, 5, 6):
        t = Trainer(backend, TEXT, settings(seed=seed, steps=4), small_encode)
        runs.append([t.train_step() for _ in range(4)])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_backends_train_in_lockstep_float64(record_error):
    """Same init, batches, dropout masks and schedule: the loss curves agree to rounding."""
    s = settings(dtype="float64", steps=10)
    losses = {}
    for backend in ("numpy", "torch"):
        t = Trainer(backend, TEXT, s, small_encode)
        assert t.cfg["drop_rate"] > 0  # the masks are replayed, not skipped
        losses[backend] = np.array([t.train_step() for _ in range(s.steps)])
    gap = float(np.max(np.abs(losses["numpy"] - losses["torch"]) / np.abs(losses["torch"])))
    record_error("trainer numpy vs torch", "loss, 10 steps (f64)", gap, 1e-9)
    assert losses["numpy"][-1] < losses["numpy"][0]  # it learns


def test_resume_rejects_a_different_text(tmp_path):
    t = Trainer("numpy", TEXT, settings(), small_encode)
    t.train_step()
    path = t.save(tmp_path / "c.safetensors")
    with pytest.raises(ValueError, match="text differs"):
        Trainer.resume(path, TEXT.upper(), small_encode)


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="max_length"):
        Trainer("numpy", TEXT, settings(max_length=100), small_encode)
    with pytest.raises(ValueError, match="backend"):
        Trainer("jax", TEXT, settings(), small_encode)
    with pytest.raises(ValueError, match="fewer than one batch"):
        Trainer("numpy", TEXT[:200], settings(batch_size=50), small_encode)


def test_cli_train_writes_checkpoint_and_plot_then_resumes(tmp_path, capsys):
    text = tmp_path / "story.txt"
    text.write_text(TEXT * 3, encoding="utf-8")
    out = tmp_path / "run"
    args = ["train", "--backend", "torch", "--text", str(text), "--preset", "tiny", "--steps", "2",
            "--batch-size", "1", "--max-length", "16", "--eval-every", "1", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert (out / "loss.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "val loss" in printed and "ppl" in printed
    more = ["train", "--text", str(text), "--resume", str(out / "checkpoint.safetensors"),
            "--out", str(out)]  # fmt: skip
    assert main(more) == 0  # already at its last step: evaluates nothing new, rewrites outputs
