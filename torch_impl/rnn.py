"""The vanilla RNN cell and the multi-layer RNN from matmuls and tanh / relu (see numpy_impl/rnn.py
for the math and the derived BPTT equations; here autograd supplies the backward).

Layout and names are torch.nn.RNN's: weight_ih (H, I), weight_hh (H, H), bias_ih, bias_hh (H,),
so a torch.nn.RNN / RNNCell state_dict loads into these modules and back. `rnn(x, params, h0,
dropout_masks, p, nonlinearity)` is the layer over time with numpy_impl.rnn_forward's arguments;
the `RNN` module resolves its dropout masks and calls it. Without masks in training mode with
p > 0 the module draws them as torch.nn.RNN(dropout=p) does (torch_impl/dropout.py).

`RecurrentModule` is what RNN and GRU (torch_impl/gru.py) share: the parameters in torch's layout
and init, the dropout rule, and the time-major layout (batch_first=False).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from torch_impl.dropout import draw_dropout_masks, maybe_dropout
from twinlm.shared.validate import (
    require_choice,
    require_int,
    require_ndim,
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


def stack_layers(
    x: torch.Tensor,
    num_layers: int,
    layer: Callable[[int, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    dropout_masks: list[torch.Tensor | None] | None,
    p: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Layers over time stacked, with dropout between them: layer(k, input (T, B, ·)) -> (its
    outputs (T, B, H), its final h (B, H)). x (B, T, I). Returns (out (B, T, H), h_n (L, B, H))."""
    layer_in, h_n = x.transpose(0, 1), []  # (T, B, I)  time-major
    for k in range(num_layers):
        layer_in, h_last = layer(k, layer_in)  # (T, B, H), (B, H)
        h_n.append(h_last)
        if k < num_layers - 1:  # dropout between layers, not after the last
            mask = None if dropout_masks is None else dropout_masks[k]
            mask = None if mask is None else mask.transpose(0, 1)  # (T, B, H)
            layer_in = maybe_dropout(layer_in, mask, p)  # (T, B, H)
    return layer_in.transpose(0, 1), torch.stack(h_n)  # out (B, T, H)


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
        return torch.stack(outs), h

    return stack_layers(x, L, layer, dropout_masks, p)


def uniform_(module: nn.Module, hidden_size: int) -> None:
    """torch.nn.RNN / GRU / LSTM's init: every parameter U(-1/√H, 1/√H)."""
    bound = 1 / math.sqrt(hidden_size)
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-bound, bound)


def cell_parameters(module: nn.Module, input_size: int, hidden_size: int, gates: int) -> None:
    module.input_size, module.hidden_size = input_size, hidden_size
    module.weight_ih = nn.Parameter(torch.empty(gates * hidden_size, input_size))
    module.weight_hh = nn.Parameter(torch.empty(gates * hidden_size, hidden_size))
    module.bias_ih = nn.Parameter(torch.empty(gates * hidden_size))
    module.bias_hh = nn.Parameter(torch.empty(gates * hidden_size))
    uniform_(module, hidden_size)


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


class RecurrentModule(nn.Module):
    """A multi-layer recurrent layer with h as its only state and torch's parameter names
    (weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k}) and `dropout` between layers, at
    rate `p` given to forward. Subclasses set `gates` and `_layer_fn(x, params, h0, masks, p)`."""

    gates: int

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, batch_first: bool):
        super().__init__()
        require_int("input_size", input_size, 1)
        require_int("hidden_size", hidden_size, 1)
        require_int("num_layers", num_layers, 1)
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.batch_first = num_layers, batch_first
        G, H = self.gates * hidden_size, hidden_size
        for k in range(num_layers):
            layer_in = input_size if k == 0 else H
            setattr(self, f"weight_ih_l{k}", nn.Parameter(torch.empty(G, layer_in)))
            setattr(self, f"weight_hh_l{k}", nn.Parameter(torch.empty(G, H)))
            setattr(self, f"bias_ih_l{k}", nn.Parameter(torch.empty(G)))
            setattr(self, f"bias_hh_l{k}", nn.Parameter(torch.empty(G)))
        uniform_(self, hidden_size)

    def _layer_fn(self, x, params, h0, dropout_masks, p):
        raise NotImplementedError

    def forward(
        self,
        x: torch.Tensor,
        h0: torch.Tensor | None = None,
        dropout_masks: list[torch.Tensor | None] | None = None,
        p: float = 0.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, I) if batch_first else (T, B, I); h0 (num_layers, B, H), zeros if None;
        dropout_masks: num_layers-1 keep-masks shaped like the output (replayed in either mode),
        or None: drawn in training mode when p > 0 (as torch's `dropout=p` draws them), none in
        eval mode. Returns (out, h_n)."""
        if dropout_masks is None and self.training and p > 0:
            require_ndim("x", x, 3, 3)
            shape = (*x.shape[:2], self.hidden_size)  # the output's, in this module's layout
            shapes = {k: shape for k in range(self.num_layers - 1)}
            time_major = shapes if self.batch_first else ()  # torch draws on (T, B, H) outputs
            drawn = draw_dropout_masks(shapes, p, x.dtype, x.device, time_major)
            dropout_masks = list(drawn.values())
        elif dropout_masks is None:
            p = 0.0  # eval mode (or p = 0): no dropout
        if not self.batch_first:  # checked in this layout; the op gets batch-first views
            require_recurrent_inputs(
                x,
                {"h0": h0},
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
        out, h_n = self._layer_fn(x, dict(self.named_parameters()), h0, dropout_masks, p)
        return (out if self.batch_first else out.transpose(0, 1)), h_n


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
