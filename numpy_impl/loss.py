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
    return _cross_entropy(logits, targets, ignore_index, inplace=False)


def cross_entropy_backward(dloss: np.ndarray, cache) -> np.ndarray:
    """Returns dlogits (..., V)."""
    return _dlogits(dloss, cache, inplace=False)


def cross_entropy_inplace(logits: np.ndarray, targets: np.ndarray, ignore_index: int = -100):
    """cross_entropy_forward computing the softmax over `logits` itself, for a caller that owns the
    logits and needs them no more (GPTModel.loss_and_grads): a (B, T, V) buffer saved."""
    return _cross_entropy(logits, targets, ignore_index, inplace=True)


def cross_entropy_backward_inplace(dloss: np.ndarray, cache) -> np.ndarray:
    """cross_entropy_backward writing dlogits over the cached softmax: the cache is used up."""
    return _dlogits(dloss, cache, inplace=True)


def _cross_entropy(logits: np.ndarray, targets: np.ndarray, ignore_index: int, inplace: bool):
    require_float("logits", logits)
    require_ndim("logits", logits, 1)
    V = logits.shape[-1]
    if V == 0:
        raise ValueError(
            f"logits must have a non-empty last (vocabulary) axis, got shape {logits.shape}"
        )
    require_ids("targets", targets, V, allowed=(ignore_index,))
    require_shape("targets", targets, logits.shape[:-1])

    kept = targets != ignore_index  # (...)
    n = int(kept.sum())
    safe_targets = np.where(kept, targets, 0)  # (...)  any valid index on ignored rows
    at_target = safe_targets[..., None]  # (..., 1)  index for take/put_along_axis
    z = np.subtract(
        logits, logits.max(axis=-1, keepdims=True), out=logits if inplace else None
    )  # (..., V)  max entry is 0
    z_target = np.take_along_axis(z, at_target, axis=-1)[..., 0]  # (...)  0: target is a max
    np.exp(z, out=z)  # (..., V)  z now holds e = exp(z - m), reused for the softmax below
    e_target = np.take_along_axis(z, at_target, axis=-1)  # (..., 1)
    np.put_along_axis(z, at_target, 0, axis=-1)
    rest = z.sum(axis=-1, keepdims=True)  # (..., 1)  r = Σ_{v≠y} e_v
    np.put_along_axis(z, at_target, e_target, axis=-1)
    sum_exp = e_target + rest  # (..., 1)
    # -log p[y]: log1p(r) where the target is a largest logit (e_y = 1), else log Σ e - (z_y - m)
    nll = np.where(z_target == 0, np.log1p(rest[..., 0]), np.log(sum_exp[..., 0]) - z_target)
    z /= sum_exp  # (..., V)  softmax
    if n == 0:
        loss = np.asarray(np.nan, dtype=logits.dtype)
    else:
        loss = np.asarray(np.where(kept, nll, 0).sum() / n, dtype=logits.dtype)  # ()
    return loss, (z, safe_targets, kept, n, rest / sum_exp)


def _dlogits(dloss: np.ndarray, cache, inplace: bool) -> np.ndarray:
    probs, safe_targets, kept, n, others = cache  # others = 1 - p_y, as r / Σ e  (..., 1)
    dlogits = probs if inplace else probs.copy()  # (..., V)
    np.put_along_axis(dlogits, safe_targets[..., None], -others, axis=-1)  # softmax - onehot
    scale = np.asarray(dloss, dtype=probs.dtype) / max(n, 1)  # ()  n = 0: every row is ignored
    dlogits *= (kept * scale)[..., None]  # (..., V)  ignored rows get 0
    return dlogits


def perplexity(loss):
    """exp(loss), in the loss's dtype."""
    return np.exp(loss)
