"""Cross-entropy loss over the last axis (mean over kept targets), and perplexity.

Forward, for logits z (..., V) and integer targets y (...); rows whose target is `ignore_index`
are left out, n = number of kept rows:
    m      = max_v z_v                              (..., 1)   subtracted so exp never overflows
    e      = exp(z - m),  r = Σ_{v≠y} e_v           (..., V), (...)   r: every term but the target's
    -log p[y] = log(e_y + r) - (z_y - m)            (...)
              = log1p(r)                            where y holds a largest logit (e_y = 1)
    loss   = -(1/n) Σ_kept log p[y]                 ()
Backward: ∂(-log p[y]) / ∂z = softmax(z) - onehot(y), so
    dz     = dloss / n · (softmax(z) - onehot(y))   on kept rows, 0 on ignored rows
    with p_y - 1 = -r / (e_y + r)                   summed from the other terms, not 1 - p_y
Where the target holds nearly all the probability, 1 + r and p_y - 1 would round away r: in float32
at r = 1e-5 that is a 0.6 % error in the loss and the target's gradient (torch's own cross_entropy
has it); log1p(r) and -r / (1 + r) keep r to full precision.
All targets ignored (n = 0): the loss is nan and the gradient zero, exactly what
torch.nn.functional.cross_entropy returns (the mean of nothing is 0/0).

perplexity = exp(loss): the size of a uniform vocabulary that would be as surprising. Uniform logits
give loss = ln V, perplexity = V.
"""

from __future__ import annotations

import numpy as np

from twinlm.shared.validate import require_float, require_ids, require_ndim, require_shape


def cross_entropy_forward(logits: np.ndarray, targets: np.ndarray, ignore_index: int = -100):
    """Mean cross entropy of `logits` (..., V) against integer `targets` (...).

    Returns (loss, cache); loss is a 0-d array of logits' dtype.
    """
    require_cross_entropy_inputs(logits, targets, ignore_index)
    kept = targets != ignore_index  # (...)
    n = int(kept.sum())
    at_target = np.where(kept, targets, 0)[..., None]  # (..., 1) any valid index on ignored rows
    z = logits - logits.max(axis=-1, keepdims=True)  # (..., V) z - m: the largest entry is 0
    e = np.exp(z)  # (..., V)
    z_target = np.take_along_axis(z, at_target, axis=-1)  # (..., 1) z_y - m, 0 at a largest logit
    e_target = np.take_along_axis(e, at_target, axis=-1)  # (..., 1) e_y
    is_target = np.arange(logits.shape[-1]) == at_target  # (..., V) onehot(y)
    rest = np.where(is_target, 0, e).sum(axis=-1, keepdims=True)  # (..., 1) r = Σ_{v≠y} e_v
    sum_exp = e_target + rest  # (..., 1) Σ e
    nll = np.where(z_target == 0, np.log1p(rest), np.log(sum_exp) - z_target)[..., 0]  # (...)
    if n == 0:
        loss = np.asarray(np.nan, dtype=logits.dtype)
    else:
        loss = np.asarray(np.where(kept, nll, 0).sum() / n, dtype=logits.dtype)  # ()
    probs = e / sum_exp  # (..., V) softmax(z)
    return loss, (probs, at_target, kept, n, rest / sum_exp)


def cross_entropy_backward(dloss: np.ndarray, cache) -> np.ndarray:
    """Returns dlogits (..., V)."""
    probs, at_target, kept, n, others = cache  # others = 1 - p_y, as r / Σ e  (..., 1)
    scale = np.asarray(dloss, dtype=probs.dtype) / max(n, 1)  # ()  n = 0: every row is ignored
    dlogits = probs.copy()  # (..., V)
    np.put_along_axis(dlogits, at_target, -others, axis=-1)  # softmax - onehot: p_y - 1 = -r/Σe
    dlogits *= (kept * scale)[..., None]  # ignored rows get 0
    return dlogits


def require_cross_entropy_inputs(logits, targets, ignore_index: int) -> None:
    """logits (..., V) float with V ≥ 1; targets (...) integer ids < V or ignore_index."""
    require_float("logits", logits)
    require_ndim("logits", logits, 1)
    V = logits.shape[-1]
    if V == 0:
        raise ValueError(
            f"logits must have a non-empty last (vocabulary) axis, got shape {logits.shape}"
        )
    require_ids("targets", targets, V, allowed=(ignore_index,))
    require_shape("targets", targets, logits.shape[:-1])


def perplexity(loss):
    """exp(loss), in the loss's dtype."""
    return np.exp(loss)
