"""Checkpoints as safetensors: tensors by name, everything else as JSON in the header metadata;
and the layout of a training run inside one (save_run / load_run).

Written atomically (temporary file `.<name>.<random>.tmp` in the same folder, fsync, `os.replace`),
so a crash mid-write leaves the previous checkpoint intact; a run removes the temporary files a
killed process left (twinlm/training/outdir.py). Loading never unpickles anything, and refuses a
file whose metadata or tensors are not what a twinlm checkpoint holds, naming the file.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import typing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save as _save_bytes

from twinlm.shared.classifier import check_classifier_options, classifier_param_shapes
from twinlm.shared.config import validate_lm_config
from twinlm.shared.naming import (
    BACKENDS,
    CELL_STATE,
    DTYPES,
    charrnn_cell,
    charrnn_param_shapes,
    lm_names,
    sub_dict,
    with_prefix,
)
from twinlm.shared.validate import require_charrnn_config, require_int
from twinlm.weights.reading import require_finite, require_layout

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
    except (Exception, RecursionError):  # any damage: the caller only describes the file
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
            kinds = {k: f.get_slice(k).get_dtype() for k in f.keys()}  # noqa: SIM118 (no __iter__)
            if "BF16" in kinds.values():  # which NumPy cannot hold; twinlm never writes it
                bf16 = next(k for k, d in kinds.items() if d == "BF16")
                raise TypeError(f"tensor {bf16} is bfloat16; twinlm checkpoints hold float32/64")
            tensors = {k: f.get_tensor(k) for k in kinds}
    except Exception as e:  # safetensors raises its own error types for truncated/corrupt files
        raise ValueError(f"{path} is not a readable safetensors checkpoint: {e}") from e
    if META_KEY not in header:
        raise ValueError(f"{path} has no twinlm metadata; was it written by `save_checkpoint`?")
    try:
        meta = json.loads(header[META_KEY])
    except (ValueError, RecursionError) as e:  # RecursionError: nesting too deep to parse
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
    parameters, a char-RNN's carry.h / carry.c). kind: refuse any other kind.

    Nothing in the file is taken on its word: the model's configuration must describe exactly
    the parameters present (its number of layers is bounded by them before anything is listed
    per layer), every tensor is floating point and finite, the optimizer's state matches the
    parameters, and the metadata's fields have their types (the history's lists, the settings'
    values: saved_settings). Any failure is one ValueError naming the file and the key."""
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
    if "backend" in meta and meta["backend"] not in BACKENDS:
        raise ValueError(
            f"{path}: its metadata's 'backend' must be one of {list(BACKENDS)}, got "
            f"{meta['backend']!r}"
        )
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
    dtypes = sorted({str(a.dtype) for a in params.values()})
    if len(dtypes) > 1 or dtypes[0] not in DTYPES:
        raise ValueError(f"{path}: its parameters must be all float32 or all float64, got {dtypes}")
    _check_model(path, meta, params)
    require_finite(tensors, path)
    _check_history(path, meta.get("history", {}))
    exp_avg, exp_avg_sq = sub_dict(tensors, EXP_AVG), sub_dict(tensors, EXP_AVG_SQ)
    opt_steps = meta.get("opt_steps", {})
    _check_optimizer(path, params, opt_steps, exp_avg, exp_avg_sq)
    carry = sub_dict(tensors, CARRY)
    if "h" in carry:  # carry.h, carry.c: the LSTM state's names before
        carry = {str(i): carry[n] for i, n in enumerate(("h", "c")) if n in carry}
    _check_carry(path, meta, carry)
    return SavedRun(
        meta=meta,
        params=params,
        opt_steps=dict(opt_steps),
        exp_avg=exp_avg,
        exp_avg_sq=exp_avg_sq,
        carry=tuple(carry[str(i)] for i in range(len(carry))) or None,
        path=str(path),
    )


def _check_model(path, meta: dict, params: dict[str, np.ndarray]) -> None:
    """meta["cfg"] describes exactly `params`: names and shapes. Its number of layers is held to
    the number of tensors first, so that a cfg claiming 10⁸ layers is refused in no time."""
    cfg, kind = meta["cfg"], meta["kind"]
    layers = "num_layers" if kind == "charrnn" else "n_layers"
    n = cfg.get(layers)
    if type(n) is int and n > len(params):
        raise ValueError(
            f"{path}: its metadata's cfg says {layers}={n}, but the file holds only {len(params)} "
            "parameter tensors"
        )
    try:
        if kind == "charrnn":
            require_charrnn_config(cfg)
            shapes = charrnn_param_shapes(cfg)
        elif kind == "gpt":
            shapes = lm_names(validate_lm_config(cfg)).param_shapes(cfg)
        else:
            options = [meta.get(k) for k in ("num_classes", "trainable", "k", "position", "pad_id")]
            require_int("num_classes", options[0], 2)
            check_classifier_options(validate_lm_config(cfg), *options)
            shapes = classifier_param_shapes(cfg, meta["num_classes"])
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: its metadata's {e}") from None
    found = {k: tuple(a.shape) for k, a in params.items()}
    require_layout(found, shapes, str(path), "its metadata's cfg")


def _check_carry(path, meta: dict, carry: dict[str, np.ndarray]) -> None:
    """A char-RNN's carried state: carry.0 … carry.<n-1>, one per state of its cell, each
    (num_layers, batch_size, hidden_size); other kinds carry nothing."""
    if meta["kind"] != "charrnn" or not carry:
        if carry:
            raise ValueError(f"{path}: a {meta['kind']} checkpoint carries no state, got {sorted(carry)}")  # fmt: skip
        return
    cfg, batch = meta["cfg"], meta.get("settings", {}).get("batch_size")
    first = carry.get("0")
    if (type(batch) is not int or batch < 1) and first is not None and first.ndim == 3:
        batch = first.shape[1]  # no settings (or bad ones, which saved_settings names)
    n = len(CELL_STATE[charrnn_cell(cfg)])
    shape = (cfg["num_layers"], batch, cfg["hidden_size"])
    for i in range(max(n, len(carry))):
        a = carry.get(str(i))
        if i >= n or a is None or a.dtype.kind != "f" or tuple(a.shape) != shape:
            got = "none" if a is None else f"{a.dtype} {tuple(a.shape)}"
            raise ValueError(
                f"{path}: its carried state must be {n} tensor(s) carry.0 … carry.{n - 1} of "
                f"shape {shape} (num_layers, batch_size, hidden_size); carry.{i} is {got}"
            )


# The history's lists of numbers (the loop's HISTORY_KEYS, and the x axis's names before "seen"),
# and those that go together point by point (one entry per evaluation).
_NUMERIC_HISTORY = ("steps", "seen", "train_loss", "val_loss", "step_loss", "tokens", "chars")
_NUMERIC_HISTORY += ("examples", "train_acc", "val_acc", "test_acc", "epoch_seconds")
_PER_EVALUATION = ("steps", "seen", "tokens", "chars", "examples", "train_loss", "val_loss")


def _check_history(path, history: dict) -> None:
    for key, values in history.items():
        if not isinstance(values, list):
            raise ValueError(
                f"{path}: its metadata's history[{key!r}] must be a list, got {values!r:.40}"
            )
        if key in _NUMERIC_HISTORY and not all(type(v) in (int, float) for v in values):
            raise ValueError(f"{path}: its metadata's history[{key!r}] must hold numbers only")
    lengths = {k: len(history[k]) for k in _PER_EVALUATION if k in history}
    if len(set(lengths.values())) > 1:
        raise ValueError(
            f"{path}: its metadata's history lists one entry per evaluation, but their lengths "
            f"differ: {lengths}"
        )


def _check_optimizer(path, params: dict, opt_steps: dict, exp_avg: dict, exp_avg_sq: dict) -> None:
    """AdamW's step counts and moments: for parameters of the model, of their shapes."""
    for key, t in opt_steps.items():
        if key not in params or type(t) is not int or t < 0:
            raise ValueError(
                f"{path}: its metadata's opt_steps[{key!r}] must be an integer >= 0 for a "
                f"parameter of the model, got {t!r}"
            )
    for prefix, moments in ((EXP_AVG, exp_avg), (EXP_AVG_SQ, exp_avg_sq)):
        for key, a in moments.items():
            if key not in params or a.shape != params[key].shape:
                want = params[key].shape if key in params else "no such parameter"
                raise ValueError(
                    f"{path}: tensor {prefix}{key} has shape {a.shape}, but the parameter has "
                    f"{want}"
                )


# ---- a run's settings, as saved ------------------------------------------------------------------


def saved_settings(saved: SavedRun, cls):
    """The settings a checkpoint was trained with, as the settings dataclass `cls`: no key the
    class lacks, every value of its field's annotated type (a string is never a number or a
    dict), then built, which checks each value as its flag is checked (twinlm.training.settings).
    A key it lacks keeps the field's default. Any failure: ValueError naming the file and the key."""
    where, settings = saved.path or "the checkpoint", saved.meta.get("settings")
    if not isinstance(settings, dict):
        raise ValueError(f"{where} holds no training settings")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(settings) - set(hints))
    if unknown:
        raise ValueError(
            f"{where}: its settings hold {unknown}, which {cls.__name__} does not have; it was "
            "written by another version of twinlm, or by hand"
        )
    for key, value in settings.items():
        if not _fits(value, hints[key]):
            kind = getattr(hints[key], "__name__", str(hints[key]))
            raise ValueError(f"{where}: its settings' {key} is {value!r:.40}, not a {kind}")
    try:
        return cls(**settings)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: its settings' {e}") from None


def _fits(value, hint) -> bool:
    """`value` (from JSON) has the type `hint` (int, float, bool, str, dict, None or a union)."""
    if hint is float:
        return type(value) in (int, float) and math.isfinite(value)
    if hint in (int, bool, str, dict):
        return type(value) is hint
    if hint is type(None):
        return value is None
    args = typing.get_args(hint)
    return any(_fits(value, a) for a in args) if args else True
