"""GPT-2 (or Qwen3) as a spam classifier (the book's chapter 6): options and parameters both backends
share.

Decapitation. The pretrained GPT predicts the next token with out_head (V, C); a classifier needs
one score per class, so out_head is replaced by a new Linear(emb_dim, num_classes) with a bias, as
the book's `model.out_head = torch.nn.Linear(in_features=emb_dim, out_features=2)`:
    h      = GPT body(idx)[b, pos_b]          (B, C)   hidden state at the classified position
    logits = final_norm(h) W_headᵀ + b_head   (B, K)   K = num_classes
    loss   = cross_entropy(logits, labels)    ()       mean over the batch; prediction = argmax
The position pos_b is the last token (the book: under causal attention only the last token has
seen the whole text) or the last non-pad token (with right padding, the book's last token is a pad
token for every text shorter than the longest one). LayerNorm and the head act on each position on
its own, so applying them to the chosen position only gives the book's logits[:, -1, :] exactly.

What trains ("trainable"):
    "head"        out_head only
    "last-block"  the last transformer block, final_norm and out_head (the book's choice)
    "last-k"      the last k blocks, final_norm and out_head
    "all"         everything, embeddings included
The NumPy backward stops at the first trainable block; torch marks the rest requires_grad=False.

Qwen3 (the blog series' Qwen3-0.6B-Base recipe) is decapitated the same way: lm_head (V, C), or the
tied embedding's use as the head, gives way to a new lm_head.weight (K, C) and lm_head.bias (K,);
the body is the Qwen3 layers, final_norm is model.norm (an RMSNorm), the blocks are
model.layers.{i}, and texts are padded with the tokenizer's pad id (Qwen3's <|endoftext|>,
151643) instead of GPT-2's 50256. Every function here takes either config
(twinlm.shared.naming.lm_names says where each piece lives).

This module holds what numpy_impl/classifier.py and torch_impl/classifier.py both import: the
option checks, the classifier's parameter names and shapes, which of them train, and the new
head's seeded init (decapitate). It imports neither backend nor torch; the training loop,
evaluation and CLI work are in twinlm/training/classify.py.
"""

from __future__ import annotations

import math

import numpy as np

from twinlm.shared.config import validate_lm_config
from twinlm.shared.naming import lm_names
from twinlm.shared.validate import require_choice, require_exact_keys, require_int

PAD_ID = 50256  # GPT-2's <|endoftext|> (twinlm.data.tokenizer.EOT_ID), which the book pads with
QWEN3_PAD_ID = 151643  # Qwen3's <|endoftext|>, its tokenizer's pad_token
TRAINABLE_OPTIONS = ("last-block", "last-k", "head", "all")
POSITION_OPTIONS = ("last", "last-non-pad")

# ---------------------------------------------------------------------------------------------
# Options and parameters, shared by numpy_impl/classifier.py and torch_impl/classifier.py


def check_classifier_options(
    cfg: dict, num_classes: int, trainable: str, k: int | None, position: str, pad_id: int
) -> int:
    """Validate the classifier's options; returns the index of the first trainable block
    (n_layers when no block trains, 0 for "all")."""
    validate_lm_config(cfg)
    require_int("num_classes", num_classes)
    if num_classes < 2:
        raise ValueError(
            f"num_classes must be >= 2 (a classifier needs two classes), got {num_classes}"
        )
    require_choice("trainable", trainable, TRAINABLE_OPTIONS)
    require_choice("position", position, POSITION_OPTIONS)
    require_int("pad_id", pad_id)
    if not 0 <= pad_id < cfg["vocab_size"]:
        raise ValueError(
            f"pad_id must be a token id in [0, vocab_size={cfg['vocab_size']}), got {pad_id}"
        )
    n_layers = cfg["n_layers"]
    if trainable != "last-k":
        if k is not None:
            raise ValueError(
                f"k is only used with trainable='last-k', got k={k!r} with {trainable!r}"
            )
        return {"head": n_layers, "last-block": n_layers - 1, "all": 0}[trainable]
    if k is None:
        raise ValueError(f"k must be given with trainable='last-k' (1 to n_layers={n_layers})")
    require_int("k", k)
    if not 1 <= k <= n_layers:
        raise ValueError(f"k must be in [1, n_layers={n_layers}], got {k}")
    return n_layers - k


def classifier_param_shapes(cfg: dict, num_classes: int) -> dict[str, tuple[int, ...]]:
    """The language model's parameters with its head (GPT: out_head (V, C); Qwen3: lm_head, absent
    when tied) replaced by <head>.weight (K, C) and <head>.bias (K,)."""
    names = lm_names(cfg)
    shapes = {k: s for k, s in names.param_shapes(cfg).items() if not k.startswith(names.head)}
    shapes[names.head + "weight"] = (num_classes, cfg["emb_dim"])
    shapes[names.head + "bias"] = (num_classes,)
    return shapes


def trainable_keys(cfg: dict, num_classes: int, trainable: str, k: int | None = None) -> list[str]:
    """The names of the parameters that train, in state_dict order."""
    first = check_classifier_options(cfg, num_classes, trainable, k, "last", 0)
    names = lm_names(cfg)
    keys = list(classifier_param_shapes(cfg, num_classes))
    if trainable == "all":
        return keys
    if trainable == "head":
        return [n for n in keys if n.startswith(names.head)]
    blocks = tuple(names.block(i) for i in range(first, cfg["n_layers"]))
    return [n for n in keys if n.startswith((*blocks, names.final_norm, names.head))]


def init_head_params(cfg: dict, num_classes: int, seed: int = 0, dtype=np.float32) -> dict:
    """The new head, drawn like torch.nn.Linear's default init (the book's new head gets it):
    weight and bias uniform in ±1/√emb_dim. Its own stream of the seed, apart from the body's."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    C, head = cfg["emb_dim"], lm_names(cfg).head
    rng = np.random.default_rng([seed, 6])  # 6: chapter 6; any value apart from the body's seed
    bound = 1.0 / math.sqrt(C)
    weight = rng.uniform(-bound, bound, (num_classes, C))  # (K, C)
    bias = rng.uniform(-bound, bound, (num_classes,))  # (K,)
    return {head + "weight": weight.astype(dtype), head + "bias": bias.astype(dtype)}


def decapitate(
    gpt_params: dict, cfg: dict, num_classes: int, seed: int = 0, dtype=np.float32
) -> dict[str, np.ndarray]:
    """Copies of a language model's parameters (NumPy arrays, its own keys; its head, out_head.* or
    lm_head.*, is dropped) plus a new seeded head: the classifier's parameters, in `dtype`."""
    shapes = classifier_param_shapes(cfg, num_classes)
    head = lm_names(cfg).head
    body = {k: v for k, v in gpt_params.items() if not k.startswith(head)}
    body = {k: v for k, v in body.items() if not k.endswith(".att.mask")}  # book buffers
    body_keys = [k for k in shapes if not k.startswith(head)]
    require_exact_keys("gpt_params", body, body_keys, " cfg")
    params = {}
    for name, value in body.items():
        value = np.array(value, dtype=dtype)  # a copy: training must not move the caller's arrays
        if value.shape != shapes[name]:
            raise ValueError(
                f"gpt_params[{name!r}] must have shape {shapes[name]}, got {value.shape}"
            )
        params[name] = value
    params |= init_head_params(cfg, num_classes, seed, dtype)
    return {k: params[k] for k in shapes}
