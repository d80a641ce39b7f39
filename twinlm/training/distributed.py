"""Data-parallel training over torch.distributed, for both backends, launched by torchrun:

    torchrun --standalone --nproc-per-node N -m twinlm train --batch-size B …

Every rank builds the same model from the same seed and draws the same global batch of B rows
and its dropout masks (the tasks' seeded batches, unchanged); rank r keeps rows
[r·B/N, (r+1)·B/N) of every batch, every mask and (char-RNN) every carried state.

Why this is all data parallelism is. A step's loss is the mean over the global batch's counted
targets, L = Σ_r (n_r / n) L_r, where L_r is rank r's mean over its n_r targets; the gradient is
linear, so ∇L = Σ_r (n_r / n) ∇L_r. Each rank computes ∇L_r on its rows, scales it by its share
n_r / n, and one all-reduce (a sum over ranks) hands every rank the gradient one process would have
computed for the whole batch. Clipping needs that global gradient's norm, so it comes after the
all-reduce; then every rank applies the same AdamW update to the same parameters, which therefore
stay equal without ever being sent. (Equal slices, nothing ignored: the share is 1/N, a plain
average — what DistributedDataParallel does by default.)

    NumPy   loss_and_grads on this rank's rows → the gradients flattened into one contiguous
            bucket, × share, all_reduce on a zero-copy torch.from_numpy view → unflattened (views
            of the bucket) → clip → AdamW, exactly as in one process (NumpyEngine.reduce_grads)
    torch   the real torch.nn.parallel.DistributedDataParallel; its comm hook scales each bucket
            by the share instead of 1/N before the all-reduce

One more all-reduce per step brings every rank the global mean loss and (char-RNN) the other
ranks' rows of the carried state, so every rank holds the whole carry, and a checkpoint is the one
a single process would have written: it resumes under any number of processes.

Rank 0 alone evaluates (the others wait in the next step's all-reduce), prints, and writes
checkpoints and plots (twinlm/training/loop.py asks `is_main`). Collectives time out after
TWINLM_DIST_TIMEOUT seconds (default 600), so a rank that hangs cannot hang the job forever; a rank
that raises prints one line naming itself and exits non-zero, and torchrun stops the others.

What keeps the ranks one run: the same all-reduce that sums the loss counts the ranks that have
received SIGINT or SIGTERM (watch_signals), so a signal to any one rank stops all of them after
the same step, and rank 0's checkpoint is the run's; and before the first step the ranks compare
their flags, data and starting parameters (exchange, require_same: JSON over all_gather, nothing
unpickled) and refuse to train on when they differ.
Process groups: gloo on the CPU; with a CUDA device per process, nccl for CUDA tensors and gloo
for the NumPy backend's buckets (the training commands build their models on the CPU today).
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from twinlm.training.engines import (
    Batch,
    NumpyEngine,
    NumpyState,
    TorchEngine,
    engine_kernels,
    make_engine,
)

IGNORE_INDEX = -100  # the targets cross entropy leaves out (numpy_impl/loss.py, torch_impl/loss.py)
TIMEOUT_ENV, DEFAULT_TIMEOUT_S = "TWINLM_DIST_TIMEOUT", 600.0
GRACE_S = 10.0  # how long a rank that lost a peer waits for torchrun to stop it
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # a training run saves, then stops (loop.py)


@dataclass(frozen=True)
class Group:
    rank: int
    world: int


def active() -> Group | None:
    """This process's place in the torch.distributed process group, or None outside one."""
    dist = sys.modules.get("torch.distributed")  # not even imported: no process group
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return None
    return Group(dist.get_rank(), dist.get_world_size())


def is_main() -> bool:
    """True in a single process and on rank 0: the process that prints and writes files."""
    group = active()
    return group is None or group.rank == 0


def under_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def timeout() -> timedelta:
    value = os.environ.get(TIMEOUT_ENV, str(DEFAULT_TIMEOUT_S))
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"{TIMEOUT_ENV} must be a positive number of seconds, got {value!r}")
    return timedelta(seconds=seconds)


def init_from_env() -> Group:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT)."""
    import torch
    import torch.distributed as dist

    backend = "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", 1))  # processes on this machine
    if torch.cuda.is_available() and torch.cuda.device_count() >= local_world:
        torch.cuda.set_device(local_rank)  # one GPU per process
        backend = "cpu:gloo,cuda:nccl"  # nccl for CUDA tensors, gloo for NumPy's buckets
    dist.init_process_group(backend, timeout=timeout())
    return Group(dist.get_rank(), dist.get_world_size())


@contextmanager
def launched(prog: str, anticipated: Callable[[Exception], tuple[int, str] | None] | None = None):
    """A command's whole run: under torchrun, inside the process group, and a failure of any kind
    becomes one line naming this rank (TWINLM_DEBUG=1: the traceback); otherwise nothing.

    The exit status: a stop on a signal (an exception with exit_code, such as the training loop's
    Interrupted) exits with its code, 130 or 143, the signals that follow ignored while the process
    ends (torchrun sends SIGTERM to the ranks still running once one has exited); a failure that
    `anticipated` recognises exits with the (code, message) it gives (the command line's: 2 for
    bad input, 1 for a runtime failure); anything else, a collective that broke included, exits
    1, "rank r of N failed: ..."."""
    if active() is not None:  # inside another command's process group: that one handles it
        yield active()
        return
    if not under_torchrun():
        yield None
        return
    import torch.distributed as dist

    group = init_from_env()
    try:
        yield group
    except (Exception, KeyboardInterrupt, SystemExit) as e:
        if isinstance(e, SystemExit) and e.code in (None, 0):
            raise
        if isinstance(e, KeyboardInterrupt):
            for sig in STOP_SIGNALS:  # the stop is decided and saved: nothing may cut it short
                signal.signal(sig, signal.SIG_IGN)
        if os.environ.get("TWINLM_DEBUG"):
            raise
        where = f"{prog}: rank {group.rank} of {group.world}"
        if is_collective_error(e) and "TORCHELASTIC_RUN_ID" in os.environ:
            time.sleep(GRACE_S)  # torchrun stops us first if a peer failed: it names that rank
        if isinstance(e, KeyboardInterrupt):  # a stop, with its words (the loop's Interrupted)
            print(f"{where}: {str(e) or 'interrupted'}", file=sys.stderr)
            raise SystemExit(getattr(e, "exit_code", 128 + signal.SIGINT)) from e
        known = None
        if isinstance(e, Exception) and anticipated and not is_collective_error(e):
            known = anticipated(e)
        if known is None:
            raise SystemExit(f"{where} failed: {why(e)}") from e
        code, message = known
        print(f"{where}: error: {message}", file=sys.stderr)
        raise SystemExit(code) from e
    finally:
        dist.destroy_process_group()


def why(e: BaseException) -> str:
    """One line: the exception's type and the first line of its message."""
    if isinstance(e, SystemExit):
        return str(e.code)
    if isinstance(e, KeyboardInterrupt):
        return "interrupted"
    first = (str(e).strip().splitlines() or [""])[0]
    if is_collective_error(e):  # gloo: "[path/to/pair.cc:553] Connection closed by peer …. This …"
        first = re.sub(r"^\[[^\]]*\]\s*", "", first).split(". ")[0].rstrip(".")
        return f"lost contact with another rank ({first})"
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def is_collective_error(e: BaseException) -> bool:
    """A collective broke: a peer left, or the timeout passed."""
    import torch.distributed as dist

    return isinstance(e, getattr(dist, "DistError", ())) or "gloo" in str(e).lower()


# ---- what the ranks must agree on ---------------------------------------------------------------


def exchange(value) -> list:
    """Every rank's `value` (anything JSON can write), in rank order: [value] outside a process
    group. Sent as JSON bytes over the group's all_gather, so nothing is unpickled."""
    group = active()
    if group is None:
        return [value]
    import torch
    import torch.distributed as dist

    data = json.dumps(value).encode()
    sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(group.world)]
    dist.all_gather(sizes, torch.tensor([len(data)], dtype=torch.int64))
    longest = max(int(n) for n in sizes)
    mine = torch.zeros(longest, dtype=torch.uint8)
    mine[: len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    everyone = [torch.empty(longest, dtype=torch.uint8) for _ in range(group.world)]
    dist.all_gather(everyone, mine)
    return [json.loads(bytes(b[: int(n)].numpy())) for b, n in zip(everyone, sizes)]


def require_same(values: dict[str, object]) -> None:
    """Refuse, on every rank alike, to go on when the ranks hold different `values` ({name: value},
    the names saying where each comes from: "--seed", "--text"): data parallelism needs every
    rank to run the same command on the same data, or the model rank 0 saves is one no command
    describes. ValueError naming what differs (nothing happens outside a process group)."""
    ranks = exchange({k: repr(v) for k, v in values.items()})
    differ = [k for k in values if len({r.get(k) for r in ranks}) > 1]
    if differ:
        shown = "; ".join(
            f"{k}: " + ", ".join(f"rank {i} {r.get(k)}" for i, r in enumerate(ranks))
            for k in differ
        )
        raise ValueError(
            f"the ranks differ in {', '.join(differ)} ({shown}): every rank must run the same "
            "command on the same data"
        )


# ---- this rank's share of a global batch ---------------------------------------------------------


def rows(batch_size: int, rank: int, world: int) -> slice:
    """Rank r's rows of a global batch: [r·B/N, (r+1)·B/N), rounded down (sizes differ by ≤ 1)."""
    if batch_size < world:
        raise ValueError(
            f"batch_size ({batch_size}) must be at least the number of processes ({world}): "
            "--batch-size is the global batch, split across the processes"
        )
    return slice(rank * batch_size // world, (rank + 1) * batch_size // world)


def counted(y: np.ndarray) -> int:
    """The targets the mean cross entropy counts (ignore_index left out)."""
    return int(np.count_nonzero(y != IGNORE_INDEX))


def shard(batch: Batch, group: Group) -> tuple[Batch, float]:
    """This rank's rows of a global batch — inputs, targets, dropout masks (batch axis 0) and a
    recurrent state (layers, batch, hidden) — and its share n_r / n of the counted targets
    (0 when nothing is counted: one process's loss is then nan and its gradient 0)."""
    r = rows(len(batch.x), group.rank, group.world)
    state = None
    if batch.state is not None:
        state = tuple(np.ascontiguousarray(s[:, r]) for s in batch.state)
    local = Batch(batch.x[r], batch.y[r], {k: m[r] for k, m in batch.masks.items()}, state)
    n = counted(batch.y)
    return local, (counted(local.y) / n if n else 0.0)


# ---- the step ------------------------------------------------------------------------------------


class DataParallelEngine:
    """An engine of either backend (engines.py) whose step is this rank's share of the global
    batch's step. Everything else — evaluation, parameters, optimizer state — is the inner
    engine's: those are the same on every rank."""

    def __init__(self, backend: str, model, trainable, group: Group, **optimizer):
        """optimizer: lr, weight_decay, clip, kernels (engines.make_engine's)."""
        kernels = engine_kernels(backend, optimizer.pop("kernels", None))  # NumPy's op set
        self.group, self.share = group, 1.0 / group.world
        self.local_signal: Callable[[], int | None] = lambda: None  # set by watch_signals
        self.agreed_signal: int | None = None  # set by each step's all-reduce
        if backend == "numpy":
            self.bucket: np.ndarray | None = None
            self.engine = NumpyEngine(
                model, trainable, **optimizer, reduce_grads=self.all_reduce_grads, kernels=kernels
            )
        else:
            from torch.nn.parallel import DistributedDataParallel

            device = next(model.parameters()).device
            ids = [device.index] if device.type == "cuda" else None
            ddp = DistributedDataParallel(model, device_ids=ids)  # the models have no buffers
            ddp.register_comm_hook(self, _scaled_all_reduce)
            self.engine = TorchEngine(model, trainable, **optimizer, module=ddp)

    def __getattr__(self, name):  # backend, model, eval_loss, params, load_params, …
        if name == "engine":  # not set yet
            raise AttributeError(name)
        return getattr(self.engine, name)

    def step(self, batch: Batch, lr: float) -> tuple[float, NumpyState]:
        local, self.share = shard(batch, self.group)
        loss, state = self.engine.step(local, lr)  # the gradients are all-reduced inside
        loss = self.share * loss if self.share else 0.0  # a rank counting nothing adds 0, not nan
        loss, state = self.all_reduce_rows(loss, batch.state, state)
        return (loss if counted(batch.y) else float("nan")), state

    def all_reduce_grads(self, grads: dict[str, np.ndarray]) -> None:
        """NumpyEngine's reduce_grads: flatten into one bucket, × share, sum over ranks, unflatten
        (every gradient becomes a view of the bucket, so clip and AdamW read the sums)."""
        import torch
        import torch.distributed as dist

        size = sum(g.size for g in grads.values())
        if self.bucket is None or self.bucket.size != size:
            self.bucket = np.empty(size, next(iter(grads.values())).dtype)
        np.concatenate([g.ravel() for g in grads.values()], out=self.bucket)
        self.bucket *= self.share
        dist.all_reduce(torch.from_numpy(self.bucket))  # in place, on the bucket's own memory
        offset = 0
        for k, g in grads.items():
            grads[k] = self.bucket[offset : offset + g.size].reshape(g.shape)
            offset += g.size

    def all_reduce_rows(self, loss: float, carry: NumpyState, local: NumpyState):
        """(Σ_r share_r · loss_r, the global carry with every rank's rows) in one all-reduce: each
        rank sends zeros outside its rows, and x + 0 = x exactly. The same all-reduce counts the
        ranks that have received each stop signal, so all of them learn of a signal any one got
        at the same step (agreed_signal: SIGTERM before SIGINT, None for none)."""
        import torch
        import torch.distributed as dist

        received = self.local_signal()
        votes = [float(received == sig) for sig in STOP_SIGNALS]
        parts = [np.array([loss, *votes], np.float64)]
        if carry is not None:
            r = rows(carry[0].shape[1], self.group.rank, self.group.world)
            for full, mine in zip(carry, local, strict=True):
                buf = np.zeros(full.shape, np.float64)
                buf[:, r] = mine
                parts.append(buf.ravel())
        flat = np.concatenate(parts)
        dist.all_reduce(torch.from_numpy(flat))
        got = [sig for sig, n in zip(STOP_SIGNALS, flat[1 : 1 + len(votes)]) if n > 0]
        self.agreed_signal = max(got, default=None)  # SIGTERM (15) before SIGINT (2)
        if carry is None:
            return float(flat[0]), None
        state, offset = [], 1 + len(votes)
        for full in carry:
            state.append(flat[offset : offset + full.size].reshape(full.shape).astype(full.dtype))
            offset += full.size
        return float(flat[0]), tuple(state)


def _scaled_all_reduce(engine: DataParallelEngine, bucket):
    """DDP's comm hook: this rank's share of the bucket's gradients, summed over ranks (DDP's own
    hook divides by the world size instead: the same when the slices are equal)."""
    import torch.distributed as dist

    grads = bucket.buffer()
    grads.mul_(engine.share)
    work = dist.all_reduce(grads, async_op=True)
    return work.get_future().then(lambda fut: fut.value()[0])


def watch_signals(engine, received: Callable[[], int | None]) -> Callable[[], int | None]:
    """The stop signal the training loop acts on after each step (`received`: this process's).
    Data parallel: the one any rank received, which the ranks agree on in each step's all-reduce,
    so all of them stop after the same step; one process: its own."""
    if isinstance(engine, DataParallelEngine):
        engine.local_signal = received
        return lambda: engine.agreed_signal
    return received


def make_data_parallel_engine(backend: str, model, trainable: list[str] | None = None, **optimizer):
    """engines.make_engine's engine (optimizer: its lr, weight_decay, clip, kernels) in one process; inside
    a process group, its data-parallel version."""
    group = active()
    if group is None:
        return make_engine(backend, model, trainable, **optimizer)
    return DataParallelEngine(backend, model, trainable, group, **optimizer)
