"""The fast path: numpy_impl's ops with the same names, signatures and results (to rounding),
tuned for speed. numpy_impl/<op>.py is the reference, written for a reader; this package is how
the training engine runs it (`kernels="fast"`: numpy_impl.kernel_ops, GPTModel(cfg, kernels=…),
AdamW(params, kernels=…)). parity_tests/ops/test_fast_path.py holds every op here to its reference:
float64 within 1e-12 relative on outputs and every gradient, float32 by the float32 rule, on one
thread and on two with tiny blocks.

What it does differently, file by file:
    blocks.py       run a chain of elementwise passes on one block of rows at a time (the block
                    stays in cache), blocks shared out among threads (NumPy releases the GIL)
    layernorm.py    the reference's passes, block by block, each written into its output
    gelu.py         the derivative computed in the forward's pass, so the backward is one multiply;
                    block by block; in-place variants for the feed-forward's hidden layer
    loss.py         cross entropy block by block; in place over the logits (GPTModel)
    attention.py    query rows in blocks that skip the keys a causal block cannot see; softmax and
                    its backward in place, on threads; 1/√d folded into q
    feedforward.py  the in-place GELU over the hidden layer
    transformer.py  a block from the fast LayerNorm, attention and feed-forward
    gpt.py          the body from fast blocks; GPTModel.loss_and_grads: the whole training step
                    over a workspace kept across steps (its gradients valid until the next call)
    workspace.py    the arrays that step reuses, allocated once per (B, T) layout
    lstm.py, gru.py, rnn.py   one matmul for every step's input part, every factor of the BPTT
                    that does not depend on the incoming gradient computed before the loop, and
                    the weight gradients as three products over all steps (recurrent.py)
    charrnn.py      the char-RNN from the fast layers
    optim.py        AdamW's passes on blocks of every parameter at once, on threads
Composites whose logic is the reference's (multi-head attention, the feed-forward network, the
transformer block, the GPT body, the layers' stacking, the char-RNN) are the reference's code,
called with these ops (numpy_impl's `<name>_with` helpers). The ops the fast path leaves as they
are (linear, embedding, dropout, softmax, the cells, Qwen3's) are numpy_impl's own, re-exported
here so that this package is a complete op set.
"""

from numpy_impl.dropout import (
    dropout_backward,
    dropout_forward,
    maybe_dropout_backward,
    maybe_dropout_forward,
)
from numpy_impl.embedding import embedding_backward, embedding_forward
from numpy_impl.fast.attention import (
    attention_backward,
    attention_forward,
    multihead_attention_backward,
    multihead_attention_forward,
)
from numpy_impl.fast.charrnn import charrnn_backward, charrnn_forward
from numpy_impl.fast.feedforward import feedforward_backward, feedforward_forward
from numpy_impl.fast.gelu import gelu_backward, gelu_forward
from numpy_impl.fast.gpt import gpt_body_backward, gpt_body_forward
from numpy_impl.fast.gru import gru_backward, gru_forward
from numpy_impl.fast.layernorm import layernorm_backward, layernorm_forward
from numpy_impl.fast.loss import cross_entropy_backward, cross_entropy_forward
from numpy_impl.fast.lstm import lstm_backward, lstm_forward
from numpy_impl.fast.optim import adamw_step
from numpy_impl.fast.rnn import rnn_backward, rnn_forward
from numpy_impl.fast.transformer import transformer_block_backward, transformer_block_forward
from numpy_impl.gqa import grouped_query_attention_backward, grouped_query_attention_forward
from numpy_impl.gru import gru_cell_backward, gru_cell_forward
from numpy_impl.linear import linear_backward, linear_forward
from numpy_impl.lstm import lstm_cell_backward, lstm_cell_forward
from numpy_impl.qwen3 import qwen3_body_backward, qwen3_body_forward
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
from numpy_impl.rnn import rnn_cell_backward, rnn_cell_forward
from numpy_impl.rope import rope_backward, rope_forward
from numpy_impl.silu import silu_backward, silu_forward
from numpy_impl.softmax import softmax_backward, softmax_forward
from numpy_impl.swiglu import swiglu_backward, swiglu_forward

# The ops with a fast implementation of their own (the rest are numpy_impl's, re-exported).
FAST_OPS = (
    "attention",
    "charrnn",
    "cross_entropy",
    "feedforward",
    "gelu",
    "gpt_body",
    "gru",
    "layernorm",
    "lstm",
    "multihead_attention",
    "rnn",
    "transformer_block",
)

__all__ = [
    "FAST_OPS",
    "adamw_step",
    "attention_backward",
    "attention_forward",
    "charrnn_backward",
    "charrnn_forward",
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
    "gpt_body_backward",
    "gpt_body_forward",
    "grouped_query_attention_backward",
    "grouped_query_attention_forward",
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
    "rnn_backward",
    "rnn_cell_backward",
    "rnn_cell_forward",
    "rnn_forward",
    "rope_backward",
    "rope_forward",
    "silu_backward",
    "silu_forward",
    "softmax_backward",
    "softmax_forward",
    "stack_layers_backward",
    "stack_layers_forward",
    "swiglu_backward",
    "swiglu_forward",
    "transformer_block_backward",
    "transformer_block_forward",
]
