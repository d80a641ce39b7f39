"""PyTorch backend: the same ops from elementary tensor ops; autograd supplies the backward."""

from torch_impl.linear import linear
from torch_impl.softmax import softmax

__all__ = [
    "linear",
    "softmax",
]
