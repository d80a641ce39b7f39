"""`twinlm exercise OP`: a file of stubs for one op, for a learner to fill and `twinlm check --impl`.

The stubs are generated, so they cannot drift from what the check expects: the signatures are
numpy_impl's own (inspect), the docstring carries the forward's math from the op's module docstring
(up to where its backward begins: the backward is the exercise), the shapes the check draws (named
by the registry's sizes, found by sampling the op's case at several sizes), and what the backward
must return (read off what numpy_impl's returns). The bodies raise NotImplementedError, which
`check --impl` reports as "not implemented".
"""

from __future__ import annotations

import inspect
import itertools
import re
import sys
import textwrap
from pathlib import Path

import numpy as np

from twinlm.parity.harness import OpCase
from twinlm.parity.learner import offered_ops, plain_signature, reference

# Where an op's forward is not at the top of its module's docstring: the paragraphs to take, by
# the text they start with (None: the docstring's start).
SECTIONS = {
    "multihead_attention": ("Multi-head attention",),
    "rnn": (None, "Layer over time"),
    "gru": (None, "Layer over time"),
    "qwen3_attention": ("Attention (",),
    "qwen3_block": ("Attention (", "Decoder layer"),
}
# A line that starts the backward's part of a docstring, and a line of backward math on its own.
_BACKWARD = re.compile(r"^\s*((cell|layer) )?(backward|derivation|bptt)\b", re.IGNORECASE)
_GRADIENT_LINE = re.compile(r"^\s*d[\w₀-₉']* = ")
_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)


def forward_math(op: str) -> str:
    """The forward's part of the docstring of the module that defines numpy_impl's `op`."""
    doc = inspect.getdoc(sys.modules[reference(op, "forward").__module__]) or ""
    lines = doc.splitlines()
    parts = []
    for start in SECTIONS.get(op, (None,)):
        first = 0 if start is None else next(i for i, s in enumerate(lines) if s.startswith(start))
        parts.append(_until_backward(lines[first:]))
    return "\n\n".join(parts)


def _until_backward(lines: list[str]) -> str:
    """Lines up to the end of the paragraph where the backward begins, without the backward's
    lines (a header and what is indented under it, or the rest of a paragraph it starts)."""
    kept, skip_indent = [], None
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if not line.strip():
                break  # the backward's paragraph ends: so does the forward's part
            if skip_indent == 0 or indent > skip_indent:
                continue
            skip_indent = None
        if _BACKWARD.match(line):
            skip_indent = indent
            continue
        if _GRADIENT_LINE.match(line):
            continue
        kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    return "\n".join(kept)


def _names(case: OpCase) -> list[tuple[str, tuple[int, ...], tuple[str, ...]]]:
    """(input name, shape at the default sizes, shape named by the sizes) of each array input."""
    trials = []
    for t in range(3):
        values = np.random.default_rng(t).permutation(_PRIMES)[: len(case.dims)]
        dims = dict(zip(case.dims, (int(v) for v in values)))
        trials.append((dims, case.sample(np.random.default_rng(0), np.float64, dims)))
    default = case.sample(np.random.default_rng(0), np.float64, case.dims)
    named = []
    for key, a in default.items():
        if a is None or np.ndim(a) == 0:
            continue
        axes = tuple(
            _expression(case.dims, [(d, np.shape(s[key])[axis]) for d, s in trials], size)
            for axis, size in enumerate(np.shape(a))
        )
        named.append((key, np.shape(a), axes))
    return named


def _expression(names, trials, size: int) -> str:
    """The simplest of d, m·d, d·d', d + d', m·d·d', d·d'·d'' (m = 2, 3, 4) that gives the axis's
    size in every trial; the size itself if none does."""
    candidates = [((1,), (n,), "{0}") for n in names]
    candidates += [((m,), (n,), f"{m}·{{0}}") for m in (2, 3, 4) for n in names]
    pairs = list(itertools.combinations(names, 2))
    candidates += [((1,), p, "{0}·{1}") for p in pairs] + [((0,), p, "{0} + {1}") for p in pairs]
    candidates += [((m,), p, f"{m}·{{0}}·{{1}}") for m in (2, 3, 4) for p in pairs]
    for triple in itertools.combinations(names, 3):
        candidates += [((m,), triple, ("" if m == 1 else f"{m}·") + "{0}·{1}·{2}") for m in (1, 2)]
    for (m,), used, text in candidates:

        def value(dims, used=used, m=m):
            return (
                sum(dims[n] for n in used) if m == 0 else m * int(np.prod([dims[n] for n in used]))
            )

        if all(value(dims) == got for dims, got in trials):
            return text.format(*used)
    return str(size)


def _returns(case: OpCase) -> str:
    """What the backward returns, as numpy_impl's does: "(dx, dscale, dshift)", "(dx, dparams)"."""
    from twinlm.parity.learner_pair import Recorder

    record = Recorder(reference(case.op, "backward"))
    ref = case.with_numpy(reference(case.op, "forward"), record)
    arrays = case.sample(np.random.default_rng(0), np.float64, case.fd_dims)
    outs, cache = ref.np_forward(arrays)
    keys = iter(ref.np_backward(tuple(np.ones_like(o) for o in outs), cache))
    raw = record.last if isinstance(record.last, tuple) else (record.last,)
    names = []
    for item in raw:
        if isinstance(item, dict):
            names.append("dparams")
            for _ in item:
                next(keys)
        else:
            names.append(f"d{next(keys)}")
    return names[0] if len(names) == 1 else f"({', '.join(names)})"


def _shape_lines(cases: list[OpCase], params: set[str]) -> list[str]:
    """One line per array input, named as the forward takes it; inputs only some cases have
    (biases, masks) say which."""
    rows, seen = [], set()
    for case in cases:
        for key, default, named in _names(case):
            if key in seen:
                continue
            seen.add(key)
            mask = re.fullmatch(r"mask(\d+)", key)
            if key in params:
                name = key
            elif mask and "dropout_masks" in params:  # the layers' masks between layers
                name = f"dropout_masks[{mask[1]}]"
            else:
                name = f"params[{key!r}]"
            shape = f"({', '.join(named)}{',' if len(named) == 1 else ''})"
            where = "" if case is cases[0] else f"   (in the case {case.name})"
            rows.append((name, shape, f"e.g. {default}{where}"))
    width = max(len(r[0]) for r in rows) + 1
    tab = max(len(r[1]) for r in rows) + 2
    return [f"    {n + ':':<{width}} {s:<{tab}}{e}" for n, s, e in rows]


def skeleton(op: str) -> str:
    """The text of the exercise file for `op`."""
    from twinlm.parity.opcases import CASES

    cases = [c for c in CASES if c.op == op]
    forward, backward = reference(op, "forward"), reference(op, "backward")
    douts = list(plain_signature(backward).parameters)[:-1]
    returns = _returns(cases[0])
    shapes = "\n".join(_shape_lines(cases, set(inspect.signature(forward).parameters)))
    math = forward_math(op).replace("\\", "\\\\")
    forward_doc = _indent((inspect.getdoc(forward) or "").replace("\\", "\\\\"), 4)
    outputs = ", ".join(d[1:] for d in douts)
    return f'''"""Exercise: {op}. Write the forward and the backward, then check them:

    twinlm check --impl {op}.py

The check runs {", ".join(c.name for c in cases)}.
The forward's math, from numpy_impl (the backward is yours to derive):

{math}
"""

import numpy as np


def {op}_forward{plain_signature(forward)}:
    """{forward_doc}

    Shapes, named by the sizes `twinlm check` draws (and one example of each):
{shapes}
    Return ({outputs}, cache): in the inputs' dtype; the cache holds whatever your backward needs
    (it is yours: the check hands it from your forward to your backward).
    """
    raise NotImplementedError("{op}_forward")


def {op}_backward{plain_signature(backward)}:
    """{_backward_doc(cases, returns, douts)}
    """
    raise NotImplementedError("{op}_backward")
'''


def _backward_doc(cases: list[OpCase], returns: str, douts: list[str]) -> str:
    op, outputs = cases[0].op, ", ".join(d[1:] for d in douts)
    # a gradient some case does not ask for: its input is None there (linear without a bias)
    optional = [k for k in cases[0].grad_inputs if any(k not in c.grad_inputs for c in cases)]
    optional = [k for k in optional if f"d{k}" in returns]
    text = (
        f"Return {returns}: the gradient of the loss with respect to each array the forward takes, "
        "each of its array's shape and dtype"
        + (" (dparams: a dict keyed like params)" if "dparams" in returns else "")
        + "".join(f"; d{n} None when {n} is None" for n in optional)
        + f".\n\n{', '.join(douts)}: the gradient of the loss with respect to {outputs} (random "
        f"in the check, never ones); cache: what your {op}_forward returned."
    )
    paragraphs = [textwrap.fill(t, 96, subsequent_indent="    ") for t in text.split("\n\n")]
    return "\n\n    ".join(paragraphs)


def _indent(text: str, spaces: int) -> str:
    return text.replace("\n", "\n" + " " * spaces)


def list_ops() -> str:
    """One line per op offered: its name, its forward's signature and the cases the check runs."""
    from twinlm.parity.opcases import CASES

    lines = []
    for op in offered_ops():
        cases = ", ".join(c.name for c in CASES if c.op == op)
        lines.append(
            f"{op:<24} {op}_forward{plain_signature(reference(op, 'forward'))}   [{cases}]"
        )
    return "\n".join(lines)


def write_exercise(op: str, out: str | Path = "exercises", force: bool = False) -> Path:
    """Write `out/op.py`; refuses to replace an existing file unless force."""
    if op not in offered_ops():
        raise ValueError(f"no exercise for {op!r}; the ops: {', '.join(offered_ops())}")
    path = Path(out) / f"{op}.py"
    if path.exists() and not force:
        raise FileExistsError(f"{path} exists (your work?): --force replaces it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(skeleton(op), encoding="utf-8")
    return path


def main_exercise(args) -> int:
    """`twinlm exercise` (twinlm/cli.py parses)."""
    return run_exercise(args.op, out=args.out, force=args.force, show_list=args.list)


def run_exercise(
    op: str | None, out: str = "exercises", force: bool = False, show_list: bool = False
) -> int:
    """`twinlm exercise`: write OP's stubs (or list the ops)."""
    if show_list:
        print(list_ops())
        return 0
    if op is None:
        raise ValueError("name an op (twinlm exercise --list shows them)")
    path = write_exercise(op, out, force)
    print(f"wrote {path}: fill in {op}_forward and {op}_backward, then run")
    print(f"    twinlm check --impl {path}")
    return 0
