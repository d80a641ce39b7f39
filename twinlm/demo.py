"""`twinlm demo` (what `make demo` runs): the same GPT trained in NumPy and in PyTorch, side by side.

1. Both backends build the same small GPT from one seeded initializer and train it on the same
   batches of the embedded corpus (the English prose of the running Python's docstrings, in GPT-2
   BPE tokens renumbered to the ones it uses: twinlm.data.subvocab), with the same dropout masks
   and learning-rate schedule. One progress bar shows both losses and their relative gap; a row of
   the table every tenth of the run; at the end a picture (twinlm.report.plots.plot_lockstep):
   the two loss curves overlaid, and the gap on a log axis beneath with float32's and float64's
   rounding levels drawn in.
2. Both generate from PROMPT with the same seed: the text must be identical.
3. Every op through both backends (`twinlm check`'s rows), said in one line: the worst float64
   error, the worst float32 R, how many ops passed; a failing op's rows are printed in full.
Then the picture's path and a verdict paragraph. Exits non-zero if the backends disagree.

`make demo` runs it with one thread per library (OMP_NUM_THREADS=1, see the Makefile): the
matrices are small, so a second thread gains little on a quiet machine and costs several times
the time on a busy one.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from twinlm.data.corpus import default_corpus
from twinlm.data.subvocab import CorpusVocab
from twinlm.data.windows import train_val_split
from twinlm.parity.check import check_ops, format_table
from twinlm.parity.harness import FLOAT32_RATIO, TOL_FLOAT64
from twinlm.report.plots import FLOAT32_EPS, plot_lockstep
from twinlm.shared.naming import BACKENDS
from twinlm.training.lm import LMTask, TrainSettings
from twinlm.training.loop import Run

PROMPT = "The function returns"
LOSS_GAP_LIMIT = {"float64": 1e-9, "float32": 1e-3}  # relative, at any step
DEMO_STEPS = 600
DEMO_CORPUS_BYTES = 100_000


def demo_settings(steps: int, dtype: str, vocab_size: int) -> TrainSettings:
    """The tiny preset (2 layers, emb 64, 4 heads, dropout 0.1) over the corpus's own tokens."""
    return TrainSettings(
        preset="tiny",
        dtype=dtype,
        max_length=64,
        stride=64,
        batch_size=4,
        steps=steps,
        peak_lr=3e-3,
        min_lr=3e-4,
        warmup_steps=max(1, steps // 10),
        eval_every=max(1, steps // 4),
        seed=123,
        overrides={"vocab_size": vocab_size},
    )


class Trace:
    """Per step: every backend's training loss and their relative gap |a - b| / |b|."""

    def __init__(self, names):
        self.steps: list[int] = []
        self.losses: dict[str, list[float]] = {name: [] for name in names}
        self.gaps: list[float] = []

    def add(self, step: int, loss: dict[str, float]) -> float:
        a, b = (loss[name] for name in self.losses)
        gap = abs(a - b) / abs(b)
        self.steps.append(step)
        for name, value in loss.items():
            self.losses[name].append(value)
        self.gaps.append(gap)
        return gap


def train_in_lockstep(runs: dict[str, Run], steps: int, progress: bool = True) -> Trace:
    """Step both runs together under one progress bar (both losses, the gap); a table row at the
    first step, every tenth of the run and the last."""
    from tqdm import tqdm

    trace, every, start = Trace(runs), max(1, steps // 10), time.perf_counter()
    names = list(runs)
    quiet = None if progress else True  # None: a bar only where stderr is a terminal
    bar = tqdm(total=steps, unit="step", desc="lockstep", disable=quiet, leave=False)
    bar.write(
        f"{'step':>5} {'lr':>9} {names[0] + ' loss':>15} {names[1] + ' loss':>15} "
        f"{'relative gap':>12} {'time':>6}"
    )
    for _ in range(steps):
        lr = runs[names[0]].task.lr(runs[names[0]].step)
        loss = {name: run.train_step() for name, run in runs.items()}
        step = runs[names[0]].step
        gap = trace.add(step, loss)
        a, b = loss.values()
        bar.set_postfix_str(f"{names[0]} {a:.4f} | {names[1]} {b:.4f} | gap {gap:.1e}", False)
        bar.update()
        if step == 1 or step % every == 0 or step == steps:
            bar.write(
                f"{step:>5} {lr:>9.2e} {a:>15.12f} {b:>15.12f} {gap:>12.1e} "
                f"{time.perf_counter() - start:>5.0f}s"
            )
    bar.close()
    return trace


def main_demo(args) -> int:
    """`twinlm demo` (twinlm/cli.py parses); --out checked before the training, not after."""
    from twinlm.data.files import writable_folder

    return run_demo(steps=args.steps, dtype=args.dtype, out_dir=writable_folder(args.out, "--out"))


def run_demo(
    steps: int = DEMO_STEPS,
    dtype: str = "float64",
    corpus_bytes: int = DEMO_CORPUS_BYTES,
    out_dir: str | Path = "runs/demo",
    progress: bool = True,
) -> int:
    start, cpu_start = time.perf_counter(), time.process_time()
    text = default_corpus(max_bytes=corpus_bytes)
    vocab = CorpusVocab.from_texts(train_val_split(text, 0.9))  # LMTask's split, encoded as it is
    task = LMTask(text, demo_settings(steps, dtype, len(vocab)), vocab.encode)
    runs = {name: Run(task, name) for name in BACKENDS}  # one task: the very same batches, masks
    cfg = task.cfg
    n_params = sum(p.size for p in runs["numpy"].engine.params().values())
    print(
        f"== 1. Training the same GPT ({n_params:,} parameters: {cfg['n_layers']} layers, "
        f"emb {cfg['emb_dim']}, {len(vocab):,} GPT-2 tokens; {dtype}) in NumPy and in PyTorch, "
        f"{steps} steps over {len(task.train[0])} windows of {task.settings.max_length} tokens "
        f"of English from the standard library's docstrings"
    )
    trace = train_in_lockstep(runs, steps, progress)
    png = plot_lockstep(
        Path(out_dir) / "demo.png",
        trace.steps,
        trace.losses,
        trace.gaps,
        title=f"NumPy and PyTorch training the same GPT ({dtype})",
    )
    val = {name: run.evaluate()["val_loss"] for name, run in runs.items()}
    drift = param_gap(runs)
    print(
        f"validation loss: numpy {val['numpy']:.12f}, torch {val['torch']:.12f}; after {steps} "
        f"steps the parameters differ by at most {drift:.1e} (relative to the largest)"
    )

    print(f'\n== 2. Generating from "{PROMPT}" with the same seed in both backends')
    texts = generate_both(runs, PROMPT, vocab)
    same = len(set(texts.values())) == 1
    for name, t in texts.items():
        print(f"[{name}] " + t.replace("\n", "\n" + " " * (len(name) + 3)))  # lines aligned
    print("identical text: " + ("yes" if same else "NO"))

    print("\n== 3. Every op, NumPy vs torch_impl vs the torch built-in")
    check_ok, summary = ops_summary(check_ops())
    print(summary)
    worst = max(trace.gaps)
    ok = worst <= LOSS_GAP_LIMIT[dtype] and same and check_ok
    print(f"\npicture: {png}")
    print(verdict(trace, dtype, drift, same, check_ok))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(f"demo {'passed' if ok else 'FAILED'} in {wall:.0f} s ({cpu:.0f} s of CPU time)")
    return 0 if ok else 1


def ops_summary(rows: list[dict]) -> tuple[bool, str]:
    """`twinlm check`'s rows in one line (worst float64 error, worst float32 R), or, when an op
    fails, its rows in full: (all passed, text)."""
    n_ops = len({r["op"] for r in rows})
    failed = [r for r in rows if not r["ok"]]
    if failed:
        n_failed = len({r["op"] for r in failed})
        return False, (
            f"{n_failed} of {n_ops} ops FAILED (the full table: twinlm check):\n"
            + format_table(failed)
        )
    e64 = max((max(r["fwd"], r["grad"]), r["op"]) for r in rows if r["dtype"] == "float64")
    r32 = max((max(r["r_fwd"], r["r_grad"]), r["op"]) for r in rows if r["dtype"] == "float32")
    return True, (
        f"all {n_ops} ops passed: worst float64 error {e64[0]:.1e} ({e64[1]}; tolerance "
        f"{TOL_FLOAT64:.0e}), worst float32 R {r32[0]:.2f} ({r32[1]}; tolerance {FLOAT32_RATIO:g}); "
        f"the full table: twinlm check"
    )


def param_gap(runs: dict[str, Run]) -> float:
    """max |numpy − torch| over every parameter, over the largest |parameter|."""
    a, b = (run.engine.params() for run in runs.values())  # NumPy arrays from both engines
    diff = max(float(np.max(np.abs(a[k] - b[k]))) for k in a)
    return diff / max(float(np.max(np.abs(b[k]))) for k in b)


def verdict(trace: Trace, dtype: str, drift: float, same_text: bool, check_ok: bool) -> str:
    """One paragraph: what the run showed, in words."""
    gaps = np.asarray(trace.gaps)
    worst, steps = float(gaps.max()), len(gaps)
    eps = float(np.finfo(dtype).eps)
    if worst <= LOSS_GAP_LIMIT[dtype] and same_text and check_ok:
        below = ""
        if dtype == "float64":  # how far below float32's rounding, in powers of ten
            below = f", {np.log10(FLOAT32_EPS / max(worst, eps / 2)):.0f} orders of magnitude "
            below += "below float32's rounding level"
        return (
            f"Verdict: the two implementations agree. Over {steps} AdamW steps the NumPy model "
            f"(gradients derived by hand) and the PyTorch model (autograd) computed the same "
            f"losses to within {worst:.1e} relative ({worst / eps:.1f} × {dtype}'s machine "
            f"epsilon{below}; {int((gaps == 0).sum())} of the {steps} steps bit for bit), and "
            f"ended with parameters {drift:.1e} apart, as two computations that differ only in "
            f"the order of floating-point operations would. From the same seed they wrote the "
            f"same text, and every op matched torch's built-in within tolerance."
        )
    failed = [
        f"the losses differ by up to {worst:.1e} relative (limit {LOSS_GAP_LIMIT[dtype]:.0e})"
        if worst > LOSS_GAP_LIMIT[dtype]
        else None,
        None if same_text else "the generated texts differ",
        None if check_ok else "ops failed their parity checks (rows above)",
    ]
    return "Verdict: the backends DISAGREE: " + "; ".join(f for f in failed if f) + "."


def generate_both(
    runs: dict[str, Run], prompt: str, vocab: CorpusVocab, max_new_tokens: int = 40
) -> dict:
    from twinlm.generation import generate_text

    out = {}
    for name, run in runs.items():
        rng = np.random.default_rng(7)
        out[name] = generate_text(
            run.engine.model,
            prompt,
            vocab.encode,
            vocab.decode,
            max_new_tokens,
            temperature=0.8,
            top_k=40,
            rng=rng,
        )
    return out
