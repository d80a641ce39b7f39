"""The GPT-2 tokenizer: golden ids from the book, round trips, and the offline fallback's plumbing.

The golden ids are the ones the book prints, produced here by the real tokenizer (tiktoken's
"gpt2" online, or the byte-identical "r50k_base" seeded from PyPI offline; the first run on a fresh
machine fetches it once). The fallback tests run on a fake openai-whisper sdist built in the test,
so they need no network.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import os
import tarfile

import numpy as np
import pytest
import tiktoken
import tiktoken.load
import tiktoken_ext.openai_public

from twinlm.data import tokenizer as tok


@pytest.fixture(scope="module")
def enc():
    return tok.get_tokenizer()


# -- the real tokenizer ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, ids",
    [
        ("Every effort moves you", [6109, 3626, 6100, 345]),  # the book, ch. 4-5
        ("Hello, I am", [15496, 11, 314, 716]),  # the book, ch. 4
        ("<|endoftext|>", [50256]),
        ("Hello, do you like tea? <|endoftext|> In the sunlit terraces of someunknownPlace.",
         [15496, 11, 466, 345, 588, 8887, 30, 220, 50256, 554, 262, 4252, 18250, 8812, 2114,
          286, 617, 34680, 27271, 13]),  # the book, ch. 2
    ],
)  # fmt: skip
def test_golden_ids(text, ids):
    assert tok.encode(text) == ids
    assert tok.decode(ids) == text


def test_vocabulary_facts(enc):
    assert enc.n_vocab == tok.VOCAB_SIZE == 50257
    assert enc.eot_token == tok.EOT_ID == 50256
    assert enc.name in ("gpt2", "r50k_base")
    assert enc.decode_single_token_bytes(tok.EOT_ID) == tok.EOT.encode()


@pytest.mark.parametrize(
    "text",
    ["", " ", "\n\n  \t", "naïve café — 東京 🙂", "Akwirw ier", "x" * 1000,
     "def f(x):\n    return x ** 2  # <|endoftext|> inside code<|endoftext|>"],
)  # fmt: skip
def test_round_trip(text):
    ids = tok.encode(text)
    assert all(isinstance(i, int) and 0 <= i < tok.VOCAB_SIZE for i in ids)
    assert tok.decode(ids) == text


def test_decode_accepts_arrays():
    ids = tok.encode("Every effort moves you")
    assert tok.decode(np.array(ids, dtype=np.int64)) == "Every effort moves you"
    assert tok.decode([np.int32(i) for i in ids]) == "Every effort moves you"


def test_get_tokenizer_is_cached():
    assert tok.get_tokenizer() is tok.get_tokenizer()


def test_bad_input():
    with pytest.raises(TypeError, match="text must be a str, got bytes"):
        tok.encode(b"Hello")
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 50257\), got 50257"):
        tok.decode([1, 50257])
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 50257\), got -1"):
        tok.decode([-1])
    with pytest.raises(TypeError, match="ids must be integers, got float 1.5"):
        tok.decode([1.5])
    with pytest.raises(ValueError, match=r"ids must be 1-D, got shape \(1, 2\)"):
        tok.decode(np.array([[1, 2]]))


def test_warm_cli(capsys):
    assert tok.main(["--warm"]) == 0
    assert "50257 tokens" in capsys.readouterr().out


# -- the offline fallback -------------------------------------------------------------------------


def test_constants_match_tiktoken():
    """The URL and hash we seed under are the ones tiktoken's r50k_base loads."""
    source = inspect.getsource(tiktoken_ext.openai_public.r50k_base)
    assert f'"{tok.R50K_URL}"' in source
    assert f'"{tok.R50K_SHA256}"' in source


def make_sdist(path, payload: bytes, member="openai-whisper-20250625/whisper/assets/gpt2.tiktoken"):
    """A tar.gz shaped like the openai-whisper sdist, holding `payload` at `member`."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in [(member, payload), ("openai-whisper-20250625/setup.py", b"# setup\n")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


FAKE = b"IQ== 0\nIg== 1\nIw== 2\n"  # a tiny rank file in tiktoken's format: b"!", b'"', b"#"
FAKE_SHA256 = hashlib.sha256(FAKE).hexdigest()


def test_seed_lands_where_tiktoken_looks(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    path = tok.seed_from_sdist(make_sdist(tmp_path / "w.tar.gz", FAKE), cache, FAKE_SHA256)
    assert path == cache / hashlib.sha1(tok.R50K_URL.encode()).hexdigest()
    assert path.read_bytes() == FAKE
    assert sorted(os.listdir(cache)) == [path.name]  # no temporary file left behind

    # tiktoken's own cache lookup finds it, with the network cut off.
    def no_network(url):
        raise AssertionError(f"tiktoken tried the network for {url}")

    monkeypatch.setattr(tiktoken.load, "read_file", no_network)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    assert tiktoken.load.load_tiktoken_bpe(tok.R50K_URL, FAKE_SHA256) == {b"!": 0, b'"': 1, b"#": 2}


def test_seed_rejects_wrong_bytes(tmp_path):
    cache = tmp_path / "cache"
    sdist = make_sdist(tmp_path / "w.tar.gz", FAKE)
    with pytest.raises(ValueError, match=f"has sha256 {FAKE_SHA256}, expected {tok.R50K_SHA256}"):
        tok.seed_from_sdist(sdist, cache)  # default: the hash tiktoken pins for r50k_base
    assert not cache.exists() or os.listdir(cache) == []


def test_seed_requires_the_member(tmp_path):
    sdist = make_sdist(tmp_path / "w.tar.gz", FAKE, member="openai-whisper-20250625/other.txt")
    with pytest.raises(ValueError, match="must contain exactly one .*gpt2.tiktoken, found 0"):
        tok.seed_from_sdist(sdist, tmp_path / "cache", FAKE_SHA256)


class FakeTiktoken:
    """Stands in for tiktoken.get_encoding: records calls and what TIKTOKEN_CACHE_DIR was."""

    def __init__(self, gpt2_error: Exception | None):
        self.gpt2_error, self.calls = gpt2_error, []

    def __call__(self, name):
        self.calls.append((name, os.environ.get("TIKTOKEN_CACHE_DIR")))
        if name == "gpt2" and self.gpt2_error:
            raise self.gpt2_error
        return f"<encoding {name}>"


@pytest.fixture
def no_user_cache_dir(monkeypatch):
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)


def test_online_path_first(tmp_path, monkeypatch, no_user_cache_dir):
    fake = FakeTiktoken(gpt2_error=None)
    monkeypatch.setattr(tiktoken, "get_encoding", fake)
    monkeypatch.setattr(tok, "download_whisper_sdist", lambda d: pytest.fail("no download needed"))
    assert tok.load_gpt2(tmp_path) == "<encoding gpt2>"
    assert fake.calls == [("gpt2", None)]  # the user's tiktoken settings, untouched


def test_fallback_seeds_then_loads_r50k(tmp_path, monkeypatch, no_user_cache_dir):
    fake = FakeTiktoken(gpt2_error=ConnectionError("Failed to resolve host"))
    monkeypatch.setattr(tiktoken, "get_encoding", fake)
    monkeypatch.setattr(tok, "R50K_SHA256", FAKE_SHA256)
    downloads = []

    def fake_download(dest_dir):
        downloads.append(dest_dir)
        return make_sdist(os.path.join(dest_dir, "openai_whisper-20250625.tar.gz"), FAKE)

    monkeypatch.setattr(tok, "download_whisper_sdist", fake_download)
    cache = tmp_path / "tiktoken"
    assert tok.load_gpt2(cache) == "<encoding r50k_base>"
    assert fake.calls == [("gpt2", None), ("r50k_base", str(cache))]
    assert tok.r50k_cache_path(cache).read_bytes() == FAKE
    assert "TIKTOKEN_CACHE_DIR" not in os.environ  # set only for the call, then restored

    # Next time: straight from the seeded cache, no network attempt, no download.
    fake.calls.clear()
    assert tok.load_gpt2(cache) == "<encoding r50k_base>"
    assert fake.calls == [("r50k_base", str(cache))]
    assert len(downloads) == 1


def test_user_cache_dir_restored(tmp_path, monkeypatch):
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "/users/own/cache")
    fake = FakeTiktoken(gpt2_error=None)
    monkeypatch.setattr(tiktoken, "get_encoding", fake)
    tok.r50k_cache_path(tmp_path).write_bytes(FAKE)
    assert tok.load_gpt2(tmp_path) == "<encoding r50k_base>"
    assert fake.calls == [("r50k_base", str(tmp_path))]
    assert os.environ["TIKTOKEN_CACHE_DIR"] == "/users/own/cache"


def test_both_paths_fail_clearly(tmp_path, monkeypatch, no_user_cache_dir):
    fake = FakeTiktoken(gpt2_error=ConnectionError("Failed to resolve host"))
    monkeypatch.setattr(tiktoken, "get_encoding", fake)

    def pip_fails(dest_dir):
        raise RuntimeError("pip download failed: no route to PyPI")

    monkeypatch.setattr(tok, "download_whisper_sdist", pip_fails)
    with pytest.raises(RuntimeError, match="(?s)Failed to resolve host.*no route to PyPI"):
        tok.load_gpt2(tmp_path)
    assert not tok.r50k_cache_path(tmp_path).exists()
