"""AdamW and global-norm gradient clipping, matching torch.optim.AdamW and clip_grad_norm_.

AdamW (Loshchilov & Hutter 2019), for each parameter p with gradient g, at step t = 1, 2, …:
    p ← p · (1 - lr·λ)                          decoupled weight decay, applied before the Adam step
    m ← m + (1 - β1)(g - m)                     = β1·m + (1 - β1)·g   (torch writes it as a lerp)
    v ← β2·v + (1 - β2)·g²
    p ← p - (lr / (1 - β1ᵗ)) · m / (√v / √(1 - β2ᵗ) + ε)
m and v start at zero; dividing by 1 - βᵗ removes their bias toward zero in the first steps.
The float operations follow torch's single-tensor (foreach=False) code in the same order, so the
two agree to rounding (~1e-16 relative in float64). The one difference left: torch's vectorised
lerp uses a fused multiply-add for m, which NumPy cannot express (≤ 1 ulp per step).
The bookkeeping (step counts, m and v, state_dict) is twinlm/shared/adamw.py's, shared with
torch_impl.AdamW.

Gradient clipping (torch.nn.utils.clip_grad_norm_):
    ‖g‖ = √(Σ_tensors ‖g_k‖²)                   one global L2 norm over every gradient
    g_k ← g_k · min(1, max_norm / (‖g‖ + 1e-6))
`clip_coef` returns the norm and the factor without touching the gradients, and
`step(grads, grad_scale=coef)` multiplies each g by it first (the same products clip_grad_norm
would have stored, so the result is identical).

AdamW(..., kernels="fast") runs the same update, its algebra regrouped into fewer passes, on
blocks of every parameter at once, on threads (numpy_impl/fast/optim.py).
"""

from __future__ import annotations

import numpy as np

import numpy_impl
from twinlm.shared.adamw import AdamWState
from twinlm.shared.validate import require_grads


class AdamW(AdamWState):
    """AdamW over a dict of NumPy arrays, updated in place by `step(grads)`.

    Set `opt.lr` before a step to follow a schedule (see twinlm.training.schedule.lr_at).
    kernels: "reference" (this file's loop) or "fast" (numpy_impl/fast/optim.py)."""

    def __init__(
        self,
        params: dict[str, np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        kernels: str = "reference",
    ):
        numpy_impl.kernel_ops(kernels)  # a known name, or a ValueError naming `kernels`
        super().__init__(params, lr, betas, eps, weight_decay)
        self.kernels = kernels

    def _zeros_like(self, p: np.ndarray) -> np.ndarray:
        return np.zeros_like(p)

    def _copy_like(self, a, p: np.ndarray) -> np.ndarray:
        """A NumPy array or CPU torch tensor copied into p's dtype."""
        if hasattr(a, "detach"):  # a torch tensor, read without importing torch
            a = a.detach().cpu().numpy()
        return np.array(a, dtype=p.dtype)

    def step(self, grads: dict[str, np.ndarray | None], grad_scale: float = 1.0) -> None:
        """One AdamW update of every parameter that has a gradient (None or absent: skipped),
        each gradient multiplied by grad_scale first (clip_coef's factor; 1: as given)."""
        require_grads(grads, self.params)
        ops = numpy_impl.kernel_ops(self.kernels)  # checks the name
        if self.kernels == "fast":  # the same update in fewer passes, on blocks of every parameter
            ops.adamw_step(self, grads, grad_scale)
            return
        beta1, beta2 = self.betas
        lr, wd, eps = self.lr, self.weight_decay, self.eps
        for name, p in self.params.items():
            g = grads.get(name)
            if g is None:
                continue
            m, v, t = self.advance(name)
            if grad_scale != 1.0:
                g = g * grad_scale  # clipping: what clip_grad_norm would store
            if wd != 0:
                p *= 1 - lr * wd  # decoupled weight decay
            lerp_(m, g, 1 - beta1)  # m ← m + (1 - β1)(g - m)
            v *= beta2
            v += g * (1 - beta2) * g  # v ← β2 v + (1 - β2) g²
            denom = np.sqrt(v) / (1 - beta2**t) ** 0.5 + eps  # √v̂ + ε, v̂ = v / (1 - β2ᵗ)
            p += m * -(lr / (1 - beta1**t)) / denom  # p ← p - lr · m̂ / (√v̂ + ε)


def lerp_(start: np.ndarray, end: np.ndarray, weight: float) -> None:
    """start ← start + weight·(end - start), in place, with torch.lerp's two branches for
    accuracy: where weight ≥ ½ it is computed as end - (1 - weight)·(end - start)."""
    if abs(weight) < 0.5:
        start += (end - start) * weight
    else:
        np.subtract(end, (end - start) * (1 - weight), out=start)


def clip_coef(grads: dict[str, np.ndarray | None], max_norm: float) -> tuple[float, float]:
    """(‖g‖, coef): the global L2 norm of the gradients and the factor min(1, max_norm / (‖g‖ +
    1e-6)) that clip_grad_norm multiplies them by; the gradients are left as they are."""
    if not max_norm > 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")
    tensors = [g for g in grads.values() if g is not None]
    if not tensors:
        return 0.0, 1.0
    norms = np.array([np.linalg.norm(g.ravel()) for g in tensors])  # ‖g_k‖ per tensor
    total_norm = float(np.linalg.norm(norms))  # √(Σ ‖g_k‖²)
    return total_norm, min(max_norm / (total_norm + 1e-6), 1.0)


def clip_grad_norm(grads: dict[str, np.ndarray | None], max_norm: float) -> float:
    """Scale every gradient in place so their global L2 norm is at most `max_norm`.

    Returns the norm before clipping, like torch.nn.utils.clip_grad_norm_.
    """
    total_norm, coef = clip_coef(grads, max_norm)
    for g in grads.values():
        if g is not None:
            g *= coef  # always multiplied, like torch (coef 1.0 leaves g unchanged)
    return total_norm
