"""The one training loop, for every model twinlm trains: the GPT (lm.py), the char-RNN
(charrnn.py) and the spam classifier (classify.py), in either backend.

    run = Run(task, backend)                  the model, its optimizer, step 0
    while run.step < task.total_steps:
        batch = task.batch(run.step, run.carry)               seeded by the step: resumable
        loss, run.carry = engine.step(batch, task.lr(step))   one optimizer step (engines.py)
        every eval_every steps (and at the end): task.evaluate(engine), one printed line
        at each epoch's end: task.epoch_end(run)               e.g. the classifier's accuracies
        every checkpoint_every steps (and at the end): run.save(checkpoint)

A task is what differs between models: its batches and dropout masks (NumPy, drawn from a
generator seeded by the step, so both backends see the same numbers and a resumed run continues
bit for bit), its learning rate, how it is evaluated, and what its checkpoint records. `carry` is
a recurrent model's state, handed from one batch to the next (None for the others).

A run is never lost (a command also claims its --out first: command.py, outdir.py):
- checkpoints every checkpoint_every steps and every checkpoint_minutes of wall time, and at the
  end; a non-finite model is never saved;
- SIGINT (Ctrl-C) or SIGTERM: the step under way finishes, a checkpoint is written, and train
  raises Interrupted (the command line exits 130 / 143); a second Ctrl-C stops at once, unsaved.
  Data parallel: a signal to any rank is voted on in each step's all-reduce, so every rank stops
  after the same step; rank 0 saves, and every rank raises rank 0's words (distributed.py);
- the last checkpoint is written before the report (plots): a plot that cannot be written is a
  warning, and the run is kept;
- a non-finite loss or gradient norm stops training before the optimizer applies it
  (DivergenceError, from engines.py; exit 1), and the last checkpoint written stays as it was;
- a resumed run may have new settings (more steps, another learning rate: those settings.py
  declares may change); Run.restore keeps the changes in history["resumed"], and train says so.

Under torchrun every rank runs this loop on its share of each batch (distributed.py); rank 0 alone
evaluates, prints and writes.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from twinlm.shared.naming import BACKENDS
from twinlm.shared.validate import require_choice
from twinlm.training.checkpoint import SavedRun, read_meta, save_run
from twinlm.training.distributed import (
    exchange,
    is_main,
    make_data_parallel_engine,
    watch_signals,
)
from twinlm.training.engines import Batch, DivergenceError, NumpyEngine, NumpyState, TorchEngine
from twinlm.training.settings import RunOptions

HISTORY_KEYS = ("steps", "seen", "train_loss", "val_loss", "step_loss")


class Task(Protocol):
    kind: str  # the checkpoint's kind: "gpt", "charrnn" or "classifier"
    checkpoint_name: str  # the file train() writes in its out_dir
    report_files: tuple[str, ...]  # the files report() writes there
    cfg: dict
    settings: (
        object  # a dataclass: lr, weight_decay, clip, eval_every, checkpoint_every (settings.py)
    )
    total_steps: int
    per_epoch: int  # steps per pass over the training data
    seen_per_step: int  # tokens, bytes or examples per optimizer step
    trainable_keys: list[str] | None  # None: every parameter trains
    evaluate_first: bool  # evaluate before the first step

    def build_model(self, backend: str): ...
    def initial_carry(self) -> NumpyState: ...
    def batch(self, step: int, carry: NumpyState) -> Batch: ...
    def lr(self, step: int) -> float: ...
    def evaluate(self, engine: NumpyEngine | TorchEngine) -> dict[str, float]: ...
    def eval_line(self, step: int, metrics: dict[str, float]) -> str: ...
    def epoch_end(self, run: Run) -> str | None: ...
    def meta(self) -> dict: ...
    def report(self, run: Run, out_dir: Path) -> list[str]: ...


class Run:
    """One training run: a task, the engine of one backend, the step count, the carried state and
    the history of evaluations."""

    def __init__(self, task: Task, backend: str, kernels: str | None = None):
        """kernels: the NumPy backend's op set (engines.engine_kernels: fast unless named)."""
        require_choice("backend", backend, BACKENDS)
        s = task.settings
        self.task = task
        model = task.build_model(backend)
        self.engine = make_data_parallel_engine(  # one process: engines.make_engine's
            backend,
            model,
            task.trainable_keys,
            lr=s.lr,
            weight_decay=s.weight_decay,
            clip=s.clip,
            kernels=kernels,
        )
        self.step = 0
        self.carry = task.initial_carry()
        self.history: dict[str, list] = {k: [] for k in HISTORY_KEYS}

    def train_step(self) -> float:
        batch = self.task.batch(self.step, self.carry)
        loss, self.carry = self.engine.step(batch, self.task.lr(self.step))
        self.step += 1
        self.history["step_loss"].append(loss)
        return loss

    def evaluate(self) -> dict[str, float]:
        metrics = self.task.evaluate(self.engine)
        self.record(steps=self.step, seen=self.step * self.task.seen_per_step, **metrics)
        return metrics

    def record(self, **values) -> None:
        for k, v in values.items():
            self.history.setdefault(k, []).append(v)

    # ---- checkpoints: the layout is twinlm/training/checkpoint.py's ---------------------------

    def save(self, path: str | Path) -> Path:
        params = dict(self.engine.params())
        bad = [k for k, a in params.items() if not np.isfinite(a).all()]
        if bad:
            raise DivergenceError(
                f"parameter {bad[0]} is not finite after step {self.step}; not saved"
            )
        opt = self.engine.optimizer_state()
        meta = {
            **self.task.meta(),
            "kind": self.task.kind,
            "backend": self.engine.backend,
            "step": self.step,
            "history": self.history,
        }
        saved = SavedRun(
            meta,
            params,
            opt["steps"],
            opt["exp_avg"],
            opt["exp_avg_sq"],
            self.carry,
        )
        return save_run(path, saved)

    def restore(
        self, saved: SavedRun, fingerprint: str | None = None, changes: dict | None = None
    ) -> Run:
        """Continue from a checkpoint: parameters, optimizer state, step, history, carried state.
        fingerprint: the task's data fingerprint, which must be the checkpoint's. changes: the
        settings changed on resuming ({field: (old, new)}, resume_settings), kept in the history."""
        where = saved.path or "the checkpoint"
        if fingerprint is not None and fingerprint != saved.meta.get("data"):
            raise ValueError(
                "the training data differs from the data this checkpoint was trained on; "
                "resume with the same --text (or data) and settings"
            )
        step = int(saved.meta["step"])
        missing = [
            k for k in saved.opt_steps if k not in saved.exp_avg or k not in saved.exp_avg_sq
        ]
        if missing or (step > 0 and not saved.opt_steps):
            raise ValueError(
                f"{where} holds no optimizer state{f' for {missing[0]}' if missing else ''}, so "
                "training cannot continue from it exactly (it still serves for generating, "
                "sampling or predicting)"
            )
        if step > self.task.total_steps:
            raise ValueError(
                f"{where} is at step {step}, past the {self.task.total_steps} steps this run "
                "would take: give a larger total (--steps, or --epochs) to extend it"
            )
        self.engine.load_params(saved.params, where)
        opt = self.engine.optimizer_state()
        opt.update(steps=saved.opt_steps, exp_avg=saved.exp_avg, exp_avg_sq=saved.exp_avg_sq)
        self.engine.load_optimizer_state(opt)
        self.step = step
        history = dict(saved.meta.get("history", {}))
        for old in ("tokens", "chars", "examples"):  # the x axis's names before "seen"
            if old in history:
                history["seen"] = history.pop(old)
        self.history = {**{k: [] for k in HISTORY_KEYS}, **history}
        if saved.carry is not None:
            self.carry = saved.carry
        self.changes = dict(changes or {})
        if self.changes:
            diff = {k: [old, new] for k, (old, new) in self.changes.items()}
            self.record(resumed={"step": step, "changes": diff})
        return self


def resumed_run(
    task: Task,
    backend: str,
    saved: SavedRun,
    changes: dict | None = None,
    kernels: str | None = None,
) -> Run:
    """Run(task, backend) restored from `saved` (Run.restore), once the task's model is the
    checkpoint's: settings that describe another model than its cfg (a tampered preset or layer
    count) are refused before that model is built. (The cfg, which checkpoint.load_run held to
    the tensors, gives every size; a key it lacks is one added since, such as a char-RNN's cell.)"""
    differ = [k for k, v in saved.meta["cfg"].items() if k not in task.cfg or task.cfg[k] != v]
    if differ:
        raise ValueError(
            f"{saved.path or 'the checkpoint'}: its settings describe another model than its cfg "
            f"(they differ in {', '.join(sorted(differ))})"
        )
    return Run(task, backend, kernels).restore(saved, task.fingerprint, changes)


class Interrupted(KeyboardInterrupt):
    """Training stopped by SIGINT or SIGTERM; the message says whether a checkpoint was written.
    The command line exits 128 + the signal's number (130, 143), as a shell does."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.exit_code = 128 + int(signum)


class SaveError(RuntimeError):
    """Data parallel: rank 0 could not write the checkpoint of a stop on a signal (the other ranks
    exit 1 with its reason, as rank 0 does)."""

    exit_code = 1


class _StopOnSignal:
    """SIGINT and SIGTERM while training: remember the signal and let the step under way finish
    (the loop then saves and stops). A second SIGINT raises KeyboardInterrupt at once. Only the
    main thread can take signals; elsewhere this does nothing."""

    def __init__(self, announce: bool = True):
        self.signum, self._old, self.announce = None, {}, announce

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        again = " (Ctrl-C again: stop at once, unsaved)" if signum == signal.SIGINT else ""
        name = signal.Signals(signum).name
        if self.announce:
            print(
                f"\n{name}: stopping after this step to save a checkpoint{again}", file=sys.stderr
            )

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def train(
    run: Run,
    out_dir: str | Path,
    progress: bool = True,
    header: str | None = None,
    *,
    checkpoint_minutes: float = RunOptions.checkpoint_minutes,
) -> Path:
    """Train to task.total_steps, printing evaluations; write checkpoints (see the module
    docstring) and the task's report (plots) to out_dir. Returns the checkpoint's path. Data
    parallel: only rank 0 does more than train (the others wait for it in the next all-reduce)."""
    from tqdm import tqdm

    task, s = run.task, run.task.settings
    main = is_main()
    out_dir = Path(out_dir)
    ckpt = out_dir / task.checkpoint_name
    if header and main:
        print(header)
    if run.step >= task.total_steps:
        if main:
            print(
                f"already at step {run.step}, the run's last: nothing to train (resume with a larger "
                "--steps, or --epochs, to extend it)"
            )
        return ckpt
    if getattr(run, "changes", None) and main:
        changed = ", ".join(f"{k} {old} → {new}" for k, (old, new) in run.changes.items())
        print(
            f"resuming at step {run.step} with {changed}: the learning rates from here on follow "
            f"the schedule of the new settings, to step {task.total_steps}"
        )
    meta = read_meta(ckpt) if ckpt.exists() else None
    saved_step = meta.get("step") if meta else None

    def kept() -> str:
        if saved_step is None:
            return "no checkpoint was written"
        return f"the checkpoint of step {saved_step} is kept: {ckpt}"

    def save() -> None:
        nonlocal saved_step, last_save
        try:
            run.save(ckpt)
        except OSError as e:
            raise type(e)(e.errno, f"{e.strerror or e}; {kept()}") from e
        except DivergenceError as e:
            raise DivergenceError(f"{e}; {kept()}") from None
        saved_step, last_save = run.step, time.monotonic()

    bar = tqdm(
        total=task.total_steps,
        initial=run.step,
        disable=not (progress and main),
        unit="step",
        desc=f"{task.kind} [{run.engine.backend}]",
    )
    if run.step == 0 and task.evaluate_first and main:
        bar.write(task.eval_line(run.step, run.evaluate()))
    start = epoch_start = last_save = time.monotonic()
    first = run.step
    with _StopOnSignal(announce=main) as stop:
        stop_signal = watch_signals(run.engine, lambda: stop.signum)
        try:
            while run.step < task.total_steps:
                try:
                    loss = run.train_step()
                except DivergenceError as e:
                    lr = task.lr(run.step)
                    raise DivergenceError(
                        f"training diverged at step {run.step + 1} (learning rate {lr:.3g}): {e}; "
                        f"{kept()}. Try a lower --lr."
                    ) from None
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}")
                if main:  # data parallel: the other ranks wait for rank 0 in the next all-reduce
                    if run.step % s.eval_every == 0 or run.step == task.total_steps:
                        bar.write(task.eval_line(run.step, run.evaluate()))
                    if run.step % task.per_epoch == 0:
                        run.record(epoch_seconds=time.monotonic() - epoch_start)
                        line = task.epoch_end(run)
                        if line:
                            bar.write(line)
                        epoch_start = time.monotonic()
                if (signum := stop_signal()) is not None:
                    _stop(signum, run, ckpt, save if main else None)
                if not main:
                    continue
                by_steps = s.checkpoint_every and run.step % s.checkpoint_every == 0
                by_time = (
                    checkpoint_minutes and time.monotonic() - last_save >= 60 * checkpoint_minutes
                )
                if (by_steps or by_time) and run.step < task.total_steps:
                    save()
        except KeyboardInterrupt as e:
            if isinstance(e, Interrupted):
                raise
            raise Interrupted(
                signal.SIGINT, f"stopped at once at step {run.step}; {kept()}"
            ) from None
        finally:
            bar.close()
    seconds = time.monotonic() - start
    if not main:
        return ckpt
    save()  # before the report: a plot that cannot be written must not cost the run
    recorded = {k: len(v) for k, v in run.history.items()}
    try:
        lines = task.report(run, out_dir)
    except OSError as e:
        lines = []
        print(
            f"warning: the plots were not written ({_said(e)}); the run is saved", file=sys.stderr
        )
    if {k: len(v) for k, v in run.history.items()} != recorded:
        save()  # the report added to the history (the classifier's test confusion matrix)
    for line in lines:
        print(line)
    per_step = seconds / max(run.step - first, 1)
    print(f"checkpoint: {ckpt}\ntime: {seconds:.1f} s ({1000 * per_step:.1f} ms per step)")
    return ckpt


def _said(e: OSError) -> str:
    return f"{e.filename}: {e.strerror}" if e.filename and e.strerror else str(e)


def _stop(signum: int, run: Run, ckpt: Path, save) -> None:
    """Stop training on signal `signum`: save (`save`: rank 0's, or the one process's; None on the
    other ranks), then raise Interrupted saying where the checkpoint is. Data parallel: every rank
    comes here after the same step (distributed.watch_signals) and raises rank 0's words, so every
    rank exits 128 + signum with the --resume hint — or, if the save failed, 1 with its reason."""
    name = signal.Signals(signum).name
    failure, outcome = None, None
    if save is not None:
        try:
            save()
            said = f"checkpoint saved: {ckpt} (continue with --resume {ckpt})"
            outcome = {"saved": True, "said": f"stopped by {name} at step {run.step}; {said}"}
        except (OSError, DivergenceError) as e:
            failure = e
            outcome = {"saved": False, "said": f"stopped by {name} at step {run.step}: {e}"}
    outcome = exchange(outcome)[0]  # rank 0's, for every rank
    if failure is not None:
        raise failure
    if not outcome["saved"]:
        raise SaveError(outcome["said"])
    raise Interrupted(signum, outcome["said"])
