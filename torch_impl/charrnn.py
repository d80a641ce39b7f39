"""Karpathy's char-RNN in PyTorch: embedding → multi-layer recurrent layers (LSTM, GRU or vanilla
RNN, cfg["cell"]) → dropout → linear decoder.

    e = E[x]                                (B, T, D)  torch_impl.embedding
    h, state_n = lstm|gru|rnn(e, state)     (B, T, H)  the layer; masks "{core}.dropout.{k}"
    logits = drop(h) W_decᵀ + b_dec         (B, T, V)  mask "dropout"; torch_impl.linear
See numpy_impl/charrnn.py for the math, the cells and the derived backward; here autograd supplies
it. `charrnn(x, params, cfg, state, dropout_masks)` takes numpy_impl.charrnn_forward's arguments;
state is the cell's tuple, (h, c) for the LSTM and (h,) for the GRU and the vanilla RNN.

The module tree is `embedding` (nn.Embedding's weight), the recurrent layers under `lstm`, `gru` or
`rnn` (torch.nn.LSTM / GRU / RNN's parameter names) and `decoder` (nn.Linear), so its state_dict
keys are those of the same model built from torch's own modules, and the NumPy model's params load
with `load_state_dict`. Both backends start from twinlm.shared.init.init_charrnn_params (the one
seeded initializer), loaded by the caller.
Dropout masks are named (twinlm.shared.naming.charrnn_dropout_mask_shapes) and resolved by
torch_impl/dropout.py's rule: given, or drawn in training mode when drop_rate > 0 (as
torch.nn.LSTM / GRU / RNN(dropout=p, batch_first=True) followed by nn.Dropout draws them: each on a
time-major (T, B, H) tensor), or none.
"""

from __future__ import annotations

import torch
from torch import nn

from torch_impl.dropout import maybe_dropout, resolve_dropout_masks
from torch_impl.embedding import embedding
from torch_impl.gru import GRU, gru
from torch_impl.linear import linear
from torch_impl.lstm import LSTM, lstm
from torch_impl.rnn import RNN, rnn
from twinlm.shared.naming import (
    CELL_STATE,
    charrnn_cell,
    charrnn_core,
    charrnn_dropout_mask_shapes,
    sub_dict,
)
from twinlm.shared.validate import require_cell_state, require_charrnn_config, require_token_batch

State = tuple[torch.Tensor, ...]  # (h, c) for the LSTM, (h,) for the GRU and the vanilla RNN


def _recurrent(e, params, cell: str, state: State | None, between, p: float):
    """The recurrent layers of any cell: (h (B, T, H), final state)."""
    if cell == "lstm":
        return lstm(e, params, state, between, p)
    h0 = None if state is None else state[0]
    if cell == "gru":
        h, h_n = gru(e, params, h0, between, p)
    else:
        h, h_n = rnn(e, params, h0, between, p, cell.removeprefix("rnn_"))
    return h, (h_n,)


def charrnn(
    x: torch.Tensor,
    params: dict[str, torch.Tensor],
    cfg: dict,
    state: State | None = None,
    dropout_masks: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, State]:
    """Logits (B, T, V) for byte ids x (B, T), and the final state ((h_n, c_n) or (h_n,), each
    (L, B, H)). state: the cell's, zeros if None; dropout_masks named as in the module docstring
    (any subset), applied with rate cfg["drop_rate"]."""
    masks, p = dropout_masks or {}, cfg["drop_rate"]
    cell, core = charrnn_cell(cfg), charrnn_core(cfg)
    between = [masks.get(f"{core}.dropout.{k}") for k in range(cfg["num_layers"] - 1)]
    e = embedding(x, params["embedding.weight"])  # (B, T, D)
    h, state_n = _recurrent(e, sub_dict(params, core + "."), cell, state, between, p)  # (B, T, H)
    y = maybe_dropout(h, masks.get("dropout"), p)  # (B, T, H)
    return linear(y, params["decoder.weight"], params["decoder.bias"]), state_n  # (B, T, V)


class CharRNN(nn.Module):
    """char-RNN; cfg keys vocab_size, emb_dim, hidden_size, num_layers, drop_rate and optionally
    cell ("lstm", the default, "gru", "rnn_tanh", "rnn_relu").
    dtype: torch.float32 (default) or torch.float64."""

    def __init__(self, cfg: dict, dtype: torch.dtype | None = None):
        super().__init__()
        require_charrnn_config(cfg)
        self.cfg = dict(cfg)
        V, D, H, L = cfg["vocab_size"], cfg["emb_dim"], cfg["hidden_size"], cfg["num_layers"]
        cell = charrnn_cell(cfg)
        self.embedding = nn.Embedding(V, D)
        if cell == "lstm":
            layers = LSTM(D, H, L, batch_first=True)
        elif cell == "gru":
            layers = GRU(D, H, L, batch_first=True)
        else:
            layers = RNN(D, H, L, cell.removeprefix("rnn_"), batch_first=True)
        setattr(self, charrnn_core(cfg), layers)  # registered between embedding and decoder
        self.decoder = nn.Linear(H, V)
        if dtype is not None:
            self.to(dtype)

    def zero_state(self, batch: int) -> State:
        """The cell's state of zeros ((h_0, c_0) or (h_0,)), each (num_layers, batch,
        hidden_size)."""
        w = self.decoder.weight
        shape = (self.cfg["num_layers"], batch, self.cfg["hidden_size"])
        return tuple(w.new_zeros(shape) for _ in CELL_STATE[charrnn_cell(self.cfg)])

    def forward(
        self,
        x: torch.Tensor,
        state: State | None = None,
        dropout_masks: dict[str, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, State]:
        """Logits (B, T, V) for byte ids x (B, T), and the final state, each array (L, B, H).
        dropout_masks: replay these (either mode); None: drawn in training mode, none in eval."""
        cfg = self.cfg
        require_token_batch("x", x, cfg["vocab_size"], backend="torch")
        require_cell_state("state", state, charrnn_cell(cfg))
        shapes = charrnn_dropout_mask_shapes(cfg, *x.shape)
        w, p = self.decoder.weight, cfg["drop_rate"]
        # Every mask acts on a time-major (T, B, H) tensor in torch.nn.LSTM(batch_first=True)
        # followed by nn.Dropout, so each is drawn in that layout.
        masks = resolve_dropout_masks(dropout_masks, shapes, p, self.training, w, shapes)
        return charrnn(x, dict(self.named_parameters()), cfg, state, masks)
