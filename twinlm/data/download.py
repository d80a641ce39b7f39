"""Downloads for the data sets the book and the char-RNN post use, verified and cached.

    twinlm data get verdict        # the book's ch. 2-5 short story (20,479 characters)
    twinlm data get shakespeare    # Karpathy's tiny shakespeare (1,115,394 bytes)
    twinlm data get sms-spam       # the book's ch. 6 classification data (UCI zip, 5,574 messages)

Every file is checked against a pinned sha256 before it enters the cache; a download is streamed
into a temporary file in the cache directory and renamed into place only after its hash matched,
so the cache never holds a partial file. Each file's sha256 is recorded beside it (`<file>.sha256`,
the format of `sha256sum`, for people and tools: twinlm never trusts it), and a cached file is
hashed again before every use, against the `--sha256` asked for, else the pinned hash — never
against its record, which anyone who can put a file in the cache can write too. A file that does
not match (damaged, put there by hand, or fetched earlier with another --sha256) is reported and
downloaded again, or refused when the download fails. A zip's member is extracted by streaming it
(never whole in memory), and the extracted file is served only while its sha256 is that of the
member in the verified archive. A cache hit needs no network. `--url` names a mirror: the file comes from it unless the cache holds
the very bytes it must serve (same hash). One process at a time works in the cache
(twinlm/data/files.py), and removes the temporary `.part` files a killed download left. The cache
is `$TWINLM_CACHE/data` (default `~/.cache/twinlm/data`).

Where the pinned hashes come from (no file was trusted on its own word):
- shakespeare: the sha256 published by several independent projects that pin this exact URL,
  and the known size of 1,115,394 bytes.
- sms-spam: the sha256 of the UCI zip published by several independent projects that pin this
  exact URL (203,415 bytes; it holds `SMSSpamCollection`, 477,907 bytes).
- verdict: computed from a byte-exact reconstruction of the file; it reproduces every number the
  book prints for it (20,479 characters, 4,690 regex tokens, a 1,130-word vocabulary, 5,145 GPT-2
  tokens, the ids the book shows). If upstream ever changes the file, `--sha256` overrides the pin.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from twinlm.data.files import LOCK_NAME, exclusive, remove_stale, writable_folder
from twinlm.shared.validate import require_choice

CHUNK = 1 << 16  # bytes per read while streaming a download
MAX_MEMBER_BYTES = 1 << 30  # a zip member larger than this is refused (a zip bomb's)
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Dataset:
    url: str
    sha256: str  # of the downloaded file (for a zip: of the archive)
    filename: str  # the downloaded file's name in the cache
    member: str | None = None  # for a zip: the file to extract; fetch() returns its path
    extract_to: str | None = None  # the extracted member's name in the cache
    about: str = ""


DATASETS: dict[str, Dataset] = {
    "verdict": Dataset(
        url="https://raw.githubusercontent.com/rasbt/LLMs-from-scratch/main/"
        "ch02/01_main-chapter-code/the-verdict.txt",
        # Pinned from a reconstruction checked against the book's numbers (see module docstring).
        sha256="b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f",
        filename="the-verdict.txt",
        about="Edith Wharton, 'The Verdict' (1908): the book's chapters 2-5 training text",
    ),
    "shakespeare": Dataset(
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/"
        "data/tinyshakespeare/input.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        filename="tinyshakespeare.txt",
        about="tiny shakespeare from Karpathy's char-rnn (1,115,394 bytes)",
    ),
    "sms-spam": Dataset(
        url="https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip",
        sha256="1587ea43e58e82b14ff1f5425c88e17f8496bfcdb67a583dbff9eefaf9963ce3",
        filename="sms_spam_collection.zip",
        member="SMSSpamCollection",
        extract_to="SMSSpamCollection.tsv",
        about="UCI SMS Spam Collection: the book's chapter 6 data (label<TAB>text per line)",
    ),
}


class DownloadError(OSError):
    """A download failed (HTTP error, unreachable host, timeout)."""


class ChecksumError(ValueError):
    """A downloaded file's sha256 is not the pinned one; the file was not kept. A runtime failure
    (the server sent other bytes), so the command line exits 1, not 2."""

    exit_code = 1


def cache_root() -> Path:
    """twinlm's cache directory: `$TWINLM_CACHE`, else `~/.cache/twinlm`."""
    env = os.environ.get("TWINLM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "twinlm"


def data_dir(cache_dir: str | os.PathLike | None = None) -> Path:
    return Path(cache_dir) if cache_dir is not None else cache_root() / "data"


def _stream(url: str, out, timeout: float, desc: str) -> tuple[str, int, int | None]:
    """Copy the body of `url` into the open file `out`: (sha256 hex, bytes received, bytes announced)."""
    from tqdm import tqdm

    h, received = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            size = response.headers.get("Content-Length")
            total = int(size) if size and size.isdigit() else None
            # disable=None: a bar on a terminal, silence in logs and tests; none without a size
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=desc, disable=None if total else True
            ) as bar:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    h.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise DownloadError(f"download of {url} failed: HTTP {e.code} {e.reason}") from e
    except ValueError as e:  # urllib's "unknown url type"
        raise ValueError(f"--url must be a URL (https://…, file://…), got {url!r}: {e}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        raise DownloadError(f"download of {url} failed: {getattr(e, 'reason', e)}") from e
    return h.hexdigest(), received, total


def download(
    url: str, dest: str | os.PathLike, sha256: str, *, timeout: float = 60.0, desc: str = ""
) -> Path:
    """Stream `url` into `dest`, verifying its sha256 on the way; atomic, nothing kept on failure.

    Raises DownloadError (HTTP or network failure, cut-off body) or ChecksumError (hash mismatch).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # The temporary file lives beside dest, so the final rename is atomic (same file system).
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            got, received, total = _stream(url, out, timeout, desc or dest.name)
        if total is not None and received != total:
            raise DownloadError(
                f"download of {url} failed: connection closed after {received} of {total} bytes"
            )
        if got != sha256.lower():
            raise ChecksumError(
                f"sha256 mismatch for {url}: expected {sha256}, got {got}; the file was not kept. "
                "If the upstream file changed on purpose, pass its hash with --sha256."
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a cache file is plain data
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _zip_member(archive: Path, member: str, dest: Path | None = None) -> str:
    """The sha256 of one member of a zip, streamed out of it (never whole in memory); with `dest`,
    the member is also written there (temporary file + atomic rename). zipfile stops at the size
    the archive declares for the member (a CRC error beyond it); above MAX_MEMBER_BYTES it is
    refused."""
    h = hashlib.sha256()
    try:
        with zipfile.ZipFile(archive) as z:
            if member not in z.namelist():
                raise ValueError(
                    f"{archive} must contain {member!r}, it holds {sorted(z.namelist())}"
                )
            size = z.getinfo(member).file_size
            if size > MAX_MEMBER_BYTES:
                raise ValueError(
                    f"{archive}: {member} declares {size:,} bytes, more than the "
                    f"{MAX_MEMBER_BYTES:,} twinlm extracts"
                )
            write = atomic_file(dest) if dest is not None else contextlib.nullcontext()
            with z.open(member) as src, write as out:
                for chunk in iter(lambda: src.read(CHUNK), b""):
                    h.update(chunk)
                    if out is not None:
                        out.write(chunk)
    except _ZIP_ERRORS as e:
        raise ValueError(f"{archive} is not a valid zip file: {e}") from e
    return h.hexdigest()


# What zipfile raises for a damaged or unusual archive: a bad header or CRC, a cut-off or
# undecodable stream, a compression method or encryption it does not implement.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError)


@contextlib.contextmanager
def atomic_file(dest: Path) -> Iterator:
    """An open binary file that becomes `dest` when the block ends without an error (a temporary
    file in its folder, then a rename), so the cache never holds a partial file."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.chmod(tmp_name, 0o644)  # mkstemp makes it private; a cache file is plain data
        os.replace(tmp_name, dest)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def write_atomically(dest: Path, data: bytes) -> Path:
    """Write `data` to dest through a temporary file in its folder and a rename (atomic_file)."""
    with atomic_file(dest) as out:
        out.write(data)
    return dest


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _record(path: Path, digest: str) -> None:
    """Write `<path>.sha256` beside the file, in sha256sum's format."""
    write_atomically(path.with_name(path.name + ".sha256"), f"{digest}  {path.name}\n".encode())


def _recorded(path: Path) -> str | None:
    """The sha256 recorded beside `path` (its first 64 characters), or None."""
    try:
        with open(path.with_name(path.name + ".sha256"), "rb") as f:
            return f.read(64).decode("ascii").lower()
    except (OSError, UnicodeDecodeError):
        return None


def _verified(path: Path, expected: str | None) -> bool:
    """True if `path` is in the cache with the sha256 `expected`; reports a file that is there
    with another hash (it is then replaced by a fresh download or extraction)."""
    if not path.is_file() or expected is None:
        return False
    got = sha256_of(path)
    if got == expected:
        if _recorded(path) != got:
            _record(path, got)
        return True
    print(
        f"twinlm: the cached {path} has sha256 {got}, expected {expected}; replacing it",
        file=sys.stderr,
    )
    return False


def fetch(
    name: str,
    cache_dir: str | os.PathLike | None = None,
    url: str | None = None,
    sha256: str | None = None,
    *,
    timeout: float = 60.0,
) -> Path:
    """Path of data set `name` in the cache, downloading (and, for a zip, extracting) it unless
    the cache holds it with the right sha256 (checked on every call, see the module docstring).

    `url` overrides the source (a mirror); `sha256` overrides the pinned hash.
    """
    require_choice("name", name, list(DATASETS))
    if sha256 is not None and (len(sha256) != 64 or not set(sha256.lower()) <= _HEX):
        raise ValueError(
            f"--sha256 must be 64 hexadecimal digits (a sha256 as sha256sum prints it), got "
            f"{sha256!r:.80}"
        )
    spec = DATASETS[name]
    folder = writable_folder(data_dir(cache_dir), "the data cache (--cache-dir, $TWINLM_CACHE)")
    downloaded = folder / spec.filename
    want = (spec.sha256 if sha256 is None else sha256).lower()
    with exclusive(folder / LOCK_NAME, f"the data cache {folder}", wait=True):
        for stale in (spec.filename, spec.extract_to):
            if stale:
                remove_stale(folder, f".{stale}.*.part")
        final = folder / spec.extract_to if spec.extract_to else downloaded
        fresh = not _verified(downloaded, want)
        if fresh:
            try:
                download(url or spec.url, downloaded, want, timeout=timeout, desc=name)
            except DownloadError as e:
                if downloaded.exists():  # there, but not with the right hash: not served
                    raise DownloadError(f"{e}; the cached {downloaded} is not used") from e
                raise
            _record(downloaded, want)
        if spec.member is not None:
            member_sha256 = _zip_member(downloaded, spec.member)
            if fresh or not _verified(final, member_sha256):
                _zip_member(downloaded, spec.member, final)
                _record(final, member_sha256)
    return final


def read_text(name: str, cache_dir: str | os.PathLike | None = None) -> str:
    """The text of data set `name` (downloaded on first use), decoded as UTF-8; any byte that
    does not decode becomes U+FFFD instead of an error."""
    return fetch(name, cache_dir).read_text(encoding="utf-8", errors="replace")


def main_get(args) -> int:
    """`twinlm data get NAME`: fetch and print the path (what the CLI runs; its error boundary
    reports a failed download, exit 1, or an unusable --cache-dir, exit 2)."""
    print(fetch(args.name, args.cache_dir, url=args.url, sha256=args.sha256))
    return 0
