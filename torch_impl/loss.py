"""Cross-entropy loss from log-softmax written out, and perplexity (see numpy_impl/loss.py).

loss = (1/n) Σ_kept -log p[y],  n = kept rows; all targets ignored gives nan, like
torch.nn.functional.cross_entropy. Autograd does the backward. Per row:
    -log p[y] = log Σ_v exp(z_v - m) - (z_y - m)     m = max_v z_v (no gradient: it cancels)
              = log1p(Σ_{v≠y} exp(z_v - z_y))        where y holds a largest logit
The second form keeps Σ_{v≠y} to full precision where the target holds nearly all the probability
(the first rounds it away in 1 + Σ), and, written relative to z_y, autograd builds the target's
gradient as -Σ_{v≠y} (the others' gradients) instead of p_y - 1.
"""

from __future__ import annotations

import torch

from twinlm.shared.validate import require_float, require_ids, require_ndim, require_shape


def cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100
) -> torch.Tensor:
    """Mean cross entropy of `logits` (..., V) against integer `targets` (...); a 0-d tensor."""
    require_float("logits", logits)
    require_ndim("logits", logits, 1)
    V = logits.shape[-1]
    if V == 0:
        raise ValueError(
            f"logits must have a non-empty last (vocabulary) axis, got shape {tuple(logits.shape)}"
        )
    require_ids("targets", targets, V, allowed=(ignore_index,))
    require_shape("targets", targets, logits.shape[:-1])

    kept = targets != ignore_index  # (...)
    at_target = torch.where(kept, targets, 0).unsqueeze(-1)  # (..., 1)  any index on ignored rows
    z = logits - logits.amax(dim=-1, keepdim=True).detach()  # (..., V)  m cancels, so no gradient
    z_target = torch.gather(z, -1, at_target).squeeze(-1)  # (...)  0 where the target is a max
    nll = torch.log(torch.exp(z).sum(dim=-1)) - z_target  # (...)
    near = z_target == 0  # (...)  rows whose target is a largest logit: the log1p form there
    w = logits[near] - torch.gather(logits, -1, at_target)[near]  # (N_near, V)  all ≤ 0
    others = torch.exp(w).scatter(-1, at_target[near], 0.0).sum(dim=-1)  # (N_near,)  Σ_{v≠y}
    nll = nll.clone()
    nll[near] = torch.log1p(others)
    # n = 0 gives 0 / 0 = nan, as F.cross_entropy does; the ignored rows' gradient stays 0.
    return torch.where(kept, nll, 0).sum() / kept.sum()


def perplexity(loss: torch.Tensor) -> torch.Tensor:
    """exp(loss)."""
    return torch.exp(loss)
