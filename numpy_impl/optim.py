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

Gradient clipping (torch.nn.utils.clip_grad_norm_):
    ‖g‖ = √(Σ_tensors ‖g_k‖²)                   one global L2 norm over every gradient
    g_k ← g_k · min(1, max_norm / (‖g‖ + 1e-6))

How the update is computed. AdamW is memory-bound: its dozen elementwise passes would each stream
p, g, m and v through memory. `step` instead runs all of them on one block of BLOCK_ELEMENTS at a
time (twinlm/shared/blocks.py), which stays in cache, so memory sees each array once per step;
the blocks of all parameters are shared out among the threads. Clipping can ride along:
`clip_coef` returns the norm and the factor without touching the gradients, and
`step(grads, grad_scale=coef)` multiplies each block of g by it first (the same products
clip_grad_norm would have stored, so the result is identical): one pass over the gradients
instead of three.
"""

from __future__ import annotations

import threading

import numpy as np

from twinlm.shared import blocks
from twinlm.shared.validate import require_adamw_options, require_adamw_state, require_grads


class AdamW:
    """AdamW over a dict of NumPy arrays, updated in place by `step(grads)`.

    Set `opt.lr` before a step to follow a schedule (see twinlm.training.schedule.lr_at).
    """

    def __init__(
        self,
        params: dict[str, np.ndarray],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ):
        require_adamw_options(params, lr, betas, eps, weight_decay)
        self.params = params
        self.lr = lr
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = eps
        self.weight_decay = weight_decay
        self.steps: dict[str, int] = {}  # per parameter, like torch: a missing grad skips it
        self.exp_avg: dict[str, np.ndarray] = {}  # m
        self.exp_avg_sq: dict[str, np.ndarray] = {}  # v

    def step(self, grads: dict[str, np.ndarray | None], grad_scale: float = 1.0) -> None:
        """One AdamW update of every parameter that has a gradient (None or absent: skipped),
        each gradient multiplied by grad_scale first (clip_coef's factor; 1: as given)."""
        require_grads(grads, self.params)
        work = []  # (p, g, m, v, step size, √(1 - β2ᵗ)) per parameter, all flat views
        for name, p in self.params.items():
            g = grads.get(name)
            if g is None:
                continue
            if name not in self.steps:
                self.steps[name] = 0
                self.exp_avg[name] = np.zeros_like(p)
                self.exp_avg_sq[name] = np.zeros_like(p)
            self.steps[name] += 1
            t = self.steps[name]
            m, v = self.exp_avg[name], self.exp_avg_sq[name]
            flat = [a.reshape(-1) for a in (p, np.ascontiguousarray(g), m, v)]  # views of p, m, v
            work.append(
                (*flat, self.lr / (1 - self.betas[0] ** t), (1 - self.betas[1] ** t) ** 0.5)
            )
        block = blocks.BLOCK_ELEMENTS
        pieces = [(w, lo) for w in work for lo in range(0, w[0].size, block)]

        def update(first: int, stop: int) -> None:
            for w, lo in pieces[first:stop]:
                self._update_block(*(a[lo : lo + block] for a in w[:4]), *w[4:], grad_scale)

        blocks.for_blocks(update, len(pieces), 1)

    def _update_block(self, p, g, m, v, step_size: float, bias2_sqrt: float, grad_scale: float):
        """The AdamW update of one block of a parameter, in torch's order of operations."""
        beta1, beta2 = self.betas
        lr, wd, eps = self.lr, self.weight_decay, self.eps
        tmp, tmp2 = _scratch(p.dtype, p.size)  # this thread's: no block-sized allocations
        if grad_scale != 1.0:
            g = np.multiply(g, grad_scale, out=tmp2)  # clipping: what clip_grad_norm would store
        if wd != 0:
            p *= 1 - lr * wd  # decoupled weight decay
        _lerp_(m, g, 1 - beta1, tmp)  # m ← m + (1 - β1)(g - m)
        v *= beta2
        np.multiply(g, 1 - beta2, out=tmp)
        tmp *= g
        v += tmp  # v ← β2 v + (1 - β2) g²
        denom = np.sqrt(v, out=tmp)
        denom /= bias2_sqrt
        denom += eps  # √v̂ + ε, v̂ = v / (1 - β2ᵗ)
        update = np.multiply(m, -step_size, out=tmp2)
        update /= denom
        p += update  # p ← p - lr · m̂ / (√v̂ + ε)

    def state_dict(self) -> dict:
        """Everything needed to resume: hyper-parameters, per-parameter step, m and v (copies)."""
        return {
            "lr": self.lr,
            "betas": self.betas,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "steps": dict(self.steps),
            "exp_avg": {k: a.copy() for k, a in self.exp_avg.items()},
            "exp_avg_sq": {k: a.copy() for k, a in self.exp_avg_sq.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        """Resume from a state_dict() (this class's or torch_impl.AdamW's: the same format)."""
        require_adamw_state(state, self.params)
        self.lr = state["lr"]
        self.betas = tuple(state["betas"])
        self.eps = state["eps"]
        self.weight_decay = state["weight_decay"]
        self.steps = {k: int(t) for k, t in state["steps"].items()}
        like = self.params
        self.exp_avg = {k: _copy_like(a, like[k]) for k, a in state["exp_avg"].items()}
        self.exp_avg_sq = {k: _copy_like(a, like[k]) for k, a in state["exp_avg_sq"].items()}


def _copy_like(a, p: np.ndarray) -> np.ndarray:
    """A NumPy array or CPU torch tensor copied into p's dtype."""
    if hasattr(a, "detach"):  # a torch tensor, read without importing torch
        a = a.detach().cpu().numpy()
    return np.array(a, dtype=p.dtype)


def _lerp_(start: np.ndarray, end: np.ndarray, weight: float, tmp: np.ndarray) -> None:
    """start ← start + weight·(end - start), in place, with torch.lerp's two branches for accuracy.
    tmp: scratch space shaped like start."""
    diff = np.subtract(end, start, out=tmp)  # end - start
    if abs(weight) < 0.5:
        diff *= weight
        start += diff
    else:
        diff *= 1 - weight
        np.subtract(end, diff, out=start)


_local = threading.local()


def _scratch(dtype: np.dtype, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Two scratch blocks of `size` elements, this thread's own, kept across calls."""
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    buf = buffers.get(dtype)
    if buf is None or buf.shape[1] < size:
        buf = buffers[dtype] = np.empty((2, max(size, blocks.BLOCK_ELEMENTS)), dtype)
    return buf[0, :size], buf[1, :size]


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
