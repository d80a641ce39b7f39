"""JSON files read strictly: configs, indexes, run records. A file that cannot be read, is not
JSON, or holds the wrong kind of value is refused in one line naming the file (and the key):

    read_json_object(path)            a JSON file holding an object
    config_value(config, key, kind)   one key, of exactly the type it must have

A config value has the JSON type its key needs, or the file is refused naming the key:
`"tie_word_embeddings": "false"` is a string, not False, and is not guessed at; 300.0 is not an
integer; Infinity and NaN (which Python's parser accepts) are not numbers here.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


def read_json_object(path: str | os.PathLike) -> dict:
    """The JSON object in `path`; ValueError naming the file if it cannot be read, is not JSON
    (nesting too deep for the parser included), or holds anything but an object."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise ValueError(f"{path} is not readable JSON: {first_line(e)}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a JSON object, got {_json_type(value)}")
    return value


def first_line(e: BaseException) -> str:
    """An exception's message, its first line (its type's name if it has none)."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _json_type(value) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names |= {list: "a list", dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def described(value) -> str:
    """A JSON value for a message: its type, then (unless null) the start of its text."""
    return "null" if value is None else f"{_json_type(value)} {value!r:.60}"


_MISSING = object()
KINDS = ("positive int", "positive number", "bool", "str", "object", "list")


def config_value(config: dict, key: str, kind: str, where, default=_MISSING, *, null_ok=False):
    """config[key], which must be of `kind` (KINDS; a positive number is finite and > 0); `default`
    when the key is absent (or null, with null_ok). Refused naming `where` and the key otherwise:
    strings are never read as booleans or numbers, nor floats as ints."""
    if key not in config or (null_ok and config[key] is None):
        if default is _MISSING:
            raise ValueError(f"{where} is missing {key}")
        return default
    value = config[key]
    ok = {
        "positive int": lambda v: type(v) is int and v > 0,
        "positive number": lambda v: type(v) in (int, float) and math.isfinite(v) and v > 0,
        "bool": lambda v: type(v) is bool,
        "str": lambda v: type(v) is str,
        "object": lambda v: type(v) is dict,
        "list": lambda v: type(v) is list,
    }[kind]
    if not ok(value):
        kind_text = {"object": "a JSON object", "list": "a list", "str": "a string"}
        kind_text |= {"bool": "true or false (a JSON boolean, not a string)"}
        wanted = kind_text.get(kind, f"a {kind}")
        raise ValueError(f"{where}: {key} must be {wanted}, got {described(value)}")
    return value
