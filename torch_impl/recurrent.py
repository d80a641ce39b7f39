"""What the multi-layer recurrent layers (torch_impl/rnn.py, gru.py, lstm.py) share around their own
time loops (numpy_impl/recurrent.py is the NumPy side):

- torch's init, every parameter U(-1/√H, 1/√H), and `CellModule`, a cell op as a module with
  the cell's four parameters;
- `time_loop`: one layer over time, state_t = step(input_t, state_{t-1});
- `stack_layers`: L layers over time, layer 0 reading x and layer k > 0 reading dropout(layer k-1's
  output) (inverted dropout between layers, not after the last), time-major inside;
  `single_state` wraps it for the RNN and the GRU (their checks, h0 = zeros when absent);
- `RecurrentModule`: the nn.Module with torch's parameter names (weight_ih_l{k}, weight_hh_l{k},
  bias_ih_l{k}, bias_hh_l{k}), its dropout masks drawn as torch's `dropout=p` draws them, and the
  time-major layout (batch_first=False).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from torch_impl.dropout import draw_dropout_masks, maybe_dropout
from twinlm.shared.validate import (
    RECURRENT_WEIGHTS,
    require_int,
    require_ndim,
    require_recurrent_inputs,
    require_recurrent_params,
)

States = tuple[torch.Tensor, ...]


def uniform_(module: nn.Module, hidden_size: int) -> None:
    """torch.nn.RNN / GRU / LSTM's init: every parameter U(-1/√H, 1/√H)."""
    bound = 1 / math.sqrt(hidden_size)
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-bound, bound)


class CellModule(nn.Module):
    """A cell op as a module with torch's cell parameters: weight_ih (G, I), weight_hh (G, H),
    bias_ih, bias_hh (G,), G = gates · H; forward(x (B, I), h (B, H) or None for zeros) ->
    h_next. Subclasses set `gates`, `_cell` (the op: rnn_cell, gru_cell) and `option`, the name
    of its one keyword option (nonlinearity, reset_after), held in that attribute."""

    gates: int
    option: str

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        G = self.gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(G, input_size))
        self.weight_hh = nn.Parameter(torch.empty(G, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(G))
        self.bias_hh = nn.Parameter(torch.empty(G))
        uniform_(self, hidden_size)

    def _cell(self, x, h, weight_ih, weight_hh, bias_ih, bias_hh, **options) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, I); h (B, H), zeros if None. Returns h_next (B, H)."""
        h = x.new_zeros(x.shape[0], self.hidden_size) if h is None else h
        weights = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return self._cell(x, h, *weights, **{self.option: getattr(self, self.option)})


def time_loop(step, inputs: torch.Tensor, state):
    """One layer over time: state_t = step(inputs[t], state_{t-1}) for t = 0 .. T-1, the state a
    tensor h or a tuple whose first entry is h. Returns (every h_t stacked (T, B, H), the final
    state)."""
    outs = []
    for x_t in inputs:
        state = step(x_t, state)
        outs.append(state[0] if isinstance(state, tuple) else state)
    return torch.stack(outs), state


def single_state(x, params, h0, dropout_masks, p: float, gates: int, module: str, layer):
    """rnn and gru: the checks, h0 zeros if None, and the layers stacked, each
    layer(layer_in (T, B, I), h0 (B, H), weight_ih, weight_hh, bias_ih, bias_hh) -> (outputs
    (T, B, H), h_T). Returns (out (B, T, H), h_n (L, B, H))."""
    I, H, L = require_recurrent_params(params, gates, module)
    dtype = params["weight_ih_l0"].dtype
    require_recurrent_inputs(
        x, {"h0": h0}, dropout_masks, p, input_size=I, hidden_size=H, num_layers=L, dtype=dtype
    )
    h0 = x.new_zeros(L, x.shape[0], H) if h0 is None else h0

    def one_layer(k: int, layer_in: torch.Tensor):
        out, h = layer(layer_in, h0[k], *(params[f"{w}_l{k}"] for w in RECURRENT_WEIGHTS))
        return out, (h,)

    out, (h_n,) = stack_layers(x, L, one_layer, dropout_masks, p)
    return out, h_n


def stack_layers(
    x: torch.Tensor,
    num_layers: int,
    layer: Callable[[int, torch.Tensor], tuple[torch.Tensor, States]],
    dropout_masks: list[torch.Tensor | None] | None,
    p: float,
) -> tuple[torch.Tensor, States]:
    """Layers over time stacked, with dropout between them: layer(k, input (T, B, ·)) -> (its
    outputs (T, B, H), its final states: (h,) or (h, c), each (B, H)). x (B, T, I).
    Returns (out (B, T, H), the final states stacked over layers, each (L, B, H))."""
    layer_in, finals = x.transpose(0, 1), []  # (T, B, I)  time-major
    for k in range(num_layers):
        layer_in, final = layer(k, layer_in)  # (T, B, H), ((B, H), …)
        finals.append(final)
        if k < num_layers - 1:  # dropout between layers, not after the last
            mask = None if dropout_masks is None else dropout_masks[k]
            mask = None if mask is None else mask.transpose(0, 1)  # (T, B, H)
            layer_in = maybe_dropout(layer_in, mask, p)  # (T, B, H)
    return layer_in.transpose(0, 1), tuple(torch.stack(s) for s in zip(*finals, strict=True))


class RecurrentModule(nn.Module):
    """A multi-layer recurrent layer with torch's parameter names (weight_ih_l{k}, weight_hh_l{k},
    bias_ih_l{k}, bias_hh_l{k}) and `dropout` between layers, at rate `p` given to forward.
    Subclasses set `gates`, `state_names` (("h0",), or ("h0", "c0") for the LSTM, whose state is
    the pair), `_op`, the op over time (rnn, gru, lstm), and `option`, the name of its one keyword
    option (nonlinearity, reset_after) held in that attribute, if it has one."""

    gates: int
    state_names: tuple[str, ...] = ("h0",)
    option: str | None = None

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

    def _op(self, x, params, state, dropout_masks, p, **options):
        raise NotImplementedError

    def forward(
        self,
        x: torch.Tensor,
        h0: torch.Tensor | None = None,
        dropout_masks: list[torch.Tensor | None] | None = None,
        p: float = 0.0,
    ):
        """x (B, T, I) if batch_first else (T, B, I); h0 (num_layers, B, H) (the LSTM: its state
        (h0, c0)), zeros if None; dropout_masks: num_layers-1 keep-masks shaped like the output
        (replayed in either mode), or None: drawn in training mode when p > 0 (as torch's
        `dropout=p` draws them), none in eval mode. Returns (out, h_n) (the LSTM: (h_n, c_n))."""
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
            if len(self.state_names) == 1:
                states = {"h0": h0}
            else:
                states = {} if h0 is None else dict(zip(self.state_names, h0, strict=True))
            require_recurrent_inputs(
                x,
                states,
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
        params = dict(self.named_parameters())
        options = {} if self.option is None else {self.option: getattr(self, self.option)}
        out, state_n = self._op(x, params, h0, dropout_masks, p, **options)
        return (out if self.batch_first else out.transpose(0, 1)), state_n
