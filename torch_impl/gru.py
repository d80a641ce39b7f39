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

from torch_impl.recurrent import RecurrentModule, cell_parameters, stack_layers
from twinlm.shared.validate import (
    require_bool,
    require_recurrent_cell_inputs,
    require_recurrent_inputs,
    require_recurrent_params,
)


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
    """Multi-layer GRU over time, batch first. x (B, T, I); params keyed like torch.nn.GRU's
    state_dict (num_layers and hidden size read off them); h0 (L, B, H), zeros if None;
    dropout_masks None or L-1 keep-masks (B, T, H) (or None entries) applied to each layer's output
    but the last, scaled by 1/(1 - p). Returns (out (B, T, H), h_n (L, B, H))."""
    require_bool("reset_after", reset_after)
    I, H, L = require_recurrent_params(params, 3, "torch.nn.GRU")
    dtype = params["weight_ih_l0"].dtype
    require_recurrent_inputs(
        x, {"h0": h0}, dropout_masks, p, input_size=I, hidden_size=H, num_layers=L, dtype=dtype
    )
    h0 = x.new_zeros(L, x.shape[0], H) if h0 is None else h0

    def layer(k: int, layer_in: torch.Tensor):
        gi = layer_in @ params[f"weight_ih_l{k}"].T + params[f"bias_ih_l{k}"]  # (T, B, 3H)
        W_hh, b_hh, h, outs = params[f"weight_hh_l{k}"], params[f"bias_hh_l{k}"], h0[k], []
        for t in range(gi.shape[0]):
            h = _cell_from_parts(gi[t], h, W_hh, b_hh, reset_after)  # (B, H)
            outs.append(h)
        return torch.stack(outs), (h,)

    out, (h_n,) = stack_layers(x, L, layer, dropout_masks, p)
    return out, h_n


class GRUCell(torch.nn.Module):
    """`gru_cell` with torch.nn.GRUCell's parameters: weight_ih, weight_hh, bias_ih, bias_hh."""

    def __init__(self, input_size: int, hidden_size: int, reset_after: bool = True):
        super().__init__()
        require_bool("reset_after", reset_after)
        self.reset_after = reset_after
        cell_parameters(self, input_size, hidden_size, 3)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, I); h (B, H), zeros if None. Returns h_next (B, H)."""
        h = x.new_zeros(x.shape[0], self.hidden_size) if h is None else h
        weights = (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)
        return gru_cell(x, h, *weights, self.reset_after)


class GRU(RecurrentModule):
    """Multi-layer GRU with torch.nn.GRU's parameter names and dropout; reset_after=False: Cho's."""

    gates = 3

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

    def _layer_fn(self, x, params, h0, dropout_masks, p):
        return gru(x, params, h0, dropout_masks, p, self.reset_after)
