"""StepLogits (twinlm/generation.py) reuses its KV cache only while the cache holds a prefix of the
ids it is given, and otherwise rebuilds it. test_generate.py feeds it growing prefixes of one
sequence, which reusing the cache without the prefix check also passes. Here one StepLogits is fed
a script of calls that a stale cache would get wrong: another sequence, one sharing only part of
the prefix, a shorter one, a window moved past the context, and a batch with one row changed.
Every call's logits are compared with the uncached `lm.last_logits` of the cropped window, in
float64 within 1e-10 relative, for GPT and Qwen3 of both backends. A mutant StepLogits without the
prefix check fails the same script.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import numpy_impl
import torch_impl
from twinlm import generation
from twinlm.generation import StepLogits, language_model
from twinlm.parity.harness import rel_error
from twinlm.shared.config import get_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CFGS = {"gpt": get_config("test", drop_rate=0.0), "qwen3": get_config("qwen3-test")}
CTX = 12  # both presets' context_length
assert all(c["context_length"] == CTX for c in CFGS.values())
TOL = 1e-10


def _model(arch: str, backend: str):
    cfg = CFGS[arch]
    if backend == "numpy":
        cls = numpy_impl.GPTModel if arch == "gpt" else numpy_impl.Qwen3Model
        return cls(cfg, seed=0, dtype=np.float64)
    cls = torch_impl.GPTModel if arch == "gpt" else torch_impl.Qwen3Model
    return cls(cfg, seed=0, dtype=torch.float64).eval()


def _script(vocab: int) -> list[tuple[str, np.ndarray]]:
    """(what the call tests, ids (2, L)): each call follows the one before it."""
    rng = np.random.default_rng(3)
    a = rng.integers(0, vocab, (2, CTX + 4))
    b = a.copy()
    b[:, 1] = (a[:, 1] + 1) % vocab  # another sequence: differs from a early on
    c = a.copy()
    c[:, 3:] = rng.integers(0, vocab, (2, CTX + 1))  # shares only a's first 3 tokens
    c[:, 3] = (a[:, 3] + 1) % vocab
    d = c.copy()
    d[1, 2] = (c[1, 2] + 1) % vocab  # one row of the batch differs
    return [
        ("prefill", a[:, :5]),
        ("grow by one", a[:, :6]),
        ("another sequence, longer", b[:, :7]),
        ("another sequence, same length", a[:, :7]),
        ("grow after a rebuild", a[:, :8]),
        ("shares only part of the prefix", c[:, :9]),
        ("shorter", c[:, :4]),
        ("grow after shorter", c[:, :5]),
        ("one row of the batch differs", d[:, :6]),
        ("the other row back", c[:, :7]),
        ("the window full", a[:, :CTX]),
        ("the window moved past the context", a[:, : CTX + 1]),
        ("moved further", a[:, : CTX + 3]),
        ("another sequence past the context", b[:, : CTX + 3]),
        ("back inside the context", b[:, :6]),
        ("grow", b[:, :7]),
    ]


def run_script(step, lm) -> list[tuple[str, float]]:
    """(label, relative error against the uncached logits of idx[:, -CTX:]) per call."""
    out = []
    for label, idx in _script(CFGS["gpt"]["vocab_size"]):
        got = step(idx)
        want = lm.last_logits(idx[:, -CTX:])
        out.append((label, rel_error(got, want)))
    return out


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("arch", ["gpt", "qwen3"])
def test_step_logits_rebuilds_for_another_sequence(arch, backend, record_error):
    lm = language_model(_model(arch, backend))
    errors = run_script(StepLogits(lm, 2, CTX), lm)
    for _, err in errors:
        record_error(f"generate.step_logits.{backend}.{arch}", "logits f64 vs uncached", err, TOL)
    bad = [(label, err) for label, err in errors if not err <= TOL]
    assert not bad, f"cached logits differ from uncached: {bad}"


class PrefixBlindStepLogits(StepLogits):
    """The mutant: reuses the cache whenever idx is longer than it and fits, without checking that
    the cache holds idx's prefix."""

    def __call__(self, idx):
        cache = self.cache
        n = cache.length
        if not n < idx.shape[1] <= min(self.context_size, cache.max_len):
            cache.length = 0
            n, idx = 0, idx[:, -self.context_size :]
        new = idx[:, n:]
        logits = self.lm.cached_logits(new, cache)
        cache.advance(new)
        return logits


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_the_script_catches_a_cache_reused_without_the_prefix_check(backend):
    lm = language_model(_model("gpt", backend))
    errors = dict(run_script(PrefixBlindStepLogits(lm, 2, CTX), lm))
    for label in (
        "another sequence, longer",
        "shares only part of the prefix",
        "one row of the batch differs",
    ):
        assert errors[label] > 1e-3, (label, errors[label])  # the mutant's logits are wrong here
    assert errors["prefill"] <= TOL  # and right where the cache is not stale
    assert generation.StepLogits is StepLogits  # the real one is what the test above ran
