"""Qwen3Model of both backends against transformers' own Qwen3ForCausalLM, and against each other.

float64: logits, loss and every parameter gradient against transformers run with its RMSNorm and
RoPE angles in float64 (hf_qwen3.float64_internals: as shipped, transformers computes both in
float32 even in a float64 model, which holds it ~3e-7 from exact, and that is tested too).
float32: our float32 model uses float32 RMSNorm and float32 angles, as transformers does, and is
no further from transformers' float32 logits than transformers is from the float64 reference.
Generation: greedy tokens equal transformers' generate; cached equals uncached; a KV cache filled
in chunks gives every position's logits of the full forward (RoPE at the true positions).
Two configurations: tied embeddings without biases (Qwen3-0.6B's) and untied with attention_bias.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hf_qwen3 import float64_internals, hf_model, hf_params

import numpy_impl
import torch_impl
from twinlm.generation import KVCache, NumpyLM, TorchLM, generate
from twinlm.parity.harness import Float32Runs, rel_error
from twinlm.shared.config import get_config
from twinlm.shared.naming import qwen3_param_shapes

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py
VARIANTS = {
    "tied": get_config("qwen3-test"),
    "untied+bias": get_config("qwen3-test", tie_embeddings=False, attention_bias=True),
}
TOL64 = 1e-10


def _batch(cfg, seed=1, B=3):
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, cfg["vocab_size"], (B, cfg["context_length"]))
    targets = rng.integers(0, cfg["vocab_size"], idx.shape)
    targets[0, :4] = -100  # some ignored targets
    return idx, targets


@pytest.fixture(scope="module", params=list(VARIANTS), ids=list(VARIANTS))
def variant(request):
    """(name, cfg, transformers' float64 model, its params as NumPy)."""
    cfg = VARIANTS[request.param]
    model = hf_model(cfg, seed=3)
    return request.param, cfg, model, hf_params(model)


def _hf_loss_and_grads(model, idx, targets):
    """transformers' logits, float64 cross entropy (its own loss casts logits to float32) and
    every parameter's gradient by autograd."""
    model.zero_grad(set_to_none=True)
    logits = model(torch.from_numpy(idx)).logits
    loss = F.cross_entropy(logits.flatten(0, 1), torch.from_numpy(targets).flatten())
    loss.backward()
    grads = {k: p.grad.numpy().copy() for k, p in model.named_parameters()}
    return logits.detach().numpy(), loss.item(), grads


def _grad_error(grads, ref):
    """Worst gradient error, each tensor floored at 1e-3 of the model's largest gradient."""
    scale = max(float(np.max(np.abs(g))) for g in ref.values())
    return max(rel_error(grads[k], ref[k], 1e-3 * scale) for k in ref)


def test_keys_shapes_and_order_are_hugging_faces(variant):
    _, cfg, model, params = variant
    assert list(qwen3_param_shapes(cfg)) == list(params)  # named_parameters: the tied head once
    assert {k: tuple(v.shape) for k, v in params.items()} == qwen3_param_shapes(cfg)
    t_model = torch_impl.Qwen3Model(cfg)
    assert list(dict(t_model.named_parameters())) == list(params)
    assert list(numpy_impl.Qwen3Model(cfg).params) == list(params)
    t_model.load_state_dict(model.state_dict())  # a tied model's state_dict lists lm_head too


def test_float64_matches_transformers_and_each_other(variant, record_error):
    name, cfg, model, params = variant
    idx, targets = _batch(cfg)
    with float64_internals():
        ref_logits, ref_loss, ref_grads = _hf_loss_and_grads(model, idx, targets)

    np_model = numpy_impl.Qwen3Model(cfg, dtype=np.float64)
    np_model.load_state_dict(params)
    loss, grads = np_model.loss_and_grads(idx, targets)
    logits = np_model.forward(idx)

    t_model = torch_impl.Qwen3Model(cfg, dtype=torch.float64)
    t_model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    t_logits = t_model(torch.from_numpy(idx))
    t_loss = torch_impl.cross_entropy(t_logits, torch.from_numpy(targets))
    t_loss.backward()
    t_grads = {k: p.grad.numpy() for k, p in t_model.named_parameters()}

    op, t_logits = f"qwen3[{name}]", t_logits.detach().numpy()
    record_error(op, "logits numpy/transformers (f64)", rel_error(logits, ref_logits), TOL64)
    record_error(op, "logits torch_impl/transformers", rel_error(t_logits, ref_logits), TOL64)
    record_error(op, "loss numpy/transformers (f64)", abs(loss - ref_loss) / ref_loss, TOL64)
    record_error(
        op, "loss torch_impl/transformers", abs(t_loss.item() - ref_loss) / ref_loss, TOL64
    )
    record_error(op, "grads numpy/transformers (f64)", _grad_error(grads, ref_grads), TOL64)
    record_error(op, "grads torch_impl/transformers", _grad_error(t_grads, ref_grads), TOL64)
    record_error(op, "grads numpy/torch_impl (f64)", _grad_error(grads, t_grads), TOL64)
    # The gradients are real: every tensor moves, the tied embedding collects both of its uses.
    assert all(np.abs(g).max() > 1e-6 for g in ref_grads.values())


def test_transformers_float64_as_shipped_is_float32_accurate(variant):
    """transformers' float64 Qwen3 without the patch: its float32 RMSNorm and angles hold it at
    float32 accuracy, which is why the float64 comparisons above patch those two pieces."""
    _, cfg, model, params = variant
    idx, _ = _batch(cfg)
    with torch.no_grad():
        shipped = model(torch.from_numpy(idx)).logits.numpy()
    np_model = numpy_impl.Qwen3Model(cfg, dtype=np.float64)
    np_model.load_state_dict(params)
    assert 1e-9 < rel_error(shipped, np_model.forward(idx)) < 1e-5


def test_float32_follows_transformers_float32(variant, record_float32):
    """Float32 angles and float32 RMSNorm, as transformers computes them: by the harness's float32
    standard, with transformers' float32 logits in the built-in's place, each backend's logits are
    as close to the float64 reference as transformers' own float32 logits are."""
    name, cfg, model, params = variant
    idx, _ = _batch(cfg)
    with float64_internals(), torch.no_grad():
        ref = model(torch.from_numpy(idx)).logits.numpy()
    model32 = hf_model(cfg, seed=3, dtype=torch.float32)
    with torch.no_grad():
        hf32 = model32(torch.from_numpy(idx)).logits.numpy()
    np_model = numpy_impl.Qwen3Model(cfg, dtype=np.float32)
    np_model.load_state_dict({k: v.astype(np.float32) for k, v in params.items()})
    ours = np_model.forward(idx)
    t_model = torch_impl.Qwen3Model(cfg, dtype=torch.float32)
    t_model.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in params.items()})
    with torch.no_grad():
        t_ours = t_model(torch.from_numpy(idx)).numpy()
    assert ours.dtype == np.float32 and t_ours.dtype == np.float32
    runs = Float32Runs()
    runs["numpy", "fwd"].add([ours], [hf32], [ref])
    runs["torch_impl", "fwd"].add([t_ours], [hf32], [ref])
    record_float32(f"qwen3[{name}] logits", runs)


def test_backward_matches_finite_differences(record_error):
    """The whole NumPy model's gradient along random directions (every parameter at once) against
    central differences of its loss, float64: checks the tied embedding's two uses add up."""
    cfg = VARIANTS["tied"]
    model = numpy_impl.Qwen3Model(cfg, seed=2, dtype=np.float64)
    rng = np.random.default_rng(0)
    for v in model.params.values():
        v += 0.3 * rng.standard_normal(v.shape)
    idx, targets = _batch(cfg, B=2)
    _, grads = model.loss_and_grads(idx, targets)
    base = {k: v.copy() for k, v in model.params.items()}
    for _ in range(2):
        t = {k: rng.standard_normal(v.shape) for k, v in base.items()}
        losses = []
        for sign in (1, -1):
            for k in base:
                model.params[k][...] = base[k] + sign * 1e-6 * t[k]
            losses.append(model.loss_and_grads(idx, targets)[0])
        fd = (losses[0] - losses[1]) / 2e-6
        exact = sum(float(np.vdot(grads[k], t[k])) for k in base)
        record_error(
            "qwen3[tied]", "fd directional derivative (f64)", abs(fd - exact) / abs(exact), 1e-7
        )


def _pair(cfg, params, dtype="float64"):
    np_model = numpy_impl.Qwen3Model(cfg, dtype=np.dtype(dtype))
    np_model.load_state_dict({k: v.astype(dtype) for k, v in params.items()})
    t_model = torch_impl.Qwen3Model(cfg, dtype=getattr(torch, dtype))
    t_model.load_state_dict({k: torch.from_numpy(v.astype(dtype)) for k, v in params.items()})
    return np_model, t_model.eval()


def test_greedy_tokens_equal_transformers_generate(variant):
    """Greedy decoding: transformers' generate (its own KV cache) and ours, both backends, cached
    and uncached, the same tokens."""
    _, cfg, model, params = variant
    prompt = np.random.default_rng(4).integers(0, cfg["vocab_size"], (2, 3))
    n = cfg["context_length"] - 3
    with float64_internals(), torch.no_grad():
        ref = model.generate(
            torch.from_numpy(prompt),
            attention_mask=torch.ones(prompt.shape, dtype=torch.long),
            max_new_tokens=n,
            do_sample=False,
            pad_token_id=0,
            eos_token_id=None,
        ).numpy()
    for m in _pair(cfg, params):
        for use_cache in (True, False):
            np.testing.assert_array_equal(generate(m, prompt, n, use_cache=use_cache), ref)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_kv_cache_in_chunks_rotates_at_the_true_positions(variant, backend, record_error):
    """Prefill 3 tokens, then 1, 4 and 4 over the cache: every position's logits equal the full
    forward's (a new token rotated at position 0 instead of cache.length would not)."""
    name, cfg, _, params = variant
    idx, _ = _batch(cfg, B=2)
    np_model, t_model = _pair(cfg, params)
    chunks = ((0, 3), (3, 4), (4, 8), (8, 12))
    lm = NumpyLM(np_model) if backend == "numpy" else TorchLM(t_model)
    cache = KVCache(cfg["n_layers"], 2, cfg["context_length"], lm.empty)
    parts = []
    with torch.no_grad():
        for a, b in chunks:
            if backend == "numpy":
                parts.append(numpy_impl.forward_cached(np_model, idx[:, a:b], cache, False))
            else:
                part = torch_impl.forward_cached(
                    t_model, torch.from_numpy(idx[:, a:b]), cache, False
                )
                parts.append(part.numpy())
            cache.advance(idx[:, a:b])
    assert cache.keys[0].shape == (2, cfg["n_kv_heads"], cfg["context_length"], cfg["head_dim"])
    full = np_model.forward(idx)
    err = rel_error(np.concatenate(parts, axis=1), full)
    record_error(f"qwen3[{name}]", f"kv cache chunks/full {backend} (f64)", err, 1e-12)


def test_dropout_is_refused_and_inputs_checked():
    cfg = VARIANTS["tied"]
    model = numpy_impl.Qwen3Model(cfg)
    idx = np.zeros((1, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="Qwen3 is dropout-free"):
        model.forward(idx, dropout_masks={"drop_emb": np.ones((1, 4, 16))})
    with pytest.raises(ValueError, match="Qwen3 is dropout-free"):
        torch_impl.Qwen3Model(cfg)(torch.from_numpy(idx), dropout_masks={"x": torch.ones(1)})
    with pytest.raises(ValueError, match=r"idx must lie in \[0, 67\)"):
        model.forward(np.full((1, 4), 67))
    with pytest.raises(ValueError, match="more than context_length 12"):
        model.forward(np.zeros((1, 13), dtype=np.int64))
    with pytest.raises(RuntimeError, match="backward needs a forward first"):
        numpy_impl.Qwen3Model(cfg).backward(np.zeros((1, 4, 67)))
    with pytest.raises(ValueError, match=r"n_heads'\] \(4\) must be divisible by cfg\['n_kv_heads"):
        numpy_impl.Qwen3Model({**cfg, "n_kv_heads": 3})
    with pytest.raises(ValueError, match="head_dim'\\] must be even"):
        torch_impl.Qwen3Model({**cfg, "head_dim": 5})
    with pytest.raises(ValueError, match=r"keys \['drop_rate'\] that a Qwen3 config does not have"):
        numpy_impl.Qwen3Model({**cfg, "drop_rate": 0.1})
    with pytest.raises(ValueError, match=r"unknown config keys \['drop_rate'\] for preset"):
        get_config("qwen3-test", drop_rate=0.1)
