"""Generation: the shared sampler, KV-cached vs uncached decoding, NumPy vs torch, eos, the CLI.

References, each independent of the code under test:
- the uncached loop (the book's `generate`: the full model on the cropped window at every step)
  for the KV cache, token for token and logit for logit;
- torch.argmax / torch.topk / torch.softmax for the sampler, and a chi-square bound (scipy) for
  its empirical frequencies;
- the other backend, given the same weights and the same seed;
- a plain-Python replay of the eos rule on an eos-free run.
Weights are the shared init plus noise, so biases and LayerNorm parameters are non-trivial.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import chi2

import numpy_impl
import torch_impl
from twinlm import generation
from twinlm.cli import main as cli_main
from twinlm.generation import KVCache, StepLogits, generate, generate_ids, generate_text, load_model
from twinlm.parity.harness import Float32Runs, rel_error
from twinlm.shared.config import get_config
from twinlm.shared.init import init_gpt_params
from twinlm.shared.sampling import next_tokens
from twinlm.shared.validate import require_cache_room
from twinlm.training.checkpoint import save_checkpoint

CFG = get_config("test")  # vocab 67, context 12, emb 16, 2 heads, 2 layers, qkv_bias, dropout 0.1
V, CTX = CFG["vocab_size"], CFG["context_length"]
DTYPES = {"float64": (np.float64, torch.float64), "float32": (np.float32, torch.float32)}
MODES = {  # (temperature, top_k)
    "greedy": (0.0, None),
    "sampled": (1.0, None),
    "top_k": (0.7, 5),
}


def _params(cfg=CFG, seed=0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed + 100)
    params = init_gpt_params(cfg, seed, np.float64)
    return {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in params.items()}


def _models(dtype="float64", cfg=CFG, seed=0, params=None):
    """A numpy_impl and a torch_impl GPTModel holding the same weights, _params(cfg, seed) unless
    given (torch left in train mode, so generate has to switch dropout off itself)."""
    np_dtype, t_dtype = DTYPES[dtype]
    params = _params(cfg, seed) if params is None else params
    np_model = numpy_impl.GPTModel(cfg, dtype=np_dtype)
    np_model.load_state_dict({k: v.astype(np_dtype) for k, v in params.items()})
    t_model = torch_impl.GPTModel(cfg, dtype=t_dtype)
    t_model.load_state_dict({k: torch.from_numpy(v.astype(np_dtype)) for k, v in params.items()})
    t_model.train()
    return np_model, t_model


def _prompt(batch=3, length=4, seed=1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, V, (batch, length))


def _run(backend, model, idx, n, mode, use_cache, seed=5, **kw) -> np.ndarray:
    """generate in either backend from NumPy ids; the result as NumPy int64."""
    temperature, top_k = MODES[mode]
    rng = np.random.default_rng(seed)
    opts = dict(temperature=temperature, top_k=top_k, rng=rng, use_cache=use_cache, **kw)
    out = generate(model, idx, n, **opts)
    assert out.dtype == np.int64
    return out


# ---- KV cache: cached == uncached, numpy == torch -------------------------------------------------


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_cached_uncached_numpy_torch_identical_tokens(dtype, mode):
    """4-token prompts, 20 new tokens: the sequence passes context_length 12 after 8, so the run
    covers prefill, cached decoding and the rebuilds of the cropped window."""
    np_model, t_model = _models(dtype)
    idx = _prompt()
    out = {
        (backend, cache): _run(backend, model, idx, 20, mode, cache)
        for backend, model in (("numpy", np_model), ("torch", t_model))
        for cache in (True, False)
    }
    ref = out[("numpy", False)]  # the book's loop in NumPy
    assert ref.shape == (3, 24) and ref.dtype == np.int64
    np.testing.assert_array_equal(ref[:, :4], idx)
    for key, tokens in out.items():
        np.testing.assert_array_equal(tokens, ref, err_msg=f"{key} differs from numpy uncached")
    assert t_model.training  # generate restores the mode it found


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_prompt_longer_than_context_is_cropped(backend):
    np_model, t_model = _models("float64")
    model = np_model if backend == "numpy" else t_model
    idx = _prompt(batch=2, length=CTX + 7)
    cached = _run(backend, model, idx, 6, "sampled", True)
    uncached = _run(backend, model, idx, 6, "sampled", False)
    np.testing.assert_array_equal(cached, uncached)
    np.testing.assert_array_equal(cached[:, : CTX + 7], idx)  # the whole prompt is kept
    # context_size crops harder than the model needs, like the book's generate(context_size=…)
    short = _run(backend, model, idx, 6, "greedy", True, context_size=5)
    np.testing.assert_array_equal(
        short, _run(backend, model, idx, 6, "greedy", False, context_size=5)
    )


def _cached_logits_steps(backend, model, seq, t0, monkeypatch):
    """For L = t0 .. seq.shape[1]: (StepLogits with a cache, StepLogits without) on idx[:, :L],
    float64 logits, and how many tokens each cached forward ran."""
    lm = generation.language_model(model)
    widths, cached_logits = [], lm.cached_logits

    def counting_cached_logits(idx, cache):
        widths.append(idx.shape[1])
        return cached_logits(idx, cache)

    if backend == "torch":
        model.eval()
    cached, uncached = (StepLogits(lm, seq.shape[0], CTX, use_cache) for use_cache in (True, False))
    out = []
    with monkeypatch.context() as patch:
        patch.setattr(lm, "cached_logits", counting_cached_logits)
        for L in range(t0, seq.shape[1] + 1):
            out.append((cached(seq[:, :L]), uncached(seq[:, :L])))
    return out, widths


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_cached_logits_equal_uncached_at_every_step(
    backend, record_error, record_float32, monkeypatch
):
    """Logits of every step, float64: cached vs uncached within 1e-12 relative. float32: the cached
    path against the float64 logits (of the float32-rounded weights), the uncached float32 path as
    the reference (the float32 standard in twinlm/parity/harness.py; each step one example)."""
    t0, n = 4, 16
    rounded = {k: v.astype(np.float32).astype(np.float64) for k, v in _params().items()}
    models = {"float64": _models("float64", params=rounded), "float32": _models("float32")}
    pick = 0 if backend == "numpy" else 1
    seq = _run("numpy", models["float64"][0], _prompt(length=t0), n, "sampled", False)

    steps64, widths64 = _cached_logits_steps(backend, models["float64"][pick], seq, t0, monkeypatch)
    steps32, widths32 = _cached_logits_steps(backend, models["float32"][pick], seq, t0, monkeypatch)
    runs = Float32Runs()
    for (c64, u64), (c32, u32) in zip(steps64, steps32):
        record_error(
            f"generate.kv_cache.{backend}", "logits f64 cached/uncached", rel_error(c64, u64), 1e-12
        )
        runs["cached", "logits"].add([c32], [u32], [u64])
    record_float32(f"generate.kv_cache.{backend}", runs)
    # The cache really is used: one prefill of the prompt, then one token per step until the window
    # is full, then a rebuild of the whole window at every step (absolute positions shift).
    expected = [t0] + [1] * (CTX - t0) + [CTX] * (t0 + n - CTX)
    assert widths64 == expected and widths32 == expected


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_forward_cached_in_chunks_equals_forward(backend, record_error):
    """Prefill in chunks of 5, 1 and 4 tokens (several queries over a non-empty cache, so the
    offset causal mask is exercised): every position's logits equal GPTModel.forward's."""
    np_model, t_model = _models("float64")
    idx = _prompt(length=10)
    chunks = ((0, 5), (5, 6), (6, 10))
    if backend == "numpy":
        full = np_model.forward(idx)
        cache = KVCache(CFG["n_layers"], 3, CTX, generation.NumpyLM.empty)
        parts = []
        for a, b in chunks:
            parts.append(numpy_impl.forward_cached(np_model, idx[:, a:b], cache, last_only=False))
            cache.advance(idx[:, a:b])
    else:
        t_model.eval()
        cache = KVCache(CFG["n_layers"], 3, CTX, generation.TorchLM.empty)
        with torch.no_grad():
            full = t_model(torch.from_numpy(idx)).numpy()
            parts = []
            for a, b in chunks:
                chunk = torch.from_numpy(idx[:, a:b])
                parts.append(torch_impl.forward_cached(t_model, chunk, cache, False).numpy())
                cache.advance(idx[:, a:b])
    assert cache.length == 10 and np.array_equal(cache.tokens[:, :10], idx)
    err = rel_error(np.concatenate(parts, axis=1), full)
    record_error(f"generate.kv_cache.{backend}", "chunked prefill f64", err, 1e-12)


def test_kv_cache_is_preallocated_and_appends_in_place():
    np_model, _ = _models("float32")
    step = StepLogits(generation.NumpyLM(np_model), 2, 8)
    cache = step.cache
    step(_prompt(batch=2, length=3))
    keys0 = cache.keys[0]
    assert keys0.shape == (2, CFG["n_heads"], 8, CFG["emb_dim"] // CFG["n_heads"])
    assert keys0.dtype == np.float32
    step(np.concatenate([cache.tokens[:, :3], _prompt(batch=2, length=1)], axis=1))
    assert cache.keys[0] is keys0 and cache.length == 4  # written in place, never reallocated
    with pytest.raises(ValueError, match="does not fit the cache"):  # 4 used + 5 new > 8
        require_cache_room(_prompt(batch=2, length=5), batch=2, length=cache.length, max_len=8)


# ---- eos --------------------------------------------------------------------------------------------


def _expected_with_eos(free_run: np.ndarray, t0: int, eos: int) -> np.ndarray:
    """The eos rule replayed on a run without eos: row r stops at its first eos (padded with eos
    after it); the output ends before the step at which the last row drew eos."""
    new = free_run[:, t0:]
    first = [int(np.argmax(row == eos)) if (row == eos).any() else len(row) for row in new]
    stop = max(first)
    out = free_run[:, : t0 + stop].copy()
    for r, f in enumerate(first):
        out[r, t0 + f :] = eos
    return out


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("use_cache", [True, False], ids=["cached", "uncached"])
def test_eos_stops_generation(backend, use_cache):
    np_model, t_model = _models("float64")
    model = np_model if backend == "numpy" else t_model
    t0, n = 3, 10
    idx = _prompt(batch=2, length=t0, seed=4)
    free = _run(backend, model, idx, n, "sampled", use_cache)
    # A token both rows draw, first at different steps: a batch where one row finishes early.
    first = {}
    for r in range(2):
        for step, tok in enumerate(free[r, t0:]):
            first.setdefault((r, int(tok)), step)
    shared = [t for t in range(V) if (0, t) in first and (1, t) in first]
    eos = next(t for t in shared if first[(0, t)] != first[(1, t)])
    got = _run(backend, model, idx, n, "sampled", use_cache, eos_id=eos)
    np.testing.assert_array_equal(got, _expected_with_eos(free, t0, eos))
    assert got.shape[1] < t0 + n  # it did stop early

    # One sequence: the book's rule, stop at eos without appending it.
    single = _run(backend, model, idx[:1], n, "sampled", use_cache)
    eos = int(single[0, t0 + 4])
    got = _run(backend, model, idx[:1], n, "sampled", use_cache, eos_id=eos)
    stop = int(np.argmax(single[0, t0:] == eos))
    np.testing.assert_array_equal(got, single[:, : t0 + stop])


# ---- the sampler ----------------------------------------------------------------------------------


def _logits(rows, vocab, seed=0, scale=2.0) -> np.ndarray:
    return scale * np.random.default_rng(seed).standard_normal((rows, vocab))


def test_temperature_zero_is_argmax():
    logits = _logits(50, 100)
    expected = torch.argmax(torch.from_numpy(logits), dim=-1).numpy()
    got = next_tokens(logits)
    assert got.dtype == np.int64 and got.shape == (50,)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(next_tokens(logits, 0.0, top_k=7), expected)
    np.testing.assert_array_equal(
        next_tokens(logits, 1e-300, rng=np.random.default_rng(0)), expected
    )


def test_top_k_one_is_greedy():
    logits = _logits(200, 30)
    got = next_tokens(logits, temperature=1.5, top_k=1, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(got, torch.argmax(torch.from_numpy(logits), dim=-1).numpy())


def test_top_k_never_picks_outside_the_top_k():
    k, draws = 5, 20_000
    row = _logits(1, 50, seed=3, scale=0.5)  # flat enough that outside tokens would be drawn often
    got = next_tokens(np.repeat(row, draws, axis=0), 3.0, top_k=k, rng=np.random.default_rng(1))
    top = set(torch.topk(torch.from_numpy(row[0]), k).indices.tolist())
    assert set(got.tolist()) == top  # every top-k token drawn, nothing else


@pytest.mark.parametrize("top_k", [None, 4])
@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0])
def test_frequencies_match_softmax(temperature, top_k):
    """Chi-square goodness of fit: 100 000 seeded draws against torch.softmax(z / T), restricted to
    the top k; the statistic stays below the 0.999 quantile (the seed makes the test exact)."""
    draws, vocab = 100_000, 8
    row = _logits(1, vocab, seed=11, scale=1.0)[0]
    z = torch.from_numpy(row) / temperature
    if top_k is not None:
        z[torch.topk(z, vocab - top_k, largest=False).indices] = float("-inf")
    probs = torch.softmax(z, dim=-1).numpy()
    got = next_tokens(np.tile(row, (draws, 1)), temperature, top_k, rng=np.random.default_rng(2))
    counts = np.bincount(got, minlength=vocab)
    kept = probs > 0
    assert counts[~kept].sum() == 0
    stat = float((((counts - draws * probs) ** 2)[kept] / (draws * probs[kept])).sum())
    assert stat < chi2.ppf(0.999, df=kept.sum() - 1), (stat, counts, probs)


def test_one_uniform_draw_per_row_and_same_seed_same_tokens():
    logits = _logits(7, 20)
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    first = next_tokens(logits, 1.0, top_k=10, rng=rng_a)
    rng_b.random(7)  # exactly one draw per row, so both backends stay in step
    assert rng_a.random() == rng_b.random()
    np.testing.assert_array_equal(first, next_tokens(logits, 1.0, 10, np.random.default_rng(9)))


@given(
    logits=arrays(
        np.float64,
        st.tuples(st.integers(1, 4), st.integers(1, 12)),
        elements=st.floats(-30, 30, allow_subnormal=False),
        fill=st.nothing(),
    ),
    temperature=st.sampled_from([0.0, 0.3, 1.0, 5.0]),
    k_frac=st.floats(0.01, 1.0),
    seed=st.integers(0, 2**16),
)
def test_sampled_token_has_positive_probability(logits, temperature, k_frac, seed):
    B, vocab = logits.shape
    k = max(1, round(k_frac * vocab))
    got = next_tokens(logits, temperature, k, np.random.default_rng(seed))
    kth = np.sort(logits, axis=-1)[:, vocab - k]
    chosen = logits[np.arange(B), got]
    assert ((got >= 0) & (got < vocab)).all()
    assert (chosen >= kth).all()  # within the top k (ties with the k-th kept, as in the book)
    if temperature == 0:
        np.testing.assert_array_equal(chosen, logits.max(axis=-1))


def test_masked_logits_are_never_drawn():
    logits = np.full((5000, 6), -np.inf)
    logits[:, [1, 4]] = [0.0, 1.0]
    got = next_tokens(logits, 1.0, rng=np.random.default_rng(0))
    assert set(got.tolist()) == {1, 4}


class _FixedDraw(np.random.Generator):
    """A Generator whose uniform draws are all `u`, to hit the ends of [0, 1) exactly."""

    def __init__(self, u: float):
        super().__init__(np.random.PCG64(0))
        self.u = u

    def random(self, size=None):
        return np.full(size, self.u)


@pytest.mark.parametrize("u", [0.0, np.nextafter(1.0, 0.0)], ids=["u=0", "u=1-ulp"])
def test_extreme_draws_pick_tokens_with_positive_probability(u):
    """u = 0 must not pick a masked first token, u just below 1 not a masked last one."""
    logits = np.array([[-np.inf, 0.0, -np.inf, 1.0, -np.inf], [-np.inf, 2.0, 1.0, 0.5, -np.inf]])
    got = next_tokens(logits, 1.0, rng=_FixedDraw(u))
    np.testing.assert_array_equal(got, [1, 1] if u == 0 else [3, 3])


# ---- text level, loading, CLI ----------------------------------------------------------------------

ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:!?'-()\n"[:V]


def _encode(text: str) -> list[int]:
    return [ALPHABET.index(c) for c in text]


def _decode(ids) -> str:
    return "".join(ALPHABET[i] for i in ids)


def test_generate_text_same_in_both_backends():
    np_model, t_model = _models("float32")
    texts = [
        generate_text(
            m,
            "Every effort",
            _encode,
            _decode,
            15,
            temperature=1.0,
            top_k=10,
            rng=np.random.default_rng(7),
        )
        for m in (np_model, t_model)
    ]
    assert texts[0] == texts[1] and texts[0].startswith("Every effort") and len(texts[0]) == 27
    ids = generate_ids(np_model, _encode("Every effort"), 15, 1.0, 10, np.random.default_rng(7))
    assert _decode(ids) == texts[0]


def _save_training_checkpoint(path, cfg, params):
    tensors = {f"model.{k}": v for k, v in params.items()}
    return save_checkpoint(path, tensors, {"kind": "gpt", "cfg": cfg, "step": 0})


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_load_model_from_checkpoint_and_weights(tmp_path, dtype):
    params = _params()
    ckpt = _save_training_checkpoint(tmp_path / "ckpt.safetensors", CFG, params)
    t_model = torch_impl.GPTModel(CFG, dtype=torch.float64)
    t_model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    torch.save(t_model.state_dict(), tmp_path / "book.pth")  # the book's own state_dict format

    models = [load_model(b, checkpoint=ckpt, dtype=dtype) for b in ("numpy", "torch")]
    models += [
        load_model(b, weights=tmp_path / "book.pth", dtype=dtype, n_heads=2)
        for b in ("numpy", "torch")
    ]
    for m in models:
        state = m.params if isinstance(m, numpy_impl.GPTModel) else m.state_dict()
        for k, v in params.items():
            a = np.asarray(state[k].detach() if hasattr(state[k], "detach") else state[k])
            assert a.dtype == np.dtype(dtype)
            np.testing.assert_array_equal(a, v.astype(dtype))
    assert not models[1].training
    assert models[0].kernels == "fast"  # the commands' op set, unless told otherwise
    assert load_model("numpy", checkpoint=ckpt, kernels="reference").kernels == "reference"
    outs = {
        generate_text(
            m, "abc", _encode, _decode, 10, temperature=0.8, top_k=5, rng=np.random.default_rng(1)
        )
        for m in models
    }
    assert len(outs) == 1


def test_cli_generate(tmp_path, capsys):
    """`twinlm generate` with the GPT-2 tokenizer, on a tiny model with GPT-2's vocabulary."""
    cfg = {**CFG, "vocab_size": 50257, "emb_dim": 8, "n_layers": 1}
    ckpt = _save_training_checkpoint(tmp_path / "gpt.safetensors", cfg, _params(cfg))
    texts = []
    for argv in (
        ["--backend", "numpy"],
        ["--backend", "torch"],
        ["--backend", "torch", "--no-cache"],
    ):
        args = [
            "generate",
            *argv,
            "--checkpoint",
            str(ckpt),
            "--max-new-tokens",
            "6",
            "--temperature",
            "1",
            "--top-k",
            "20",
            "--seed",
            "3",
        ]
        assert cli_main(args) == 0
        captured = capsys.readouterr()
        assert "6 new tokens" in captured.err and "tokens/s" in captured.err
        texts.append(captured.out)
    assert texts[0].startswith("Every effort moves you") and len(set(texts)) == 1

    missing = ["generate", "--checkpoint", str(tmp_path / "none.safetensors")]
    assert cli_main(missing) == 2
    assert "checkpoint not found" in capsys.readouterr().err


# ---- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"temperature": -0.5}, ValueError, "temperature must be finite and >= 0"),
        ({"temperature": float("nan")}, ValueError, "temperature"),
        ({"temperature": "hot"}, TypeError, "temperature must be a real number"),
        ({"top_k": 0}, ValueError, "top_k must be >= 1"),
        ({"top_k": V + 1}, ValueError, "top_k must be at most the vocabulary size 67"),
        ({"top_k": 2.5}, TypeError, "top_k must be an integer"),
        ({"temperature": 1.0}, ValueError, "rng must be a numpy.random.Generator"),
        ({"temperature": 1.0, "rng": 3}, TypeError, "rng must be a numpy.random.Generator"),
        ({"max_new_tokens": -1}, ValueError, "max_new_tokens must be >= 0"),
        ({"max_new_tokens": 2.0}, TypeError, "max_new_tokens must be an integer"),
        ({"eos_id": V}, ValueError, r"eos_id must lie in \[0, 67\)"),
        ({"context_size": CTX + 1}, ValueError, "context_size must be at most"),
        ({"context_size": 0}, ValueError, "context_size must be >= 1"),
        ({"idx": np.zeros((1, 3))}, TypeError, "idx must be an integer array"),
        ({"idx": np.full((1, 3), V)}, ValueError, r"idx must lie in \[0, 67\)"),
        ({"idx": np.zeros(3, dtype=np.int64)}, ValueError, "idx must have 2 dimensions"),
        ({"idx": np.zeros((1, 0), dtype=np.int64)}, ValueError, "at least one position"),
    ],
)
def test_generate_rejects_bad_input(backend, kwargs, error, match):
    np_model, t_model = _models("float32")
    kwargs = dict(kwargs)
    idx = kwargs.pop("idx", _prompt(batch=1))
    n = kwargs.pop("max_new_tokens", 3)
    with pytest.raises(error, match=match):
        generate(np_model if backend == "numpy" else t_model, idx, n, **kwargs)


def test_generate_wrong_container_and_untouched_input():
    np_model, t_model = _models("float32")
    idx = _prompt(batch=1)
    for model in (np_model, t_model):
        with pytest.raises(TypeError, match="idx must be a NumPy integer array"):
            generate(model, torch.from_numpy(idx), 2)
    kept = idx.copy()
    assert generate(np_model, idx, 0).shape == (1, 4)  # zero new tokens: the prompt back
    generate(np_model, idx, 3)
    np.testing.assert_array_equal(idx, kept)


@pytest.mark.parametrize(
    ("logits", "error", "match"),
    [
        (np.zeros((2, 5), dtype=np.float32), TypeError, "logits must be a float64 NumPy array"),
        (torch.zeros(2, 5, dtype=torch.float64), TypeError, "logits must be a float64 NumPy"),
        (np.zeros(5), ValueError, "logits must have 2 dimensions"),
        (np.array([[0.0, np.nan]]), ValueError, "logits must be free of NaN"),
        (np.array([[0.0, np.inf]]), ValueError, r"logits must be free of NaN and \+inf"),
        (np.full((1, 3), -np.inf), ValueError, "at least one finite value per row"),
    ],
)
def test_next_tokens_rejects_bad_logits(logits, error, match):
    with pytest.raises(error, match=match):
        next_tokens(logits)


def test_text_level_and_loader_errors(tmp_path):
    np_model, _ = _models("float32")
    with pytest.raises(TypeError, match="model must be a GPTModel or a Qwen3Model of numpy_impl"):
        generate_text(object(), "abc", _encode, _decode, 3)
    with pytest.raises(TypeError, match="prompt must be a str"):
        generate_text(np_model, b"abc", _encode, _decode, 3)
    with pytest.raises(ValueError, match="prompt must encode to at least one token"):
        generate_text(np_model, "", _encode, _decode, 3)
    with pytest.raises(ValueError, match="pass exactly one of checkpoint= .* or weights="):
        load_model("numpy")
    with pytest.raises(ValueError, match="backend must be one of"):
        load_model("jax", checkpoint="x")
    with pytest.raises(ValueError, match="dtype must be one of"):
        load_model("numpy", checkpoint="x", dtype="float16")
    bad = save_checkpoint(tmp_path / "other.safetensors", {"w": np.zeros(2)}, {"kind": "charrnn"})
    with pytest.raises(ValueError, match="is a charrnn checkpoint, not a gpt one"):
        load_model("torch", checkpoint=bad)
    params = _params()
    params.pop("out_head.weight")
    short = _save_training_checkpoint(tmp_path / "short.safetensors", CFG, params)
    with pytest.raises(ValueError, match=r"short.safetensors is missing out_head\.weight"):
        load_model("torch", checkpoint=short)
