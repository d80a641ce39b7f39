"""The hypothesis strategy an op's inputs are swept with: by the parity suite
(parity_tests/ops/test_parity_ops.py) and by `twinlm check --impl` (twinlm/parity/learner.py), so a
learner's op is held to the same sweep as the project's own."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from twinlm.parity.harness import OpCase


@st.composite
def case_inputs(draw, case: OpCase, dtype=np.float64, salt: tuple[int, ...] = ()):
    """Sizes from 1 (or the case's minimum) up to the case's defaults, then the inputs: the first
    gradient input element by element (bounded, finite, no subnormals, no fill: shrinking makes it
    small and readable), the rest from a generator seeded by hypothesis (and `salt`, which gives
    another run of examples). Returns (inputs, rng); rng then draws the upstream gradients."""
    dims = {k: draw(st.integers(case.min_dims.get(k, 1), v)) for k, v in case.dims.items()}
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng([*salt, seed])
    inputs = case.sample(rng, dtype, dims)
    first = case.grad_inputs[0]
    elements = st.floats(-case.bound, case.bound, allow_nan=False, allow_subnormal=False)
    inputs[first] = draw(arrays(dtype, inputs[first].shape, elements=elements, fill=st.nothing()))
    return inputs, rng
