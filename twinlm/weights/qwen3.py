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

bfloat16. The published weights are bfloat16: the top 16 bits of a float32 (sign, the same 8
exponent bits, 7 of the 23 mantissa bits). NumPy has no bfloat16, so safetensors files are read
here directly (an 8-byte little-endian header length, a JSON header with each tensor's dtype, shape
and byte range, then the raw bytes) and each bf16 value u becomes a float32 exactly:
    (u as uint32) << 16, viewed as float32
float16 widens exactly too; float32 and float64 are taken as they are.

The config. Two styles of config.json exist: transformers < 5 writes `rope_theta` at the top level
(with `rope_scaling`) and `torch_dtype`; transformers ≥ 5 nests it as `rope_parameters:
{"rope_theta": …, "rope_type": "default"}` and writes `dtype`. Both are read. What twinlm does not
implement is refused with one line each: RoPE scaling other than the default (yarn, linear,
dynamic, …), sliding-window attention layers, an activation other than SiLU, a model_type other
than qwen3, and tensors that are missing, unexpected, misshapen or not floating point.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from twinlm.shared.config import validate_qwen3_config
from twinlm.shared.naming import qwen3_param_shapes

HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
# safetensors stores little-endian; BF16 is read as its raw 16 bits.
_SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2"}
_DROPPED = re.compile(r"(model\.)?(layers\.\d+\.self_attn\.)?rotary_emb\.inv_freq")


def load_qwen3(path: str | os.PathLike, *, dtype=np.float32) -> tuple[dict, dict[str, np.ndarray]]:
    """(cfg, params) from a Qwen3 checkpoint folder (or hub id): cfg with twinlm's Qwen3 keys
    (twinlm.shared.config), params keyed like Hugging Face's state_dict, contiguous NumPy arrays
    of `dtype` (float32, default, or float64; bf16 checkpoints convert exactly to either)."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    folder = qwen3_folder(path)
    cfg = read_qwen3_config(folder / "config.json")
    tensors = _read_checkpoint(folder)
    tensors = {k: v for k, v in tensors.items() if not _DROPPED.fullmatch(k)}
    if cfg["tie_embeddings"]:
        tensors.pop("lm_head.weight", None)
    _check_tensors(tensors, qwen3_param_shapes(cfg), folder.name)
    return cfg, {k: np.ascontiguousarray(tensors[k], dtype=dtype) for k in qwen3_param_shapes(cfg)}


def is_qwen3_folder(path: str | os.PathLike) -> bool:
    """A local folder whose config.json says model_type "qwen3"."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text()).get("model_type") == "qwen3"
    except (OSError, ValueError, AttributeError):
        return False


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
    if not HUB_ID.fullmatch(str(path)):
        raise FileNotFoundError(
            f"path must be a Qwen3 model folder or a hub id like Qwen/Qwen3-0.6B-Base, got {path}"
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
    """twinlm's Qwen3 config from a Hugging Face config.json of either style (module docstring)."""
    try:
        hf = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not readable JSON: {e}") from e
    if not isinstance(hf, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(hf).__name__}")
    if hf.get("model_type") != "qwen3":
        raise ValueError(
            f"{path} says model_type {hf.get('model_type')!r}; load_qwen3 reads Qwen3 ('qwen3') only"
        )
    rope = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", scaling.get("rope_type", scaling.get("type", "default")))
    if rope_type != "default":
        raise ValueError(f"{path}: RoPE scaling {rope_type!r} is not implemented (only 'default')")
    layer_types = hf.get("layer_types") or []
    if hf.get("use_sliding_window") or any(t != "full_attention" for t in layer_types):
        raise ValueError(f"{path}: sliding-window attention layers are not implemented")
    if hf.get("hidden_act", "silu") != "silu":
        raise ValueError(f"{path}: hidden_act {hf['hidden_act']!r} is not implemented (only silu)")
    missing = [
        k
        for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers")
        + ("num_attention_heads", "max_position_embeddings")
        if k not in hf
    ]
    theta = rope.get("rope_theta", hf.get("rope_theta"))
    if theta is None:
        missing.append("rope_theta (top level or in rope_parameters)")
    if missing:
        raise ValueError(f"{path} is missing {', '.join(missing)}")
    heads = hf["num_attention_heads"]
    cfg = {
        "vocab_size": hf["vocab_size"],
        "context_length": hf["max_position_embeddings"],
        "emb_dim": hf["hidden_size"],
        "n_heads": heads,
        "n_kv_heads": hf.get("num_key_value_heads") or heads,
        "head_dim": hf.get("head_dim") or hf["hidden_size"] // heads,
        "hidden_dim": hf["intermediate_size"],
        "n_layers": hf["num_hidden_layers"],
        "rope_base": float(theta),
        "rms_norm_eps": float(hf.get("rms_norm_eps", 1e-6)),
        "tie_embeddings": bool(hf.get("tie_word_embeddings", False)),
        "attention_bias": bool(hf.get("attention_bias", False)),
    }
    try:
        return validate_qwen3_config(cfg)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from e


# ---- safetensors, read without torch --------------------------------------------------------


def _read_checkpoint(folder: Path) -> dict[str, np.ndarray]:
    """Every tensor of model.safetensors, or of the shards model.safetensors.index.json names."""
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        return read_safetensors(single)
    if not index.is_file():
        raise FileNotFoundError(f"{folder} holds neither model.safetensors nor {index.name}")
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{index} is not a safetensors index with a weight_map: {e}") from e
    tensors: dict[str, np.ndarray] = {}
    for shard in sorted(set(weight_map.values())):
        if not (folder / shard).is_file():
            raise FileNotFoundError(f"{index.name} names the shard {shard}, which {folder} lacks")
        found = read_safetensors(folder / shard)
        tensors |= {k: found[k] for k, f in weight_map.items() if f == shard and k in found}
    absent = sorted(k for k in weight_map if k not in tensors)
    if absent:
        raise ValueError(f"{index.name} maps {absent[0]} to a shard that does not hold it")
    return tensors


def read_safetensors(file: Path) -> dict[str, np.ndarray]:
    """Every tensor in a safetensors file as NumPy: float32, float64 and float16 as stored
    (memory-mapped, read-only), bfloat16 widened to float32 exactly."""
    try:
        with open(file, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
        data = np.memmap(file, dtype=np.uint8, mode="r", offset=8 + n)
    except (OSError, ValueError) as e:
        raise ValueError(f"{file} is not a readable safetensors file: {e}") from e
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        stored = _SAFETENSORS_DTYPES.get(info.get("dtype"))
        if stored is None:
            raise TypeError(f"{file.name}: {name} has dtype {info.get('dtype')}, not a float type")
        start, end = info["data_offsets"]
        if end > data.size:
            raise ValueError(f"{file} is truncated: {name} ends at byte {end} of {data.size}")
        tensor = data[start:end].view(stored).reshape(info["shape"])
        if info["dtype"] == "BF16":  # the top 16 bits of a float32: shift them back into place
            tensor = (tensor.astype(np.uint32) << 16).view(np.float32)
        tensors[name] = tensor
    return tensors


def _check_tensors(t: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]], name: str) -> None:
    missing = [k for k in shapes if k not in t]
    if missing:
        more = f" … ({len(missing)} in all)" if len(missing) > 3 else ""
        raise ValueError(f"{name} is missing {', '.join(missing[:3])}{more} for its config.json")
    unexpected = sorted(k for k in t if k not in shapes)
    if unexpected:
        more = f" … ({len(unexpected)} in all)" if len(unexpected) > 3 else ""
        raise ValueError(
            f"{name} has tensors its config.json does not explain: {', '.join(unexpected[:3])}{more}"
        )
    for k, want in shapes.items():
        got = tuple(int(s) for s in t[k].shape)
        if got != want:
            raise ValueError(f"{name}: {k} must have shape {want} (from config.json), got {got}")
