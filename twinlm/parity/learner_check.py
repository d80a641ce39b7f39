"""`twinlm check --impl PATH`: the project's own parity battery turned on a learner's ops.

For each op PATH defines (twinlm/parity/learner.py finds and loads them), every case of that op in
the registry (twinlm/parity/opcases.py; attention, for one, has a causal, a non-causal and a dropout
case) runs with the learner's forward composed with the learner's backward (the cache is theirs):
  float64   the forward's outputs and every gradient, for random upstream gradients, against
            numpy_impl's reference at the case's default sizes: relative error ≤ 1e-10 (a
            gradient's relative to the op's largest gradient at least, as in the parity suite);
  fd        the learner's backward against finite differences of the learner's forward (the full
            Jacobian on tiny sizes, and the adjoint identity), per gradient: ≤ 1e-7;
  edges     the op's edge regimes (OpCase.edges) and its smallest sizes, as float64;
  sweep     hypothesis draws `examples` inputs of every size from 1 up; a failure it finds is
            shrunk to the smallest input that still shows it;
  float32   once all of float64 holds, the float32 rule (twinlm/parity/harness.py) over
            `examples` examples, torch's own float32 as the yardstick.
A forward without its backward is checked as a forward. Where a failure looks like a mistake people
commonly make, twinlm/parity/hints.py says which. `verify` is the entry point for notebooks and
pytest; learner_pair.py runs the two pairs side by side, learner_report.py prints what verify
returns.
"""

from __future__ import annotations

import copy
import hashlib
import math
import random
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from hypothesis import HealthCheck, Phase, Verbosity, find, settings
from hypothesis.errors import NoSuchExample

from twinlm.parity import hints
from twinlm.parity.harness import (
    TOL_FD,
    TOL_FLOAT64,
    Arrays,
    Edge,
    Float32Runs,
    OpCase,
    adjoint_error,
    compare_float32,
    finite_difference_errors,
    random_douts,
)
from twinlm.parity.learner import Impl, LearnerError, LearnerOp, load_impl
from twinlm.parity.learner_pair import Evaluation, Pair
from twinlm.parity.strategies import case_inputs

EXAMPLES = 10  # hypothesis examples in the sweep, and float32 examples
SHRINK_SECONDS = 3.0  # the sweep (search and shrinking) stops after this long, per case


@dataclass
class Failure:
    """One thing wrong in one case: `what` is a tensor ("gradient of `x`") or a function."""

    case: str
    what: str
    stage: str  # "float64", "finite differences", "edge: …", "sweep", "float32"
    message: str
    error: float = math.nan
    detail: list[str] = field(default_factory=list)


@dataclass
class CaseResult:
    name: str
    failures: list[Failure]
    worst: dict[str, float]  # the worst float64 error seen per tensor (against the reference)
    float32: list[tuple[str, float, float]]  # (measure, value, tolerance), once float64 holds
    main: Evaluation | None  # the float64 example at the default sizes (hints look at it)
    pair: Pair


@dataclass
class OpResult:
    op: str
    cases: list[CaseResult]
    forward_only: bool
    not_implemented: list[str]  # the functions that raise NotImplementedError
    hints: list[hints.Hint]
    seconds: float

    @property
    def status(self) -> str:
        if self.not_implemented and not self.cases:
            return "not implemented"
        return "FAIL" if self.not_implemented or any(c.failures for c in self.cases) else "pass"


@dataclass
class Report:
    """What `verify` found: `ok` is True when every op checked passes; str() is the table."""

    source: str
    ops: list[OpResult]
    notes: list[str]

    @property
    def ok(self) -> bool:
        return all(r.status == "pass" for r in self.ops)

    def __str__(self) -> str:
        from twinlm.parity.learner_report import format_report

        return format_report(self)

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython / Jupyter show the table
        printer.text(str(self))


# ---- the stages -----------------------------------------------------------------------------------


def _judge(ev: Evaluation, case: str, stage: str, tol: float = TOL_FLOAT64) -> list[Failure]:
    return [
        Failure(
            case,
            what,
            stage,
            ev.notes.get(what) or f"relative error {error:.1e} (tolerance {tol:.0e})",
            error,
        )
        for what, error in ev.errors.items()
        if not error <= tol
    ]


def _fd_failures(pair: Pair, seed: int) -> list[Failure]:
    """The learner's backward against finite differences of the learner's forward."""
    case = pair.case
    rng = np.random.default_rng([seed, 10_000])
    inputs = case.sample(rng, np.float64, case.fd_dims)
    failures = []
    with np.errstate(all="ignore"):
        errors = pair._mine(
            lambda: finite_difference_errors(pair.mine, inputs), pair.backward, False
        )
        for k in case.grad_inputs:
            adjoint = pair._mine(
                lambda k=k: adjoint_error(pair.mine, inputs, rng, inputs=(k,)), pair.backward, False
            )
            worst = max(errors[k], adjoint)
            if not worst <= TOL_FD:
                message = (
                    f"your backward disagrees with finite differences of your own forward by "
                    f"{worst:.1e} (tolerance {TOL_FD:.0e})"
                )
                failures.append(
                    Failure(case.name, pair.grad_label(k), "finite differences", message, worst)
                )
    return failures


def _fingerprint(inputs: Arrays) -> bytes:
    h = hashlib.sha1()
    for k, a in inputs.items():
        h.update(k.encode())
        if a is not None:
            a = np.asarray(a)
            h.update(str((a.shape, a.dtype)).encode())
            h.update(np.ascontiguousarray(a).tobytes())
    return h.digest()


def _first_failure(pair: Pair, inputs: Arrays, rng, backward: bool, target: str | None):
    """(what, message, evaluation or None) of the first failure on these inputs (the `target`'s
    only, if given), or None."""
    try:
        ev = pair.evaluate(inputs, rng, backward)
    except LearnerError as e:
        return None if target else ("function", str(e), None)
    for f in _judge(ev, pair.case.name, "sweep"):
        if target in (None, f.what):
            return f.what, f.message, ev
    return None


class _OutOfTime(BaseException):
    """Stops hypothesis's search where shrinking runs out of time. A BaseException, as hypothesis
    would shrink an Exception as one more failure; this one it passes straight up."""


def _sweep(pair: Pair, backward: bool, examples: int, seed: int, target: str | None):
    """hypothesis's search over sizes and inputs, and the failure it finds shrunk (Failure|None).
    Shrinking stops after SHRINK_SECONDS with the smallest failing input found by then (the
    shrinker only ever tries inputs smaller than its current best)."""
    found: dict[bytes, tuple | None] = {}
    smallest: list = []
    start = time.monotonic()

    def fails(drawn) -> bool:
        inputs, rng = drawn
        key = _fingerprint(inputs)
        if key not in found:
            if time.monotonic() - start > SHRINK_SECONDS:
                raise _OutOfTime
            found[key] = _first_failure(pair, inputs, copy.deepcopy(rng), backward, target)
        if found[key] is not None:
            smallest[:] = [inputs]
        return found[key] is not None

    options = settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=False,
        verbosity=Verbosity.quiet,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )
    try:
        inputs, _ = find(
            case_inputs(pair.case), fails, settings=options, random=random.Random(seed)
        )
    except NoSuchExample:
        return None
    except _OutOfTime:
        if not smallest:
            return None
        inputs = smallest[0]
    what, message, ev = found[_fingerprint(inputs)]
    detail = [f"smallest failing input found (hypothesis, shrunk): {_shapes(inputs)}"]
    detail += _show_example(pair, inputs, ev, what)
    return Failure(pair.case.name, what, "sweep", message, detail=detail)


def _shapes(inputs: Arrays) -> str:
    return ", ".join(
        f"{k} {np.shape(a)}" for k, a in inputs.items() if a is not None and np.ndim(a)
    )


def _show_example(pair: Pair, inputs: Arrays, ev: Evaluation | None, what: str) -> list[str]:
    """The example's arrays, and (for a tensor) the learner's and the reference's values."""
    rows = [(k, a) for k, a in inputs.items() if a is not None]
    if ev is not None:
        rows += [(f"d{o}", d) for o, d in zip(pair.outputs, ev.douts)]
        mine, ref = pair.values(ev, what)
        if mine is not None:
            rows += [(f"yours: {what}", mine), ("numpy_impl's", ref)]
    width = max(len(k) for k, _ in rows[:14])
    lines = [f"  {k:<{width}} = {_fmt(a, width + 5)}" for k, a in rows[:14]]
    return lines + ([f"… and {len(rows) - 14} more arrays"] if len(rows) > 14 else [])


def _fmt(a, indent: int) -> str:
    text = np.array2string(np.asarray(a), precision=4, threshold=24, edgeitems=3, max_line_width=96)
    return text.replace("\n", "\n" + " " * indent)


def _float32(pair: Pair, backward: bool, examples: int, seed: int):
    """(failures, verdicts): the float32 rule over `examples` examples at the default sizes."""
    case = pair.case
    mine = pair.mine if backward else replace(pair.mine, grad_inputs=())
    runs = Float32Runs()
    for i in range(examples):
        rng = np.random.default_rng([seed, i])
        inputs = case.sample(rng, np.float64, case.dims)
        if i == 0:  # dtypes and shapes of the float32 results, and no NaN where torch has none
            inputs32 = {
                k: a.astype(np.float32) if a is not None and a.dtype == np.float64 else a
                for k, a in inputs.items()
            }
            ev = pair.evaluate(inputs32, np.random.default_rng([seed, i, 32]), backward)
            bad = [Failure(case.name, w, "float32", n) for w, n in ev.notes.items()]
            if bad:
                return bad, []
        douts = random_douts(rng, pair.ref.np_forward(inputs)[0]) if backward else None
        compare_float32(mine, inputs, douts, runs, backends=("numpy",))
    verdicts = runs.verdicts()
    failures = []
    for measure, value, tol in verdicts:
        if not value <= tol:
            group = "forward outputs" if " fwd " in measure else "gradients"
            if measure.endswith(" R"):
                text = f"R = {value:.3g} > {tol:g}, the RMS error over {examples} examples"
            else:
                text = f"{value:.3g} u > {tol:g} u in one example (u = 2^-24 · max|float64 result|)"
            failures.append(
                Failure(
                    case.name,
                    f"float32 {group}",
                    "float32",
                    f"{text}, relative to torch's own float32: less accurate than torch",
                    value,
                )
            )
    return failures, verdicts


def check_case(case: OpCase, op: LearnerOp, examples: int, seed: int) -> CaseResult:
    pair = Pair(case, op)
    backward = op.backward is not None
    result = CaseResult(case.name, [], {}, [], None, pair)

    def record(ev: Evaluation, stage: str) -> None:
        for what, error in ev.errors.items():
            result.worst[what] = max(result.worst.get(what, 0.0), error)
        result.failures.extend(_judge(ev, case.name, stage))

    try:
        rng = np.random.default_rng([seed, 0])
        result.main = pair.evaluate(case.sample(rng, np.float64, case.dims), rng, backward)
        record(result.main, "float64")
        if backward:
            result.failures += _fd_failures(pair, seed)
        smallest = {k: case.min_dims.get(k, 1) for k in case.dims}
        for i, edge in enumerate((*case.edges, Edge("smallest sizes", smallest))):
            rng = np.random.default_rng([seed, 20_000 + i])
            record(pair.evaluate(edge.sample(case, rng), rng, backward), f"edge: {edge.label}")
    except LearnerError as e:
        result.failures.append(Failure(case.name, "function", "float64", str(e)))
        return result
    target = next((f.what for f in result.failures if f.stage == "float64"), None)
    found = _sweep(pair, backward, examples, seed, target)
    if found is not None:
        result.failures.append(found)
    if not result.failures:
        try:
            failures, result.float32 = _float32(pair, backward, examples, seed)
        except LearnerError as e:
            failures = [Failure(case.name, "function", "float32", str(e))]
        result.failures += failures
    return result


def _not_implemented(op: LearnerOp, case: OpCase) -> list[str]:
    """The functions of `op` that raise NotImplementedError (an unfilled `twinlm exercise`)."""
    missing = []
    pair = Pair(case, op)
    inputs = case.sample(np.random.default_rng(0), np.float64, case.fd_dims)
    try:
        pair.mine.np_forward(inputs)
    except LearnerError as e:
        if e.not_implemented:
            missing.append(pair.forward.name)
    if op.backward is not None:
        douts = pair.ref.np_forward(inputs)[0]
        try:
            with np.errstate(all="ignore"):
                op.backward(*douts, None)
        except NotImplementedError:
            missing.append(pair.backward.name)
        except Exception:  # noqa: S110 - a real backward fails on cache None: it is written
            pass
    return missing


def check_op(op: LearnerOp, examples: int = EXAMPLES, seed: int = 0) -> OpResult:
    """Every registered case of `op` through the battery (module docstring)."""
    from twinlm.parity.opcases import CASES

    start = time.monotonic()
    cases = [c for c in CASES if c.op == op.op]
    missing = _not_implemented(op, cases[0])
    results = []
    if f"{op.op}_forward" not in missing:
        if f"{op.op}_backward" in missing:
            op = replace(op, backward=None)
        results = [check_case(c, op, examples, seed) for c in cases]
    result = OpResult(op.op, results, op.backward is None, missing, [], 0.0)
    if any(c.failures for c in results):
        result.hints = hints.diagnose(result)
    result.seconds = time.monotonic() - start
    return result


def verify(
    impl: str | Path | ModuleType,
    op: str | None = None,
    examples: int = EXAMPLES,
    seed: int = 0,
) -> Report:
    """Check the learner's ops in `impl` (a .py file, a folder of them, or a module) against
    numpy_impl's: `verify("my_layers.py").ok`, and print(report) for the table. Loading a file runs
    it. Raises ImplError (a ValueError) where impl cannot be checked (twinlm/parity/learner.py)."""
    if examples < 1:
        raise ValueError(f"examples must be at least 1, got {examples}")
    found: Impl = load_impl(impl, op)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: torch's thread pool only waits (parity_tests/conftest.py)
    try:
        results = [check_op(o, examples, seed) for o in found.ops.values()]
    finally:
        torch.set_num_threads(threads)
    return Report(found.source, results, found.notes)


def run_learner_check(
    impl: str, op: str | None = None, examples: int | None = None, seed: int = 0
) -> int:
    """`twinlm check --impl`: print the report; 0 when every op passes, 1 when one fails or is
    not implemented yet (ImplError, exit 2, where impl cannot be checked)."""
    report = verify(impl, op, examples or EXAMPLES, seed)
    print(report)
    return 0 if report.ok else 1
