"""AdamW and global-norm gradient clipping from elementary tensor ops, the twin of
numpy_impl/optim.py (whose docstring gives the math), line for line:

AdamW, for each parameter p with gradient g, at step t = 1, 2, …:
    p ← p · (1 - lr·λ)                          decoupled weight decay, applied before the Adam step
    m ← m + (1 - β1)(g - m)                     torch.lerp's two-branch form, written out
    v ← β2·v + (1 - β2)·g²
    p ← p - (lr / (1 - β1ᵗ)) · m / (√v / √(1 - β2ᵗ) + ε)
Clipping: ‖g‖ = √(Σ_k ‖g_k‖²), g_k ← g_k · min(1, max_norm / (‖g‖ + 1e-6)).

Parameters and gradients are dicts of tensors keyed like a state_dict (dict(model.named_parameters())
and {name: p.grad}), updated in place under torch.no_grad(). The bookkeeping (step counts, m and
v, `state_dict()`) is twinlm/shared/adamw.py's, shared with numpy_impl.AdamW, so either optimizer
resumes from the other's state.
"""

from __future__ import annotations

import torch

from twinlm.shared.adamw import AdamWState
from twinlm.shared.validate import require_grads


class AdamW(AdamWState):
    """AdamW over a dict of tensors, updated in place by `step(grads)`.

    Set `opt.lr` before a step to follow a schedule (see twinlm.training.schedule.lr_at).
    """

    def _zeros_like(self, p: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(p, memory_format=torch.preserve_format)

    def _copy_like(self, a, p: torch.Tensor) -> torch.Tensor:
        """A tensor or NumPy array copied into p's dtype and device."""
        return torch.as_tensor(a).to(dtype=p.dtype, device=p.device, copy=True)

    @torch.no_grad()
    def step(self, grads: dict[str, torch.Tensor | None], grad_scale: float = 1.0) -> None:
        """One AdamW update of every parameter that has a gradient (None or absent: skipped),
        each gradient multiplied by grad_scale first (clip_coef's factor; 1: as given)."""
        require_grads(grads, self.params)
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
                p.mul_(1 - lr * wd)  # decoupled weight decay
            _lerp_(m, g, 1 - beta1)  # m ← m + (1 - β1)(g - m)
            v.mul_(beta2)
            v.add_(g * (1 - beta2) * g)  # v ← β2 v + (1 - β2) g²
            step_size = lr / (1 - beta1**t)
            denom = torch.sqrt(v)
            denom.div_((1 - beta2**t) ** 0.5)
            denom.add_(eps)  # √v̂ + ε, v̂ = v / (1 - β2ᵗ)
            update = m * -step_size
            update.div_(denom)
            p.add_(update)  # p ← p - lr · m̂ / (√v̂ + ε)


def _lerp_(start: torch.Tensor, end: torch.Tensor, weight: float) -> None:
    """start ← start + weight·(end - start), in place, with torch.lerp's two branches for accuracy."""
    diff = end - start
    if abs(weight) < 0.5:
        diff.mul_(weight)
        start.add_(diff)
    else:
        diff.mul_(1 - weight)
        torch.sub(end, diff, out=start)


@torch.no_grad()
def clip_coef(grads: dict[str, torch.Tensor | None], max_norm: float) -> tuple[float, float]:
    """(‖g‖, coef): the global L2 norm of the gradients and the factor min(1, max_norm / (‖g‖ +
    1e-6)) that clip_grad_norm multiplies them by; the gradients are left as they are."""
    if not max_norm > 0:
        raise ValueError(f"max_norm must be positive, got {max_norm}")
    tensors = [g for g in grads.values() if g is not None]
    if not tensors:
        return 0.0, 1.0
    norms = torch.stack([torch.sqrt(torch.dot(g.ravel(), g.ravel())) for g in tensors])  # ‖g_k‖
    total_norm = float(torch.sqrt(torch.dot(norms, norms)))  # √(Σ ‖g_k‖²)
    return total_norm, min(max_norm / (total_norm + 1e-6), 1.0)


def clip_grad_norm(grads: dict[str, torch.Tensor | None], max_norm: float) -> float:
    """Scale every gradient in place so their global L2 norm is at most `max_norm`.

    Returns the norm before clipping, like torch.nn.utils.clip_grad_norm_.
    """
    total_norm, coef = clip_coef(grads, max_norm)
    for g in grads.values():
        if g is not None:
            g.mul_(coef)  # always multiplied, like torch (coef 1.0 leaves g unchanged)
    return total_norm
