"""GPT model configurations: the book's config dict, the GPT-2 sizes, and small presets.

A config is a plain dict with the keys of "Build a Large Language Model (From Scratch)", ch. 4:
    vocab_size, context_length, emb_dim, n_heads, n_layers, drop_rate, qkv_bias
Both backends read the same dict. `get_config(name, **overrides)` returns a validated copy.

The GPT-2 presets keep the book's training defaults (drop_rate 0.1, qkv_bias False). OpenAI's
released weights were trained with qkv_bias=True, so loading them needs `qkv_bias=True` (and the
book sets drop_rate=0.0 for inference).
"""

from __future__ import annotations

CONFIG_KEYS = (
    "vocab_size",
    "context_length",
    "emb_dim",
    "n_heads",
    "n_layers",
    "drop_rate",
    "qkv_bias",
)

GPT_CONFIG_124M: dict = {
    "vocab_size": 50257,  # GPT-2 BPE vocabulary
    "context_length": 1024,
    "emb_dim": 768,
    "n_heads": 12,
    "n_layers": 12,
    "drop_rate": 0.1,
    "qkv_bias": False,
}


def _gpt2(emb_dim: int, n_layers: int, n_heads: int) -> dict:
    return {**GPT_CONFIG_124M, "emb_dim": emb_dim, "n_layers": n_layers, "n_heads": n_heads}


PRESETS: dict[str, dict] = {
    "gpt2-small": dict(GPT_CONFIG_124M),  # 124M
    "gpt2-medium": _gpt2(1024, 24, 16),  # 355M
    "gpt2-large": _gpt2(1280, 36, 20),  # 774M
    "gpt2-xl": _gpt2(1600, 48, 25),  # 1558M
    # The demo: GPT-2 BPE tokens, small enough for NumPy on a laptop CPU (~6.5M parameters,
    # most of them in tok_emb and out_head).
    "tiny": {
        "vocab_size": 50257,
        "context_length": 128,
        "emb_dim": 64,
        "n_heads": 4,
        "n_layers": 2,
        "drop_rate": 0.1,
        "qkv_bias": False,
    },
    # Parity tests: every code path (qkv biases, dropout) at a size that runs in milliseconds.
    "test": {
        "vocab_size": 67,
        "context_length": 12,
        "emb_dim": 16,
        "n_heads": 2,
        "n_layers": 2,
        "drop_rate": 0.1,
        "qkv_bias": True,
    },
}


def validate_config(cfg: dict) -> dict:
    """Check every key is present and sensible; returns `cfg` unchanged. Raises ValueError/TypeError."""
    if not isinstance(cfg, dict):
        raise TypeError(
            f"cfg must be a dict with keys {list(CONFIG_KEYS)}, got {type(cfg).__name__}"
        )
    missing = [k for k in CONFIG_KEYS if k not in cfg]
    if missing:
        raise ValueError(f"cfg is missing keys {missing}")
    for key in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"cfg[{key!r}] must be an int, got {value!r}")
        if value <= 0:
            raise ValueError(f"cfg[{key!r}] must be positive, got {value}")
    if cfg["emb_dim"] % cfg["n_heads"] != 0:
        raise ValueError(
            f"cfg['emb_dim'] ({cfg['emb_dim']}) must be divisible by cfg['n_heads'] "
            f"({cfg['n_heads']})"
        )
    drop = cfg["drop_rate"]
    if isinstance(drop, bool) or not isinstance(drop, int | float):
        raise TypeError(f"cfg['drop_rate'] must be a float, got {drop!r}")
    if not 0.0 <= drop < 1.0:
        raise ValueError(f"cfg['drop_rate'] must be in [0, 1), got {drop}")
    if not isinstance(cfg["qkv_bias"], bool):
        raise TypeError(f"cfg['qkv_bias'] must be a bool, got {cfg['qkv_bias']!r}")
    return cfg


def get_config(name: str, **overrides) -> dict:
    """A validated copy of preset `name` with `overrides` applied, e.g. get_config("test", drop_rate=0)."""
    if name not in PRESETS:
        raise ValueError(f"preset name must be one of {sorted(PRESETS)}, got {name!r}")
    unknown = sorted(set(overrides) - set(CONFIG_KEYS))
    if unknown:
        raise ValueError(f"unknown config keys {unknown}; expected some of {list(CONFIG_KEYS)}")
    return validate_config({**PRESETS[name], **overrides})
