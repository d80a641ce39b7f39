"""The transformer's feed-forward network, Linear → GELU (tanh) → Linear, and the book's module.

    y = GELU(x W₀ᵀ + b₀) W₂ᵀ + b₂      x (..., D), W₀ (Dh, D), W₂ (D, Dh); the book: Dh = 4·D
Keys are the book's `FeedForward` state_dict keys: layers.0 and layers.2 (layers.1 is the GELU).
"""

from __future__ import annotations

import torch
from torch import nn

from torch_impl.gelu import GELU, gelu
from torch_impl.linear import linear
from twinlm.shared.validate import require_feedforward_inputs


def feedforward(x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
    require_feedforward_inputs(x, params)
    h = linear(x, params["layers.0.weight"], params["layers.0.bias"])  # (..., Dh)
    g = gelu(h, approximate="tanh")  # (..., Dh)
    return linear(g, params["layers.2.weight"], params["layers.2.bias"])  # (..., D)


class FeedForward(nn.Module):
    """The book's FeedForward(cfg): layers = Sequential(Linear(D, 4D), GELU(), Linear(4D, D)).

    forward calls `feedforward` with this module's parameters, so the functional op is the one
    code path (the GELU in `layers` is there for the book's structure; it holds no parameters).
    """

    def __init__(self, cfg: dict):
        super().__init__()
        d = cfg["emb_dim"]
        self.layers = nn.Sequential(nn.Linear(d, 4 * d), GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return feedforward(x, dict(self.named_parameters()))
