"""A learner's own ops, found and called safely for `twinlm check --impl` (twinlm/parity/learner_check.py).

`load_impl(source)` takes a .py file, a folder of them or an imported module, and returns the
`<op>_forward` / `<op>_backward` functions it defines for the ops the registry checks. Loading a
file RUNS it: that is the point (the learner's code is what is checked), and the one place in
twinlm where foreign code executes. Bad input raises ImplError (exit 2): no such file, a syntax
error or an exception at import (file:line), a signature that differs from numpy_impl's, a
backward without its forward, no recognised op.

`Guarded` wraps one of the learner's functions: it is handed copies of its arguments (so a
function that changes an argument in place is caught, and cannot spoil the reference's inputs),
a deep copy of the cache (the check calls a backward many times on one cache), NumPy's warnings
and its print()s silenced; whatever it raises becomes a LearnerError naming the function and the
learner's line.
"""

from __future__ import annotations

import contextlib
import copy
import difflib
import importlib.util
import inspect
import io
import re
import sys
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

import numpy_impl

_NAME = re.compile(r"^([a-z][a-z0-9_]*?)_(forward|backward)$")
_SKIPPED = re.compile(r"^(_.*|test_.*|.*_test|conftest)\.py$")  # not ops: helpers, tests
_LOADED: set[str] = set()  # sys.modules names load_impl registered (dropped on the next load)


class ImplError(ValueError):
    """PATH cannot be checked (`twinlm check --impl` exits 2)."""

    exit_code = 2


class LearnerError(Exception):
    """One of the learner's functions raised, or returned what numpy_impl's never would."""

    def __init__(self, message: str, not_implemented: bool = False) -> None:
        super().__init__(message)
        self.not_implemented = not_implemented


@dataclass
class LearnerOp:
    """One op as the learner wrote it: its forward, its backward (None: forward only)."""

    op: str
    forward: Callable
    backward: Callable | None
    files: frozenset[str]  # the learner's source files, to point at their lines in a traceback


@dataclass
class Impl:
    """What load_impl found: the ops (by name, in the order offered) and notes for the reader."""

    ops: dict[str, LearnerOp]
    notes: list[str]
    source: str


def offered_ops() -> list[str]:
    """The ops `check --impl` can check and `twinlm exercise` writes: every op in the registry."""
    from twinlm.parity.opcases import CASES

    return list(dict.fromkeys(c.op for c in CASES))


def reference(op: str, way: str) -> Callable:
    """numpy_impl's `<op>_<way>` (way: forward or backward)."""
    return getattr(numpy_impl, f"{op}_{way}")


def plain_signature(fn: Callable) -> inspect.Signature:
    """fn's signature without annotations: what must match (names, kinds, defaults)."""
    sig = inspect.signature(fn)
    params = [p.replace(annotation=p.empty) for p in sig.parameters.values()]
    return sig.replace(parameters=params, return_annotation=sig.empty)


def load_impl(source: str | Path | ModuleType, op: str | None = None) -> Impl:
    """The learner's ops in `source` (a .py file, a folder of .py files, or a module), only `op`
    if given. Raises ImplError for anything that keeps it from being checked."""
    if isinstance(source, ModuleType):
        top = source.__name__.split(".")[0]

        def own(fn) -> bool:  # not numpy_impl's (or torch_impl's) own, unless that is the source
            return fn.__module__.split(".")[0] not in {"numpy_impl", "torch_impl"} - {top}

        return _collect(_functions(source, own), f"module {source.__name__}", op)
    path = Path(source)
    files = _source_files(path)
    _forget(path if path.is_dir() else path.parent)
    found = {}
    for file in files:
        module = _load(file, path if path.is_dir() else path.parent)
        mine = str(file.resolve())
        found.update(_functions(module, lambda fn, mine=mine: _file_of(fn) == mine))
    return _collect(found, str(path), op)


def _file_of(fn: Callable) -> str:
    return str(Path(fn.__code__.co_filename).resolve())


def _forget(folder: Path) -> None:
    """Drop the modules an earlier load_impl ran, and the learner's modules its files imported
    from their folder, so that each check runs the files as they are now."""
    folder = folder.resolve()
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if name in _LOADED or ("." not in name and file and Path(file).resolve().parent == folder):
            sys.modules.pop(name, None)
    _LOADED.clear()


def _source_files(path: Path) -> list[Path]:
    if not path.exists():
        raise ImplError(f"{path}: no such file or folder")
    if path.is_dir():
        files = sorted(f for f in path.glob("*.py") if not _SKIPPED.match(f.name))
        if not files:
            raise ImplError(f"{path}: no .py file in this folder")
        return files
    if path.suffix != ".py":
        raise ImplError(f"{path}: expected a .py file or a folder of them")
    return [path]


def _load(file: Path, folder: Path) -> ModuleType:
    """Run `file` as a module named after it (a unique name if another file has that name), with
    its folder on sys.path so the learner's files can import each other; a file another one
    already imported is not run twice."""
    name = file.stem
    taken = sys.modules.get(name)
    if taken is not None and _same_file(taken, file):
        return taken
    if not name.isidentifier() or taken is not None:
        name = f"_twinlm_impl_{abs(hash(str(file.resolve())))}_{file.stem}"
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    sys.path.insert(0, str(folder.resolve()))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            spec.loader.exec_module(module)
    except SyntaxError as e:
        sys.modules.pop(name, None)
        raise ImplError(f"{e.filename}:{e.lineno}: SyntaxError: {e.msg}") from None
    except Exception as e:
        sys.modules.pop(name, None)
        raise ImplError(
            f"{_origin(e, {str(file.resolve())})}: loading it raised {_exception(e)}"
        ) from None
    finally:
        sys.path.remove(str(folder.resolve()))
    _LOADED.add(name)
    return module


def _same_file(module: ModuleType, file: Path) -> bool:
    return Path(getattr(module, "__file__", None) or "/").resolve() == file.resolve()


def _functions(module: ModuleType, own: Callable[[Callable], bool]) -> dict[str, Callable]:
    """The functions of `module` named like an op's pair that are the learner's (`own`)."""
    return {
        name: fn
        for name, fn in vars(module).items()
        if _NAME.match(name) and inspect.isfunction(fn) and own(fn)
    }


def _collect(found: dict[str, Callable], label: str, only: str | None) -> Impl:
    offered = offered_ops()
    if only is not None and only not in offered:
        raise ImplError(f"--op: no op named {only!r}; the ops: {', '.join(offered)}")
    public = {n for n in numpy_impl.__all__ if _NAME.match(n)}
    names = [f"{op}_{way}" for op in offered for way in ("forward", "backward")]
    notes, problems, ops, unchecked = [], [], {}, []
    for name, fn in found.items():
        if name in names:
            expected = plain_signature(reference(*_NAME.match(name).groups()))
            if plain_signature(fn) != expected:
                problems.append(
                    f"{_where(fn)}: {name}{plain_signature(fn)} differs from numpy_impl's "
                    f"{name}{expected}"
                )
        elif name in public:
            unchecked.append(name)
        else:
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.85)
            if close:
                notes.append(f"{name} ({_where(fn)}) is not an op's name: did you mean {close[0]}?")
    for op in offered:
        forward, backward = found.get(f"{op}_forward"), found.get(f"{op}_backward")
        if backward is not None and forward is None:
            problems.append(
                f"{_where(backward)}: {op}_backward without {op}_forward: the backward takes the "
                "cache your forward returns, so write (or copy in) the forward too"
            )
        elif forward is not None and (only is None or op == only):
            files = {inspect.getsourcefile(f) for f in (forward, backward) if f is not None}
            ops[op] = LearnerOp(
                op, forward, backward, frozenset(str(Path(f).resolve()) for f in files if f)
            )
    if problems:
        raise ImplError("\n".join(problems))
    if unchecked and only is None:
        notes.append(f"not checked (no case in the registry yet): {', '.join(unchecked)}")
    if only is not None and only not in ops:
        raise ImplError(f"--op {only}: {label} defines no {only}_forward")
    if not ops:
        raise ImplError(
            f"{label}: no function named like an op's pair (<op>_forward / <op>_backward); "
            "`twinlm exercise --list` shows the ops"
        )
    return Impl(ops, notes, label)


def _where(fn: Callable) -> str:
    try:
        return f"{inspect.getsourcefile(fn)}:{inspect.getsourcelines(fn)[1]}"
    except (OSError, TypeError):
        return fn.__qualname__


def _exception(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _origin(e: BaseException, files: set[str] | frozenset[str]) -> str:
    """file:line of the deepest frame of e's traceback in the learner's files (else the deepest)."""
    frames = traceback.extract_tb(e.__traceback__)
    mine = [f for f in frames if str(Path(f.filename).resolve()) in files]
    frame = (mine or frames or [None])[-1]
    return f"{frame.filename}:{frame.lineno}" if frame else "?"


# ---- calling the learner's functions -------------------------------------------------------------


def _copy(value):
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    return value


def _changed(before, after) -> bool:
    if isinstance(before, np.ndarray):
        return not (
            isinstance(after, np.ndarray)
            and after.shape == before.shape
            and np.array_equal(after, before, equal_nan=before.dtype.kind in "fc")
        )
    if isinstance(before, dict):
        return before.keys() != after.keys() or any(_changed(before[k], after[k]) for k in before)
    if isinstance(before, (list, tuple)):
        return len(before) != len(after) or any(map(_changed, before, after))
    return False


def _quiet():
    """The learner's print()s silenced: the check calls each function hundreds of times."""
    return contextlib.redirect_stdout(io.StringIO())


class Guarded:
    """One of the learner's functions, called safely (module docstring); `last` holds its latest
    return value, for the message when it does not fit what numpy_impl's returns."""

    def __init__(self, fn: Callable, name: str, files: frozenset[str], backward: bool = False):
        self.fn, self.name, self.files, self.backward = fn, name, files, backward
        self.params = list(inspect.signature(fn).parameters)
        self.last = None

    def __call__(self, *args, **kwargs):
        given = inspect.signature(self.fn).bind(*args, **kwargs).arguments
        mine = {}
        for name, value in given.items():
            if self.backward and name == self.params[-1]:  # the cache: the learner's own object
                try:
                    mine[name] = copy.deepcopy(value)
                except Exception:  # something deepcopy cannot copy: hand over the original
                    mine[name] = value
            else:
                mine[name] = _copy(value)
        self.last = None
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings(), _quiet():
                warnings.simplefilter("ignore")
                self.last = self.fn(**mine)
        except NotImplementedError:
            raise LearnerError(f"{self.name}: not implemented", not_implemented=True) from None
        except (Exception, SystemExit) as e:
            raise LearnerError(
                f"{self.name} raised {_exception(e)} (at {_origin(e, self.files)})"
            ) from None
        for name, value in given.items():
            if not (self.backward and name == self.params[-1]) and _changed(value, mine[name]):
                raise LearnerError(
                    f"{self.name} changed its argument `{name}` in place: work on a copy (the "
                    "caller still needs it, e.g. for a residual or another backward)"
                )
        return self.last
