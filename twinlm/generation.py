"""Backend-neutral text generation: load a GPT into either backend, turn a prompt into text.

    load_model(backend, checkpoint=... | weights=...)   a numpy_impl or torch_impl GPTModel
    generate_ids(model, ids, max_new_tokens, ...)       token ids in, prompt + new ids out
    generate_text(model, prompt, encode, decode, ...)   the prompt and its continuation, as text

generate_text returns the WHOLE text (prompt followed by the new tokens), as the book's
`token_ids_to_text(generate(...))` prints it. Both dispatch on the model's type to
numpy_impl.generate or torch_impl.generate, which share the sampler (twinlm/shared/sampling.py): the same
seed gives the same text in both backends. `main_generate` is `twinlm generate`.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

import numpy_impl
from twinlm.shared.config import validate_config
from twinlm.shared.naming import gpt_param_shapes, sub_dict
from twinlm.shared.validate import require_choice, require_shape

BACKENDS = ("numpy", "torch")
DTYPES = ("float32", "float64")


def _is_torch_model(model) -> bool:
    if "torch" not in sys.modules:  # no torch model can exist without torch imported
        return False
    import torch

    return isinstance(model, torch.nn.Module)


def generate_ids(
    model,
    ids: list[int],
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    rng: np.random.Generator | None = None,
    eos_id: int | None = None,
    use_cache: bool = True,
) -> list[int]:
    """Generate after the token ids `ids` with a numpy_impl or torch_impl GPTModel; returns ids
    followed by the new ids (eos_id is not appended, as in the book). Arguments as
    numpy_impl.generate.generate."""
    options = dict(
        temperature=temperature, top_k=top_k, eos_id=eos_id, rng=rng, use_cache=use_cache
    )
    if isinstance(model, numpy_impl.GPTModel):
        from numpy_impl.generate import generate

        out = generate(model, np.array([ids], dtype=np.int64), max_new_tokens, **options)
        return out[0].tolist()
    if _is_torch_model(model) and hasattr(model, "cfg"):
        import torch

        from torch_impl.generate import generate

        out = generate(model, torch.tensor([ids], dtype=torch.long), max_new_tokens, **options)
        return out[0].tolist()
    raise TypeError(
        f"model must be a numpy_impl.GPTModel or a torch_impl.GPTModel, got {type(model).__name__}"
    )


def generate_text(
    model,
    prompt: str,
    encode,
    decode,
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    rng: np.random.Generator | None = None,
    eos_id: int | None = None,
    use_cache: bool = True,
) -> str:
    """The prompt followed by up to max_new_tokens generated tokens, decoded (the whole text)."""
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    ids = list(encode(prompt))
    if not ids:
        raise ValueError(f"prompt must encode to at least one token, got {prompt!r}")
    out = generate_ids(model, ids, max_new_tokens, temperature, top_k, rng, eos_id, use_cache)
    return decode(out)


# ---- loading -----------------------------------------------------------------------------------


def _float_dtype(dtype) -> np.dtype:
    """The dtype named "float32" or "float64" (NumPy types accepted too) as a NumPy dtype."""
    try:
        d = None if dtype is None else np.dtype(dtype)
    except TypeError:
        d = None
    if d not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    return d


def _check_params(params: dict[str, np.ndarray], cfg: dict) -> None:
    """The loaded tensors are exactly the model's parameters, with the config's shapes."""
    shapes = gpt_param_shapes(cfg)
    missing = [k for k in shapes if k not in params]
    unexpected = [k for k in params if k not in shapes]
    if missing or unexpected:
        raise ValueError(
            f"the loaded tensors must be the GPT's parameters: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    for k, shape in shapes.items():
        require_shape(k, params[k], shape)


def load_model(
    backend: str,
    checkpoint: str | os.PathLike | None = None,
    weights: str | os.PathLike | None = None,
    dtype: str = "float32",
    device: str | None = None,
    n_heads: int | None = None,
):
    """A GPTModel of `backend` ("numpy" or "torch") in evaluation mode, from exactly one of:
    checkpoint: a `twinlm train` checkpoint (tensors `model.<key>`, its config in meta["cfg"]);
    weights: GPT-2 weights (Hugging Face safetensors/.bin or the book's .pth; twinlm.weights.
    load_gpt2, which also takes n_heads). dtype: "float32" or "float64"; device: torch only."""
    require_choice("backend", backend, BACKENDS)
    dtype = _float_dtype(dtype)
    if (checkpoint is None) == (weights is None):
        raise ValueError(
            f"pass exactly one of checkpoint= (a twinlm training checkpoint) or weights= (GPT-2 "
            f"weights), got checkpoint={checkpoint!r}, weights={weights!r}"
        )
    if device is not None and backend == "numpy":
        raise ValueError(f"device is for the torch backend only, got device={device!r} for numpy")
    if checkpoint is not None:
        from twinlm.training.checkpoint import load_checkpoint

        tensors, meta = load_checkpoint(checkpoint)
        if meta.get("kind") != "gpt" or "cfg" not in meta:
            raise ValueError(
                f"checkpoint {checkpoint} is not a GPT training checkpoint "
                f"(meta kind {meta.get('kind')!r}, expected 'gpt' with a cfg)"
            )
        cfg, params = meta["cfg"], sub_dict(tensors, "model.")
    else:
        from twinlm.weights import load_gpt2

        cfg, params = load_gpt2(weights, n_heads=n_heads, dtype=dtype)
    params = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in params.items()}
    _check_params(params, validate_config(dict(cfg)))

    if backend == "numpy":
        model = numpy_impl.GPTModel(cfg, dtype=dtype)
        model.load_state_dict(params)
        return model
    import torch

    import torch_impl

    model = torch_impl.GPTModel(cfg, dtype=getattr(torch, dtype.name))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    return model.to(device or "cpu").eval()


# ---- `twinlm generate` -------------------------------------------------------------------------


def main_generate(
    backend: str,
    prompt: str,
    max_new_tokens: int,
    checkpoint: str | None = None,
    weights: str | None = None,
    temperature: float = 0.0,
    top_k: int | None = None,
    seed: int = 123,
    use_cache: bool = True,
    eos_id: int | None = None,
    dtype: str = "float32",
    device: str | None = None,
    n_heads: int | None = None,
) -> int:
    """Load, generate, print the text (stdout) and the speed (stderr). Returns the exit status."""
    from twinlm.data.tokenizer import decode, encode

    try:
        model = load_model(backend, checkpoint, weights, dtype, device, n_heads)
        ids = encode(prompt)
        if not ids:
            raise ValueError(f"--prompt must encode to at least one token, got {prompt!r}")
        start = time.perf_counter()
        out = generate_ids(
            model, ids, max_new_tokens, temperature, top_k, np.random.default_rng(seed), eos_id,
            use_cache,
        )  # fmt: skip
        seconds = time.perf_counter() - start
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"twinlm generate: {e}", file=sys.stderr)
        return 2
    print(decode(out))
    n_new = len(out) - len(ids)
    cache = "KV cache" if use_cache else "no cache"
    print(
        f"[{backend}, {dtype}, {cache}] {n_new} new tokens in {seconds:.2f} s "
        f"({n_new / max(seconds, 1e-9):.1f} tokens/s)",
        file=sys.stderr,
    )
    return 0
