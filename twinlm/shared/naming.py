"""Names both backends agree on: parameter keys and shapes (torch state_dict keys), dropout-mask
names and shapes, and the helpers that move between a model's flat dict and a block's view of it.

Parameters. GPT-2 uses the book's keys (`trf_blocks.{i}.att.W_query.weight`, …), Qwen3 Hugging
Face's (`model.layers.{i}.self_attn.q_proj.weight`, …), the LSTM, GRU and vanilla RNN
torch.nn.LSTM / GRU / RNN's (`weight_ih_l{k}`, …), the char-RNN its module tree's
(`embedding.weight`, `lstm.weight_ih_l0` — `gru.` / `rnn.` for the other cells —,
`decoder.weight`, …). Each `*_param_shapes` lists them in state_dict order.

Dropout masks are named by where they act, so NumPy can draw them and torch replay them:
    GPT      drop_emb (B, T, C); per block i, under `trf_blocks.{i}.`: att.dropout (B, H, T, T),
             drop_shortcut.att (B, T, C), drop_shortcut.ff (B, T, C)
    char-RNN {core}.dropout.{k} (B, T, H) after recurrent layer k < L-1 (core: lstm, gru or rnn);
             dropout (B, T, H) before the decoder
"""

from __future__ import annotations

from twinlm.shared.config import is_qwen3_config

BACKENDS = ("numpy", "torch")
DTYPES = ("float32", "float64")
KERNELS = ("reference", "fast")  # numpy_impl's op sets: the plain math, or numpy_impl/fast

QKV_PROJECTIONS = ("W_query", "W_key", "W_value")  # MultiHeadAttention's input projections
BLOCK_DROPOUT_NAMES = ("att.dropout", "drop_shortcut.att", "drop_shortcut.ff")


def sub_dict(d: dict, prefix: str) -> dict:
    """The entries of `d` under `prefix`, with the prefix removed."""
    return {k[len(prefix) :]: v for k, v in d.items() if k.startswith(prefix)}


def with_prefix(d: dict, prefix: str) -> dict:
    """The entries of `d` with `prefix` put in front of every key."""
    return {prefix + k: v for k, v in d.items()}


# ---- GPT-2 -------------------------------------------------------------------------------------


def gpt_param_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """Every parameter's name and shape, in the order of the book's state_dict."""
    V, T, C = cfg["vocab_size"], cfg["context_length"], cfg["emb_dim"]
    shapes: dict[str, tuple[int, ...]] = {"tok_emb.weight": (V, C), "pos_emb.weight": (T, C)}
    for i in range(cfg["n_layers"]):
        b = f"trf_blocks.{i}."
        for proj in QKV_PROJECTIONS:
            shapes[f"{b}att.{proj}.weight"] = (C, C)
            if cfg["qkv_bias"]:
                shapes[f"{b}att.{proj}.bias"] = (C,)
        shapes[f"{b}att.out_proj.weight"] = (C, C)
        shapes[f"{b}att.out_proj.bias"] = (C,)
        shapes[f"{b}ff.layers.0.weight"] = (4 * C, C)
        shapes[f"{b}ff.layers.0.bias"] = (4 * C,)
        shapes[f"{b}ff.layers.2.weight"] = (C, 4 * C)
        shapes[f"{b}ff.layers.2.bias"] = (C,)
        for norm in ("norm1", "norm2"):
            shapes[f"{b}{norm}.scale"] = (C,)
            shapes[f"{b}{norm}.shift"] = (C,)
    shapes["final_norm.scale"] = (C,)
    shapes["final_norm.shift"] = (C,)
    shapes["out_head.weight"] = (V, C)
    return shapes


def block_dropout_mask_shapes(cfg: dict, batch: int, seq: int) -> dict[str, tuple[int, ...]]:
    """The dropout masks of one transformer block (BLOCK_DROPOUT_NAMES), in the order they act."""
    C, H = cfg["emb_dim"], cfg["n_heads"]
    return {
        "att.dropout": (batch, H, seq, seq),
        "drop_shortcut.att": (batch, seq, C),
        "drop_shortcut.ff": (batch, seq, C),
    }


def gpt_dropout_mask_shapes(cfg: dict, batch: int, seq: int) -> dict[str, tuple[int, ...]]:
    """Every dropout mask of one GPT forward pass, by name, in the order the book's modules run."""
    shapes = {"drop_emb": (batch, seq, cfg["emb_dim"])}
    for i in range(cfg["n_layers"]):
        shapes |= with_prefix(block_dropout_mask_shapes(cfg, batch, seq), f"trf_blocks.{i}.")
    return shapes


# ---- recurrent layers (LSTM, GRU, vanilla RNN) and the char-RNN --------------------------------

# The char-RNN's cells, cfg["cell"] (absent in configs written before the others: "lstm").
CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")
# Rows of weight_ih per hidden unit: the gates stacked in torch's order (LSTM i, f, g, o; GRU r, z,
# n; the vanilla RNN has one pre-activation).
CELL_GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
# The state each cell carries from one step (and one batch) to the next.
CELL_STATE = {"lstm": ("h", "c"), "gru": ("h",), "rnn_tanh": ("h",), "rnn_relu": ("h",)}


def recurrent_param_shapes(
    gates: int, input_size: int, hidden_size: int, num_layers: int
) -> dict[str, tuple]:
    """torch.nn.LSTM / GRU / RNN's state_dict keys and shapes, in their order: per layer k
    weight_ih_l{k} (gates·H, in), weight_hh_l{k} (gates·H, H), bias_ih_l{k}, bias_hh_l{k}
    (gates·H,); layer 0 reads the input, layer k > 0 the hidden state below."""
    shapes = {}
    for k in range(num_layers):
        layer_in = input_size if k == 0 else hidden_size
        shapes[f"weight_ih_l{k}"] = (gates * hidden_size, layer_in)
        shapes[f"weight_hh_l{k}"] = (gates * hidden_size, hidden_size)
        shapes[f"bias_ih_l{k}"] = (gates * hidden_size,)
        shapes[f"bias_hh_l{k}"] = (gates * hidden_size,)
    return shapes


def lstm_param_shapes(input_size: int, hidden_size: int, num_layers: int) -> dict[str, tuple]:
    """torch.nn.LSTM's state_dict keys and shapes, in its order (gates i, f, g, o)."""
    return recurrent_param_shapes(4, input_size, hidden_size, num_layers)


def gru_param_shapes(input_size: int, hidden_size: int, num_layers: int) -> dict[str, tuple]:
    """torch.nn.GRU's state_dict keys and shapes, in its order (gates r, z, n)."""
    return recurrent_param_shapes(3, input_size, hidden_size, num_layers)


def rnn_param_shapes(input_size: int, hidden_size: int, num_layers: int) -> dict[str, tuple]:
    """torch.nn.RNN's state_dict keys and shapes, in its order (tanh and relu alike)."""
    return recurrent_param_shapes(1, input_size, hidden_size, num_layers)


def charrnn_cell(cfg: dict) -> str:
    """The char-RNN's cell (CELLS); configs and checkpoints from before the choice are LSTMs."""
    return cfg.get("cell", "lstm")


def charrnn_core(cfg: dict) -> str:
    """The recurrent submodule's name, and so its keys' prefix: "lstm", "gru" or "rnn" (both
    vanilla cells, like torch.nn.RNN with either nonlinearity)."""
    return charrnn_cell(cfg).split("_")[0]


def charrnn_param_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """Every char-RNN parameter's name and shape, in the order of the torch module's state_dict."""
    V, D, H, L = cfg["vocab_size"], cfg["emb_dim"], cfg["hidden_size"], cfg["num_layers"]
    gates = CELL_GATES[charrnn_cell(cfg)]
    shapes: dict[str, tuple[int, ...]] = {"embedding.weight": (V, D)}
    shapes |= with_prefix(recurrent_param_shapes(gates, D, H, L), charrnn_core(cfg) + ".")
    shapes["decoder.weight"] = (V, H)
    shapes["decoder.bias"] = (V,)
    return shapes


def charrnn_dropout_mask_shapes(cfg: dict, batch: int, seq: int) -> dict[str, tuple[int, ...]]:
    """Every dropout mask of one char-RNN forward pass, by name, in the order they act."""
    shape, core = (batch, seq, cfg["hidden_size"]), charrnn_core(cfg)
    shapes = {f"{core}.dropout.{k}": shape for k in range(cfg["num_layers"] - 1)}
    shapes["dropout"] = shape
    return shapes


# ---- Qwen3 (Hugging Face's state_dict keys) ----------------------------------------------------

QWEN3_ATTENTION_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
QWEN3_MLP_PROJECTIONS = ("gate_proj", "up_proj", "down_proj")


def qwen3_block_param_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """One decoder layer's parameters relative to `model.layers.{i}.`, in Hugging Face's order."""
    C, F, hd = cfg["emb_dim"], cfg["hidden_dim"], cfg["head_dim"]
    q_out, kv_out = cfg["n_heads"] * hd, cfg["n_kv_heads"] * hd
    outs = {"q_proj": q_out, "k_proj": kv_out, "v_proj": kv_out}
    shapes: dict[str, tuple[int, ...]] = {}
    for proj, out in outs.items():
        shapes[f"self_attn.{proj}.weight"] = (out, C)
        if cfg["attention_bias"]:
            shapes[f"self_attn.{proj}.bias"] = (out,)
    shapes["self_attn.o_proj.weight"] = (C, q_out)
    if cfg["attention_bias"]:
        shapes["self_attn.o_proj.bias"] = (C,)
    shapes["self_attn.q_norm.weight"] = (hd,)
    shapes["self_attn.k_norm.weight"] = (hd,)
    shapes["mlp.gate_proj.weight"] = (F, C)
    shapes["mlp.up_proj.weight"] = (F, C)
    shapes["mlp.down_proj.weight"] = (C, F)
    shapes["input_layernorm.weight"] = (C,)
    shapes["post_attention_layernorm.weight"] = (C,)
    return shapes


def qwen3_param_shapes(cfg: dict) -> dict[str, tuple[int, ...]]:
    """Every Qwen3ForCausalLM parameter's key and shape, in Hugging Face's state_dict order;
    `lm_head.weight` only when the head is not tied to the embedding."""
    V, C = cfg["vocab_size"], cfg["emb_dim"]
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (V, C)}
    block = qwen3_block_param_shapes(cfg)
    for i in range(cfg["n_layers"]):
        shapes |= with_prefix(block, f"model.layers.{i}.")
    shapes["model.norm.weight"] = (C,)
    if not cfg["tie_embeddings"]:
        shapes["lm_head.weight"] = (V, C)
    return shapes


# ---- either language model ---------------------------------------------------------------------


class LMNames:
    """Where a GPT and a Qwen3 keep the same things, for code that handles both (the classifier):
    block i's prefix, the final norm's prefix, the output head's prefix, every parameter's shape."""

    def __init__(self, qwen3: bool):
        self.qwen3 = qwen3
        self.final_norm = "model.norm." if qwen3 else "final_norm."
        self.head = "lm_head." if qwen3 else "out_head."

    def block(self, i: int) -> str:
        return f"model.layers.{i}." if self.qwen3 else f"trf_blocks.{i}."

    def param_shapes(self, cfg: dict) -> dict[str, tuple[int, ...]]:
        return qwen3_param_shapes(cfg) if self.qwen3 else gpt_param_shapes(cfg)


def lm_names(cfg: dict) -> LMNames:
    """The names of cfg's architecture (a Qwen3 config has n_kv_heads)."""
    return LMNames(is_qwen3_config(cfg))
