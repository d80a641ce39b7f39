"""The text `twinlm check --impl` prints (and a notebook shows for a `verify` report): per op, pass
or FAIL with what is wrong, by how much, the smallest failing input, and hints; then a summary."""

from __future__ import annotations

from twinlm.parity.harness import TOL_FLOAT64


def format_report(report) -> str:
    lines = [
        f"{report.source}: your ops against numpy_impl's reference (float64 ≤ {TOL_FLOAT64:.0e} "
        "relative; float32 by the float32 rule; docs/check-your-backward.md)",
        "",
    ]
    lines += [f"note: {n}" for n in report.notes]
    for op in report.ops:
        lines += _op_lines(op)
    counts = {}
    for op in report.ops:
        counts[op.status] = counts.get(op.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in counts.items())
    lines += ["", f"{len(report.ops)} op{'s' * (len(report.ops) != 1)} checked: {summary}"]
    return "\n".join(lines)


def _op_lines(op) -> list[str]:
    head = f"{op.op}: {op.status}"
    if op.status == "pass":
        head += f" ({_worst(op)})"
    if op.forward_only and op.cases:
        head += " — forward only (no backward given" + (
            ", or it raises NotImplementedError)" if op.not_implemented else ")"
        )
    lines = [f"{head:<88}{op.seconds:>6.1f} s"]
    if op.not_implemented:
        lines.append(f"  not implemented: {', '.join(op.not_implemented)}")
    several = len(op.cases) > 1
    for case in op.cases:
        if not case.failures:
            continue
        indent = "  "
        if several:
            lines.append(f"  {case.name}:")
            indent = "    "
        lines += _case_lines(case, indent)
    passed = [c.name for c in op.cases if not c.failures]
    if several and passed and len(passed) < len(op.cases):
        lines.append(f"  passed: {', '.join(passed)}")
    lines += [f"  hint: {h}" for h in op.hints]
    return lines


def _case_lines(case, indent: str) -> list[str]:
    """What is wrong in one case: each output or gradient with its first failure, where else it
    fails, and the sweep's smallest failing input. While a forward output is wrong, the gradients
    differ from numpy_impl's as a matter of course: they are summed up in one line, and only the
    backward's disagreements with the learner's own forward are listed."""
    by_what: dict[str, list] = {}
    for f in case.failures:
        by_what.setdefault(f.what, []).append(f)
    forward_wrong = any(w.startswith("forward output") for w in by_what)
    lines, differ = [], []
    for what, failures in by_what.items():
        if forward_wrong and what.startswith("gradient"):
            failures = [f for f in failures if f.stage == "finite differences"]
            if not failures:
                differ.append(what.removeprefix("gradient of "))
                continue
        lines += _what_lines(what, failures, indent)
    if differ:
        consistent = case.pair.backward is not None and not any(
            f.stage == "finite differences" for f in case.failures
        )
        lines.append(
            f"{indent}the gradients of {', '.join(differ)} differ from numpy_impl's too, as they must "
            "while the forward does"
            + (
                "; your backward matches finite differences of your own forward"
                if consistent
                else ""
            )
        )
    right = [w for w in case.worst if w not in by_what]
    if right and by_what:
        lines.append(f"{indent}right: {', '.join(right)}")
    return lines


def _what_lines(what: str, failures: list, indent: str) -> list[str]:
    first = failures[0]
    if what == "function":
        head = first.message
    elif first.stage == "float32":
        head = f"{what}: {first.message}"
    else:
        head = f"{what} is wrong ({first.stage}): {first.message}"
    lines = [f"{indent}{head}"]
    also = [
        f"{_stage(f.stage)} ({f.error:.1e})" if f.error == f.error else _stage(f.stage)
        for f in failures[1:]
        if f.stage != "sweep"
    ]
    if also:
        lines.append(f"{indent}  also wrong in: {', '.join(also)}")
    for f in failures:
        if f.stage != "sweep":
            continue
        if f is not first:
            lines.append(f"{indent}  the hypothesis sweep finds it too: {f.message}")
        pad = indent + "  "
        lines += [pad + d.replace("\n", "\n" + pad) for d in f.detail]
    return lines


def _stage(stage: str) -> str:
    if stage == "finite differences":
        return "finite differences of your forward"
    return f"edge regime “{stage.removeprefix('edge: ')}”" if stage.startswith("edge: ") else stage


def _worst(op) -> str:
    f64 = max((e for c in op.cases for e in c.worst.values()), default=0.0)
    ratios = [v for c in op.cases for m, v, _ in c.float32 if m.endswith(" R")]
    text = f"float64 worst {f64:.1e}"
    if ratios:
        text += f", float32 R ≤ {max(ratios):.2f}"
    return text
