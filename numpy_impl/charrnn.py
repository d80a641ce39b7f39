"""Karpathy's char-RNN in NumPy: embedding → multi-layer LSTM → dropout → linear decoder.

Forward, x (B, T) byte ids in [0, V), state (h_0, c_0) each (L, B, H) (zeros when a text starts):
    e = E[x]                                   (B, T, D)   embedding.weight E (V, D)
    h_t^(1) = LSTM_1(e_t, h_{t-1}^(1))          (B, T, H)   numpy_impl/lstm.py, all T steps
    h^(k+1) = LSTM_{k+1}(drop_k(h^(k)))        (B, T, H)   dropout between layers k = 1 .. L-1
    y = drop_L(h^(L))                          (B, T, H)   dropout before the decoder
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

Dropout is a list of L keep-masks (B, T, H), mask k applied to layer k's output (the first L-1 are
torch.nn.LSTM's `dropout` between layers, the last one sits before the decoder, as in char-rnn's
LSTM.lua); None means no dropout (evaluation and sampling).
"""

from __future__ import annotations

import numpy as np

from numpy_impl.dropout import dropout_backward, dropout_forward
from numpy_impl.embedding import embedding_backward, embedding_forward
from numpy_impl.linear import linear_backward, linear_forward
from numpy_impl.loss import cross_entropy_backward, cross_entropy_forward
from numpy_impl.lstm import LSTM
from twinlm.shared.init import init_charrnn_params, numpy_state_dict
from twinlm.shared.naming import charrnn_param_shapes
from twinlm.shared.validate import (
    require_charrnn_config,
    require_charrnn_masks,
    require_shape,
    require_token_batch,
)


class CharRNN:
    """char-RNN with `params` keyed like the torch module's state_dict (see the module docstring).

    forward(x (B, T), state) -> (logits (B, T, V), (h_n, c_n)); backward(dlogits, dstate) -> grads;
    loss_and_grads(x, targets, state, masks) -> (loss, grads, (h_n, c_n)).
    """

    def __init__(self, cfg: dict, seed: int = 0, dtype=np.float32):
        require_charrnn_config(cfg)
        self.cfg = dict(cfg)
        self.params: dict[str, np.ndarray] = init_charrnn_params(self.cfg, seed, dtype)
        c = self.cfg
        self.lstm = LSTM(c["emb_dim"], c["hidden_size"], c["num_layers"], dtype=dtype)
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
        dropout_masks: list[np.ndarray] | None = None,
    ):
        """Logits (B, T, V) for byte ids x (B, T), and the final state (h_n, c_n) each (L, B, H).
        state: (h_0, c_0), zeros if None; dropout_masks: None or num_layers keep-masks (B, T, H)."""
        P, p = self.params, self.cfg["drop_rate"]
        require_token_batch("x", x, self.cfg["vocab_size"])
        B, T = x.shape
        if dropout_masks is not None:
            require_charrnn_masks(dropout_masks, self.cfg, B, T)
        # The LSTM reads the very arrays in `params` (an optimizer updates them in place).
        self.lstm.params = {k: P[f"lstm.{k}"] for k in self.lstm.params}

        e, emb_cache = embedding_forward(x, P["embedding.weight"])  # (B, T, D)
        between = None if dropout_masks is None else dropout_masks[:-1]  # L-1 masks
        h, state_n = self.lstm.forward(e, state, between, p if between else 0.0)  # (B, T, H)
        drop_cache = None
        if dropout_masks is not None:
            h, drop_cache = dropout_forward(h, dropout_masks[-1], p)  # (B, T, H)
        logits, dec_cache = linear_forward(h, P["decoder.weight"], P["decoder.bias"])  # (B, T, V)
        self._cache = (emb_cache, drop_cache, dec_cache, (B, T))
        return logits, state_n

    def backward(
        self, dlogits: np.ndarray, dstate: tuple[np.ndarray, np.ndarray] | None = None
    ) -> dict[str, np.ndarray]:
        """Every parameter's gradient (keys of `params`) from d loss / d logits (B, T, V) and, if
        given, the gradient (dh_n, dc_n) on the final state. The gradient on the initial state is
        left in `self.dstate0`."""
        if self._cache is None:
            raise RuntimeError("CharRNN.backward needs a forward first")
        emb_cache, drop_cache, dec_cache, (B, T) = self._cache
        require_shape("dlogits", dlogits, (B, T, self.cfg["vocab_size"]))
        grads = {}
        dh, grads["decoder.weight"], grads["decoder.bias"] = linear_backward(dlogits, dec_cache)
        if drop_cache is not None:
            dh = dropout_backward(dh, drop_cache)  # (B, T, H)
        de, self.dstate0, lstm_grads = self.lstm.backward(dh, dstate)  # (B, T, D)
        grads |= {f"lstm.{k}": g for k, g in lstm_grads.items()}
        grads["embedding.weight"] = embedding_backward(de, emb_cache)  # (V, D)
        return {k: grads[k] for k in self.params}

    def loss_and_grads(
        self,
        x: np.ndarray,
        targets: np.ndarray,
        state: tuple[np.ndarray, np.ndarray] | None = None,
        dropout_masks: list[np.ndarray] | None = None,
    ):
        """Mean cross entropy (nats) of next-byte targets (B, T), every parameter's gradient, and
        the final state to carry into the next batch. Returns (loss float, grads, (h_n, c_n))."""
        logits, state_n = self.forward(x, state, dropout_masks)  # (B, T, V)
        require_shape("targets", targets, x.shape)
        loss, loss_cache = cross_entropy_forward(logits, targets)
        dlogits = cross_entropy_backward(np.ones((), logits.dtype), loss_cache)  # (B, T, V)
        return float(loss), self.backward(dlogits), state_n
