"""The recurrent layers against their own BLAS floor: `python -m bench.recurrent_floor [--repeats 7]`.

Not a benchmark suite: for the NumPy RNN / GRU / LSTM layers on the fast path (forward + backward,
float32, bench/workloads.py's RECURRENT_SIZE: B 32, T 100, input = hidden = 256, 2 layers) it
prints, per cell, the layer's time, the time of the same GEMM calls alone at the same shapes into
preallocated outputs (the floor no NumPy formulation of these layers goes under: the products are
BLAS's, the rest is elementwise work and Python), and torch.nn's own layer (torch.nn.RNN / GRU /
LSTM, the same weights, timed in a child process: in one process the two libraries' threads slow
each other, bench/README.md). Ratios, not absolute times: the layer and its floor run back to
back in one process, alternately, and each time is the median of `--repeats`.

The GEMM calls per layer, gates G (RNN 1, GRU 3, LSTM 4), N = T·B rows:
    forward   X W_ihᵀ (N, I)(I, G·H) once; h_{t-1} W_hhᵀ (B, H)(H, G·H) at every step
    backward  dz_t W_hh (B, G·H)(G·H, H) at every step; dZᵀ X, dZᵀ H_prev, dZ W_ih once each
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import numpy as np

GATES = {"rnn_tanh": 1, "gru": 3, "lstm": 4}


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def blas_floor(cell: str, B: int, T: int, C: int, L: int):
    """A function running the layer's GEMM calls alone (module docstring), outputs preallocated."""
    G, H, rng = GATES[cell], C, np.random.default_rng(0)
    f32 = np.float32
    X = rng.standard_normal((T * B, C)).astype(f32)
    w_ih, w_hh = (rng.standard_normal((G * H, n)).astype(f32) * 0.05 for n in (C, H))
    Z, dZ = np.empty((T * B, G * H), f32), rng.standard_normal((T * B, G * H)).astype(f32)
    hs = rng.standard_normal((T, B, H)).astype(f32)
    z_t, dh_t = np.empty((B, G * H), f32), np.empty((B, H), f32)
    dw_ih, dw_hh, dX = np.empty_like(w_ih), np.empty_like(w_hh), np.empty_like(X)
    dZ3 = dZ.reshape(T, B, G * H)

    def fn() -> None:
        for _ in range(L):
            np.matmul(X, w_ih.T, out=Z)
            for t in range(T):
                np.matmul(hs[t], w_hh.T, out=z_t)
            for t in range(T - 1, -1, -1):
                np.matmul(dZ3[t], w_hh, out=dh_t)
            np.matmul(dZ.T, X, out=dw_ih)
            np.matmul(dZ.T, hs.reshape(T * B, H), out=dw_hh)
            np.matmul(dZ, w_ih, out=dX)

    return fn


def numpy_layer(cell: str, B: int, T: int, C: int, L: int):
    import numpy_impl

    cls = {"rnn_tanh": numpy_impl.RNN, "gru": numpy_impl.GRU, "lstm": numpy_impl.LSTM}[cell]
    model = cls(C, C, L, seed=0, kernels="fast")
    rng = np.random.default_rng(0)
    x, dout = (rng.standard_normal((B, T, C)).astype(np.float32) for _ in range(2))

    def fn() -> None:
        model.forward(x)
        model.backward(dout)

    return fn


def torch_layer_seconds(cell: str, B: int, T: int, C: int, L: int, repeats: int) -> float:
    """torch.nn's layer, forward + backward (x's and every parameter's gradient)."""
    import torch

    cls = {"rnn_tanh": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
    model = cls(C, C, L, batch_first=True)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((B, T, C)).astype(np.float32)).requires_grad_(True)
    dout = torch.from_numpy(rng.standard_normal((B, T, C)).astype(np.float32))
    inputs = [x, *model.parameters()]
    return _median_time(lambda: torch.autograd.grad(model(x)[0], inputs, dout), repeats)


def main(argv: list[str] | None = None) -> int:
    from bench.workloads import RECURRENT_CELLS, RECURRENT_SIZE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--cells", nargs="*", default=list(RECURRENT_CELLS))
    parser.add_argument("--torch-child", type=int, default=0, help=argparse.SUPPRESS)  # threads
    args = parser.parse_args(argv)
    B, T, C, L = RECURRENT_SIZE
    if args.torch_child:  # torch.nn in its own process; prints {cell: seconds}
        import torch

        torch.set_num_threads(args.torch_child)  # NumPy's threads (bench/conftest.py does so)
        out = {c: torch_layer_seconds(c, B, T, C, L, args.repeats) for c in args.cells}
        print(json.dumps(out))
        return 0
    from numpy_impl.fast.blocks import THREADS

    child = subprocess.run(
        [sys.executable, "-m", "bench.recurrent_floor", "--torch-child", str(THREADS),
         "--repeats", str(args.repeats), "--cells", *args.cells],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    torch_s = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"fwd + bwd, float32, B {B}, T {T}, {C} → {C} × {L} layers; {THREADS} threads; "
          f"median of {args.repeats}")  # fmt: skip
    print("\n| layer | NumPy fast | its GEMMs alone (floor) | ÷ floor | torch.nn | ÷ torch.nn |")
    print("|---|---|---|---|---|---|")
    for cell in args.cells:
        layer, floor = numpy_layer(cell, B, T, C, L), blas_floor(cell, B, T, C, L)
        pairs = [(_median_time(layer, 1), _median_time(floor, 1)) for _ in range(args.repeats)]
        layer_s = statistics.median(p[0] for p in pairs)  # alternated: both see the same load
        floor_s = statistics.median(p[1] for p in pairs)
        print(f"| {cell} | {1e3 * layer_s:.1f} ms | {1e3 * floor_s:.1f} ms | "
              f"{layer_s / floor_s:.2f}× | {1e3 * torch_s[cell]:.1f} ms | "
              f"{layer_s / torch_s[cell]:.2f}× |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
