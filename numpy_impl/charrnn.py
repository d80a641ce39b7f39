"""Karpathy's char-RNN in NumPy: embedding → multi-layer LSTM → dropout → linear decoder.

Forward, x (B, T) byte ids in [0, V), state (h_0, c_0) each (L, B, H) (zeros when a text starts):
    e = E[x]                                   (B, T, D)   embedding.weight E (V, D)
    h_t^(1) = LSTM_1(e_t, h_{t-1}^(1))          (B, T, H)   numpy_impl/lstm.py, all T steps
    h^(k+1) = LSTM_{k+1}(drop_k(h^(k)))        (B, T, H)   k = 1 .. L-1, mask "lstm.dropout.{k-1}"
    y = drop_L(h^(L))                          (B, T, H)   mask "dropout", before the decoder
    logits = y W_decᵀ + b_dec                  (B, T, V)   decoder.weight (V, H), decoder.bias (V,)
    loss = mean_{b,t} -log softmax(logits[b, t])[target[b, t]]
and the final state (h_T, c_T) of every layer, which the next batch starts from.
(The original char-rnn feeds one-hot vectors: that is this model with E = I, D = V.)

Backward, the chain in reverse (each piece derived in its own file):
    dlogits = (softmax(logits) - onehot(target)) / (B·T)          numpy_impl/loss.py
    dy = dlogits W_dec, dW_dec = Σ dlogitsᵀ y, db_dec = Σ dlogits    numpy_impl/linear.py
    dh^(L) = drop_L'(dy) = dy ⊙ m_L / (1 - p)                        numpy_impl/dropout.py
    de, (dh_0, dc_0), dW_lstm = BPTT(dh^(L), (dh_T, dc_T))          numpy_impl/lstm.py
    dE[v] = Σ_{(b,t): x[b,t] = v} de[b, t]                           numpy_impl/embedding.py
Truncated BPTT: the next batch continues from (h_T, c_T) but its backward stops at its own first
step. The gradient on the initial state, (dh_0, dc_0), is computed (kept in `dstate0`) and then
simply not passed on — that is the cut.

The model is an op pair, `charrnn_forward` / `charrnn_backward` (params keyed like the torch
module's state_dict); `CharRNN` is a thin class over it. Dropout masks are a named dict
(twinlm.shared.naming.charrnn_dropout_mask_shapes), each (B, T, H): "lstm.dropout.{k}" after LSTM
layer k < L-1 (torch.nn.LSTM's `dropout` between layers) and "dropout" before the decoder (as in
char-rnn's LSTM.lua); any subset, a missing name is no dropout there, None or {} none at all
(evaluation and sampling).
"""

from __future__ import annotations

import numpy as np

from numpy_impl.dropout import maybe_dropout_backward, maybe_dropout_forward
from numpy_impl.embedding import embedding_backward, embedding_forward
from numpy_impl.linear import linear_backward, linear_forward
from numpy_impl.loss import cross_entropy_backward, cross_entropy_forward
from numpy_impl.lstm import lstm_backward, lstm_forward
from twinlm.shared.init import init_charrnn_params, numpy_state_dict
from twinlm.shared.naming import (
    charrnn_dropout_mask_shapes,
    charrnn_param_shapes,
    sub_dict,
    with_prefix,
)
from twinlm.shared.validate import (
    require_charrnn_config,
    require_dropout_masks,
    require_shape,
    require_token_batch,
)


def charrnn_forward(
    x: np.ndarray,
    params: dict[str, np.ndarray],
    cfg: dict,
    state: tuple[np.ndarray, np.ndarray] | None = None,
    dropout_masks: dict[str, np.ndarray] | None = None,
):
    """Logits (B, T, V) for byte ids x (B, T), the final state (h_n, c_n) each (L, B, H), and the
    cache for charrnn_backward. state (h_0, c_0), zeros if None; dropout_masks named as in the
    module docstring, applied with rate cfg["drop_rate"]."""
    masks, p = dropout_masks or {}, cfg["drop_rate"]
    between = [masks.get(f"lstm.dropout.{k}") for k in range(cfg["num_layers"] - 1)]
    e, emb_cache = embedding_forward(x, params["embedding.weight"])  # (B, T, D)
    h, state_n, lstm_cache = lstm_forward(e, sub_dict(params, "lstm."), state, between, p)
    y, drop_cache = maybe_dropout_forward(h, masks.get("dropout"), p)  # (B, T, H)
    logits, dec_cache = linear_forward(y, params["decoder.weight"], params["decoder.bias"])
    return logits, state_n, (emb_cache, lstm_cache, drop_cache, dec_cache)  # logits (B, T, V)


def charrnn_backward(
    dlogits: np.ndarray, dstate: tuple[np.ndarray, np.ndarray] | None, cache
) -> tuple[dict[str, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """From d loss / d logits (B, T, V) and the gradient (dh_n, dc_n) on the final state (or None):
    (every parameter's gradient, in state_dict order; (dh_0, dc_0) on the initial state)."""
    emb_cache, lstm_cache, drop_cache, dec_cache = cache
    dy, dW_dec, db_dec = linear_backward(dlogits, dec_cache)  # logits = y W_decᵀ + b_dec
    dh = maybe_dropout_backward(dy, drop_cache)  # y = drop(h): (B, T, H)
    de, dstate0, lstm_grads = lstm_backward(dh, dstate, lstm_cache)  # (B, T, D)
    dE = embedding_backward(de, emb_cache)  # e = E[x]: (V, D)
    grads = {
        "embedding.weight": dE,
        **with_prefix(lstm_grads, "lstm."),
        "decoder.weight": dW_dec,
        "decoder.bias": db_dec,
    }
    return grads, dstate0


class CharRNN:
    """char-RNN with `params` keyed like the torch module's state_dict: a thin class over
    charrnn_forward / charrnn_backward (see the module docstring).

    forward(x (B, T), state, dropout_masks) -> (logits (B, T, V), (h_n, c_n));
    backward(dlogits, dstate) -> grads, with (dh_0, dc_0) left in `dstate0`;
    loss_and_grads(x, targets, state, dropout_masks) -> (loss, grads, (h_n, c_n)).
    """

    def __init__(self, cfg: dict, seed: int = 0, dtype=np.float32):
        require_charrnn_config(cfg)
        self.cfg = dict(cfg)
        self.params: dict[str, np.ndarray] = init_charrnn_params(self.cfg, seed, dtype)
        self.dstate0: tuple[np.ndarray, np.ndarray] | None = None  # (dh_0, dc_0) of last backward
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

    def zero_state(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """(h_0, c_0) of zeros, each (num_layers, batch, hidden_size): the start of a text."""
        shape = (self.cfg["num_layers"], batch, self.cfg["hidden_size"])
        return np.zeros(shape, self.dtype), np.zeros(shape, self.dtype)

    def forward(
        self,
        x: np.ndarray,
        state: tuple[np.ndarray, np.ndarray] | None = None,
        dropout_masks: dict[str, np.ndarray] | None = None,
    ):
        """Logits (B, T, V) for byte ids x (B, T), and the final state (h_n, c_n) each (L, B, H).
        state: (h_0, c_0), zeros if None; dropout_masks: named keep-masks (B, T, H), None: none."""
        require_token_batch("x", x, self.cfg["vocab_size"])
        B, T = x.shape
        if dropout_masks is not None:
            shapes = charrnn_dropout_mask_shapes(self.cfg, B, T)
            require_dropout_masks("dropout_masks", dropout_masks, shapes)
        logits, state_n, cache = charrnn_forward(x, self.params, self.cfg, state, dropout_masks)
        self._cache = ((B, T), cache)
        return logits, state_n

    def backward(
        self, dlogits: np.ndarray, dstate: tuple[np.ndarray, np.ndarray] | None = None
    ) -> dict[str, np.ndarray]:
        """Every parameter's gradient (keys of `params`) from d loss / d logits (B, T, V) and, if
        given, the gradient (dh_n, dc_n) on the final state. The gradient on the initial state is
        left in `self.dstate0`."""
        if self._cache is None:
            raise RuntimeError("CharRNN.backward needs a forward first")
        (B, T), cache = self._cache
        require_shape("dlogits", dlogits, (B, T, self.cfg["vocab_size"]))
        grads, self.dstate0 = charrnn_backward(dlogits, dstate, cache)
        return grads

    def loss_and_grads(
        self,
        x: np.ndarray,
        targets: np.ndarray,
        state: tuple[np.ndarray, np.ndarray] | None = None,
        dropout_masks: dict[str, np.ndarray] | None = None,
    ):
        """Mean cross entropy (nats) of next-byte targets (B, T), every parameter's gradient, and
        the final state to carry into the next batch. Returns (loss float, grads, (h_n, c_n))."""
        logits, state_n = self.forward(x, state, dropout_masks)  # (B, T, V)
        require_shape("targets", targets, x.shape)
        loss, loss_cache = cross_entropy_forward(logits, targets)
        dlogits = cross_entropy_backward(np.ones((), logits.dtype), loss_cache)  # (B, T, V)
        return float(loss), self.backward(dlogits), state_n
