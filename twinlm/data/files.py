"""Folders that twinlm writes into — the data cache and a training run's --out — kept safe:

    writable_folder(path, what)      create it, and prove it writable now, not hours later
    writable_file(path, what)        a file to write later: not a folder, its folder writable now
    read_input(path, what)           an input file's bytes; utf8(data, path, what) its text
    exclusive(lock_file, what)       one twinlm process at a time in a folder
    remove_stale(folder, pattern)    temporary files of ours that a killed process left behind

The lock is `fcntl.flock` on a small file (`msvcrt.locking` on Windows). The operating system
releases it when the process ends, however it ends (`kill -9` included), so a lock is never stale
and nothing has to clean it up. Temporary files are removed only while holding the folder's lock,
so no live writer can lose its file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".twinlm.lock"  # the lock file in a folder twinlm writes to


class BusyError(RuntimeError):
    """Another twinlm process holds the lock (a runtime condition, not bad input: exit 1)."""

    exit_code = 1


def writable_folder(path: str | os.PathLike, what: str) -> Path:
    """Create folder `path` (and its parents) if needed and check that a file can be written in
    it; OSError naming `what` (e.g. "--out") otherwise."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(f"{what} {path} is a file, not a folder") from None
    except OSError as e:
        raise type(e)(
            e.errno, f"{what} {path}: cannot create the folder: {e.strerror or e}"
        ) from None
    if not path.is_dir():  # a symlink to a file, say
        raise NotADirectoryError(f"{what} {path} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=path, prefix=".twinlm-probe-")
    except OSError as e:
        raise type(e)(
            e.errno, f"{what} {path}: cannot write in the folder: {e.strerror or e}"
        ) from None
    os.close(fd)
    os.unlink(probe)
    return path


def writable_file(path: str | os.PathLike, what: str, suffix: str | None = None) -> Path:
    """A file a command will write when its work is done (--save, --json, --png), checked before
    the work starts: not a folder, its folder created and writable (writable_folder); `suffix`:
    the one ending it must have (a plot's format follows its name). OSError or ValueError naming
    `what` otherwise."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path} is a folder; give the file to write")
    if suffix is not None and path.suffix.lower() != suffix:
        raise ValueError(f"{what} must name a {suffix} file, got {str(path)!r}")
    writable_folder(path.parent, f"{what} {path}: its folder")
    return path


def read_input(path: str | os.PathLike, what: str) -> bytes:
    """The bytes of the input file `path` (--text, --data), OSError naming `what` otherwise."""
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise type(e)(e.errno, f"{what} {path}: {e.strerror or e}") from None


def utf8(data: bytes, path: str | os.PathLike, what: str) -> str:
    """`data` (read from `path`, given as `what`) as UTF-8 text; ValueError naming the file and
    the first byte that is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{what} {path} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
            "convert it, e.g. with iconv -t utf-8"
        ) from None


def _try_lock(fd: int, wait: bool) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_LOCK if wait else msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def exclusive(lock_file: str | os.PathLike, what: str, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive lock on `lock_file` (created if absent) for the block. wait=False: raise
    BusyError naming `what` if another process holds it; wait=True: wait for it."""
    lock_file = Path(lock_file)
    try:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise type(e)(
            e.errno, f"cannot create the lock file {lock_file}: {e.strerror or e}"
        ) from None
    try:
        if not _try_lock(fd, wait):
            os.lseek(fd, 0, os.SEEK_SET)
            holder = os.read(fd, 32).decode(errors="replace").strip()
            pid = f" (pid {holder})" if holder.isdigit() else ""
            raise BusyError(
                f"{what} is in use by another twinlm process{pid}; wait for it to finish, or "
                "choose another folder"
            )
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, f"{os.getpid()}\n".encode())  # for the message another process may show
        yield
    finally:
        os.close(fd)  # releases the lock


def remove_stale(folder: str | os.PathLike, pattern: str) -> list[Path]:
    """Delete the files in `folder` that match the glob `pattern` (call it holding the folder's
    lock, so they can only be left over from a process that died). Returns what was removed."""
    removed = []
    for path in sorted(Path(folder).glob(pattern)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed
