"""twinlm: GPT-2, Qwen3 and char-RNN (vanilla RNN, GRU, LSTM) written twice (NumPy with hand-derived
gradients, PyTorch from elementary ops)."""

__version__ = "0.1.0"
