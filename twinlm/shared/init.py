"""The one seeded initializer for GPT parameters, shared by both backends.

`init_gpt_params(cfg, seed)` returns a dict whose keys are exactly the book's GPTModel state_dict
keys (without the `att.mask` buffers), so the NumPy model uses it directly and the torch model
loads it with `load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})`.

GPT-2's initialisation (as in nanoGPT):
    every Linear weight and both embeddings   N(0, 0.02²)
    residual projections (att.out_proj, ff.layers.2)   N(0, (0.02 / √(2·n_layers))²)
        — each block adds two of them to the residual stream, so the stream's variance at the top
          stays ~0.02² whatever the depth
    biases 0; LayerNorm scale 1, shift 0
Draws are made in float64 in key order and then cast, so the float32 init is exactly the float64
init rounded to float32, for any seed.

`numpy_state_dict(state, shapes)` is the other direction's check: a state_dict (NumPy arrays or CPU
torch tensors) copied into NumPy arrays, keys, shapes and dtype verified, for the NumPy models'
load_state_dict.
"""

from __future__ import annotations

import math

import numpy as np

from twinlm.shared.config import validate_config
from twinlm.shared.validate import require_exact_keys, require_shape

INIT_STD = 0.02


def gpt_param_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """Every parameter's name and shape, in the order of the book's state_dict."""
    V, T, C = cfg["vocab_size"], cfg["context_length"], cfg["emb_dim"]
    shapes: dict[str, tuple[int, ...]] = {"tok_emb.weight": (V, C), "pos_emb.weight": (T, C)}
    for i in range(cfg["n_layers"]):
        b = f"trf_blocks.{i}."
        for proj in ("W_query", "W_key", "W_value"):
            shapes[f"{b}att.{proj}.weight"] = (C, C)
            if cfg["qkv_bias"]:
                shapes[f"{b}att.{proj}.bias"] = (C,)
        shapes[f"{b}att.out_proj.weight"] = (C, C)
        shapes[f"{b}att.out_proj.bias"] = (C,)
        shapes[f"{b}ff.layers.0.weight"] = (4 * C, C)
        shapes[f"{b}ff.layers.0.bias"] = (4 * C,)
        shapes[f"{b}ff.layers.2.weight"] = (C, 4 * C)
        shapes[f"{b}ff.layers.2.bias"] = (C,)
        for norm in ("norm1", "norm2"):
            shapes[f"{b}{norm}.scale"] = (C,)
            shapes[f"{b}{norm}.shift"] = (C,)
    shapes["final_norm.scale"] = (C,)
    shapes["final_norm.shift"] = (C,)
    shapes["out_head.weight"] = (V, C)
    return shapes


def init_gpt_params(cfg: dict, seed: int = 0, dtype=np.float32) -> dict[str, np.ndarray]:
    """GPT-2-style initial parameters with the book's state_dict keys (see module docstring)."""
    validate_config(cfg)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    rng = np.random.default_rng(seed)
    residual_std = INIT_STD / math.sqrt(2 * cfg["n_layers"])
    params = {}
    for name, shape in gpt_param_shapes(cfg).items():
        if name.endswith(".scale"):
            value = np.ones(shape)
        elif name.endswith((".bias", ".shift")):
            value = np.zeros(shape)
        elif name.endswith(("att.out_proj.weight", "ff.layers.2.weight")):
            value = residual_std * rng.standard_normal(shape)
        else:
            value = INIT_STD * rng.standard_normal(shape)
        params[name] = value.astype(dtype)
    return params


def gpt_dropout_mask_shapes(cfg: dict, batch: int, seq: int) -> dict[str, tuple[int, ...]]:
    """Every dropout mask of one forward pass, by name (see numpy_impl/gpt.py for where each acts)."""
    C, H = cfg["emb_dim"], cfg["n_heads"]
    shapes = {"drop_emb": (batch, seq, C)}
    for i in range(cfg["n_layers"]):
        shapes[f"trf_blocks.{i}.att.dropout"] = (batch, H, seq, seq)
        shapes[f"trf_blocks.{i}.drop_shortcut.att"] = (batch, seq, C)
        shapes[f"trf_blocks.{i}.drop_shortcut.ff"] = (batch, seq, C)
    return shapes


def draw_gpt_dropout_masks(
    cfg: dict, rng: np.random.Generator, batch: int, seq: int, dtype=np.float32
) -> dict[str, np.ndarray]:
    """0/1 masks, 1 (keep) with probability 1 - drop_rate, for both backends to apply."""
    p = cfg["drop_rate"]
    return {
        name: (rng.random(shape) >= p).astype(dtype)
        for name, shape in gpt_dropout_mask_shapes(cfg, batch, seq).items()
    }


def numpy_state_dict(state: dict, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """Copies of a state_dict's values (NumPy arrays or CPU torch tensors) as NumPy arrays, after
    checking them: exactly the keys of `shapes`, those shapes, all float32 or all float64. What a
    NumPy model's load_state_dict needs (the model then takes that dtype)."""
    require_exact_keys("state_dict", state, shapes)
    arrays = {}
    for k, shape in shapes.items():
        v = state[k]
        if hasattr(v, "detach"):  # a torch tensor, read without importing torch
            v = v.detach().cpu().numpy()
        arrays[k] = np.array(v, copy=True)
        require_shape(f"state_dict[{k!r}]", arrays[k], shape)
    dtypes = sorted({str(a.dtype) for a in arrays.values()})
    if len(dtypes) != 1 or dtypes[0] not in ("float32", "float64"):
        raise TypeError(f"state_dict arrays must all be float32 or all float64, got {dtypes}")
    return arrays
