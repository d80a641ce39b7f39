"""PyTorch backend: the same ops from elementary tensor ops; autograd supplies the backward."""

from torch_impl.attention import MultiHeadAttention, attention, multihead_attention
from torch_impl.charrnn import CharRNN, charrnn
from torch_impl.classifier import GPTClassifier, Qwen3Classifier, token_positions
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
from torch_impl.gqa import grouped_query_attention
from torch_impl.gru import GRU, GRUCell, gru, gru_cell
from torch_impl.layernorm import LayerNorm, layernorm
from torch_impl.linear import linear
from torch_impl.loss import cross_entropy, perplexity
from torch_impl.lstm import LSTM, LSTMCell, lstm, lstm_cell
from torch_impl.optim import AdamW, clip_coef, clip_grad_norm
from torch_impl.qwen3 import Qwen3Model, qwen3_body
from torch_impl.qwen3_block import (
    Qwen3Attention,
    Qwen3DecoderLayer,
    qwen3_attention,
    qwen3_block,
    qwen3_qkv,
)
from torch_impl.recurrent import stack_layers
from torch_impl.rmsnorm import RMSNorm, rmsnorm
from torch_impl.rnn import RNN, RNNCell, rnn, rnn_cell
from torch_impl.rope import rope, rope_angles
from torch_impl.silu import silu
from torch_impl.softmax import softmax
from torch_impl.swiglu import SwiGLU, swiglu
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
    "clip_coef",
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
    "stack_layers",
    "rnn_cell",
    "softmax",
    "token_positions",
    "transformer_block",
    "Qwen3Attention",
    "Qwen3DecoderLayer",
    "Qwen3Classifier",
    "Qwen3Model",
    "RMSNorm",
    "SwiGLU",
    "grouped_query_attention",
    "qwen3_attention",
    "qwen3_block",
    "qwen3_body",
    "qwen3_qkv",
    "rmsnorm",
    "rope",
    "rope_angles",
    "silu",
    "swiglu",
]
