"""The one training loop (twinlm/training/loop.py) over its three tasks — the GPT, the char-RNN and
the classifier — in both backends: a run stopped, saved and resumed continues bit for bit, and
checkpoints written in the layout twinlm used before the loop was shared still load. On the GPT
task: the same seed gives the same losses, the two backends train in lockstep in float64, bad
settings are named, and `twinlm train` writes its checkpoint and plot, then resumes."""

from __future__ import annotations

import numpy as np
import pytest

from twinlm.cli import main
from twinlm.data.spam import encode_dataset, make_synthetic_spam, random_split
from twinlm.training import charrnn, classify, lm
from twinlm.training.checkpoint import load_checkpoint, load_run, save_checkpoint
from twinlm.training.loop import Run

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py

TEXT = "".join(f"{i}: the quick brown fox jumps over the lazy dog, {i * i}.\n" for i in range(40))


def fold(text: str) -> list[int]:
    """Bytes folded into the test preset's 67-token vocabulary: no tokenizer files needed."""
    return [b % 67 for b in text.encode()]


def spam_data():
    words = sorted({w for _, t in make_synthetic_spam(400) for w in t.lower().split()})
    vocab = {w: i for i, w in enumerate(words)}

    def encode(text):
        return [vocab[w] for w in text.lower().split()]

    train, val, test = random_split(make_synthetic_spam(80, seed=0), 0.7, 0.1, seed=1)
    first = encode_dataset(train, None, len(vocab), encode)
    rest = [encode_dataset(rows, first.max_length, len(vocab), encode) for rows in (val, test)]
    return (first, *rest), len(vocab), encode


def gpt_settings(**kw) -> lm.TrainSettings:
    """The GPT task's small settings, any of them replaced by kw."""
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
    return lm.TrainSettings(**{**base, **kw})


def gpt_run(backend: str, s: lm.TrainSettings, text: str = TEXT) -> Run:
    return Run(lm.LMTask(text, s, fold), backend)


def gpt_task(**kw):
    s = gpt_settings(**kw)
    return lm.LMTask(TEXT, s, fold), lambda path: lm.resume(path, TEXT, fold)


def charrnn_task(**kw):
    s = charrnn.CharRNNSettings(
        emb_dim=8,
        hidden_size=16,
        drop_rate=0.25,
        batch_size=4,
        seq_length=48,
        steps=14,
        clip=1.0,
        eval_every=50,
        seed=7,
        **kw,
    )
    return charrnn.CharRNNTask(TEXT, s), lambda path: charrnn.resume(path, TEXT)


def classifier_task(**kw):
    data, pad, encode = spam_data()
    cfg = dict(vocab_size=pad + 1, context_length=data[0].max_length, n_layers=2)
    s = classify.ClassifySettings(
        preset="test",
        trainable="last-block",
        position="last-non-pad",
        pad_id=pad,
        drop_rate=0.1,
        epochs=3,
        batch_size=8,
        lr=1e-3,
        eval_every=3,
        eval_batches=1,
        seed=3,
        overrides=cfg,
        **kw,
    )
    return classify.ClassifyTask(s, encode, data), lambda p: classify.resume(p, None, encode, data)


TASKS = {"gpt": gpt_task, "charrnn": charrnn_task, "classifier": classifier_task}


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("kind", list(TASKS))
def test_resume_continues_bit_for_bit(tmp_path, kind, backend):
    """Steps 0–4, save, resume into a fresh task and model, steps 5–end: the same step losses, the
    same parameters and (char-RNN) the same carried state as a run that never stopped."""
    task, resume = TASKS[kind]()
    assert task.total_steps > task.per_epoch or kind == "gpt"  # crosses an epoch after resuming
    straight = Run(task, backend)
    for _ in range(task.total_steps):
        straight.train_step()

    first = Run(TASKS[kind]()[0], backend)
    for _ in range(5):
        first.train_step()
    first.evaluate()
    path = first.save(tmp_path / "ckpt.safetensors")
    resumed = resume(path)
    assert resumed.step == 5 and resumed.engine.backend == backend
    while resumed.step < task.total_steps:
        resumed.train_step()

    assert resumed.history["step_loss"] == straight.history["step_loss"]  # exact, not approximate
    for k, v in straight.engine.params().items():
        np.testing.assert_array_equal(resumed.engine.params()[k], v, err_msg=k)
    for a, b in zip(resumed.carry or (), straight.carry or (), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", list(TASKS))
def test_resume_refuses_other_data(tmp_path, kind):
    task, _ = TASKS[kind]()
    run = Run(task, "numpy")
    run.train_step()
    path = run.save(tmp_path / "c.safetensors")
    saved = load_run(path, kind)
    saved.meta["data"] = "0" * 16
    with pytest.raises(ValueError, match="data differs"):
        Run(TASKS[kind]()[0], "numpy").restore(saved, task.fingerprint)
    other = "gpt" if kind != "gpt" else "charrnn"
    with pytest.raises(ValueError, match=f"is a {kind} checkpoint, not a {other} one"):
        load_run(path, other)


def _rewrite(path, tensors: dict, meta: dict):
    return save_checkpoint(path, tensors, meta)


def test_checkpoints_written_before_the_shared_loop_still_load(tmp_path):
    """The layouts of the per-model trainers: a char-RNN's carry.h / carry.c and history "chars",
    a GPT's history "tokens", a classifier's unprefixed parameters without optimizer state."""
    task, resume = charrnn_task()
    run = Run(task, "torch")
    for _ in range(3):
        run.train_step()
    run.evaluate()
    tensors, meta = load_checkpoint(run.save(tmp_path / "new.safetensors"))
    tensors["carry.h"], tensors["carry.c"] = tensors.pop("carry.0"), tensors.pop("carry.1")
    meta["history"]["chars"] = meta["history"].pop("seen")
    old = resume(_rewrite(tmp_path / "old.safetensors", tensors, meta))
    assert old.step == 3 and old.history["seen"] == [3 * task.seen_per_step]
    for a, b in zip(old.carry, run.carry, strict=True):
        np.testing.assert_array_equal(a, b)
    assert (
        old.train_step()
        == Run(task, "torch").restore(load_run(tmp_path / "new.safetensors")).train_step()
    )

    task, resume = gpt_task()
    run = Run(task, "numpy")
    run.train_step()
    run.evaluate()
    tensors, meta = load_checkpoint(run.save(tmp_path / "gpt.safetensors"))
    meta["history"]["tokens"] = meta["history"].pop("seen")
    assert resume(_rewrite(tmp_path / "gpt_old.safetensors", tensors, meta)).history["seen"]

    task, _ = classifier_task()
    run = Run(task, "numpy")
    run.train_step()
    tensors, meta = load_checkpoint(run.save(tmp_path / "clf.safetensors"))
    params = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    meta.pop("opt_steps")
    old = _rewrite(tmp_path / "clf_old.safetensors", params, meta)
    engine, loaded_meta = classify.load_classifier(old, "torch")
    for k, v in run.engine.params().items():
        np.testing.assert_array_equal(engine.params()[k], v, err_msg=k)
    assert loaded_meta["labels"] == ["ham", "spam"]


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_same_seed_same_losses_and_dropout_matters(backend):
    runs = []
    for seed in (5, 5, 6):
        run = gpt_run(backend, gpt_settings(seed=seed, steps=4))
        runs.append([run.train_step() for _ in range(4)])
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_backends_train_in_lockstep_float64(record_error):
    """Same init, batches, dropout masks and schedule: the loss curves agree to rounding."""
    s = gpt_settings(dtype="float64", steps=10)
    losses = {}
    task = lm.LMTask(TEXT, s, fold)
    assert task.cfg["drop_rate"] > 0 and task.batch(0).masks  # the masks are replayed, not skipped
    for backend in ("numpy", "torch"):
        run = Run(task, backend)
        losses[backend] = np.array([run.train_step() for _ in range(s.steps)])
    gap = float(np.max(np.abs(losses["numpy"] - losses["torch"]) / np.abs(losses["torch"])))
    record_error("trainer numpy vs torch", "loss, 10 steps (f64)", gap, 1e-9)
    assert losses["numpy"][-1] < losses["numpy"][0]  # it learns


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="max_length"):
        gpt_run("numpy", gpt_settings(max_length=100))
    with pytest.raises(ValueError, match="backend"):
        gpt_run("jax", gpt_settings())
    with pytest.raises(ValueError, match="fewer than one batch"):
        gpt_run("numpy", gpt_settings(batch_size=50), TEXT[:200])


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
