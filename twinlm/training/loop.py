"""The one training loop, for every model twinlm trains: the GPT (lm.py), the char-RNN
(charrnn.py) and the spam classifier (classify.py), in either backend.

    run = Run(task, backend)                  the model, its optimizer, step 0
    while run.step < task.total_steps:
        batch = task.batch(run.step, run.carry)               seeded by the step: resumable
        loss, run.carry = engine.step(batch, task.lr(step))   one optimizer step (engines.py)
        every eval_every steps (and at the end): task.evaluate(engine), one printed line
        at each epoch's end: task.epoch_end(run)               e.g. the classifier's accuracies
        every checkpoint_every steps (and at the end): run.save(checkpoint)

Under torchrun every rank runs this loop on its share of each batch (distributed.py); rank 0 alone
evaluates, prints and writes.

A task is what differs between models: its batches and dropout masks (NumPy, drawn from a
generator seeded by the step, so both backends see the same numbers and a resumed run continues
bit for bit), its learning rate, how it is evaluated, and what its checkpoint records. `carry` is
a recurrent model's state, handed from one batch to the next (None for the others).
"""

from __future__ import annotations

import time
from dataclasses import fields
from pathlib import Path
from typing import Protocol

from twinlm.shared.naming import BACKENDS
from twinlm.shared.validate import require_choice
from twinlm.training.checkpoint import SavedRun, save_run
from twinlm.training.distributed import is_main, make_data_parallel_engine
from twinlm.training.engines import Batch, NumpyEngine, NumpyState, TorchEngine

HISTORY_KEYS = ("steps", "seen", "train_loss", "val_loss", "step_loss")


class Task(Protocol):
    kind: str  # the checkpoint's kind: "gpt", "charrnn" or "classifier"
    checkpoint_name: str  # the file train() writes in its out_dir
    cfg: dict
    settings: object  # a dataclass: dtype, seed, weight_decay, clip, eval_every, checkpoint_every
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

    def __init__(self, task: Task, backend: str):
        require_choice("backend", backend, BACKENDS)
        s = task.settings
        self.task = task
        model = task.build_model(backend)
        self.engine = make_data_parallel_engine(  # one process: engines.make_engine's
            backend, model, task.trainable_keys, s.weight_decay, s.clip
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
            dict(self.engine.params()),
            opt["steps"],
            opt["exp_avg"],
            opt["exp_avg_sq"],
            self.carry,
        )
        return save_run(path, saved)

    def restore(self, saved: SavedRun, fingerprint: str | None = None) -> Run:
        """Continue from a checkpoint: parameters, optimizer state, step, history, carried state.
        fingerprint: the task's data fingerprint, which must be the checkpoint's."""
        if fingerprint is not None and fingerprint != saved.meta.get("data"):
            raise ValueError(
                "the training data differs from the data this checkpoint was trained on; "
                "resume with the same --text (or data) and settings"
            )
        self.engine.load_params(saved.params)
        opt = self.engine.optimizer_state()
        opt.update(steps=saved.opt_steps, exp_avg=saved.exp_avg, exp_avg_sq=saved.exp_avg_sq)
        self.engine.load_optimizer_state(opt)
        self.step = int(saved.meta["step"])
        history = dict(saved.meta.get("history", {}))
        for old in ("tokens", "chars", "examples"):  # the x axis's names before "seen"
            if old in history:
                history["seen"] = history.pop(old)
        self.history = {**{k: [] for k in HISTORY_KEYS}, **history}
        if saved.carry is not None:
            self.carry = saved.carry
        return self


def train(run: Run, out_dir: str | Path, progress: bool = True, header: str | None = None) -> Path:
    """Train to task.total_steps, printing evaluations; write checkpoints and the task's report
    (plots) to out_dir. Returns the checkpoint's path. Data parallel: only rank 0 does more than
    train (the others wait for it in the next step's all-reduce)."""
    from tqdm import tqdm

    task, s = run.task, run.task.settings
    main = is_main()
    out_dir = Path(out_dir)
    ckpt = out_dir / task.checkpoint_name
    bar = tqdm(
        total=task.total_steps,
        initial=run.step,
        disable=not (progress and main),
        unit="step",
        desc=f"{task.kind} [{run.engine.backend}]",
    )
    if header and main:
        bar.write(header)
    if run.step == 0 and task.evaluate_first and main:
        bar.write(task.eval_line(run.step, run.evaluate()))
    start = epoch_start = time.perf_counter()
    first = run.step
    while run.step < task.total_steps:
        loss = run.train_step()
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}")
        if not main:
            continue
        if run.step % s.eval_every == 0 or run.step == task.total_steps:
            bar.write(task.eval_line(run.step, run.evaluate()))
        if run.step % task.per_epoch == 0:
            run.record(epoch_seconds=time.perf_counter() - epoch_start)
            line = task.epoch_end(run)
            if line:
                bar.write(line)
            epoch_start = time.perf_counter()
        if s.checkpoint_every and run.step % s.checkpoint_every == 0:
            run.save(ckpt)
    bar.close()
    if not main:
        return ckpt
    seconds = time.perf_counter() - start
    lines = task.report(run, out_dir)  # before the last save: it may add to the history
    run.save(ckpt)
    for line in lines:
        print(line)
    per_step = seconds / max(run.step - first, 1)
    print(f"checkpoint: {ckpt}\ntime: {seconds:.1f} s ({1000 * per_step:.1f} ms per step)")
    return ckpt


def settings_from_args(cls, args, **given):
    """A task's settings dataclass from parsed command-line flags: every field from the flag of the
    same name (a flag left at None keeps the field's default), then the `given` values."""
    names = {f.name for f in fields(cls)}
    flags = {k: v for k, v in vars(args).items() if k in names and v is not None}
    return cls(**{**flags, **given})
