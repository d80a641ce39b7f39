"""The vanilla RNN (tanh, relu) as a layer over time: NumPy (hand-written BPTT) vs torch_impl vs
torch.nn.RNN, beyond the registered cells and two-layer layers the op sweep runs
(twinlm/parity/recurrent_cases.py). The layer tests are recurrent_layers.py's, shared with the GRU
(test_gru.py); here they run for both nonlinearities, with the RNN's own bad options. The cell by
hand, against torch.nn.RNNCell: by_hand/test_ops_by_hand_recurrent.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from recurrent_layers import RecurrentLayerTests

import numpy_impl
import torch_impl

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu"])
class TestRNNLayer(RecurrentLayerTests):
    """recurrent_layers.py's layer tests, for each nonlinearity."""


def test_bad_nonlinearity_and_sizes():
    params = numpy_impl.RNN(3, 4).params
    x = np.zeros((2, 5, 3), np.float32)
    for bad in (
        lambda: numpy_impl.RNN(3, 4, nonlinearity="sigmoid"),
        lambda: torch_impl.RNN(3, 4, nonlinearity="sigmoid"),
        lambda: numpy_impl.rnn_forward(x, params, nonlinearity="gelu"),
        lambda: torch_impl.RNNCell(3, 4, nonlinearity="elu"),
    ):
        with pytest.raises(ValueError, match="nonlinearity must be one of"):
            bad()
    with pytest.raises(TypeError, match="hidden_size must be an integer"):
        torch_impl.RNN(3, 4.0)
