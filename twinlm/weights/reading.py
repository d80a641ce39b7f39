"""Reading the files a model comes in, trusting none of them: safetensors, JSON configs, folders.

    safetensors_layout(file)          {key: (dtype, shape)} from the header, without the data
    read_safetensors(file, keys)      the tensors as NumPy (bfloat16 and float16 widened to float32)
    require_finite(tensors, where)    NaN or ±Inf refused, naming the file and the tensor
    require_layout(found, expected…)  exactly the expected tensor names and shapes, or one line
    file_inside(folder, name, what)   a file a folder's index names, never outside the folder

safetensors. The `safetensors` library parses and validates every header (its length, the JSON,
each entry's dtype, shape and byte range; ranges that overlap, leave gaps, run past the end or do
not match the shape are refused), so nothing here parses one by hand. NumPy has no bfloat16, so the
library's NumPy reader refuses those tensors; they are read here as their raw 16 bits at the byte
range the header gives, once the library has validated that header. A bfloat16 value is the top half of a float32 (sign, the same
8 exponent bits, 7 of the 23 mantissa bits), so u ↦ (u as uint32) << 16, viewed as float32, is
exact. float16 widens exactly too; float32 and float64 are returned as stored. Every array is the
loader's own (writable, not a view of the file): fine-tuning updates weights in place.

Config files are read with twinlm.data.json_files (every key of the JSON type it needs).
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from twinlm.data.json_files import described, first_line

# dtypes of weights: safetensors' name -> NumPy's (BF16 has none: read as raw uint16, widened)
FLOAT_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2"}


def _open(file: Path):
    from safetensors import safe_open

    try:
        return safe_open(str(file), framework="np")
    except Exception as e:  # the library's SafetensorError, or OSError for an unreadable file
        reason = first_line(e).removeprefix("Error while deserializing header: ")
        if "not fully covered" in reason:  # the bytes do not match what the header describes
            reason = f"it is truncated, or its size is not what its header says ({reason})"
        raise ValueError(f"{file} is not a readable safetensors file: {reason}") from None


def safetensors_layout(file: str | os.PathLike) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{key: (dtype name, shape)} of every tensor in a safetensors file, in the order of their
    bytes, read from the (validated) header only."""
    file = Path(file)
    with _open(file) as f:
        layout = {}
        for key in f.offset_keys():
            view = f.get_slice(key)
            layout[key] = (view.get_dtype(), tuple(int(s) for s in view.get_shape()))
    return layout


def read_safetensors(
    file: str | os.PathLike, keys: set[str] | None = None
) -> dict[str, np.ndarray]:
    """The tensors `keys` (default: all) of a safetensors file as NumPy arrays of their own:
    float32 and float64 as stored, bfloat16 and float16 widened to float32 exactly. A tensor of
    any other dtype is refused (TypeError naming the file and the key)."""
    file = Path(file)
    layout = safetensors_layout(file)
    wanted = list(layout) if keys is None else [k for k in layout if k in keys]
    for key in wanted:
        if layout[key][0] not in FLOAT_DTYPES:
            raise TypeError(
                f"{file}: tensor {key} has dtype {layout[key][0]}; weights are floating point "
                f"({', '.join(FLOAT_DTYPES)})"
            )
    out: dict[str, np.ndarray] = {}
    with _open(file) as f:
        for key in wanted:
            if layout[key][0] != "BF16":
                a = f.get_tensor(key)
                out[key] = a.astype(np.float32) if a.dtype == np.float16 else _own(a)
    bf16 = [k for k in wanted if layout[k][0] == "BF16"]
    if bf16:
        out |= _read_bf16(file, set(bf16))
    return {k: out[k] for k in wanted}


def _own(a: np.ndarray) -> np.ndarray:
    return a if a.flags.writeable and a.flags.owndata else a.copy()


def _read_bf16(file: Path, keys: set[str]) -> dict[str, np.ndarray]:
    """The bfloat16 tensors `keys`, widened to float32, read at the byte ranges the header gives
    (the library has validated the header before this reads it; module docstring)."""
    out = {}
    with open(file, "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(length))
        for key in keys:
            begin, end = header[key]["data_offsets"]
            f.seek(8 + length + begin)
            raw = np.frombuffer(f.read(end - begin), dtype="<u2")
            if raw.size * 2 != end - begin:
                raise ValueError(f"{file} is truncated: tensor {key} is cut off")
            shape = header[key]["shape"]
            out[key] = (raw.astype(np.uint32) << 16).view(np.float32).reshape(shape)
    return out


def require_finite(tensors: dict[str, np.ndarray], where: str | os.PathLike) -> None:
    """ValueError naming `where` and the first tensor that holds NaN or ±Inf."""
    for key, a in tensors.items():
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            bad = np.flatnonzero(~np.isfinite(a.reshape(-1)))
            value = a.reshape(-1)[bad[0]]
            raise ValueError(
                f"{where}: tensor {key} holds {bad.size} non-finite value(s) ({value} at flat "
                f"index {bad[0]}); weights must be finite"
            )


def require_layout(
    found: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]], where: str, what: str
) -> None:
    """The tensors `found` (key -> shape) are exactly those `expected`, of those shapes; else one
    ValueError naming `where`, a few of the keys missing or unexpected, and the source of the
    expectation `what` (e.g. "its config.json")."""
    missing = [k for k in expected if k not in found]
    if missing:
        more = f" … ({len(missing)} in all)" if len(missing) > 3 else ""
        raise ValueError(f"{where} is missing {', '.join(missing[:3])}{more} for {what}")
    unexpected = sorted(k for k in found if k not in expected)
    if unexpected:
        more = f" … ({len(unexpected)} in all)" if len(unexpected) > 3 else ""
        raise ValueError(
            f"{where} has tensors {what} does not explain: {', '.join(unexpected[:3])}{more}"
        )
    for k, want in expected.items():
        if tuple(found[k]) != tuple(want):
            raise ValueError(f"{where}: {k} must have shape {want} (from {what}), got {found[k]}")


# ---- folders -------------------------------------------------------------------------------------


def file_inside(folder: Path, name, what: str) -> Path:
    """folder / name, for a file name that an index in `folder` gives: a relative path that stays
    inside the folder (no absolute path, drive or `..`), else ValueError naming `what`."""
    if not isinstance(name, str) or not name or "\0" in name:
        raise ValueError(f"{what} must name a file in {folder}, got {described(name)}")
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or ".." in windows.parts:
        raise ValueError(
            f"{what} names {name!r}, outside {folder}: a checkpoint's files must be inside its "
            "folder (relative names, no '..')"
        )
    return folder / name
