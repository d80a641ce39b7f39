"""Karpathy's char-RNN in NumPy: embedding → multi-layer recurrent layers (LSTM, GRU or vanilla
RNN, cfg["cell"]) → dropout → linear decoder.

Forward, x (B, T) byte ids in [0, V), state the cell's (zeros when a text starts): (h_0, c_0) for
the LSTM, (h_0,) for the GRU and the vanilla RNN, each (L, B, H):
    e = E[x]                                   (B, T, D)   embedding.weight E (V, D)
    h_t^(1) = CELL_1(e_t, h_{t-1}^(1))          (B, T, H)   numpy_impl/lstm.py, gru.py or rnn.py
    h^(k+1) = CELL_{k+1}(drop_k(h^(k)))        (B, T, H)   k = 1 .. L-1, mask "{core}.dropout.{k-1}"
    y = drop_L(h^(L))                          (B, T, H)   mask "dropout", before the decoder
    logits = y W_decᵀ + b_dec                  (B, T, V)   decoder.weight (V, H), decoder.bias (V,)
    loss = mean_{b,t} -log softmax(logits[b, t])[target[b, t]]
and the final state of every layer, which the next batch starts from.
(The original char-rnn feeds one-hot vectors: that is this model with E = I, D = V.)

cfg["cell"] is "lstm" (the default: configs from before the choice are LSTMs), "gru" (torch's
convention, reset_after=True, so the weights load into torch.nn.GRU), "rnn_tanh" or "rnn_relu".
The recurrent layers' keys sit under `{core}.` — `lstm.`, `gru.` or `rnn.` (both vanilla cells,
like torch.nn.RNN) — in torch's layout.

Backward, the chain in reverse (each piece derived in its own file):
    dlogits = (softmax(logits) - onehot(target)) / (B·T)          numpy_impl/loss.py
    dy = dlogits W_dec, dW_dec = Σ dlogitsᵀ y, db_dec = Σ dlogits    numpy_impl/linear.py
    dh^(L) = drop_L'(dy) = dy ⊙ m_L / (1 - p)                        numpy_impl/dropout.py
    de, dstate_0, dW_cell = BPTT(dh^(L), dstate_T)                  the cell's file
    dE[v] = Σ_{(b,t): x[b,t] = v} de[b, t]                           numpy_impl/embedding.py
Truncated BPTT: the next batch continues from the final state but its backward stops at its own
first step. The gradient on the initial state is computed (kept in `dstate0`) and then simply not
passed on — that is the cut.

The model is an op pair, `charrnn_forward` / `charrnn_backward` (params keyed like the torch
module's state_dict); `CharRNN` is a thin class over it. Dropout masks are a named dict
(twinlm.shared.naming.charrnn_dropout_mask_shapes), each (B, T, H): "{core}.dropout.{k}" after
recurrent layer k < L-1 (torch's `dropout` between layers) and "dropout" before the decoder (as in
char-rnn's LSTM.lua); any subset, a missing name is no dropout there, None or {} none at all
(evaluation and sampling).

`CharRNN(cfg, kernels="fast")` runs the same model on numpy_impl/fast's ops (numpy_impl.kernel_ops).
"""

from __future__ import annotations

import numpy as np

import numpy_impl
from numpy_impl.dropout import maybe_dropout_backward, maybe_dropout_forward
from numpy_impl.embedding import embedding_backward, embedding_forward
from numpy_impl.gru import gru_backward, gru_forward
from numpy_impl.linear import linear_backward, linear_forward
from numpy_impl.lstm import lstm_backward, lstm_forward
from numpy_impl.rnn import rnn_backward, rnn_forward
from twinlm.shared.init import init_charrnn_params, numpy_state_dict
from twinlm.shared.naming import (
    CELL_STATE,
    charrnn_cell,
    charrnn_core,
    charrnn_dropout_mask_shapes,
    charrnn_param_shapes,
    sub_dict,
    with_prefix,
)
from twinlm.shared.validate import (
    require_backend,
    require_cell_state,
    require_charrnn_config,
    require_dropout_masks,
    require_shape,
    require_token_batch,
)

State = tuple[np.ndarray, ...]  # (h, c) for the LSTM, (h,) for the GRU and the vanilla RNN


def _recurrent_forward(layers, e, params, cell: str, state: State | None, between, p: float):
    """The recurrent layers of any cell: (h (B, T, H), final state, cache); layers = the
    (lstm, gru, rnn) forwards."""
    lstm, gru, rnn = layers
    if cell == "lstm":
        return lstm(e, params, state, between, p)
    h0 = None if state is None else state[0]
    if cell == "gru":
        h, h_n, cache = gru(e, params, h0, between, p)
    else:
        h, h_n, cache = rnn(e, params, h0, between, p, cell.removeprefix("rnn_"))
    return h, (h_n,), cache


def _recurrent_backward(layers, dh, dstate: State | None, cache, cell: str):
    """BPTT of any cell: (de (B, T, D), gradient on the initial state, parameter gradients);
    layers = the (lstm, gru, rnn) backwards."""
    lstm, gru, rnn = layers
    if cell == "lstm":
        return lstm(dh, dstate, cache)
    backward = gru if cell == "gru" else rnn
    de, dh0, grads = backward(dh, None if dstate is None else dstate[0], cache)
    return de, (dh0,), grads


def charrnn_forward(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    cfg: dict,
    state: State | None = None,
    dropout_masks: dict[str, np.ndarray] | None = None,
):
    """Logits (B, T, V) for byte ids x (B, T), the final state ((h_n, c_n) or (h_n,), each
    (L, B, H)), and the cache for charrnn_backward. state: the cell's initial state, zeros if
    None; dropout_masks named as in the module docstring, applied with rate cfg["drop_rate"]."""
    layers = (lstm_forward, gru_forward, rnn_forward)
    return charrnn_with(layers, x, params, cfg, state, dropout_masks)


def charrnn_backward(
    dlogits: np.ndarray, dstate: State | None, cache
) -> tuple[dict[str, np.ndarray], State]:
    """From d loss / d logits (B, T, V) and the gradient on the final state (or None): (every
    parameter's gradient, in state_dict order; the gradient on the initial state)."""
    return charrnn_backward_with(
        (lstm_backward, gru_backward, rnn_backward), dlogits, dstate, cache
    )


def charrnn_with(layers, x, params, cfg: dict, state, dropout_masks):
    """charrnn_forward with layers = the (lstm, gru, rnn) forwards: this package's, or the fast
    path's (numpy_impl/fast/charrnn.py)."""
    masks, p = dropout_masks or {}, cfg["drop_rate"]
    cell, core = charrnn_cell(cfg), charrnn_core(cfg)
    between = [masks.get(f"{core}.dropout.{k}") for k in range(cfg["num_layers"] - 1)]
    e, emb_cache = embedding_forward(x, params["embedding.weight"])  # (B, T, D)
    h, state_n, rec_cache = _recurrent_forward(
        layers, e, sub_dict(params, core + "."), cell, state, between, p
    )  # (B, T, H)
    y, drop_cache = maybe_dropout_forward(h, masks.get("dropout"), p)  # (B, T, H)
    logits, dec_cache = linear_forward(y, params["decoder.weight"], params["decoder.bias"])
    return logits, state_n, ((cell, core), emb_cache, rec_cache, drop_cache, dec_cache)  # (B, T, V)


def charrnn_backward_with(layers, dlogits, dstate, cache):
    """charrnn_backward with layers = the (lstm, gru, rnn) backwards matching the forward's."""
    (cell, core), emb_cache, rec_cache, drop_cache, dec_cache = cache
    dy, dW_dec, db_dec = linear_backward(dlogits, dec_cache)  # logits = y W_decᵀ + b_dec
    dh = maybe_dropout_backward(dy, drop_cache)  # y = drop(h): (B, T, H)
    de, dstate0, rec_grads = _recurrent_backward(layers, dh, dstate, rec_cache, cell)  # (B, T, D)
    dE = embedding_backward(de, emb_cache)  # e = E[x]: (V, D)
    grads = {
        "embedding.weight": dE,
        **with_prefix(rec_grads, core + "."),
        "decoder.weight": dW_dec,
        "decoder.bias": db_dec,
    }
    return grads, dstate0


class CharRNN:
    """char-RNN with `params` keyed like the torch module's state_dict: a thin class over
    charrnn_forward / charrnn_backward (see the module docstring); kernels "reference" or "fast"
    (numpy_impl/fast's op pair), an attribute a caller may also set later.

    forward(x (B, T), state, dropout_masks) -> (logits (B, T, V), final state);
    backward(dlogits, dstate) -> grads, with the initial state's gradient left in `dstate0`;
    loss_and_grads(x, targets, state, dropout_masks) -> (loss, grads, final state).
    States are the cell's: (h, c) for the LSTM, (h,) for the GRU and the vanilla RNN.
    """

    def __init__(self, cfg: dict, seed: int = 0, dtype=np.float32, kernels: str = "reference"):
        require_charrnn_config(cfg)
        numpy_impl.kernel_ops(kernels)  # a known name, or a ValueError naming `kernels`
        self.cfg = dict(cfg)
        self.kernels = kernels
        self.params: dict[str, np.ndarray] = init_charrnn_params(self.cfg, seed, dtype)
        self.dstate0: State | None = None  # the initial state's gradient, of the last backward
        self._cache = None

    @property
    def dtype(self) -> np.dtype:
        return self.params["embedding.weight"].dtype

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter, keyed like torch's state_dict."""
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state: dict) -> None:
        """Load NumPy arrays or CPU torch tensors with exactly the state_dict keys and shapes; the
        model takes their (common) dtype, float32 or float64."""
        arrays = numpy_state_dict(state, charrnn_param_shapes(self.cfg))
        self.params.update(arrays)  # the same dict, so an optimizer holding it sees the new arrays
        self._cache = None

    def zero_state(self, batch: int) -> State:
        """The cell's state of zeros ((h_0, c_0) or (h_0,)), each (num_layers, batch,
        hidden_size): the start of a text."""
        shape = (self.cfg["num_layers"], batch, self.cfg["hidden_size"])
        return tuple(np.zeros(shape, self.dtype) for _ in CELL_STATE[charrnn_cell(self.cfg)])

    def forward(
        self,
        x: np.ndarray,
        state: State | None = None,
        dropout_masks: dict[str, np.ndarray] | None = None,
    ):
        """Logits (B, T, V) for byte ids x (B, T), and the final state, each array (L, B, H).
        state: the cell's, zeros if None; dropout_masks: named keep-masks (B, T, H), None: none."""
        require_token_batch("x", x, self.cfg["vocab_size"], backend="numpy")
        require_cell_state("state", state, charrnn_cell(self.cfg))
        B, T = x.shape
        if dropout_masks is not None:
            shapes = charrnn_dropout_mask_shapes(self.cfg, B, T)
            require_dropout_masks("dropout_masks", dropout_masks, shapes)
        ops = numpy_impl.kernel_ops(self.kernels)
        logits, state_n, cache = ops.charrnn_forward(x, self.params, self.cfg, state, dropout_masks)
        self._cache = ((B, T), cache, ops)
        return logits, state_n

    def backward(self, dlogits: np.ndarray, dstate: State | None = None) -> dict[str, np.ndarray]:
        """Every parameter's gradient (keys of `params`) from d loss / d logits (B, T, V) and, if
        given, the gradient on the final state. The gradient on the initial state is left in
        `self.dstate0`."""
        if self._cache is None:
            raise RuntimeError("CharRNN.backward needs a forward first")
        (B, T), cache, ops = self._cache
        require_shape("dlogits", dlogits, (B, T, self.cfg["vocab_size"]))
        require_cell_state("dstate", dstate, charrnn_cell(self.cfg))
        grads, self.dstate0 = ops.charrnn_backward(dlogits, dstate, cache)
        return grads

    def loss_and_grads(
        self,
        x: np.ndarray,
        targets: np.ndarray,
        state: State | None = None,
        dropout_masks: dict[str, np.ndarray] | None = None,
    ):
        """Mean cross entropy (nats) of next-byte targets (B, T), every parameter's gradient, and
        the final state to carry into the next batch. Returns (loss float, grads, final state)."""
        require_backend("targets", targets, "numpy")
        logits, state_n = self.forward(x, state, dropout_masks)  # (B, T, V)
        require_shape("targets", targets, x.shape)
        ops = self._cache[2]
        loss, loss_cache = ops.cross_entropy_forward(logits, targets)
        dlogits = ops.cross_entropy_backward(np.ones((), logits.dtype), loss_cache)  # (B, T, V)
        return float(loss), self.backward(dlogits), state_n
