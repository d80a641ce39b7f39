"""NumPy backend: every op a forward/backward pair with hand-derived gradients."""

from numpy_impl.linear import linear_backward, linear_forward
from numpy_impl.softmax import softmax_backward, softmax_forward

__all__ = [
    "linear_backward",
    "linear_forward",
    "softmax_backward",
    "softmax_forward",
]
