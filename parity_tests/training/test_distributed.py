"""Data-parallel training (twinlm/training/distributed.py) on 2 CPU processes (gloo), launched by
torchrun once for the whole module (parity_tests/training/distributed_worker.py runs the scenarios):

- N processes equal one process with the same global batch — parameters, step losses and the
  char-RNN's carried state to 1e-12 in float64 with dropout on, in both backends, with unequal
  slices and ignored targets (where averaging the ranks' means would be wrong);
- a checkpoint resumes across process counts, both ways, under torchrun and without;
- rank 0 alone prints; a rank that raises ends the job with one line naming it;
- a signal to any one rank stops every rank after the same step: rank 0 saves once, every rank
  exits 130/143 with the --resume hint, and the run resumes bit for bit (a second, short torchrun
  job sends SIGTERM to rank 1 of the real command line, to see each rank's own exit status);
- ranks started with different flags refuse before the first step, naming the flag (exit 2).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import distributed_worker as w
import numpy as np
import pytest

from twinlm.cli import main as cli
from twinlm.parity.harness import rel_error
from twinlm.training.checkpoint import load_run
from twinlm.training.distributed import Group, rows, shard, why
from twinlm.training.engines import Batch
from twinlm.training.loop import Run

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),  # conftest.py
    pytest.mark.skipif(
        not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
        reason="this torch build has no torch.distributed with gloo",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
TOL = 1e-12


def torchrun(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """distributed_worker.py on 2 processes under torchrun: (the finished job, its seconds)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TWINLM_DIST_TIMEOUT": "120"}
    env.pop("TWINLM_DEBUG", None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "2", str(Path(w.__file__)), *args]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    seconds = time.perf_counter() - start
    print(f"torchrun job {' '.join(args[:-1])}: {seconds:.1f} s")
    return proc, seconds


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """The torchrun job's output folder, exit status, stdout, stderr and wall time."""
    out = tmp_path_factory.mktemp("dp")
    text = out / "text.txt"
    text.write_text(w.charrnn_text())
    assert cli(w.charrnn_args("torch", 4, out / "one", text)) == 0  # for resume-into
    proc, seconds = torchrun(str(out))
    return SimpleNamespace(out=out, text=text, proc=proc, seconds=seconds)


def codes(job, scenario: str) -> list[int]:
    """The exit status of a scenario's `twinlm` command on rank 0 and on rank 1."""
    found = []
    for rank in range(2):
        lines = (job.out / f"codes-{rank}.txt").read_text().splitlines()
        found += [int(line.split()[1]) for line in lines if line.split()[0] == scenario]
    return found


def assert_close(a: dict, b: dict, job, what: str) -> None:
    """Every tensor of a within TOL of b's, relative to b's largest entry."""
    assert a.keys() == b.keys(), what
    for k, v in b.items():
        err = rel_error(a[k], v)
        assert err <= TOL, f"{what} {k}: relative error {err:.2e}\n{job.proc.stderr[-3000:]}"


def saved(job, name: str):
    path = job.out / name
    assert path.is_file(), f"the job did not write {name}:\n{job.proc.stderr[-3000:]}"
    return load_run(path)


def one_process(task, backend: str, steps: int) -> Run:
    run = Run(task, backend)
    for _ in range(steps):
        run.train_step()
    return run


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("kind", ["gpt", "clf"])
def test_two_processes_equal_one(job, kind, backend):
    """Parameters and the global mean step losses after several steps with dropout."""
    task, steps = (w.gpt_task(), w.GPT_STEPS) if kind == "gpt" else (w.classifier_task(), 4)
    ref = one_process(task, backend, steps)
    two = saved(job, f"{kind}-{backend}.safetensors" if kind == "gpt" else f"clf-{backend}.st")
    assert_close(two.params, ref.engine.params(), job, f"{kind} {backend}")
    losses = np.array(two.meta["history"]["step_loss"])
    np.testing.assert_allclose(losses, ref.history["step_loss"], rtol=TOL, atol=0)


def test_the_command_line_under_torchrun(job, tmp_path):
    """`torchrun … -m twinlm charrnn train` equals `twinlm charrnn train`, carried state included,
    across an epoch's end; only rank 0 prints (each run's last line once)."""
    assert cli(w.charrnn_args("numpy", 11, tmp_path, job.text)) == 0
    one = load_run(tmp_path / "checkpoint.safetensors")
    two = saved(job, "cli/checkpoint.safetensors")
    assert_close(two.params, one.params, job, "charrnn numpy")
    assert_close(dict(enumerate(two.carry)), dict(enumerate(one.carry)), job, "carry")
    assert two.meta["history"]["steps"] == one.meta["history"]["steps"] == [0, 4, 8, 11]
    assert job.proc.stdout.count("checkpoint: ") == 4, job.proc.stdout  # four runs end, one rank


@pytest.fixture(scope="module")
def straight(job, tmp_path_factory):
    """The torch char-RNN, 11 steps in one process: what both resumes must reach."""
    out = tmp_path_factory.mktemp("straight")
    assert cli(w.charrnn_args("torch", 11, out, job.text)) == 0
    return load_run(out / "checkpoint.safetensors")


def test_one_process_checkpoint_resumes_in_two(job, straight):
    two = saved(job, "resume-into/checkpoint.safetensors")
    assert two.meta["step"] == 11 and two.meta["history"]["steps"] == [0, 4, 8, 11]
    assert_close(two.params, straight.params, job, "resumed in 2")
    assert_close(dict(enumerate(two.carry)), dict(enumerate(straight.carry)), job, "carry")


def test_two_process_checkpoint_resumes_in_one(job, straight, tmp_path):
    stopped = job.out / "resume-from" / "checkpoint.safetensors"
    assert saved(job, "resume-from/checkpoint.safetensors").meta["step"] == 4
    assert cli(w.charrnn_args("torch", 11, tmp_path, job.text, resume=stopped)) == 0
    one = load_run(tmp_path / "checkpoint.safetensors")
    assert_close(one.params, straight.params, job, "resumed in 1")
    assert_close(dict(enumerate(one.carry)), dict(enumerate(straight.carry)), job, "carry")


def test_a_failing_rank_ends_the_job_with_one_line(job):
    """Rank 1 raises at step 2; rank 0, waiting in the all-reduce, is stopped by torchrun."""
    assert job.proc.returncode != 0
    failed = [line for line in job.proc.stderr.splitlines() if "failed:" in line]
    assert failed == ["worker: rank 1 of 2 failed: ValueError: rank 1 cannot make batch 2"], (
        job.proc.stderr[-3000:]
    )
    assert "rank      : 1 (local_rank: 1)" in job.proc.stderr.split("Root Cause")[-1]


# ---- signals, and ranks that differ --------------------------------------------------------------


def test_a_signal_to_rank_0_stops_every_rank_and_the_run_resumes_bit_for_bit(job):
    """Before: the rank that got the signal stopped alone (rank 0 then died in the next
    all-reduce, or waited for ever): nothing saved, exit 1 "failed: interrupted". Now SIGINT to rank
    0 after step 3 reaches rank 1 through step 4's all-reduce: both stop after step 4, rank 0
    saves once, both exit 130 with the --resume hint; resumed, the run ends where the run that
    was never stopped ends, bit for bit."""
    assert codes(job, "stopped") == [130, 130], job.proc.stderr[-3000:]
    ckpt = job.out / "stopped" / "checkpoint.safetensors"
    said = f"stopped by SIGINT at step 4; checkpoint saved: {ckpt} (continue with --resume {ckpt})"
    assert job.proc.stderr.count(said) == 2, job.proc.stderr[-3000:]  # one line per rank
    assert codes(job, "stopped-resumed") == [0, 0]
    resumed, straight = (
        saved(job, "stopped/checkpoint.safetensors"),
        saved(job, "cli/checkpoint.safetensors"),
    )
    for what in ("params", "exp_avg", "exp_avg_sq"):
        a, b = getattr(resumed, what), getattr(straight, what)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in b), what
    assert all(np.array_equal(a, b) for a, b in zip(resumed.carry, straight.carry, strict=True))
    assert resumed.meta["history"]["step_loss"] == straight.meta["history"]["step_loss"]


@pytest.fixture(scope="module")
def sigterm_job(job):
    """`twinlm charrnn train` as the command line runs it under torchrun, SIGTERM to rank 1 after
    its step 3 (distributed_worker.py --sigterm)."""
    proc, seconds = torchrun("--sigterm", str(job.out))
    return SimpleNamespace(out=job.out, proc=proc, seconds=seconds)


def test_sigterm_to_rank_1_exits_143_on_every_rank(sigterm_job, job, tmp_path):
    """Each rank's own exit status, as torchrun reports it: 143 on both; one line each with the
    --resume hint; the checkpoint of step 4, which resumes in one process to what two processes
    reach without a stop."""
    err = sigterm_job.proc.stderr
    exits = re.findall(r"rank\s*: (\d) \(local_rank: \d\)\s*exitcode\s*: (-?\d+)", err)
    assert sorted(exits) == [("0", "143"), ("1", "143")], err[-3000:]
    ckpt = job.out / "sigterm" / "checkpoint.safetensors"
    for rank in range(2):
        said = f"twinlm charrnn train: rank {rank} of 2: stopped by SIGTERM at step 4; checkpoint saved: {ckpt} (continue with --resume {ckpt})"  # fmt: skip
        assert said in err, err[-3000:]
    assert load_run(ckpt).meta["step"] == 4
    assert cli(w.charrnn_args("numpy", 11, tmp_path, job.text, resume=ckpt)) == 0
    one = load_run(tmp_path / "checkpoint.safetensors")
    assert_close(one.params, saved(job, "cli/checkpoint.safetensors").params, job, "resumed")


def test_ranks_with_different_flags_refuse_naming_the_flag(job):
    """Before: ranks launched with different --seed trained on, and rank 0 saved a model no single
    command describes; with different --batch-size, gloo aborted (SIGABRT) in the first
    all-reduce. Now every rank compares before the first step, and refuses naming the flags."""
    assert codes(job, "mismatch") == codes(job, "mismatch-lr-batch") == [2, 2]
    for said in (
        "error: the ranks differ in --seed (--seed: rank 0 20, rank 1 21): every rank must run the same command on the same data",  # fmt: skip
        "error: the ranks differ in --batch-size, --lr (--batch-size: rank 0 4, rank 1 5; --lr: rank 0 0.001, rank 1 0.002)",  # fmt: skip
    ):
        assert job.proc.stderr.count(said) == 2, job.proc.stderr[-3000:]
    assert not (job.out / "mismatch" / "checkpoint.safetensors").exists()


# ---- the pieces, in this process ----------------------------------------------------------------


def test_rows_cover_the_global_batch_once():
    for batch in range(1, 9):
        for world in range(1, batch + 1):
            parts = [rows(batch, r, world) for r in range(world)]
            assert [i for p in parts for i in range(batch)[p]] == list(range(batch))
            assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1
    with pytest.raises(ValueError, match=r"batch_size \(1\) must be at least .* processes \(2\)"):
        rows(1, 0, 2)


def test_shard_takes_this_ranks_rows_and_share():
    """Rows of the inputs, targets, masks (batch axis 0) and state (batch axis 1); the share is
    the rank's fraction of the counted targets, and the shares add up to 1."""
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 9, (5, 4)), rng.integers(0, 9, (5, 4))
    y[1, :3] = y[4, 1] = -100
    masks = {"m": rng.random((5, 2, 4, 4))}
    state = (rng.random((2, 5, 3)), rng.random((2, 5, 3)))
    shares = []
    for rank in range(2):
        local, share = shard(Batch(x, y, masks, state), Group(rank, 2))
        r = rows(5, rank, 2)
        np.testing.assert_array_equal(local.x, x[r])
        np.testing.assert_array_equal(local.masks["m"], masks["m"][r])
        np.testing.assert_array_equal(local.state[1], state[1][:, r])
        assert share == np.count_nonzero(y[r] != -100) / 16
        shares.append(share)
    assert sum(shares) == 1


def test_collective_failures_read_as_one_line():
    gloo = (
        "[/x/gloo/transport/tcp/pair.cc:553] Connection closed by peer [::1]:4. This is typically"
    )
    assert (
        why(RuntimeError(gloo))
        == "lost contact with another rank (Connection closed by peer [::1]:4)"
    )
    assert why(ValueError("bad\nsecond line")) == "ValueError: bad"
    assert why(SystemExit("--text: cannot read t.txt")) == "--text: cannot read t.txt"
