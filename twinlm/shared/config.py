"""Model configurations: the book's GPT config dict, the GPT-2 sizes, Qwen3's, and small presets.

A config is a plain dict with the keys of "Build a Large Language Model (From Scratch)", ch. 4:
    vocab_size, context_length, emb_dim, n_heads, n_layers, drop_rate, qkv_bias
Both backends read the same dict. `get_config(name, **overrides)` returns a validated copy.

The GPT-2 presets keep the book's training defaults (drop_rate 0.1, qkv_bias False). OpenAI's
released weights were trained with qkv_bias=True, so loading them needs `qkv_bias=True` (and the
book sets drop_rate=0.0 for inference).
"""

from __future__ import annotations

from typing import Any, NamedTuple

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


# ---- Qwen3 ---------------------------------------------------------------------------------------
#
# A Qwen3 config is a dict too, with the GPT's names where the meaning is the same (vocab_size,
# context_length, emb_dim, n_heads, n_layers) and Raschka's Qwen3 notebook's names for the rest:
#   n_kv_heads      key/value heads (grouped-query attention; divides n_heads)
#   head_dim        per head (Qwen3: not emb_dim / n_heads; 0.6B has 16 × 128 = 2048 ≠ 1024)
#   hidden_dim      the SwiGLU feed-forward's hidden size
#   rope_base       RoPE's θ (Hugging Face's rope_theta; 1e6 for Qwen3)
#   rms_norm_eps    RMSNorm's ε (1e-6)
#   tie_embeddings  the output head is the token embedding (tie_word_embeddings)
#   attention_bias  biases on q, k, v and o projections (Hugging Face's attention_bias)
# Qwen3 is dropout-free, so there is no drop_rate. `is_qwen3_config` tells the two kinds apart.

QWEN3_CONFIG_KEYS = (
    "vocab_size",
    "context_length",
    "emb_dim",
    "n_heads",
    "n_kv_heads",
    "head_dim",
    "hidden_dim",
    "n_layers",
    "rope_base",
    "rms_norm_eps",
    "tie_embeddings",
    "attention_bias",
)

QWEN3_PRESETS: dict[str, dict] = {
    # Qwen/Qwen3-0.6B-Base's shape (its config.json): 596M parameters, 151.9M of them the tied
    # embedding. The instruct model Qwen3-0.6B is the same shape with context 40960.
    "qwen3-0.6b": {
        "vocab_size": 151936,
        "context_length": 32768,
        "emb_dim": 1024,
        "n_heads": 16,
        "n_kv_heads": 8,
        "head_dim": 128,
        "hidden_dim": 3072,
        "n_layers": 28,
        "rope_base": 1_000_000.0,
        "rms_norm_eps": 1e-6,
        "tie_embeddings": True,
        "attention_bias": False,
    },
    # Training from scratch on GPT-2 BPE tokens (`twinlm train --arch qwen3`): the "tiny" GPT's size.
    "qwen3-tiny": {
        "vocab_size": 50257,
        "context_length": 128,
        "emb_dim": 64,
        "n_heads": 4,
        "n_kv_heads": 2,
        "head_dim": 16,
        "hidden_dim": 192,
        "n_layers": 2,
        "rope_base": 1_000_000.0,
        "rms_norm_eps": 1e-6,
        "tie_embeddings": True,
        "attention_bias": False,
    },
    # Parity tests: 2 query heads per key/value head, n_heads · head_dim ≠ emb_dim, milliseconds.
    "qwen3-test": {
        "vocab_size": 67,
        "context_length": 12,
        "emb_dim": 16,
        "n_heads": 4,
        "n_kv_heads": 2,
        "head_dim": 6,
        "hidden_dim": 24,
        "n_layers": 2,
        "rope_base": 10_000.0,
        "rms_norm_eps": 1e-6,
        "tie_embeddings": True,
        "attention_bias": False,
    },
}


def is_qwen3_config(cfg) -> bool:
    """A Qwen3 config (it has n_kv_heads), as opposed to the book's GPT config."""
    return isinstance(cfg, dict) and "n_kv_heads" in cfg


def validate_qwen3_config(cfg: dict) -> dict:
    """Check every Qwen3 key is present and sensible; returns `cfg` unchanged."""
    if not isinstance(cfg, dict):
        raise TypeError(
            f"cfg must be a dict with keys {list(QWEN3_CONFIG_KEYS)}, got {type(cfg).__name__}"
        )
    missing = [k for k in QWEN3_CONFIG_KEYS if k not in cfg]
    if missing:
        raise ValueError(f"cfg is missing Qwen3 keys {missing}")
    unknown = sorted(set(cfg) - set(QWEN3_CONFIG_KEYS))
    if unknown:
        raise ValueError(f"cfg has keys {unknown} that a Qwen3 config does not have (dropout-free)")
    ints = ("vocab_size", "context_length", "emb_dim", "n_heads", "n_kv_heads", "head_dim")
    for key in (*ints, "hidden_dim", "n_layers"):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"cfg[{key!r}] must be an int, got {value!r}")
        if value <= 0:
            raise ValueError(f"cfg[{key!r}] must be positive, got {value}")
    if cfg["n_heads"] % cfg["n_kv_heads"] != 0:
        raise ValueError(
            f"cfg['n_heads'] ({cfg['n_heads']}) must be divisible by cfg['n_kv_heads'] "
            f"({cfg['n_kv_heads']}): each key/value head serves a whole group of query heads"
        )
    if cfg["head_dim"] % 2 != 0:
        raise ValueError(
            f"cfg['head_dim'] must be even (RoPE rotates pairs), got {cfg['head_dim']}"
        )
    for key in ("rope_base", "rms_norm_eps"):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ValueError(f"cfg[{key!r}] must be a positive number, got {value!r}")
    for key in ("tie_embeddings", "attention_bias"):
        if not isinstance(cfg[key], bool):
            raise TypeError(f"cfg[{key!r}] must be a bool, got {cfg[key]!r}")
    return cfg


class Qwen3AttentionArgs(NamedTuple):
    """What every Qwen3 attention op takes after (x, params), in its order, built once per forward
    from the config: `qwen3_block_forward(x, params, *args)`, and so qwen3_qkv_forward,
    qwen3_attention_forward and torch_impl's qwen3_qkv, qwen3_attention, qwen3_block. cos, sin:
    the RoPE tables (T, head_dim / 2) of the tokens' positions, as the backend's arrays."""

    n_heads: int
    n_kv_heads: int
    cos: Any
    sin: Any
    eps: float = 1e-6

    @classmethod
    def of(cls, cfg: dict, cos, sin) -> Qwen3AttentionArgs:
        return cls(cfg["n_heads"], cfg["n_kv_heads"], cos, sin, cfg["rms_norm_eps"])


def validate_lm_config(cfg: dict) -> dict:
    """validate_qwen3_config for a Qwen3 config, validate_config (the book's GPT) otherwise."""
    return validate_qwen3_config(cfg) if is_qwen3_config(cfg) else validate_config(cfg)


def get_config(name: str, **overrides) -> dict:
    """A validated copy of preset `name` (a GPT's from PRESETS or a Qwen3's from QWEN3_PRESETS) with
    `overrides` applied, e.g. get_config("test", drop_rate=0)."""
    if name in QWEN3_PRESETS:
        preset, keys, validate = QWEN3_PRESETS[name], QWEN3_CONFIG_KEYS, validate_qwen3_config
    elif name in PRESETS:
        preset, keys, validate = PRESETS[name], CONFIG_KEYS, validate_config
    else:
        names = sorted(PRESETS) + sorted(QWEN3_PRESETS)
        raise ValueError(f"preset name must be one of {names}, got {name!r}")
    unknown = sorted(set(overrides) - set(keys))
    if unknown:
        raise ValueError(
            f"unknown config keys {unknown} for preset {name!r}; expected some of {list(keys)}"
        )
    return validate({**preset, **overrides})
