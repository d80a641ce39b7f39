"""A model of either backend: built, filled with weights, placed on a device, converted. Training,
generation and the book build every model here, so the choice between numpy_impl and torch_impl is
made in one package (above the backends, below everything that uses a model).

    build_model(backend, name, cfg, dtype, params=, device=, evaluation=, **options)
                                        numpy_impl.<name> or torch_impl.<name>, filled, placed
    build_language_model(backend, cfg, params, dtype, device)
                                        a GPT-2 or Qwen3 from loaded arrays, checked, for inference
    load_params(model, params), numpy_params(model)     weights in and out, as NumPy arrays
    convert(model, backend), backend_of(model)          the same weights in the other backend
    torch_device(name), float_dtype(dtype), check_target(backend, dtype, device)
    require_memory(name, cfg, dtype)     refuse a model whose parameters exceed the machine's memory
"""

from __future__ import annotations

from twinlm.models.build import (
    CONVERTIBLE,
    MODELS,
    backend_of,
    build_language_model,
    build_model,
    convert,
    load_params,
    numpy_params,
    require_memory,
)
from twinlm.models.device import check_target, float_dtype, torch_device

__all__ = [
    "CONVERTIBLE",
    "MODELS",
    "backend_of",
    "build_language_model",
    "build_model",
    "check_target",
    "convert",
    "float_dtype",
    "load_params",
    "numpy_params",
    "require_memory",
    "torch_device",
]
