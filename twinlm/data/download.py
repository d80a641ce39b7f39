"""Downloads for the data sets the book and the char-RNN post use, verified and cached.

    twinlm data get verdict        # the book's ch. 2-5 short story (20,479 characters)
    twinlm data get shakespeare    # Karpathy's tiny shakespeare (1,115,394 bytes)
    twinlm data get sms-spam       # the book's ch. 6 classification data (UCI zip, 5,574 messages)

Every file is checked against a pinned sha256 before it enters the cache; a download is streamed
into a temporary file in the cache directory and renamed into place only after its hash matched,
so the cache never holds a partial file. Each file's sha256 is recorded beside it (`<file>.sha256`,
the format of `sha256sum`), and a cached file is hashed again before every use, against the
`--sha256` asked for, else its record, else the pinned hash: a file that does not match (damaged,
or put there by hand) is reported and downloaded again, or refused when the download fails. A
cache hit needs no network. `--url` names a mirror: the file comes from it unless the cache holds
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

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from twinlm.data.files import LOCK_NAME, exclusive, remove_stale, writable_folder
from twinlm.shared.validate import require_choice

CHUNK = 1 << 16  # bytes per read while streaming a download


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


def _extract_member(archive: Path, member: str, dest: Path) -> Path:
    """Copy one member of a zip into `dest` (temp file + atomic rename)."""
    try:
        with zipfile.ZipFile(archive) as z:
            if member not in z.namelist():
                raise ValueError(
                    f"{archive.name} must contain {member!r}, it holds {sorted(z.namelist())}"
                )
            data = z.read(member)
    except zipfile.BadZipFile as e:
        raise ValueError(f"{archive} is not a valid zip file: {e}") from e
    return write_atomically(dest, data)


def write_atomically(dest: Path, data: bytes) -> Path:
    """Write `data` to dest through a temporary file in its folder and a rename, so the cache never
    holds a partial file."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp_name, 0o644)  # mkstemp makes it private; a cache file is plain data
        os.replace(tmp_name, dest)
    finally:
        Path(tmp_name).unlink(missing_ok=True)
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
    """The sha256 recorded beside `path`, or None."""
    try:
        return path.with_name(path.name + ".sha256").read_text().split()[0].lower()
    except (OSError, IndexError):
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
    spec = DATASETS[name]
    folder = writable_folder(data_dir(cache_dir), "the data cache (--cache-dir, $TWINLM_CACHE)")
    downloaded = folder / spec.filename
    expected = (sha256 or spec.sha256).lower()
    with exclusive(folder / LOCK_NAME, f"the data cache {folder}", wait=True):
        for stale in (spec.filename, spec.extract_to):
            if stale:
                remove_stale(folder, f".{stale}.*.part")
        final = folder / spec.extract_to if spec.extract_to else downloaded
        # The hash to hold the file to: the one asked for, else the one recorded when it entered
        # the cache (it may have come with --sha256), else the pinned one.
        want = expected if sha256 else _recorded(downloaded) or expected
        fresh = not _verified(downloaded, want)
        if fresh:
            try:
                download(url or spec.url, downloaded, want, timeout=timeout, desc=name)
            except DownloadError as e:
                if downloaded.exists():  # there, but not with the right hash: not served
                    raise DownloadError(f"{e}; the cached {downloaded} is not used") from e
                raise
            _record(downloaded, want)
        if spec.member is not None and (fresh or not _verified(final, _recorded(final))):
            _extract_member(downloaded, spec.member, final)
            _record(final, sha256_of(final))
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
