"""Pretrained weights as NumPy arrays: GPT-2 (Hugging Face safetensors, the book's .pth) and Qwen3
(Hugging Face checkpoint folders, bfloat16 converted without torch).

Which loader a path goes to (`weights_kind`): a folder whose config.json says model_type "qwen3"
is Qwen3's; any other existing folder or file is GPT-2's (a config.json that is not a readable
JSON object is refused naming it, never passed over); a path that does not exist is a hub id
only if it has a hub id's form (owner/name, not ending like a file), else it is a missing file.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from twinlm.data.json_files import config_value, read_json_object
from twinlm.weights.gpt2 import GPT2_HEADS_BY_WIDTH, load_gpt2
from twinlm.weights.qwen3 import is_hub_id, load_qwen3, qwen3_folder

__all__ = [
    "GPT2_HEADS_BY_WIDTH",
    "is_qwen3_weights",
    "load_gpt2",
    "load_pretrained",
    "load_qwen3",
    "qwen3_folder",
    "weights_kind",
]


def weights_kind(path: str | os.PathLike) -> str:
    """ "qwen3" for a Qwen3 checkpoint folder or a hub id (which only load_qwen3 downloads),
    "gpt2" for anything else (load_gpt2 says what is wrong with it, a missing file included)."""
    folder = Path(path)
    config = folder / "config.json"
    if folder.is_dir() and config.is_file():
        model_type = config_value(read_json_object(config), "model_type", "str", config, "gpt2")
        if model_type not in ("gpt2", "qwen3"):
            raise ValueError(
                f"{config} says model_type {model_type!r}; twinlm loads GPT-2 ('gpt2') and Qwen3 "
                "('qwen3') weights"
            )
        return model_type
    return "qwen3" if is_hub_id(path) else "gpt2"


def is_qwen3_weights(path: str | os.PathLike) -> bool:
    """A Qwen3 checkpoint folder, or a hub id (weights_kind)."""
    return weights_kind(path) == "qwen3"


def load_pretrained(
    path: str | os.PathLike, n_heads: int | None = None, *, dtype=np.float32
) -> tuple[dict, dict[str, np.ndarray]]:
    """(cfg, params) of GPT-2 weights (load_gpt2) or of a Qwen3 folder or hub id (load_qwen3); cfg
    says which (twinlm.shared.config.is_qwen3_config)."""
    if is_qwen3_weights(path):
        if n_heads is not None:
            raise ValueError(
                f"n_heads is for GPT-2 weights; {path}'s config.json gives Qwen3's heads"
            )
        return load_qwen3(path, dtype=dtype)
    return load_gpt2(path, n_heads, dtype=dtype)
