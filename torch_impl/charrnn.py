"""Karpathy's char-RNN in PyTorch: embedding → multi-layer LSTM → dropout → linear decoder.

    e = E[x]                                   (B, T, D)   torch_impl.embedding
    h, (h_n, c_n) = LSTM(e, (h_0, c_0))        (B, T, H)   torch_impl.LSTM, dropout between layers
    logits = drop(h) W_decᵀ + b_dec            (B, T, V)   torch_impl.dropout, torch_impl.linear
See numpy_impl/charrnn.py for the math and the derived backward; here autograd supplies it.

The module tree is `embedding` (nn.Embedding's weight), `lstm` (torch.nn.LSTM's parameter names)
and `decoder` (nn.Linear), so its state_dict keys are those of the same model built from torch's
own modules, and the NumPy model's params load with `load_state_dict`. Both backends start from
numpy_impl.charrnn.init_charrnn_params (the one seeded initializer), loaded by the caller.
Dropout is only ever the caller's masks: a list of num_layers keep-masks (B, T, H), mask k after
layer k; None means no dropout.
"""

from __future__ import annotations

import torch
from torch import nn

from torch_impl.dropout import dropout
from torch_impl.embedding import embedding
from torch_impl.linear import linear
from torch_impl.lstm import LSTM
from twinlm.shared.validate import (
    require_charrnn_config,
    require_charrnn_masks,
    require_token_batch,
)


class CharRNN(nn.Module):
    """char-RNN; cfg keys vocab_size, emb_dim, hidden_size, num_layers, drop_rate.
    dtype: torch.float32 (default) or torch.float64."""

    def __init__(self, cfg: dict, dtype: torch.dtype | None = None):
        super().__init__()
        require_charrnn_config(cfg)
        self.cfg = dict(cfg)
        V, D, H, L = cfg["vocab_size"], cfg["emb_dim"], cfg["hidden_size"], cfg["num_layers"]
        self.embedding = nn.Embedding(V, D)
        self.lstm = LSTM(D, H, L, batch_first=True)
        self.decoder = nn.Linear(H, V)
        if dtype is not None:
            self.to(dtype)

    def zero_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(h_0, c_0) of zeros, each (num_layers, batch, hidden_size)."""
        w = self.decoder.weight
        zeros = w.new_zeros(self.cfg["num_layers"], batch, self.cfg["hidden_size"])
        return zeros, zeros.clone()

    def forward(
        self,
        x: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
        dropout_masks: list[torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Logits (B, T, V) for byte ids x (B, T), and the final state (h_n, c_n) each (L, B, H)."""
        p = self.cfg["drop_rate"]
        require_token_batch("x", x, self.cfg["vocab_size"])
        B, T = x.shape
        if dropout_masks is not None:
            require_charrnn_masks(dropout_masks, self.cfg, B, T)
        e = embedding(x, self.embedding.weight)  # (B, T, D)
        between = None if dropout_masks is None else list(dropout_masks[:-1])  # L-1 masks
        h, state_n = self.lstm(e, state, between, p if between else 0.0)  # (B, T, H)
        if dropout_masks is not None:
            h = dropout(h, dropout_masks[-1], p)  # (B, T, H)
        return linear(h, self.decoder.weight, self.decoder.bias), state_n  # (B, T, V)
