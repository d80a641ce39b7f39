"""The --out folder of a training run, claimed before any work starts (a run is never lost to a
folder it could not write, and never overwrites what it should not):

- it must be a folder twinlm can write in, checked now rather than after hours of training;
- one run at a time: a lock held for the whole run (twinlm/data/files.py), so a second run into
  the same folder is refused while the first is alive (exit 1), and a killed run leaves no lock;
- the temporary files of checkpoint writes that a killed process left behind are removed;
- a fresh run does not replace the checkpoint already there: that takes --resume (continue or
  extend it) or --force (start over), exit 2 otherwise.
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
) -> Iterator[Path]:
    """Check, lock and clean --out for the length of the block (see the module docstring)."""
    out = writable_folder(out_dir, "--out")
    with exclusive(out / LOCK_NAME, f"--out {out}"):
        remove_stale(out, temporaries(checkpoint_name))
        ckpt = out / checkpoint_name
        if ckpt.exists() and resume is None and not force:
            raise FileExistsError(
                f"--out {out} already holds a checkpoint ({describe(ckpt)}): continue it with "
                f"--resume {ckpt} (with a larger --steps to extend it), or pass --force to "
                "replace it"
            )
        yield out
