"""Pretrained weights: GPT-2 (Hugging Face safetensors, the book's .pth), as NumPy arrays."""

from twinlm.weights.gpt2 import GPT2_HEADS_BY_WIDTH, load_gpt2

__all__ = ["GPT2_HEADS_BY_WIDTH", "load_gpt2"]
