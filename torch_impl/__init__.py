"""PyTorch backend: the same ops from elementary tensor ops; autograd supplies the backward."""

from torch_impl.attention import MultiHeadAttention, attention, multihead_attention
from torch_impl.charrnn import CharRNN
from torch_impl.classifier import GPTClassifier, token_positions
from torch_impl.dropout import dropout
from torch_impl.embedding import embedding
from torch_impl.feedforward import FeedForward, feedforward
from torch_impl.gelu import GELU, gelu
from torch_impl.generate import forward_cached
from torch_impl.gpt import GPTModel
from torch_impl.layernorm import LayerNorm, layernorm
from torch_impl.linear import linear
from torch_impl.loss import cross_entropy, perplexity
from torch_impl.lstm import LSTM, LSTMCell, lstm_cell
from torch_impl.softmax import softmax
from torch_impl.transformer import TransformerBlock

__all__ = [
    "CharRNN",
    "FeedForward",
    "GELU",
    "GPTClassifier",
    "GPTModel",
    "LSTM",
    "LSTMCell",
    "LayerNorm",
    "MultiHeadAttention",
    "TransformerBlock",
    "attention",
    "cross_entropy",
    "dropout",
    "embedding",
    "feedforward",
    "gelu",
    "forward_cached",
    "layernorm",
    "linear",
    "lstm_cell",
    "multihead_attention",
    "perplexity",
    "softmax",
    "token_positions",
]
