"""Learning-rate schedule: linear warmup, then cosine decay to a floor (the book's appendix D).

Steps count from 0, like the book's `global_step`:
    step < warmup_steps:   lr = initial_lr + step · (peak_lr - initial_lr) / warmup_steps
    otherwise:             progress = min(1, (step - warmup_steps) / (total_steps - warmup_steps))
                           lr = min_lr + (peak_lr - min_lr) · ½ (1 + cos(π · progress))
so lr reaches peak_lr at step == warmup_steps and min_lr at step == total_steps (and stays there).
Pure Python: both backends call it and feed the value to their optimizer.
"""

from __future__ import annotations

import math


def lr_at(
    step: int,
    *,
    peak_lr: float,
    warmup_steps: int,
    total_steps: int,
    min_lr: float,
    initial_lr: float = 0.0,
) -> float:
    """The learning rate for optimizer step `step` (0-based)."""
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")
    if total_steps <= warmup_steps:
        raise ValueError(
            f"total_steps ({total_steps}) must be greater than warmup_steps ({warmup_steps})"
        )
    if not 0.0 <= min_lr <= peak_lr:
        raise ValueError(f"need 0 <= min_lr <= peak_lr, got min_lr={min_lr}, peak_lr={peak_lr}")
    if step < warmup_steps:
        return initial_lr + step * (peak_lr - initial_lr) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    return min_lr + (peak_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
