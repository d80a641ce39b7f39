"""Where a NumPy GPT training step goes: `python -m bench.profile_step [--shape 124M] [--steps 3]`.

Not a benchmark: it runs the fast path's step of bench/test_bench_train_step.py (forward, loss,
backward, clip, AdamW; GPT-2 124M, float32; kernels="fast", as the NumPy engine) under cProfile
after one warm-up step, and prints the wall time per step spent in each piece, from the cumulative
time of the functions that do it (a NumPy call shows up inside the function that makes it). The
pieces overlap nowhere; "other" is the rest. It also prints the minor page faults per step
(pages the kernel zeroed because the step allocated them afresh) and the peak RSS.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import resource
import sys
import time

import numpy as np

import numpy_impl
from bench.workloads import TRAIN_STEP_SHAPES, train_step_config

# piece -> the (file, function) pairs whose cumulative time it is
PIECES = {
    "matmuls of the linear layers and the head (fwd + bwd)": [
        ("fast/gpt.py", "_linear_into"), ("fast/gpt.py", "_linear_grads"),
        ("fast/gpt.py", "_input_grad")],
    "attention core (its products, softmax, mask)": [("fast/attention.py", "attention_into"),
                                                     ("fast/attention.py", "attention_backward_into")],
    "GELU forward (the backward: one multiply, in other)": [("fast/gelu.py", "gelu_into")],
    "LayerNorm (fwd + bwd)": [("fast/layernorm.py", "layernorm_into"),
                              ("fast/layernorm.py", "layernorm_backward_into"),
                              ("fast/gpt.py", "_normed")],
    "cross entropy (fwd + bwd)": [("fast/loss.py", "_cross_entropy"), ("fast/loss.py", "_dlogits")],
    "embedding backward": [("fast/gpt.py", "_embedding_backward_into")],
    "AdamW (clip fused in)": [("optim.py", "step")],
    "gradient norm (clip_coef)": [("optim.py", "clip_coef")],
}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=list(TRAIN_STEP_SHAPES), default="124M")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args(argv)
    B, T, _ = TRAIN_STEP_SHAPES[args.shape]
    cfg = train_step_config(args.shape)
    rng = np.random.default_rng(0)
    idx, targets = (rng.integers(0, cfg["vocab_size"], (B, T)) for _ in range(2))
    model = numpy_impl.GPTModel(cfg, seed=0, dtype=np.float32, kernels="fast")
    opt = numpy_impl.AdamW(model.params, lr=1e-4, weight_decay=0.1, kernels="fast")

    def step():
        _, grads = model.loss_and_grads(idx, targets)
        _, coef = numpy_impl.clip_coef(grads, 1.0)
        opt.step(grads, grad_scale=coef)

    step()  # warm-up: AdamW's state, the step's workspace
    profiler = cProfile.Profile()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    profiler.enable()
    for _ in range(args.steps):
        step()
    profiler.disable()
    per_step = (time.perf_counter() - start) / args.steps
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / args.steps
    stats = pstats.Stats(profiler).stats  # (file, line, name) -> (cc, nc, tottime, cumtime, …)
    print(f"NumPy training step, GPT-2 124M, {args.shape} (B={B}, T={T}), float32, "
          f"{args.steps} steps; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")  # fmt: skip
    print("\n| piece | s/step | share |\n|---|---|---|")
    accounted = 0.0
    for piece, functions in PIECES.items():
        seconds = sum(
            v[3] for (file, _, name), v in stats.items()
            if any(file.endswith("numpy_impl/" + f) and name == n for f, n in functions)
        ) / args.steps  # fmt: skip
        accounted += seconds
        print(f"| {piece} | {seconds:.3f} | {100 * seconds / per_step:.0f} % |")
    other = per_step - accounted
    print(
        f"| other (residual adds, reshapes, Python) | {other:.3f} | {100 * other / per_step:.0f} % |"
    )
    print(f"| **step** | **{per_step:.3f}** | 100 % |")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nminor page faults per step: {faults:,.0f}; peak RSS of this process: "
          f"{peak / 1024:.2f} GiB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
