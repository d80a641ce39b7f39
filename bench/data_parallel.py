"""Data-parallel throughput: GPT training steps per second, one process against N (torchrun), in
both backends, one thread per process. The table in docs/data-parallel.md comes from the first
command.

    python -m bench.data_parallel                      # the table: 1 and 2 processes × numpy,
                                                       # torch, interleaved, median of --repeats
    OMP_NUM_THREADS=1 torchrun --standalone --nproc-per-node 2 -m bench.data_parallel --one numpy

The task is `twinlm train`'s (preset tiny, 6.5 M parameters, float32, dropout on) with the same
global batch for every process count (--batch-size rows of --max-length tokens), so N processes
do the work of one and tokens/s measures the speedup alone. Only training steps are timed (after
--warmup steps): no evaluation, no checkpoint. Every configuration starts through torchrun, so
the launcher is the same for 1 and 2 processes.

On a busy machine the wall-clock speedup measures the other jobs as much as this one; "speedup by
CPU time" divides rank 0's CPU seconds per token instead (the time a process would take with a
core of its own: gloo waits without spinning, and its threads' CPU time is counted).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

BACKENDS = ("numpy", "torch")


def measure(backend: str, batch_size: int, max_length: int, steps: int, warmup: int) -> dict:
    """Time `steps` training steps on this rank (inside torchrun's process group)."""
    import torch

    from twinlm.data.tokenizer import encode
    from twinlm.data.windows import default_corpus
    from twinlm.training import lm
    from twinlm.training.distributed import active, launched
    from twinlm.training.loop import Run

    torch.set_num_threads(1)
    with launched("bench.data_parallel"):
        group = active()
        settings = lm.TrainSettings(
            preset="tiny",
            max_length=max_length,
            stride=max_length,
            batch_size=batch_size,
            steps=warmup + steps,
        )
        run = Run(lm.LMTask(default_corpus()[:200_000], settings, encode), backend)
        for _ in range(warmup):
            run.train_step()
        if group is not None:
            torch.distributed.barrier()
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(steps):
            run.train_step()  # every step ends in an all-reduce: the ranks finish together
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        return {
            "backend": backend,
            "processes": 1 if group is None else group.world,
            "tokens_per_s": steps * batch_size * max_length / seconds,
            "ms_per_step": 1000 * seconds / steps,
            "cpu_tokens_per_s": steps * batch_size * max_length / cpu,  # per CPU-second of rank 0
            "all_reduce_ms": all_reduce_ms(run) if group is not None else 0.0,
            "rank": 0 if group is None else group.rank,
        }


def all_reduce_ms(run, repeats: int = 5) -> float:
    """The communication in a step: one all-reduce of a bucket as large as the gradients."""
    import numpy as np
    import torch

    size = sum(v.size for v in run.engine.params().values())
    bucket = torch.from_numpy(np.zeros(size, np.float32))
    torch.distributed.barrier()
    start = time.perf_counter()
    for _ in range(repeats):
        torch.distributed.all_reduce(bucket)
    return 1000 * (time.perf_counter() - start) / repeats


def one_run(backend: str, procs: int, args) -> dict:
    """One configuration through torchrun, OMP_NUM_THREADS=1; rank 0's measurement."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", str(procs), "-m", "bench.data_parallel", "--one", backend]
    command += ["--batch-size", str(args.batch_size), "--max-length", str(args.max_length)]
    command += ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        # the ranks' own messages come first; torchrun's traceback and summary after them
        err = (
            proc.stderr
            if len(proc.stderr) < 4000
            else proc.stderr[:2500] + "\n…\n" + proc.stderr[-1500:]
        )
        raise SystemExit(f"{' '.join(command)} failed (exit {proc.returncode}):\n{err}")
    return json.loads(lines[-1])


def table(args) -> None:
    results: dict[tuple[str, int], list[dict]] = {}
    for repeat in range(args.repeats):  # interleaved: a busy spell hits every configuration
        for procs in (1, 2):
            for backend in BACKENDS:
                r = one_run(backend, procs, args)
                results.setdefault((backend, procs), []).append(r)
                print(
                    f"repeat {repeat + 1}: {backend} × {procs}: {r['tokens_per_s']:,.0f} tok/s "
                    f"({r['cpu_tokens_per_s']:,.0f} per CPU-second), {r['ms_per_step']:.0f} ms "
                    f"per step, all-reduce {r['all_reduce_ms']:.0f} ms"
                )

    def median(backend, procs, key):
        return statistics.median(r[key] for r in results[(backend, procs)])

    print(f"\nmedian of {args.repeats}, global batch {args.batch_size} × {args.max_length} tokens")
    print(
        "| backend | 1 process | 2 processes | speedup | speedup by CPU time | "
        "gradient all-reduce (2 processes) |\n|---|---|---|---|---|---|"
    )
    for backend in BACKENDS:
        one, two = median(backend, 1, "tokens_per_s"), median(backend, 2, "tokens_per_s")
        cpu = median(backend, 2, "cpu_tokens_per_s") / median(backend, 1, "cpu_tokens_per_s")
        comm, step = median(backend, 2, "all_reduce_ms"), median(backend, 2, "ms_per_step")
        print(
            f"| {backend} | {one:,.0f} tok/s | {two:,.0f} tok/s | {two / one:.2f}× | {cpu:.2f}× | "
            f"{comm:.0f} ms of {step:.0f} ms per step |"
        )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--one", choices=BACKENDS, default=None, help="measure this backend (torchrun)")
    p.add_argument("--batch-size", type=int, default=8, help="global rows per step")
    p.add_argument("--max-length", type=int, default=64, help="tokens per row")
    p.add_argument("--steps", type=int, default=8, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--repeats", type=int, default=3, help="runs per configuration (the table)")
    args = p.parse_args(argv)
    if args.one is None:
        table(args)
        return
    r = measure(args.one, args.batch_size, args.max_length, args.steps, args.warmup)
    if r["rank"] == 0:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
