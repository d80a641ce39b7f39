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

from torch_impl.recurrent import CellModule, RecurrentModule, single_state, time_loop
from twinlm.shared.validate import require_choice, require_recurrent_cell_inputs

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
    """Multi-layer vanilla RNN over time, batch first: numpy_impl.rnn_forward's arguments (x
    (B, T, I), params keyed like torch.nn.RNN's state_dict, h0 (L, B, H) or None, dropout_masks
    None or L-1 keep-masks (B, T, H)). Returns (out (B, T, H), h_n (L, B, H))."""
    require_choice("nonlinearity", nonlinearity, NONLINEARITIES)

    def layer(layer_in, h0, weight_ih, weight_hh, bias_ih, bias_hh):
        a_x = layer_in @ weight_ih.T + (bias_ih + bias_hh)  # (T, B, H)  all steps at once

        def step(a_t, h):
            return _phi(a_t + h @ weight_hh.T, nonlinearity)  # (B, H)

        return time_loop(step, a_x, h0)

    return single_state(x, params, h0, dropout_masks, p, 1, "torch.nn.RNN", layer)


class RNNCell(CellModule):
    """`rnn_cell` with torch.nn.RNNCell's parameters: weight_ih, weight_hh, bias_ih, bias_hh."""

    gates, option, _cell = 1, "nonlinearity", staticmethod(rnn_cell)

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh"):
        require_choice("nonlinearity", nonlinearity, NONLINEARITIES)
        super().__init__(input_size, hidden_size)
        self.nonlinearity = nonlinearity


class RNN(RecurrentModule):
    """Multi-layer vanilla RNN with torch.nn.RNN's parameter names, nonlinearity and dropout."""

    gates, option, _op = 1, "nonlinearity", staticmethod(rnn)

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
