"""The GPT-2 byte-pair tokenizer (tiktoken), with an offline-capable way to get its vocabulary.

`tiktoken.get_encoding("gpt2")` downloads the GPT-2 merge files from OpenAI's blob store the first
time it runs. Where that host is unreachable but PyPI is, we build the identical encoding another
way: tiktoken's `r50k_base` has the same 50,257 ranks, the same split pattern and the same
`<|endoftext|>` = 50256 as `gpt2`, and its rank file ships, byte for byte, inside the
`openai-whisper` source distribution on PyPI as `whisper/assets/gpt2.tiktoken`. We fetch that sdist
with pip (no install), take out that one file, check the sha256 tiktoken itself pins for r50k_base,
and put it where tiktoken's cache looks for it: `<cache dir>/<sha1 hex of the blob URL>`.
tiktoken then loads r50k_base from the cache without touching the network.

Order in `get_tokenizer()`:
1. the seeded r50k_base file is already in twinlm's cache -> load it (no network; a machine that
   needed the fallback once never waits on the unreachable host again);
2. else plain `tiktoken.get_encoding("gpt2")` (the online path, tiktoken's own cache and settings);
3. if that fails, seed the cache from PyPI (one ~0.8 MB download, about 10 s) and load r50k_base.
`TIKTOKEN_CACHE_DIR` is pointed at twinlm's cache only while tiktoken loads r50k_base, and then
restored. Warm the cache ahead of time with `python -m twinlm.data.tokenizer --warm`.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import numbers
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import tiktoken

from twinlm.data.download import cache_root, write_atomically

EOT = "<|endoftext|>"
EOT_ID = 50256
VOCAB_SIZE = 50257

# What tiktoken_ext/openai_public.py loads for r50k_base (a test checks these against it).
R50K_URL = "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken"
R50K_SHA256 = "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930"
# Where the same bytes ship on PyPI.
WHISPER_REQUIREMENT = "openai-whisper==20250625"
WHISPER_MEMBER = "whisper/assets/gpt2.tiktoken"  # under the sdist's top-level folder


class TokenizerError(RuntimeError):
    """Neither the online nor the offline way could load the GPT-2 tokenizer (a runtime failure:
    the command line reports the message and exits 1)."""

    exit_code = 1


def tiktoken_cache_dir() -> Path:
    """twinlm's tiktoken cache: `$TWINLM_CACHE/tiktoken` (default `~/.cache/twinlm/tiktoken`)."""
    return cache_root() / "tiktoken"


def r50k_cache_path(cache_dir: str | os.PathLike) -> Path:
    """The file tiktoken reads for r50k_base from `cache_dir`: named by the sha1 of its URL."""
    return Path(cache_dir) / hashlib.sha1(R50K_URL.encode()).hexdigest()


def seed_from_sdist(
    sdist: str | os.PathLike, cache_dir: str | os.PathLike, expected_sha256: str | None = None
) -> Path:
    """Copy `whisper/assets/gpt2.tiktoken` out of an openai-whisper sdist into tiktoken's cache.

    Verifies the sha256 (default: the one tiktoken pins for r50k_base) before writing; the file
    is written to a temporary name and renamed, so the cache never holds a partial file.
    """
    expected = expected_sha256 or R50K_SHA256
    with tarfile.open(sdist, "r:*") as tar:
        members = [
            m for m in tar.getmembers() if m.isfile() and m.name.endswith("/" + WHISPER_MEMBER)
        ]
        if len(members) != 1:
            raise ValueError(
                f"sdist {sdist} must contain exactly one */{WHISPER_MEMBER}, found {len(members)}"
            )
        data = tar.extractfile(members[0]).read()
    got = hashlib.sha256(data).hexdigest()
    if got != expected:
        raise ValueError(
            f"{members[0].name} in {sdist} has sha256 {got}, expected {expected} "
            "(the r50k_base rank file tiktoken pins); refusing to cache it"
        )
    dest = r50k_cache_path(cache_dir)
    dest.parent.mkdir(parents=True, exist_ok=True)
    return write_atomically(dest, data)


def download_whisper_sdist(dest_dir: str | os.PathLike, timeout: float = 600.0) -> Path:
    """`pip download` the openai-whisper sdist (no dependencies, nothing installed) into dest_dir."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(dest_dir),
        WHISPER_REQUIREMENT,
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed:\n{result.stderr.strip()[-2000:]}")
    found = sorted(Path(dest_dir).glob("openai*whisper-*.tar.gz"))
    if not found:
        raise RuntimeError(f"pip download left no openai-whisper sdist in {dest_dir}")
    return found[0]


def seed_r50k_cache(cache_dir: str | os.PathLike | None = None) -> Path:
    """Make sure tiktoken's r50k_base file is in `cache_dir` (fetching it from PyPI if needed)."""
    cache_dir = Path(cache_dir) if cache_dir is not None else tiktoken_cache_dir()
    path = r50k_cache_path(cache_dir)
    if path.exists():
        return path
    with tempfile.TemporaryDirectory(prefix="twinlm-whisper-") as tmp:
        return seed_from_sdist(download_whisper_sdist(tmp), cache_dir)


@contextlib.contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    """Set one environment variable for the duration of a block, then restore it."""
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def _load_r50k(cache_dir: Path) -> tiktoken.Encoding:
    with _env("TIKTOKEN_CACHE_DIR", str(cache_dir)):
        return tiktoken.get_encoding("r50k_base")


def load_gpt2(cache_dir: str | os.PathLike | None = None) -> tiktoken.Encoding:
    """Build the GPT-2 encoding (uncached; `get_tokenizer` is the cached entry point).

    Returns tiktoken's "gpt2" online, or the byte-identical "r50k_base" offline (see module doc).
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else tiktoken_cache_dir()
    if r50k_cache_path(cache_dir).exists():
        # A damaged file makes tiktoken delete it and try the network; then fall through and reseed.
        with contextlib.suppress(Exception):
            return _load_r50k(cache_dir)
    try:
        return tiktoken.get_encoding("gpt2")
    except Exception as online:  # requests' ConnectionError/HTTPError/timeout, a hash mismatch …
        try:
            seed_r50k_cache(cache_dir)
        except Exception as offline:
            raise TokenizerError(
                "could not load the GPT-2 tokenizer.\n"
                f"  tiktoken.get_encoding('gpt2') failed: {online}\n"
                f"  the offline fallback (the r50k_base rank file from the "
                f"{WHISPER_REQUIREMENT} sdist on PyPI) failed: {offline}\n"
                "Either needs network access once; then everything is cached."
            ) from offline
        return _load_r50k(cache_dir)


@functools.cache
def get_tokenizer() -> tiktoken.Encoding:
    """The GPT-2 tokenizer, loaded once per process (see the module docstring for how)."""
    return load_gpt2()


def encode(text: str) -> list[int]:
    """GPT-2 token ids of `text`; `<|endoftext|>` is allowed and becomes 50256."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return get_tokenizer().encode(text, allowed_special={EOT})


def decode(ids: Sequence[int]) -> str:
    """Text of GPT-2 token ids (a list, or a 1-D NumPy array / torch tensor of integers)."""
    if hasattr(ids, "tolist"):  # NumPy arrays and torch tensors
        if getattr(ids, "ndim", 1) != 1:
            raise ValueError(f"ids must be 1-D, got shape {tuple(ids.shape)}")
        ids = ids.tolist()
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise TypeError(f"ids must be integers, got {type(i).__name__} {i!r}")
        if not 0 <= i < VOCAB_SIZE:
            raise ValueError(f"ids must lie in [0, {VOCAB_SIZE}), got {i}")
    return get_tokenizer().decode([int(i) for i in ids])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m twinlm.data.tokenizer",
        description="Load the GPT-2 tokenizer once, so later runs (and tests) need no network.",
    )
    parser.add_argument("--warm", action="store_true", help="fetch and cache the tokenizer files")
    parser.add_argument("text", nargs="?", help="text to encode (prints the token ids)")
    args = parser.parse_args(argv)
    if not args.warm and args.text is None:
        parser.print_help()
        return 2
    try:
        enc = get_tokenizer()
    except RuntimeError as e:
        print(e, file=sys.stderr)
        return 1
    if args.warm:
        print(f"GPT-2 tokenizer ready: tiktoken encoding {enc.name!r}, {enc.n_vocab} tokens")
    if args.text is not None:
        print(encode(args.text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
