"""twinlm: GPT-2 and a char-RNN LSTM written twice (NumPy with hand-derived gradients, PyTorch)."""

__version__ = "0.1.0"
