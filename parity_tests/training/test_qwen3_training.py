"""Training a Qwen3: 100 AdamW steps NumPy vs torch_impl from the same init on the same batches
(float64 ≤ 1e-9 all the way), the one training loop in lockstep (`twinlm train --arch qwen3`), and
the decapitated Qwen3 classifier: NumPy vs torch_impl for every trainable choice, and against a
reference built on transformers' Qwen3Model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hf_qwen3 import float64_internals, hf_model, hf_params

import numpy_impl
import torch_impl
from twinlm.cli import main as cli_main
from twinlm.parity.harness import rel_error
from twinlm.shared.classifier import trainable_keys
from twinlm.shared.config import get_config
from twinlm.training.lm import LMTask, TrainSettings
from twinlm.training.loop import Run
from twinlm.training.schedule import lr_at

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py
CFG = get_config("qwen3-test")  # vocab 67, context 12, emb 16, 4 query / 2 kv heads, tied
B, SEQ, STEPS = 4, 12, 100
SCHEDULE = dict(peak_lr=1e-2, warmup_steps=10, total_steps=STEPS, min_lr=1e-3)


def _batches(seed: int = 0):
    """x[t+1] = (5 x[t] + 3) mod V with 10 % noise, as test_gpt_training.py."""
    rng = np.random.default_rng(seed)
    V, out = CFG["vocab_size"], []
    for _ in range(STEPS):
        seq = np.empty((B, SEQ + 1), dtype=np.int64)
        seq[:, 0] = rng.integers(0, V, B)
        for t in range(SEQ):
            seq[:, t + 1] = (5 * seq[:, t] + 3) % V
        noisy = rng.random(seq.shape) < 0.1
        seq[noisy] = rng.integers(0, V, int(noisy.sum()))
        out.append((seq[:, :-1], seq[:, 1:]))
    return out


def test_adamw_trajectory_numpy_vs_torch_float64(record_error):
    """numpy_impl.AdamW and clip_grad_norm against torch.optim.AdamW and torch's clip, 100 steps."""
    batches = _batches()
    model = numpy_impl.Qwen3Model(CFG, seed=0, dtype=np.float64)
    opt = numpy_impl.AdamW(model.params, lr=0.0, weight_decay=0.1)
    t_model = torch_impl.Qwen3Model(CFG, seed=0, dtype=torch.float64)
    t_opt = torch.optim.AdamW(t_model.parameters(), lr=0.0, weight_decay=0.1, foreach=False)
    losses, t_losses = [], []
    for step, (x, y) in enumerate(batches):
        loss, grads = model.loss_and_grads(x, y)
        numpy_impl.clip_grad_norm(grads, 1.0)
        opt.lr = lr_at(step, **SCHEDULE)
        opt.step(grads)
        losses.append(loss)

        t_opt.zero_grad()
        t_loss = F.cross_entropy(
            t_model(torch.from_numpy(x)).flatten(0, 1), torch.from_numpy(y).flatten()
        )
        t_loss.backward()
        torch.nn.utils.clip_grad_norm_(t_model.parameters(), 1.0, foreach=False)
        for group in t_opt.param_groups:
            group["lr"] = lr_at(step, **SCHEDULE)
        t_opt.step()
        t_losses.append(t_loss.item())
    losses, t_losses = np.array(losses), np.array(t_losses)
    assert losses[0] == pytest.approx(math.log(CFG["vocab_size"]), rel=0.01)
    assert losses[-10:].mean() < 0.5 * losses[0]  # it learns the recurrence
    init = numpy_impl.Qwen3Model(CFG, seed=0, dtype=np.float64).params
    assert max(rel_error(model.params[k], init[k]) for k in init) > 0.1  # far from the init
    t_params = {k: v.detach().numpy() for k, v in t_model.named_parameters()}
    record_error(
        "qwen3 training",
        "loss, 100 steps (f64)",
        float(np.max(np.abs(losses - t_losses) / t_losses)),
        1e-9,
    )
    record_error("qwen3 training", "final params (f64)", max(rel_error(model.params[k], t_params[k]) for k in t_params), 1e-9)  # fmt: skip


def test_the_training_loop_runs_qwen3_in_lockstep(record_error):
    """LMTask with arch qwen3 through twinlm.training.loop, both backends, float64."""
    text = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(40))
    settings = TrainSettings(preset="qwen3-test", arch="qwen3", dtype="float64", max_length=8,
                             stride=8, batch_size=3, steps=6, warmup_steps=2, seed=5)  # fmt: skip
    task = LMTask(text, settings, lambda t: [b % CFG["vocab_size"] for b in t.encode()])
    assert task.batch(0).masks == {}  # dropout-free
    runs = {b: Run(task, b) for b in ("numpy", "torch")}
    losses = {b: np.array([r.train_step() for _ in range(settings.steps)]) for b, r in runs.items()}
    gap = float(np.max(np.abs(losses["numpy"] - losses["torch"]) / losses["torch"]))
    record_error("qwen3 training", "trainer loss, 6 steps (f64)", gap, 1e-9)
    with pytest.raises(ValueError, match="preset 'tiny' is not a qwen3 preset"):
        LMTask(text, TrainSettings(preset="tiny", arch="qwen3"), str.encode)


def test_cli_train_arch_qwen3(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("Every effort moves you. " * 200, encoding="utf-8")
    args = ["train", "--arch", "qwen3", "--preset", "qwen3-tiny", "--backend", "torch", "--text", str(text),
            "--steps", "2", "--batch-size", "1", "--max-length", "16", "--eval-every", "1", "--out", str(tmp_path / "r")]  # fmt: skip
    assert cli_main(args) == 0
    assert "val loss" in capsys.readouterr().out
    ckpt = tmp_path / "r" / "checkpoint.safetensors"
    assert cli_main(["generate", "--checkpoint", str(ckpt), "--max-new-tokens", "3"]) == 0
    assert "3 new tokens" in capsys.readouterr().err
    assert cli_main(["train", "--arch", "qwen3", "--drop-rate", "0.1", "--text", str(text)]) == 2
    assert "Qwen3 is dropout-free" in capsys.readouterr().err


# ---- the decapitated Qwen3 ---------------------------------------------------------------------


def _classifiers(trainable, position, k=None, dtype="float64"):
    backbone = hf_params(hf_model(CFG, seed=7))
    opts = dict(trainable=trainable, k=k, position=position, pad_id=0, seed=3, backbone=backbone)
    np_model = numpy_impl.Qwen3Classifier(CFG, dtype=np.dtype(dtype), **opts)
    t_model = torch_impl.Qwen3Classifier(CFG, dtype=getattr(torch, dtype), **opts)
    return np_model, t_model, backbone


def _texts(seed=2):
    rng = np.random.default_rng(seed)
    idx = rng.integers(1, CFG["vocab_size"], (4, 9))
    idx[1, 5:] = 0  # right padding with pad_id 0
    idx[3, 2:] = 0
    return idx, rng.integers(0, 2, 4)


@pytest.mark.parametrize(
    ("trainable", "position", "k"),
    [("last-block", "last", None), ("last-k", "last-non-pad", 2), ("head", "last-non-pad", None), ("all", "last", None)],
)  # fmt: skip
def test_classifier_numpy_matches_torch_and_transformers(trainable, position, k, record_error):
    """Class logits and the trainable gradients: NumPy, torch_impl, and transformers' Qwen3Model
    (float64 internals) topped with the same picked position, F.linear head."""
    np_model, t_model, backbone = _classifiers(trainable, position, k)
    idx, labels = _texts()
    loss, grads = np_model.loss_and_grads(idx, labels)
    logits = np_model.forward(idx)

    t_logits = t_model(torch.from_numpy(idx))
    t_loss = F.cross_entropy(t_logits, torch.from_numpy(labels))
    t_loss.backward()
    t_grads = {n: p.grad.numpy() for n, p in t_model.named_parameters() if p.requires_grad}
    assert sorted(t_grads) == sorted(grads) == sorted(trainable_keys(CFG, 2, trainable, k))

    ref_model = hf_model(CFG, seed=7).model  # transformers' Qwen3Model: body and model.norm
    head_w = torch.from_numpy(np_model.params["lm_head.weight"].copy()).requires_grad_()
    head_b = torch.from_numpy(np_model.params["lm_head.bias"].copy()).requires_grad_()
    with float64_internals():
        hidden = ref_model(torch.from_numpy(idx)).last_hidden_state  # (B, T, C), normed
    pos = [8, 4, 8, 1] if position == "last-non-pad" else [8] * 4
    ref_logits = F.linear(hidden[torch.arange(4), pos], head_w, head_b)
    F.cross_entropy(ref_logits, torch.from_numpy(labels)).backward()
    ref_grads = {
        f"model.{n}": p.grad for n, p in ref_model.named_parameters() if p.grad is not None
    }
    ref_grads |= {"lm_head.weight": head_w.grad, "lm_head.bias": head_b.grad}

    record_error(
        "qwen3 classifier",
        "logits numpy/torch_impl (f64)",
        rel_error(logits, t_logits.detach().numpy()),
        1e-10,
    )
    record_error(
        "qwen3 classifier",
        "logits numpy/transformers (f64)",
        rel_error(logits, ref_logits.detach().numpy()),
        1e-10,
    )
    scale = max(float(np.abs(g).max()) for g in t_grads.values())
    for name, g in grads.items():
        record_error(
            "qwen3 classifier",
            "grads numpy/torch_impl (f64)",
            rel_error(g, t_grads[name], 1e-3 * scale),
            1e-10,
        )
        record_error("qwen3 classifier", "grads numpy/transformers (f64)", rel_error(g, ref_grads[name].numpy(), 1e-3 * scale), 1e-10)  # fmt: skip
    assert float(loss) == pytest.approx(t_loss.item(), rel=1e-12)


def test_classifier_keys_options_and_refusals():
    np_model, t_model, _ = _classifiers("last-block", "last")
    assert list(np_model.params) == list(dict(t_model.named_parameters()))
    assert np_model.params["lm_head.weight"].shape == (2, 16) and "lm_head.bias" in np_model.params
    assert np_model.trainable_keys[-3:] == ["model.norm.weight", "lm_head.weight", "lm_head.bias"]
    assert numpy_impl.Qwen3Classifier(get_config("qwen3-0.6b", n_layers=1, vocab_size=151936, emb_dim=8, head_dim=2, hidden_dim=8, n_heads=2, n_kv_heads=1), seed=0).pad_id == 151643  # fmt: skip
    with pytest.raises(ValueError, match="Qwen3 is dropout-free"):
        np_model.forward(np.zeros((1, 3), dtype=np.int64), dropout_masks={"drop_emb": np.ones(1)})
    with pytest.raises(ValueError, match=r"pad_id must be a token id in \[0, vocab_size=67\)"):
        numpy_impl.Qwen3Classifier(CFG)  # Qwen3's pad id 151643 does not fit a 67-token vocabulary
