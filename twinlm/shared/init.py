"""Every seeded initializer both backends start from: GPT-2, Qwen3, the LSTM, GRU and vanilla
RNN, the char-RNN, and dropout masks.

GPT-2.

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

from twinlm.shared.config import validate_config, validate_qwen3_config
from twinlm.shared.naming import (
    charrnn_param_shapes,
    gpt_param_shapes,
    gru_param_shapes,
    lstm_param_shapes,
    qwen3_param_shapes,
    rnn_param_shapes,
)
from twinlm.shared.validate import require_charrnn_config, require_exact_keys, require_shape

INIT_STD = 0.02


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


def init_qwen3_params(cfg: dict, seed: int | None = 0, dtype=np.float32) -> dict[str, np.ndarray]:
    """Qwen3's initial parameters with Hugging Face's keys: Qwen3PreTrainedModel's init, every
    Linear weight and the embedding N(0, 0.02²) (initializer_range; no depth scaling), biases 0,
    RMSNorm weights 1. Drawn in float64 in key order and then cast, like init_gpt_params.
    seed None: every weight 0 and every norm 1 without drawing (a model about to be loaded)."""
    validate_qwen3_config(cfg)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    rng = None if seed is None else np.random.default_rng(seed)
    params = {}
    for name, shape in qwen3_param_shapes(cfg).items():
        if name.endswith(
            "norm.weight"
        ):  # input_layernorm, post_attention_layernorm, q/k_norm, norm
            params[name] = np.ones(shape, dtype=dtype)
        elif name.endswith(".bias") or rng is None:
            params[name] = np.zeros(shape, dtype=dtype)
        else:
            params[name] = (INIT_STD * rng.standard_normal(shape)).astype(dtype)
    return params


def draw_dropout_masks(
    shapes: dict[str, tuple[int, ...]], rng: np.random.Generator, p: float, dtype=np.float32
) -> dict[str, np.ndarray]:
    """0/1 keep-masks by name (1 with probability 1 - p), drawn from `rng` in the order of `shapes`
    (naming.gpt_dropout_mask_shapes, naming.charrnn_dropout_mask_shapes), for both backends."""
    return {name: (rng.random(shape) >= p).astype(dtype) for name, shape in shapes.items()}


def _uniform_params(shapes: dict, hidden_size: int, seed: int, dtype) -> dict[str, np.ndarray]:
    """torch's recurrent init, U(-1/√H, 1/√H) for every parameter, drawn in float64 in key order
    and then cast (so the float32 init is the float64 init rounded)."""
    bound = 1 / math.sqrt(hidden_size)
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(-bound, bound, s).astype(dtype) for k, s in shapes.items()}


def init_lstm_params(
    input_size: int, hidden_size: int, num_layers: int = 1, seed: int = 0, dtype=np.float32
) -> dict[str, np.ndarray]:
    """torch.nn.LSTM's init, U(-1/√H, 1/√H) for every parameter (see _uniform_params)."""
    shapes = lstm_param_shapes(input_size, hidden_size, num_layers)
    return _uniform_params(shapes, hidden_size, seed, dtype)


def init_gru_params(
    input_size: int, hidden_size: int, num_layers: int = 1, seed: int = 0, dtype=np.float32
) -> dict[str, np.ndarray]:
    """torch.nn.GRU's init, U(-1/√H, 1/√H) for every parameter (see _uniform_params)."""
    shapes = gru_param_shapes(input_size, hidden_size, num_layers)
    return _uniform_params(shapes, hidden_size, seed, dtype)


def init_rnn_params(
    input_size: int, hidden_size: int, num_layers: int = 1, seed: int = 0, dtype=np.float32
) -> dict[str, np.ndarray]:
    """torch.nn.RNN's init (tanh and relu alike), U(-1/√H, 1/√H) for every parameter."""
    shapes = rnn_param_shapes(input_size, hidden_size, num_layers)
    return _uniform_params(shapes, hidden_size, seed, dtype)


def init_charrnn_params(cfg: dict, seed: int = 0, dtype=np.float32) -> dict[str, np.ndarray]:
    """The one seeded char-RNN initializer for both backends, torch's default init for each module:
        embedding.weight        ~ N(0, 1)          (nn.Embedding)
        lstm.* | gru.* | rnn.*  ~ U(-1/√H, 1/√H)   (nn.LSTM / GRU / RNN, both biases independently)
        decoder.*               ~ U(-1/√H, 1/√H)   (nn.Linear: 1/√fan_in, fan_in = H)
    drawn in float64 in key order and then cast, so the float32 init is the float64 init rounded."""
    require_charrnn_config(cfg)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    rng = np.random.default_rng(seed)
    bound = 1 / math.sqrt(cfg["hidden_size"])  # recurrent layers and decoder alike: fan_in = H
    params = {}
    for name, shape in charrnn_param_shapes(cfg).items():
        if name == "embedding.weight":
            value = rng.standard_normal(shape)
        else:
            value = rng.uniform(-bound, bound, shape)
        params[name] = value.astype(dtype)
    return params


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
