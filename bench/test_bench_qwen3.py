"""Qwen3 on every backend: one decoder layer forward and forward+backward (NumPy, torch_impl, and
the same layer from torch built-ins: F.rms_norm, F.scaled_dot_product_attention with enable_gqa,
F.silu, F.linear), and greedy generation with the KV cache at the qwen3-0.6b shape (596M random
weights, float32). Memory of that shape per backend: `python -m bench.qwen3_memory`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import numpy_impl
import torch_impl
from bench.harness import BACKENDS, describe, device_or_skip, synchronizer, time_call
from bench.test_bench_models import TORCH_DTYPES, _torch_fwd_bwd
from bench.workloads import (
    BATCH,
    DTYPES,
    HEAD_DIM,
    MODES,
    QWEN3_GEN_PROMPT,
    QWEN3_GEN_TOKENS,
    qwen3_block_config,
    qwen3_block_flops,
)
from twinlm.generation import generate
from twinlm.parity.opcases_qwen3 import qwen3_block_builtin
from twinlm.shared.config import get_config
from twinlm.shared.init import init_qwen3_params
from twinlm.shared.naming import qwen3_param_shapes, sub_dict

BUILTIN = "torch-builtin"  # the layer from torch's fused built-ins, on the CPU


@pytest.mark.parametrize("backend", [*BACKENDS[:2], BUILTIN, *BACKENDS[2:]])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_qwen3_block(benchmark, bench_time, threads, model_size, dtype, mode, backend):
    """One Qwen3 decoder layer (RMSNorm, GQA with QK-norm and RoPE, SwiGLU), batch BATCH."""
    device = "cpu" if backend == BUILTIN else device_or_skip(backend, dtype)
    T_, C = model_size
    cfg = qwen3_block_config(C)
    H, Hkv = cfg["n_heads"], cfg["n_kv_heads"]
    params = sub_dict(init_qwen3_params(cfg, 0, np.dtype(dtype)), "model.layers.0.")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, T_, C)).astype(dtype)
    dy = rng.standard_normal((BATCH, T_, C)).astype(dtype)
    cos, sin = numpy_impl.rope_angles(np.arange(T_), HEAD_DIM, cfg["rope_base"], dtype)
    backward = mode == "fwd+bwd"
    if backend == "numpy":

        def fn():
            y, cache = numpy_impl.qwen3_block_forward(x, params, H, Hkv, cos, sin)
            if backward:
                numpy_impl.qwen3_block_backward(dy, cache)

    else:
        layer = torch_impl.Qwen3DecoderLayer(cfg).to(TORCH_DTYPES[dtype])
        layer.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
        layer.to(device)
        cos_t, sin_t = torch.from_numpy(cos).to(device), torch.from_numpy(sin).to(device)
        if backend == BUILTIN:
            named = dict(layer.named_parameters())
            extra = {"n_heads": torch.tensor(H), "n_kv_heads": torch.tensor(Hkv)}

            def forward(x_):
                (y,) = qwen3_block_builtin({"x": x_, "cos": cos_t, "sin": sin_t, **extra, **named})
                return y

        else:

            def forward(x_):
                return layer(x_, cos_t, sin_t)

        fn = _torch_fwd_bwd(forward, layer, x, dy, device, backward)
    fwd, bwd = qwen3_block_flops(BATCH, T_, cfg)
    describe(benchmark, component="qwen3_block", mode=mode, dtype=dtype, backend=backend, B=BATCH,
             T=T_, C=C, flops=fwd + bwd if backward else fwd, threads=threads,
             shape=f"x ({BATCH}, {T_}, {C}), {H} query / {Hkv} kv heads of {HEAD_DIM}, "
                   f"SwiGLU {cfg['hidden_dim']}")  # fmt: skip
    time_call(benchmark, fn, bench_time)


@pytest.fixture(scope="module")
def qwen3_06b():
    """The qwen3-0.6b config and random float32 weights for it (N(0, 0.02²), norms 1), drawn once."""
    cfg = get_config("qwen3-0.6b")
    rng = np.random.default_rng(0)
    params = {}
    for name, shape in qwen3_param_shapes(cfg).items():
        if name.endswith("norm.weight"):
            params[name] = np.ones(shape, dtype=np.float32)
        else:
            params[name] = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
    return cfg, params


@pytest.mark.parametrize("backend", BACKENDS)
def test_qwen3_generate(benchmark, bench_time, threads, backend, qwen3_06b):
    """QWEN3_GEN_TOKENS greedy tokens after a QWEN3_GEN_PROMPT-token prompt with the KV cache,
    twinlm.generation.generate over each backend's Qwen3Model; tokens/s = tokens / time."""
    device = device_or_skip(backend, "float32")
    cfg, params = qwen3_06b
    idx = np.random.default_rng(0).integers(0, cfg["vocab_size"], (1, QWEN3_GEN_PROMPT))
    if backend == "numpy":
        model = numpy_impl.Qwen3Model(cfg, seed=None, kernels="fast")  # zeros: replaced below
        model.params.update(params)

        def fn():
            generate(model, idx, QWEN3_GEN_TOKENS)

    else:
        sync = synchronizer(device)
        tmodel = torch_impl.Qwen3Model(cfg, seed=None)
        tmodel.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
        tmodel.to(device).eval()

        def fn():
            generate(tmodel, idx, QWEN3_GEN_TOKENS)
            sync()

    n_params = sum(v.size for v in params.values())
    describe(benchmark, component="qwen3_generate[kv_cache]", mode=f"{QWEN3_GEN_TOKENS} tokens",
             dtype="float32", backend=backend, B=1, T=QWEN3_GEN_PROMPT, C=cfg["emb_dim"], flops=None,
             threads=threads, shape=f"qwen3-0.6b shape, {n_params / 1e6:.0f}M random weights, "
                                    f"prompt (1, {QWEN3_GEN_PROMPT})")  # fmt: skip
    time_call(benchmark, fn, bench_time)
