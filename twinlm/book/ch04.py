"""Chapter 4 replayed: GPT_CONFIG_124M, its output with dropout on, its size, and
generate_text_simple, in the order of the notebook's cells.

    In [3]   the batch: "Every effort moves you", "Every day holds a" as GPT-2 token ids
    In [25]  torch.manual_seed(123); model = GPTModel(cfg); out = model(batch)  (training mode:
             the dropout masks are drawn from the stream right after the weights)
    In [26]  total parameters; In [27] the embedding and output shapes; In [28] without the output
             head (weight tying); In [29] the size in MB at 4 bytes a parameter
    In [31]  "Hello, I am" encoded; In [32] model.eval(), 6 greedy tokens; In [33] decoded
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from twinlm.book.sampling import generate_text_simple, model_logits
from twinlm.book.stream import BookStream
from twinlm.book.table import Row
from twinlm.shared.naming import gpt_dropout_mask_shapes, gpt_param_shapes

BATCH_TEXTS = ("Every effort moves you", "Every day holds a")
START_CONTEXT = "Hello, I am"


def corners(row: np.ndarray) -> tuple[str, list[float]]:
    """A logits row as torch prints it in summary: the first and last three at 4 decimals."""
    picked = [*row[:3], *row[-3:]]
    parts = [f"{v:.4f}" for v in picked]
    return " ".join([*parts[:3], "...", *parts[3:]]), [float(v) for v in picked]


def run_ch04(
    backend: str,
    cfg: dict,
    stream: BookStream,
    encode: Callable,
    decode: Callable,
    echo: Callable[[str], None] = print,
    max_new_tokens: int = 6,
) -> tuple[dict, list[Row]]:
    """The chapter's cells in order. Returns (what was computed, the table's rows)."""
    rows: list[Row] = []
    batch = np.array([encode(t) for t in BATCH_TEXTS], dtype=np.int64)  # (2, 4)
    rows.append(Row("batch", "In [3] batch ids", str(batch.tolist()), depends=()))
    echo(f"In [3]  batch: {batch.tolist()}")

    stream.reseed("ch04 In [25]: GPTModel")
    model = stream.gpt_model(cfg, backend)  # training mode, as created
    masks = {}
    if cfg["drop_rate"] > 0:
        shapes = gpt_dropout_mask_shapes(cfg, *batch.shape)
        masks = stream.dropout_masks(shapes, cfg["drop_rate"])  # nn.Dropout's draws, in order
    out = model_logits(model, batch, masks)  # (2, 4, V) with dropout on
    rows.append(
        Row("output_shape", "In [25] output shape", str(tuple(out.shape)), depends=("cfg",))
    )
    echo(f"In [25] output shape {tuple(out.shape)} (training mode: dropout on)")
    for b in range(out.shape[0]):
        for t in range(out.shape[1]):
            text, values = corners(out[b, t])
            rows.append(Row(f"output[{b}, {t}]", f"In [25] out[{b}, {t}]", text, values))
            echo(f"        out[{b}, {t}] = [{text}]")

    shapes = gpt_param_shapes(cfg)
    total = sum(int(np.prod(s)) for s in shapes.values())
    tied = total - int(np.prod(shapes["out_head.weight"]))
    size_mb = total * 4 / (1024 * 1024)
    sizes = [
        ("total_params", "In [26] total parameters", f"{total:,}"),
        ("tok_emb_shape", "In [27] token embedding shape", str(shapes["tok_emb.weight"])),
        ("out_head_shape", "In [27] output layer shape", str(shapes["out_head.weight"])),
        ("params_weight_tying", "In [28] parameters with weight tying", f"{tied:,}"),
        ("size_mb", "In [29] size (float32)", f"{size_mb:.2f} MB"),
    ]
    for key, label, text in sizes:
        rows.append(Row(key, label, text, depends=("cfg",)))
        echo(f"{label}: {text}")

    encoded = encode(START_CONTEXT)
    rows.append(Row("encoded", "In [31] encoded", str(encoded), depends=()))
    ids = generate_text_simple(model, np.array([encoded]), max_new_tokens, cfg["context_length"])
    ids = ids[0].tolist()
    text = decode(ids)
    rows.append(Row("generate.ids", "In [32] generated ids", str(ids)))
    rows.append(Row("generate.text", "In [33] decoded", text))
    echo(f"In [32] {ids}\nIn [33] {text}")
    computed = {
        "batch": batch.tolist(),
        "output": {"shape": list(out.shape), "corners": [r.values for r in rows if r.values]},
        "params": {"total": total, "weight_tying": tied, "size_mb": size_mb},
        "generate": {"ids": ids, "text": text},
    }
    return computed, rows
