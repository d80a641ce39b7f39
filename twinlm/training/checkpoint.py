"""Checkpoints as safetensors: tensors by name, everything else as JSON in the header metadata;
and the layout of a training run inside one (save_run / load_run).

Written atomically (temporary file `.<name>.<random>.tmp` in the same folder, fsync, `os.replace`),
so a crash mid-write leaves the previous checkpoint intact; a run removes the temporary files a
killed process left (twinlm/training/outdir.py). Loading never unpickles anything, and refuses a
file whose metadata or tensors are not what a twinlm checkpoint holds, naming the file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save as _save_bytes

from twinlm.shared.naming import sub_dict, with_prefix

META_KEY = "twinlm"
TMP_SUFFIX = ".tmp"


def temporaries(name: str) -> str:
    """The glob pattern of the temporary files save_checkpoint writes for a checkpoint `name`."""
    return f".{name}.*{TMP_SUFFIX}"


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, np.ndarray], meta: dict) -> Path:
    """Write `tensors` (name -> array) and JSON-serialisable `meta` to `path`, atomically. A failed
    write (disk full, say) raises OSError naming `path`, and leaves the previous file as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    blob = _save_bytes(arrays, metadata={META_KEY: json.dumps(meta)})
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise type(e)(e.errno, f"cannot write the checkpoint {path}: {e.strerror or e}") from e
    finally:
        if tmp is not None and Path(tmp).exists():
            Path(tmp).unlink(missing_ok=True)
    return path


def read_meta(path: str | os.PathLike) -> dict | None:
    """A checkpoint's metadata without reading its tensors; None if it cannot be read."""
    try:
        with safe_open(str(path), framework="np") as f:
            meta = json.loads((f.metadata() or {})[META_KEY])
    except Exception:  # any damage: the caller only describes the file
        return None
    return meta if isinstance(meta, dict) else None


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
    try:
        meta = json.loads(header[META_KEY])
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: its twinlm metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise ValueError(
            f"{path}: its twinlm metadata must be a JSON object, got {type(meta).__name__}"
        )
    return tensors, meta


# ---- the layout of a training run's checkpoint (the one place that knows it) -------------------
#   model.<key>              every parameter, keyed like the model's state_dict
#   optim.exp_avg.<key>      AdamW's m and v for each parameter it has stepped
#   optim.exp_avg_sq.<key>
#   carry.<i>                a recurrent model's state for the next batch (char-RNN: h, c)
#   metadata: kind, backend, cfg, settings, step, opt_steps {key: t}, history, data, …

MODEL, EXP_AVG, EXP_AVG_SQ, CARRY = "model.", "optim.exp_avg.", "optim.exp_avg_sq.", "carry."
KINDS = ("gpt", "charrnn", "classifier")


@dataclass
class SavedRun:
    """A training run as its checkpoint holds it."""

    meta: dict
    params: dict[str, np.ndarray]
    opt_steps: dict[str, int]
    exp_avg: dict[str, np.ndarray]
    exp_avg_sq: dict[str, np.ndarray]
    carry: tuple[np.ndarray, ...] | None
    path: str | None = None  # the file it was loaded from (for messages)


def save_run(path: str | os.PathLike, run: SavedRun) -> Path:
    tensors = with_prefix(run.params, MODEL)
    tensors |= with_prefix(run.exp_avg, EXP_AVG) | with_prefix(run.exp_avg_sq, EXP_AVG_SQ)
    if run.carry is not None:
        tensors |= {f"{CARRY}{i}": a for i, a in enumerate(run.carry)}
    return save_checkpoint(path, tensors, {**run.meta, "opt_steps": run.opt_steps})


def load_run(path: str | os.PathLike, kind: str | None = None) -> SavedRun:
    """A checkpoint written by save_run (or by twinlm before it: a classifier's unprefixed
    parameters, a char-RNN's carry.h / carry.c). kind: refuse any other kind."""
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") not in KINDS:
        raise ValueError(f"{path} is not a twinlm training checkpoint (kind {meta.get('kind')!r})")
    if kind is not None and meta["kind"] != kind:
        raise ValueError(f"{path} is a {meta['kind']} checkpoint, not a {kind} one")
    step = meta.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"{path}: its metadata must give 'step' as an integer >= 0, got {step!r}")
    if not isinstance(meta.get("cfg"), dict):
        raise ValueError(f"{path}: its metadata lacks the model's configuration ('cfg')")
    for key in ("settings", "history", "opt_steps"):
        if key in meta and not isinstance(meta[key], dict):
            raise ValueError(f"{path}: its metadata's {key!r} must be a JSON object")
    params = sub_dict(tensors, MODEL)
    if not params and meta["kind"] == "classifier":  # written before the prefix was used
        params = dict(tensors)
    if not params:
        raise ValueError(f"{path} holds no model parameters (tensors named {MODEL}<key>)")
    for name, a in tensors.items():
        if not name.startswith(CARRY) and a.dtype.kind != "f":
            raise ValueError(f"{path}: tensor {name} is {a.dtype}; parameters are floating point")
    carry = sub_dict(tensors, CARRY)
    if "h" in carry:  # carry.h, carry.c: the LSTM state's names before
        carry = {"0": carry["h"], "1": carry["c"]}
    return SavedRun(
        meta=meta,
        params=params,
        opt_steps=dict(meta.get("opt_steps", {})),
        exp_avg=sub_dict(tensors, EXP_AVG),
        exp_avg_sq=sub_dict(tensors, EXP_AVG_SQ),
        carry=tuple(carry[str(i)] for i in range(len(carry))) or None,
        path=str(path),
    )
