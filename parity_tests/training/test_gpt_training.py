"""Training trajectories: NumPy GPT + NumPy AdamW vs torch_impl GPT + torch.optim.AdamW.

Same init (the shared seeded initializer), same batches, 100 steps with the schedule (warmup,
cosine decay), global-norm clipping and weight decay on, dropout off. The data is learnable
(a noisy affine recurrence over the vocabulary), so the loss falls far below ln V and the
parameters travel far from the init: agreement at the end is not agreement at the start.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import numpy_impl
import torch_impl
from twinlm.parity.harness import Float32Runs, rel_error
from twinlm.shared.config import get_config
from twinlm.training.schedule import lr_at

# qkv_bias off, as in the book's training config. With it on, the key bias gets a gradient that
# is zero in exact arithmetic, so each backend feeds Adam its own rounding noise there: measured,
# the key biases end at ~5e-13 in both and differ by 100 % (every other tensor agrees to 1e-14).
# That gradient is checked in test_gpt_model.py instead.
CFG = get_config("test", drop_rate=0.0, qkv_bias=False)  # vocab 67, emb 16, 2 layers, 2 heads
B, SEQ, STEPS = 4, 12, 100
SCHEDULE = dict(peak_lr=1e-2, warmup_steps=10, total_steps=STEPS, min_lr=1e-3)
MAX_NORM = 1.0
WEIGHT_DECAY = 0.1
TOL_TRAJECTORY_FLOAT64 = 1e-9
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


def _batches(seed: int = 0):
    """STEPS batches of (inputs, next-token targets): x[t+1] = (5 x[t] + 3) mod V, 10 % noise."""
    rng = np.random.default_rng(seed)
    V = CFG["vocab_size"]
    out = []
    for _ in range(STEPS):
        seq = np.empty((B, SEQ + 1), dtype=np.int64)
        seq[:, 0] = rng.integers(0, V, B)
        for t in range(SEQ):
            seq[:, t + 1] = (5 * seq[:, t] + 3) % V
        noisy = rng.random(seq.shape) < 0.1
        seq[noisy] = rng.integers(0, V, int(noisy.sum()))
        out.append((seq[:, :-1], seq[:, 1:]))
    return out


def _init(dtype) -> dict[str, np.ndarray]:
    """The shared seeded init rounded to float32, in dtype: float64 runs start where float32 ones
    do, so the float32 runs can be measured against them."""
    return {
        k: v.astype(dtype)
        for k, v in numpy_impl.GPTModel(CFG, seed=0, dtype=np.float32).params.items()
    }


def _train_numpy(batches, dtype):
    model = numpy_impl.GPTModel(CFG, seed=0, dtype=dtype)
    model.load_state_dict(_init(dtype))
    opt = numpy_impl.AdamW(model.params, lr=0.0, weight_decay=WEIGHT_DECAY)
    losses, norms = [], []
    for step, (x, y) in enumerate(batches):
        loss, grads = model.loss_and_grads(x, y)
        norms.append(numpy_impl.clip_grad_norm(grads, MAX_NORM))
        opt.lr = lr_at(step, **SCHEDULE)
        opt.step(grads)
        losses.append(loss)
    return np.array(losses), np.array(norms), model.params


def _train_torch(batches, dtype):
    model = torch_impl.GPTModel(CFG, seed=0, dtype=dtype).eval()  # eval: dropout off
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    model.load_state_dict({k: torch.from_numpy(v) for k, v in _init(np_dtype).items()})
    opt = torch.optim.AdamW(model.parameters(), lr=0.0, weight_decay=WEIGHT_DECAY, foreach=False)
    losses, norms = [], []
    for step, (x, y) in enumerate(batches):
        opt.zero_grad()
        logits = model(torch.from_numpy(x))
        loss = F.cross_entropy(logits.flatten(0, 1), torch.from_numpy(y).flatten())
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM, foreach=False)
        norms.append(float(norm))
        for group in opt.param_groups:
            group["lr"] = lr_at(step, **SCHEDULE)
        opt.step()
        losses.append(loss.item())
    params = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    return np.array(losses), np.array(norms), params


@pytest.fixture(scope="module")
def batches():
    return _batches()


@pytest.fixture(scope="module")
def numpy64(batches):
    """NumPy's float64 run (losses, norms, params) and the seconds it took; shared by both tests."""
    start = time.perf_counter()
    return _train_numpy(batches, np.float64), time.perf_counter() - start


def test_training_trajectory_float64(batches, numpy64, record_error):
    (losses, norms, params), numpy_s = numpy64
    start = time.perf_counter()
    t_losses, t_norms, t_params = _train_torch(batches, torch.float64)
    print(f"\n100 steps: NumPy {numpy_s:.2f} s, torch {time.perf_counter() - start:.2f} s")

    # The run is a real one: clipping fires, and the loss falls far below ln V.
    assert (norms > MAX_NORM).sum() >= 10
    assert losses[0] == pytest.approx(math.log(CFG["vocab_size"]), rel=0.01)
    assert losses[-10:].mean() < 0.5 * losses[0]
    init = numpy_impl.GPTModel(CFG, seed=0, dtype=np.float64).params
    assert max(rel_error(params[k], init[k]) for k in init) > 0.1

    loss_gap = float(np.max(np.abs(losses - t_losses) / np.abs(t_losses)))
    norm_gap = float(np.max(np.abs(norms - t_norms) / t_norms))
    param_gap = max(rel_error(params[k], t_params[k]) for k in t_params)
    record_error("GPT training", "loss, 100 steps (f64)", loss_gap, TOL_TRAJECTORY_FLOAT64)
    record_error("GPT training", "grad norm, 100 steps (f64)", norm_gap, TOL_TRAJECTORY_FLOAT64)
    record_error("GPT training", "final params (f64)", param_gap, TOL_TRAJECTORY_FLOAT64)


def test_training_trajectory_float32(batches, numpy64, record_float32):
    """NumPy's float32 run against the float64 one from the same (rounded) init, torch_impl's
    float32 run with torch.optim.AdamW as the reference (the float32 standard in
    twinlm/parity/harness.py): the 100 losses, and the final parameters."""
    losses, _, params = _train_numpy(batches, np.float32)
    t_losses, _, t_params = _train_torch(batches, torch.float32)
    (exact_losses, _, exact_params), _ = numpy64
    assert all(p.dtype == np.float32 for p in params.values())
    assert losses[-10:].mean() < 0.5 * losses[0]
    runs = Float32Runs()
    runs["numpy", "losses"].add([losses], [t_losses], [exact_losses])
    runs["numpy", "final params"].add(params, t_params, exact_params)
    record_float32("GPT training, 100 steps", runs)
