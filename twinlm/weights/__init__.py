"""Pretrained weights as NumPy arrays: GPT-2 (Hugging Face safetensors, the book's .pth) and Qwen3
(Hugging Face checkpoint folders, bfloat16 converted without torch)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from twinlm.weights.gpt2 import GPT2_HEADS_BY_WIDTH, load_gpt2
from twinlm.weights.qwen3 import HUB_ID, is_qwen3_folder, load_qwen3, qwen3_folder

__all__ = [
    "GPT2_HEADS_BY_WIDTH",
    "is_qwen3_weights",
    "load_gpt2",
    "load_pretrained",
    "load_qwen3",
    "qwen3_folder",
]


def is_qwen3_weights(path: str | os.PathLike) -> bool:
    """A Qwen3 checkpoint folder, or a hub id (which only load_qwen3 downloads)."""
    return is_qwen3_folder(path) or (not Path(path).exists() and bool(HUB_ID.fullmatch(str(path))))


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
