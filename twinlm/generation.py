"""Text generation with a GPT or a Qwen3 of either backend (book chapter 5 `generate`), with and
without a KV cache. The bookkeeping lives here once; each backend supplies only the math
(`forward_cached` in numpy_impl/generate.py and torch_impl/generate.py, which derive it).

    generate(model, idx, max_new_tokens, ...)           NumPy ids (B, T) in, (B, T + n) out
    generate_ids(model, ids, max_new_tokens, ...)       one sequence: a list of ids in and out
    generate_text(model, prompt, encode, decode, ...)   the prompt and its continuation, as text
    load_model(backend, checkpoint=... | weights=...)   a GPTModel or Qwen3Model of either backend
                                                        (read here, built by twinlm.models)

The loop, the book's: at every step take the logits of the last position of the last
`context_size` tokens, pick a token (twinlm.shared.sampling.next_tokens, one sampler for both
backends, so the same seed gives the same tokens), append it. Ids stay NumPy throughout; a torch
model gets them with torch.from_numpy and hands back float64 logits.

The cache (twinlm.shared.kv_cache.KVCache, which the backends write; `StepLogits`). Keys and values of every layer are kept for the positions
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

import numpy as np

import numpy_impl
from twinlm.models import build_language_model, check_target
from twinlm.models import torch_device as torch_device  # re-exported: it lived here before
from twinlm.shared.kv_cache import KVCache
from twinlm.shared.sampling import check_generate_args, next_tokens
from twinlm.shared.validate import require_cache_room

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


def load_model(
    backend: str,
    checkpoint: str | os.PathLike | None = None,
    weights: str | os.PathLike | None = None,
    dtype: str = "float32",
    device: str | None = None,
    n_heads: int | None = None,
    kernels: str = "fast",
):
    """A GPTModel or Qwen3Model of `backend` ("numpy" or "torch") in evaluation mode, from exactly
    one of: checkpoint: a `twinlm train` checkpoint (tensors `model.<key>`, its config in
    meta["cfg"]); weights: GPT-2 weights (Hugging Face safetensors/.bin or the book's .pth;
    twinlm.weights.load_gpt2, which also takes n_heads) or a Qwen3 folder or hub id
    (twinlm.weights.load_qwen3). dtype: "float32" or "float64"; device: torch only; kernels: the
    NumPy model's op set (numpy_impl.kernel_ops), the fast path unless told otherwise, as the
    commands run it. The model is built, checked and placed by twinlm.models.build_language_model."""
    dtype = check_target(backend, dtype, device)  # refused before a file is read
    if (checkpoint is None) == (weights is None):
        raise ValueError(
            f"pass exactly one of checkpoint= (a twinlm training checkpoint) or weights= (GPT-2 "
            f"weights or a Qwen3 folder), got checkpoint={checkpoint!r}, weights={weights!r}"
        )
    if checkpoint is not None:
        from twinlm.training.checkpoint import load_run

        saved = load_run(checkpoint, "gpt")  # refuses other kinds, damaged or non-float files
        cfg, params = saved.meta["cfg"], saved.params
    else:
        from twinlm.weights import load_pretrained

        cfg, params = load_pretrained(weights, n_heads, dtype=dtype)
    return build_language_model(backend, cfg, params, dtype, device, kernels)


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
    if args.n_heads is not None and args.weights is None:
        raise ValueError("--n-heads is for --weights (GPT-2's); a checkpoint knows its heads")
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
