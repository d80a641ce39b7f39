"""Load pretrained GPT-2 weights into the book's parameter names — no TensorFlow, no pickle.

Two sources, one entry point, `load_gpt2(path) -> (cfg, params)`:

* Hugging Face GPT-2 (`model.safetensors` of gpt2, gpt2-medium, gpt2-large, gpt2-xl). Keys
  `wte.weight`, `wpe.weight`, `h.{i}.ln_1.*`, `h.{i}.attn.c_attn.*`, `h.{i}.attn.c_proj.*`,
  `h.{i}.ln_2.*`, `h.{i}.mlp.c_fc.*`, `h.{i}.mlp.c_proj.*`, `ln_f.*`, with or without a
  `transformer.` prefix. HF's GPT-2 uses Conv1D layers, which compute `y = x @ W + b` with W stored
  (in, out); the book's nn.Linear computes `y = x @ W.T + b` with W stored (out, in). So:

      W_query | W_key | W_value = c_attn.weight.T split in three   c_attn.weight (D, 3D)
      out_proj.weight           = attn.c_proj.weight.T              (D, D)
      ff.layers.0.weight        = mlp.c_fc.weight.T                 (4D, D)
      ff.layers.2.weight        = mlp.c_proj.weight.T               (D, 4D)
      norm1 / norm2 / final_norm (scale, shift) = ln_1 / ln_2 / ln_f (weight, bias)
      out_head.weight           = lm_head.weight if stored, else a copy of wte.weight (GPT-2 ties
                                  them; a copy lets fine-tuning move the head on its own)

  The attention-mask buffers `attn.bias` / `attn.masked_bias` are ignored (our attention builds its
  own causal mask). GPT-2 has biases on the query/key/value projections, so `qkv_bias=True`.

* A state_dict saved by the book's `GPTModel` (`torch.save(model.state_dict(), "model.pth")`, or a
  dict holding it under "model_state_dict" as chapter 5 saves it together with the optimizer):
  already in the book's names. Read with `torch.load(..., weights_only=True)`, which refuses to run
  arbitrary pickled code. The `att.mask` buffers are dropped; `qkv_bias` is True when
  `W_query.bias` is stored.

A safetensors file is read through the `safetensors` library (twinlm.weights.reading: its header
validated, bfloat16 widened exactly); every weight must be finite, and a block index past the
number of tensors (a stray `h.999999999.*` key) is refused before anything is built per block. A
config.json beside the weights (read when n_heads is not given) has every key of its JSON type,
and the sizes it gives (n_embd, n_layer, n_positions / n_ctx, vocab_size, or the book's names) and
qkv_bias equal to what the tensors show; an activation or LayerNorm epsilon other than GPT-2's,
which the tensors cannot show, is refused.

Which layout a file holds is decided by its keys (`wte.weight` vs `tok_emb.weight`), which format by
its suffix (`.safetensors` is read with safetensors, anything else with `torch.load`), so an HF
`pytorch_model.bin` loads too.

The config comes from the tensors: vocab_size and emb_dim from the token embedding, context_length
from the position embedding, n_layers from the block indices. The tensors cannot tell the number of
attention heads, so it is resolved in this order:

  1. the explicit `n_heads` argument (it wins over everything, so any file can be loaded),
  2. `n_head` (HF) or `n_heads` (book) in a `config.json` beside the weights,
  3. the standard GPT-2 sizes by width: 768→12, 1024→16, 1280→20, 1600→25.

`drop_rate` is 0.0: pretrained weights are loaded for inference or as a start for fine-tuning, and
the caller sets a rate for training if it wants one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from twinlm.data.json_files import config_value, read_json_object
from twinlm.shared.config import validate_config
from twinlm.shared.naming import gpt_param_shapes
from twinlm.weights.reading import (
    read_safetensors,
    require_finite,
    safetensors_layout,
)

# GPT-2 releases: width -> attention heads (small, medium, large, xl).
GPT2_HEADS_BY_WIDTH = {768: 12, 1024: 16, 1280: 20, 1600: 25}

_WEIGHT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")
_HF_BUFFERS = re.compile(r"h\.\d+\.attn\.(bias|masked_bias)")
_BOOK_BUFFERS = re.compile(r"trf_blocks\.\d+\.att\.mask")


def load_gpt2(
    path: str | os.PathLike, n_heads: int | None = None, *, dtype=np.float32
) -> tuple[dict, dict[str, np.ndarray]]:
    """Load GPT-2 weights (HF safetensors / .bin, or the book's .pth) as (cfg, params).

    path: a weights file, or a directory holding `model.safetensors` (else exactly one weights file).
    n_heads: the number of attention heads; see the module docstring for how it is found otherwise.
    dtype: of the returned arrays, float32 (default) or float64.
    cfg: the book's config dict; params: the book's state_dict keys -> contiguous NumPy arrays.
    """
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    if n_heads is not None and (isinstance(n_heads, bool) or not isinstance(n_heads, int)):
        raise TypeError(f"n_heads must be an int or None, got {type(n_heads).__name__}")
    if n_heads is not None and n_heads <= 0:
        raise ValueError(f"n_heads must be positive, got {n_heads}")

    file = _weights_file(Path(path))
    tensors = {k: v for k, v in _read_tensors(file).items() if not _is_buffer(k)}
    require_finite(tensors, file)
    if "wte.weight" in tensors or "transformer.wte.weight" in tensors:
        params, qkv_bias = _from_hf(tensors, str(file)), True
    elif "tok_emb.weight" in tensors:
        params, qkv_bias = _from_book(tensors, str(file))
    else:
        found = ", ".join(sorted(tensors)[:5]) or "none"
        raise ValueError(
            f"{file} holds no GPT-2 weights: expected wte.weight (Hugging Face) or tok_emb.weight "
            f"(the book's GPTModel), found {len(tensors)} tensors ({found}{_more(tensors, 5)})"
        )

    vocab_size, emb_dim = params["tok_emb.weight"].shape
    n_layers = sum(1 for k in params if k.endswith(".att.out_proj.weight"))
    if n_layers == 0:
        raise ValueError(f"{file} holds no transformer blocks (h.0.* / trf_blocks.0.*)")
    cfg = {
        "vocab_size": int(vocab_size),
        "context_length": int(params["pos_emb.weight"].shape[0]),
        "emb_dim": int(emb_dim),
        "n_heads": 0,  # resolved below
        "n_layers": n_layers,
        "drop_rate": 0.0,  # inference; set a rate before training if wanted
        "qkv_bias": qkv_bias,
    }
    cfg["n_heads"] = _resolve_heads(n_heads, file, cfg)
    try:
        validate_config(cfg)
    except (TypeError, ValueError) as e:  # a size of 0, say: the tensors are empty
        raise ValueError(f"{file}: {e}") from None
    params = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in params.items()}
    return cfg, params


# ---------------------------------------------------------------------------------------------
# Files


def _weights_file(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.exists():
        raise FileNotFoundError(
            f"path must be a GPT-2 weights file or a folder holding one: {path} does not exist"
        )
    if (path / "model.safetensors").is_file():
        return path / "model.safetensors"
    found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)
    if len(found) == 1:
        return found[0]
    names = ", ".join(p.name for p in found) or "none"
    raise FileNotFoundError(
        f"path {path} must hold model.safetensors or exactly one weights file "
        f"({', '.join(_WEIGHT_SUFFIXES)}), found: {names}"
    )


def _read_tensors(file: Path) -> dict[str, np.ndarray]:
    """Every tensor in the file as a NumPy array, keys as stored (a safetensors file's buffers
    left unread: they may be of any dtype)."""
    if file.suffix == ".safetensors":
        keys = {k for k in safetensors_layout(file) if not _is_buffer(k)}
        return read_safetensors(file, keys)

    import torch

    try:
        obj = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, or a pickle that weights_only refuses
        # torch's message goes on to advise weights_only=False, which would run code from the
        # file: not advice to pass on. Its first sentence says what went wrong.
        reason = str(e).strip().split(". ")[0].splitlines()[0] if str(e).strip() else repr(e)
        if "Weights only load failed" in reason:
            reason = "it holds Python objects besides tensors"
        raise ValueError(
            f"{file} is not a readable PyTorch weights file ({reason}); twinlm reads a state_dict "
            "of tensors with torch.load(weights_only=True), which never runs code from the file"
        ) from None
    for wrapper in ("model_state_dict", "state_dict"):  # chapter 5 saves model + optimizer together
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{file} must hold a state_dict (a dict of tensors), got {type(obj)}")
    out = {}
    for k, t in obj.items():
        if not isinstance(k, str):
            raise ValueError(f"{file}: a state_dict's keys are names, got the key {k!r}")
        if isinstance(t, torch.Tensor):
            t = t.detach().cpu()
            if t.is_floating_point() and t.dtype != torch.float64:
                t = t.float()  # NumPy has no bfloat16; float16 widens exactly
            out[k] = t.numpy()
    return out


def _is_buffer(key: str) -> bool:
    """An attention-mask buffer (HF's attn.bias / attn.masked_bias, the book's att.mask)."""
    return bool(
        _HF_BUFFERS.fullmatch(key.removeprefix("transformer.")) or _BOOK_BUFFERS.fullmatch(key)
    )


def _resolve_heads(n_heads: int | None, file: Path, found: dict) -> int:
    """Explicit argument, else config.json beside the weights, else the GPT-2 table by width.
    found: what the tensors show (the cfg's vocab_size, emb_dim, n_layers, context_length,
    qkv_bias)."""
    source, emb_dim = "n_heads", found["emb_dim"]
    if n_heads is None:
        config = _read_config(file.parent / "config.json", found)
        if config is not None:
            n_heads, source = config, f"{file.parent / 'config.json'}"
        elif emb_dim in GPT2_HEADS_BY_WIDTH:
            n_heads, source = GPT2_HEADS_BY_WIDTH[emb_dim], "the GPT-2 table"
        else:
            widths = ", ".join(str(w) for w in GPT2_HEADS_BY_WIDTH)
            raise ValueError(
                f"cannot tell the number of attention heads for emb_dim {emb_dim}: no config.json "
                f"with n_head beside {file}, and {emb_dim} is not a standard GPT-2 width "
                f"({widths}); pass n_heads"
            )
    if emb_dim % n_heads != 0:
        raise ValueError(
            f"emb_dim ({emb_dim}) must be divisible by n_heads ({n_heads}, from {source})"
        )
    return n_heads


# config.json's keys (Hugging Face's, then the book's) for what the tensors show
_CONFIG_SIZES = {
    "n_embd": "emb_dim",
    "emb_dim": "emb_dim",
    "n_layer": "n_layers",
    "n_layers": "n_layers",
    "n_positions": "context_length",
    "n_ctx": "context_length",
    "context_length": "context_length",
    "vocab_size": "vocab_size",
}


def _read_config(path: Path, found: dict) -> int | None:
    """n_head from an HF (or book-style) config.json (None if it gives none, or there is no such
    file), with every size it gives checked against the tensors (`found`) and every key of its
    JSON type."""
    if not path.is_file():
        return None
    config = read_json_object(path)
    model_type = config_value(config, "model_type", "str", path, "gpt2")
    if model_type != "gpt2":
        raise ValueError(f"{path} says model_type {model_type!r}; load_gpt2 reads GPT-2 ('gpt2')")
    for key, size in _CONFIG_SIZES.items():
        if key in config and config_value(config, key, "positive int", path) != found[size]:
            raise ValueError(f"{path} says {key}={config[key]}, but the weights have {found[size]}")
    if "qkv_bias" in config and config_value(config, "qkv_bias", "bool", path) != found["qkv_bias"]:
        raise ValueError(
            f"{path} says qkv_bias={config['qkv_bias']}, but the weights "
            f"{'have' if found['qkv_bias'] else 'lack'} query/key/value biases"
        )
    # What the tensors cannot show but the math depends on: GELU's tanh form, LayerNorm's ε.
    for key, allowed in (
        ("activation_function", ("gelu_new", "gelu_pytorch_tanh")),
        ("layer_norm_epsilon", (1e-5,)),
    ):
        if key in config and (type(config[key]) is bool or config[key] not in allowed):
            raise ValueError(
                f"{path}: {key} {config[key]!r} is not GPT-2's ({allowed[0]!r}), which twinlm "
                "implements"
            )
    for key in ("n_head", "n_heads"):
        if key in config:
            return config_value(config, key, "positive int", path)
    return None


# ---------------------------------------------------------------------------------------------
# Layouts


def _from_hf(tensors: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    """Hugging Face GPT-2 keys -> the book's keys (Conv1D weights transposed, c_attn split)."""
    t = {k.removeprefix("transformer."): v for k, v in tensors.items()}
    if len(t) < len(tensors):
        twice = sorted(k for k in tensors if k.startswith("transformer.") and k[12:] in tensors)
        raise ValueError(f"{name} holds {twice[0]} twice, with and without 'transformer.'")
    n_layers = _count_layers(t, r"h\.(\d+)\.", name)
    V, D = _shape_of(t, "wte.weight", 2, name)
    C = _shape_of(t, "wpe.weight", 2, name)[0]

    expected = {"wte.weight": (V, D), "wpe.weight": (C, D), "ln_f.weight": (D,), "ln_f.bias": (D,)}
    for i in range(n_layers):
        h = f"h.{i}."
        expected |= {
            h + "ln_1.weight": (D,),
            h + "ln_1.bias": (D,),
            h + "attn.c_attn.weight": (D, 3 * D),  # Conv1D: (in, out)
            h + "attn.c_attn.bias": (3 * D,),
            h + "attn.c_proj.weight": (D, D),
            h + "attn.c_proj.bias": (D,),
            h + "ln_2.weight": (D,),
            h + "ln_2.bias": (D,),
            h + "mlp.c_fc.weight": (D, 4 * D),
            h + "mlp.c_fc.bias": (4 * D,),
            h + "mlp.c_proj.weight": (4 * D, D),
            h + "mlp.c_proj.bias": (D,),
        }
    optional = {"lm_head.weight": (V, D)}
    _check_keys_and_shapes(t, expected, optional, name, f"a {n_layers}-layer Hugging Face GPT-2")

    p = {"tok_emb.weight": t["wte.weight"], "pos_emb.weight": t["wpe.weight"]}
    for i in range(n_layers):
        h, b = f"h.{i}.", f"trf_blocks.{i}."
        q, k, v = np.split(t[h + "attn.c_attn.weight"], 3, axis=1)  # 3 × (D, D), each (in, out)
        qb, kb, vb = np.split(t[h + "attn.c_attn.bias"], 3)  # 3 × (D,)
        p |= {
            b + "att.W_query.weight": q.T,  # (out, in)
            b + "att.W_query.bias": qb,
            b + "att.W_key.weight": k.T,
            b + "att.W_key.bias": kb,
            b + "att.W_value.weight": v.T,
            b + "att.W_value.bias": vb,
            b + "att.out_proj.weight": t[h + "attn.c_proj.weight"].T,  # (D, D)
            b + "att.out_proj.bias": t[h + "attn.c_proj.bias"],
            b + "ff.layers.0.weight": t[h + "mlp.c_fc.weight"].T,  # (4D, D)
            b + "ff.layers.0.bias": t[h + "mlp.c_fc.bias"],
            b + "ff.layers.2.weight": t[h + "mlp.c_proj.weight"].T,  # (D, 4D)
            b + "ff.layers.2.bias": t[h + "mlp.c_proj.bias"],
            b + "norm1.scale": t[h + "ln_1.weight"],
            b + "norm1.shift": t[h + "ln_1.bias"],
            b + "norm2.scale": t[h + "ln_2.weight"],
            b + "norm2.shift": t[h + "ln_2.bias"],
        }
    p["final_norm.scale"] = t["ln_f.weight"]
    p["final_norm.shift"] = t["ln_f.bias"]
    p["out_head.weight"] = t["lm_head.weight"] if "lm_head.weight" in t else t["wte.weight"].copy()
    return p


def _from_book(tensors: dict[str, np.ndarray], name: str) -> tuple[dict[str, np.ndarray], bool]:
    """The book's state_dict: same keys; drop the mask buffers, check every shape."""
    t = tensors
    n_layers = _count_layers(t, r"trf_blocks\.(\d+)\.", name)
    V, D = _shape_of(t, "tok_emb.weight", 2, name)
    C = _shape_of(t, "pos_emb.weight", 2, name)[0]
    qkv_bias = "trf_blocks.0.att.W_query.bias" in t

    sizes = {"vocab_size": V, "context_length": C, "emb_dim": D, "n_layers": n_layers}
    expected = gpt_param_shapes({**sizes, "qkv_bias": qkv_bias})
    what = f"a {n_layers}-layer book GPTModel ({'with' if qkv_bias else 'without'} qkv_bias)"
    _check_keys_and_shapes(t, expected, {}, name, what)
    return {k: t[k] for k in expected}, qkv_bias


# ---------------------------------------------------------------------------------------------
# Checks


def _count_layers(t: dict[str, np.ndarray], pattern: str, name: str) -> int:
    """1 + the largest block index among the keys (a gap shows up later as missing keys). An
    index past the number of tensors cannot be a block of this file (each block holds tensors):
    a stray key such as h.999999999.ln_1.weight is refused here, before anything is listed or
    built per block."""
    last, key = max(
        ((int(m.group(1)), k) for k in t if (m := re.match(pattern, k))), default=(-1, "")
    )
    if last >= len(t):
        raise ValueError(
            f"{name}: {key} has block index {last}, but the file holds only {len(t)} tensors, "
            f"so it has at most {len(t)} blocks"
        )
    return last + 1


def _shape_of(t: dict[str, np.ndarray], key: str, ndim: int, name: str) -> tuple[int, ...]:
    if key not in t:
        raise ValueError(f"{name} is missing {key}, which sets the model's sizes")
    shape = tuple(int(s) for s in t[key].shape)
    if len(shape) != ndim:
        raise ValueError(f"{name}: {key} must have {ndim} dimensions, got shape {shape}")
    return shape


def _check_keys_and_shapes(
    t: dict[str, np.ndarray],
    expected: dict[str, tuple[int, ...]],
    optional: dict[str, tuple[int, ...]],
    name: str,
    what: str,
) -> None:
    missing = [k for k in expected if k not in t]
    if missing:
        raise ValueError(
            f"{name} is missing {len(missing)} tensor(s) of {what}: "
            f"{', '.join(missing[:5])}{_more(missing, 5)}"
        )
    unexpected = sorted(k for k in t if k not in expected and k not in optional)
    if unexpected:
        raise ValueError(
            f"{name} has {len(unexpected)} unexpected tensor(s) for {what}: "
            f"{', '.join(unexpected[:5])}{_more(unexpected, 5)}"
        )
    for k, want in (expected | {k: s for k, s in optional.items() if k in t}).items():
        got = tuple(int(s) for s in t[k].shape)
        if got != want:
            raise ValueError(f"{name}: {k} must have shape {want}, got {got}")
        if not np.issubdtype(t[k].dtype, np.floating):
            raise TypeError(f"{name}: {k} must be floating-point, got {t[k].dtype}")


def _more(items, shown: int) -> str:
    return f", … ({len(items)} in all)" if len(items) > shown else ""
