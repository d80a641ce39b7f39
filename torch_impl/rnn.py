"""The vanilla RNN cell and the multi-layer RNN from matmuls and tanh / relu (see numpy_impl/rnn.py
for the math and the derived BPTT equations; here autograd supplies the backward).

Layout and names are torch.nn.RNN's: weight_ih (H, I), weight_hh (H, H), bias_ih, bias_hh (H,),
so a torch.nn.RNN / RNNCell state_dict loads into these modules and back. `rnn(x, params, h0,
dropout_masks, p, nonlinearity)` is the layer over time with numpy_impl.rnn_forward's arguments;
the `RNN` module resolves its dropout masks and calls it. Without masks in training mode with
p > 0 the module draws them as torch.nn.RNN(dropout=p) does (torch_impl/dropout.py).

The stacking of layers, the init and the module's dropout and layout rules are torch_impl/recurrent.py's.
"""

from __future__ import annotations

import torch
from torch import nn

from torch_impl.recurrent import RecurrentModule, cell_parameters, stack_layers
from twinlm.shared.validate import (
    require_choice,
    require_recurrent_cell_inputs,
    require_recurrent_inputs,
    require_recurrent_params,
)

NONLINEARITIES = ("tanh", "relu")


def _phi(a: torch.Tensor, nonlinearity: str) -> torch.Tensor:
    return torch.tanh(a) if nonlinearity == "tanh" else torch.relu(a)


def rnn_cell(
    x: torch.Tensor,
    h: torch.Tensor,
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_ih: torch.Tensor,
    bias_hh: torch.Tensor,
    nonlinearity: str = "tanh",
) -> torch.Tensor:
    """One vanilla RNN step (torch.nn.RNNCell): x (B, I), h (B, H) → h_next (B, H)."""
    require_choice("nonlinearity", nonlinearity, NONLINEARITIES)
    require_recurrent_cell_inputs(x, {"h": h}, weight_ih, weight_hh, bias_ih, bias_hh, 1)
    return _phi(x @ weight_ih.T + bias_ih + h @ weight_hh.T + bias_hh, nonlinearity)  # (B, H)


def rnn(
    x: torch.Tensor,
    params: dict[str, torch.Tensor],
    h0: torch.Tensor | None = None,
    dropout_masks: list[torch.Tensor | None] | None = None,
    p: float = 0.0,
    nonlinearity: str = "tanh",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-layer vanilla RNN over time, batch first. x (B, T, I); params keyed like
    torch.nn.RNN's state_dict (num_layers and hidden size read off them); h0 (L, B, H), zeros if
    None; dropout_masks None or L-1 keep-masks (B, T, H) (or None entries) applied to each layer's
    output but the last, scaled by 1/(1 - p). Returns (out (B, T, H), h_n (L, B, H))."""
    require_choice("nonlinearity", nonlinearity, NONLINEARITIES)
    I, H, L = require_recurrent_params(params, 1, "torch.nn.RNN")
    dtype = params["weight_ih_l0"].dtype
    require_recurrent_inputs(
        x, {"h0": h0}, dropout_masks, p, input_size=I, hidden_size=H, num_layers=L, dtype=dtype
    )
    h0 = x.new_zeros(L, x.shape[0], H) if h0 is None else h0

    def layer(k: int, layer_in: torch.Tensor):
        bias = params[f"bias_ih_l{k}"] + params[f"bias_hh_l{k}"]  # (H,)
        a_x = layer_in @ params[f"weight_ih_l{k}"].T + bias  # (T, B, H)  all steps at once
        W_hh, h, outs = params[f"weight_hh_l{k}"], h0[k], []
        for t in range(a_x.shape[0]):
            h = _phi(a_x[t] + h @ W_hh.T, nonlinearity)  # (B, H)
            outs.append(h)
        return torch.stack(outs), (h,)

    out, (h_n,) = stack_layers(x, L, layer, dropout_masks, p)
    return out, h_n


class RNNCell(nn.Module):
    """`rnn_cell` with torch.nn.RNNCell's parameters: weight_ih, weight_hh, bias_ih, bias_hh."""

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh"):
        super().__init__()
        require_choice("nonlinearity", nonlinearity, NONLINEARITIES)
        self.nonlinearity = nonlinearity
        cell_parameters(self, input_size, hidden_size, 1)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, I); h (B, H), zeros if None. Returns h_next (B, H)."""
        h = x.new_zeros(x.shape[0], self.hidden_size) if h is None else h
        weights = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return rnn_cell(x, h, *weights, self.nonlinearity)


class RNN(RecurrentModule):
    """Multi-layer vanilla RNN with torch.nn.RNN's parameter names, nonlinearity and dropout."""

    gates = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        nonlinearity: str = "tanh",
        batch_first: bool = True,
    ):
        require_choice("nonlinearity", nonlinearity, NONLINEARITIES)
        super().__init__(input_size, hidden_size, num_layers, batch_first)
        self.nonlinearity = nonlinearity

    def _layer_fn(self, x, params, h0, dropout_masks, p):
        return rnn(x, params, h0, dropout_masks, p, self.nonlinearity)
