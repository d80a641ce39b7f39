"""Downloads (against a loopback HTTP server, never the internet) and the GPT data pipeline.

Expected hashes are computed here from the fixture bytes; expected windows are built here from the
book's GPTDatasetV1 loop with plain list slicing.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import zipfile
from collections import Counter
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from twinlm import cli
from twinlm.data import download as data
from twinlm.data.files import LOCK_NAME
from twinlm.data.windows import (
    batches,
    default_corpus,
    make_windows,
    num_batches,
    train_val_split,
)

# -- a loopback HTTP server -----------------------------------------------------------------------


class Server:
    """Serves `routes` {path: bytes} on 127.0.0.1 and counts requests per path; 404 otherwise."""

    def __init__(self):
        self.routes: dict[str, bytes] = {}
        self.claimed_length: dict[str, int] = {}  # announce more bytes than are sent: a cut-off
        self.hits: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.hits[self.path] += 1
                body = server.routes.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                length = server.claimed_length.get(self.path, len(body))
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # keep the test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # A short poll interval, so shutdown() returns at once.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def listing(folder) -> list[str]:
    """The cache folder's files, less the lock file every fetch holds (twinlm/data/files.py)."""
    return sorted(n for n in os.listdir(folder) if n != LOCK_NAME)


SHAKESPEARE = (
    b"First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 50
)


# -- downloads ------------------------------------------------------------------------------------


def test_download_then_cache_hit(server, tmp_path):
    server.routes["/input.txt"] = SHAKESPEARE
    url = server.url("/input.txt")
    path = data.fetch("shakespeare", tmp_path, url=url, sha256=sha256(SHAKESPEARE))
    assert path == tmp_path / "tinyshakespeare.txt"
    assert path.read_bytes() == SHAKESPEARE
    # No temporary file left; the sha256 recorded beside the file, as sha256sum writes it.
    assert listing(tmp_path) == ["tinyshakespeare.txt", "tinyshakespeare.txt.sha256"]
    assert (tmp_path / "tinyshakespeare.txt.sha256").read_text() == (
        f"{sha256(SHAKESPEARE)}  tinyshakespeare.txt\n"
    )
    assert server.hits["/input.txt"] == 1

    again = data.fetch("shakespeare", tmp_path, url=url, sha256=sha256(SHAKESPEARE))
    assert again == path and server.hits["/input.txt"] == 1  # no second request
    # A cache hit needs no network at all: the default (internet) URL is not contacted either.
    assert data.fetch("shakespeare", tmp_path, sha256=sha256(SHAKESPEARE)) == path
    # Without --sha256 the pinned hash applies (issue 22): the file fetched with another hash is
    # not served, and the mirror's bytes are refused.
    with pytest.raises(data.ChecksumError, match=data.DATASETS["shakespeare"].sha256):
        data.fetch("shakespeare", tmp_path, url=url)


def test_hash_mismatch_keeps_nothing(server, tmp_path):
    server.routes["/input.txt"] = SHAKESPEARE
    wrong = sha256(b"something else")
    with pytest.raises(data.ChecksumError, match=f"expected {wrong}, got {sha256(SHAKESPEARE)}"):
        data.fetch("shakespeare", tmp_path, url=server.url("/input.txt"), sha256=wrong)
    assert listing(tmp_path) == []


def test_pinned_hash_is_checked(server, tmp_path):
    """Without an override the pinned hash applies, so a mirror serving other bytes is refused."""
    server.routes["/the-verdict.txt"] = b"not the verdict"
    with pytest.raises(data.ChecksumError, match=data.DATASETS["verdict"].sha256):
        data.fetch("verdict", tmp_path, url=server.url("/the-verdict.txt"))
    assert listing(tmp_path) == []


def test_http_404(server, tmp_path):
    url = server.url("/missing.txt")
    with pytest.raises(data.DownloadError, match=f"download of {url} failed: HTTP 404 Not Found"):
        data.fetch("verdict", tmp_path, url=url, sha256="0" * 64)
    assert listing(tmp_path) == []


def test_connection_cut_off(server, tmp_path):
    server.routes["/input.txt"] = SHAKESPEARE
    server.claimed_length["/input.txt"] = len(SHAKESPEARE) + 1000
    url = server.url("/input.txt")
    n = len(SHAKESPEARE)
    with pytest.raises(
        data.DownloadError, match=f"failed: connection closed after {n} of {n + 1000} bytes$"
    ):
        data.fetch("shakespeare", tmp_path, url=url, sha256=sha256(SHAKESPEARE))
    assert listing(tmp_path) == []


def test_unreachable_host(tmp_path):
    s = Server()
    url = s.url("/x.txt")
    s.close()  # nothing listens on that port any more
    with pytest.raises(data.DownloadError, match=f"download of {url} failed"):
        data.fetch("verdict", tmp_path, url=url, sha256="0" * 64, timeout=5)


def make_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, body in members.items():
            z.writestr(name, body)
    return buf.getvalue()


SMS = (
    "ham\tGo until jurong point, crazy..\nspam\tFree entry in 2 a wkly comp to win £100\n".encode()
)


def test_sms_spam_zip_is_extracted(server, tmp_path):
    archive = make_zip({"SMSSpamCollection": SMS, "readme": b"SMS Spam Collection v.1\n"})
    server.routes["/sms.zip"] = archive
    url = server.url("/sms.zip")
    path = data.fetch("sms-spam", tmp_path, url=url, sha256=sha256(archive))
    assert path == tmp_path / "SMSSpamCollection.tsv"
    assert path.read_bytes() == SMS
    assert (tmp_path / "sms_spam_collection.zip").read_bytes() == archive
    assert listing(tmp_path) == [
        "SMSSpamCollection.tsv",
        "SMSSpamCollection.tsv.sha256",
        "sms_spam_collection.zip",
        "sms_spam_collection.zip.sha256",
    ]
    assert data.fetch("sms-spam", tmp_path, sha256=sha256(archive)).read_text() == SMS.decode()

    # The extracted file lost: re-extracted from the cached zip, with no new download.
    path.unlink()
    assert data.fetch("sms-spam", tmp_path, url=url, sha256=sha256(archive)).read_bytes() == SMS
    assert server.hits["/sms.zip"] == 1


def test_sms_spam_zip_without_member(server, tmp_path):
    archive = make_zip({"readme": b"nothing else\n"})
    server.routes["/sms.zip"] = archive
    with pytest.raises(
        ValueError, match="must contain 'SMSSpamCollection', it holds \\['readme'\\]"
    ):
        data.fetch("sms-spam", tmp_path, url=server.url("/sms.zip"), sha256=sha256(archive))


def test_unknown_name(tmp_path):
    with pytest.raises(
        ValueError,
        match=r"name must be one of \['verdict', 'shakespeare', 'sms-spam'\], got 'mnist'",
    ):
        data.fetch("mnist", tmp_path)


def test_registry():
    assert data.DATASETS["verdict"].url == (
        "https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/"
        "ch02/01_main-chapter-code/the-verdict.txt"
    )
    assert data.DATASETS["shakespeare"].url == (
        "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
    )
    assert data.DATASETS["sms-spam"].url == (
        "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip"
    )
    for spec in data.DATASETS.values():
        assert len(spec.sha256) == 64 and int(spec.sha256, 16) >= 0


def test_cache_root_env(monkeypatch, tmp_path):
    monkeypatch.setenv("TWINLM_CACHE", str(tmp_path))
    assert data.data_dir() == tmp_path / "data"
    monkeypatch.delenv("TWINLM_CACHE")
    assert data.cache_root() == data.Path.home() / ".cache" / "twinlm"


def test_cli_data_get(server, tmp_path, capsys):
    server.routes["/v.txt"] = b"I HAD always thought Jack Gisburn rather a cheap genius"
    args = ["data", "get", "verdict", "--cache-dir", str(tmp_path), "--url", server.url("/v.txt")]
    assert cli.main([*args, "--sha256", sha256(server.routes["/v.txt"])]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "the-verdict.txt")
    (tmp_path / "the-verdict.txt").unlink()
    assert cli.main([*args, "--sha256", "0" * 64]) == 1
    assert "sha256 mismatch" in capsys.readouterr().err


# -- the cache re-verifies what it serves (issue 10) ----------------------------------------------


def test_a_file_put_in_the_cache_is_not_trusted(server, tmp_path, capsys):
    """Before: a file placed in the cache was served forever. Now it is hashed before every use,
    against the pinned (or asked-for) hash; a file that does not match is reported and downloaded
    again."""
    server.routes["/input.txt"] = SHAKESPEARE
    url, digest = server.url("/input.txt"), sha256(SHAKESPEARE)
    placed = tmp_path / "tinyshakespeare.txt"
    placed.write_bytes(b"not shakespeare")
    assert data.fetch("shakespeare", tmp_path, url=url, sha256=digest).read_bytes() == SHAKESPEARE
    assert f"the cached {placed} has sha256 {sha256(b'not shakespeare')}" in capsys.readouterr().err
    assert server.hits["/input.txt"] == 1

    placed.write_bytes(SHAKESPEARE[:-1] + b"?")  # damaged after it was recorded
    assert data.fetch("shakespeare", tmp_path, url=url, sha256=digest).read_bytes() == SHAKESPEARE
    assert server.hits["/input.txt"] == 2 and "replacing it" in capsys.readouterr().err
    again = data.fetch("shakespeare", tmp_path, sha256=digest)  # no network
    assert again.read_bytes() == SHAKESPEARE and server.hits["/input.txt"] == 2


def test_a_wrong_cached_file_is_refused_offline(tmp_path, capsys):
    s = Server()
    url = s.url("/input.txt")
    s.close()  # offline
    (tmp_path / "tinyshakespeare.txt").write_bytes(b"not shakespeare")
    args = ["data", "get", "shakespeare", "--cache-dir", str(tmp_path), "--url", url]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert f"download of {url} failed" in err and "is not used" in err and "Traceback" not in err


def test_url_is_honoured_when_the_cache_holds_other_bytes(server, tmp_path):
    """Before: --url was ignored once a file was cached. A cached file is served for --url only if
    it is the very file the mirror must serve (the same hash); otherwise it comes from --url."""
    old, new = b"an older edition " * 20, b"the mirror's edition " * 20
    server.routes["/old.txt"], server.routes["/new.txt"] = old, new
    data.fetch("verdict", tmp_path, url=server.url("/old.txt"), sha256=sha256(old))
    got = data.fetch("verdict", tmp_path, url=server.url("/new.txt"), sha256=sha256(new))
    assert got.read_bytes() == new and server.hits["/new.txt"] == 1
    assert (tmp_path / "the-verdict.txt.sha256").read_text().split()[0] == sha256(new)


def test_parts_a_killed_download_left_are_removed(server, tmp_path):
    server.routes["/input.txt"] = SHAKESPEARE
    (tmp_path / ".tinyshakespeare.txt.a1b2c3.part").write_bytes(b"half a download")
    (tmp_path / "other.part").write_bytes(b"not ours")
    data.fetch("shakespeare", tmp_path, url=server.url("/input.txt"), sha256=sha256(SHAKESPEARE))
    assert ".tinyshakespeare.txt.a1b2c3.part" not in listing(tmp_path)
    assert "other.part" in listing(tmp_path)


def test_cache_folder_that_cannot_be_used(tmp_path, monkeypatch, capsys):
    """Before: `data get --cache-dir <a file>` and a read-only cache folder ended in tracebacks."""
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert cli.main(["data", "get", "verdict", "--cache-dir", str(a_file)]) == 2
    assert f"{a_file} is a file, not a folder" in capsys.readouterr().err

    def read_only(*args, **kwargs):  # what a read-only folder answers (root writes anywhere)
        raise PermissionError(13, "Permission denied")

    from twinlm.data import files

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    assert cli.main(["data", "get", "verdict", "--cache-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert "cannot write in the folder: Permission denied" in err and "Traceback" not in err


def test_classify_sms_spam_offline_is_one_line(tmp_path, monkeypatch, capsys):
    """Before: `classify train --data sms-spam` offline ended in a DownloadError traceback."""
    s = Server()
    url = s.url("/sms.zip")
    s.close()
    monkeypatch.setitem(data.DATASETS, "sms-spam", replace(data.DATASETS["sms-spam"], url=url))
    monkeypatch.setenv("TWINLM_CACHE", str(tmp_path / "cache"))
    assert cli.main(["classify", "train", "--data", "sms-spam", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert f"twinlm classify train: error: download of {url} failed" in err
    assert "Traceback" not in err


# -- windows --------------------------------------------------------------------------------------


def book_windows(ids: list[int], max_length: int, stride: int):
    """GPTDatasetV1's loop, verbatim in spirit: plain Python lists."""
    inputs, targets = [], []
    for i in range(0, len(ids) - max_length, stride):
        inputs.append(ids[i : i + max_length])
        targets.append(ids[i + 1 : i + max_length + 1])
    return inputs, targets


@pytest.mark.parametrize(
    "n, max_length, stride",
    [(10, 4, 1), (10, 4, 4), (10, 4, 3), (10, 4, 7), (5, 4, 1), (12, 1, 1), (12, 1, 5), (9, 8, 2)],
)
def test_windows_match_the_book(n, max_length, stride):
    ids = [int(v) for v in np.random.default_rng(n * 31 + stride).integers(0, 50257, n)]
    inputs, targets = make_windows(ids, max_length, stride)
    want_in, want_tg = book_windows(ids, max_length, stride)
    assert inputs.dtype == targets.dtype == np.int64
    assert inputs.shape == targets.shape == (len(want_in), max_length)
    assert inputs.tolist() == want_in and targets.tolist() == want_tg


@given(
    ids=st.lists(st.integers(0, 50256), min_size=2, max_size=60),
    max_length=st.integers(1, 20),
    stride=st.integers(1, 25),
)
def test_windows_match_the_book_hypothesis(ids, max_length, stride):
    if len(ids) < max_length + 1:
        with pytest.raises(ValueError, match="at least max_length"):
            make_windows(ids, max_length, stride)
        return
    inputs, targets = make_windows(np.array(ids, dtype=np.int32), max_length, stride)
    want_in, want_tg = book_windows(ids, max_length, stride)
    assert inputs.tolist() == want_in and targets.tolist() == want_tg


def test_windows_book_example():
    """The book's ch. 2 printout: max_length=4, stride=4 over the first ids of the-verdict.txt."""
    ids = [40, 367, 2885, 1464, 1807, 3619, 402, 271, 10899]
    inputs, targets = make_windows(ids, 4, 4)
    assert inputs.tolist() == [[40, 367, 2885, 1464], [1807, 3619, 402, 271]]
    assert targets.tolist() == [[367, 2885, 1464, 1807], [3619, 402, 271, 10899]]


def test_windows_bad_input():
    with pytest.raises(ValueError, match=r"at least max_length \+ 1 = 5 tokens .* got 4"):
        make_windows([1, 2, 3, 4], 4, 1)
    with pytest.raises(ValueError, match="max_length must be >= 1, got 0"):
        make_windows([1, 2, 3], 0, 1)
    with pytest.raises(ValueError, match="stride must be >= 1, got 0"):
        make_windows([1, 2, 3], 1, 0)
    with pytest.raises(TypeError, match="stride must be an integer, got float 1.0"):
        make_windows([1, 2, 3], 1, 1.0)
    with pytest.raises(TypeError, match="ids must be integer token ids, got dtype float64"):
        make_windows([1.0, 2.0, 3.0], 1, 1)
    with pytest.raises(ValueError, match=r"ids must have 1 dimensions, got shape \(2, 3\)"):
        make_windows([[1, 2, 3], [4, 5, 6]], 1, 1)


# -- split and batches ----------------------------------------------------------------------------


def test_train_val_split():
    text = "".join(chr(97 + i % 26) for i in range(1001))
    train, val = train_val_split(text)
    assert (len(train), len(val)) == (900, 101)  # int(0.9 * 1001) = 900
    assert train + val == text
    ids = list(range(50))
    train, val = train_val_split(ids, train_ratio=0.8)
    assert train == list(range(40)) and val == list(range(40, 50))
    train, val = train_val_split(np.arange(7), train_ratio=1.0)
    assert train.tolist() == list(range(7)) and val.size == 0
    with pytest.raises(ValueError, match=r"train_ratio must be in \(0, 1\], got 0"):
        train_val_split(text, 0)
    with pytest.raises(ValueError, match=r"train_ratio must be in \(0, 1\], got 1.5"):
        train_val_split(text, 1.5)


def windows(n=23, max_length=3):
    ids = np.random.default_rng(0).integers(0, 50257, n + max_length)
    return make_windows(ids, max_length, 1)


def collect(*args, **kwargs):
    return [(x.copy(), y.copy()) for x, y in batches(*args, **kwargs)]


def test_batches_deterministic_per_seed_and_epoch():
    inputs, targets = windows()
    a = collect(inputs, targets, 4, seed=7)
    b = collect(inputs, targets, 4, seed=7)
    assert len(a) == len(b) == 5  # 23 windows, batch 4, drop_last
    assert all(
        np.array_equal(x1, x2) and np.array_equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b)
    )
    other_seed = collect(inputs, targets, 4, seed=8)
    other_epoch = collect(inputs, targets, 4, seed=7, epoch=1)
    flat = np.concatenate([x for x, _ in a])
    assert not np.array_equal(flat, np.concatenate([x for x, _ in other_seed]))
    assert not np.array_equal(flat, np.concatenate([x for x, _ in other_epoch]))


def test_batches_cover_each_window_once():
    inputs, targets = windows()
    got = collect(inputs, targets, 5, seed=3, drop_last=False)
    assert [len(x) for x, _ in got] == [5, 5, 5, 5, 3]
    rows_in = np.concatenate([x for x, _ in got])
    rows_tg = np.concatenate([y for _, y in got])
    assert sorted(map(tuple, rows_in.tolist())) == sorted(map(tuple, inputs.tolist()))
    # every batch row keeps its own target row
    index = {tuple(r): k for k, r in enumerate(inputs.tolist())}
    assert all(
        np.array_equal(t, targets[index[tuple(r)]]) for r, t in zip(rows_in.tolist(), rows_tg)
    )
    assert rows_in.dtype == np.int64 and rows_in.flags.writeable


def test_batches_in_order_without_shuffle():
    inputs, targets = windows(n=10)
    got = collect(inputs, targets, 4, shuffle=False, drop_last=False)
    assert np.array_equal(np.concatenate([x for x, _ in got]), inputs)
    assert np.array_equal(np.concatenate([y for _, y in got]), targets)
    assert [len(x) for x, _ in got] == [4, 4, 2]
    assert len(collect(inputs, targets, 4, shuffle=False)) == 2 == num_batches(10, 4)
    assert num_batches(10, 4, drop_last=False) == 3


def test_batches_bad_input():
    inputs, targets = windows()
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        next(batches(inputs, targets, 0))
    with pytest.raises(ValueError, match=r"inputs and targets must have the same shape"):
        next(batches(inputs, targets[:-1], 2))
    with pytest.raises(TypeError, match="targets must be integer token ids, got dtype float64"):
        next(batches(inputs, targets.astype(np.float64), 2))
    with pytest.raises(ValueError, match=r"inputs must have 2 dimensions, got shape \(23,\)"):
        next(batches(inputs[:, 0], targets[:, 0], 2))


# -- the default corpus (its own tests: test_corpus.py) --------------------------------------------


def test_pipeline_end_to_end():
    """Default corpus -> GPT-2 ids -> windows -> batches, as training uses them."""
    from twinlm.data.tokenizer import decode, encode

    train_text, val_text = train_val_split(default_corpus(max_bytes=60_000))
    ids = encode(train_text)
    inputs, targets = make_windows(ids, max_length=32, stride=32)
    x, y = next(batches(inputs, targets, batch_size=4, seed=0))
    assert x.shape == y.shape == (4, 32)
    assert decode(x[0]).startswith(decode(x[0][:1]))
    assert np.array_equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one
    assert len(encode(val_text)) > 32
