"""Input checks shared by both backends' public entry points.

Pure Python on `.shape` / `.dtype`, so NumPy arrays and torch tensors go through the same code and
the same messages: `ValueError`/`TypeError` naming the argument, what was expected, what was given.
Nothing here imports numpy or torch.
"""

from __future__ import annotations

import numbers
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


def require_broadcastable(name: str, a, shape: Sequence[int]) -> None:
    """`a` broadcasts to exactly `shape` (each trailing dimension equal or 1), never enlarging it."""
    got, shape = _shape(a), tuple(int(s) for s in shape)
    if len(got) > len(shape) or any(g not in (1, s) for g, s in zip(got[::-1], shape[::-1])):
        raise ValueError(f"{name} must broadcast to shape {shape}, got shape {got}")


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


def require_int(name: str, value, min_value: int | None = None) -> None:
    """A Python or NumPy integer (bool is rejected), optionally at least `min_value`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if min_value is not None and value < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {value}")


def require_choice(name: str, value, choices: Sequence) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def require_divisible(name: str, value: int, by_name: str, by: int) -> None:
    if by <= 0 or value % by != 0:
        raise ValueError(f"{name} ({value}) must be divisible by {by_name} ({by})")


def require_keys(name: str, mapping, required: Iterable[str], optional: Iterable[str] = ()) -> None:
    """`mapping` (a params dict) holds every key in `required`, and nothing outside required + optional."""
    required, optional = list(required), list(optional)
    missing = [k for k in required if k not in mapping]
    unexpected = [k for k in mapping if k not in required and k not in optional]
    if missing or unexpected:
        extra = f" (optional: {optional})" if optional else ""
        raise ValueError(
            f"{name} must have keys {required}{extra}; missing {missing}, unexpected {unexpected}"
        )


def require_lstm_weights(
    weight_ih, weight_hh, bias_ih, bias_hh, suffix: str = ""
) -> tuple[int, int]:
    """torch.nn.LSTM layout: weight_ih (4H, I), weight_hh (4H, H), bias_ih and bias_hh (4H,), all
    floating point of one dtype. Returns (I, H). `suffix` names a layer's keys, e.g. "_l1"."""
    names = [f"{w}{suffix}" for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    arrays = (weight_ih, weight_hh, bias_ih, bias_hh)
    for n, a in zip(names, arrays):
        require_float(n, a)
    require_ndim(names[1], weight_hh, 2, 2)
    hidden = _shape(weight_hh)[1]
    require_shape(names[1], weight_hh, (4 * hidden, hidden))
    require_ndim(names[0], weight_ih, 2, 2)
    require_shape(names[0], weight_ih, (4 * hidden, None))
    require_shape(names[2], bias_ih, (4 * hidden,))
    require_shape(names[3], bias_hh, (4 * hidden,))
    require_same_dtype(names, arrays)
    return _shape(weight_ih)[1], hidden


def require_same_dtype(names: Iterable[str], arrays: Iterable) -> None:
    names, dtypes = list(names), [str(a.dtype) for a in arrays]
    if len(set(dtypes)) > 1:
        listed = ", ".join(f"{n} {d}" for n, d in zip(names, dtypes))
        raise TypeError(f"{' and '.join(names)} must have the same dtype, got {listed}")


def require_token_batch(name: str, idx, vocab_size: int, context_length: int | None = None) -> None:
    """Token ids (batch, seq): integers in [0, vocab_size), 1 ≤ seq ≤ context_length."""
    require_ids(name, idx, vocab_size)
    got = _shape(idx)
    if len(got) != 2:
        raise ValueError(f"{name} must have 2 dimensions (batch, seq), got shape {got}")
    if got[1] == 0:
        raise ValueError(f"{name} must hold at least one position, got shape {got}")
    if context_length is not None and got[1] > context_length:
        raise ValueError(
            f"{name} has sequence length {got[1]}, more than context_length {context_length}"
        )


CHARRNN_CONFIG_KEYS = ("vocab_size", "emb_dim", "hidden_size", "num_layers", "drop_rate")


def require_charrnn_config(cfg) -> None:
    """A char-RNN config dict: vocab_size, emb_dim, hidden_size, num_layers integers ≥ 1 and
    drop_rate in [0, 1), nothing else."""
    if not isinstance(cfg, dict):
        raise TypeError(f"cfg must be a dict with keys {list(CHARRNN_CONFIG_KEYS)}, got {cfg!r}")
    require_keys("cfg", cfg, CHARRNN_CONFIG_KEYS)
    for key in CHARRNN_CONFIG_KEYS[:-1]:
        require_int(f"cfg[{key!r}]", cfg[key], 1)
    require_probability("cfg['drop_rate']", cfg["drop_rate"])
