"""What a training command does — `twinlm train`, `charrnn train`, `classify train` — from the
parsed flags to a finished run, the same for every model:

    with claim(--out):                      checked, locked, cleaned before any work (outdir.py)
        run = run_from_args(...)            fresh, or resumed from --resume (below)
        train(run, --out, ...)              the one loop (loop.py)

Resuming can extend a run. The settings are the checkpoint's, changed only by the flags given on
the command line that may change (each task lists them: the number of steps, the optimizer's);
a given flag that would change the model or the data (--hidden-size, --batch-size, --seed, …) is
refused by name. A larger --steps continues to the new total, and a schedule defined by the total
(the GPT's cosine) is stretched to it; the changes are kept in the checkpoint's history.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import fields, replace

from twinlm.training.checkpoint import SavedRun, load_run, saved_settings
from twinlm.training.distributed import is_main
from twinlm.training.loop import Run, resumed_run, train
from twinlm.training.outdir import claim


def resume_settings(
    saved: SavedRun,
    fresh,
    given: Collection[str],
    may_change: Collection[str],
    flag_of: dict[str, str] | None = None,
):
    """The settings a resumed run continues with: the checkpoint's, changed by the flags given on
    the command line (`given`: their names) whose fields are in `may_change` (the number of steps,
    the optimizer's); `fresh` holds the values the flags set (settings_from_args), flag_of maps a
    field to its flag where the names differ. A given flag that would change any other field —
    the model or the data — is refused, by name. Returns (settings, {field: (old, new)})."""
    cls, where = type(fresh), saved.path or "the checkpoint"
    old = saved_settings(saved, cls)
    changes, refused = {}, set()
    for f in fields(cls):
        flag = (flag_of or {}).get(f.name, f.name)
        before, after = getattr(old, f.name), getattr(fresh, f.name)
        if flag in given and before != after:
            if f.name in may_change:
                changes[f.name] = (before, after)
            else:
                refused.add("--" + flag.replace("_", "-"))
    if refused:
        raise ValueError(
            f"{', '.join(sorted(refused))} would change the model or the data of the run being "
            f"resumed ({where}); leave them out to continue it, or start a new run"
        )
    return replace(old, **{k: new for k, (_, new) in changes.items()}), changes


def run_from_args(
    args,
    kind: str,
    fresh,
    make_task: Callable,
    may_change: Collection[str],
    flag_of: dict[str, str] | None = None,
) -> Run:
    """The run a training command starts: a fresh one with the settings `fresh`, or (--resume) the
    checkpoint's, with the flags that may change applied (resume_settings). make_task(settings,
    saved) builds the task; saved is the SavedRun being resumed, or None."""
    if not args.resume:
        return Run(make_task(fresh, None), args.backend or "numpy")
    saved = load_run(args.resume, kind)
    given = getattr(args, "given", ())
    settings, changes = resume_settings(saved, fresh, given, may_change, flag_of)
    task = make_task(settings, saved)
    backend = args.backend or saved.meta.get("backend", "numpy")
    return resumed_run(task, backend, saved, changes)


def run_command(
    args, checkpoint_name: str, build: Callable[[], Run], header: Callable[[Run], str] | None = None
) -> int:
    """A training command from start to end: claim --out before any work (outdir.py), build the
    run (run_from_args), train it."""
    if not is_main():  # data parallel: rank 0 alone claims, writes and reports (distributed.py)
        train(build(), args.out, checkpoint_minutes=args.checkpoint_minutes)
        return 0
    with claim(args.out, checkpoint_name, resume=args.resume, force=args.force):
        run = build()
        minutes = args.checkpoint_minutes
        train(run, args.out, header=header(run) if header else None, checkpoint_minutes=minutes)
    return 0
