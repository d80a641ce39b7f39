"""The training-step race: one full GPT-2 124M step (forward, cross entropy, backward, clip to norm
1.0, AdamW) in float32, at the shapes of bench/workloads.py's TRAIN_STEP_SHAPES, per contender:

    numpy          numpy_impl.GPTModel.loss_and_grads, clip_coef, AdamW.step(grad_scale=…) on the
                   fast path, kernels="fast" (what twinlm's NumpyEngine does)
    numpy-reference  the same on numpy_impl's reference ops (kernels="reference"): what the fast
                   path's tricks buy
    torch-cpu      torch_impl.GPTModel (elementary ops, autograd), torch_impl.clip_grad_norm and
                   torch_impl.AdamW (what twinlm's TorchEngine does)
    torch-builtin  bench/gpt_builtin.py (nn.Linear, F.scaled_dot_product_attention, F.layer_norm,
                   F.gelu, F.cross_entropy), torch.nn.utils.clip_grad_norm_, torch.optim.AdamW
    torch-compile  the same under torch.compile (skipped without a C++ compiler)
    torch-cuda / torch-mps   torch_impl on the GPU (skipped where absent)

All start from the same initial weights (twinlm.shared.init). Besides the time, each benchmark
records the peak resident set size during its steps (`peak_rss_mib`, reset once the model is
built) and the process's RSS before the model existed (`rss_start_mib`): their difference is
what the step costs in memory (model, gradients, AdamW's state, activations); and the minor page
faults of a step (`faults_per_step`, the median over the steps after the warm-up): pages the kernel
zeroed because the step allocated them afresh.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import numpy_impl
import torch_impl
from bench.gpt_builtin import BuiltinGPT
from bench.harness import (
    BACKENDS,
    counting_faults,
    describe,
    device_or_skip,
    faults_per_call,
    peak_rss_mib,
    reset_peak_rss,
    synchronizer,
    time_call,
)
from bench.workloads import TRAIN_STEP_SHAPES, train_step_config, train_step_flops
from twinlm.shared.init import init_gpt_params
from twinlm.shared.naming import gpt_param_shapes

BUILTIN, COMPILE, NUMPY_REFERENCE = "torch-builtin", "torch-compile", "numpy-reference"
CONTENDERS = [BACKENDS[0], NUMPY_REFERENCE, BACKENDS[1], BUILTIN, COMPILE, *BACKENDS[2:]]
LR, WEIGHT_DECAY, MAX_NORM = 1e-4, 0.1, 1.0


def compiler_or_skip() -> None:
    """torch.compile's CPU backend (inductor) writes and compiles C++."""
    if not (os.environ.get("CXX") or any(shutil.which(c) for c in ("g++", "clang++", "c++"))):
        pytest.skip("torch-compile: no C++ compiler here (torch.compile's inductor needs one)")


def _numpy_step(cfg, idx, targets, kernels: str):
    model = numpy_impl.GPTModel(cfg, seed=0, dtype=np.float32, kernels=kernels)
    opt = numpy_impl.AdamW(model.params, lr=LR, weight_decay=WEIGHT_DECAY, kernels=kernels)

    def fn():
        _, grads = model.loss_and_grads(idx, targets)
        _, coef = numpy_impl.clip_coef(grads, MAX_NORM)
        opt.step(grads, grad_scale=coef)  # the clip, fused into AdamW's pass

    return fn


def _torch_impl_step(cfg, idx, targets, device):
    model = torch_impl.GPTModel(cfg, seed=0, dtype=torch.float32).to(device)
    params = dict(model.named_parameters())
    opt = torch_impl.AdamW(params, lr=LR, weight_decay=WEIGHT_DECAY)
    idx_t, targets_t = (torch.from_numpy(a).to(device) for a in (idx, targets))
    sync = synchronizer(device)

    def fn():
        for p in params.values():
            p.grad = None
        torch_impl.cross_entropy(model(idx_t), targets_t).backward()
        grads = {k: p.grad for k, p in params.items()}
        torch_impl.clip_grad_norm(grads, MAX_NORM)
        opt.step(grads)
        sync()

    return fn


def _builtin_step(cfg, idx, targets, compiled: bool):
    model = BuiltinGPT(cfg)
    model.load_state_dict(
        {k: torch.from_numpy(v) for k, v in init_gpt_params(cfg, 0, np.float32).items()}
    )
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    forward = torch.compile(model) if compiled else model
    idx_t, targets_t = torch.from_numpy(idx), torch.from_numpy(targets)

    def fn():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(forward(idx_t).flatten(0, 1), targets_t.flatten()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)
        opt.step()

    return fn


@pytest.mark.parametrize("backend", CONTENDERS)
@pytest.mark.parametrize("shape", list(TRAIN_STEP_SHAPES))
def test_train_step(benchmark, bench_time, threads, shape, backend):
    if backend in (BUILTIN, COMPILE, NUMPY_REFERENCE):
        device = None if backend == NUMPY_REFERENCE else "cpu"
        if backend == COMPILE:
            compiler_or_skip()
    else:
        device = device_or_skip(backend, "float32")
    B, T, _ = TRAIN_STEP_SHAPES[shape]
    cfg = train_step_config(shape)
    if benchmark.disabled:  # `pytest bench/` without timing: the same code on a tiny model
        cfg, B, T = {**cfg, "vocab_size": 97, "emb_dim": 32, "n_heads": 2, "n_layers": 2}, 2, 8
    rng = np.random.default_rng(0)
    idx = rng.integers(0, cfg["vocab_size"], (B, T))
    targets = rng.integers(0, cfg["vocab_size"], (B, T))
    rss_start = reset_peak_rss()
    if backend in ("numpy", NUMPY_REFERENCE):
        fn = _numpy_step(cfg, idx, targets, "fast" if backend == "numpy" else "reference")
    elif backend in (BUILTIN, COMPILE):
        fn = _builtin_step(cfg, idx, targets, compiled=backend == COMPILE)
    else:
        fn = _torch_impl_step(cfg, idx, targets, device)
    reset_peak_rss()  # from here: the model as built, AdamW's state, the steps' activations
    if backend == COMPILE and not benchmark.disabled:
        fn()  # compiles (minutes); time_call's own warm-up call then runs compiled code
    n_params = sum(int(np.prod(s)) for s in gpt_param_shapes(cfg).values())
    describe(benchmark, component=f"train_step {shape}", mode="step", dtype="float32",
             backend=backend, B=B, T=T, C=cfg["emb_dim"], flops=train_step_flops(shape),
             threads=threads,
             shape=f"GPT-2 124M ({n_params / 1e6:.0f}M parameters with the untied head), "
                   f"idx ({B}, {T}), context {cfg['context_length']}, clip 1.0, AdamW")  # fmt: skip
    fn, faults = counting_faults(fn)
    time_call(benchmark, fn, bench_time)
    benchmark.extra_info.update(tokens=B * T, rss_start_mib=rss_start, peak_rss_mib=peak_rss_mib(),
                                faults_per_step=faults_per_call(faults))  # fmt: skip
