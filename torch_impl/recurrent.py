"""What the multi-layer recurrent layers (torch_impl/rnn.py, gru.py, lstm.py) share around their own
time loops (numpy_impl/recurrent.py is the NumPy side):

- torch's init, every parameter U(-1/√H, 1/√H), and a cell's four parameters (`cell_parameters`);
- `stack_layers`: L layers over time, layer 0 reading x and layer k > 0 reading dropout(layer k-1's
  output) (inverted dropout between layers, not after the last), time-major inside;
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
from twinlm.shared.validate import require_int, require_ndim, require_recurrent_inputs

States = tuple[torch.Tensor, ...]


def uniform_(module: nn.Module, hidden_size: int) -> None:
    """torch.nn.RNN / GRU / LSTM's init: every parameter U(-1/√H, 1/√H)."""
    bound = 1 / math.sqrt(hidden_size)
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-bound, bound)


def cell_parameters(module: nn.Module, input_size: int, hidden_size: int, gates: int) -> None:
    """A cell's weight_ih (G, I), weight_hh (G, H), bias_ih, bias_hh (G,), G = gates · H."""
    module.input_size, module.hidden_size = input_size, hidden_size
    module.weight_ih = nn.Parameter(torch.empty(gates * hidden_size, input_size))
    module.weight_hh = nn.Parameter(torch.empty(gates * hidden_size, hidden_size))
    module.bias_ih = nn.Parameter(torch.empty(gates * hidden_size))
    module.bias_hh = nn.Parameter(torch.empty(gates * hidden_size))
    uniform_(module, hidden_size)


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
    the pair) and `_layer_fn(x, params, state, dropout_masks, p)`, the op over time."""

    gates: int
    state_names: tuple[str, ...] = ("h0",)

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

    def _layer_fn(self, x, params, state, dropout_masks, p):
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
        out, state_n = self._layer_fn(x, dict(self.named_parameters()), h0, dropout_masks, p)
        return (out if self.batch_first else out.transpose(0, 1)), state_n
