"""Where a model lives: its dtype (float32 or float64, as a NumPy dtype whichever the backend) and,
for torch, its device."""

from __future__ import annotations

import numpy as np

from twinlm.shared.naming import BACKENDS, DTYPES
from twinlm.shared.validate import require_choice


def float_dtype(dtype) -> np.dtype:
    """The dtype named "float32" or "float64" (NumPy types accepted too) as a NumPy dtype."""
    try:
        d = None if dtype is None else np.dtype(dtype)
    except TypeError:
        d = None
    if d not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    return d


def check_target(backend: str, dtype, device: str | None = None) -> np.dtype:
    """Refuse, before anything is read or built, a backend other than numpy or torch, a dtype other
    than float32 or float64, and a device for NumPy. Returns the dtype as a NumPy dtype."""
    require_choice("backend", backend, BACKENDS)
    dtype = float_dtype(dtype)
    if device is not None and backend == "numpy":
        raise ValueError(f"device is for the torch backend only, got device={device!r} for numpy")
    return dtype


def torch_device(name: str | None):
    """torch.device(name) (default cpu), refused with a clear ValueError if this machine has no
    such device: an unknown name, or CUDA/MPS without the hardware or the build."""
    import torch

    try:
        device = torch.device(name or "cpu")
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device must be a torch device such as cpu or cuda, got {name!r}"
        ) from None
    usable = {
        "cpu": lambda: True,
        "cuda": torch.cuda.is_available,
        "mps": lambda: torch.backends.mps.is_available(),
    }.get(device.type, lambda: False)
    if not usable():
        raise ValueError(
            f"device {name!r} is not available on this machine (torch {torch.__version__})"
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA devices"
        )
    return device
