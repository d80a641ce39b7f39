"""Hints for `twinlm check --impl`: where a learner's failure matches a mistake people commonly make,
one line saying which. Each hint tests the evidence, and stays silent when it does not match:
  - which stages and cases fail: only an edge regime (exp overflowing at logits ±1e4), only float32,
    one variant of the op and not another (with dropout, with ignored targets, approximate='none');
  - probes: the learner's op rerun where one term vanishes (upstream gradients orthogonal to x̂,
    one head, one kv head per query head, no KV cache): right there and wrong elsewhere names the
    term or the axis that is wrong;
  - known wrong formulas, computed from the inputs and compared with what the learner returned: an
    exact constant factor (1/√d, 1 - p, the upstream gradient), the product rule's missing term,
    the diagonal of the softmax Jacobian, the unbiased variance, ε outside the root, the causal mask
    after the softmax, gate orders, GRU conventions, RoPE's neighbour rows and inverse rotation.
The general ones are here; those of one op in twinlm/parity/hints_ops.py. Each was derived from a real wrong implementation in parity_tests/learner/learner_wrong.py, whose
test checks that the hint fires for its mistake and no hint fires for another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from twinlm.parity.harness import TOL_FLOAT64, rel_error

MATCH = 1e-8  # a wrong formula "matches" the learner's result to this relative error (float64)


@dataclass(frozen=True)
class Hint:
    key: str
    text: str

    def __str__(self) -> str:
        return self.text


def shape_hint(got: tuple[int, ...], want: tuple[int, ...]) -> str:
    """A clause for a result of the wrong shape."""
    if len(got) == len(want) >= 2 and got == want[::-1]:
        return " (the transpose)"
    if len(got) > len(want) and got[len(got) - len(want) :] == want:
        return " (summed over too few axes: a parameter's gradient sums over every leading axis)"
    return ""


def diagnose(result) -> list[Hint]:
    """The hints for an op's failures (an OpResult of learner_check), each once: the general
    detectors here, then the op's own (twinlm/parity/hints_ops.py)."""
    from twinlm.parity.hints_ops import BY_OP

    found: dict[str, Hint] = {}
    for case in result.cases:
        if not case.failures:
            continue
        for detector in (*_GENERAL, *BY_OP.get(result.op, ())):
            try:
                hint = detector(result, case)
            except Exception:  # a hint that cannot be evaluated is a hint not given
                hint = None
            if hint is not None and hint.key not in found:
                found[hint.key] = hint
    return list(found.values())


# ---- what fails where ----------------------------------------------------------------------------


def _stages(case) -> set[str]:
    return {f.stage for f in case.failures}


def _numeric(case) -> bool:
    """Failures of values (not of what a function returned or raised)."""
    return any(f.what != "function" for f in case.failures)


def failing(case, stage: str = "float64") -> list[str]:
    return [f.what for f in case.failures if f.stage == stage and f.what != "function"]


# The edge regimes whose failure alone, with ordinary inputs right, says what the mistake is.
EDGES = {
    "logits ±1e4": (
        "large inputs",
        "correct at ordinary inputs, wrong at large ones (logits ±1e4): exp overflows to inf "
        "there; subtract each row's max before exp (softmax does not change)",
    ),
}


def _edge_only(result, case) -> Hint | None:
    if "float64" in _stages(case) or "sweep" in _stages(case) or not _numeric(case):
        return None
    for f in case.failures:
        label = f.stage.removeprefix("edge: ")
        if f.stage.startswith("edge: ") and label in EDGES:
            return Hint(*EDGES[label])
    return None


def _float32_only(result, case) -> Hint | None:
    if _stages(case) != {"float32"} or not _numeric(case):
        return None
    return Hint(
        "float32 only",
        "right in float64, less accurate than torch's own float32: look for a difference of "
        "nearly equal numbers or a large intermediate rounded (x - logsumexp(x), 1 - σ(x), "
        "E[x²] - E[x]²) and compute from x - max(x), σ(-x), x - mean(x) instead",
    )


def _float64_promotion(result, case) -> Hint | None:
    if not any("as float64 for float32 inputs" in f.message for f in case.failures):
        return None
    return Hint(
        "float64 promotion",
        "float64 out of float32 in: an array made without a dtype (np.zeros(shape)) or a NumPy "
        "float64 scalar (np.sqrt(d), np.float64(...)) promotes the result; use dtype=x.dtype, "
        "math.sqrt",
    )


# What a case adds over the op's other cases, for when it alone fails.
VARIANTS = {
    "linear": "wrong with a bias, right without one: y = x Wᵀ + b, db = Σ over every row of dy",
    "gelu[tanh]": "wrong for approximate='tanh' only: y = ½ x (1 + tanh(√(2/π) (x + 0.044715 x³)))",
    "gelu[none]": "wrong for approximate='none' only: the exact y = x Φ(x), Φ(x) = ½ (1 + erf(x/√2))",
    "attention": "correct without the causal mask: masked scores become -inf before the softmax",
    "attention[non-causal]": "wrong with causal=False: no mask then, and Tq, Tk independent",
    "attention[dropout]": (
        "correct without dropout: with a mask M, y = (A ⊙ M / (1 - p)) v, and the backward passes "
        "through the same M / (1 - p)"
    ),
    "cross_entropy[ignore_index]": (
        "correct when every target counts: rows whose target is ignore_index are left out of the "
        "mean (n = the kept rows) and get zero gradient"
    ),
    "rmsnorm[qk_norm]": (
        "right for x (B, T, D), wrong for x (B, T, heads, head_dim): normalise over the last axis "
        "whatever the number of leading axes"
    ),
    "rnn_cell[tanh]": "wrong for tanh only: tanh'(a) = 1 - tanh²(a) = 1 - h'², from the output",
    "rnn_cell[relu]": "wrong for relu only: relu'(a) = 1 where a > 0, else 0",
}


def _variant(result, case) -> Hint | None:
    """One case of the op right at float64 and this one wrong: name what this case adds."""
    if not failing(case) and not any(f.stage.startswith("edge") for f in case.failures):
        return None
    if not any(not c.failures for c in result.cases):
        return None
    right = ", ".join(c.name for c in result.cases if not c.failures)
    return Hint("variant", VARIANTS.get(case.name, f"right in {right}, wrong in {case.name}"))


# ---- exact factors, the identity, axes -----------------------------------------------------------


def matches(mine, formula) -> bool:
    mine, formula = np.asarray(mine, np.float64), np.asarray(formula, np.float64)
    return mine.shape == formula.shape and rel_error(mine, formula) <= MATCH


def _factor_names(case, ev) -> list[tuple[float, str]]:
    """Scalars a gradient is commonly off by, the op's own first: (value, name)."""
    names = []
    head_dim = case.pair.case.dims.get("head_dim")
    if head_dim:
        names += [
            (math.sqrt(head_dim), "√head_dim: the scores' 1/√d is missing"),
            (head_dim**-0.5, "1/√head_dim: the scores' 1/√d applied once too often"),
        ]
    for p in (0.1, 0.2, 0.3):  # the registry's dropout rates
        names += [
            (1 - p, f"1 - p (p = {p}): dropout's 1/(1 - p) is missing"),
            (1 / (1 - p), f"1/(1 - p) (p = {p}): dropout's scale applied once too often"),
        ]
    if len(ev.douts) == 1 and ev.douts[0].size == 1:
        d = float(ev.douts[0])
        names += [
            (1 / d, "1/dloss: multiply by the upstream gradient"),
            (d, "the upstream gradient"),
        ]
    if "targets" in ev.inputs:
        targets = ev.inputs["targets"]
        kept = int(np.sum(targets != -100))
        names += [
            (kept / targets.size, "n/N: a mean over all N rows, not over the n kept"),
            (kept, "n, the number of kept targets"),
            (1 / kept, "1/n, n the kept targets"),
        ]
    names += [(-1.0, "-1 (the sign)"), (2.0, "2"), (0.5, "½")]
    dims = case.pair.case.dims
    rows = int(np.prod([v for k, v in dims.items() if k in ("batch", "seq")]))
    if rows > 1:
        names += [(1 / rows, "1/(batch·seq): a mean over the rows where the gradient sums")]
    for n, v in dims.items():
        if v > 1:
            names += [(v, n), (1 / v, f"1/{n}"), (math.sqrt(v), f"√{n}"), (v**-0.5, f"1/√{n}")]
    return names


def _constant_factor(result, case) -> Hint | None:
    ev = case.main
    for what in failing(case):
        mine, ref = pick(case, ev, what)
        if mine is None or not np.any(ref):
            continue
        c = float(np.vdot(mine, ref) / np.vdot(ref, ref))
        if abs(c - 1) < 1e-6 or not matches(mine, c * ref):
            continue
        named = [
            text for value, text in _factor_names(case, ev) if abs(c - value) <= 1e-6 * abs(value)
        ]
        tail = f" = {named[0]}" if named else ""
        return Hint("constant factor", f"the {what} is off by exactly the factor {c:.6g}{tail}")
    return None


def pick(case, ev, what):
    mine, ref = case.pair.values(ev, what)
    if mine is None:
        return None, None
    return np.asarray(mine, np.float64), np.asarray(ref, np.float64)


def _identity(result, case) -> Hint | None:
    ev = case.main
    for what in failing(case):
        mine, _ = pick(case, ev, what)
        if what.startswith("gradient") and len(ev.douts) == 1 and matches(mine, ev.douts[0]):
            return Hint(
                "identity",
                f"the {what} is the upstream gradient unchanged: the backward must apply the "
                "forward's own derivative (for dropout, the same mask and 1/(1 - p))",
            )
    return None


DIMS = {
    ("multihead_attention", frozenset({"heads"})): (
        "heads",
        "correct with one head, wrong with several: the split of d_out into heads, view "
        "(B, T, H, hd) then transpose to (B, H, T, hd), or the merge back",
    ),
    ("grouped_query_attention", frozenset({"groups"})): (
        "groups",
        "correct when each query head has its own kv head (G = 1): dk and dv sum over the G query "
        "heads that share a kv head",
    ),
    ("grouped_query_attention", frozenset({"groups", "kv_heads"})): (
        "gqa mapping",
        "correct for multi-head (G = 1) and multi-query (one kv head) attention, wrong in between: "
        "query head h reads kv head h // G (repeat_kv), not h % Hkv",
    ),
    ("attention", frozenset({"past"})): (
        "kv cache",
        "correct without a KV cache (Tk = Tq), wrong with one: query row i sits at key position "
        "i + Tk - Tq, so it sees keys j ≤ i + Tk - Tq",
    ),
}


def _dims(result, case) -> Hint | None:
    """Rerun the failing case with one size at its smallest (one head, one kv head per group, no
    KV cache); the sizes for which it is then right name the axis that is wrong."""
    opcase = case.pair.case
    probed = {n for op, key in DIMS for n in key if op == result.op} & set(opcase.dims)
    if not failing(case) or not probed:
        return None
    right = set()
    for name in sorted(probed):
        low = opcase.min_dims.get(name, 1)
        if low >= opcase.dims[name]:
            continue
        rng = np.random.default_rng([7, len(name)])
        inputs = opcase.sample(rng, np.float64, {**opcase.dims, name: low})
        again = case.pair.evaluate(inputs, rng, case.pair.backward is not None)
        if all(e <= TOL_FLOAT64 for e in again.errors.values()):
            right.add(name)
    hint = DIMS.get((result.op, frozenset(right)))
    return Hint(*hint) if hint else None


def with_main(detector):
    """A detector that needs the failing case's float64 example."""

    def run(result, case):
        return detector(result, case) if case.main is not None and _numeric(case) else None

    return run


_GENERAL = (
    _edge_only,
    _float32_only,
    _float64_promotion,
    _variant,
    with_main(_constant_factor),
    with_main(_identity),
    with_main(_dims),
)
