"""numpy_impl/fast held to its reference, numpy_impl's own ops: every op with a fast implementation
(numpy_impl.fast.FAST_OPS, and the in-place variants the fast GPT uses) over the registry's
hypothesis sweep (twinlm/parity/opcases*.py draw the inputs), then whole models and AdamW.

- float64: outputs and every gradient, from random upstream gradients, within 1e-12 relative of
  the reference (gradients measured as twinlm/parity/harness.py measures them);
- float32: the one float32 rule (twinlm/parity/harness.py) for the fast path as the "numpy" backend;
- on one thread, and on two threads with blocks of a dozen elements and attention's query rows in
  blocks of 3, so that block and thread edges are crossed (the sweep's shapes fit in one block at
  the defaults); there the fast path must also give bit for bit its one-thread result (blocks and
  threads change nothing), and a block edge handled twice is caught (the last test).
"""

from __future__ import annotations

import inspect
import types

import numpy as np
import pytest
from hypothesis import given
from test_parity_ops import case_inputs

import numpy_impl
import numpy_impl.fast as fast
import numpy_impl.fast.attention as fast_attention
import numpy_impl.fast.blocks as blocks
import numpy_impl.fast.loss as fast_loss
from numpy_impl.fast.gelu import gelu_backward_inplace, gelu_inplace
from twinlm.parity.harness import (
    Float32Runs,
    compare_float32,
    grads_error,
    outs_error,
    random_douts,
    rel_error,
    run_numpy,
)
from twinlm.parity.opcases import CASES, CASES_BY_NAME
from twinlm.parity.recurrent_cases import gru_case
from twinlm.shared.config import get_config
from twinlm.shared.init import draw_dropout_masks, init_charrnn_params
from twinlm.shared.naming import CELLS, charrnn_dropout_mask_shapes

TOL_FAST = 1e-12  # fast vs reference, float64, outputs and gradients

# (threads, elements per block, attention's query rows per block); the first: the defaults on one
# thread; the second crosses block and thread edges at the sweep's sizes.
CONFIGS = {
    "1 thread": (1, blocks.BLOCK_ELEMENTS, fast_attention.ROW_BLOCK),
    "2 threads, tiny blocks": (2, 12, 3),
}

# The fast GPT's in-place GELU (over the FFN's hidden layer) and cross entropy (over the logits),
# as an op set with the reference's names: each works on a copy, so the inputs stay as drawn.
IN_PLACE = types.SimpleNamespace(
    gelu_forward=lambda x, approximate: gelu_inplace(x.copy(), approximate),
    gelu_backward=lambda dy, cache: gelu_backward_inplace(dy.copy(), cache),
    cross_entropy_forward=lambda logits, targets: fast_loss.cross_entropy_inplace(
        logits.copy(), targets
    ),
    cross_entropy_backward=fast_loss.cross_entropy_backward_inplace,
)
OP_SETS = {"fast": fast, "fast in place": IN_PLACE}


def _op(case) -> str:
    return case.name.split("[")[0]


# Cho's GRU has no torch built-in, so it is not in CASES: float64 only.
FAST_CASES = [c for c in CASES if _op(c) in fast.FAST_OPS]
FAST_CASES += [gru_case(reset_after=False), gru_case(p=0.3, reset_after=False)]
PAIRS = [(c, "fast") for c in FAST_CASES]
PAIRS += [(c, "fast in place") for c in FAST_CASES if _op(c) in ("gelu", "cross_entropy")]
PAIR_IDS = [f"{c.name}-{ops}" for c, ops in PAIRS]


def _use(monkeypatch, config: str) -> None:
    threads, block_elements, row_block = CONFIGS[config]
    monkeypatch.setattr(blocks, "THREADS", threads)
    monkeypatch.setattr(blocks, "BLOCK_ELEMENTS", block_elements)
    monkeypatch.setattr(fast_attention, "ROW_BLOCK", row_block)


def _identical(got, want) -> None:
    """Two (outs, grads) results equal bit for bit."""
    for a, b in zip(got[0], want[0], strict=True):
        np.testing.assert_array_equal(a, b)
    assert set(got[1]) == set(want[1])
    for k in want[1]:
        np.testing.assert_array_equal(got[1][k], want[1][k])


def _check_example(case, ops: str, config: str, inputs, rng, monkeypatch, record) -> None:
    """One example in float64: the fast ops under `config` against the reference, and against
    themselves on one thread at the same query-row blocks (bit for bit)."""
    outs, _ = run_numpy(case, inputs)
    douts = random_douts(rng, outs)
    want = run_numpy(case, inputs, douts)
    threads, _, row_block = CONFIGS[config]
    monkeypatch.setattr(fast_attention, "ROW_BLOCK", row_block)
    monkeypatch.setattr(blocks, "THREADS", 1)
    monkeypatch.setattr(blocks, "BLOCK_ELEMENTS", CONFIGS["1 thread"][1])
    one_thread = run_numpy(case, inputs, douts, OP_SETS[ops])
    _use(monkeypatch, config)
    got = run_numpy(case, inputs, douts, OP_SETS[ops])
    _identical(got, one_thread)
    record(f"{case.name} {ops}", f"float64 fwd vs reference, {config}", outs_error(got[0], want[0]))
    record(
        f"{case.name} {ops}", f"float64 grad vs reference, {config}", grads_error(got[1], want[1])
    )


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize(("case", "ops"), PAIRS, ids=PAIR_IDS)
def test_float64_fast_matches_reference(case, ops, config, monkeypatch, record_error):
    def record(op, measure, error):
        record_error(op, measure, error, TOL_FAST)

    @given(case_inputs(case))
    def check(drawn):
        _check_example(case, ops, config, *drawn, monkeypatch, record)

    check()


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize(
    ("case", "ops"),
    [(c, ops) for c, ops in PAIRS if c.torch_ref is not None],
    ids=[i for (c, _), i in zip(PAIRS, PAIR_IDS) if c.torch_ref is not None],
)
def test_float32_fast_under_the_float32_rule(case, ops, config, monkeypatch, record_float32):
    """The fast ops as the "numpy" backend of compare_float32: each example within the bound,
    then R over the run."""
    _use(monkeypatch, config)
    runs = Float32Runs()

    def fast_only(r: Float32Runs) -> Float32Runs:
        return Float32Runs({key: run for key, run in r.items() if key[0] == "numpy"})

    @given(case_inputs(case))
    def check(drawn):
        inputs, rng = drawn
        outs, _ = run_numpy(case, inputs)
        example = compare_float32(case, inputs, random_douts(rng, outs), runs, OP_SETS[ops])
        record_float32(f"{case.name} {ops}, {config}", fast_only(example), False)

    check()
    record_float32(f"{case.name} {ops}, {config}", fast_only(runs))


def test_the_fast_module_is_a_complete_op_set():
    """numpy_impl.fast has every op pair of numpy_impl, with the same parameters and defaults: its
    own for FAST_OPS, numpy_impl's very functions for the rest."""
    pairs = [n for n in numpy_impl.__all__ if n.endswith(("_forward", "_backward"))]
    assert len(pairs) > 50
    for name in pairs:
        ours, reference = getattr(fast, name), getattr(numpy_impl, name)
        assert name in fast.__all__
        assert inspect.signature(ours).parameters == inspect.signature(reference).parameters, name
        own = name.rsplit("_", 1)[0] in fast.FAST_OPS
        assert (ours is not reference) == own, name
    assert {_op(c) for c in FAST_CASES} == set(fast.FAST_OPS) - {"charrnn", "gpt_body", "lstm"}
    assert (
        numpy_impl.kernel_ops("fast") is fast and numpy_impl.kernel_ops("reference") is numpy_impl
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda k: numpy_impl.GPTModel(get_config("test"), kernels=k),
        lambda k: numpy_impl.Qwen3Model(get_config("qwen3-test"), kernels=k),
        lambda k: numpy_impl.CharRNN(_charrnn_cfg("gru"), kernels=k),
        lambda k: numpy_impl.GPTClassifier(get_config("test"), pad_id=0, kernels=k),
        lambda k: numpy_impl.Qwen3Classifier(get_config("qwen3-test"), pad_id=0, kernels=k),
        lambda k: numpy_impl.LSTM(3, 4, kernels=k),
        lambda k: numpy_impl.GRU(3, 4, kernels=k),
        lambda k: numpy_impl.RNN(3, 4, kernels=k),
        lambda k: numpy_impl.AdamW({"w": np.zeros(3)}, kernels=k),
    ],
    ids=[
        "GPTModel",
        "Qwen3Model",
        "CharRNN",
        "GPTClassifier",
        "Qwen3Classifier",
        "LSTM",
        "GRU",
        "RNN",
        "AdamW",
    ],  # fmt: skip
)
def test_kernels_is_checked(make):
    assert make("reference").kernels == "reference" and make("fast").kernels == "fast"
    for bad in ("Fast", None, "torch"):
        with pytest.raises(ValueError, match=r"kernels must be one of \['reference', 'fast'\]"):
            make(bad)


# ---- whole models and AdamW ----------------------------------------------------------------------


def _close(label: str, got: dict, want: dict, record_error, tol: float = TOL_FAST) -> None:
    """Every tensor of `got` within tol of `want` (relative to the largest |want| of all)."""
    assert list(got) == list(want), label
    record_error(label, "float64 vs reference", grads_error(got, want), tol)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_gpt_model_and_adamw_steps(config, monkeypatch, record_error):
    """GPTModel fast vs reference with every dropout mask: logits, backward from a random dlogits,
    loss_and_grads (the fast one frees its cache), then 4 steps of clipped AdamW (fast AdamW on the
    fast model) from the same init on the same batches. Without qkv biases: W_key.bias's gradient
    is 0 in exact arithmetic (harness.py), rounding noise that AdamW's first steps scale up by
    lr/ε (1e6) whichever path computes it."""
    _use(monkeypatch, config)
    cfg = get_config("test", drop_rate=0.2, qkv_bias=False)
    ref = numpy_impl.GPTModel(cfg, seed=3, dtype=np.float64)
    quick = numpy_impl.GPTModel(cfg, seed=3, dtype=np.float64, kernels="fast")
    rng = np.random.default_rng(4)
    idx, targets = rng.integers(0, cfg["vocab_size"], (2, 2, 11))
    targets[0, :3] = -100
    logits = [m.forward(idx, np.random.default_rng(5)) for m in (ref, quick)]
    _close("gpt logits", {"logits": logits[1]}, {"logits": logits[0]}, record_error)
    dlogits = rng.standard_normal(logits[0].shape)
    _close("gpt backward", quick.backward(dlogits), ref.backward(dlogits), record_error)
    opts = [numpy_impl.AdamW(m.params, lr=3e-2, weight_decay=0.1, kernels=m.kernels)
            for m in (ref, quick)]  # fmt: skip
    for step in range(4):
        (loss_r, grads_r), (loss_f, grads_f) = (
            m.loss_and_grads(idx, targets, np.random.default_rng(step)) for m in (ref, quick)
        )
        assert quick._cache is None  # used up: its activations were freed on the way
        record_error("gpt loss", f"step {step} float64 vs reference", rel_error(loss_f, loss_r),
                     TOL_FAST)  # fmt: skip
        _close(f"gpt grads step {step}", grads_f, grads_r, record_error)
        for opt, grads in zip(opts, (grads_r, grads_f)):
            opt.step(grads, grad_scale=numpy_impl.clip_coef(grads, 0.5)[1])
    _close("gpt params after 4 AdamW steps", quick.params, ref.params, record_error)


def test_gpt_step_workspace_across_shapes_and_masks(monkeypatch, record_error):
    """The fast step's workspace (numpy_impl/fast/gpt.py) over calls that change its layout (B, T,
    dropout or not) and come back: every call's loss and gradients are the reference's, so no
    array of an earlier layout or step leaks into a later one. At B = 8 the top block's and
    tok_emb's gradients fit in the logits' array (used up by then) and are cut from it; a layout
    seen before reuses its arrays (a gradient is valid until the next call: its lifetime)."""
    _use(monkeypatch, "2 threads, tiny blocks")
    cfg = get_config("test", drop_rate=0.2, qkv_bias=True)
    ref = numpy_impl.GPTModel(cfg, seed=5, dtype=np.float64)
    quick = numpy_impl.GPTModel(cfg, seed=5, dtype=np.float64, kernels="fast")
    rng = np.random.default_rng(6)
    last = None
    layouts = [(2, 11, True), (3, 5, False), (8, 12, False), (8, 12, False), (8, 12, True),
               (2, 11, True), (1, 12, False)]  # fmt: skip
    for B, T, dropout in layouts:
        idx, targets = rng.integers(0, cfg["vocab_size"], (2, B, T))
        seed = int(rng.integers(1 << 30))
        drop = [np.random.default_rng(seed) if dropout else None for _ in range(2)]
        (loss_r, grads_r), (loss_f, grads_f) = (
            m.loss_and_grads(idx, targets, d) for m, d in zip((ref, quick), drop)
        )
        label = f"gpt workspace B={B} T={T} dropout={dropout}"
        record_error(label, "loss float64 vs reference", rel_error(loss_f, loss_r), TOL_FAST)
        _close(label, grads_f, grads_r, record_error)
        logits = quick._fast_workspace._arrays["logits"]
        in_logits = {k for k, g in grads_f.items() if np.shares_memory(g, logits)}
        top = f"trf_blocks.{cfg['n_layers'] - 1}."
        if B == 8:
            assert in_logits == {k for k in grads_f if k.startswith(top)} | {"tok_emb.weight"}
        if last is not None and last[0] == (B, T, dropout):  # the same arrays again
            assert all(np.shares_memory(grads_f[k], last[1][k]) for k in grads_f)
        last = ((B, T, dropout), grads_f)
    assert quick._fast_workspace.nbytes() > 0 and ref.__dict__.get("_fast_workspace") is None


def test_gpt_step_allocates_nothing_large_after_the_first(monkeypatch):
    """At one shape the fast step's second call takes no large array from the allocator: NumPy
    reports its arrays to tracemalloc, and the call's peak stays under a tenth of what the
    workspace holds (the first call allocated it). Blocks of 256 elements keep the row blocks'
    own scratch (capped at a block, as at full size) small beside the workspace."""
    import tracemalloc

    monkeypatch.setattr(blocks, "BLOCK_ELEMENTS", 256)
    cfg = get_config("test", drop_rate=0.0, emb_dim=64, n_heads=2, n_layers=2)
    model = numpy_impl.GPTModel(cfg, seed=0, dtype=np.float32, kernels="fast")
    idx, targets = np.random.default_rng(0).integers(0, cfg["vocab_size"], (2, 8, 12))
    model.loss_and_grads(idx, targets)
    held = model._fast_workspace.nbytes()
    tracemalloc.start()
    try:
        model.loss_and_grads(idx, targets)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert model._fast_workspace.nbytes() == held
    assert peak < held / 10, (peak, held)


def test_gpt_model_float32(record_float32):
    """GPTModel fast in float32 under the float32 rule, the reference's float32 as the reference:
    logits and gradients, over several seeds, against the reference in float64."""
    runs = Float32Runs()
    cfg = get_config("test", drop_rate=0.0)
    for seed in range(4):
        ref32 = numpy_impl.GPTModel(cfg, seed=seed, dtype=np.float32)
        quick = numpy_impl.GPTModel(cfg, seed=seed, dtype=np.float32, kernels="fast")
        exact = numpy_impl.GPTModel(cfg, dtype=np.float64)
        exact.load_state_dict({k: v.astype(np.float64) for k, v in ref32.params.items()})
        rng = np.random.default_rng(seed)
        idx, targets = rng.integers(0, cfg["vocab_size"], (2, 3, 12))
        results = [m.loss_and_grads(idx, targets) for m in (quick, ref32, exact)]
        runs["fast", "grad"].add(*(grads for _, grads in results))
        runs["fast", "fwd"].add(*([m.forward(idx)] for m in (quick, ref32, exact)))
    record_float32("gpt model float32", runs)


def test_gpt_classifier(record_error):
    cfg = get_config("test", drop_rate=0.2)
    ref, quick = (numpy_impl.GPTClassifier(cfg, 3, trainable="all", pad_id=0, seed=2,
                                           dtype=np.float64, kernels=k)
                  for k in ("reference", "fast"))  # fmt: skip
    rng = np.random.default_rng(0)
    idx, labels = rng.integers(0, cfg["vocab_size"], (4, 9)), rng.integers(0, 3, 4)
    (loss_r, grads_r), (loss_f, grads_f) = (
        m.loss_and_grads(idx, labels, np.random.default_rng(1)) for m in (ref, quick)
    )
    record_error("gpt classifier", "loss float64 vs reference", rel_error(loss_f, loss_r), TOL_FAST)
    _close("gpt classifier grads", grads_f, grads_r, record_error)


def test_qwen3_model(record_error):
    cfg = get_config("qwen3-test")
    ref, quick = (numpy_impl.Qwen3Model(cfg, seed=1, dtype=np.float64, kernels=k)
                  for k in ("reference", "fast"))  # fmt: skip
    rng = np.random.default_rng(2)
    idx, targets = rng.integers(0, cfg["vocab_size"], (2, 3, 10))
    targets[1, 4:] = -100
    (loss_r, grads_r), (loss_f, grads_f) = (m.loss_and_grads(idx, targets) for m in (ref, quick))
    record_error("qwen3 model", "loss float64 vs reference", rel_error(loss_f, loss_r), TOL_FAST)
    _close("qwen3 model grads", grads_f, grads_r, record_error)


def _charrnn_cfg(cell: str) -> dict:
    return {"cell": cell, "vocab_size": 11, "emb_dim": 5, "hidden_size": 6, "num_layers": 2,
            "drop_rate": 0.3}  # fmt: skip


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("cell", CELLS)
def test_charrnn(cell, config, monkeypatch, record_error):
    """CharRNN fast vs reference for every cell, with dropout masks, a carried state and a
    gradient on the final state: loss, every gradient and the initial state's gradient."""
    _use(monkeypatch, config)
    cfg = _charrnn_cfg(cell)
    params = init_charrnn_params(cfg, 0, np.float64)
    models = [numpy_impl.CharRNN(cfg, dtype=np.float64, kernels=k) for k in ("reference", "fast")]
    rng = np.random.default_rng(3)
    x, targets = rng.integers(0, cfg["vocab_size"], (2, 3, 7))
    masks = draw_dropout_masks(charrnn_dropout_mask_shapes(cfg, 3, 7), rng, 0.3, np.float64)
    state = tuple(0.5 * rng.standard_normal((2, 3, 6)) for _ in models[0].zero_state(3))
    dstate = tuple(rng.standard_normal(s.shape) for s in state)
    dlogits = rng.standard_normal((3, 7, cfg["vocab_size"]))
    results = []
    for m in models:
        m.load_state_dict(params)
        loss, grads, state_n = m.loss_and_grads(x, targets, state, masks)
        m.forward(x, state, masks)
        results.append((loss, grads, state_n, m.backward(dlogits, dstate), m.dstate0))
    (loss_r, grads_r, state_r, back_r, d0_r), (loss_f, grads_f, state_f, back_f, d0_f) = results
    label = f"charrnn[{cell}]"
    record_error(label, "loss float64 vs reference", rel_error(loss_f, loss_r), TOL_FAST)
    _close(f"{label} grads", grads_f, grads_r, record_error)
    _close(f"{label} final state", dict(enumerate(state_f)), dict(enumerate(state_r)), record_error)
    _close(f"{label} grads with dstate", back_f, back_r, record_error)
    _close(f"{label} dstate0", dict(enumerate(d0_f)), dict(enumerate(d0_r)), record_error)


@pytest.mark.parametrize(
    "make",
    [
        lambda k: numpy_impl.LSTM(4, 5, num_layers=2, seed=1, dtype=np.float64, kernels=k),
        lambda k: numpy_impl.GRU(4, 5, 2, 1, np.float64, reset_after=False, kernels=k),
        lambda k: numpy_impl.RNN(4, 5, 2, "relu", seed=1, dtype=np.float64, kernels=k),
    ],
    ids=["LSTM", "GRU[reset_before]", "RNN[relu]"],
)
def test_recurrent_layers(make, monkeypatch, record_error):
    """The layer classes: forward with an initial state and dropout between layers, backward with
    a gradient on the final state (the registry's sweep has the GRU and RNN ops; the LSTM's
    layers are here and in test_charrnn)."""
    _use(monkeypatch, "2 threads, tiny blocks")
    ref, quick = make("reference"), make("fast")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 8, 4))
    lstm = isinstance(ref, numpy_impl.LSTM)
    state = tuple(rng.standard_normal((2, 3, 5)) for _ in range(2 if lstm else 1))
    dstate = tuple(rng.standard_normal((2, 3, 5)) for _ in state)
    masks = [rng.random((3, 8, 5)) >= 0.3]
    dout = rng.standard_normal((3, 8, 5))
    results = []
    for m in (ref, quick):
        out, state_n = m.forward(x, state if lstm else state[0], masks, 0.3)
        dx, dstate0, grads = m.backward(dout, dstate if lstm else dstate[0])
        results.append({"out": out, "state_n": np.stack(state_n), "dx": dx,
                        "dstate0": np.stack(dstate0), **grads})  # fmt: skip
    _close(type(ref).__name__, results[1], results[0], record_error)


ADAMW_SHAPES = {"w": (7, 9), "b": (37,), "one": (1,), "skipped": (4,)}
ADAMW_STEPS = 20
# The reference's lerp for m takes its second branch where 1 - β1 ≥ ½.
ADAMW_REGIMES = [(betas, wd) for betas in ((0.8, 0.95), (0.3, 0.9)) for wd in (0.0, 0.1)]


def _adamw_run(dtype, kernels: str, betas, wd: float, draws=np.float64):
    """ADAMW_STEPS AdamW steps from the same draws for every call (rounded to `draws`, then held
    in dtype): random parameters and gradients (3σ, so the clip factor bites), "skipped" never
    given a gradient, the clip factor of 0.5 every third step and 1 (no scaling) otherwise.
    Returns the parameters and the optimizer."""
    rng = np.random.default_rng(1)

    def draw(scale: float) -> dict[str, np.ndarray]:
        return {k: (scale * rng.standard_normal(s)).astype(draws).astype(dtype)
                for k, s in ADAMW_SHAPES.items()}  # fmt: skip

    params = draw(1.0)
    opt = numpy_impl.AdamW(params, lr=1e-2, betas=betas, weight_decay=wd, kernels=kernels)
    for step in range(ADAMW_STEPS):
        grads = {**draw(3.0), "skipped": None}
        scale = numpy_impl.clip_coef(grads, 0.5)[1] if step % 3 == 0 else 1.0
        opt.step(grads, grad_scale=scale)
    return params, opt


def _adamw_state(params, opt) -> dict[str, np.ndarray]:
    return {**params, **{f"m {k}": m for k, m in opt.exp_avg.items()},
            **{f"v {k}": v for k, v in opt.exp_avg_sq.items()}}  # fmt: skip


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize(
    "betas, wd", ADAMW_REGIMES, ids=[f"betas{b}-wd{w}" for b, w in ADAMW_REGIMES]
)
def test_adamw_fast_matches_the_reference(betas, wd, config, monkeypatch, record_error):
    """float64: after ADAMW_STEPS clipped steps, every parameter, m and v within 1e-12 relative of
    the reference's (each tensor relative to its own largest value); the fast path's own results
    bit for bit the same on one thread with whole blocks and on two with blocks of a dozen (many
    blocks per tensor); a parameter without a gradient left as it was."""
    ref_params, ref_opt = _adamw_run(np.float64, "reference", betas, wd)
    _use(monkeypatch, "1 thread")
    one = _adamw_state(*_adamw_run(np.float64, "fast", betas, wd))
    _use(monkeypatch, config)
    params, opt = _adamw_run(np.float64, "fast", betas, wd)
    ref, got = _adamw_state(ref_params, ref_opt), _adamw_state(params, opt)
    assert list(got) == list(ref)
    for k in ref:
        record_error("AdamW fast", f"{k} after {ADAMW_STEPS} steps (f64)",
                     rel_error(got[k], ref[k]), TOL_FAST)  # fmt: skip
        np.testing.assert_array_equal(got[k], one[k])
    assert opt.steps == ref_opt.steps == {"w": ADAMW_STEPS, "b": ADAMW_STEPS, "one": ADAMW_STEPS}
    assert not np.array_equal(got["w"], ref["w"])  # regrouped: not the reference's rounding
    rng = np.random.default_rng(1)
    start = {k: rng.standard_normal(s) for k, s in ADAMW_SHAPES.items()}  # _adamw_run's first draw
    np.testing.assert_array_equal(params["skipped"], start["skipped"])


def test_adamw_fast_float32(record_float32):
    """float32, under the float32 rule: the fast path's parameters, m and v after ADAMW_STEPS
    clipped steps in every regime, the reference's float32 run as the reference and its float64
    run from the same float32-rounded draws as exact."""
    runs = Float32Runs()
    for betas, wd in ADAMW_REGIMES:
        results = [_adamw_state(*_adamw_run(dtype, kernels, betas, wd, draws=np.float32))
                   for dtype, kernels in ((np.float32, "fast"), (np.float32, "reference"),
                                          (np.float64, "reference"))]  # fmt: skip
        runs["fast", f"betas {betas} wd {wd}"].add(*results)
    record_float32("AdamW fast float32", runs)


def test_a_block_edge_handled_twice_is_caught(monkeypatch):
    """The comparisons above can fail: blocks that each run their last row again (an in-place
    update applied twice at every block edge; in one block there is no edge)."""
    original = blocks.for_blocks

    def overlapping(fn, n, block):
        original(lambda lo, hi: (fn(lo, hi), hi < n and fn(hi - 1, hi)), n, block)

    monkeypatch.setattr(fast_loss, "for_blocks", overlapping)
    case = CASES_BY_NAME["cross_entropy"]
    inputs = case.sample(np.random.default_rng(0), np.float64, case.dims)

    def record(op, measure, error):
        assert error <= TOL_FAST, f"{op} {measure}: {error:.2e}"

    _check_example(case, "fast in place", "1 thread", inputs, np.random.default_rng(1),
                   monkeypatch, record)  # one block: no edge for the overlap to act on  # fmt: skip
    with pytest.raises(AssertionError):
        _check_example(case, "fast in place", "2 threads, tiny blocks", inputs,
                       np.random.default_rng(1), monkeypatch, record)  # fmt: skip
