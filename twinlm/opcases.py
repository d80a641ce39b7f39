"""The registry of ops checked for parity: for each, inputs and its NumPy / torch_impl / torch twins.

`CASES` is what `twinlm check` prints and what `parity_tests/test_parity_ops.py` sweeps with
hypothesis. The torch built-in (`torch_ref`) is the independent third implementation.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

import numpy_impl as N
import torch_impl as T
from twinlm.parity import OpCase, np_pair


def _normal(rng: np.random.Generator, dtype, *shape: int, scale: float = 1.0) -> np.ndarray:
    return (scale * rng.standard_normal(shape)).astype(dtype)


# ---- linear, softmax -----------------------------------------------------------------------------


def _linear_case(bias: bool) -> OpCase:
    def sample(rng, dtype, d):
        return {
            "x": _normal(rng, dtype, d["batch"], d["seq"], d["d_in"]),
            "weight": _normal(rng, dtype, d["d_out"], d["d_in"], scale=d["d_in"] ** -0.5),
            "bias": _normal(rng, dtype, d["d_out"]) if bias else None,
        }

    return OpCase(
        "linear" if bias else "linear[no bias]",
        sample,
        *np_pair(
            N.linear_forward, N.linear_backward, ("x", "weight", "bias"), ("x", "weight", "bias")
        ),
        torch_impl=lambda t: (T.linear(t["x"], t["weight"], t["bias"]),),
        torch_ref=lambda t: (F.linear(t["x"], t["weight"], t["bias"]),),
        grad_inputs=("x", "weight", "bias") if bias else ("x", "weight"),
        dims={"batch": 4, "seq": 16, "d_in": 32, "d_out": 24},
        fd_dims={"batch": 2, "seq": 2, "d_in": 3, "d_out": 4},
    )


SOFTMAX = OpCase(
    "softmax",
    lambda rng, dtype, d: {"x": _normal(rng, dtype, d["batch"], d["rows"], d["n"], scale=3.0)},
    *np_pair(N.softmax_forward, N.softmax_backward, ("x",), ("x",)),
    torch_impl=lambda t: (T.softmax(t["x"]),),
    torch_ref=lambda t: (torch.softmax(t["x"], dim=-1),),
    grad_inputs=("x",),
    dims={"batch": 4, "rows": 16, "n": 50},
    fd_dims={"batch": 2, "rows": 2, "n": 5},
    bound=10.0,
)

# ---- embedding, dropout, gelu, layernorm ---------------------------------------------------------

# ---- attention, multi-head attention, feed-forward -----------------------------------------------

# ---- cross entropy, LSTM cell --------------------------------------------------------------------


CASES: list[OpCase] = [
    _linear_case(bias=True),
    _linear_case(bias=False),
    SOFTMAX,
]
CASES_BY_NAME = {c.name: c for c in CASES}
