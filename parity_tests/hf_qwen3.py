"""Hugging Face's Qwen3 as a test oracle: tiny random Qwen3ForCausalLM models built by transformers
(a dev dependency, CPU only, like torch's built-ins), saved as checkpoint folders, and a byte-level
BPE tokenizer trained by `tokenizers`. Nothing here touches the internet or the code under test.

float64. transformers computes RMSNorm (`hidden_states.to(torch.float32)`) and the RoPE angles
(`inv_freq`, `position_ids.float()`) in float32 whatever the model's dtype, so its float64 model
is only float32-accurate (~3e-7 from exact logits). `float64_internals()` swaps in those two pieces
computed in the model's dtype — F.rms_norm and the same angle formula in float64 — and leaves
everything else (the module tree, QK-norm's place, rotate_half, repeat_kv/SDPA with GQA, the tied
head) as transformers wrote it; that model is the float64 reference.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")
from transformers import Qwen3Config, Qwen3ForCausalLM  # noqa: E402
from transformers.models.qwen3 import modeling_qwen3  # noqa: E402


def hf_config(cfg: dict, **extra) -> Qwen3Config:
    """transformers' Qwen3Config for a twinlm Qwen3 config (sdpa attention, float64-capable)."""
    return Qwen3Config(
        vocab_size=cfg["vocab_size"],
        hidden_size=cfg["emb_dim"],
        intermediate_size=cfg["hidden_dim"],
        num_hidden_layers=cfg["n_layers"],
        num_attention_heads=cfg["n_heads"],
        num_key_value_heads=cfg["n_kv_heads"],
        head_dim=cfg["head_dim"],
        max_position_embeddings=cfg["context_length"],
        rope_theta=cfg["rope_base"],
        rms_norm_eps=cfg["rms_norm_eps"],
        tie_word_embeddings=cfg["tie_embeddings"],
        attention_bias=cfg["attention_bias"],
        attn_implementation="sdpa",
        **extra,
    )


def hf_model(cfg: dict, seed: int = 0, dtype=torch.float64, **extra) -> Qwen3ForCausalLM:
    """A Qwen3ForCausalLM in eval mode with non-trivial weights: every matrix N(0, 0.5²)-ish (large
    enough that every layer is far from linear), norm weights 1 + 0.3 N, biases N(0, 0.3²)."""
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(hf_config(cfg, **extra)).to(dtype).eval()
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                value = 1.0 + 0.3 * rng.standard_normal(p.shape)
            elif name.endswith(".bias"):
                value = 0.3 * rng.standard_normal(p.shape)
            else:
                value = rng.standard_normal(p.shape) / np.sqrt(p.shape[-1]) * 2.0
            p.copy_(torch.from_numpy(value))
    return model


def hf_params(model: Qwen3ForCausalLM) -> dict[str, np.ndarray]:
    """Its parameters by Hugging Face key, as NumPy (named_parameters: a tied head listed once)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in model.named_parameters()}


def _rms_norm(self, hidden_states):
    return F.rms_norm(hidden_states, hidden_states.shape[-1:], self.weight, self.variance_epsilon)


def _rotary(self, x, position_ids):
    rope = getattr(self.config, "rope_parameters", None) or {}  # transformers ≥ 5; < 5: top level
    theta = rope.get("rope_theta", getattr(self.config, "rope_theta", None))
    dim = 2 * self.inv_freq.shape[0]
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    freqs = position_ids[..., None].to(torch.float64) * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


@contextlib.contextmanager
def float64_internals():
    """transformers' Qwen3 with RMSNorm and the RoPE angles in the model's dtype (module doc)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(modeling_qwen3.Qwen3RMSNorm, "forward", _rms_norm)
        patch.setattr(modeling_qwen3.Qwen3RotaryEmbedding, "forward", _rotary)
        yield


def old_style_config(folder: Path) -> None:
    """Rewrite a saved config.json the way transformers < 5 wrote it: rope_theta at the top level
    with rope_scaling null, torch_dtype instead of dtype, no layer_types."""
    path = folder / "config.json"
    config = json.loads(path.read_text())
    rope = config.pop("rope_parameters", None) or {}
    config["rope_theta"] = rope.get("rope_theta", config.get("rope_theta"))
    config["rope_scaling"] = None
    if "dtype" in config:
        config["torch_dtype"] = config.pop("dtype")
    config.pop("layer_types", None)
    path.write_text(json.dumps(config, indent=2))


def write_tokenizer(folder: Path, vocab_size: int) -> None:
    """A byte-level BPE tokenizer.json trained here on a few sentences (≤ vocab_size ids, the
    256 byte tokens included), with <|endoftext|> as its pad and eos token, as Qwen3 has."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = ["Every effort moves you forward.", "Win a free prize now! Call today.",
              "See you at the station at noon.", "Hello, I am a language model."] * 20  # fmt: skip
    tok.train_from_iterator(corpus, trainer)
    tok.save(str(folder / "tokenizer.json"))
    special = {"pad_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}
    (folder / "tokenizer_config.json").write_text(json.dumps(special))
