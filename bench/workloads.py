"""What the benchmarks time: the size sweep, one entry per op, and honest FLOP counts.

Every op benchmark reuses the op's registered `OpCase` (twinlm/parity/opcases.py) for its inputs and its
NumPy / torch_impl functions; an entry here only says how the sweep's sizes map onto the case's
`dims`, what the inputs look like, and how many FLOPs one call does. Adding an op is one `OpBench`
line in `OPS` (and its case must be registered, which the parity tests need anyway).

Sizes. The sweep is over T (sequence length) and C (width, the embedding size), at batch B = 4 and
64-dimensional heads like GPT-2 (C = 768 → 12 heads). Ops without a sequence axis say in `shape`
how they use T (the LSTM cell takes T rows; cross entropy has C classes).

FLOP counts. One FLOP per scalar add, multiply, divide, max, exp, log or tanh that the op's math
needs (the formulas in each op's module docstring), and 2·m·k·n for a (m, k) @ (k, n) matmul. They
count the math, not an implementation's temporaries, so both backends are charged the same.
Elementwise ops and reductions are memory-bound: their GFLOP/s sits far below the matmul peak and
only compares the backends with each other. Causal attention is counted with the full T×T score
matrix, as torch_impl computes it; NumPy skips the blocks of keys a block of queries cannot see
(numpy_impl/fast/attention.py) and SDPA skips them too, so their rates count work they avoid, as the
"model FLOPs" of a training step usually do.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

BATCH = 4
HEAD_DIM = 64
VOCAB = 50257  # GPT-2's: the embedding table and the model benchmarks' output head

# (T, C) pairs. Quick: T sweep at C = 256 and one wider point; full: two T sweeps and a C sweep.
QUICK_SIZES: tuple[tuple[int, int], ...] = ((64, 256), (256, 256), (1024, 256), (256, 768))
FULL_SIZES: tuple[tuple[int, int], ...] = (
    *((T, C) for C in (256, 768) for T in (64, 128, 256, 512, 1024)),
    (256, 512),
    (256, 1024),
)

# The GPT training step at batch 2 (the output head over the 50257-token vocabulary dominates).
GPT_BATCH = 2
GPT_LAYERS = 2
QUICK_GPT_SIZES: tuple[tuple[int, int], ...] = ((64, 256), (128, 256))
FULL_GPT_SIZES: tuple[tuple[int, int], ...] = ((64, 256), (128, 256), (256, 256), (512, 256),
                                               (256, 512), (256, 768))  # fmt: skip

# The LSTM layer and the transformer block: a shorter quick sweep (the LSTM loops over time steps
# in Python in both backends; the block is the ops above put together).
LSTM_LAYERS = 2
QUICK_MODEL_SIZES: tuple[tuple[int, int], ...] = ((64, 256), (256, 256), (64, 768))
FULL_MODEL_SIZES = FULL_SIZES

# The recurrent layers against torch's own nn.RNN / GRU / LSTM: one size, char-rnn-like, float32,
# forward + backward (B, T, input = hidden, layers).
RECURRENT_SIZE = (32, 100, 256, 2)
RECURRENT_CELLS = ("rnn_tanh", "gru", "lstm")

# Generation (inference, float32): NEW_TOKENS greedy tokens after a T-token prompt, batch 1.
NEW_TOKENS = 32
QUICK_GEN_SIZES: tuple[tuple[int, int], ...] = ((64, 256),)
FULL_GEN_SIZES: tuple[tuple[int, int], ...] = ((64, 256), (256, 256), (64, 768))

MODES = ("fwd", "fwd+bwd")
DTYPES = ("float32", "float64")


def sizes(full: bool) -> tuple[tuple[int, int], ...]:
    return FULL_SIZES if full else QUICK_SIZES


def gpt_sizes(full: bool) -> tuple[tuple[int, int], ...]:
    return FULL_GPT_SIZES if full else QUICK_GPT_SIZES


def model_sizes(full: bool) -> tuple[tuple[int, int], ...]:
    return FULL_MODEL_SIZES if full else QUICK_MODEL_SIZES


def gen_sizes(full: bool) -> tuple[tuple[int, int], ...]:
    return FULL_GEN_SIZES if full else QUICK_GEN_SIZES


# Which sweep each size fixture of the suites takes (bench/conftest.py parametrizes them).
SIZE_FIXTURES = {
    "size": sizes,
    "gpt_size": gpt_sizes,
    "model_size": model_sizes,
    "gen_size": gen_sizes,
}


def gpt_config(T: int, C: int) -> dict:
    """The book's config dict for a GPT-2-vocabulary model of width C, context T, dropout off."""
    return {"vocab_size": VOCAB, "context_length": T, "emb_dim": C, "n_heads": max(1, C // HEAD_DIM),
            "n_layers": GPT_LAYERS, "drop_rate": 0.0, "qkv_bias": False}  # fmt: skip


Flops = tuple[int, int]  # (forward, backward); a fwd+bwd call costs the sum


# ---- FLOP counts per op (see the module docstring) -------------------------------------------------


def linear_flops(rows: int, d_in: int, d_out: int, bias: bool = True) -> Flops:
    """y = x Wᵀ + b: 2·rows·in·out (+ rows·out). Backward dx = dy W and dW = dyᵀ x (2·rows·in·out
    each) and db = Σ dy (rows·out)."""
    b = rows * d_out if bias else 0
    return 2 * rows * d_in * d_out + b, 4 * rows * d_in * d_out + b


def softmax_flops(rows: int, n: int) -> Flops:
    """Forward max, subtract, exp, sum, divide: 5n per row. Backward dy·s, Σ, subtract, ·s: 4n."""
    return 5 * rows * n, 4 * rows * n


def gelu_flops(n: int) -> Flops:
    """tanh form. Forward x·x·x, ·k, +x, ·c, tanh, 1+, ·x, ·½: 9 per element. Backward
    ½(1+t), 1-t², x², ·3k, 1+, ·c, ·½x, the products and the sum, ·dy: 13 per element."""
    return 9 * n, 13 * n


def layernorm_flops(rows: int, c: int) -> Flops:
    """Forward mean, x-μ, square, mean, ·rstd, ·scale, +shift: 7 per element. Backward g = dy·scale,
    dscale (dy·x̂ and Σ), dshift Σ, mean(g), g·x̂, mean, x̂·m2, two subtractions, ·rstd: 11."""
    return 7 * rows * c, 11 * rows * c


def attention_flops(batch_heads: int, t_q: int, t_k: int, d: int) -> Flops:
    """Forward S = q kᵀ (2·Tq·Tk·d), /√d (Tq·Tk), softmax (5·Tq·Tk), P v (2·Tq·Tk·d).
    Backward dv = Pᵀ dy, dP = dy vᵀ, dq = dS k, dk = dSᵀ q (2·Tq·Tk·d each), softmax backward
    (4·Tq·Tk), /√d (Tq·Tk). Per (batch, head)."""
    s = batch_heads * t_q * t_k
    return 4 * s * d + 6 * s, 8 * s * d + 5 * s


def multihead_attention_flops(batch: int, t: int, c: int, qkv_bias: bool = False) -> Flops:
    rows, heads = batch * t, c // HEAD_DIM
    qkv = linear_flops(rows, c, c, qkv_bias)
    att = attention_flops(batch * heads, t, t, HEAD_DIM)
    out = linear_flops(rows, c, c)
    dx_sum = 2 * rows * c  # dx collects the query, key and value branches: two adds
    return 3 * qkv[0] + att[0] + out[0], 3 * qkv[1] + att[1] + out[1] + dx_sum


def feedforward_flops(rows: int, c: int, hidden: int) -> Flops:
    up, act, down = (
        linear_flops(rows, c, hidden),
        gelu_flops(rows * hidden),
        linear_flops(rows, hidden, c),
    )
    return up[0] + act[0] + down[0], up[1] + act[1] + down[1]


def cross_entropy_flops(rows: int, vocab: int) -> Flops:
    """Forward max, subtract, exp, sum (4 per logit) and a log per row. Backward softmax = exp/Σ,
    minus the one-hot, times dloss/n: 3 per logit."""
    return 4 * rows * vocab + rows, 3 * rows * vocab


def lstm_cell_flops(batch: int, d_in: int, hidden: int) -> Flops:
    """Forward gates = x W_ihᵀ + h W_hhᵀ + b_ih + b_hh (2·4H·(I+H) + 3·4H per row), three sigmoids
    (4 each: negate, exp, 1+, divide) and a tanh on the gates, c' = f·c + i·g (3), tanh(c'),
    h' = o·tanh (1): 18 per hidden unit. Backward the four matmul gradients (4·4H·(I+H)), the two
    bias gradients (2·4H) and the gate derivatives (about 25 per hidden unit)."""
    g = 4 * hidden
    mm = 2 * g * (d_in + hidden)
    return batch * (mm + 3 * g + 18 * hidden), batch * (2 * mm + 2 * g + 25 * hidden)


def embedding_flops(n_ids: int, c: int) -> Flops:
    """Forward is a gather (no arithmetic). Backward adds each of the n upstream rows into dW."""
    return 0, n_ids * c


def transformer_block_flops(batch: int, t: int, c: int, qkv_bias: bool = False) -> Flops:
    """norm1, attention, shortcut add, norm2, feed-forward (hidden 4C), shortcut add. Backward: the
    ops' backwards plus the shortcut gradient sums (one add per element each)."""
    rows = batch * t
    parts = (
        layernorm_flops(rows, c),
        multihead_attention_flops(batch, t, c, qkv_bias),
        layernorm_flops(rows, c),
        feedforward_flops(rows, c, 4 * c),
    )
    return sum(p[0] for p in parts) + 2 * rows * c, sum(p[1] for p in parts) + 2 * rows * c


def gpt_flops(batch: int, t: int, cfg: dict) -> Flops:
    """Token + position embedding, the blocks, final norm, output head (no bias), cross entropy."""
    rows, c, v = batch * t, cfg["emb_dim"], cfg["vocab_size"]
    block = transformer_block_flops(batch, t, c, cfg["qkv_bias"])
    emb, norm = embedding_flops(rows, c), layernorm_flops(rows, c)
    head, loss = linear_flops(rows, c, v, bias=False), cross_entropy_flops(rows, v)
    fwd = emb[0] + rows * c + cfg["n_layers"] * block[0] + norm[0] + head[0] + loss[0]
    bwd = 2 * emb[1] + cfg["n_layers"] * block[1] + norm[1] + head[1] + loss[1]  # tok and pos
    return fwd, bwd


ADAMW_FLOPS_PER_PARAM = 14  # decay (2), m (3), v (4), √ (1), + eps (1), ÷ (1), update (2)


def lstm_layer_flops(batch: int, t: int, d_in: int, hidden: int, num_layers: int) -> Flops:
    """num_layers stacked cells run over T steps (the input projection for all steps at once does
    the same arithmetic as the per-step cell)."""
    fwd = bwd = 0
    for k in range(num_layers):
        f, b = lstm_cell_flops(batch * t, d_in if k == 0 else hidden, hidden)
        fwd, bwd = fwd + f, bwd + b
    return fwd, bwd


def recurrent_cell_flops(cell: str, rows: int, d_in: int, hidden: int) -> Flops:
    """One step of a vanilla RNN, GRU or LSTM cell on `rows` rows (the LSTM's count is
    lstm_cell_flops). Vanilla: the two matmuls (2·H·(I+H)), three adds and a tanh; backward the
    four matmul gradients, the two bias sums, 1 - h², the product and the sum (5 per unit). GRU:
    the matmuls (2·3H·(I+H)), bias and gate adds (9 per unit), two sigmoids (4 each), n (3), h'
    (3); backward the matmul gradients, two 3H bias sums and the gate derivatives (about 30 per
    unit)."""
    if cell == "lstm":
        return lstm_cell_flops(rows, d_in, hidden)
    g = 3 if cell == "gru" else 1
    mm = 2 * g * hidden * (d_in + hidden)
    if cell == "gru":
        return rows * (mm + 23 * hidden), rows * (2 * mm + 6 * hidden + 30 * hidden)
    return rows * (mm + 4 * hidden), rows * (2 * mm + 2 * hidden + 5 * hidden)


def recurrent_layer_flops(
    cell: str, batch: int, t: int, d_in: int, hidden: int, num_layers: int
) -> Flops:
    """num_layers stacked cells over T steps (lstm_layer_flops for any cell)."""
    fwd = bwd = 0
    for k in range(num_layers):
        f, b = recurrent_cell_flops(cell, batch * t, d_in if k == 0 else hidden, hidden)
        fwd, bwd = fwd + f, bwd + b
    return fwd, bwd


# ---- the op entries ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpBench:
    """One op in the sweep. `case` names its OpCase in twinlm.parity.opcases.CASES_BY_NAME; the callables
    take the sweep's (B, T, C): `dims` gives the case's dims, `flops` its (forward, backward) FLOP
    count, `shape` a short description of the inputs for the report."""

    name: str
    case: str
    dims: Callable[[int, int, int], dict[str, int]]
    flops: Callable[[int, int, int], Flops]
    shape: Callable[[int, int, int], str]


def _heads(c: int) -> int:
    return max(1, c // HEAD_DIM)


OPS: tuple[OpBench, ...] = (
    OpBench(
        "linear",
        "linear",
        lambda B, T, C: {"batch": B, "seq": T, "d_in": C, "d_out": C},
        lambda B, T, C: linear_flops(B * T, C, C),
        lambda B, T, C: f"x ({B}, {T}, {C}) · W ({C}, {C}) + b",
    ),
    OpBench(
        "softmax",
        "softmax",
        lambda B, T, C: {"batch": B, "rows": T, "n": C},
        lambda B, T, C: softmax_flops(B * T, C),
        lambda B, T, C: f"x ({B}, {T}, {C}), over the last axis",
    ),
    OpBench(
        "gelu",
        "gelu[tanh]",
        lambda B, T, C: {"batch": B, "seq": T, "d": 4 * C},
        lambda B, T, C: gelu_flops(B * T * 4 * C),
        lambda B, T, C: f"x ({B}, {T}, {4 * C}) (the FFN hidden), tanh form",
    ),
    OpBench(
        "layernorm",
        "layernorm",
        lambda B, T, C: {"batch": B, "seq": T, "emb": C},
        lambda B, T, C: layernorm_flops(B * T, C),
        lambda B, T, C: f"x ({B}, {T}, {C})",
    ),
    OpBench(
        "embedding",
        "embedding",
        lambda B, T, C: {"batch": B, "seq": T, "vocab": VOCAB, "emb": C},
        lambda B, T, C: embedding_flops(B * T, C),
        lambda B, T, C: f"ids ({B}, {T}) into W ({VOCAB}, {C})",
    ),
    OpBench(
        "attention",
        "attention",
        lambda B, T, C: {"batch": B, "heads": _heads(C), "seq": T, "past": 0, "head_dim": HEAD_DIM},
        lambda B, T, C: attention_flops(B * _heads(C), T, T, HEAD_DIM),
        lambda B, T, C: f"q, k, v ({B}, {_heads(C)}, {T}, {HEAD_DIM}), causal",
    ),
    OpBench(
        "multihead_attention",
        "multihead_attention",
        lambda B, T, C: {"batch": B, "seq": T, "d_in": C, "heads": _heads(C), "head_dim": HEAD_DIM},
        lambda B, T, C: multihead_attention_flops(B, T, C),
        lambda B, T, C: f"x ({B}, {T}, {C}), {_heads(C)} heads, no qkv bias",
    ),
    OpBench(
        "feedforward",
        "feedforward",
        lambda B, T, C: {"batch": B, "seq": T, "emb": C, "hidden": 4 * C},
        lambda B, T, C: feedforward_flops(B * T, C, 4 * C),
        lambda B, T, C: f"x ({B}, {T}, {C}), hidden {4 * C}",
    ),
    OpBench(
        "cross_entropy",
        "cross_entropy",
        lambda B, T, C: {"batch": B, "seq": T, "vocab": C},
        lambda B, T, C: cross_entropy_flops(B * T, C),
        lambda B, T, C: f"logits ({B}, {T}, {C}) (C classes)",
    ),
    OpBench(
        "lstm_cell",
        "lstm_cell",
        lambda B, T, C: {"batch": T, "d_in": C, "hidden": C},
        lambda B, T, C: lstm_cell_flops(T, C, C),
        lambda B, T, C: f"x ({T}, {C}) (T rows), h, c ({T}, {C})",
    ),
)
OPS_BY_NAME = {op.name: op for op in OPS}


# ---- the training-step race ------------------------------------------------------------------------

# GPT-2 124M (12 layers, width 768, 12 heads, V 50257, untied head, no qkv bias, dropout off) in
# float32, one full step: forward, cross entropy, backward, clip to norm 1.0, AdamW. Two shapes:
# name -> (B, T, context_length).
TRAIN_STEP_SHAPES: dict[str, tuple[int, int, int]] = {
    "124M": (4, 256, 1024),  # GPT-2's context, 1024 tokens per step
    "book": (2, 256, 256),  # the book's chapter-5 run: context 256, batch 2, 512 tokens per step
}
CLIP_FLOPS_PER_PARAM = 3  # the norm's square and add, the scaling multiply


def train_step_config(name: str) -> dict:
    from twinlm.shared.config import GPT_CONFIG_124M

    return {**GPT_CONFIG_124M, "context_length": TRAIN_STEP_SHAPES[name][2], "drop_rate": 0.0}


def train_step_flops(name: str) -> int:
    """gpt_flops (full T×T attention scores, whatever a contender skips) plus clip and AdamW."""
    from twinlm.shared.naming import gpt_param_shapes

    B, T, _ = TRAIN_STEP_SHAPES[name]
    cfg = train_step_config(name)
    fwd, bwd = gpt_flops(B, T, cfg)
    n_params = sum(math.prod(s) for s in gpt_param_shapes(cfg).values())
    return fwd + bwd + (ADAMW_FLOPS_PER_PARAM + CLIP_FLOPS_PER_PARAM) * n_params


# ---- Qwen3 ------------------------------------------------------------------------------------------

QWEN3_GROUPS = 2  # query heads per key/value head, as in Qwen3-0.6B (16 / 8)
QWEN3_HIDDEN_RATIO = 3  # SwiGLU hidden size / width, as in Qwen3-0.6B (3072 / 1024)
QWEN3_GEN_PROMPT, QWEN3_GEN_TOKENS = 16, 8  # generation at the qwen3-0.6b shape (float32)


def qwen3_block_config(C: int) -> dict:
    """The block benchmark's shape at width C: 64-dimensional heads, Qwen3-0.6B's grouping and
    hidden ratio (the other keys only satisfy the config check)."""
    heads = max(QWEN3_GROUPS, C // HEAD_DIM)
    return {"vocab_size": 2, "context_length": 1 << 20, "emb_dim": C, "n_heads": heads,
            "n_kv_heads": heads // QWEN3_GROUPS, "head_dim": HEAD_DIM, "n_layers": 1,
            "hidden_dim": QWEN3_HIDDEN_RATIO * C, "rope_base": 1e6, "rms_norm_eps": 1e-6,
            "tie_embeddings": True, "attention_bias": False}  # fmt: skip


def rmsnorm_flops(rows: int, c: int) -> Flops:
    """Forward x·x and Σ (2), ·r (1), ·w (1): 4 per element. Backward g = dy·w, g·x̂ and Σ, x̂·m,
    subtract, ·r, dw = Σ dy·x̂: 8 per element."""
    return 4 * rows * c, 8 * rows * c


def qwen3_block_flops(batch: int, t: int, cfg: dict) -> Flops:
    """input_layernorm, q/k/v projections, QK-norm, RoPE (2 multiplies and an add per element of
    q and k, both ways), grouped-query attention (the full T×T scores per query head), o_proj,
    shortcut, post_attention_layernorm, SwiGLU (gate, up, SiLU ~4 forward / 6 backward, the
    product, down), shortcut. Backward also sums the three projections' dx and the two branches'."""
    rows, C, F = batch * t, cfg["emb_dim"], cfg["hidden_dim"]
    hd, H, Hkv = cfg["head_dim"], cfg["n_heads"], cfg["n_kv_heads"]
    parts = (
        rmsnorm_flops(rows, C),
        linear_flops(rows, C, H * hd, bias=False),
        linear_flops(rows, C, Hkv * hd, bias=False),
        linear_flops(rows, C, Hkv * hd, bias=False),
        rmsnorm_flops(rows * (H + Hkv), hd),
        (3 * rows * (H + Hkv) * hd, 3 * rows * (H + Hkv) * hd),
        attention_flops(batch * H, t, t, hd),
        linear_flops(rows, H * hd, C, bias=False),
        rmsnorm_flops(rows, C),
        linear_flops(rows, C, F, bias=False),
        linear_flops(rows, C, F, bias=False),
        (5 * rows * F, 8 * rows * F),
        linear_flops(rows, F, C, bias=False),
    )
    adds = 2 * rows * C
    fwd = sum(p[0] for p in parts) + adds
    bwd = sum(p[1] for p in parts) + adds + 2 * rows * C + rows * C  # qkv dx and gate/up dx sums
    return fwd, bwd
