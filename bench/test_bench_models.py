"""Model pieces on every backend: the multi-layer LSTM, the vanilla RNN, GRU and LSTM layers against
torch's own nn.RNN / GRU / LSTM, the transformer block, one GPT training step (forward + backward +
AdamW) and generation with and without a KV cache.

Each benchmark skips with a TODO while the code it times does not exist yet (keyed on the names
the two packages export), so it lights up by itself when that code lands.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import numpy_impl
import torch_impl
from bench.harness import BACKENDS, describe, device_or_skip, synchronizer, time_call, to_tensors
from bench.workloads import (
    ADAMW_FLOPS_PER_PARAM,
    BATCH,
    DTYPES,
    GPT_BATCH,
    LSTM_LAYERS,
    MODES,
    NEW_TOKENS,
    RECURRENT_CELLS,
    RECURRENT_SIZE,
    VOCAB,
    gpt_config,
    gpt_flops,
    lstm_layer_flops,
    recurrent_layer_flops,
    transformer_block_flops,
)

TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def require(module, *names: str) -> None:
    missing = [n for n in names if not hasattr(module, n)]
    if missing:
        pytest.skip(f"TODO: {module.__name__}.{', '.join(missing)} not written yet")


def _normal(rng: np.random.Generator, dtype: str, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


# ---- the LSTM layer ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_layer(benchmark, bench_time, threads, model_size, dtype, mode, backend):
    """numpy_impl.LSTM / torch_impl.LSTM, batch first, input = hidden = C, LSTM_LAYERS layers."""
    require(numpy_impl, "LSTM")
    require(torch_impl, "LSTM")
    device = device_or_skip(backend, dtype)
    T_, C = model_size
    rng = np.random.default_rng(0)
    np_model = numpy_impl.LSTM(C, C, LSTM_LAYERS, seed=0, dtype=np.dtype(dtype), kernels="fast")
    x, dout = _normal(rng, dtype, BATCH, T_, C), _normal(rng, dtype, BATCH, T_, C)
    backward = mode == "fwd+bwd"
    if backend == "numpy":

        def fn():
            np_model.forward(x)
            if backward:
                np_model.backward(dout)

    else:
        model = torch_impl.LSTM(C, C, LSTM_LAYERS, batch_first=True).to(TORCH_DTYPES[dtype])
        model.load_state_dict({k: torch.from_numpy(v) for k, v in np_model.params.items()})
        model.to(device)
        fn = _torch_fwd_bwd(lambda x_: model(x_)[0], model, x, dout, device, backward)
    fwd, bwd = lstm_layer_flops(BATCH, T_, C, C, LSTM_LAYERS)
    describe(benchmark, component="lstm_layer", mode=mode, dtype=dtype, backend=backend, B=BATCH,
             T=T_, C=C, flops=fwd + bwd if backward else fwd, threads=threads,
             shape=f"x ({BATCH}, {T_}, {C}), hidden {C}, {LSTM_LAYERS} layers")  # fmt: skip
    time_call(benchmark, fn, bench_time)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", RECURRENT_CELLS)
def test_recurrent_layer_vs_torch_nn(benchmark, bench_time, threads, cell, backend):
    """numpy_impl.RNN / GRU / LSTM (hand-written BPTT) against torch's OWN torch.nn.RNN / GRU / LSTM
    (ATen's loop over time on the CPU, cuDNN on a GPU): the torch-* columns of these rows are the
    built-in, not torch_impl. Forward + backward (x's and every parameter's gradient), float32,
    B=32, T=100, input = hidden = 256, 2 layers."""
    B, T_, C, L = RECURRENT_SIZE
    dtype = "float32"
    device = device_or_skip(backend, dtype)
    rng = np.random.default_rng(0)
    layers = {"rnn_tanh": (numpy_impl.RNN, torch.nn.RNN), "gru": (numpy_impl.GRU, torch.nn.GRU),
              "lstm": (numpy_impl.LSTM, torch.nn.LSTM)}  # fmt: skip
    np_cls, torch_cls = layers[cell]
    np_model = np_cls(C, C, L, seed=0, kernels="fast")
    x, dout = _normal(rng, dtype, B, T_, C), _normal(rng, dtype, B, T_, C)
    if backend == "numpy":

        def fn():
            np_model.forward(x)
            np_model.backward(dout)

    else:
        model = torch_cls(C, C, L, batch_first=True)
        model.load_state_dict({k: torch.from_numpy(v) for k, v in np_model.params.items()})
        model.to(device)
        fn = _torch_fwd_bwd(lambda x_: model(x_)[0], model, x, dout, device, backward=True)
    fwd, bwd = recurrent_layer_flops(cell, B, T_, C, C, L)
    name = {"rnn_tanh": "RNN", "gru": "GRU", "lstm": "LSTM"}[cell]
    describe(benchmark, component=f"{cell}_layer vs nn.{name}", mode="fwd+bwd", dtype=dtype,
             backend=backend, B=B, T=T_, C=C, flops=fwd + bwd, threads=threads,
             shape=f"x ({B}, {T_}, {C}), hidden {C}, {L} layers; torch = torch.nn.{name}")  # fmt: skip
    time_call(benchmark, fn, bench_time)


def _torch_fwd_bwd(forward, module, x: np.ndarray, dout: np.ndarray, device, backward: bool):
    """Forward only under no_grad, or forward plus the gradients of x and every parameter (what
    the NumPy backward returns)."""
    sync = synchronizer(device)
    xt = to_tensors({"x": x}, device, requires_grad=("x",) if backward else ())["x"]
    if not backward:

        def fn():
            with torch.no_grad():
                forward(xt)
            sync()

        return fn
    inputs = [xt, *module.parameters()]
    dout_t = torch.from_numpy(dout).to(device)

    def fn():
        torch.autograd.grad(forward(xt), inputs, dout_t)
        sync()

    return fn


# ---- the transformer block --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_transformer_block(benchmark, bench_time, threads, model_size, dtype, mode, backend):
    """One pre-LN block (dropout off): numpy_impl.fast's / torch_impl.TransformerBlock."""
    from numpy_impl.fast import transformer_block_backward, transformer_block_forward

    require(torch_impl, "TransformerBlock")
    from twinlm.shared.init import init_gpt_params
    from twinlm.shared.naming import sub_dict

    device = device_or_skip(backend, dtype)
    T_, C = model_size
    cfg = {**gpt_config(T_, C), "vocab_size": 2, "n_layers": 1}  # only the block's params matter
    params = sub_dict(init_gpt_params(cfg, 0, np.dtype(dtype)), "trf_blocks.0.")
    rng = np.random.default_rng(0)
    x, dy = _normal(rng, dtype, BATCH, T_, C), _normal(rng, dtype, BATCH, T_, C)
    backward = mode == "fwd+bwd"
    if backend == "numpy":

        def fn():
            y, cache = transformer_block_forward(x, params, cfg["n_heads"])
            if backward:
                transformer_block_backward(dy, cache)

    else:
        block = torch_impl.TransformerBlock(cfg).to(TORCH_DTYPES[dtype]).eval()
        block.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
        block.to(device)
        fn = _torch_fwd_bwd(block, block, x, dy, device, backward)
    fwd, bwd = transformer_block_flops(BATCH, T_, C)
    describe(benchmark, component="transformer_block", mode=mode, dtype=dtype, backend=backend,
             B=BATCH, T=T_, C=C, flops=fwd + bwd if backward else fwd, threads=threads,
             shape=f"x ({BATCH}, {T_}, {C}), {cfg['n_heads']} heads, FFN {4 * C}")  # fmt: skip
    time_call(benchmark, fn, bench_time)


# ---- one GPT training step --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_gpt_train_step(benchmark, bench_time, threads, gpt_size, dtype, backend):
    """Forward, cross entropy, backward and an AdamW update of every parameter (no dropout, no
    clipping). torch uses torch.optim.AdamW with its default implementation for the device."""
    require(numpy_impl, "GPTModel", "AdamW")
    require(torch_impl, "GPTModel", "cross_entropy")
    device = device_or_skip(backend, dtype)
    T_, C = gpt_size
    cfg = gpt_config(T_, C)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, VOCAB, (GPT_BATCH, T_))
    targets = rng.integers(0, VOCAB, (GPT_BATCH, T_))
    if backend == "numpy":
        model = numpy_impl.GPTModel(cfg, seed=0, dtype=np.dtype(dtype), kernels="fast")
        opt = numpy_impl.AdamW(model.params, lr=1e-4, weight_decay=0.1, kernels="fast")

        def fn():
            _, grads = model.loss_and_grads(idx, targets)
            opt.step(grads)

    else:
        sync = synchronizer(device)
        tmodel = torch_impl.GPTModel(cfg, seed=0, dtype=TORCH_DTYPES[dtype]).to(device).eval()
        topt = torch.optim.AdamW(tmodel.parameters(), lr=1e-4, weight_decay=0.1)
        idx_t, targets_t = torch.from_numpy(idx).to(device), torch.from_numpy(targets).to(device)

        def fn():
            loss = torch_impl.cross_entropy(tmodel(idx_t), targets_t)
            topt.zero_grad(set_to_none=True)
            loss.backward()
            topt.step()
            sync()

    fwd, bwd = gpt_flops(GPT_BATCH, T_, cfg)
    n_params = sum(int(np.prod(s)) for s in _param_shapes(cfg))
    describe(benchmark, component="gpt_train_step", mode="step", dtype=dtype, backend=backend,
             B=GPT_BATCH, T=T_, C=C, flops=fwd + bwd + ADAMW_FLOPS_PER_PARAM * n_params, threads=threads,
             shape=f"idx ({GPT_BATCH}, {T_}), {cfg['n_layers']} layers, C={C}, "
                   f"V={VOCAB}, {n_params / 1e6:.1f}M params")  # fmt: skip
    time_call(benchmark, fn, bench_time)


def _param_shapes(cfg: dict):
    from twinlm.shared.naming import gpt_param_shapes

    return gpt_param_shapes(cfg).values()


# ---- generation, with and without a KV cache --------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kv_cache", [False, True], ids=["no-cache", "kv-cache"])
def test_generate(benchmark, bench_time, threads, gen_size, kv_cache, backend):
    """Greedy generation (temperature 0, so both backends do identical work) of NEW_TOKENS tokens
    after a T-token prompt, float32: twinlm.generation.generate over either backend's model,
    use_cache off or on (the loop is shared; each backend runs its own forward and forward_cached).
    """
    from twinlm.generation import generate

    dtype = "float32"
    device = device_or_skip(backend, dtype)
    T_, C = gen_size
    cfg = {**gpt_config(T_, C), "context_length": T_ + NEW_TOKENS}
    idx = np.random.default_rng(0).integers(0, VOCAB, (1, T_))
    if backend == "numpy":
        model = numpy_impl.GPTModel(cfg, seed=0, dtype=np.dtype(dtype), kernels="fast")

        def fn():
            generate(model, idx, NEW_TOKENS, use_cache=kv_cache)

    else:
        sync = synchronizer(device)
        tmodel = torch_impl.GPTModel(cfg, seed=0, dtype=TORCH_DTYPES[dtype]).to(device).eval()

        def fn():
            generate(tmodel, idx, NEW_TOKENS, use_cache=kv_cache)
            sync()

    name = "generate[kv_cache]" if kv_cache else "generate"
    describe(benchmark, component=name, mode=f"{NEW_TOKENS} tokens", dtype=dtype, backend=backend,
             B=1, T=T_, C=C, flops=None, threads=threads,
             shape=f"prompt (1, {T_}), {cfg['n_layers']} layers, C={C}, V={VOCAB}")  # fmt: skip
    time_call(benchmark, fn, bench_time)
