"""The --out folder of a training run, claimed before any work starts (a run is never lost to a
folder it could not write, and never overwrites what it should not):

- it must be a folder twinlm can write in, checked now rather than after hours of training;
- one run at a time: a lock held for the whole run (twinlm/data/files.py), so a second run into
  the same folder is refused while the first is alive (exit 1), and a killed run leaves no lock;
- the temporary files of checkpoint writes that a killed process left behind are removed;
- a fresh run does not replace the checkpoint already there: that takes --resume of that very
  checkpoint (continue or extend it) or --force (start over), exit 2 otherwise — a run resumed
  from elsewhere (`--resume A --out B`) would replace B's too;
- the files the run writes (its checkpoint, its plots) are not folders, and --resume names a file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from twinlm.data.files import LOCK_NAME, exclusive, remove_stale, writable_folder
from twinlm.training.checkpoint import read_meta, temporaries


def describe(ckpt: Path) -> str:
    """'step 200 of a gpt run', or what little can be said of a damaged file."""
    meta = read_meta(ckpt)
    if meta is None:
        return "a file twinlm cannot read as a checkpoint"
    return f"step {meta.get('step', '?')} of a {meta.get('kind', '?')} run"


@contextlib.contextmanager
def claim(
    out_dir: str | os.PathLike,
    checkpoint_name: str,
    *,
    resume: str | None = None,
    force: bool = False,
    writes: tuple[str, ...] = (),
) -> Iterator[Path]:
    """Check, lock and clean --out for the length of the block (see the module docstring).
    writes: the other files the run writes in it (its plots)."""
    if resume is not None and not Path(resume).is_file():
        what = "a folder" if Path(resume).is_dir() else "not found"
        raise FileNotFoundError(f"--resume {resume}: {what}; give the checkpoint file to continue")
    out = writable_folder(out_dir, "--out")
    with exclusive(out / LOCK_NAME, f"--out {out}"):
        remove_stale(out, temporaries(checkpoint_name))
        for name in (checkpoint_name, *writes):
            if (out / name).is_dir():
                raise IsADirectoryError(
                    f"--out {out} holds a folder named {name}, where the run writes its {name}; "
                    "move it, or choose another --out"
                )
        ckpt = out / checkpoint_name
        if ckpt.exists() and not force and not (resume and _same_file(resume, ckpt)):
            how = (
                f"continue it with --resume {ckpt} (with a larger --steps to extend it)"
                if resume is None
                else f"the run resumed from {resume} would replace it: choose another --out"
            )
            raise FileExistsError(
                f"--out {out} already holds a checkpoint ({describe(ckpt)}): {how}, or pass "
                "--force to replace it"
            )
        yield out


def _same_file(a: str | os.PathLike, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
