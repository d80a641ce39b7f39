"""AdamW's step, the fast path: numpy_impl/optim.py's update with its algebra regrouped for fewer
passes (not torch's order of operations: within the fast-path standard of the reference, not bit
for bit). AdamW is memory-bound: each elementwise pass would stream p, g, m and v through memory.
This step runs all of its passes on one block of BLOCK_ELEMENTS at a time (numpy_impl/fast/blocks.py),
which stays in cache, so memory sees each array once per step; the blocks of all parameters are
shared out among the threads, and each thread reuses its own two scratch blocks. Within a block,
with s the clip factor (step(grads, grad_scale=s)) and bᵢ = 1 - βᵢᵗ:
    m ← β1·m + (1 - β1)·s·g                      s folded into the constant: no clipping pass
    v ← β2·v + ((1 - β2)·s²)·g²
    p ← p·(1 - lr·λ) - (lr·√b2 / b1) · m / (√v + ε·√b2)
the last the reference's p - (lr / b1)·m / (√v / √b2 + ε) with √b2 moved from v into ε and the step
size: 12 passes per block (13 with weight decay) where the reference's order takes 15.
"""

from __future__ import annotations

import threading

import numpy as np

from numpy_impl.fast import blocks


def adamw_step(opt, grads: dict[str, np.ndarray | None], grad_scale: float) -> None:
    """numpy_impl.AdamW.step for kernels="fast": opt's parameters with a gradient updated in place
    (grads already checked)."""
    beta1, beta2 = opt.betas
    work = []  # (p, g, m, v, step size, ε·√b2) per parameter, the arrays as flat views
    for name, p in opt.params.items():
        g = grads.get(name)
        if g is None:
            continue
        m, v, t = opt.advance(name)
        flat = [a.reshape(-1) for a in (p, np.ascontiguousarray(g), m, v)]  # views of p, m, v
        bias2_sqrt = (1 - beta2**t) ** 0.5  # √b2
        work.append((*flat, opt.lr * bias2_sqrt / (1 - beta1**t), opt.eps * bias2_sqrt))
    block = blocks.BLOCK_ELEMENTS
    pieces = [(w, lo) for w in work for lo in range(0, w[0].size, block)]

    def update(first: int, stop: int) -> None:
        for w, lo in pieces[first:stop]:
            _update_block(opt, *(a[lo : lo + block] for a in w[:4]), *w[4:], grad_scale)

    blocks.for_blocks(update, len(pieces), 1)


def _update_block(opt, p, g, m, v, step_size: float, eps_hat: float, grad_scale: float):
    """The AdamW update of one block of a parameter in the module docstring's 12-13 passes;
    step_size = lr·√b2 / b1, eps_hat = ε·√b2."""
    beta1, beta2 = opt.betas
    lr, wd = opt.lr, opt.weight_decay
    tmp, tmp2 = _scratch(p.dtype, p.size)  # this thread's: no block-sized allocations
    np.multiply(g, (1 - beta1) * grad_scale, out=tmp)  # (1 - β1)·s·g
    m *= beta1
    m += tmp  # m ← β1·m + (1 - β1)·s·g
    sg = np.multiply(g, (1 - beta2) ** 0.5 * grad_scale, out=tmp2)  # √(1 - β2)·s·g
    sg *= sg  # (1 - β2)·s²·g²
    v *= beta2
    v += sg  # v ← β2·v + (1 - β2)·s²·g²
    denom = np.sqrt(v, out=tmp)
    denom += eps_hat  # √v + ε·√b2 = √b2·(√v̂ + ε), v̂ = v / b2
    update = np.divide(m, denom, out=tmp)
    update *= -step_size  # -(lr·√b2 / b1)·m / (√v + ε·√b2) = -lr·m̂ / (√v̂ + ε)
    if wd != 0:
        p *= 1 - lr * wd  # decoupled weight decay
    p += update  # p ← p·(1 - lr·λ) - lr·m̂ / (√v̂ + ε)


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
