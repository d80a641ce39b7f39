"""Text generation with a GPT or a Qwen3 of either backend (book chapter 5 `generate`), with and
without a KV cache. The bookkeeping lives here once; each backend supplies only the math
(`forward_cached` in numpy_impl/generate.py and torch_impl/generate.py, which derive it).

    generate(model, idx, max_new_tokens, ...)           NumPy ids (B, T) in, (B, T + n) out
    generate_ids(model, ids, max_new_tokens, ...)       one sequence: a list of ids in and out
    generate_text(model, prompt, encode, decode, ...)   the prompt and its continuation, as text
    load_model(backend, checkpoint=... | weights=...)   a GPTModel or Qwen3Model of either backend

The loop, the book's: at every step take the logits of the last position of the last
`context_size` tokens, pick a token (twinlm.shared.sampling.next_tokens, one sampler for both
backends, so the same seed gives the same tokens), append it. Ids stay NumPy throughout; a torch
model gets them with torch.from_numpy and hands back float64 logits.

The cache (`KVCache`, `StepLogits`). Keys and values of every layer are kept for the positions
already run; a step then runs only the new tokens. GPT-2's position embeddings are absolute: once
the sequence is longer than `context_size`, the book crops it to the last `context_size` tokens, so
every token of the window moves to a new position and every cached key and value is stale. To give
exactly the tokens of uncached generation the cache is then rebuilt from the cropped window at
every step: past the context it saves only the output head on the other positions. Qwen3's RoPE
depends on absolute positions too (its scores only on offsets, but cropping drops the oldest
token all the same), so the same rule holds; within the window each new token is rotated at
position cache.length + t (numpy_impl/generate.py).

eos_id: the book's rule for one sequence: stop when eos_id is drawn, without appending it. In a
batch, a row that has drawn eos_id is padded with eos_id from then on, and generation stops at the
step where every row has drawn it (that step appends nothing). `main_generate` is `twinlm generate`.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

import numpy as np

import numpy_impl
from twinlm.shared.config import is_qwen3_config, validate_lm_config
from twinlm.shared.naming import BACKENDS, DTYPES, lm_names
from twinlm.shared.sampling import check_generate_args, next_tokens
from twinlm.shared.validate import (
    require_cache_room,
    require_choice,
    require_exact_keys,
    require_shape,
)


class KVCache:
    """Keys and values of every layer for the first `length` positions of a batch of sequences.

    keys[l], values[l]: (B, H, max_len, hd), allocated at the layer's first append with
    `empty(shape, like)` (a buffer of `like`'s kind, dtype and device), then written in place.
    tokens: (B, max_len) the ids those positions hold, so a caller can check the cache still
    matches its sequence. A backend's forward_cached reads `length` as the first new position and
    calls `append` once per layer; the caller then calls `advance` with the ids it ran.
    """

    def __init__(self, n_layers: int, batch: int, max_len: int, empty: Callable):
        self.keys: list = [None] * n_layers
        self.values: list = [None] * n_layers
        self.tokens = np.zeros((batch, max_len), dtype=np.int64)
        self.length = 0
        self._empty = empty

    @property
    def max_len(self) -> int:
        return self.tokens.shape[1]

    def append(self, layer: int, k, v):
        """Write k, v (B, H, T, hd) at positions [length, length + T) of `layer`; return that
        layer's keys and values for positions [0, length + T) (views, no copy)."""
        if self.keys[layer] is None:
            shape = (*k.shape[:2], self.max_len, k.shape[3])
            self.keys[layer], self.values[layer] = self._empty(shape, k), self._empty(shape, v)
        end = self.length + k.shape[2]
        self.keys[layer][:, :, self.length : end] = k  # O(T) slice write, no reallocation
        self.values[layer][:, :, self.length : end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def advance(self, idx: np.ndarray) -> None:
        """Record that the ids idx (B, T) now fill positions [length, length + T)."""
        end = self.length + idx.shape[1]
        self.tokens[:, self.length : end] = idx
        self.length = end


# ---- each backend's part: the last position's logits, with and without the cache ---------------


class NumpyLM:
    """A numpy_impl GPTModel or Qwen3Model as generation sees it: float64 logits (B, V) of the last
    position."""

    def __init__(self, model):
        self.model, self.n_layers = model, model.cfg["n_layers"]

    def last_logits(self, idx: np.ndarray) -> np.ndarray:
        return self.model.forward(idx)[:, -1].astype(np.float64)  # no rng: no dropout

    def cached_logits(self, idx: np.ndarray, cache: KVCache) -> np.ndarray:
        return numpy_impl.forward_cached(self.model, idx, cache)[:, -1].astype(np.float64)

    @staticmethod
    def empty(shape: tuple, like: np.ndarray) -> np.ndarray:
        return np.empty(shape, dtype=like.dtype)


class TorchLM:
    """A torch_impl GPTModel or Qwen3Model as generation sees it (run under no_grad, in eval
    mode)."""

    def __init__(self, model):
        import torch

        import torch_impl

        self.torch, self.forward_cached = torch, torch_impl.forward_cached
        self.model, self.n_layers = model, model.cfg["n_layers"]
        self.device = next(model.parameters()).device

    def _ids(self, idx: np.ndarray):
        return self.torch.from_numpy(np.ascontiguousarray(idx)).to(self.device)

    def last_logits(self, idx: np.ndarray) -> np.ndarray:
        with self.torch.no_grad():
            return self.model(self._ids(idx))[:, -1].double().cpu().numpy()

    def cached_logits(self, idx: np.ndarray, cache: KVCache) -> np.ndarray:
        with self.torch.no_grad():
            logits = self.forward_cached(self.model, self._ids(idx), cache)
        return logits[:, -1].double().cpu().numpy()

    @staticmethod
    def empty(shape: tuple, like):
        return like.new_empty(shape)


def language_model(model) -> NumpyLM | TorchLM:
    """The generation adapter for a GPTModel or a Qwen3Model of numpy_impl or torch_impl."""
    if isinstance(model, numpy_impl.GPTModel | numpy_impl.Qwen3Model):
        return NumpyLM(model)
    torch_impl = sys.modules.get("torch_impl")
    if torch_impl is not None and isinstance(model, torch_impl.GPTModel | torch_impl.Qwen3Model):
        return TorchLM(model)
    raise TypeError(
        "model must be a GPTModel or a Qwen3Model of numpy_impl or torch_impl, got "
        f"{type(model).__name__}"
    )


class StepLogits:
    """Called with a growing idx (B, L), returns the float64 logits (B, V) of the last position of
    idx[:, -context_size:], the book's step. With a cache, keys and values of earlier calls are
    reused: while L ≤ context_size and the cache holds a prefix of idx, only the tokens after it
    run; otherwise (the first call, another sequence, or a window that has moved) the cache is
    rebuilt from idx[:, -context_size:]. max_len: the longest idx the caller will pass, when it
    knows (generate does: prompt + new tokens); the cache then holds min(context_size, max_len)
    positions, not context_size (Qwen3-0.6B's 32768 would be 3.8 GB of float32 keys and values)."""

    def __init__(
        self,
        lm,
        batch: int,
        context_size: int,
        use_cache: bool = True,
        max_len: int | None = None,
    ):
        self.lm, self.context_size = lm, context_size
        room = context_size if max_len is None else min(context_size, max_len)
        self.cache = KVCache(lm.n_layers, batch, room, lm.empty) if use_cache else None

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        cache = self.cache
        if cache is None:
            return self.lm.last_logits(idx[:, -self.context_size :])
        n = cache.length
        reusable = n < idx.shape[1] <= min(self.context_size, cache.max_len) and np.array_equal(
            cache.tokens[:, :n], idx[:, :n]
        )
        if not reusable:
            cache.length = 0  # rebuild: prefill the (cropped) window at positions 0 ..
            n, idx = 0, idx[:, -self.context_size :]
        new = idx[:, n:]
        require_cache_room(new, batch=cache.tokens.shape[0], length=n, max_len=cache.max_len)
        logits = self.lm.cached_logits(new, cache)  # (B, V)
        cache.advance(new)
        return logits


def generate(
    model,
    idx: np.ndarray,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    eos_id: int | None = None,
    rng: np.random.Generator | None = None,
    use_cache: bool = True,
    context_size: int | None = None,
) -> np.ndarray:
    """Extend the NumPy token ids idx (B, T) by up to max_new_tokens tokens with a GPTModel or a
    Qwen3Model of numpy_impl or torch_impl; returns int64 (B, T + n). temperature 0 is greedy, > 0 samples with `rng`
    (one draw per row and step); top_k keeps the k largest logits; the model sees at most the last
    context_size tokens (default: its context_length); use_cache=False runs the book's loop, True
    gives the same tokens, faster. eos_id as in the module docstring."""
    lm = language_model(model)
    if not isinstance(idx, np.ndarray):
        raise TypeError(f"idx must be a NumPy integer array (B, T), got {type(idx).__name__}")
    cfg = model.cfg
    context_size = check_generate_args(
        idx,
        max_new_tokens,
        vocab_size=cfg["vocab_size"],
        context_length=cfg["context_length"],
        temperature=temperature,
        top_k=top_k,
        eos_id=eos_id,
        rng=rng,
        context_size=context_size,
    )
    idx = np.array(idx, dtype=np.int64)  # a copy: the caller's array is never written
    step_logits = StepLogits(
        lm, idx.shape[0], context_size, use_cache, idx.shape[1] + max_new_tokens
    )
    done = np.zeros(idx.shape[0], dtype=bool)  # rows that have drawn eos_id
    was_training = getattr(model, "training", False)
    if was_training:
        model.eval()  # torch: no dropout while generating
    try:
        for _ in range(max_new_tokens):
            token = next_tokens(step_logits(idx), temperature, top_k, rng)  # (B,)
            if eos_id is not None:
                token[done] = eos_id  # finished rows are padded with eos_id
                done |= token == eos_id
                if done.all():
                    break
            idx = np.concatenate([idx, token[:, None]], axis=1)  # (B, L + 1)
    finally:
        if was_training:
            model.train()
    return idx


def generate_ids(
    model,
    ids: list[int],
    max_new_tokens: int,
    temperature: float = 0.0,
    top_k: int | None = None,
    rng: np.random.Generator | None = None,
    eos_id: int | None = None,
    use_cache: bool = True,
) -> list[int]:
    """One sequence: the token ids `ids` followed by the new ids (eos_id is not appended, as in
    the book). Arguments as `generate`."""
    out = generate(
        model,
        np.array([ids], dtype=np.int64),
        max_new_tokens,
        temperature=temperature,
        top_k=top_k,
        eos_id=eos_id,
        rng=rng,
        use_cache=use_cache,
    )
    return out[0].tolist()


def generate_text(model, prompt: str, encode, decode, max_new_tokens: int, **options) -> str:
    """The prompt followed by up to max_new_tokens generated tokens, decoded (the whole text, as
    the book's `token_ids_to_text(generate(...))` prints it). options: as generate_ids."""
    language_model(model)  # a wrong model is named before the prompt is looked at
    if not isinstance(prompt, str):
        raise TypeError(f"prompt must be a str, got {type(prompt).__name__}")
    ids = list(encode(prompt))
    if not ids:
        raise ValueError(f"prompt must encode to at least one token, got {prompt!r}")
    return decode(generate_ids(model, ids, max_new_tokens, **options))


# ---- loading -----------------------------------------------------------------------------------


def _float_dtype(dtype) -> np.dtype:
    """The dtype named "float32" or "float64" (NumPy types accepted too) as a NumPy dtype."""
    try:
        d = None if dtype is None else np.dtype(dtype)
    except TypeError:
        d = None
    if d not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    return d


def load_model(
    backend: str,
    checkpoint: str | os.PathLike | None = None,
    weights: str | os.PathLike | None = None,
    dtype: str = "float32",
    device: str | None = None,
    n_heads: int | None = None,
):
    """A GPTModel or Qwen3Model of `backend` ("numpy" or "torch") in evaluation mode, from exactly
    one of: checkpoint: a `twinlm train` checkpoint (tensors `model.<key>`, its config in
    meta["cfg"]); weights: GPT-2 weights (Hugging Face safetensors/.bin or the book's .pth;
    twinlm.weights.load_gpt2, which also takes n_heads) or a Qwen3 folder or hub id
    (twinlm.weights.load_qwen3). dtype: "float32" or "float64"; device: torch only."""
    require_choice("backend", backend, BACKENDS)
    dtype = _float_dtype(dtype)
    if (checkpoint is None) == (weights is None):
        raise ValueError(
            f"pass exactly one of checkpoint= (a twinlm training checkpoint) or weights= (GPT-2 "
            f"weights or a Qwen3 folder), got checkpoint={checkpoint!r}, weights={weights!r}"
        )
    if device is not None and backend == "numpy":
        raise ValueError(f"device is for the torch backend only, got device={device!r} for numpy")
    if checkpoint is not None:
        from twinlm.training.checkpoint import load_run

        saved = load_run(checkpoint, "gpt")  # refuses other kinds, damaged or non-float files
        cfg, params = saved.meta["cfg"], saved.params
    else:
        from twinlm.weights import load_pretrained

        cfg, params = load_pretrained(weights, n_heads, dtype=dtype)
    cfg = validate_lm_config(dict(cfg))
    qwen3 = is_qwen3_config(cfg)
    params = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in params.items()}
    shapes = lm_names(cfg).param_shapes(cfg)
    what = " the Qwen3's parameters" if qwen3 else " the GPT's parameters"
    require_exact_keys("the loaded tensors", params, shapes, what)
    for k, shape in shapes.items():
        require_shape(k, params[k], shape)

    if backend == "numpy":
        if qwen3:  # seed None: no random init of weights about to be replaced
            model = numpy_impl.Qwen3Model(cfg, seed=None, dtype=dtype)
        else:
            model = numpy_impl.GPTModel(cfg, dtype=dtype)
        model.load_state_dict(params)
        return model
    import torch

    import torch_impl

    device = torch_device(device)
    t_dtype = getattr(torch, dtype.name)
    if qwen3:
        model = torch_impl.Qwen3Model(cfg, seed=None, dtype=t_dtype)
    else:
        model = torch_impl.GPTModel(cfg, dtype=t_dtype)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    return model.to(device).eval()


def torch_device(name: str | None):
    """torch.device(name) (default cpu), refused with a clear ValueError if this machine has no
    such device: an unknown name, or CUDA/MPS without the hardware or the build."""
    import torch

    try:
        device = torch.device(name or "cpu")
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device must be a torch device such as cpu or cuda, got {name!r}"
        ) from None
    usable = {
        "cpu": lambda: True,
        "cuda": torch.cuda.is_available,
        "mps": lambda: torch.backends.mps.is_available(),
    }.get(device.type, lambda: False)
    if not usable():
        raise ValueError(
            f"device {name!r} is not available on this machine (torch {torch.__version__})"
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA devices"
        )
    return device


def text_codec(weights: str | os.PathLike | None = None):
    """(encode, decode) for a model loaded from `weights`: the tokenizer.json of a Qwen3 folder
    (twinlm.data.hf_tokenizer), else GPT-2's BPE (training checkpoints and GPT-2 weights)."""
    from twinlm.weights import is_qwen3_weights, qwen3_folder

    if weights is not None and is_qwen3_weights(weights):
        from twinlm.data.hf_tokenizer import load_hf_tokenizer

        tokenizer = load_hf_tokenizer(qwen3_folder(weights))
        return tokenizer.encode, tokenizer.decode
    from twinlm.data.tokenizer import decode, encode

    return encode, decode


# ---- `twinlm generate` -------------------------------------------------------------------------


def main_generate(args) -> int:
    """`twinlm generate` (twinlm/cli.py parses): load, generate, print the text (stdout) and the
    speed (stderr). Returns the exit status (errors are the command line's error boundary's to
    report)."""
    backend, prompt, dtype, use_cache = args.backend, args.prompt, args.dtype, not args.no_cache
    encode, decode = text_codec(args.weights)
    model = load_model(
        backend,
        checkpoint=args.checkpoint,
        weights=args.weights,
        dtype=dtype,
        device=args.device,
        n_heads=args.n_heads,
    )
    ids = encode(prompt)
    if not ids:
        raise ValueError(f"--prompt must encode to at least one token, got {prompt!r}")
    vocab = model.cfg["vocab_size"]
    if max(ids) >= vocab:
        raise ValueError(
            f"--prompt encodes to token ids up to {max(ids)}, but the model knows "
            f"{vocab} tokens: it was trained with another tokenizer (a preset of vocab_size "
            f"{vocab}), so this tokenizer cannot talk to it"
        )
    start = time.perf_counter()
    out = generate_ids(
        model,
        ids,
        args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        rng=np.random.default_rng(args.seed),
        eos_id=args.eos_id,
        use_cache=use_cache,
    )
    seconds = time.perf_counter() - start
    print(decode(out))
    n_new = len(out) - len(ids)
    cache = "KV cache" if use_cache else "no cache"
    print(
        f"[{backend}, {dtype}, {cache}] {n_new} new tokens in {seconds:.2f} s "
        f"({n_new / max(seconds, 1e-9):.1f} tokens/s)",
        file=sys.stderr,
    )
    return 0
