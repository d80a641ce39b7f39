"""The whole GPT model: NumPy (hand-written backward) vs torch_impl (autograd) vs torch built-ins.

References, each independent of the code under test:
- torch_impl.GPTModel with autograd (same weights, same dropout masks replayed);
- a functional GPT from torch built-ins (F.embedding, F.layer_norm, F.scaled_dot_product_attention,
  F.gelu, F.linear: helpers.py), with F.cross_entropy;
- the book's own GPTModel (chapter 4 code, copied into helpers.py) for state_dict compatibility;
- central finite differences of the NumPy loss (float64) for the NumPy backward;
- ln(vocab_size), the loss of a uniform prediction, for the untrained model.
Parameters are perturbed away from the init (biases 0, scales 1), which would hide bugs.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import BookGPTModel, builtin_gpt_hidden

import numpy_impl
import torch_impl
from numpy_impl.loss import cross_entropy_forward
from twinlm.parity.harness import TOL_FLOAT64, Float32Runs, grads_error, rel_error
from twinlm.shared.config import get_config
from twinlm.shared.init import init_gpt_params

CFG = get_config("test")  # vocab 67, context 12, emb 16, 2 heads, 2 layers, qkv_bias, dropout 0.1
B, SEQ = 3, 10


def _perturbed_params(cfg, seed=0) -> dict[str, np.ndarray]:
    """The shared init plus noise, so biases, LayerNorm scales and shifts are all non-trivial."""
    rng = np.random.default_rng(seed + 100)
    params = init_gpt_params(cfg, seed, np.float64)
    return {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in params.items()}


def _batch(cfg, seed=0, batch=B, seq=SEQ, ignore=True):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, cfg["vocab_size"], (batch, seq))
    targets = rng.integers(0, cfg["vocab_size"], (batch, seq))
    if ignore:
        targets[0, :3] = -100  # a few ignored positions, like padded instruction data
    return idx, targets


def _models(params, cfg=CFG, np_dtype=np.float64):
    np_model = numpy_impl.GPTModel(cfg, dtype=np_dtype)
    np_model.load_state_dict({k: v.astype(np_dtype) for k, v in params.items()})
    t_dtype = torch.float64 if np_dtype == np.float64 else torch.float32
    t_model = torch_impl.GPTModel(cfg, dtype=t_dtype)
    t_model.load_state_dict({k: torch.from_numpy(v.astype(np_dtype)) for k, v in params.items()})
    return np_model, t_model


def _torch_run(model, idx, targets, masks=None):
    """Logits, loss and every parameter gradient by autograd (built-in cross entropy as the loss)."""
    model.zero_grad()
    logits = model(torch.from_numpy(idx), dropout_masks=masks)
    loss = F.cross_entropy(logits.flatten(0, 1), torch.from_numpy(targets).flatten())
    loss.backward()
    grads = {k: p.grad.numpy() for k, p in model.named_parameters()}
    return logits.detach().numpy(), float(loss.detach()), grads


# ---- NumPy vs torch_impl ---------------------------------------------------------------------------


@pytest.mark.parametrize("dropout", [False, True], ids=["no-dropout", "dropout"])
def test_gpt_numpy_matches_torch_impl_float64(dropout, record_error):
    params = _perturbed_params(CFG)
    np_model, t_model = _models(params)
    idx, targets = _batch(CFG)
    rng = np.random.default_rng(7) if dropout else None

    logits = np_model.forward(idx, dropout_rng=rng)
    masks = np_model.last_dropout_masks
    loss, grads = np_model.loss_and_grads(idx, targets, dropout_masks=masks)
    t_masks = {k: torch.from_numpy(m) for k, m in masks.items()} if dropout else None
    t_model.train(dropout)
    t_logits, t_loss, t_grads = _torch_run(t_model, idx, targets, t_masks)

    if dropout:  # the masks really drop something, and change the result
        assert len(masks) == 1 + 3 * CFG["n_layers"]
        assert all(0 < m.mean() < 1 for m in masks.values())
        assert rel_error(logits, np_model.forward(idx)) > 1e-2
    assert set(grads) == set(params) == set(t_grads)
    name = "GPTModel" + (" +dropout" if dropout else "")
    record_error(name, "logits vs torch_impl", rel_error(logits, t_logits), TOL_FLOAT64)
    record_error(name, "loss vs torch_impl", abs(loss - t_loss) / abs(t_loss), TOL_FLOAT64)
    record_error(name, "grads vs torch_impl", grads_error(grads, t_grads), TOL_FLOAT64)


def _builtin_run(params, idx, targets, dtype):
    """Logits and every parameter gradient of the GPT from torch built-ins (helpers.py)."""
    tp = {k: torch.tensor(v, dtype=dtype, requires_grad=True) for k, v in params.items()}
    logits = F.linear(builtin_gpt_hidden(tp, torch.from_numpy(idx), CFG), tp["out_head.weight"])
    F.cross_entropy(logits.flatten(0, 1), torch.from_numpy(targets).flatten()).backward()
    return logits.detach().numpy(), {k: v.grad.numpy() for k, v in tp.items()}


def test_gpt_float32_no_worse_than_torch(record_float32):
    """float32 logits and grads of NumPy and torch_impl against the float64 built-in GPT on the same
    rounded weights, the float32 built-in GPT as the reference (the float32 standard in
    twinlm/parity/harness.py). The key biases' gradients are zero in exact arithmetic, so every
    float32 run holds rounding noise there; the standard judges it like the rest."""
    params32 = {k: v.astype(np.float32) for k, v in _perturbed_params(CFG).items()}
    idx, targets = _batch(CFG)
    exact = _builtin_run(params32, idx, targets, torch.float64)
    ref32 = _builtin_run(params32, idx, targets, torch.float32)
    np32, t32 = _models(params32, np_dtype=np.float32)
    logits = np32.forward(idx)
    _, grads = np32.loss_and_grads(idx, targets)
    t_logits, _, t_grads = _torch_run(t32.eval(), idx, targets)
    assert logits.dtype == np.float32 and all(g.dtype == np.float32 for g in grads.values())
    runs = Float32Runs()
    for name, got in (("numpy", (logits, grads)), ("torch_impl", (t_logits, t_grads))):
        runs[name, "logits"].add([got[0]], [ref32[0]], [exact[0]])
        runs[name, "grads"].add(got[1], ref32[1], exact[1])
    record_float32("GPTModel", runs)


# ---- against torch built-ins -----------------------------------------------------------------------


def test_gpt_numpy_matches_torch_builtins_float64(record_error):
    params = _perturbed_params(CFG)
    np_model, _ = _models(params)
    idx, targets = _batch(CFG)
    loss, grads = np_model.loss_and_grads(idx, targets)
    logits = np_model.forward(idx)

    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    # The same GPT from torch built-ins only (helpers.py), no dropout.
    ref_logits = F.linear(builtin_gpt_hidden(tp, torch.from_numpy(idx), CFG), tp["out_head.weight"])
    ref_loss = F.cross_entropy(ref_logits.flatten(0, 1), torch.from_numpy(targets).flatten())
    ref_loss.backward()
    ref_grads = {k: t.grad.numpy() for k, t in tp.items()}

    record_error(
        "GPTModel",
        "logits vs torch built-ins",
        rel_error(logits, ref_logits.detach().numpy()),
        TOL_FLOAT64,
    )
    record_error(
        "GPTModel",
        "loss vs torch built-ins",
        abs(loss - ref_loss.item()) / ref_loss.item(),
        TOL_FLOAT64,
    )
    record_error("GPTModel", "grads vs torch built-ins", grads_error(grads, ref_grads), TOL_FLOAT64)


# ---- the book's GPTModel and its state_dict ----------------------------------------------------------


def test_book_state_dict_loads_into_both_backends(record_error):
    torch.manual_seed(0)
    book = BookGPTModel(CFG).double().eval()
    state = book.state_dict()
    assert "trf_blocks.0.att.mask" in state  # the buffers our loaders must drop
    idx, _ = _batch(CFG)
    with torch.no_grad():
        want = book(torch.from_numpy(idx)).numpy()

    t_model = torch_impl.GPTModel(CFG, dtype=torch.float64).eval()
    t_model.load_state_dict(state)  # strict
    np_model = numpy_impl.GPTModel(CFG)
    np_model.load_state_dict(state)  # torch tensors accepted; dtype follows them
    assert np_model.dtype == np.float64
    with torch.no_grad():
        got_torch = t_model(torch.from_numpy(idx)).numpy()
    record_error(
        "GPTModel", "logits vs book's model", rel_error(np_model.forward(idx), want), TOL_FLOAT64
    )
    record_error("GPTModel", "logits vs book's model", rel_error(got_torch, want), TOL_FLOAT64)
    assert list(t_model.state_dict()) == [k for k in state if not k.endswith("att.mask")]


def test_state_dict_round_trip_numpy_torch_numpy_is_exact():
    for dtype, t_dtype in ((np.float32, torch.float32), (np.float64, torch.float64)):
        np_model = numpy_impl.GPTModel(CFG, seed=3, dtype=dtype)
        t_model = torch_impl.GPTModel(CFG, dtype=t_dtype)
        t_model.load_state_dict({k: torch.from_numpy(v) for k, v in np_model.state_dict().items()})
        back = numpy_impl.GPTModel(CFG, seed=99, dtype=dtype)
        back.load_state_dict({k: v.numpy() for k, v in t_model.state_dict().items()})
        for k, v in np_model.params.items():
            assert back.params[k].dtype == dtype
            np.testing.assert_array_equal(back.params[k], v)
    # seeded torch model == seeded NumPy model, exactly
    t_seeded = torch_impl.GPTModel(CFG, seed=3)
    for k, v in t_seeded.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), numpy_impl.GPTModel(CFG, seed=3).params[k])


# ---- finite differences of the NumPy backward --------------------------------------------------------

FD_EPS = 1e-6
FD_TOL = 1e-7  # central difference: truncation ~eps² ≈ 1e-12, rounding ~1e-16·loss/eps ≈ 1e-9


@pytest.mark.parametrize(
    "direction",
    [
        "all",
        "tok_emb.weight",
        "pos_emb.weight",
        "trf_blocks.0.att.W_query.weight",
        "trf_blocks.1.norm2.scale",
        "trf_blocks.0.ff.layers.0.bias",
        "out_head.weight",
    ],
)
def test_gpt_backward_matches_finite_differences(direction, record_error):
    """⟨grad, t⟩ from the NumPy backward vs (L(θ + εt) - L(θ - εt)) / 2ε, dropout masks fixed."""
    model = numpy_impl.GPTModel(CFG, dtype=np.float64)
    model.load_state_dict(_perturbed_params(CFG, seed=1))
    idx, targets = _batch(CFG, seed=1, batch=2, seq=6)
    model.forward(idx, dropout_rng=np.random.default_rng(5))
    masks = model.last_dropout_masks
    _, grads = model.loss_and_grads(idx, targets, dropout_masks=masks)

    rng = np.random.default_rng(zlib.crc32(direction.encode()))  # str hash() varies by process
    keys = list(model.params) if direction == "all" else [direction]
    t = {k: rng.standard_normal(model.params[k].shape) for k in keys}
    analytic = sum(float(np.vdot(grads[k], t[k])) for k in keys)

    base = {k: v.copy() for k, v in model.params.items()}

    def loss_at(sign):
        for k in keys:
            model.params[k] = base[k] + sign * FD_EPS * t[k]
        loss, _ = cross_entropy_forward(model.forward(idx, dropout_masks=masks), targets)
        return float(loss)

    numeric = (loss_at(+1) - loss_at(-1)) / (2 * FD_EPS)
    assert abs(analytic) > 1e-3  # a direction the loss actually depends on
    record_error(
        "GPTModel", "finite differences", abs(numeric - analytic) / max(abs(analytic), 1.0), FD_TOL
    )


# ---- golden fact, dtype, bad input -----------------------------------------------------------------


@pytest.mark.parametrize("preset", ["test", "tiny"])
def test_untrained_loss_is_about_log_vocab(preset):
    """GPT-2's small init gives near-uniform predictions: loss ≈ ln V (within 1 %), both backends."""
    cfg = get_config(preset)
    idx, targets = _batch(cfg, batch=2, seq=8, ignore=False)
    np_model = numpy_impl.GPTModel(cfg, seed=0)
    loss, _ = cross_entropy_forward(np_model.forward(idx), targets)
    t_model = torch_impl.GPTModel(cfg, seed=0).eval()
    with torch.no_grad():
        t_loss = F.cross_entropy(
            t_model(torch.from_numpy(idx)).flatten(0, 1), torch.from_numpy(targets).flatten()
        )
    ln_v = math.log(cfg["vocab_size"])
    assert loss.dtype == np.float32
    assert abs(float(loss) - ln_v) / ln_v < 0.01
    assert abs(float(t_loss) - ln_v) / ln_v < 0.01


def _bad_inputs(cfg):
    V, ctx = cfg["vocab_size"], cfg["context_length"]
    return [
        (np.zeros((2, 4)), TypeError, "idx must be an integer array"),
        (np.full((2, 4), V), ValueError, rf"idx must lie in \[0, {V}\), got {V}"),
        (np.full((2, 4), -1), ValueError, rf"idx must lie in \[0, {V}\), got -1"),
        (
            np.zeros((2, ctx + 1), dtype=np.int64),
            ValueError,
            f"idx has sequence length {ctx + 1}, more than context_length {ctx}",
        ),
        (
            np.zeros(4, dtype=np.int64),
            ValueError,
            r"idx must have 2 dimensions \(batch, seq\), got shape \(4,\)",
        ),
        (np.zeros((2, 0), dtype=np.int64), ValueError, "idx must hold at least one position"),
    ]


@pytest.mark.parametrize("case", range(6))
def test_gpt_forward_rejects_bad_idx(case):
    idx, exc, match = _bad_inputs(CFG)[case]
    with pytest.raises(exc, match=match):
        numpy_impl.GPTModel(CFG).forward(idx)
    with pytest.raises(exc, match=match):
        torch_impl.GPTModel(CFG)(torch.from_numpy(idx))


def test_gpt_rejects_bad_state_masks_and_config():
    model = numpy_impl.GPTModel(CFG)
    state = model.state_dict()
    with pytest.raises(ValueError, match=r"missing \['out_head.weight'\], unexpected \['head'\]"):
        model.load_state_dict(
            {
                **{k: v for k, v in state.items() if k != "out_head.weight"},
                "head": state["out_head.weight"],
            }
        )
    with pytest.raises(
        ValueError, match=r"state_dict\['pos_emb.weight'\] must have shape \(12, 16\)"
    ):
        model.load_state_dict({**state, "pos_emb.weight": np.zeros((13, 16), np.float32)})
    with pytest.raises(TypeError, match="must all be float32 or all float64"):
        model.load_state_dict(
            {**state, "pos_emb.weight": state["pos_emb.weight"].astype(np.float64)}
        )
    idx, targets = _batch(CFG, batch=2, seq=4)
    with pytest.raises(ValueError, match=r"dropout_masks has unknown names \['drop_out'\]"):
        model.forward(idx, dropout_masks={"drop_out": np.ones((2, 4, 16))})
    with pytest.raises(ValueError, match=r"dropout_masks has unknown names \['drop_out'\]"):
        torch_impl.GPTModel(CFG)(
            torch.from_numpy(idx), dropout_masks={"drop_out": torch.ones(2, 4, 16)}
        )
    with pytest.raises(
        ValueError, match=r"dropout_masks\['drop_emb'\] must have shape \(2, 4, 16\)"
    ):
        model.forward(idx, dropout_masks={"drop_emb": np.ones((2, 5, 16))})
    with pytest.raises(ValueError, match="targets must have shape"):
        model.loss_and_grads(idx, targets[:, :3])
    with pytest.raises(RuntimeError, match="backward needs a forward first"):
        numpy_impl.GPTModel(CFG).backward(np.zeros((2, 4, 67), np.float32))
    with pytest.raises(ValueError, match="preset name must be one of"):
        get_config("gpt5")
    with pytest.raises(
        ValueError, match=r"cfg\['emb_dim'\] \(10\) must be divisible by cfg\['n_heads'\] \(4\)"
    ):
        get_config("test", emb_dim=10, n_heads=4)
    with pytest.raises(ValueError, match=r"cfg\['drop_rate'\] must be in \[0, 1\), got 1.0"):
        get_config("test", drop_rate=1.0)
    with pytest.raises(ValueError, match=r"cfg\['n_layers'\] must be positive, got 0"):
        get_config("test", n_layers=0)
    with pytest.raises(ValueError, match=r"unknown config keys \['emb_size'\]"):
        get_config("test", emb_size=8)
