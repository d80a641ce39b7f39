"""PyTorch backend: the same ops from elementary tensor ops; autograd supplies the backward."""

from torch_impl.attention import MultiHeadAttention, attention, multihead_attention
from torch_impl.charrnn import CharRNN, charrnn
from torch_impl.classifier import GPTClassifier, token_positions
from torch_impl.dropout import (
    draw_dropout_masks,
    dropout,
    maybe_dropout,
    resolve_dropout_masks,
)
from torch_impl.embedding import embedding
from torch_impl.feedforward import FeedForward, feedforward
from torch_impl.gelu import GELU, gelu
from torch_impl.generate import forward_cached
from torch_impl.gpt import GPTModel, gpt_body
from torch_impl.gru import GRU, GRUCell, gru, gru_cell
from torch_impl.layernorm import LayerNorm, layernorm
from torch_impl.linear import linear
from torch_impl.loss import cross_entropy, perplexity
from torch_impl.lstm import LSTM, LSTMCell, lstm, lstm_cell
from torch_impl.optim import AdamW, clip_grad_norm
from torch_impl.rnn import RNN, RNNCell, rnn, rnn_cell
from torch_impl.softmax import softmax
from torch_impl.transformer import TransformerBlock, transformer_block

__all__ = [
    "AdamW",
    "CharRNN",
    "FeedForward",
    "GELU",
    "GPTClassifier",
    "GPTModel",
    "GRU",
    "GRUCell",
    "LSTM",
    "LSTMCell",
    "LayerNorm",
    "MultiHeadAttention",
    "RNN",
    "RNNCell",
    "TransformerBlock",
    "attention",
    "charrnn",
    "clip_grad_norm",
    "cross_entropy",
    "draw_dropout_masks",
    "dropout",
    "embedding",
    "feedforward",
    "gelu",
    "forward_cached",
    "gpt_body",
    "gru",
    "gru_cell",
    "layernorm",
    "linear",
    "lstm",
    "lstm_cell",
    "maybe_dropout",
    "multihead_attention",
    "perplexity",
    "resolve_dropout_masks",
    "rnn",
    "rnn_cell",
    "softmax",
    "token_positions",
    "transformer_block",
]
