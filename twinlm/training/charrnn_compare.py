"""char-rnn's three cells at equal parameter count, in bits per character: `twinlm charrnn compare`.

Every cell (by default the vanilla RNN with tanh, the GRU and the LSTM) gets the largest hidden size
whose whole char-RNN (embedding, recurrent layers, decoder) has no more parameters than the budget
(by default: the LSTM at --hidden-size), then trains with the same settings on the same text — the
same batches, dropout masks, learning-rate schedule and number of steps — and is evaluated on the
same batches of both splits. Written to --out: compare.md (the table), compare.png (validation bits
per character against characters seen, one curve per cell) and each run's checkpoint and loss
curve in a folder named after its cell.

A few minutes on 2 cores with the defaults (1000 steps of 50×50 bytes per cell), so it is a
command, not a test; parity_tests/models/test_charrnn_cells.py runs it once at toy size.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path

import numpy as np

from twinlm.data.files import writable_folder
from twinlm.shared.naming import CELLS, charrnn_param_shapes
from twinlm.shared.validate import require_choice, require_int
from twinlm.training.charrnn import LN2, CharRNNSettings, CharRNNTask, read_corpus
from twinlm.training.loop import Run, train
from twinlm.training.outdir import claim
from twinlm.training.settings import settings_from_args

DEFAULT_CELLS = ("rnn_tanh", "gru", "lstm")


def param_count(cfg: dict) -> int:
    """Every parameter of a char-RNN of this config, embedding and decoder included."""
    return sum(int(np.prod(shape)) for shape in charrnn_param_shapes(cfg).values())


def hidden_for_budget(cfg: dict, cell: str, budget: int) -> int:
    """The largest hidden size whose char-RNN with `cell` (the rest of cfg as given) has at most
    `budget` parameters (the count grows with H, so a doubling then a bisection finds it)."""

    def count(h: int) -> int:
        return param_count({**cfg, "cell": cell, "hidden_size": h})

    if count(1) > budget:
        raise ValueError(f"budget {budget} is below a {cell} char-RNN with hidden size 1")
    lo, hi = 1, 2
    while count(hi) <= budget:
        lo, hi = hi, 2 * hi
    while hi - lo > 1:  # count(lo) ≤ budget < count(hi)
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid) <= budget else (lo, mid)
    return lo


def _settings_for(base: CharRNNSettings, cell: str, hidden: int) -> CharRNNSettings:
    model, _, nonlinearity = cell.partition("_")
    return dataclasses.replace(
        base, model=model, nonlinearity=nonlinearity or "tanh", hidden_size=hidden
    )


def compare(
    text,
    base: CharRNNSettings,
    out_dir: str | Path,
    cells=DEFAULT_CELLS,
    backend: str = "numpy",
    budget: int | None = None,
    progress: bool = True,
) -> list[dict]:
    """Train each cell at the budget (default: the LSTM at base.hidden_size) and write the table
    and plot to out_dir. Returns one row per cell: cell, hidden, params, train/val bpc, seconds."""
    for cell in cells:
        require_choice("cells", cell, CELLS)
    out_dir = Path(out_dir)
    probe = CharRNNTask(text, _settings_for(base, "lstm", base.hidden_size))
    if budget is None:
        budget = param_count(probe.cfg)
    require_int("budget", budget, 1)
    rows, curves = [], {}
    for cell in cells:
        hidden = hidden_for_budget(probe.cfg, cell, budget)
        run = Run(CharRNNTask(text, _settings_for(base, cell, hidden)), backend)
        start = time.perf_counter()
        train(run, out_dir / cell, progress=progress, header=run.task.header())
        h = run.history
        rows.append(
            {
                "cell": cell,
                "hidden": hidden,
                "params": param_count(run.task.cfg),
                "train_bpc": h["train_loss"][-1] / LN2,
                "val_bpc": h["val_loss"][-1] / LN2,
                "seconds": time.perf_counter() - start,
            }
        )
        curves[f"{cell} (H {hidden})"] = h
    write_table(rows, out_dir / "compare.md", base, budget, backend)
    plot_curves(out_dir / "compare.png", curves, base.num_layers, budget, backend)
    return rows


def plot_curves(path: Path, histories: dict[str, dict], layers: int, budget: int, backend: str):
    """Validation bits per character against characters seen, one curve per run history (as
    Run keeps it), from the first evaluation after step 0 (the untrained ~log2 V would flatten
    the rest)."""
    from twinlm.report.plots import plot_losses

    curves = {}
    for label, h in histories.items():
        points = [(s, v / LN2) for s, v in zip(h["seen"], h["val_loss"], strict=True) if s > 0]
        curves[label] = ([s for s, _ in points], [v for _, v in points])
    return plot_losses(
        path,
        curves,
        title=f"char-RNN cells at ≤ {budget:,} parameters ({layers} layers, {backend})",
        xlabel="characters (bytes) seen",
        ylabel="validation bits per character",
    )


def write_table(rows: list[dict], path: Path, s: CharRNNSettings, budget: int, backend: str):
    lines = [
        f"char-RNN cells at equal parameter count (≤ {budget:,}): {s.num_layers} layers, "
        f"embedding {s.emb_dim}, {s.steps} steps of {s.batch_size}×{s.seq_length} bytes, "
        f"lr {s.lr}, dropout {s.drop_rate}, {backend} {s.dtype}, seed {s.seed}; bits per "
        f"character on {s.eval_batches or 'all'} batches of each split.",
        "",
        "| cell | hidden | parameters | train bpc | validation bpc | time |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['cell']} | {r['hidden']} | {r['params']:,} | {r['train_bpc']:.3f} | "
            f"{r['val_bpc']:.3f} | {r['seconds']:.0f} s |"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def main_compare(args) -> int:
    """`twinlm charrnn compare`: --out and each cell's run folder in it claimed before any work
    (outdir.py: checked, locked, an earlier run's checkpoint kept unless --force)."""
    if len(set(args.cells)) < len(args.cells):
        raise ValueError(f"--cells names a cell twice: {' '.join(args.cells)}")
    writable_folder(args.out, "--out")  # for compare.md and compare.png, and the cells' runs
    text = read_corpus(args.text)
    base = settings_from_args(CharRNNSettings, args)
    with contextlib.ExitStack() as claimed:
        for cell in args.cells:
            claimed.enter_context(
                claim(
                    Path(args.out) / cell,
                    CharRNNTask.checkpoint_name,
                    force=args.force,
                    writes=CharRNNTask.report_files,
                )
            )
        rows = compare(text, base, args.out, args.cells, args.backend or "numpy", args.budget)
    print((Path(args.out) / "compare.md").read_text(encoding="utf-8"))
    print(f"plot: {Path(args.out) / 'compare.png'}")
    return 0 if rows else 1
