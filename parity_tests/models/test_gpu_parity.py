"""torch_impl on a GPU against NumPy on the CPU. Skipped cleanly where no CUDA/MPS device exists
(CI never has one); run it on a machine with a GPU to check the device path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import numpy_impl
import torch_impl
from twinlm.parity.harness import (
    TOL_FLOAT64,
    grads_error,
    outs_error,
    random_douts,
    run_numpy,
    run_torch,
)
from twinlm.parity.opcases import CASES
from twinlm.shared.config import get_config

DEVICES = [
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
    ),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_op_on_gpu_matches_numpy_float64(case, device, record_error):
    rng = np.random.default_rng(0)
    inputs = case.sample(rng, np.float64, case.dims)
    douts = random_douts(rng, run_numpy(case, inputs)[0])
    outs, grads = run_numpy(case, inputs, douts)
    gpu_outs, gpu_grads = run_torch(case, case.torch_impl, inputs, douts, device=device)
    record_error(case.name, f"{device} vs numpy, f64 fwd", outs_error(gpu_outs, outs), TOL_FLOAT64)
    record_error(
        case.name, f"{device} vs numpy, f64 grad", grads_error(gpu_grads, grads), TOL_FLOAT64
    )


@pytest.mark.parametrize("device", DEVICES)
def test_gpt_on_gpu_matches_numpy_float64(device, record_error):
    cfg = get_config("test", drop_rate=0.0)
    np_model = numpy_impl.GPTModel(cfg, seed=3, dtype=np.float64)
    t_model = torch_impl.GPTModel(cfg, seed=3, dtype=torch.float64).to(device).eval()
    rng = np.random.default_rng(1)
    idx = rng.integers(0, cfg["vocab_size"], (2, cfg["context_length"]))
    targets = rng.integers(0, cfg["vocab_size"], idx.shape)
    loss, grads = np_model.loss_and_grads(idx, targets)
    logits = t_model(torch.from_numpy(idx).to(device))
    t_loss = torch_impl.cross_entropy(logits, torch.from_numpy(targets).to(device))
    t_loss.backward()
    t_grads = {k: p.grad.cpu().numpy() for k, p in t_model.named_parameters()}
    record_error(
        "GPTModel",
        f"{device} vs numpy, f64 loss",
        abs(float(t_loss.detach()) - loss) / loss,
        TOL_FLOAT64,
    )
    record_error(
        "GPTModel", f"{device} vs numpy, f64 grads", grads_error(t_grads, grads), TOL_FLOAT64
    )


@pytest.mark.parametrize("device", DEVICES)
def test_qwen3_on_gpu_matches_numpy_float64(device, record_error):
    cfg = get_config("qwen3-test", tie_embeddings=False, attention_bias=True)
    np_model = numpy_impl.Qwen3Model(cfg, seed=3, dtype=np.float64)
    t_model = torch_impl.Qwen3Model(cfg, seed=3, dtype=torch.float64).to(device)
    rng = np.random.default_rng(1)
    idx = rng.integers(0, cfg["vocab_size"], (2, cfg["context_length"]))
    targets = rng.integers(0, cfg["vocab_size"], idx.shape)
    loss, grads = np_model.loss_and_grads(idx, targets)
    logits = t_model(torch.from_numpy(idx).to(device))
    t_loss = torch_impl.cross_entropy(logits, torch.from_numpy(targets).to(device))
    t_loss.backward()
    t_grads = {k: p.grad.cpu().numpy() for k, p in t_model.named_parameters()}
    record_error(
        "Qwen3Model", f"{device} vs numpy, f64 loss", abs(t_loss.item() - loss) / loss, TOL_FLOAT64
    )
    record_error(
        "Qwen3Model", f"{device} vs numpy, f64 grads", grads_error(t_grads, grads), TOL_FLOAT64
    )
