"""Memory of the qwen3-0.6b shape in each backend: `python -m bench.qwen3_memory [--dtype float32]`.

Each backend runs in a fresh process: import, note the peak resident set size (RSS), build the
model with random weights (drawn in place, no second copy), generate QWEN3_GEN_TOKENS tokens with
the KV cache, note the peak RSS again. The difference is what the model costs that backend: its
weights (596M parameters: 2.4 GB in float32) plus the largest transient of a generation step.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import json, resource, sys, time
import numpy as np
backend, dtype = sys.argv[1], sys.argv[2]
import numpy_impl, torch, torch_impl
from twinlm.generation import generate
from twinlm.shared.config import get_config
from bench.workloads import QWEN3_GEN_PROMPT, QWEN3_GEN_TOKENS

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

cfg = get_config("qwen3-0.6b")
base = peak_mb()
rng = np.random.default_rng(0)
if backend == "numpy":
    model = numpy_impl.Qwen3Model(cfg, seed=None, dtype=np.dtype(dtype))  # zeros: untouched pages
    for name, p in model.params.items():
        if not name.endswith("norm.weight"):
            rng.standard_normal(dtype=p.dtype, out=p)  # in place: no temporary copy
            p *= 0.02
    weights = sum(p.nbytes for p in model.params.values())
else:
    model = torch_impl.Qwen3Model(cfg, seed=None, dtype=getattr(torch, dtype)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not name.endswith("norm.weight"):
                p.normal_(0.0, 0.02)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
built = peak_mb()
idx = rng.integers(0, cfg["vocab_size"], (1, QWEN3_GEN_PROMPT))
start = time.perf_counter()
generate(model, idx, QWEN3_GEN_TOKENS)
seconds = time.perf_counter() - start
print(json.dumps({"backend": backend, "weights_mb": weights / 2**20, "built_mb": built - base,
                  "peak_mb": peak_mb() - base, "tokens_per_s": QWEN3_GEN_TOKENS / seconds}))
"""


def measure(backend: str, dtype: str = "float32") -> dict:
    root = Path(__file__).resolve().parents[1]  # `python -c` imports from its working directory
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, backend, dtype],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = parser.parse_args(argv)
    print("| backend | weights | peak RSS after building | peak RSS after generating | tokens/s |")
    print("|---|---|---|---|---|")
    for backend in ("numpy", "torch"):
        m = measure(backend, args.dtype)
        print(f"| {backend} | {m['weights_mb']:,.0f} MiB | {m['built_mb']:,.0f} MiB | "
              f"{m['peak_mb']:,.0f} MiB | {m['tokens_per_s']:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
