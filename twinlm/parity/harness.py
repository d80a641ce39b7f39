"""Run one op through NumPy, torch_impl and the torch built-in, and measure how far apart they are.

An op is described by an `OpCase` (see `twinlm.parity.opcases`): how to sample its inputs, and how each
backend computes outputs and gradients. Everything here is generic over cases, so the parity tests
and `twinlm check` share one definition of "agree".

float64 (`compare_float64`): relative error `max|a - b| / max(max|b|, floor)` ≤ TOL_FLOAT64 between
every pair of NumPy, torch_impl and the torch built-in. For gradients the floor is 1e-3 of the largest
gradient of the whole op, so a gradient that is zero in exact arithmetic (the key bias under softmax
attention) is judged against the op's gradient scale instead of its own rounding noise.

float32 (`Float32Run`, `compare_float32`): on the same float32 inputs, each backend and the float32
reference (torch) are measured against the float64 result, per group (the outputs; the gradients):
  over a run    R = √(Σ_s a_s/(a_s + c_s) / Σ_s c_s/(a_s + c_s)) ≤ FLOAT32_RATIO = 2, s running over
                every tensor of every example, a_s and c_s = Σ_i max(|error_i|, u |exact_i|)² for the
                backend and the reference (u = 2⁻²⁴; within correct rounding counts as exact): their
                RMS error ratio, with each tensor's squared errors scaled to sum to 1;
  per example   worst = max|got - exact| / (u · max|exact|) ≤ max(FLOAT32_BOUND = 1024, 8 × the
                reference's own worst), max|exact| over the group (at least float32's smallest normal).
Why: float32 error is rounding noise: one example's ratio to torch's is a ratio of two noises (unbounded
where torch happens to round exactly), while over a run, each tensor weighing the same, R stays near 1
for a backend as accurate as torch. The bound stops rare bad cases, but not where torch is as far off.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

Arrays = dict[str, np.ndarray]
Outs = tuple[np.ndarray, ...]
# (forward, backward) of one op -> (np_forward, np_backward) of its OpCase: how the case calls a pair
Bind = Callable[[Callable, Callable], tuple[Callable, Callable]]

TOL_FLOAT64 = 1e-10  # NumPy vs torch_impl vs torch built-in, outputs and gradients
TOL_FD = 1e-7  # central differences, eps 1e-6, float64: truncation ~1e-12, rounding ~1e-10
TINY = 1e-300
U32 = 2.0**-24  # float32's unit roundoff: a correctly rounded x is within u |x|
FLOAT32_NORMAL = 2.0**-126  # float32's smallest normal number; below it the spacing is fixed
FLOAT32_BOUND = 1024.0  # float32, every example: worst error in units of u · max|float64 result|
FLOAT32_SLACK = 8.0  # … or up to this times the float32 reference's own worst, where that is larger
FLOAT32_RATIO = 2.0  # float32, over a run: RMS error ratio to the float32 reference (see above)


@dataclass(frozen=True)
class Edge:
    """An edge regime of an op (large logits, constant rows, T = 1 …): the case's inputs drawn at
    its default sizes overridden by `dims`, then changed by `adjust(rng, arrays)` if given."""

    label: str
    dims: dict[str, int] = field(default_factory=dict)
    adjust: Callable[[np.random.Generator, Arrays], Arrays] | None = None

    def sample(self, case: OpCase, rng: np.random.Generator, dtype=np.float64) -> Arrays:
        arrays = case.sample(rng, dtype, {**case.dims, **self.dims})
        return self.adjust(rng, arrays) if self.adjust else arrays


@dataclass(frozen=True)
class OpCase:
    """One op, its three implementations, and how to sample inputs for it.

    sample(rng, dtype, dims) -> named arrays; float arrays named in `grad_inputs` get gradients.
    np_forward(arrays) -> (outs, cache); np_backward(douts, cache) -> {name: gradient}.
    torch_impl / torch_ref: named tensors -> tuple of output tensors.
    dims: default sizes (used by `twinlm check`; hypothesis draws each from 1..default);
    fd_dims: tiny sizes for the full finite-difference Jacobian.
    op, bind: np_forward/np_backward are bind(numpy_impl.<op>_forward, numpy_impl.<op>_backward)
    (`numpy_op`), so `with_numpy` can run the same case on another pair (a learner's).
    edges: the op's edge regimes, checked like ordinary inputs (parity_tests/ops/test_edge_regimes.py).
    """

    name: str
    sample: Callable[[np.random.Generator, np.dtype, dict[str, int]], Arrays]
    np_forward: Callable[[Arrays], tuple[Outs, object]]
    np_backward: Callable[[Outs, object], Arrays]
    torch_impl: Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, ...]]
    torch_ref: Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, ...]]
    grad_inputs: tuple[str, ...]
    dims: dict[str, int]
    fd_dims: dict[str, int]
    bound: float = 3.0  # |elements| drawn by hypothesis for the first grad input
    min_dims: dict[str, int] = field(default_factory=dict)  # lower bounds other than 1
    op: str = ""  # numpy_impl's <op>_forward / <op>_backward, as the case calls them through bind
    bind: Bind | None = None
    edges: tuple[Edge, ...] = ()

    def on(self, ops) -> OpCase:
        """This case on the op set `ops` (a module or namespace with numpy_impl's names, such as
        numpy_impl.fast: numpy_impl.kernel_ops) in place of numpy_impl."""
        return self.with_numpy(
            getattr(ops, f"{self.op}_forward"), getattr(ops, f"{self.op}_backward")
        )

    def with_numpy(self, forward: Callable, backward: Callable | None) -> OpCase:
        """This case with another `<op>_forward` / `<op>_backward` pair (same signatures as
        numpy_impl's) in place of numpy_impl's; backward None leaves np_backward unusable."""
        if self.bind is None:
            raise ValueError(f"{self.name}: the case was not built with numpy_op, cannot rebind")
        np_forward, np_backward = self.bind(forward, backward)
        return replace(self, np_forward=np_forward, np_backward=np_backward)


def numpy_op(op: str, bind: Bind) -> dict:
    """OpCase's NumPy fields for numpy_impl's `<op>_forward` / `<op>_backward`, called through
    `bind`: OpCase(name, sample, **numpy_op("layernorm", pair(...)), torch_impl=…)."""
    import numpy_impl  # the reference pair; imported here, as twinlm.parity sits on the backends

    forward, backward = (getattr(numpy_impl, f"{op}_{way}") for way in ("forward", "backward"))
    np_forward, np_backward = bind(forward, backward)
    return dict(np_forward=np_forward, np_backward=np_backward, op=op, bind=bind)


def np_pair(
    forward,
    backward,
    args: tuple[str, ...],
    grads: tuple[str, ...],
    keywords: tuple[str, ...] = (),
    **static,
):
    """Adapt a `<op>_forward(*args, **keywords, **static)` / `<op>_backward(*douts, cache)` pair to
    OpCase form: `args` are passed by position, `keywords` by name (both name arrays), `static` as
    given. `grads` names what the backward returns, in order; a single output becomes a 1-tuple.
    """

    def np_forward(a: Arrays):
        named = {k: a[k] for k in keywords}
        out, cache = forward(*(a[k] for k in args), **named, **static)
        return (out if isinstance(out, tuple) else (out,)), cache

    def np_backward(douts: Outs, cache) -> Arrays:
        g = backward(*douts, cache)
        return dict(zip(grads, g if isinstance(g, tuple) else (g,), strict=True))

    return np_forward, np_backward


def pair(args: tuple[str, ...], grads: tuple[str, ...], keywords=(), **static) -> Bind:
    """The bind of an op whose pair np_pair adapts (see there)."""
    return lambda forward, backward: np_pair(forward, backward, args, grads, keywords, **static)


def params_backward(backward):
    """np_backward for a `<op>_backward(dy, cache) -> (dx, dparams)` whose forward took x, params."""

    def np_backward(douts, cache):
        dx, dparams = backward(*douts, cache)
        return {"x": dx, **dparams}

    return np_backward


def params_pair(keys: tuple[str, ...], *statics: str, **options) -> Bind:
    """The bind of `<op>_forward(x, params, *statics, **options)` with params = the arrays named in
    `keys`, statics 0-d int arrays passed as ints; its backward returns (dx, dparams)."""

    def bind(forward, backward):
        def np_forward(a):
            ints = (int(a[k]) for k in statics)
            y, cache = forward(a["x"], {k: a[k] for k in keys}, *ints, **options)
            return (y,), cache

        return np_forward, params_backward(backward)

    return bind


def random_douts(rng: np.random.Generator, outs: Outs) -> Outs:
    """Standard-normal upstream gradients (never ones: they make softmax/LayerNorm checks vacuous)."""
    return tuple(rng.standard_normal(o.shape).astype(o.dtype) for o in outs)


def run_numpy(
    case: OpCase, arrays: Arrays, douts: Outs | None = None, ops=None
) -> tuple[Outs, Arrays]:
    """The NumPy side's outputs and, given douts, gradients; ops: an op set to run instead of
    numpy_impl's (OpCase.on)."""
    if ops is not None:
        case = case.on(ops)
    outs, cache = case.np_forward(arrays)
    if douts is None:
        return outs, {}
    grads = case.np_backward(douts, cache)
    return outs, {k: grads[k] for k in case.grad_inputs if grads.get(k) is not None}


def run_torch(
    case: OpCase, fn, arrays: Arrays, douts: Outs | None = None, device: str = "cpu"
) -> tuple[Outs, Arrays]:
    """Run a torch function on copies of `arrays`; autograd supplies gradients for `douts`."""
    tensors = {}
    for k, a in arrays.items():
        if a is None:
            tensors[k] = None
            continue
        t = torch.from_numpy(np.array(a, copy=True)).to(device)
        if k in case.grad_inputs and t.is_floating_point():
            t.requires_grad_(True)
        tensors[k] = t
    outs = fn(tensors)
    if douts is not None:
        torch.autograd.backward(
            outs, tuple(torch.from_numpy(np.array(d, copy=True)).to(device) for d in douts)
        )
    outs_np = tuple(o.detach().cpu().numpy() for o in outs)
    grads = {
        k: tensors[k].grad.cpu().numpy()
        for k in case.grad_inputs
        if tensors.get(k) is not None and tensors[k].grad is not None
    }
    return outs_np, grads


def rel_error(a: np.ndarray, b: np.ndarray, floor: float = 0.0) -> float:
    """max|a - b| / max(max|b|, floor): 0 for identical arrays, ~1e-16 for float64 rounding."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), floor, TINY))


def outs_error(a: Outs, b: Outs) -> float:
    return max((rel_error(x, y) for x, y in zip(a, b, strict=True)), default=0.0)


def grads_error(a: Arrays, b: Arrays) -> float:
    """Worst gradient error, each tensor floored at 1e-3 of the op's largest reference gradient."""
    return max(grads_errors(a, b).values(), default=0.0)


def grads_errors(a: Arrays, b: Arrays) -> dict[str, float]:
    """Each gradient's error (b the reference), floored at 1e-3 of the op's largest gradient in b."""
    if set(a) != set(b):
        raise AssertionError(f"gradients for different inputs: {sorted(a)} vs {sorted(b)}")
    scale = max((float(np.max(np.abs(g))) for g in b.values() if g.size), default=0.0)
    return {k: rel_error(a[k], b[k], 1e-3 * scale) for k in b}


@dataclass(frozen=True)
class Errors:
    forward: float
    grad: float

    def worst(self) -> float:
        return max(self.forward, self.grad)


def compare_float64(case: OpCase, arrays: Arrays, douts: Outs) -> Errors:
    """Worst pairwise error among NumPy, torch_impl and the torch built-in, all in float64."""
    results = [
        run_numpy(case, arrays, douts),
        run_torch(case, case.torch_impl, arrays, douts),
        run_torch(case, case.torch_ref, arrays, douts),
    ]
    pairs = [(0, 2), (1, 2), (0, 1)]  # numpy-ref, impl-ref, numpy-impl
    return Errors(
        forward=max(outs_error(results[i][0], results[j][0]) for i, j in pairs),
        grad=max(grads_error(results[i][1], results[j][1]) for i, j in pairs),
    )


class Float32Run:
    """The float32 standard (module docstring) for one backend and one group (outputs, or gradients)
    over a run of examples: `add` each example; then `tightest` holds the (error, bound) of the
    example nearest its bound, and `ratio` (R) must be ≤ FLOAT32_RATIO."""

    def __init__(self) -> None:
        self.worst = 0.0  # the largest per-example error seen, in units of u · max|exact|
        self.worst_ref = 0.0  # the same for the float32 reference (for the record, not judged)
        self.tightest = (0.0, FLOAT32_BOUND)  # (error, bound) of the example nearest its bound
        self.shares: list[float] = []  # a/(a + c) for each tensor (module docstring)

    def add(self, got, ref32, exact) -> float:
        """One example: the backend's float32 arrays, the float32 reference's, the float64 result's
        (sequences of equal length, or dicts with the same keys). Returns the example's worst error."""
        if isinstance(exact, dict):
            if not set(got) == set(ref32) == set(exact):
                raise AssertionError(
                    f"different tensors: {sorted(got)}, {sorted(ref32)}, {sorted(exact)}"
                )
            got, ref32, exact = ([d[k] for k in exact] for d in (got, ref32, exact))
        exact = [np.asarray(e, dtype=np.float64) for e in exact]
        scale = U32 * max([float(np.max(np.abs(e))) for e in exact if e.size] + [FLOAT32_NORMAL])
        worst = worst_ref = 0.0
        for g, r, e in zip(got, ref32, exact, strict=True):
            err_g = np.asarray(g, dtype=np.float64) - e
            err_r = np.asarray(r, dtype=np.float64) - e
            if err_g.shape != e.shape or err_r.shape != e.shape:
                raise ValueError(f"shape mismatch: {err_g.shape}, {err_r.shape} vs {e.shape}")
            if e.size == 0:
                continue
            if not np.all(np.isfinite(err_g)):  # a NaN or inf where float64 is finite
                worst = math.inf
                self.shares.append(1.0)
                continue
            if not np.all(np.isfinite(err_r)):
                self.shares.append(0.0)
                continue
            # Below u |exact| (what correct rounding may leave) an error is as good as exact.
            floor = np.maximum(U32 * np.abs(e), FLOAT32_NORMAL * U32)
            a = float(np.sum(np.maximum(np.abs(err_g), floor) ** 2))
            c = float(np.sum(np.maximum(np.abs(err_r), floor) ** 2))
            self.shares.append(a / (a + c))
            worst = max(worst, float(np.max(np.abs(err_g))) / scale)
            worst_ref = max(worst_ref, float(np.max(np.abs(err_r))) / scale)
        self.worst = max(self.worst, worst)
        self.worst_ref = max(self.worst_ref, worst_ref)
        bound = max(FLOAT32_BOUND, FLOAT32_SLACK * worst_ref)
        if worst / bound >= self.tightest[0] / self.tightest[1]:
            self.tightest = (worst, bound)
        return worst

    def extend(self, other: Float32Run) -> None:
        self.worst = max(self.worst, other.worst)
        self.worst_ref = max(self.worst_ref, other.worst_ref)
        if other.tightest[0] / other.tightest[1] >= self.tightest[0] / self.tightest[1]:
            self.tightest = other.tightest
        self.shares.extend(other.shares)

    @property
    def ratio(self) -> float:
        """R: 1 for as accurate as the reference (and for tensors exact in both), ∞ where only the
        backend's results are not finite; 0 with no tensor to judge."""
        if not self.shares:
            return 0.0
        s = sum(self.shares) / len(self.shares)
        return math.sqrt(s / (1.0 - s)) if s < 1.0 else math.inf


class Float32Runs(dict):
    """Float32Run per (name, group), created on first use, e.g. runs["numpy", "grad"].add(...)."""

    def __missing__(self, key: tuple[str, str]) -> Float32Run:
        self[key] = run = Float32Run()
        return run

    def extend(self, other: Float32Runs) -> None:
        for key, run in other.items():
            self[key].extend(run)

    def verdicts(self, ratio: bool = True) -> list[tuple[str, float, float]]:
        """[(measure, value, tolerance)]: each run's example nearest its bound (units of u) and,
        unless ratio is False (a run still being collected), its R."""
        out = []
        for (name, group), run in self.items():
            out.append((f"f32 {group} {name} worst (u)", *run.tightest))
            if ratio:
                out.append((f"f32 {group} {name} R", run.ratio, FLOAT32_RATIO))
        return out

    def ok(self) -> bool:
        return all(value <= tol for _, value, tol in self.verdicts())


def compare_float32(
    case: OpCase,
    arrays64: Arrays,
    douts64: Outs | None,
    runs: Float32Runs | None = None,
    ops=None,
    backends: tuple[str, ...] = ("numpy", "torch_impl"),
) -> Float32Runs:
    """NumPy and torch_impl (or those of them named in `backends`) in float32 against the float64
    built-in, torch's float32 built-in as the reference (the standard in the module docstring);
    douts64 None: the outputs only. ops: an op set to run as "numpy" instead of numpy_impl's
    (OpCase.on).
    Inputs are rounded to float32 first, so every backend sees exactly the same numbers. Returns
    this example's runs, keyed (backend, "fwd"/"grad"); `runs`, if given, accumulates them over a
    run of examples."""
    if ops is not None:
        case = case.on(ops)
    arrays32 = {k: _to32(a) for k, a in arrays64.items()}
    douts32 = None if douts64 is None else tuple(_to32(d) for d in douts64)
    exact = {k: _to64(a) for k, a in arrays32.items()}
    douts_exact = None if douts32 is None else tuple(_to64(d) for d in douts32)
    ref = run_torch(case, case.torch_ref, exact, douts_exact)
    ref32 = run_torch(case, case.torch_ref, arrays32, douts32)
    run = {
        "numpy": lambda: run_numpy(case, arrays32, douts32),
        "torch_impl": lambda: run_torch(case, case.torch_impl, arrays32, douts32),
    }
    example = Float32Runs()
    for name in backends:
        outs, grads = run[name]()
        for o in outs:
            if o.dtype != np.float32:
                raise AssertionError(f"{case.name}: {name} returned {o.dtype} for float32 input")
        example[name, "fwd"].add(outs, ref32[0], ref[0])
        if douts64 is not None:
            example[name, "grad"].add(grads, ref32[1], ref[1])
    if runs is not None:
        runs.extend(example)
    return example


def _to32(a):
    return a.astype(np.float32) if a is not None and a.dtype == np.float64 else a


def _to64(a):
    return a.astype(np.float64) if a is not None and a.dtype == np.float32 else a


def finite_difference_jacobian(case: OpCase, arrays: Arrays, eps: float = 1e-6) -> float:
    """Full Jacobian of the NumPy forward by central differences vs the one built row by row from
    the NumPy backward (one-hot upstream gradients). float64 only. Returns the relative error."""
    return max(finite_difference_errors(case, arrays, eps).values(), default=0.0)


def finite_difference_errors(case: OpCase, arrays: Arrays, eps: float = 1e-6) -> dict[str, float]:
    """finite_difference_jacobian's error for each gradient input: its columns of the Jacobian."""
    outs, cache = case.np_forward(arrays)
    sizes = [o.size for o in outs]
    errors = {}
    # Rows of J from backward: J[j, :] = gradient of output element j.
    rows = {k: np.empty((sum(sizes), arrays[k].size)) for k in case.grad_inputs}
    j = 0
    for i, o in enumerate(outs):
        for flat in range(o.size):
            douts = tuple(np.zeros_like(p) for p in outs)
            douts[i].flat[flat] = 1.0
            grads = case.np_backward(douts, cache)
            for k in case.grad_inputs:
                rows[k][j] = grads[k].ravel()
            j += 1
    for k in case.grad_inputs:
        x = arrays[k]
        cols = np.empty((sum(sizes), x.size))
        for flat in range(x.size):
            plus, minus = dict(arrays), dict(arrays)
            plus[k] = x.copy()
            plus[k].flat[flat] += eps
            minus[k] = x.copy()
            minus[k].flat[flat] -= eps
            fp = np.concatenate([o.ravel() for o in case.np_forward(plus)[0]])
            fm = np.concatenate([o.ravel() for o in case.np_forward(minus)[0]])
            cols[:, flat] = (fp - fm) / (2 * eps)
        errors[k] = rel_error(rows[k], cols, floor=1.0)
    return errors


def adjoint_error(
    case: OpCase,
    arrays: Arrays,
    rng: np.random.Generator,
    eps: float = 1e-6,
    inputs: tuple[str, ...] | None = None,
) -> float:
    """⟨J·t, c⟩ by a central difference along t vs ⟨t, Jᵀ·c⟩ from the backward (float64); t is
    random on the gradient inputs named in `inputs` (all of them by default), zero on the others."""
    t = {k: rng.standard_normal(arrays[k].shape) for k in inputs or case.grad_inputs}
    outs, cache = case.np_forward(arrays)
    c = random_douts(rng, outs)
    grads = case.np_backward(c, cache)
    plus = {**arrays, **{k: arrays[k] + eps * t[k] for k in t}}
    minus = {**arrays, **{k: arrays[k] - eps * t[k] for k in t}}
    fp, fm = case.np_forward(plus)[0], case.np_forward(minus)[0]
    jt_c = sum(float(np.vdot((p - m) / (2 * eps), ci)) for p, m, ci in zip(fp, fm, c, strict=True))
    t_jtc = sum(float(np.vdot(t[k], grads[k])) for k in t)
    return abs(jt_c - t_jtc) / max(abs(t_jtc), 1.0)
