"""`twinlm book ch04|ch05|ch06` (twinlm/cli.py parses): run a chapter with the book's recipe in
one backend, print the book's lines as they come, then the comparison table; --json writes what
was computed, the settings and the table.

    --seed S          S in place of the book's 123 at every torch.manual_seed(123) of the notebook
    --set KEY=VALUE   a config key (emb_dim=32, n_layers=2, context_length=64, drop_rate=0.0, …) or,
                      for ch05, a recipe key (batch_size, lr, weight_decay, eval_freq, eval_iter,
                      sample_tokens, train_ratio); the rows that depend on it show "book value n/a"
    --epochs N        ch05's epochs (the book: 10); the log rows of the epochs run still compare
    --text PATH       ch05's text (default: the-verdict.txt from `twinlm data get verdict`)
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict

from twinlm.book.recipe import BookRecipe
from twinlm.book.stream import BookStream
from twinlm.book.table import compare_rows, format_table, write_json
from twinlm.shared.config import CONFIG_KEYS, GPT_CONFIG_124M, validate_config
from twinlm.training.settings import INDEX_LIKE

BOOK_SEED = 123
BOOK_SEQUENCE = 4  # tokens of the chapters' inputs ("Every effort moves you", ch04's batch)
CH05_CONFIG = {**GPT_CONFIG_124M, "context_length": 256}  # the book's shortened context
RECIPE_KEYS = (
    "batch_size",
    "lr",
    "weight_decay",
    "eval_freq",
    "eval_iter",
    "sample_tokens",
    "train_ratio",
)
VERDICT_NEEDED = (
    "ch05 needs the-verdict.txt: run `twinlm data get verdict` (online once), or pass --text PATH"
)


def parse_value(text: str):
    """A --set value: an int, a float, true/false, or the text itself."""
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_sets(pairs: list[str], allowed: tuple[str, ...]) -> dict:
    """--set KEY=VALUE pairs as a dict; every key must be one of `allowed`."""
    out = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise ValueError(f"--set takes KEY=VALUE, got {pair!r}")
        if key not in allowed:
            raise ValueError(f"--set: unknown key {key!r}; expected one of {list(allowed)}")
        out[key] = parse_value(value)
    return out


def book_config(base: dict, sets: dict) -> dict:
    """The chapter's config with the --set keys, checked; the context must hold the chapters'
    inputs, the vocabulary every GPT-2 token id (the chapters read GPT-2 tokens)."""
    from twinlm.data.tokenizer import VOCAB_SIZE

    cfg = validate_config({**base, **sets})
    if cfg["context_length"] < BOOK_SEQUENCE:
        raise ValueError(
            f"--set context_length={cfg['context_length']}: the chapters feed the model "
            f'sequences of {BOOK_SEQUENCE} tokens ("Every effort moves you"), so context_length '
            f"must be at least {BOOK_SEQUENCE}"
        )
    if cfg["vocab_size"] < VOCAB_SIZE:
        raise ValueError(
            f"--set vocab_size={cfg['vocab_size']}: the chapters read GPT-2 token ids, up to "
            f"{VOCAB_SIZE - 1}, so vocab_size must be at least {VOCAB_SIZE}"
        )
    return cfg


def read_book_text(path: str | None) -> tuple[str, bool]:
    """(the text, whether it is the book's the-verdict.txt byte for byte)."""
    from twinlm.data.download import DATASETS, fetch
    from twinlm.data.files import read_input, utf8

    if path is None:
        try:
            path = fetch("verdict")
        except OSError as e:
            raise FileNotFoundError(f"{VERDICT_NEEDED} ({e})") from e
    data = read_input(path, "--text")
    is_book = hashlib.sha256(data).hexdigest() == DATASETS["verdict"].sha256
    return utf8(data, path, "--text"), is_book


# The flags that only some chapters read (a flag a chapter would ignore is refused).
CHAPTER_FLAGS = {
    "set": ("ch04", "ch05"),
    "text": ("ch05",),
    "save": ("ch05",),
    "epochs": ("ch05", "ch06"),
    "weights": ("ch05", "ch06"),
    "data": ("ch06",),
}


def check_flags(args) -> None:
    """Before any work: refuse a flag the chapter would ignore, and check the files the run writes
    when it is done (--save, --json), as a training run checks its --out."""
    from twinlm.data.files import writable_file

    for flag, chapters in CHAPTER_FLAGS.items():
        if getattr(args, flag) is not None and args.chapter not in chapters:
            raise ValueError(f"--{flag} is for {' and '.join(chapters)}, not {args.chapter}")
    if args.save is not None:
        writable_file(args.save, "--save")
    if args.json is not None:
        writable_file(args.json, "--json")


def main_book(args) -> int:
    from twinlm.data.tokenizer import decode, encode

    check_flags(args)
    chapter, backend = args.chapter, args.backend
    flat = [p for group in (args.set or []) for p in group]
    stream = BookStream(args.seed)
    changed = {"seed"} if args.seed != BOOK_SEED else set()
    start = time.perf_counter()
    header = f"twinlm book {chapter} [{backend}], seed {args.seed}"
    if chapter == "ch04":
        from twinlm.book.ch04 import run_ch04

        sets = parse_sets(flat, CONFIG_KEYS + ("max_new_tokens",))
        new_tokens = sets.pop("max_new_tokens", 6)
        INDEX_LIKE.check("max_new_tokens", new_tokens)
        cfg = book_config(GPT_CONFIG_124M, sets)
        changed |= {"cfg"} if sets else set()
        print(header, flush=True)
        computed, rows = run_ch04(backend, cfg, stream, encode, decode, max_new_tokens=new_tokens)
        settings = {"cfg": cfg, "max_new_tokens": new_tokens}
    elif chapter == "ch05":
        from twinlm.book.ch05 import run_ch05

        sets = parse_sets(flat, CONFIG_KEYS + RECIPE_KEYS)
        recipe_sets = {k: sets.pop(k) for k in RECIPE_KEYS if k in sets}
        cfg = book_config(CH05_CONFIG, sets)
        epochs = 10 if args.epochs is None else args.epochs
        recipe = BookRecipe(cfg=cfg, seed=args.seed, epochs=epochs, **recipe_sets)
        text, is_verdict = read_book_text(args.text)
        print(header, flush=True)
        changed |= {"cfg"} if sets else set()
        changed |= {"recipe"} if recipe_sets else set()
        changed |= set() if is_verdict else {"text"}
        changed |= {"epochs"} if epochs != 10 else set()
        weights = None
        if args.weights:
            from twinlm.generation import load_model

            weights = load_model(backend, weights=args.weights)
        computed, rows = run_ch05(
            backend, recipe, text, stream, encode, decode, print, weights, args.save
        )
        settings = {"recipe": asdict(recipe), "text_is_the_verdict": is_verdict}
    else:
        from twinlm.book.ch06 import ch06_inputs, run_ch06

        ch06_inputs(args)  # what it needs, before anything runs
        print(header, flush=True)
        computed, rows, settings, more = run_ch06(args, stream, encode, decode)
        changed |= more
    rows = compare_rows(rows, chapter, changed)
    seconds = time.perf_counter() - start
    print(f"\n{format_table(rows)}\n{chapter} [{backend}]: {seconds:.0f} s")
    if args.json:
        settings |= {"chapter": chapter, "backend": backend, "seed": args.seed, "seconds": seconds}
        settings |= {"changed": sorted(changed), "reseeds": stream.reseeds}
        print(f"json: {write_json(args.json, computed, rows, settings)}")
    return 0
