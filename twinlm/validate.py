"""Input checks shared by both backends' public entry points.

Pure Python on `.shape` / `.dtype`, so NumPy arrays and torch tensors go through the same code and
the same messages: `ValueError`/`TypeError` naming the argument, what was expected, what was given.
Nothing here imports numpy or torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def _shape(a) -> tuple[int, ...]:
    return tuple(int(s) for s in a.shape)


def is_integer_dtype(a) -> bool:
    """True for NumPy or torch integer arrays (signed or unsigned), False for bool and floats."""
    name = str(a.dtype)
    return "int" in name


def is_float_dtype(a) -> bool:
    return "float" in str(a.dtype) or "double" in str(a.dtype) or "half" in str(a.dtype)


def require_float(name: str, a) -> None:
    if not hasattr(a, "dtype") or not is_float_dtype(a):
        raise TypeError(
            f"{name} must be a floating-point array, got {getattr(a, 'dtype', type(a))}"
        )


def require_ndim(name: str, a, min_ndim: int, max_ndim: int | None = None) -> None:
    nd = len(_shape(a))
    if nd < min_ndim or (max_ndim is not None and nd > max_ndim):
        want = f"{min_ndim}" if max_ndim == min_ndim else f"at least {min_ndim}"
        if max_ndim is not None and max_ndim != min_ndim:
            want = f"{min_ndim} to {max_ndim}"
        raise ValueError(f"{name} must have {want} dimensions, got shape {_shape(a)}")


def require_shape(name: str, a, expected: Sequence[int | None]) -> None:
    """`expected` may hold None for 'any size' in that position."""
    got = _shape(a)
    if len(got) != len(expected) or any(e is not None and g != e for g, e in zip(got, expected)):
        want = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{name} must have shape {want}, got {got}")


def require_last_dim(name: str, a, size: int, because: str = "") -> None:
    got = _shape(a)
    if not got or got[-1] != size:
        why = f" ({because})" if because else ""
        raise ValueError(f"{name} must have last dimension {size}{why}, got shape {got}")


def require_same_shape(names: Iterable[str], arrays: Iterable) -> None:
    names, shapes = list(names), [_shape(a) for a in arrays]
    if len(set(shapes)) > 1:
        listed = ", ".join(f"{n} {s}" for n, s in zip(names, shapes))
        raise ValueError(f"{' and '.join(names)} must have the same shape, got {listed}")


def require_ids(name: str, ids, upper: int, allowed: Iterable[int] = ()) -> None:
    """Integer ids in [0, upper); values in `allowed` (e.g. an ignore_index) pass too."""
    if not hasattr(ids, "dtype") or not is_integer_dtype(ids):
        raise TypeError(f"{name} must be an integer array, got {getattr(ids, 'dtype', type(ids))}")
    if _shape(ids) and 0 in _shape(ids):
        return
    bad = (ids < 0) | (ids >= upper)
    for v in allowed:
        bad = bad & (ids != v)
    if bool(bad.any()):
        first = ids[bad].reshape(-1)[0]
        raise ValueError(f"{name} must lie in [0, {upper}), got {int(first)}")


def require_probability(name: str, p: float) -> None:
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {p}")


def require_choice(name: str, value, choices: Sequence) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def require_divisible(name: str, value: int, by_name: str, by: int) -> None:
    if by <= 0 or value % by != 0:
        raise ValueError(f"{name} ({value}) must be divisible by {by_name} ({by})")
