"""The op-specific hints of `twinlm check --impl` (twinlm/parity/hints.py has the general ones and
the reasons): known wrong formulas computed from the inputs and compared with what the learner
returned (the product rule's missing term, the softmax Jacobian's diagonal, the unbiased variance,
ε outside the root, the causal mask after the softmax, gate orders, the GRU's conventions, RoPE's
neighbour rows and inverse rotation, tanh' from the pre-activation, the exact GELU), and probes
(LayerNorm's and RMSNorm's terms of dx, each id's rows). Each from a mistake in
parity_tests/learner/learner_wrong.py.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

import numpy_impl
from twinlm.parity.harness import TOL_FLOAT64
from twinlm.parity.hints import Hint, failing, matches, with_main


def _product_rule(result, case) -> Hint | None:
    ev = case.main
    x, y, dy = ev.inputs["x"], ev.ref_outs[0], ev.douts[0]
    away = np.abs(x) > 1e-3
    gate = np.where(away, y / np.where(away, x, 1.0), 0.0)  # s(x) = y / x
    if not matches(np.where(away, ev.grads["x"], 0.0), dy * gate):
        return None
    return Hint(
        "product rule",
        "dx = dy ⊙ s(x) only: y = x·s(x), so dx = dy ⊙ (s(x) + x·s'(x)) (the product rule)",
    )


def _softmax(result, case) -> Hint | None:
    ev = case.main
    s, ds = ev.ref_outs[0], ev.douts[0]
    mine_s = ev.outs[0]
    if "forward output `s`" in failing(case):
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
    if matches(dx, s * (1 - s) * ds):
        return Hint(
            "softmax diagonal",
            "dx = s (1 - s) ⊙ ds is the Jacobian's diagonal only: each s_i depends on every x_k, "
            "∂s_i/∂x_k = s_i (δ_ik - s_k)",
        )
    if matches(dx, s * ds):
        return Hint(
            "softmax sum term",
            "dx = s ⊙ ds misses the term -s_i Σ_j ds_j s_j: the normaliser Σ exp(x_j) depends on "
            "every x_j",
        )
    return None


def _norm_forms(result, case) -> Hint | None:
    """LayerNorm / RMSNorm forwards: the unbiased variance, ε outside the square root."""
    ev = case.main
    if not any(w.startswith("forward output") for w in failing(case)):
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
        if matches(ev.outs[0], xhat * weight + shift):
            return Hint(key, texts[key])
    return None


def _probe_terms(result, case) -> Hint | None:
    """LayerNorm / RMSNorm backward: rerun with upstream gradients for which one term of dx
    vanishes; right there and wrong with random ones names that term."""
    ev = case.main
    if "gradient of `x`" not in failing(case):
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
    if "gradient of `weight`" not in failing(case):
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
    if "forward output `y`" not in failing(case) or "[non-causal]" in case.name:
        return None
    q, k, v, mask = (ev.inputs.get(n) for n in ("q", "k", "v", "dropout_mask"))
    t_q, t_k = q.shape[-2], k.shape[-2]
    a, _ = numpy_impl.softmax_forward(q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1]))
    a = a * np.tril(np.ones((t_q, t_k)), k=t_k - t_q)
    if mask is not None:
        a = a * mask / (1 - 0.2)
    if matches(ev.outs[0], a @ v):
        return Hint(
            "mask after softmax",
            "the causal mask is applied after the softmax, so the rows no longer sum to 1: set "
            "masked scores to -inf before it",
        )
    return None


# (op, the sizes at whose smallest the op is right) -> the hint: the axis that is wrong.


def _rope(result, case) -> Hint | None:
    ev = case.main
    x, cos, sin = ev.inputs["x"], ev.inputs["cos"], ev.inputs["sin"]
    if "forward output `y`" in failing(case):
        for shift in (1, -1):
            rolled = numpy_impl.rope_forward(x, np.roll(cos, shift, 0), np.roll(sin, shift, 0))[0]
            if matches(ev.outs[0], rolled):
                return Hint(
                    "rope off by one",
                    f"position t is rotated by the angles of position t {'-' if shift > 0 else '+'} 1: "
                    "row t of cos and sin belongs to position t",
                )
    if "gradient of `x`" in failing(case):
        if matches(ev.grads["x"], numpy_impl.rope_forward(ev.douts[0], cos, sin)[0]):
            return Hint(
                "rope inverse",
                "dx rotates dy by +θ again: the gradient of a rotation R is Rᵀ, the rotation by -θ "
                "(sin negated)",
            )
    return None


_GATES = {"lstm_cell": "ifgo", "gru_cell": "rzn"}


def _gate_order(result, case) -> Hint | None:
    ev = case.main
    if not any(w.startswith("forward output") for w in failing(case)):
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
        if matches(_first(ev.outs), _first(out)):
            return Hint(
                "gate order",
                f"the forward matches the gate rows in the order {', '.join(order)}: torch's "
                f"layout is {', '.join(layout)}",
            )
    if result.op != "gru_cell":
        return None
    if matches(ev.outs[0], forward(*args, *weights, reset_after=False)[0]):
        return Hint(
            "gru reset before",
            "the reset gate acts before the hidden matmul (Cho 2014): torch's GRU applies it "
            "after, n = tanh(x W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn))",
        )
    flip = np.ones(3 * H)
    flip[H : 2 * H] = -1  # σ(-a) = 1 - σ(a): z's rows negated turn z into 1 - z
    w_ih, w_hh, b_ih, b_hh = weights
    if matches(
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
    if "tanh" not in case.name or "gradient of `x`" not in failing(case):
        return None
    i = ev.inputs
    a = i["x"] @ i["weight_ih"].T + i["bias_ih"] + i["h"] @ i["weight_hh"].T + i["bias_hh"]
    if matches(ev.grads["x"], (ev.douts[0] * (1 - a**2)) @ i["weight_ih"]):
        return Hint(
            "tanh slope",
            "the slope is 1 - a², a the pre-activation: tanh'(a) = 1 - tanh²(a) = 1 - h'², "
            "from the output",
        )
    return None


def _feedforward(result, case) -> Hint | None:
    ev = case.main
    if "forward output `y`" not in failing(case):
        return None
    i = ev.inputs
    h = i["x"] @ i["layers.0.weight"].T + i["layers.0.bias"]
    exact = numpy_impl.gelu_forward(h, "none")[0] @ i["layers.2.weight"].T + i["layers.2.bias"]
    if matches(ev.outs[0], exact):
        return Hint(
            "exact gelu",
            "your feed-forward uses the exact (erf) GELU: GPT-2's uses the tanh approximation",
        )
    return None


BY_OP = {
    "softmax": (with_main(_softmax),),
    "gelu": (with_main(_product_rule),),
    "silu": (with_main(_product_rule),),
    "layernorm": (with_main(_norm_forms), with_main(_probe_terms)),
    "rmsnorm": (with_main(_norm_forms), with_main(_probe_terms)),
    "embedding": (with_main(_embedding),),
    "attention": (with_main(_attention),),
    "rope": (with_main(_rope),),
    "lstm_cell": (with_main(_gate_order),),
    "gru_cell": (with_main(_gate_order),),
    "rnn_cell": (with_main(_tanh_slope),),
    "feedforward": (with_main(_feedforward),),
}
