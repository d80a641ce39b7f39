"""Building, filling and converting a model of either backend: the one place that turns a backend's
name into numpy_impl's or torch_impl's class, dtype and device.

Both backends' models take the same constructor arguments (cfg first, then keywords) and the same
state_dict keys, so one function builds any of them and converting is a dict comprehension
(DESIGN.md, "Shared initialisation and conversion"). NumPy has no devices and no training mode:
its dropout runs only when handed masks or a generator.
"""

from __future__ import annotations

import math
import os

import numpy as np

import numpy_impl
from twinlm.models.device import check_target, torch_device
from twinlm.shared.config import is_qwen3_config, validate_lm_config
from twinlm.shared.naming import BACKENDS, charrnn_param_shapes, lm_names
from twinlm.shared.validate import require_choice, require_exact_keys, require_shape

MODELS = ("GPTModel", "Qwen3Model", "CharRNN", "GPTClassifier", "Qwen3Classifier")
CONVERTIBLE = ("GPTModel", "Qwen3Model", "CharRNN")  # built from cfg alone


def backend_of(model) -> str:
    """ "numpy" or "torch": the backend whose class `model` is (or derives from)."""
    for cls in type(model).__mro__:
        package = cls.__module__.partition(".")[0]
        if package in ("numpy_impl", "torch_impl"):
            return package.removesuffix("_impl")
    raise TypeError(f"model must be a numpy_impl or torch_impl model, got {type(model).__name__}")


def build_model(
    backend: str,
    name: str,
    cfg: dict,
    dtype="float32",
    *,
    params: dict[str, np.ndarray] | None = None,
    device: str | None = None,
    evaluation: bool = False,
    kernels: str = "reference",
    **options,
):
    """numpy_impl.<name> or torch_impl.<name> (one of MODELS) built from cfg in dtype ("float32"
    or "float64", handed to the class as its backend's dtype) with `options` (seed=, and a
    classifier's num_classes, trainable, …, backbone); then `params` loaded when given (NumPy
    arrays under its state_dict keys). NumPy: run on the op set `kernels` (numpy_impl.kernel_ops;
    torch has one). torch: moved to `device` (default cpu), and put in evaluation mode when
    `evaluation`."""
    dtype = check_target(backend, dtype, device)
    require_choice("model", name, MODELS)
    require_memory(name, cfg, dtype)
    if backend == "numpy":
        model = getattr(numpy_impl, name)(cfg, dtype=dtype, kernels=kernels, **options)
    else:
        import torch

        import torch_impl

        model = getattr(torch_impl, name)(cfg, dtype=getattr(torch, dtype.name), **options)
    if params is not None:
        load_params(model, params)
    if backend == "torch":
        model = model.to(torch_device(device))
        if evaluation:
            model.eval()
    return model


def physical_memory() -> int | None:
    """This machine's memory in bytes (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def require_memory(name: str, cfg: dict, dtype="float32") -> None:
    """Refuse (ValueError naming the config keys behind the largest tensor) a model of one of
    MODELS whose parameters alone would not fit in this machine's memory: a config such as
    context_length 10¹² is a mistake to name, not an allocation to attempt. A config whose shapes
    cannot be worked out is left to the model's own checks."""
    try:
        shapes = charrnn_param_shapes(cfg) if name == "CharRNN" else lm_names(cfg).param_shapes(cfg)
        sizes = {k: math.prod(int(n) for n in shape) for k, shape in shapes.items()}
    except (KeyError, TypeError, ValueError):
        return
    limit, total = physical_memory(), sum(sizes.values()) * np.dtype(dtype).itemsize
    if limit is None or total <= limit:
        return
    largest = max(sizes, key=sizes.get)
    shape = shapes[largest]
    factors = {  # the config's sizes that make up the largest tensor's dimensions
        k: v for k, v in cfg.items() if type(v) is int and v > 1 and any(d % v == 0 for d in shape)
    }
    keys = [k for k, v in factors.items() if v == max(factors.values())]
    raise ValueError(
        f"the model's parameters would take {total / 2**30:,.0f} GiB ({np.dtype(dtype).name}), more "
        f"than this machine's {limit / 2**30:,.0f} GiB of memory: {largest} alone is "
        f"{tuple(shape)}, from {', '.join(f'{k} {cfg[k]}' for k in keys) or 'the config'}"
    )


def load_params(model, params: dict[str, np.ndarray]) -> None:
    """Load NumPy arrays keyed like the model's state_dict into it (the model's own
    load_state_dict: every key, in its shapes)."""
    if backend_of(model) == "numpy":
        model.load_state_dict(params)
        return
    import torch

    model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})


def numpy_params(model) -> dict[str, np.ndarray]:
    """The model's state_dict as NumPy arrays: copies for NumPy, and for torch the CPU's values
    (views of a CPU model's tensors)."""
    if backend_of(model) == "numpy":
        return model.state_dict()
    return {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}


def convert(model, backend: str):
    """A GPTModel, Qwen3Model or CharRNN as a model of `backend`: itself when it already is one,
    else the other backend's class of the same name, built from its cfg (with that class's default
    init) and holding copies of its weights, in its dtype, on the CPU."""
    require_choice("backend", backend, BACKENDS)
    if backend_of(model) == backend:
        return model
    name = type(model).__name__
    if name not in CONVERTIBLE:
        raise TypeError(f"model must be one of {list(CONVERTIBLE)} to convert, got {name}")
    params = numpy_params(model)
    dtype = next(iter(params.values())).dtype
    return build_model(backend, name, model.cfg, dtype, params=params)


def build_language_model(
    backend: str,
    cfg: dict,
    params: dict[str, np.ndarray],
    dtype="float32",
    device: str | None = None,
    kernels: str = "reference",
):
    """A GPTModel or Qwen3Model (as cfg says) of `backend` holding `params`, in evaluation mode:
    the config validated, the arrays cast to dtype and checked against the config's keys and
    shapes (each one named when it does not fit), torch's on `device`, NumPy's on `kernels`."""
    dtype = check_target(backend, dtype, device)
    cfg = validate_lm_config(dict(cfg))
    qwen3 = is_qwen3_config(cfg)
    params = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in params.items()}
    shapes = lm_names(cfg).param_shapes(cfg)
    what = " the Qwen3's parameters" if qwen3 else " the GPT's parameters"
    require_exact_keys("the loaded tensors", params, shapes, what)
    for k, shape in shapes.items():
        require_shape(k, params[k], shape)
    # Qwen3's seed None: zeros, no random draw of 0.6B weights about to be replaced
    name, options = ("Qwen3Model", {"seed": None}) if qwen3 else ("GPTModel", {})
    return build_model(
        backend,
        name,
        cfg,
        dtype,
        params=params,
        device=device,
        evaluation=True,
        kernels=kernels,
        **options,
    )
