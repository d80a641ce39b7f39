"""`twinlm check`: every registered op through both backends, float64 and float32, as one table."""

from __future__ import annotations

import numpy as np

from twinlm.parity.harness import (
    FLOAT32_FLOOR,
    TOL_FLOAT64,
    compare_float32,
    compare_float64,
    random_douts,
    run_numpy,
)
from twinlm.parity.opcases import CASES


def check_ops(seed: int = 0, names: list[str] | None = None) -> list[dict]:
    """Run each op once at its default sizes; one row per op and dtype."""
    rows = []
    for case in CASES:
        if names and case.name not in names:
            continue
        rng = np.random.default_rng(seed)
        inputs = case.sample(rng, np.float64, case.dims)
        douts = random_douts(rng, run_numpy(case, inputs)[0])
        e64 = compare_float64(case, inputs, douts)
        rows.append(
            dict(
                op=case.name,
                dtype="float64",
                fwd=e64.forward,
                grad=e64.grad,
                tol_fwd=TOL_FLOAT64,
                tol_grad=TOL_FLOAT64,
            )
        )
        e32 = compare_float32(case, inputs, douts)
        ref = e32["torch"]
        rows.append(
            dict(
                op=case.name,
                dtype="float32",
                fwd=max(e32["numpy"].forward, e32["torch_impl"].forward),
                grad=max(e32["numpy"].grad, e32["torch_impl"].grad),
                tol_fwd=2 * ref.forward + FLOAT32_FLOOR,
                tol_grad=2 * ref.grad + FLOAT32_FLOOR,
            )
        )
    for r in rows:
        r["ok"] = r["fwd"] <= r["tol_fwd"] and r["grad"] <= r["tol_grad"]
    return rows


def format_table(rows: list[dict]) -> str:
    head = f"{'op':<36}{'dtype':<9}{'fwd err':>10}{'grad err':>10}{'tol fwd':>10}{'tol grad':>10}  result"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['op']:<36}{r['dtype']:<9}{r['fwd']:>10.1e}{r['grad']:>10.1e}"
            f"{r['tol_fwd']:>10.1e}{r['tol_grad']:>10.1e}  {'pass' if r['ok'] else 'FAIL'}"
        )
    lines.append(
        "float64: NumPy vs torch_impl vs torch built-in (worst pair). float32: worst backend vs the "
        "float64 built-in; tolerance = 2 × PyTorch's own float32 error + 1e-6."
    )
    return "\n".join(lines)


def run_check(seed: int = 0) -> int:
    rows = check_ops(seed)
    print(format_table(rows))
    failed = [r["op"] + " " + r["dtype"] for r in rows if not r["ok"]]
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    print(f"all {len(rows)} checks passed")
    return 0
