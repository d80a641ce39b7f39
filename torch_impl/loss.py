"""Cross-entropy loss from log-softmax written out, and perplexity (see numpy_impl/loss.py).

loss = -(1/n) Σ_kept [(z - m)[y] - log Σ_v exp(z_v - m)],  m = max_v z_v,  n = kept rows;
all targets ignored gives nan, like torch.nn.functional.cross_entropy. Autograd does the backward.
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
    safe_targets = torch.where(kept, targets, 0)  # (...)  any valid index on ignored rows
    z = logits - logits.amax(dim=-1, keepdim=True).detach()  # (..., V)  m cancels, so no gradient
    log_sum_exp = torch.log(torch.exp(z).sum(dim=-1))  # (...)
    z_target = torch.gather(z, -1, safe_targets.unsqueeze(-1)).squeeze(-1)  # (...)
    log_p_target = z_target - log_sum_exp  # (...)
    # n = 0 gives 0 / 0 = nan, as F.cross_entropy does; the ignored rows' gradient stays 0.
    return -torch.where(kept, log_p_target, 0).sum() / kept.sum()


def perplexity(loss: torch.Tensor) -> torch.Tensor:
    """exp(loss)."""
    return torch.exp(loss)
