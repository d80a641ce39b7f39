"""`twinlm check`: every registered op through both backends, float64 and float32, as one table.

float64 runs one example per op; float32 is judged by the standard in twinlm/parity/harness.py, which
compares with torch over a run of examples: `examples` of them, drawn with seeds (seed, 0), (seed, 1), ….
"""

from __future__ import annotations

import numpy as np

from twinlm.parity.harness import (
    FLOAT32_BOUND,
    FLOAT32_RATIO,
    TOL_FLOAT64,
    Float32Runs,
    compare_float32,
    compare_float64,
    random_douts,
    run_numpy,
)
from twinlm.parity.opcases import CASES

EXAMPLES = 4


def check_ops(
    seed: int = 0, names: list[str] | None = None, examples: int = EXAMPLES
) -> list[dict]:
    """One float64 row and one float32 row per op, at the op's default sizes."""
    if examples < 1:
        raise ValueError(f"examples must be at least 1, got {examples}")
    rows = []
    for case in CASES:
        if names and case.name not in names:
            continue
        runs = Float32Runs()
        for i in range(examples):
            rng = np.random.default_rng([seed, i])
            inputs = case.sample(rng, np.float64, case.dims)
            douts = random_douts(rng, run_numpy(case, inputs)[0])
            if i == 0:
                e64 = compare_float64(case, inputs, douts)
            compare_float32(case, inputs, douts, runs)
        rows.append(
            dict(op=case.name, dtype="float64", fwd=e64.forward, grad=e64.grad, tol=TOL_FLOAT64)
        )
        rows.append(
            dict(
                op=case.name,
                dtype="float32",
                fwd=max(runs[b, "fwd"].worst for b in ("numpy", "torch_impl")),
                grad=max(runs[b, "grad"].worst for b in ("numpy", "torch_impl")),
                tol=FLOAT32_BOUND,
                r_fwd=max(runs[b, "fwd"].ratio for b in ("numpy", "torch_impl")),
                r_grad=max(runs[b, "grad"].ratio for b in ("numpy", "torch_impl")),
            )
        )
    for r in rows:
        r["ok"] = (
            r["fwd"] <= r["tol"]
            and r["grad"] <= r["tol"]
            and r.get("r_fwd", 0.0) <= FLOAT32_RATIO
            and r.get("r_grad", 0.0) <= FLOAT32_RATIO
        )
    return rows


def format_table(rows: list[dict], examples: int = EXAMPLES) -> str:
    head = f"{'op':<36}{'dtype':<9}{'fwd err':>10}{'grad err':>10}{'tol':>9}{'R fwd':>7}{'R grad':>7}  result"
    lines = [head, "-" * len(head)]
    for r in rows:
        ratios = f"{r['r_fwd']:>7.2f}{r['r_grad']:>7.2f}" if "r_fwd" in r else " " * 14
        lines.append(
            f"{r['op']:<36}{r['dtype']:<9}{r['fwd']:>10.1e}{r['grad']:>10.1e}{r['tol']:>9.0e}"
            f"{ratios}  {'pass' if r['ok'] else 'FAIL'}"
        )
    lines.append(
        "float64: relative error, worst pair of NumPy, torch_impl, torch built-in. float32: worst "
        "example's error in units of u·max|float64 result| (u = 2^-24), tolerance 1024; R: RMS error "
        f"ratio to torch's own float32 over the {examples} examples, tolerance 2 (twinlm/parity/harness.py)."
    )
    return "\n".join(lines)


def main_check(args) -> int:
    """`twinlm check` (twinlm/cli.py parses); with --impl, the learner's check
    (twinlm/parity/learner_check.py)."""
    if args.impl is not None:
        from twinlm.parity.learner_check import run_learner_check

        return run_learner_check(args.impl, op=args.op, examples=args.examples, seed=args.seed)
    return run_check(seed=args.seed, op=args.op, examples=args.examples)


def run_check(seed: int = 0, op: str | None = None, examples: int | None = None) -> int:
    """`twinlm check`: the table of every registered case, or of the cases of `op` only."""
    names = None
    if op is not None:
        names = [c.name for c in CASES if c.op == op]
        if not names:
            ops = ", ".join(dict.fromkeys(c.op for c in CASES))
            raise ValueError(f"--op: no op named {op!r}; the ops: {ops}")
    examples = examples or EXAMPLES
    rows = check_ops(seed, names, examples)
    print(format_table(rows, examples))
    failed = [r["op"] + " " + r["dtype"] for r in rows if not r["ok"]]
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    print(f"all {len(rows)} checks passed")
    return 0
