"""The learner's pair and numpy_impl's run side by side on one input, for `twinlm check --impl`
(twinlm/parity/learner_check.py): `Pair.evaluate` returns both results and the error of each output
and gradient, and turns what the learner's functions raise or return that does not fit (the count,
shape or dtype numpy_impl's have, a Python float for an array) into a LearnerError naming the
function; a NaN or inf where numpy_impl's value is finite is an infinite error, with a note.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import numpy as np

from twinlm.parity import hints
from twinlm.parity.harness import Arrays, OpCase, Outs, random_douts, rel_error
from twinlm.parity.learner import Guarded, LearnerError, LearnerOp, reference


@dataclass
class Evaluation:
    """One input through both pairs: the reference's and the learner's results, errors per tensor."""

    inputs: Arrays
    douts: Outs
    outs: Outs
    grads: Arrays
    ref_outs: Outs
    ref_grads: Arrays
    errors: dict[str, float]
    notes: dict[str, str]


class Recorder:
    """numpy_impl's function, remembering its latest return value (for messages)."""

    def __init__(self, fn) -> None:
        self.fn, self.last = fn, None

    def __call__(self, *args, **kwargs):
        self.last = self.fn(*args, **kwargs)
        return self.last


class Pair:
    """One case run two ways: numpy_impl's reference, and the learner's pair (through Guarded)."""

    def __init__(self, case: OpCase, op: LearnerOp) -> None:
        self.case, self.op = case, op
        self.ref_forward = Recorder(reference(op.op, "forward"))
        self.ref_backward = Recorder(reference(op.op, "backward"))
        self.ref = case.with_numpy(self.ref_forward, self.ref_backward)
        self.forward = Guarded(op.forward, f"{op.op}_forward", op.files)
        self.backward = None
        if op.backward is not None:
            self.backward = Guarded(op.backward, f"{op.op}_backward", op.files, backward=True)
        self.mine = case.with_numpy(self.forward, self.backward)
        backward_params = list(inspect.signature(self.ref_backward.fn).parameters)[:-1]
        self.outputs = [p[1:] if p.startswith("d") else p for p in backward_params]
        self.forward_params = set(inspect.signature(self.ref_forward.fn).parameters)

    def output_label(self, i: int) -> str:
        return f"forward output `{self.outputs[i]}`" if i < len(self.outputs) else f"output {i}"

    def grad_label(self, key: str) -> str:
        return f"gradient of `{key if key in self.forward_params else f'params[{key!r}]'}`"

    def values(self, ev: Evaluation, what: str):
        """(the learner's, the reference's) array of the output or gradient `what` names, or
        (None, None)."""
        for i, o in enumerate(ev.outs):
            if self.output_label(i) == what:
                return o, ev.ref_outs[i]
        for k, g in ev.grads.items():
            if self.grad_label(k) == what:
                return g, ev.ref_grads[k]
        return None, None

    def evaluate(
        self, inputs: Arrays, rng: np.random.Generator | None, backward: bool, douts=None
    ) -> Evaluation:
        """Both pairs on `inputs`, upstream gradients `douts` or drawn from rng; raises LearnerError
        when the learner's functions raise or return what does not fit (count, shape, dtype)."""
        ref_outs, ref_cache = self.ref.np_forward(inputs)
        douts = random_douts(rng, ref_outs) if douts is None else douts
        ref_grads = {}
        if backward:
            g = self.ref.np_backward(douts, ref_cache)
            ref_grads = {k: g[k] for k in self.case.grad_inputs if g.get(k) is not None}
        outs, cache = self._mine(lambda: self.mine.np_forward(inputs), self.forward, True)
        outs = self._check_outs(outs, ref_outs)
        errors, notes = {}, {}
        for i, (o, r) in enumerate(zip(outs, ref_outs)):
            errors[self.output_label(i)], note = _measure(o, r)
            if note:
                notes[self.output_label(i)] = f"{note} (from {self.forward.name})"
        grads = {}
        if backward:
            raw = self._mine(lambda: self.mine.np_backward(douts, cache), self.backward, False)
            grads = self._check_grads(raw, ref_grads, inputs)
            scale = max((float(np.max(np.abs(g))) for g in ref_grads.values() if g.size), default=0)
            for k, r in ref_grads.items():
                label = self.grad_label(k)
                errors[label], note = _measure(grads[k], r, 1e-3 * scale)
                if note:
                    notes[label] = f"{note} (from {self.backward.name})"
        return Evaluation(inputs, douts, outs, grads, ref_outs, ref_grads, errors, notes)

    def _mine(self, thunk, guarded: Guarded, forward: bool):
        """thunk() (the case's adapter around the learner's function); an adapter that cannot take
        what the function returned is reported with what numpy_impl's returns instead."""
        try:
            return thunk()
        except LearnerError:
            raise
        except Exception:
            ref = self.ref_forward if forward else self.ref_backward
            raise LearnerError(
                f"{guarded.name} returned {_describe(guarded.last, forward)}; numpy_impl's "
                f"returns {_describe(ref.last, forward)}"
            ) from None

    def _check_outs(self, outs, ref_outs) -> Outs:
        name = self.forward.name
        if len(outs) != len(ref_outs):
            raise LearnerError(
                f"{name} returned {len(outs)} outputs before the cache, numpy_impl's {len(ref_outs)}"
            )
        return tuple(
            _as_array(o, r, self.output_label(i), name, r.shape)
            for i, (o, r) in enumerate(zip(outs, ref_outs))
        )

    def _check_grads(self, grads, ref_grads: Arrays, inputs: Arrays) -> Arrays:
        name = self.backward.name
        checked = {}
        for k in ref_grads:
            label = self.grad_label(k)
            if grads.get(k) is None:
                raise LearnerError(f"{name} returned None for the {label}")
            checked[k] = _as_array(grads[k], ref_grads[k], label, name, inputs[k].shape)
        return checked


def _as_array(value, ref: np.ndarray, label: str, function: str, shape) -> np.ndarray:
    if not isinstance(value, (np.ndarray, np.generic)):
        raise LearnerError(
            f"{function} returned {type(value).__name__} for the {label}, not a NumPy array"
        )
    value = np.asarray(value)
    if value.shape != tuple(shape):
        raise LearnerError(
            f"{function} returned the {label} with shape {value.shape}, expected {tuple(shape)}"
            + hints.shape_hint(value.shape, tuple(shape))
        )
    if value.dtype != ref.dtype:
        raise LearnerError(
            f"{function} returned the {label} as {value.dtype} for {ref.dtype} inputs "
            "(dtype in = dtype out)"
        )
    return value


def _measure(mine: np.ndarray, ref: np.ndarray, floor: float = 0.0) -> tuple[float, str]:
    """(relative error, note); inf with a note where the learner's is NaN or inf and the reference's
    is finite."""
    finite = np.isfinite(ref)
    bad = ~np.isfinite(mine) & finite
    if bad.any():
        return math.inf, f"NaN or inf in {int(bad.sum())} of {mine.size} entries"
    if not finite.all():  # the reference's own NaN / inf must be matched exactly
        if not np.array_equal(mine[~finite], ref[~finite], equal_nan=True):
            return math.inf, "finite where numpy_impl's is NaN or inf"
        mine, ref = mine[finite], ref[finite]
    return rel_error(mine, ref, floor), ""


def _describe(value, forward: bool) -> str:
    """What a function returned, briefly: 'a tuple of 2: (array (4, 16, 32), cache)'."""

    def one(v) -> str:
        if isinstance(v, (np.ndarray, np.generic)):
            return f"array {np.shape(v)}"
        if isinstance(v, dict):
            return f"dict of {len(v)}"
        if isinstance(v, tuple):
            return f"tuple of {len(v)}"
        return "None" if v is None else type(v).__name__

    if not isinstance(value, tuple):
        return one(value)
    parts = [one(v) for v in value]
    if forward and parts:
        parts[-1] = "cache"
    return f"a tuple of {len(value)}: ({', '.join(parts)})"
