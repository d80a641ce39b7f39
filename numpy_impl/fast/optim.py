"""AdamW's step, the fast path: numpy_impl/optim.py's arithmetic in the same order (bit for bit
its results), computed so. AdamW is memory-bound: its dozen elementwise passes would each stream
p, g, m and v through memory. This step instead runs all of them on one block of BLOCK_ELEMENTS
at a time (numpy_impl/fast/blocks.py), which stays in cache, so memory sees each array once per
step; the blocks of all parameters are shared out among the threads, and each thread reuses its
own two scratch blocks. Clipping rides along: step(grads, grad_scale=coef) multiplies each block
of g by clip_coef's factor first: one pass over the gradients instead of three.
"""

from __future__ import annotations

import threading

import numpy as np

from numpy_impl.fast import blocks


def adamw_step(opt, grads: dict[str, np.ndarray | None], grad_scale: float) -> None:
    """numpy_impl.AdamW.step for kernels="fast": opt's parameters with a gradient updated in place
    (grads already checked)."""
    beta1, beta2 = opt.betas
    work = []  # (p, g, m, v, step size, √(1 - β2ᵗ)) per parameter, all flat views
    for name, p in opt.params.items():
        g = grads.get(name)
        if g is None:
            continue
        m, v, t = opt.advance(name)
        flat = [a.reshape(-1) for a in (p, np.ascontiguousarray(g), m, v)]  # views of p, m, v
        work.append((*flat, opt.lr / (1 - beta1**t), (1 - beta2**t) ** 0.5))
    block = blocks.BLOCK_ELEMENTS
    pieces = [(w, lo) for w in work for lo in range(0, w[0].size, block)]

    def update(first: int, stop: int) -> None:
        for w, lo in pieces[first:stop]:
            _update_block(opt, *(a[lo : lo + block] for a in w[:4]), *w[4:], grad_scale)

    blocks.for_blocks(update, len(pieces), 1)


def _update_block(opt, p, g, m, v, step_size: float, bias2_sqrt: float, grad_scale: float):
    """The AdamW update of one block of a parameter, in torch's order of operations."""
    beta1, beta2 = opt.betas
    lr, wd, eps = opt.lr, opt.weight_decay, opt.eps
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


def _lerp_(start: np.ndarray, end: np.ndarray, weight: float, tmp: np.ndarray) -> None:
    """numpy_impl.optim.lerp_ with tmp, scratch space shaped like start, for end - start."""
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
