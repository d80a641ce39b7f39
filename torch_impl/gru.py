"""The GRU cell and the multi-layer GRU from matmuls, sigmoid and tanh, in both conventions (see
numpy_impl/gru.py for the math, the two conventions and the derived BPTT; autograd supplies the
backward here).

Layout and names are torch.nn.GRU's: weight_ih (3H, I), weight_hh (3H, H), bias_ih, bias_hh (3H,),
gate order r, z, n, so a torch.nn.GRU / GRUCell state_dict loads into these modules and back.
reset_after=True is torch.nn.GRU's cell; reset_after=False is Cho 2014's (no torch built-in).
`gru(x, params, h0, dropout_masks, p, reset_after)` is the layer over time with
numpy_impl.gru_forward's arguments; the `GRU` module resolves its dropout masks and calls it.
"""

from __future__ import annotations

import torch

from torch_impl.recurrent import CellModule, RecurrentModule, single_state, time_loop
from twinlm.shared.validate import require_bool, require_recurrent_cell_inputs


def _cell_from_parts(
    gi: torch.Tensor, h: torch.Tensor, weight_hh: torch.Tensor, bias_hh: torch.Tensor, reset_after
) -> torch.Tensor:
    """gi = x W_ihᵀ + b_ih (B, 3H) and h (B, H) → h' (B, H)."""
    H = h.shape[-1]
    gi_r, gi_z, gi_n = gi.chunk(3, dim=-1)  # (B, H) each
    if reset_after:
        gh_r, gh_z, gh_n = (h @ weight_hh.T + bias_hh).chunk(3, dim=-1)  # one matmul
        r, z = torch.sigmoid(gi_r + gh_r), torch.sigmoid(gi_z + gh_z)
        n = torch.tanh(gi_n + r * gh_n)
    else:
        gh_r, gh_z = (h @ weight_hh[: 2 * H].T + bias_hh[: 2 * H]).chunk(2, dim=-1)
        r, z = torch.sigmoid(gi_r + gh_r), torch.sigmoid(gi_z + gh_z)
        n = torch.tanh(gi_n + (r * h) @ weight_hh[2 * H :].T + bias_hh[2 * H :])
    return n + z * (h - n)  # (1 - z) ⊙ n + z ⊙ h


def gru_cell(
    x: torch.Tensor,
    h: torch.Tensor,
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias_ih: torch.Tensor,
    bias_hh: torch.Tensor,
    reset_after: bool = True,
) -> torch.Tensor:
    """One GRU step (torch.nn.GRUCell when reset_after): x (B, I), h (B, H) → h_next (B, H)."""
    require_bool("reset_after", reset_after)
    require_recurrent_cell_inputs(x, {"h": h}, weight_ih, weight_hh, bias_ih, bias_hh, 3)
    return _cell_from_parts(x @ weight_ih.T + bias_ih, h, weight_hh, bias_hh, reset_after)


def gru(
    x: torch.Tensor,
    params: dict[str, torch.Tensor],
    h0: torch.Tensor | None = None,
    dropout_masks: list[torch.Tensor | None] | None = None,
    p: float = 0.0,
    reset_after: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-layer GRU over time, batch first: numpy_impl.gru_forward's arguments (x (B, T, I),
    params keyed like torch.nn.GRU's state_dict, h0 (L, B, H) or None, dropout_masks None or L-1
    keep-masks (B, T, H)). Returns (out (B, T, H), h_n (L, B, H))."""
    require_bool("reset_after", reset_after)

    def layer(layer_in, h0, weight_ih, weight_hh, bias_ih, bias_hh):
        gi = layer_in @ weight_ih.T + bias_ih  # (T, B, 3H)  all steps at once

        def step(gi_t, h):
            return _cell_from_parts(gi_t, h, weight_hh, bias_hh, reset_after)  # (B, H)

        return time_loop(step, gi, h0)

    return single_state(x, params, h0, dropout_masks, p, 3, "torch.nn.GRU", layer)


class GRUCell(CellModule):
    """`gru_cell` with torch.nn.GRUCell's parameters: weight_ih, weight_hh, bias_ih, bias_hh."""

    gates, option, _cell = 3, "reset_after", staticmethod(gru_cell)

    def __init__(self, input_size: int, hidden_size: int, reset_after: bool = True):
        require_bool("reset_after", reset_after)
        super().__init__(input_size, hidden_size)
        self.reset_after = reset_after


class GRU(RecurrentModule):
    """Multi-layer GRU with torch.nn.GRU's parameter names and dropout; reset_after=False: Cho's."""

    gates, option, _op = 3, "reset_after", staticmethod(gru)

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        batch_first: bool = True,
        reset_after: bool = True,
    ):
        require_bool("reset_after", reset_after)
        super().__init__(input_size, hidden_size, num_layers, batch_first)
        self.reset_after = reset_after
