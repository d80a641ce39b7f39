"""One torchrun job for parity_tests/training/test_distributed.py: every rank runs these scenarios in order
inside one process group, and rank 0 writes what the test compares with a single process.

    torchrun --standalone --nproc-per-node 2 parity_tests/training/distributed_worker.py OUT

    gpt-numpy, gpt-torch    the GPT, float64, dropout, 3 rows over 2 ranks, ignored targets
    classifier-numpy/-torch the classifier (last block trainable: DDP over a frozen body)
    cli                     `twinlm charrnn train` (NumPy) from the command line
    resume-into             the torch char-RNN resumed from a one-process checkpoint
    resume-from             the torch char-RNN stopped after a few steps, for one process to resume
    mismatch, mismatch-lr-batch  the ranks given different --seed, or --lr and --batch-size: both
                            refuse (exit 2) before a step
    stopped, stopped-resumed  SIGINT to rank 0 after step 3: both ranks stop after step 4, rank 0
                            saves; then the run resumed to the end, to equal `cli` bit for bit
    fail                    rank 1 raises at step 2 (the job must end, naming rank 1)
Each `twinlm` command's exit status is written to OUT/codes-<rank>.txt ("<scenario> <status>").

    torchrun --standalone --nproc-per-node 2 parity_tests/training/distributed_worker.py --sigterm OUT

runs `python -m twinlm charrnn train` as it is (not under this file's process group), SIGTERM sent
to rank 1 after its step 3: each rank's own exit status is then the command line's.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from twinlm.data.spam import encode_dataset, make_synthetic_spam, random_split
from twinlm.training import classify, lm
from twinlm.training.distributed import active, launched
from twinlm.training.engines import Batch
from twinlm.training.loop import Run

# qkv_bias off: with it on, the key bias's gradient is zero in exact arithmetic, and each run feeds
# Adam its own rounding noise there (see test_gpt_training.py); every other tensor agrees to 1e-14.
NO_KEY_BIAS = {"qkv_bias": False}
TEXT = "".join(f"{i}: the quick brown fox jumps over the lazy dog, {i * i}.\n" for i in range(40))
GPT_STEPS, CLASSIFIER_STEPS = 5, 4


def fold(text: str) -> list[int]:
    """Bytes folded into the test preset's 67-token vocabulary: no tokenizer files needed."""
    return [b % 67 for b in text.encode()]


class IgnoringLMTask(lm.LMTask):
    """The GPT task with some targets ignored (-100), unevenly over the rows: with 3 rows on 2
    ranks, rank 0 (row 0) counts 3 targets and rank 1 (rows 1, 2) counts 13, so the average of the
    ranks' means is not the global mean."""

    def batch(self, step: int, carry=None) -> Batch:
        b = super().batch(step, carry)
        y = b.y.copy()
        y[0, :5] = -100
        y[2, ::3] = -100
        return Batch(b.x, y, b.masks)


def gpt_task() -> IgnoringLMTask:
    s = lm.TrainSettings(
        preset="test",
        dtype="float64",
        max_length=8,
        stride=8,
        batch_size=3,
        steps=GPT_STEPS,
        warmup_steps=2,
        seed=5,
        overrides=NO_KEY_BIAS,
    )
    return IgnoringLMTask(TEXT, s, fold)


def classifier_task() -> classify.ClassifyTask:
    words = sorted({w for _, t in make_synthetic_spam(400) for w in t.lower().split()})
    vocab = {w: i for i, w in enumerate(words)}

    def encode(text):
        return [vocab[w] for w in text.lower().split()]

    train, val, test = random_split(make_synthetic_spam(60, seed=0), 0.7, 0.1, seed=1)
    first = encode_dataset(train, None, len(vocab), encode)
    rest = [encode_dataset(rows, first.max_length, len(vocab), encode) for rows in (val, test)]
    cfg = dict(vocab_size=len(vocab) + 1, context_length=first.max_length, **NO_KEY_BIAS)
    s = classify.ClassifySettings(
        preset="test",
        dtype="float64",
        position="last-non-pad",
        pad_id=len(vocab),
        drop_rate=0.1,
        batch_size=6,
        lr=1e-3,
        seed=3,
        overrides=cfg,
    )
    return classify.ClassifyTask(s, encode, (first, *rest))


def charrnn_args(backend: str, steps: int, out: Path, text: Path, resume: Path | None = None):
    """`twinlm charrnn train` flags: float64, dropout, 5 rows (2 and 3 per rank), an epoch of
    9 batches, so 11 steps cross an epoch and the carried state starts over."""
    args = ["charrnn", "train", "--backend", backend, "--text", str(text), "--dtype", "float64"]
    args += ["--drop-rate", "0.2", "--emb-dim", "8", "--hidden-size", "16", "--batch-size", "5"]
    args += ["--seq-length", "16", "--steps", str(steps), "--eval-every", "4"]
    args += ["--eval-batches", "1", "--seed", "11", "--out", str(out)]
    return args + (["--resume", str(resume)] if resume else [])


def charrnn_text() -> str:
    return TEXT[:830]  # 747 training bytes: 9 batches of 5 × 16 (+ 1); 83 validation bytes


def train_steps(task, backend: str, steps: int, path: Path) -> None:
    run = Run(task, backend)
    for _ in range(steps):
        run.train_step()
    if active().rank == 0:
        run.save(path)


def signal_after(step: int, sig: int) -> None:
    """This process sends itself `sig` once its run has finished optimizer step `step`."""
    original = Run.train_step

    def step_then_signal(self):
        loss = original(self)
        if self.step == step:
            Run.train_step = original
            os.kill(os.getpid(), sig)  # to the handler the training loop installed
        return loss

    Run.train_step = step_then_signal


def record(out: Path, rank: int, scenario: str, code: int) -> None:
    with open(out / f"codes-{rank}.txt", "a") as f:
        f.write(f"{scenario} {code}\n")


def main(out: Path) -> None:
    from twinlm.cli import main as cli

    with launched("worker"):
        rank = active().rank
        for backend in ("numpy", "torch"):
            train_steps(gpt_task(), backend, GPT_STEPS, out / f"gpt-{backend}.safetensors")
            train_steps(classifier_task(), backend, CLASSIFIER_STEPS, out / f"clf-{backend}.st")
        text = out / "text.txt"
        assert cli(charrnn_args("numpy", 11, out / "cli", text)) == 0
        one = out / "one" / "checkpoint.safetensors"  # written by the test before the job
        assert cli(charrnn_args("torch", 11, out / "resume-into", text, resume=one)) == 0
        assert cli(charrnn_args("torch", 4, out / "resume-from", text)) == 0

        mismatched = charrnn_args("numpy", 3, out / "mismatch", text)
        record(out, rank, "mismatch", cli([*mismatched, "--seed", str(20 + rank)]))
        lr_batch = ["--lr", str(0.001 * (1 + rank)), "--batch-size", str(4 + rank)]
        record(out, rank, "mismatch-lr-batch", cli([*mismatched, *lr_batch]))
        if rank == 0:
            signal_after(3, signal.SIGINT)
        record(out, rank, "stopped", cli(charrnn_args("numpy", 11, out / "stopped", text)))
        stopped = out / "stopped" / "checkpoint.safetensors"
        resumed = charrnn_args("numpy", 11, out / "stopped", text, resume=stopped)
        record(out, rank, "stopped-resumed", cli(resumed))

        task = gpt_task()
        if rank == 1:
            batch = task.batch

            def failing(step, carry=None):
                if step == 2:
                    raise ValueError("rank 1 cannot make batch 2")
                return batch(step, carry)

            task.batch = failing
        run = Run(task, "numpy")
        for _ in range(GPT_STEPS):
            run.train_step()


def sigterm_to_rank_1(out: Path) -> None:
    """`twinlm charrnn train` as the command line runs it, SIGTERM to rank 1 after its step 3."""
    from twinlm.cli import main as cli

    if os.environ["RANK"] == "1":
        signal_after(3, signal.SIGTERM)
    sys.exit(cli(charrnn_args("numpy", 11, out / "sigterm", out / "text.txt")))


if __name__ == "__main__":
    if sys.argv[1] == "--sigterm":
        sigterm_to_rank_1(Path(sys.argv[2]))
    main(Path(sys.argv[1]))
