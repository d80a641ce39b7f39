"""NumPy backend: every op a forward/backward pair with hand-derived gradients.

The ops here are the reference: plain vectorised NumPy written for a reader. numpy_impl/fast/ has
the same ops tuned for speed; a model or optimizer picks one set with `kernels` ("reference", the
default, or "fast"), through `kernel_ops`.
"""

import sys
from types import ModuleType

from numpy_impl.attention import (
    attention_backward,
    attention_forward,
    multihead_attention_backward,
    multihead_attention_forward,
)
from numpy_impl.charrnn import CharRNN, charrnn_backward, charrnn_forward
from numpy_impl.classifier import GPTClassifier, Qwen3Classifier, token_positions
from numpy_impl.dropout import (
    dropout_backward,
    dropout_forward,
    maybe_dropout_backward,
    maybe_dropout_forward,
)
from numpy_impl.embedding import embedding_backward, embedding_forward
from numpy_impl.feedforward import feedforward_backward, feedforward_forward
from numpy_impl.gelu import gelu_backward, gelu_forward
from numpy_impl.generate import forward_cached
from numpy_impl.gpt import GPTModel, gpt_body_backward, gpt_body_forward
from numpy_impl.gqa import grouped_query_attention_backward, grouped_query_attention_forward
from numpy_impl.gru import GRU, gru_backward, gru_cell_backward, gru_cell_forward, gru_forward
from numpy_impl.layernorm import layernorm_backward, layernorm_forward
from numpy_impl.linear import linear_backward, linear_forward
from numpy_impl.loss import cross_entropy_backward, cross_entropy_forward, perplexity
from numpy_impl.lstm import LSTM, lstm_backward, lstm_cell_backward, lstm_cell_forward, lstm_forward
from numpy_impl.optim import AdamW, clip_coef, clip_grad_norm
from numpy_impl.qwen3 import Qwen3Model, qwen3_body_backward, qwen3_body_forward
from numpy_impl.qwen3_block import (
    qwen3_attention_backward,
    qwen3_attention_forward,
    qwen3_block_backward,
    qwen3_block_forward,
    qwen3_qkv_backward,
    qwen3_qkv_forward,
)
from numpy_impl.recurrent import stack_layers_backward, stack_layers_forward
from numpy_impl.rmsnorm import rmsnorm_backward, rmsnorm_forward
from numpy_impl.rnn import RNN, rnn_backward, rnn_cell_backward, rnn_cell_forward, rnn_forward
from numpy_impl.rope import rope_angles, rope_backward, rope_forward
from numpy_impl.silu import silu_backward, silu_forward
from numpy_impl.softmax import softmax_backward, softmax_forward
from numpy_impl.swiglu import swiglu_backward, swiglu_forward
from numpy_impl.transformer import transformer_block_backward, transformer_block_forward
from twinlm.shared.naming import KERNELS
from twinlm.shared.validate import require_choice


def kernel_ops(kernels: str) -> ModuleType:
    """The op set `kernels` names: this package, the reference ops ("reference"), or
    numpy_impl.fast, the same names and signatures tuned for speed ("fast"). Anything else: a
    ValueError naming `kernels`."""
    require_choice("kernels", kernels, KERNELS)
    if kernels == "fast":
        from numpy_impl import fast

        return fast
    return sys.modules[__name__]


__all__ = [
    "KERNELS",
    "kernel_ops",
    "AdamW",
    "CharRNN",
    "GPTClassifier",
    "GPTModel",
    "GRU",
    "LSTM",
    "RNN",
    "attention_backward",
    "attention_forward",
    "charrnn_backward",
    "clip_coef",
    "charrnn_forward",
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
    "gpt_body_backward",
    "gpt_body_forward",
    "gru_backward",
    "gru_cell_backward",
    "gru_cell_forward",
    "gru_forward",
    "layernorm_backward",
    "layernorm_forward",
    "linear_backward",
    "linear_forward",
    "lstm_backward",
    "lstm_cell_backward",
    "lstm_cell_forward",
    "lstm_forward",
    "maybe_dropout_backward",
    "maybe_dropout_forward",
    "multihead_attention_backward",
    "multihead_attention_forward",
    "perplexity",
    "rnn_backward",
    "rnn_cell_backward",
    "rnn_cell_forward",
    "rnn_forward",
    "stack_layers_backward",
    "stack_layers_forward",
    "softmax_backward",
    "softmax_forward",
    "token_positions",
    "transformer_block_backward",
    "transformer_block_forward",
    "Qwen3Classifier",
    "Qwen3Model",
    "grouped_query_attention_backward",
    "grouped_query_attention_forward",
    "qwen3_attention_backward",
    "qwen3_attention_forward",
    "qwen3_block_backward",
    "qwen3_block_forward",
    "qwen3_body_backward",
    "qwen3_body_forward",
    "qwen3_qkv_backward",
    "qwen3_qkv_forward",
    "rmsnorm_backward",
    "rmsnorm_forward",
    "rope_angles",
    "rope_backward",
    "rope_forward",
    "silu_backward",
    "silu_forward",
    "swiglu_backward",
    "swiglu_forward",
]
