"""The `twinlm` command line. Each subcommand's work lives in its own module; this file only parses,
checks the values of the flags before any work starts (FLAG_CHECKS: one check per flag name, the
same in every command), and is the one error boundary (`main`):

    exit 0    done
    exit 1    a runtime failure: download failed, disk full, training diverged, --out busy
    exit 2    bad input: a flag's value, a missing or unwritable path, a file of the wrong kind
    exit 70   a bug in twinlm: the traceback is printed, and says so
    exit 130  stopped by SIGINT (Ctrl-C); 143: by SIGTERM (a training run saves a checkpoint first)
Every anticipated failure prints one line naming the flag or the file; TWINLM_DEBUG=1 shows the
traceback of any failure.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import traceback


def _check(args: argparse.Namespace) -> int:
    if args.impl is not None:
        from twinlm.parity.learner_check import run_learner_check

        return run_learner_check(args.impl, op=args.op, examples=args.examples, seed=args.seed)
    from twinlm.parity.check import run_check

    return run_check(seed=args.seed, op=args.op, examples=args.examples)


def _exercise(args: argparse.Namespace) -> int:
    from twinlm.parity.exercise import run_exercise

    return run_exercise(args.op, out=args.out, force=args.force, show_list=args.list)


def _demo(args: argparse.Namespace) -> int:
    from twinlm.demo import run_demo

    return run_demo(steps=args.steps, dtype=args.dtype, out_dir=args.out)


def _data_get(args: argparse.Namespace) -> int:
    from twinlm.data.download import main_get

    return main_get(args.name, cache_dir=args.cache_dir, url=args.url, sha256=args.sha256)


def _generate(args: argparse.Namespace) -> int:
    from twinlm.generation import main_generate

    return main_generate(
        args.backend,
        args.prompt,
        args.max_new_tokens,
        checkpoint=args.checkpoint,
        weights=args.weights,
        temperature=args.temperature,
        top_k=args.top_k,
        seed=args.seed,
        use_cache=not args.no_cache,
        eos_id=args.eos_id,
        dtype=args.dtype,
        device=args.device,
        n_heads=args.n_heads,
    )


def _bench(args: argparse.Namespace) -> int:
    from twinlm.report.bench import run_bench

    return run_bench(
        full=args.full,
        keyword=args.k,
        bench_time=args.time,
        threads=args.threads,
        out_dir=args.out,
        json_path=args.json,
        report_only=args.report_only,
    )


# ---- the one check of each flag's value, whichever command it belongs to ------------------------


def _integer(low: int):
    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    return check


def _number(low: float, high: float = math.inf, *, above: bool = False, below: bool = False):
    """A finite float in [low, high], or (low, …) with above=True, (…, high) with below=True."""
    span = f"{'(' if above else '['}{low:g}, {high:g}{')' if below or high == math.inf else ']'}"

    def check(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number in {span}, got {text!r}") from None
        inside = (value > low if above else value >= low) and (
            value < high if below else value <= high
        )
        if not (math.isfinite(value) and inside):
            raise argparse.ArgumentTypeError(f"must be a finite number in {span}, got {text}")
        return value

    return check


FLAG_CHECKS = {
    **dict.fromkeys(
        "--steps --batch-size --eval-every --stride --max-length --seq-length --epochs --top-k "
        "--emb-dim --hidden-size --num-layers --n-heads --k --synthetic-size --threads".split(),
        _integer(1),
    ),
    **dict.fromkeys(
        "--checkpoint-every --seed --warmup --eval-batches --decay-after --max-new-tokens "
        "--length --pad-id --eos-id".split(),
        _integer(0),
    ),
    **dict.fromkeys(["--lr", "--lr-decay", "--time"], _number(0, above=True)),
    **dict.fromkeys(
        ["--weight-decay", "--clip", "--temperature", "--checkpoint-minutes"], _number(0)
    ),
    "--drop-rate": _number(0, 1, below=True),
}


class _Store(argparse.Action):
    """argparse's plain store, which also notes the flag in args.given: a resumed run refuses the
    given flags that would change its model or data (twinlm/training/loop.py resume_settings)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.given = {*getattr(namespace, "given", ()), self.dest}


class _Parser(argparse.ArgumentParser):
    """argparse with FLAG_CHECKS applied to every flag it names, and args.given (see _Store)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register("action", None, _Store)
        self.register("action", "store", _Store)

    def add_argument(self, *names, **kwargs):
        if names and names[0] in FLAG_CHECKS:
            kwargs["type"] = FLAG_CHECKS[names[0]]
        return super().add_argument(*names, **kwargs)


def _run_flags(p: argparse.ArgumentParser, *, out: str, eval_every: int) -> None:
    """The flags every training command shares (twinlm/training/loop.py runs them all)."""
    p.add_argument("--backend", choices=["numpy", "torch"], default=None, help="default: numpy")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--eval-every", type=int, default=eval_every, help="optimizer steps")
    p.add_argument("--checkpoint-every", type=int, default=1000, help="steps (0: by time only)")
    p.add_argument("--checkpoint-minutes", type=float, default=10.0, help="also (0: by steps only)")
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--out", default=out, help=f"folder for the checkpoint and plots ({out})")
    p.add_argument("--resume", default=None, help="continue (or, with a larger --steps, extend)")
    p.add_argument("--force", action="store_true", help="replace the checkpoint already in --out")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="twinlm",
        description="GPT-2 and a char-RNN LSTM written twice (NumPy with hand-derived gradients, "
        "and PyTorch), trained side by side and proved equal.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "check",
        help="parity table: every op, both backends, float64 and float32; with --impl, your own "
        "ops (docs/check-your-backward.md)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--impl",
        default=None,
        help="a .py file (or a folder of them) with your own <op>_forward / <op>_backward: check "
        "them against numpy_impl's (runs that code)",
    )
    p.add_argument("--op", default=None, help="only this op (e.g. layernorm)")
    p.add_argument(
        "--examples",
        type=_integer(1),
        default=None,
        help="examples per op for the sweep and float32 (default: 10 with --impl, else 4)",
    )
    p.set_defaults(func=_check)

    p = sub.add_parser(
        "exercise", help="write an op's forward/backward stubs to fill in, then check --impl"
    )
    p.add_argument("op", nargs="?", default=None, help="the op (--list shows them)")
    p.add_argument("--out", default="exercises", help="folder for OP.py (exercises)")
    p.add_argument("--force", action="store_true", help="replace an existing OP.py")
    p.add_argument("--list", action="store_true", help="list the ops offered")
    p.set_defaults(func=_exercise)

    p = sub.add_parser(
        "demo", help="NumPy and PyTorch train the same GPT in lockstep (`make demo`)"
    )
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    p.add_argument("--out", default="runs/demo", help="folder for the picture (runs/demo)")
    p.set_defaults(func=_demo)

    # Further subcommands (train, generate, data, charrnn, classify, bench) register below.
    p = sub.add_parser("train", help="train the book's GPT on a text (chapter 5), either backend")
    _run_flags(p, out="runs/gpt", eval_every=25)
    p.add_argument("--text", default=None, help="UTF-8 text file (default: the embedded corpus)")
    p.add_argument("--arch", choices=["gpt", "qwen3"], default="gpt", help="the model (gpt)")
    p.add_argument(
        "--preset",
        default=None,
        help="model size from twinlm.shared.config.PRESETS (tiny) or QWEN3_PRESETS (qwen3-tiny)",
    )
    p.add_argument("--steps", type=int, default=200, help="optimizer steps in total")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-length", type=int, default=64, help="tokens per training window")
    p.add_argument("--stride", type=int, default=None, help="default: --max-length")
    p.add_argument("--lr", type=float, default=1e-3, help="peak learning rate (cosine to lr/10)")
    p.add_argument("--warmup", type=int, default=20, help="linear warmup steps")
    p.add_argument("--drop-rate", type=float, default=None, help="override the preset's dropout")
    p.set_defaults(func="twinlm.training.lm:main_train")

    p = sub.add_parser("generate", help="continue a prompt with a trained GPT (chapter 5)")
    p.add_argument("--backend", choices=["numpy", "torch"], default="numpy")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", default=None, help="a `twinlm train` checkpoint")
    source.add_argument(
        "--weights", default=None, help="GPT-2 weights (HF safetensors, .pth) or a Qwen3 folder"
    )
    p.add_argument("--prompt", default="Every effort moves you")
    p.add_argument("--max-new-tokens", type=int, default=50)
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    p.add_argument("--top-k", type=int, default=None, help="sample from the k likeliest tokens")
    p.add_argument("--seed", type=int, default=123, help="sampling seed (same in both backends)")
    p.add_argument("--no-cache", action="store_true", help="the book's loop, without a KV cache")
    p.add_argument("--eos-id", type=int, default=None, help="stop at this id (50256 is EOT)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--device", default=None, help="torch device, e.g. cuda (default: cpu)")
    p.add_argument("--n-heads", type=int, default=None, help="attention heads, for --weights")
    p.set_defaults(func=_generate)

    p = sub.add_parser("data", help="download the book's and char-rnn's data sets (cached)")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("get", help="fetch a data set, verify its sha256, print its path")
    p.add_argument("name", choices=["verdict", "shakespeare", "sms-spam"])
    p.add_argument("--cache-dir", default=None, help="default: $TWINLM_CACHE/data")
    p.add_argument("--url", default=None, help="download from this mirror instead")
    p.add_argument("--sha256", default=None, help="expect this hash instead of the pinned one")
    p.set_defaults(func=_data_get)

    p = sub.add_parser("bench", help="race NumPy, torch-CPU and GPU on every op; write the report")
    p.add_argument("--full", action="store_true", help="the full size sweep (default: quick)")
    p.add_argument("-k", default=None, metavar="EXPR", help="only benchmarks matching (pytest -k)")
    p.add_argument("--time", type=float, default=0.3, help="seconds of timed rounds per benchmark")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for NumPy and torch")
    p.add_argument("--out", default=None, help="report folder (default: bench/report)")
    p.add_argument("--json", default=None, help="raw JSON (default: .benchmarks/latest.json)")
    p.add_argument("--report-only", action="store_true", help="rebuild the report from --json")
    p.set_defaults(func=_bench)

    p = sub.add_parser("classify", help="GPT as a spam classifier (chapter 6), either backend")
    classify_sub = p.add_subparsers(dest="classify_command", required=True)
    p = classify_sub.add_parser("train", help="fine-tune a decapitated GPT; curves, checkpoint")
    _run_flags(p, out="runs/classifier", eval_every=50)
    p.add_argument(
        "--weights", default=None, help="GPT-2 weights or a Qwen3 folder (default: fresh model)"
    )
    p.add_argument("--n-heads", type=int, default=None, help="attention heads of --weights")
    p.add_argument("--preset", default="tiny", help="model without --weights (tiny, qwen3-tiny…)")
    p.add_argument("--data", choices=["sms-spam", "synthetic"], default="synthetic")
    p.add_argument("--synthetic-size", type=int, default=500, help="texts made by --data synthetic")
    p.add_argument(
        "--trainable", choices=["last-block", "last-k", "head", "all"], default="last-block"
    )
    p.add_argument("--k", type=int, default=None, help="blocks trained with --trainable last-k")
    p.add_argument("--position", choices=["last", "last-non-pad"], default="last")
    p.add_argument(
        "--pad-id", type=int, default=None, help="right-padding id (default: the tokenizer's)"
    )
    p.add_argument("--drop-rate", type=float, default=0.0, help="the book fine-tunes with 0.0")
    p.add_argument("--max-length", type=int, default=None, help="default: longest training text")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-5, help="AdamW learning rate (book: 5e-5)")
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--eval-batches", type=int, default=5, help="batches per loss estimate")
    p.set_defaults(func="twinlm.training.classify:main_train")
    p = classify_sub.add_parser("predict", help="label a text with a trained classifier")
    p.add_argument("--checkpoint", required=True, help="classifier.safetensors from train")
    p.add_argument("--text", required=True, action="append", help="a text (repeat for more)")
    p.add_argument("--backend", choices=["numpy", "torch"], default="numpy")
    p.add_argument(
        "--tokenizer", default=None, help="Qwen3: folder with tokenizer.json (default: training's)"
    )
    p.set_defaults(func="twinlm.training.classify:main_predict")

    p = sub.add_parser(
        "charrnn", help="Karpathy's char-RNN (byte-level LSTM, GRU or RNN): train, sample"
    )
    charrnn_sub = p.add_subparsers(dest="charrnn_command", required=True)
    p = charrnn_sub.add_parser(
        "train",
        help="truncated-BPTT training on a text's bytes, either backend",
        description="Train a char-RNN on the bytes of --text (default: the embedded corpus; "
        "`twinlm data get shakespeare` prints the path of tiny shakespeare). Losses are nats per "
        "byte, with bits per character beside them.",
    )
    _run_flags(p, out="runs/charrnn", eval_every=100)
    p.add_argument("--text", default=None, help="text file (default: the embedded corpus)")
    p.add_argument(
        "--model",
        choices=["rnn", "gru", "lstm"],
        default=None,
        help="the cell, as char-rnn's -model (default lstm; --resume: the checkpoint's)",
    )
    p.add_argument(
        "--nonlinearity", choices=["tanh", "relu"], default=None, help="--model rnn's (tanh)"
    )
    p.add_argument("--emb-dim", type=int, default=64, help="byte embedding size")
    p.add_argument("--hidden-size", type=int, default=128, help="units per recurrent layer")
    p.add_argument("--num-layers", type=int, default=2)
    p.add_argument(
        "--drop-rate", type=float, default=0.0, help="dropout after each recurrent layer"
    )
    p.add_argument("--batch-size", type=int, default=50, help="parallel streams")
    p.add_argument("--seq-length", type=int, default=50, help="steps of truncated BPTT")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps in total (1000)")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    p.add_argument("--lr-decay", type=float, default=0.97, help="per epoch, after --decay-after")
    p.add_argument("--decay-after", type=int, default=10, help="epochs before lr decay starts")
    p.add_argument("--weight-decay", type=float, default=0.0, help="> 0: AdamW")
    p.add_argument("--clip", type=float, default=5.0, help="global gradient-norm clip")
    p.add_argument("--eval-batches", type=int, default=20, help="per split; 0: the whole split")
    p.set_defaults(func="twinlm.training.charrnn:main_train")
    p = charrnn_sub.add_parser("sample", help="generate bytes from a trained char-RNN")
    p.add_argument("--checkpoint", required=True, help="checkpoint.safetensors from train")
    p.add_argument(
        "--backend",
        choices=["numpy", "torch"],
        default=None,
        help="default: the one it was trained with",
    )
    p.add_argument("--primer", default="", help="text to start from (default: none)")
    p.add_argument("--temperature", type=float, default=1.0, help="0: greedy")
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--length", type=int, default=500, help="bytes to generate")
    p.add_argument("--seed", type=int, default=123)
    p.set_defaults(func="twinlm.training.charrnn:main_sample")
    p = charrnn_sub.add_parser(
        "compare",
        help="RNN, GRU and LSTM at equal parameter count: a bits-per-character table and plot",
        description="Train each cell with the largest hidden size whose char-RNN has no more "
        "parameters than the budget (default: the LSTM at --hidden-size), same data, batches and "
        "schedule; writes compare.md and compare.png to --out. Minutes, not seconds.",
    )
    p.add_argument("--text", default=None, help="text file (default: the embedded corpus)")
    p.add_argument(
        "--cells",
        nargs="+",
        choices=["rnn_tanh", "rnn_relu", "gru", "lstm"],
        default=["rnn_tanh", "gru", "lstm"],
    )
    p.add_argument("--budget", type=int, default=None, help="parameters (default: the LSTM's)")
    p.add_argument("--backend", choices=["numpy", "torch"], default=None, help="default: numpy")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--hidden-size", type=int, default=128, help="the LSTM's, which sets the budget")
    p.add_argument("--emb-dim", type=int, default=64)
    p.add_argument("--num-layers", type=int, default=2)
    p.add_argument("--drop-rate", type=float, default=0.0)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--seq-length", type=int, default=50)
    p.add_argument("--steps", type=int, default=1000, help="optimizer steps per cell")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--eval-batches", type=int, default=20, help="per split; 0: the whole split")
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--out", default="runs/charrnn-compare")
    p.set_defaults(func="twinlm.training.charrnn_compare:main_compare")

    p = sub.add_parser(
        "book",
        help="replay a chapter with the book's exact recipe; print its lines and a table vs the book",
        description="Run the book's chapter 4, 5 or 6 with its recipe (torch's global generator "
        "as the one random source, drawn in the book's order; NumPy receives torch's draws) and "
        "compare every printed number with the book's (twinlm/book/values.json).",
    )
    p.add_argument("chapter", choices=["ch04", "ch05", "ch06"])
    p.add_argument("--backend", choices=["numpy", "torch"], default="numpy")
    p.add_argument("--seed", type=int, default=123, help="replaces the book's 123 at every reseed")
    p.add_argument("--text", default=None, help="ch05: training text (default: the-verdict.txt)")
    p.add_argument("--epochs", type=int, default=None, help="ch05/ch06: epochs (book: 10 / 5)")
    p.add_argument(
        "--set", action="append", nargs="+", metavar="KEY=VALUE", help="override a config key"
    )
    p.add_argument("--weights", default=None, help="GPT-2 124M weights (ch05 In [56], ch06)")
    p.add_argument("--data", default=None, help="ch06: the SMSSpamCollection file")
    p.add_argument("--json", default=None, metavar="OUT", help="write what was computed here")
    p.add_argument("--save", default=None, help="ch05: save the trained model (for score)")
    p.set_defaults(func="twinlm.book.main:main_book")

    p = sub.add_parser("score", help="per-token loss, perplexity and entropy of a text")
    p.add_argument("--backend", choices=["numpy", "torch"], default="numpy")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", default=None, help="a `twinlm train` checkpoint")
    source.add_argument("--weights", default=None, help="GPT-2 weights (HF safetensors or .pth)")
    p.add_argument("--text", required=True, help="the text to score")
    p.add_argument("--png", default="score.png", help="heat map (default: score.png)")
    p.add_argument("--color", choices=["auto", "always", "never"], default="auto")
    p.set_defaults(func="twinlm.book.score:main_score")
    return parser


def _handler(func):
    """A subcommand's work: a function here, or "module:function" imported only when it runs."""
    if isinstance(func, str):
        module, name = func.split(":")
        return getattr(importlib.import_module(module), name)
    return func


def _exit_code(e: Exception) -> int | None:
    """The exit status of an anticipated failure (module docstring); None for a bug."""
    if getattr(e, "exit_code", None) is not None:
        return e.exit_code
    if isinstance(e, (ValueError, TypeError, FileNotFoundError, FileExistsError)):
        return 2
    if isinstance(e, (IsADirectoryError, NotADirectoryError, PermissionError)):
        return 2
    if isinstance(e, (OSError, MemoryError)) or type(e).__name__ == "OutOfMemoryError":
        return 1  # disk full, network down, out of (GPU) memory
    return None


def _message(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    return str(e) or type(e).__name__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    sub = getattr(args, f"{args.command}_command", None)
    label = f"{parser.prog} {args.command}" + (f" {sub}" if sub else "")
    from twinlm.training.distributed import launched

    try:
        with launched(label):  # under torchrun: one rank of a process group; a failure is one line
            return int(_handler(args.func)(args) or 0)
    except KeyboardInterrupt as e:  # Ctrl-C; a training run's Interrupted says what it saved
        if os.environ.get("TWINLM_DEBUG"):
            raise
        print(f"{label}: {e or 'interrupted'}", file=sys.stderr)
        return getattr(e, "exit_code", 130)
    except Exception as e:
        code = _exit_code(e)
        if os.environ.get("TWINLM_DEBUG"):
            raise
        if code is None:
            traceback.print_exc()
            print(
                f"{label}: internal error: this is a bug in twinlm, not a problem with your "
                "input; please report it with the traceback above",
                file=sys.stderr,
            )
            return 70
        print(f"{label}: error: {_message(e)}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
