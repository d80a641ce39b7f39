"""Load a Hugging Face Qwen3 checkpoint folder as NumPy arrays — no torch, no transformers.

`load_qwen3(path) -> (cfg, params)`: path is a local folder holding `config.json` and either
`model.safetensors` or a sharded `model.safetensors.index.json` (its `weight_map` names the shard of
every tensor), as `hf download Qwen/Qwen3-0.6B-Base --local-dir DIR` leaves it. A hub
id such as "Qwen/Qwen3-0.6B-Base" is downloaded first when huggingface_hub is installed (the [hf]
extra) and the hub is reachable; otherwise the error says how to download it.

The keys need no renaming: twinlm's Qwen3Model uses Hugging Face's state_dict keys. A tied model's
checkpoint normally has no `lm_head.weight`; when one is stored anyway it is dropped, as
transformers drops it (the head is the embedding). Old checkpoints' `rotary_emb.inv_freq` buffers
are dropped too (the angles are computed from the config).

bfloat16. The published weights are bfloat16, which NumPy lacks; twinlm.weights.reading reads
every safetensors file through the `safetensors` library (which validates its header) and widens
bf16 to float32 exactly. Before any tensor data is read, config.json is checked against the names
and shapes in the headers (its num_hidden_layers against the layers present first, so a config
that claims 10⁹ layers is refused at once); once read, every weight must be finite.

Files. A sharded checkpoint's index names its shards by file name; a name that leaves the folder
(an absolute path, `..`) is refused, so only files inside the folder given are read. Links inside
the folder are followed (the hub's cache keeps its files as links into a blob store).

The config. Two styles of config.json exist: transformers < 5 writes `rope_theta` at the top level
(with `rope_scaling`) and `torch_dtype`; transformers ≥ 5 nests it as `rope_parameters:
{"rope_theta": …, "rope_type": "default"}` and writes `dtype`. Both are read. Every key must have its
JSON type (`"tie_word_embeddings": "false"` is a string, refused, not read as true). What twinlm
does not implement is refused with one line each: RoPE scaling other than the default (yarn, linear,
dynamic, …), sliding-window attention layers, an activation other than SiLU, a model_type other
than qwen3, and tensors that are missing, unexpected, misshapen or not floating point.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from twinlm.data.json_files import config_value, read_json_object
from twinlm.shared.config import validate_qwen3_config
from twinlm.shared.naming import qwen3_param_shapes
from twinlm.weights.reading import (
    file_inside,
    read_safetensors,
    require_finite,
    require_layout,
    safetensors_layout,
)

__all__ = ["is_hub_id", "load_qwen3", "qwen3_folder", "read_qwen3_config", "read_safetensors"]

# A Hugging Face repo id, owner/name: word characters, '.', '-'; each part starts and ends with a
# word character, and '--' or '..' appear nowhere (huggingface_hub's rule).
_HUB_ID = re.compile(r"\w(?:[\w.-]*\w)?/\w(?:[\w.-]{0,94}\w)?")
_WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin", ".json")
_DROPPED = re.compile(r"(model\.)?(layers\.\d+\.self_attn\.)?rotary_emb\.inv_freq")
_LAYER = re.compile(r"model\.layers\.(\d+)\.")


def is_hub_id(path: str | os.PathLike) -> bool:
    """`path` reads as a hub id (owner/name) rather than a local path: it does not exist, has the
    form of a repo id, and does not end like a file (`../nope.safetensors` is a missing file)."""
    text = str(path)
    return (
        not Path(text).exists()
        and bool(_HUB_ID.fullmatch(text))
        and "--" not in text
        and ".." not in text
        and not text.lower().endswith(_WEIGHT_SUFFIXES)
    )


def load_qwen3(path: str | os.PathLike, *, dtype=np.float32) -> tuple[dict, dict[str, np.ndarray]]:
    """(cfg, params) from a Qwen3 checkpoint folder (or hub id): cfg with twinlm's Qwen3 keys
    (twinlm.shared.config), params keyed like Hugging Face's state_dict, contiguous NumPy arrays
    of `dtype` (float32, default, or float64; bf16 checkpoints convert exactly to either).
    config.json is checked against the tensors' names and shapes, read from the safetensors
    headers, before any tensor data is read."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    folder = qwen3_folder(path)
    cfg = read_qwen3_config(folder / "config.json")
    layout = _layout(folder)  # key -> (file, dtype, shape)
    layout = {k: v for k, v in layout.items() if not _DROPPED.fullmatch(k)}
    if cfg["tie_embeddings"]:
        layout.pop("lm_head.weight", None)
    shapes = _expected_shapes(cfg, layout, folder)
    tensors: dict[str, np.ndarray] = {}
    for file in dict.fromkeys(f for f, _, _ in layout.values()):
        tensors |= read_safetensors(file, {k for k, (f, _, _) in layout.items() if f == file})
    require_finite(tensors, folder)
    return cfg, {k: np.ascontiguousarray(tensors[k], dtype=dtype) for k in shapes}


def qwen3_folder(path: str | os.PathLike) -> Path:
    """The local folder for `path`: the folder itself, or a hub id downloaded with huggingface_hub."""
    folder = Path(path)
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"{folder} holds no config.json: not a Hugging Face model folder"
            )
        return folder
    if folder.exists():
        raise FileNotFoundError(
            f"path must be a Qwen3 model folder (config.json, safetensors), got the file {folder}"
        )
    if not is_hub_id(path):
        raise FileNotFoundError(
            f"path must be a Qwen3 model folder or a hub id like Qwen/Qwen3-0.6B-Base; {path} "
            "does not exist"
        )
    how = f"hf download {path} --local-dir <folder> (huggingface_hub ≥ 0.34), then pass that folder"
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise FileNotFoundError(
            f"{path} is not a local folder and huggingface_hub is not installed (pip install "
            f"'twinlm[hf]'); download it with: {how}"
        ) from None
    try:
        patterns = ["*.json", "*.safetensors", "tokenizer*"]
        return Path(snapshot_download(str(path), allow_patterns=patterns))
    except Exception as e:  # offline, unknown repo, gated: huggingface_hub has many error types
        raise FileNotFoundError(
            f"{path} is not a local folder and could not be downloaded ({type(e).__name__}); "
            f"download it with: {how}"
        ) from e


def read_qwen3_config(path: Path) -> dict:
    """twinlm's Qwen3 config from a Hugging Face config.json of either style (module docstring);
    every key of the type it must have (config_value), never coerced."""
    hf = read_json_object(path)
    if hf.get("model_type") != "qwen3":
        raise ValueError(
            f"{path} says model_type {hf.get('model_type')!r}; load_qwen3 reads Qwen3 ('qwen3') only"
        )
    rope = config_value(hf, "rope_parameters", "object", path, {}, null_ok=True)
    scaling = config_value(hf, "rope_scaling", "object", path, {}, null_ok=True)
    rope_type = rope.get("rope_type", scaling.get("rope_type", scaling.get("type", "default")))
    if rope_type != "default":
        raise ValueError(f"{path}: RoPE scaling {rope_type!r} is not implemented (only 'default')")
    layer_types = config_value(hf, "layer_types", "list", path, [], null_ok=True)
    sliding = config_value(hf, "use_sliding_window", "bool", path, False, null_ok=True)
    if sliding or any(t != "full_attention" for t in layer_types):
        raise ValueError(f"{path}: sliding-window attention layers are not implemented")
    act = config_value(hf, "hidden_act", "str", path, "silu")
    if act != "silu":
        raise ValueError(f"{path}: hidden_act {act!r} is not implemented (only silu)")

    def size(key: str, default=None):
        return config_value(hf, key, "positive int", path, *(() if default is None else (default,)))

    heads = size("num_attention_heads")
    hidden = size("hidden_size")
    if "rope_theta" in rope:
        theta = config_value(rope, "rope_theta", "positive number", f"{path} (rope_parameters)")
    elif "rope_theta" in hf:
        theta = config_value(hf, "rope_theta", "positive number", path)
    else:
        raise ValueError(f"{path} is missing rope_theta (top level or in rope_parameters)")
    cfg = {
        "vocab_size": size("vocab_size"),
        "context_length": size("max_position_embeddings"),
        "emb_dim": hidden,
        "n_heads": heads,
        "n_kv_heads": config_value(
            hf, "num_key_value_heads", "positive int", path, heads, null_ok=True
        ),  # fmt: skip
        "head_dim": config_value(
            hf, "head_dim", "positive int", path, hidden // heads, null_ok=True
        ),  # fmt: skip
        "hidden_dim": size("intermediate_size"),
        "n_layers": size("num_hidden_layers"),
        "rope_base": float(theta),
        "rms_norm_eps": float(config_value(hf, "rms_norm_eps", "positive number", path, 1e-6)),
        "tie_embeddings": config_value(hf, "tie_word_embeddings", "bool", path, False),
        "attention_bias": config_value(hf, "attention_bias", "bool", path, False),
    }
    try:
        return validate_qwen3_config(cfg)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from e


# ---- the checkpoint's tensors ----------------------------------------------------------------


def _layout(folder: Path) -> dict[str, tuple[Path, str, tuple[int, ...]]]:
    """{key: (file, dtype, shape)} of every tensor of model.safetensors, or of the shards
    model.safetensors.index.json names (only files inside the folder), from the headers alone."""
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        return {k: (single, *v) for k, v in safetensors_layout(single).items()}
    if not index.is_file():
        raise FileNotFoundError(f"{folder} holds neither model.safetensors nor {index.name}")
    weight_map = config_value(read_json_object(index), "weight_map", "object", index)
    shards: dict[Path, list[str]] = {}
    for key, shard in weight_map.items():
        file = file_inside(folder, shard, f"{index}'s weight_map entry for {key}")
        shards.setdefault(file, []).append(key)
    layout = {}
    for file, keys in shards.items():
        if not file.is_file():
            raise FileNotFoundError(f"{index} names the shard {file.name}, which {folder} lacks")
        found = safetensors_layout(file)
        absent = [k for k in keys if k not in found]
        if absent:
            raise ValueError(f"{index} maps {absent[0]} to the shard {file.name}, which lacks it")
        layout |= {k: (file, *found[k]) for k in keys}
    return layout


def _expected_shapes(cfg: dict, layout: dict, folder: Path) -> dict[str, tuple[int, ...]]:
    """The shapes config.json implies, once its number of layers is the checkpoint's (so that
    a num_hidden_layers of 10⁹ is refused before 10⁹ layers' names are listed); then every
    tensor present, named and shaped as they say."""
    layers = {int(m.group(1)) for k in layout if (m := _LAYER.match(k))}
    if cfg["n_layers"] != len(layers):
        raise ValueError(
            f"{folder / 'config.json'} says num_hidden_layers={cfg['n_layers']}, but the "
            f"checkpoint's tensors hold {len(layers)} layers (model.layers.<i>.*)"
        )
    shapes = qwen3_param_shapes(cfg)
    found = {k: shape for k, (_, _, shape) in layout.items()}
    require_layout(found, shapes, str(folder), "its config.json")
    return shapes
