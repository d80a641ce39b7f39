"""The LSTM cell and the multi-layer LSTM from matmuls, sigmoid and tanh (see numpy_impl/lstm.py
for the math and the derived BPTT equations; here autograd supplies the backward).

Layout and names are torch.nn.LSTM's: weight_ih (4H, I), weight_hh (4H, H), bias_ih, bias_hh (4H,),
gate order i, f, g, o, so a torch.nn.LSTM / LSTMCell state_dict loads into these modules and back.
`lstm(x, params, state, dropout_masks, p)` is the layer over time with numpy_impl.lstm_forward's
arguments; the `LSTM` module resolves its dropout masks and calls it. Without masks in training
mode with p > 0 the module draws them as torch.nn.LSTM(dropout=p) does (torch_impl/dropout.py).
The stacking of layers, the init and the module's dropout and layout rules are
torch_impl/recurrent.py's.
"""

from __future__ import annotations

import torch

from torch_impl.recurrent import CellModule, RecurrentModule, stack_layers, time_loop
from twinlm.shared.validate import (
    require_lstm_cell_inputs,
    require_lstm_inputs,
    require_lstm_params,
)


def _cell_from_gates(z: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pre-activations z (B, 4H) = [z_i z_f z_g z_o] and c (B, H) → (h', c')."""
    z_i, z_f, z_g, z_o = z.chunk(4, dim=-1)  # (B, H) each
    i, f, g, o = torch.sigmoid(z_i), torch.sigmoid(z_f), torch.tanh(z_g), torch.sigmoid(z_o)
    c_next = f * c + i * g  # (B, H)
    h_next = o * torch.tanh(c_next)  # (B, H)
    return h_next, c_next


def lstm_cell(
    x: torch.Tensor,
    h: torch.Tensor,
    c: torch.Tensor,
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_ih: torch.Tensor,
    bias_hh: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One LSTM step (torch.nn.LSTMCell): x (B, I), h and c (B, H) → (h_next, c_next)."""
    require_lstm_cell_inputs(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh)
    z = x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh  # (B, 4H)
    return _cell_from_gates(z, c)


def lstm(
    x: torch.Tensor,
    params: dict[str, torch.Tensor],
    state: tuple[torch.Tensor, torch.Tensor] | None = None,
    dropout_masks: list[torch.Tensor | None] | None = None,
    p: float = 0.0,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Multi-layer LSTM over time, batch first. x (B, T, I); params keyed like torch.nn.LSTM's
    state_dict (num_layers and hidden size read off them); state (h0, c0) each (L, B, H), zeros if
    None; dropout_masks None or L-1 keep-masks (B, T, H) (or None entries) applied to each layer's
    output but the last, scaled by 1/(1 - p). Returns (out (B, T, H), (h_n, c_n))."""
    I, H, L = require_lstm_params(params)
    dtype = params["weight_ih_l0"].dtype
    require_lstm_inputs(
        x, state, dropout_masks, p, input_size=I, hidden_size=H, num_layers=L, dtype=dtype
    )
    if state is None:
        zeros = x.new_zeros(L, x.shape[0], H)
        state = (zeros, zeros)
    h0, c0 = state

    def layer(k: int, layer_in: torch.Tensor):
        bias = params[f"bias_ih_l{k}"] + params[f"bias_hh_l{k}"]  # (4H,)
        z_x = layer_in @ params[f"weight_ih_l{k}"].T + bias  # (T, B, 4H)  all steps at once
        W_hh = params[f"weight_hh_l{k}"]

        def step(z_t, state):
            h, c = state
            return _cell_from_gates(z_t + h @ W_hh.T, c)  # (h, c), (B, H) each

        return time_loop(step, z_x, (h0[k], c0[k]))

    return stack_layers(x, L, layer, dropout_masks, p)


class LSTMCell(CellModule):
    """`lstm_cell` with torch.nn.LSTMCell's parameters: weight_ih, weight_hh, bias_ih, bias_hh."""

    gates = 4

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, I); state (h, c) each (B, H), zeros if None. Returns (h_next, c_next)."""
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            state = (zeros, zeros)
        h, c = state
        return lstm_cell(x, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


class LSTM(RecurrentModule):
    """Multi-layer LSTM with torch.nn.LSTM's parameter names (weight_ih_l{k}, weight_hh_l{k},
    bias_ih_l{k}, bias_hh_l{k}) and its `dropout` between layers, at rate `p` given to forward."""

    gates, state_names, _op = 4, ("h0", "c0"), staticmethod(lstm)

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, batch_first: bool = True
    ):
        super().__init__(input_size, hidden_size, num_layers, batch_first)

    def forward(
        self,
        x: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
        dropout_masks: list[torch.Tensor | None] | None = None,
        p: float = 0.0,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """RecurrentModule.forward with the state (h0, c0), each (num_layers, B, H), zeros if
        None. Returns (out, (h_n, c_n))."""
        return super().forward(x, state, dropout_masks, p)
