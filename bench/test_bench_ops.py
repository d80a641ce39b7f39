"""Every op in bench/workloads.py, forward and forward+backward, on every backend, float32 and
float64, over the size sweep. Inputs and the NumPy / torch_impl functions come from the op's
registered OpCase (twinlm/parity/opcases.py), so an op is benchmarked exactly as it is parity-tested;
NumPy runs the fast path (numpy_impl/fast, the op set the training engine uses).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
import torch

import numpy_impl.fast
from bench.harness import BACKENDS, describe, device_or_skip, synchronizer, time_call, to_tensors
from bench.workloads import BATCH, DTYPES, MODES, OPS, OPS_BY_NAME
from twinlm.parity.harness import OpCase, random_douts
from twinlm.parity.opcases import CASES_BY_NAME


def numpy_call(case: OpCase, arrays: dict, douts: tuple | None):
    """The timed NumPy call: the forward (its cache included), then the backward if douts."""
    fast = case.on(numpy_impl.fast)
    if douts is None:
        return lambda: fast.np_forward(arrays)

    def forward_backward():
        outs, cache = fast.np_forward(arrays)
        fast.np_backward(douts, cache)

    return forward_backward


def torch_call(case: OpCase, arrays: dict, douts: tuple | None, device: str):
    """The timed torch_impl call on `device`: the forward under no_grad, or the forward and the
    gradients of exactly the inputs the NumPy backward returns."""
    sync = synchronizer(device)
    if douts is None:
        tensors = to_tensors(arrays, device)

        def forward():
            with torch.no_grad():
                case.torch_impl(tensors)
            sync()

        return forward

    tensors = to_tensors(arrays, device, requires_grad=case.grad_inputs)
    inputs = [tensors[k] for k in case.grad_inputs if tensors.get(k) is not None]
    grad_outs = tuple(torch.from_numpy(d).to(device) for d in douts)

    def forward_backward():
        outs = case.torch_impl(tensors)
        torch.autograd.grad(outs, inputs, grad_outs, allow_unused=True)
        sync()

    return forward_backward


@lru_cache(maxsize=1)  # the backends run one after another on the very same arrays
def sampled_inputs(op_name: str, dtype: str, T: int, C: int) -> tuple[dict, tuple]:
    """The case's inputs at this size, and a standard-normal upstream gradient for its outputs."""
    op = OPS_BY_NAME[op_name]
    case = CASES_BY_NAME[op.case]
    rng = np.random.default_rng(0)
    arrays = case.sample(rng, np.dtype(dtype), op.dims(BATCH, T, C))
    return arrays, random_douts(rng, case.np_forward(arrays)[0])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_op(benchmark, bench_time, threads, op, mode, dtype, size, backend):
    device = device_or_skip(backend, dtype)
    case = CASES_BY_NAME.get(op.case)
    if case is None:
        pytest.skip(f"TODO: {op.case!r} is not registered in twinlm.parity.opcases yet")
    T, C = size
    dims = op.dims(BATCH, T, C)
    if set(dims) != set(case.dims):
        pytest.fail(
            f"bench/workloads.py entry {op.name!r} gives dims {sorted(dims)}, but the "
            f"{op.case!r} case takes {sorted(case.dims)}: update the entry"
        )
    arrays, douts = sampled_inputs(op.name, dtype, T, C)
    backward = mode == "fwd+bwd"
    douts = douts if backward else None
    if backend == "numpy":
        fn = numpy_call(case, arrays, douts)
    else:
        fn = torch_call(case, arrays, douts, device)
    fwd, bwd = op.flops(BATCH, T, C)
    describe(benchmark, component=op.name, mode=mode, dtype=dtype, backend=backend, B=BATCH, T=T,
             C=C, flops=fwd + bwd if backward else fwd, shape=op.shape(BATCH, T, C),
             threads=threads)  # fmt: skip
    time_call(benchmark, fn, bench_time)
