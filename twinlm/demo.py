"""`twinlm demo` (what `make demo` runs): the same GPT trained in NumPy and in PyTorch, side by side.

1. Both backends build the same small GPT from one seeded initializer and train it on the same
   batches of the embedded corpus (the running Python's standard-library source), with the same
   dropout masks and learning-rate schedule; every step prints both losses and their difference.
2. Both generate from "Every effort moves you" with the same seed: the text must be identical.
3. The ops parity table (`twinlm check`).
Exits non-zero if the backends disagree.
"""

from __future__ import annotations

import time

import numpy as np

from twinlm.data.tokenizer import decode, encode
from twinlm.data.windows import default_corpus
from twinlm.parity.check import run_check
from twinlm.shared.naming import BACKENDS
from twinlm.training.lm import LMTask, TrainSettings
from twinlm.training.loop import Run

PROMPT = "Every effort moves you"
LOSS_GAP_LIMIT = {"float64": 1e-9, "float32": 1e-3}  # relative, at any step


def demo_settings(steps: int, dtype: str) -> TrainSettings:
    return TrainSettings(
        preset="tiny",
        dtype=dtype,
        max_length=64,
        stride=64,
        batch_size=2,
        steps=steps,
        peak_lr=2e-3,
        min_lr=2e-4,
        warmup_steps=max(1, steps // 10),
        eval_every=max(1, steps // 4),
        seed=123,
    )


def train_in_lockstep(runs: dict[str, Run], steps: int) -> float:
    """Step both runs together, printing each step's losses; returns the worst relative gap."""
    print(f"{'step':>5} {'lr':>9} {'numpy loss':>12} {'torch loss':>12} {'|difference|':>13}")
    worst = 0.0
    for _ in range(steps):
        lr = runs["numpy"].task.lr(runs["numpy"].step)
        loss = {name: run.train_step() for name, run in runs.items()}
        gap = abs(loss["numpy"] - loss["torch"])
        worst = max(worst, gap / abs(loss["torch"]))
        print(
            f"{runs['numpy'].step:>5} {lr:>9.2e} {loss['numpy']:>12.6f} {loss['torch']:>12.6f}"
            f" {gap:>13.2e}"
        )
    return worst


def run_demo(steps: int = 150, dtype: str = "float64", corpus_bytes: int = 200_000) -> int:
    start = time.perf_counter()
    text = default_corpus(max_bytes=corpus_bytes)
    s = demo_settings(steps, dtype)
    task = LMTask(text, s, encode)  # one task: both backends get the very same batches and masks
    runs = {name: Run(task, name) for name in BACKENDS}
    cfg = task.cfg
    n_params = sum(p.size for p in runs["numpy"].engine.params().values())
    print(
        f"== 1. Training the same GPT ({n_params:,} parameters, {cfg['n_layers']} layers, "
        f"emb {cfg['emb_dim']}, {dtype}) in NumPy and in PyTorch, on "
        f"{len(task.train[0])} windows of the embedded corpus"
    )
    worst_gap = train_in_lockstep(runs, steps)
    val = {name: run.evaluate()["val_loss"] for name, run in runs.items()}
    print(
        f"validation loss: numpy {val['numpy']:.6f}, torch {val['torch']:.6f}; "
        f"worst relative loss gap over {steps} steps: {worst_gap:.2e}"
    )

    print(f'\n== 2. Generating from "{PROMPT}" with the same seed in both backends')
    texts = generate_both(runs, PROMPT)
    same = len(set(texts.values())) == 1
    for name, t in texts.items():
        print(f"[{name}] {t!r}")
    print("identical text: " + ("yes" if same else "NO"))

    print("\n== 3. Every op, NumPy vs torch_impl vs the torch built-in")
    check_status = run_check()
    ok = worst_gap <= LOSS_GAP_LIMIT[dtype] and same and check_status == 0
    print(f"\ndemo {'passed' if ok else 'FAILED'} in {time.perf_counter() - start:.0f} s")
    return 0 if ok else 1


def generate_both(runs: dict[str, Run], prompt: str, max_new_tokens: int = 30) -> dict:
    from twinlm.generation import generate_text

    out = {}
    for name, run in runs.items():
        rng = np.random.default_rng(7)
        out[name] = generate_text(
            run.engine.model,
            prompt,
            encode,
            decode,
            max_new_tokens,
            temperature=1.0,
            top_k=40,
            rng=rng,
        )
    return out
