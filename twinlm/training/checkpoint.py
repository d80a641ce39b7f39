"""Checkpoints as safetensors: tensors by name, everything else as JSON in the header metadata.

Written atomically (temporary file in the same folder, fsync, `os.replace`), so a crash mid-write
leaves the previous checkpoint intact. Loading never unpickles anything.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save as _save_bytes

META_KEY = "twinlm"


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, np.ndarray], meta: dict) -> Path:
    """Write `tensors` (name -> array) and JSON-serialisable `meta` to `path`, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    blob = _save_bytes(arrays, metadata={META_KEY: json.dumps(meta)})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Return (tensors, meta) from a file written by `save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="np") as f:
            header = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except Exception as e:  # safetensors raises its own error types for truncated/corrupt files
        raise ValueError(f"{path} is not a readable safetensors checkpoint: {e}") from e
    if META_KEY not in header:
        raise ValueError(f"{path} has no twinlm metadata; was it written by `save_checkpoint`?")
    return tensors, json.loads(header[META_KEY])
