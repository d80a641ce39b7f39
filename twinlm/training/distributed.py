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
Process groups: gloo on the CPU; with a CUDA device per process, nccl for CUDA tensors and gloo
for the NumPy backend's buckets (the training commands build their models on the CPU today).
"""

from __future__ import annotations

import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from twinlm.training.engines import Batch, NumpyEngine, NumpyState, TorchEngine, make_engine

IGNORE_INDEX = -100  # the targets cross entropy leaves out (numpy_impl/loss.py, torch_impl/loss.py)
TIMEOUT_ENV, DEFAULT_TIMEOUT_S = "TWINLM_DIST_TIMEOUT", 600.0
GRACE_S = 10.0  # how long a rank that lost a peer waits for torchrun to stop it


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
def launched(prog: str):
    """A command's whole run: under torchrun, inside the process group, and a failure of any kind
    becomes one line naming this rank (TWINLM_DEBUG=1: the traceback); otherwise nothing."""
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
        if os.environ.get("TWINLM_DEBUG"):
            raise
        if is_collective_error(e) and "TORCHELASTIC_RUN_ID" in os.environ:
            time.sleep(GRACE_S)  # torchrun stops us first if a peer failed: it names that rank
        raise SystemExit(f"{prog}: rank {group.rank} of {group.world} failed: {why(e)}") from e
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
        """optimizer: lr, weight_decay, clip (engines.make_engine's)."""
        self.group, self.share = group, 1.0 / group.world
        if backend == "numpy":
            self.bucket: np.ndarray | None = None
            self.engine = NumpyEngine(
                model, trainable, **optimizer, reduce_grads=self.all_reduce_grads
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
        rank sends zeros outside its rows, and x + 0 = x exactly."""
        import torch
        import torch.distributed as dist

        parts = [np.array([loss], np.float64)]
        if carry is not None:
            r = rows(carry[0].shape[1], self.group.rank, self.group.world)
            for full, mine in zip(carry, local, strict=True):
                buf = np.zeros(full.shape, np.float64)
                buf[:, r] = mine
                parts.append(buf.ravel())
        flat = np.concatenate(parts)
        dist.all_reduce(torch.from_numpy(flat))
        if carry is None:
            return float(flat[0]), None
        state, offset = [], 1
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


def make_data_parallel_engine(backend: str, model, trainable: list[str] | None = None, **optimizer):
    """engines.make_engine's engine (optimizer: its lr, weight_decay, clip) in one process; inside
    a process group, its data-parallel version."""
    group = active()
    if group is None:
        return make_engine(backend, model, trainable, **optimizer)
    return DataParallelEngine(backend, model, trainable, group, **optimizer)
