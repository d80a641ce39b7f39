"""What a training command does — `twinlm train`, `charrnn train`, `classify train` — from the
parsed flags to a finished run, the same for every model:

    settings = settings_from_args(...)      the task's settings from its flags (settings.py)
    with claim(--out):                      checked, locked, cleaned before any work (outdir.py)
        run = run_from_args(...)            fresh, or resumed from --resume (below)
        train(run, --out, ...)              the one loop (loop.py)

Resuming can extend a run. The settings are the checkpoint's, changed only by the flags given on
the command line whose settings are declared as ones that may change (the number of steps, the
optimizer's: settings.py); a given flag that would change the model or the data (--hidden-size,
--batch-size, --seed, …) is refused by name. A larger --steps continues to the new total, and a
schedule defined by the total (the GPT's cosine) is stretched to it; the changes are kept in the
checkpoint's history.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np

from twinlm.training.checkpoint import SavedRun, load_run, saved_settings
from twinlm.training.distributed import active, is_main, require_same
from twinlm.training.loop import Run, resumed_run, train
from twinlm.training.outdir import claim
from twinlm.training.settings import declared, resume_with, settings_from_args


def resume_settings(saved: SavedRun, fresh, given):
    """The settings a resumed run continues with: the checkpoint's, changed by the flags given on
    the command line (`given`: the names of their settings) as the declarations allow
    (settings.resume_with); `fresh` holds the values the flags set. Returns (settings,
    {name: (old, new)})."""
    cls, where = type(fresh), saved.path or "the checkpoint"
    return resume_with(saved_settings(saved, cls), fresh, given, where)


def run_from_args(args, kind: str, fresh, make_task: Callable) -> Run:
    """The run a training command starts: a fresh one with the settings `fresh`, or (--resume) the
    checkpoint's, with the flags that may change applied (resume_settings). make_task(settings,
    saved) builds the task; saved is the SavedRun being resumed, or None."""
    if not args.resume:
        return Run(make_task(fresh, None), args.backend or "numpy", args.kernels)
    saved = load_run(args.resume, kind)
    settings, changes = resume_settings(saved, fresh, getattr(args, "given", ()))
    task = make_task(settings, saved)
    backend = args.backend or saved.meta.get("backend", "numpy")
    return resumed_run(task, backend, saved, changes, args.kernels)


def run_command(
    args,
    settings_class: type,
    task_class: type,
    make_task: Callable,
    header: Callable[[Run], str] | None = None,
) -> int:
    """A training command from start to end: its settings from the flags, claim --out before any
    work (outdir.py), build the run (run_from_args: make_task(settings, saved) -> a task of
    task_class), train it. Data parallel: rank 0 alone claims, writes and reports
    (distributed.py), and every rank checks that all of them run the same command (same_run)."""
    fresh = settings_from_args(settings_class, args)
    minutes = args.checkpoint_minutes
    if not is_main():
        run = run_from_args(args, task_class.kind, fresh, make_task)
        same_run(args, run)
        train(run, args.out, checkpoint_minutes=minutes)
        return 0
    name, writes = task_class.checkpoint_name, task_class.report_files
    with claim(args.out, name, resume=args.resume, force=args.force, writes=writes):
        run = run_from_args(args, task_class.kind, fresh, make_task)
        same_run(args, run)
        train(run, args.out, header=header(run) if header else None, checkpoint_minutes=minutes)
    return 0


# What only rank 0 uses (--out, --force, --checkpoint-minutes), what is compared by its content
# (--text, --resume), and the parser's own.
NOT_COMPARED = {"out", "force", "checkpoint_minutes", "text", "resume", "func", "given"}


def same_run(args, run: Run) -> None:
    """Data parallel: refuse (ValueError naming the flag, on every rank) ranks started with
    different flags, data or starting parameters — rank 0 would save a model that no single
    command describes. The settings are compared as resolved (a resumed run's included), every
    other flag as given (NOT_COMPARED aside); nothing happens in one process."""
    if active() is None:
        return
    settings = run.task.settings
    flags = {
        s.flag or name: getattr(settings, name)
        for name, s in declared(type(settings)).items()
        if not s.follows  # set by another setting's flag, compared there
    }
    for name, value in vars(args).items():
        if name not in NOT_COMPARED and not hasattr(settings, name):
            flags["--" + name.replace("_", "-")] = value
    flags["--backend"] = run.engine.backend
    require_same(flags)
    digest = hashlib.sha256()  # the same flags, yet other data or parameters: other files
    for key, value in sorted(run.engine.params().items()):
        digest.update(key.encode() + np.ascontiguousarray(value).tobytes())
    require_same(
        {
            "the training data (--text)": getattr(run.task, "fingerprint", None),
            "the starting parameters (--resume)": (run.step, digest.hexdigest()[:16]),
        }
    )
