"""NumPy backend: every op a forward/backward pair with hand-derived gradients."""

from numpy_impl.attention import (
    attention_backward,
    attention_forward,
    multihead_attention_backward,
    multihead_attention_forward,
)
from numpy_impl.charrnn import CharRNN
from numpy_impl.classifier import GPTClassifier, token_positions
from numpy_impl.dropout import dropout_backward, dropout_forward
from numpy_impl.embedding import embedding_backward, embedding_forward
from numpy_impl.feedforward import feedforward_backward, feedforward_forward
from numpy_impl.gelu import gelu_backward, gelu_forward
from numpy_impl.generate import forward_cached
from numpy_impl.gpt import GPTModel
from numpy_impl.layernorm import layernorm_backward, layernorm_forward
from numpy_impl.linear import linear_backward, linear_forward
from numpy_impl.loss import cross_entropy_backward, cross_entropy_forward, perplexity
from numpy_impl.lstm import LSTM, lstm_cell_backward, lstm_cell_forward
from numpy_impl.optim import AdamW, clip_grad_norm
from numpy_impl.softmax import softmax_backward, softmax_forward
from numpy_impl.transformer import transformer_block_backward, transformer_block_forward

__all__ = [
    "AdamW",
    "CharRNN",
    "GPTClassifier",
    "GPTModel",
    "LSTM",
    "attention_backward",
    "attention_forward",
    "clip_grad_norm",
    "cross_entropy_backward",
    "cross_entropy_forward",
    "dropout_backward",
    "dropout_forward",
    "embedding_backward",
    "embedding_forward",
    "feedforward_backward",
    "feedforward_forward",
    "gelu_backward",
    "gelu_forward",
    "forward_cached",
    "layernorm_backward",
    "layernorm_forward",
    "linear_backward",
    "linear_forward",
    "lstm_cell_backward",
    "lstm_cell_forward",
    "multihead_attention_backward",
    "multihead_attention_forward",
    "perplexity",
    "softmax_backward",
    "softmax_forward",
    "token_positions",
    "transformer_block_backward",
    "transformer_block_forward",
]
