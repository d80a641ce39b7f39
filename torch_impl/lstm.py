"""The LSTM cell and the multi-layer LSTM from matmuls, sigmoid and tanh (see numpy_impl/lstm.py
for the math and the derived BPTT equations; here autograd supplies the backward).

Layout and names are torch.nn.LSTM's: weight_ih (4H, I), weight_hh (4H, H), bias_ih, bias_hh (4H,),
gate order i, f, g, o, so a torch.nn.LSTM / LSTMCell state_dict loads into these modules and back.
`lstm(x, params, state, dropout_masks, p)` is the layer over time with numpy_impl.lstm_forward's
arguments; the `LSTM` module resolves its dropout masks and calls it. Without masks in training
mode with p > 0 the module draws them as torch.nn.LSTM(dropout=p) does (torch_impl/dropout.py).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from torch_impl.dropout import draw_dropout_masks, maybe_dropout
from twinlm.shared.validate import (
    require_int,
    require_lstm_cell_inputs,
    require_lstm_inputs,
    require_lstm_params,
    require_ndim,
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
    B = x.shape[0]
    if state is None:
        zeros = x.new_zeros(L, B, H)
        state = (zeros, zeros)
    h0, c0 = state
    layer_in, h_n, c_n = x.transpose(0, 1), [], []  # (T, B, I)  time-major
    for k in range(L):
        W_ih, W_hh = params[f"weight_ih_l{k}"], params[f"weight_hh_l{k}"]
        bias = params[f"bias_ih_l{k}"] + params[f"bias_hh_l{k}"]  # (4H,)
        z_x = layer_in @ W_ih.T + bias  # (T, B, 4H)  the input part of every step at once
        h, c, outs = h0[k], c0[k], []
        for t in range(z_x.shape[0]):
            h, c = _cell_from_gates(z_x[t] + h @ W_hh.T, c)  # (B, H) each
            outs.append(h)
        h_n.append(h)
        c_n.append(c)
        layer_in = torch.stack(outs)  # (T, B, H)
        if k < L - 1:  # dropout between layers, not after the last
            mask = None if dropout_masks is None else dropout_masks[k]
            mask = None if mask is None else mask.transpose(0, 1)  # (T, B, H)
            layer_in = maybe_dropout(layer_in, mask, p)  # (T, B, H)
    return layer_in.transpose(0, 1), (torch.stack(h_n), torch.stack(c_n))  # out (B, T, H)


def _uniform_(module: nn.Module, hidden_size: int) -> None:
    """torch.nn.LSTM's init: every parameter U(-1/√H, 1/√H)."""
    bound = 1 / math.sqrt(hidden_size)
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-bound, bound)


class LSTMCell(nn.Module):
    """`lstm_cell` with torch.nn.LSTMCell's parameters: weight_ih, weight_hh, bias_ih, bias_hh."""

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(4 * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(4 * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(4 * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(4 * hidden_size))
        _uniform_(self, hidden_size)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, I); state (h, c) each (B, H), zeros if None. Returns (h_next, c_next)."""
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            state = (zeros, zeros)
        h, c = state
        return lstm_cell(x, h, c, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)


class LSTM(nn.Module):
    """Multi-layer LSTM with torch.nn.LSTM's parameter names (weight_ih_l{k}, weight_hh_l{k},
    bias_ih_l{k}, bias_hh_l{k}) and its `dropout` between layers, at rate `p` given to forward."""

    def __init__(
        self, input_size: int, hidden_size: int, num_layers: int = 1, batch_first: bool = True
    ):
        super().__init__()
        require_int("input_size", input_size, 1)
        require_int("hidden_size", hidden_size, 1)
        require_int("num_layers", num_layers, 1)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.batch_first = num_layers, batch_first
        H = hidden_size
        for k in range(num_layers):
            layer_in = input_size if k == 0 else H
            setattr(self, f"weight_ih_l{k}", nn.Parameter(torch.empty(4 * H, layer_in)))
            setattr(self, f"weight_hh_l{k}", nn.Parameter(torch.empty(4 * H, H)))
            setattr(self, f"bias_ih_l{k}", nn.Parameter(torch.empty(4 * H)))
            setattr(self, f"bias_hh_l{k}", nn.Parameter(torch.empty(4 * H)))
        _uniform_(self, hidden_size)

    def forward(
        self,
        x: torch.Tensor,
        state: tuple[torch.Tensor, torch.Tensor] | None = None,
        dropout_masks: list[torch.Tensor | None] | None = None,
        p: float = 0.0,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (B, T, I) if batch_first else (T, B, I); state (h0, c0) each (num_layers, B, H),
        zeros if None; dropout_masks: num_layers-1 keep-masks shaped like the output (replayed in
        either mode), or None: drawn in training mode when p > 0 (as torch.nn.LSTM(dropout=p)
        draws them), none in eval mode. Returns (out, (h_n, c_n))."""
        if dropout_masks is None and self.training and p > 0:
            require_ndim("x", x, 3, 3)
            shape = (*x.shape[:2], self.hidden_size)  # the output's, in this module's layout
            shapes = {k: shape for k in range(self.num_layers - 1)}
            time_major = shapes if self.batch_first else ()  # nn.LSTM draws on (T, B, H) outputs
            drawn = draw_dropout_masks(shapes, p, x.dtype, x.device, time_major)
            dropout_masks = list(drawn.values())
        elif dropout_masks is None:
            p = 0.0  # eval mode (or p = 0): no dropout
        if not self.batch_first:  # checked in this layout; lstm() gets batch-first views
            require_lstm_inputs(
                x,
                state,
                dropout_masks,
                p,
                input_size=self.input_size,
                hidden_size=self.hidden_size,
                num_layers=self.num_layers,
                dtype=self.weight_ih_l0.dtype,
                batch_first=False,
            )
            x = x.transpose(0, 1)  # (B, T, I)
            if dropout_masks is not None:
                dropout_masks = [None if m is None else m.transpose(0, 1) for m in dropout_masks]
        out, state_n = lstm(x, dict(self.named_parameters()), state, dropout_masks, p)
        return (out if self.batch_first else out.transpose(0, 1)), state_n
