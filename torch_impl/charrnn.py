"""Karpathy's char-RNN in PyTorch: embedding → multi-layer LSTM → dropout → linear decoder.

    e = E[x]                                   (B, T, D)   torch_impl.embedding
    h, (h_n, c_n) = lstm(e, (h_0, c_0))        (B, T, H)   torch_impl.lstm, masks "lstm.dropout.{k}"
    logits = drop(h) W_decᵀ + b_dec            (B, T, V)   mask "dropout"; torch_impl.linear
See numpy_impl/charrnn.py for the math and the derived backward; here autograd supplies it.
`charrnn(x, params, cfg, state, dropout_masks)` takes numpy_impl.charrnn_forward's arguments.

The module tree is `embedding` (nn.Embedding's weight), `lstm` (torch.nn.LSTM's parameter names)
and `decoder` (nn.Linear), so its state_dict keys are those of the same model built from torch's
own modules, and the NumPy model's params load with `load_state_dict`. Both backends start from
twinlm.shared.init.init_charrnn_params (the one seeded initializer), loaded by the caller.
Dropout masks are named (twinlm.shared.naming.charrnn_dropout_mask_shapes) and resolved by
torch_impl/dropout.py's rule: given, or drawn in training mode when drop_rate > 0 (as
torch.nn.LSTM(dropout=p, batch_first=True) followed by nn.Dropout draws them: each on a time-major
(T, B, H) tensor), or none.
"""

from __future__ import annotations

import torch
from torch import nn

from torch_impl.dropout import maybe_dropout, resolve_dropout_masks
from torch_impl.embedding import embedding
from torch_impl.linear import linear
from torch_impl.lstm import LSTM, lstm
from twinlm.shared.naming import charrnn_dropout_mask_shapes, sub_dict
from twinlm.shared.validate import require_charrnn_config, require_token_batch


def charrnn(
    x: torch.Tensor,
    params: dict[str, torch.Tensor],
    cfg: dict,
    state: tuple[torch.Tensor, torch.Tensor] | None = None,
    dropout_masks: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Logits (B, T, V) for byte ids x (B, T), and the final state (h_n, c_n) each (L, B, H).
    state (h_0, c_0), zeros if None; dropout_masks named as in the module docstring (any subset),
    applied with rate cfg["drop_rate"]."""
    masks, p = dropout_masks or {}, cfg["drop_rate"]
    between = [masks.get(f"lstm.dropout.{k}") for k in range(cfg["num_layers"] - 1)]
    e = embedding(x, params["embedding.weight"])  # (B, T, D)
    h, state_n = lstm(e, sub_dict(params, "lstm."), state, between, p)  # (B, T, H)
    y = maybe_dropout(h, masks.get("dropout"), p)  # (B, T, H)
    return linear(y, params["decoder.weight"], params["decoder.bias"]), state_n  # (B, T, V)


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
        dropout_masks: dict[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Logits (B, T, V) for byte ids x (B, T), and the final state (h_n, c_n) each (L, B, H).
        dropout_masks: replay these (either mode); None: drawn in training mode, none in eval."""
        cfg = self.cfg
        require_token_batch("x", x, cfg["vocab_size"])
        shapes = charrnn_dropout_mask_shapes(cfg, *x.shape)
        w, p = self.decoder.weight, cfg["drop_rate"]
        # Every mask acts on a time-major (T, B, H) tensor in torch.nn.LSTM(batch_first=True)
        # followed by nn.Dropout, so each is drawn in that layout.
        masks = resolve_dropout_masks(dropout_masks, shapes, p, self.training, w, shapes)
        return charrnn(x, dict(self.named_parameters()), cfg, state, masks)
