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
Each was derived from a real wrong implementation in parity_tests/learner/learner_wrong.py, whose
test checks that the hint fires for its mistake and no hint fires for another.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

import numpy_impl
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
    """The hints for an op's failures (an OpResult of learner_check), each once."""
    found: dict[str, Hint] = {}
    for case in result.cases:
        if not case.failures:
            continue
        for detector in (*_GENERAL, *_BY_OP.get(result.op, ())):
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


def _failing(case, stage: str = "float64") -> list[str]:
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
    if not _failing(case) and not any(f.stage.startswith("edge") for f in case.failures):
        return None
    if not any(not c.failures for c in result.cases):
        return None
    right = ", ".join(c.name for c in result.cases if not c.failures)
    return Hint("variant", VARIANTS.get(case.name, f"right in {right}, wrong in {case.name}"))


# ---- known wrong formulas ---------------------------------------------------------------------


def _matches(mine, formula) -> bool:
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
    for what in _failing(case):
        mine, ref = _pick(case, ev, what)
        if mine is None or not np.any(ref):
            continue
        c = float(np.vdot(mine, ref) / np.vdot(ref, ref))
        if abs(c - 1) < 1e-6 or not _matches(mine, c * ref):
            continue
        named = [
            text for value, text in _factor_names(case, ev) if abs(c - value) <= 1e-6 * abs(value)
        ]
        tail = f" = {named[0]}" if named else ""
        return Hint("constant factor", f"the {what} is off by exactly the factor {c:.6g}{tail}")
    return None


def _pick(case, ev, what):
    mine, ref = case.pair.values(ev, what)
    if mine is None:
        return None, None
    return np.asarray(mine, np.float64), np.asarray(ref, np.float64)


def _identity(result, case) -> Hint | None:
    ev = case.main
    for what in _failing(case):
        mine, _ = _pick(case, ev, what)
        if what.startswith("gradient") and len(ev.douts) == 1 and _matches(mine, ev.douts[0]):
            return Hint(
                "identity",
                f"the {what} is the upstream gradient unchanged: the backward must apply the "
                "forward's own derivative (for dropout, the same mask and 1/(1 - p))",
            )
    return None


def _product_rule(result, case) -> Hint | None:
    ev = case.main
    x, y, dy = ev.inputs["x"], ev.ref_outs[0], ev.douts[0]
    away = np.abs(x) > 1e-3
    gate = np.where(away, y / np.where(away, x, 1.0), 0.0)  # s(x) = y / x
    if not _matches(np.where(away, ev.grads["x"], 0.0), dy * gate):
        return None
    return Hint(
        "product rule",
        "dx = dy ⊙ s(x) only: y = x·s(x), so dx = dy ⊙ (s(x) + x·s'(x)) (the product rule)",
    )


def _softmax(result, case) -> Hint | None:
    ev = case.main
    s, ds = ev.ref_outs[0], ev.douts[0]
    mine_s = ev.outs[0]
    if "forward output `s`" in _failing(case):
        for axis in range(mine_s.ndim - 1):
            if np.allclose(mine_s.sum(axis=axis), 1.0, rtol=0, atol=1e-9):
                return Hint(
                    "wrong axis",
                    f"your s sums to 1 along axis {axis}, not along the last axis: normalise "
                    "over axis=-1 (keepdims=True)",
                )
        return None
    dx = ev.grads.get("x")
    if dx is None:
        return None
    if _matches(dx, s * (1 - s) * ds):
        return Hint(
            "softmax diagonal",
            "dx = s (1 - s) ⊙ ds is the Jacobian's diagonal only: each s_i depends on every x_k, "
            "∂s_i/∂x_k = s_i (δ_ik - s_k)",
        )
    if _matches(dx, s * ds):
        return Hint(
            "softmax sum term",
            "dx = s ⊙ ds misses the term -s_i Σ_j ds_j s_j: the normaliser Σ exp(x_j) depends on "
            "every x_j",
        )
    return None


def _norm_forms(result, case) -> Hint | None:
    """LayerNorm / RMSNorm forwards: the unbiased variance, ε outside the square root."""
    ev = case.main
    if not any(w.startswith("forward output") for w in _failing(case)):
        return None
    x = ev.inputs["x"]
    if result.op == "layernorm":
        centred, eps = x - x.mean(-1, keepdims=True), 1e-5
        var, weight, shift = (
            (centred**2).mean(-1, keepdims=True),
            ev.inputs["scale"],
            ev.inputs["shift"],
        )
        forms = {
            "unbiased variance": centred
            / np.sqrt(var * x.shape[-1] / max(x.shape[-1] - 1, 1) + eps),
            "eps inside": centred / (np.sqrt(var) + eps),
        }
    else:
        centred, eps, weight, shift = x, 1e-6, ev.inputs["weight"], 0.0
        forms = {"eps inside": x / (np.sqrt((x * x).mean(-1, keepdims=True)) + eps)}
    texts = {
        "unbiased variance": "the forward uses the unbiased variance (÷ (D - 1), np.var(ddof=1), "
        "torch.var's default): LayerNorm's divides by D",
        "eps inside": "the forward divides by √var + ε: ε goes inside the square root, √(var + ε)",
    }
    for key, xhat in forms.items():
        if _matches(ev.outs[0], xhat * weight + shift):
            return Hint(key, texts[key])
    return None


def _probe_terms(result, case) -> Hint | None:
    """LayerNorm / RMSNorm backward: rerun with upstream gradients for which one term of dx
    vanishes; right there and wrong with random ones names that term."""
    ev = case.main
    if "gradient of `x`" not in _failing(case):
        return None
    x, dy = ev.inputs["x"], ev.douts[0]
    weight = ev.inputs["scale" if result.op == "layernorm" else "weight"]
    if result.op == "layernorm":
        centred = x - x.mean(-1, keepdims=True)
        xhat = centred / np.sqrt((centred**2).mean(-1, keepdims=True) + 1e-5)
    else:
        xhat = x / np.sqrt((x * x).mean(-1, keepdims=True) + 1e-6)
    g = dy * weight
    along = (
        xhat
        * (g * xhat).mean(-1, keepdims=True)
        / np.maximum((xhat**2).mean(-1, keepdims=True), 1e-300)
    )
    probes = {"variance": g - along}
    if result.op == "layernorm":
        probes["mean"] = g - g.mean(-1, keepdims=True)
    for term, probe in probes.items():
        again = case.pair.evaluate(ev.inputs, None, True, (probe / weight,))
        if again.errors["gradient of `x`"] <= TOL_FLOAT64:
            if result.op == "rmsnorm":
                return Hint(
                    "rmsnorm term",
                    "dx is right when g = dy ⊙ weight is orthogonal to x̂ in each row, wrong "
                    "otherwise: the term -x̂·mean(g ⊙ x̂), through the root mean square",
                )
            if term == "mean":
                return Hint(
                    "layernorm mean term",
                    "dx is right when g = dy ⊙ scale has zero mean along each row, wrong otherwise: "
                    "the term -mean(g), through the mean μ",
                )
            return Hint(
                "layernorm variance term",
                "dx is right when g = dy ⊙ scale is orthogonal to x̂ in each row, wrong otherwise: "
                "the term -x̂·mean(g ⊙ x̂), through the variance",
            )
    return None


def _embedding(result, case) -> Hint | None:
    ev = case.main
    if "gradient of `weight`" not in _failing(case):
        return None
    counts = np.bincount(ev.inputs["ids"].ravel(), minlength=ev.inputs["weight"].shape[0])
    wrong = np.abs(ev.grads["weight"] - ev.ref_grads["weight"]).max(axis=-1)
    scale = np.abs(ev.ref_grads["weight"]).max()
    once, many = wrong[counts == 1], wrong[counts > 1]
    if many.size and (once.size == 0 or once.max() <= 1e-12 * scale) and many.max() > 1e-9 * scale:
        return Hint("repeated ids", "right for ids that occur once, wrong for repeated ids: "
                    "accumulate their rows (np.add.at, +=), do not assign")  # fmt: skip
    return None


def _attention(result, case) -> Hint | None:
    ev = case.main
    if "forward output `y`" not in _failing(case) or "[non-causal]" in case.name:
        return None
    q, k, v, mask = (ev.inputs.get(n) for n in ("q", "k", "v", "dropout_mask"))
    t_q, t_k = q.shape[-2], k.shape[-2]
    a, _ = numpy_impl.softmax_forward(q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1]))
    a = a * np.tril(np.ones((t_q, t_k)), k=t_k - t_q)
    if mask is not None:
        a = a * mask / (1 - 0.2)
    if _matches(ev.outs[0], a @ v):
        return Hint(
            "mask after softmax",
            "the causal mask is applied after the softmax, so the rows no longer sum to 1: set "
            "masked scores to -inf before it",
        )
    return None


# (op, the sizes at whose smallest the op is right) -> the hint: the axis that is wrong.
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
    if not _failing(case) or not probed:
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


def _rope(result, case) -> Hint | None:
    ev = case.main
    x, cos, sin = ev.inputs["x"], ev.inputs["cos"], ev.inputs["sin"]
    if "forward output `y`" in _failing(case):
        for shift in (1, -1):
            rolled = numpy_impl.rope_forward(x, np.roll(cos, shift, 0), np.roll(sin, shift, 0))[0]
            if _matches(ev.outs[0], rolled):
                return Hint(
                    "rope off by one",
                    f"position t is rotated by the angles of position t {'-' if shift > 0 else '+'} 1: "
                    "row t of cos and sin belongs to position t",
                )
    if "gradient of `x`" in _failing(case):
        if _matches(ev.grads["x"], numpy_impl.rope_forward(ev.douts[0], cos, sin)[0]):
            return Hint(
                "rope inverse",
                "dx rotates dy by +θ again: the gradient of a rotation R is Rᵀ, the rotation by -θ "
                "(sin negated)",
            )
    return None


_GATES = {"lstm_cell": "ifgo", "gru_cell": "rzn"}


def _gate_order(result, case) -> Hint | None:
    ev = case.main
    if not any(w.startswith("forward output") for w in _failing(case)):
        return None
    layout = _GATES[result.op]
    forward = getattr(numpy_impl, f"{result.op}_forward")
    args = [ev.inputs[k] for k in ("x", "h", "c") if k in ev.inputs]
    weights = [ev.inputs[k] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    H = ev.inputs["h"].shape[-1]
    for order in itertools.permutations(layout):
        if order == tuple(layout):
            continue
        rows = np.concatenate([np.arange(H) + H * order.index(g) for g in layout])
        out = forward(*args, *(w[rows] for w in weights))[0]
        if _matches(_first(ev.outs), _first(out)):
            return Hint(
                "gate order",
                f"the forward matches the gate rows in the order {', '.join(order)}: torch's "
                f"layout is {', '.join(layout)}",
            )
    if result.op != "gru_cell":
        return None
    if _matches(ev.outs[0], forward(*args, *weights, reset_after=False)[0]):
        return Hint(
            "gru reset before",
            "the reset gate acts before the hidden matmul (Cho 2014): torch's GRU applies it "
            "after, n = tanh(x W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn))",
        )
    flip = np.ones(3 * H)
    flip[H : 2 * H] = -1  # σ(-a) = 1 - σ(a): z's rows negated turn z into 1 - z
    w_ih, w_hh, b_ih, b_hh = weights
    if _matches(
        ev.outs[0],
        forward(*args, w_ih * flip[:, None], w_hh * flip[:, None], b_ih * flip, b_hh * flip)[0],
    ):
        return Hint(
            "gru z swapped",
            "h' = z ⊙ n + (1 - z) ⊙ h is Karpathy's form: torch's is h' = (1 - z) ⊙ n + z ⊙ h",
        )
    return None


def _first(outs):
    return outs[0] if isinstance(outs, tuple) else outs


def _tanh_slope(result, case) -> Hint | None:
    ev = case.main
    if "tanh" not in case.name or "gradient of `x`" not in _failing(case):
        return None
    i = ev.inputs
    a = i["x"] @ i["weight_ih"].T + i["bias_ih"] + i["h"] @ i["weight_hh"].T + i["bias_hh"]
    if _matches(ev.grads["x"], (ev.douts[0] * (1 - a**2)) @ i["weight_ih"]):
        return Hint(
            "tanh slope",
            "the slope is 1 - a², a the pre-activation: tanh'(a) = 1 - tanh²(a) = 1 - h'², "
            "from the output",
        )
    return None


def _feedforward(result, case) -> Hint | None:
    ev = case.main
    if "forward output `y`" not in _failing(case):
        return None
    i = ev.inputs
    h = i["x"] @ i["layers.0.weight"].T + i["layers.0.bias"]
    exact = numpy_impl.gelu_forward(h, "none")[0] @ i["layers.2.weight"].T + i["layers.2.bias"]
    if _matches(ev.outs[0], exact):
        return Hint(
            "exact gelu",
            "your feed-forward uses the exact (erf) GELU: GPT-2's uses the tanh approximation",
        )
    return None


def _with_main(detector):
    """A detector that needs the failing case's float64 example."""

    def run(result, case):
        return detector(result, case) if case.main is not None and _numeric(case) else None

    return run


_GENERAL = (
    _edge_only,
    _float32_only,
    _float64_promotion,
    _variant,
    _with_main(_constant_factor),
    _with_main(_identity),
    _with_main(_dims),
)
_BY_OP = {
    "softmax": (_with_main(_softmax),),
    "gelu": (_with_main(_product_rule),),
    "silu": (_with_main(_product_rule),),
    "layernorm": (_with_main(_norm_forms), _with_main(_probe_terms)),
    "rmsnorm": (_with_main(_norm_forms), _with_main(_probe_terms)),
    "embedding": (_with_main(_embedding),),
    "attention": (_with_main(_attention),),
    "rope": (_with_main(_rope),),
    "lstm_cell": (_with_main(_gate_order),),
    "gru_cell": (_with_main(_gate_order),),
    "rnn_cell": (_with_main(_tanh_slope),),
    "feedforward": (_with_main(_feedforward),),
}
