"""The `twinlm` command line. Each subcommand's work lives in its own module ("module:function",
called with the parsed flags); this file only parses, checks the values of the flags before any
work starts, and is the one error boundary (`main`). A training command's flags are generated
from the declarations of its settings (twinlm/training/settings.py: default, help, check, whether
it may change on --resume); every other flag that takes a number is checked by the same checks
(Integer, Number), so a flag name is checked the same way in every command.

    exit 0    done
    exit 1    a runtime failure: download failed, disk full, training diverged, --out busy
    exit 2    bad input: a flag's value, a missing or unwritable path, a file of the wrong kind
    exit 70   a bug in twinlm: the traceback is printed, and says so
    exit 130  stopped by SIGINT (Ctrl-C); 143: by SIGTERM (a training run saves a checkpoint first)
Every anticipated failure prints one line naming the flag or the file; TWINLM_DEBUG=1 shows the
traceback of any failure. A path twinlm may not write (EACCES, EPERM, a read-only file system) is
bad input; an empty flag value is refused rather than read as the default. Under torchrun each
rank exits as above, its line naming it (twinlm/training/distributed.py `launched`).
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib
import os
import signal
import sys
import threading
import traceback

from twinlm.training.settings import (
    INDEX_LIKE,
    NON_NEGATIVE,
    RATE,
    STEPS_LIKE,
    CharRNNSettings,
    ClassifySettings,
    RunOptions,
    TrainSettings,
    add_flags,
)


class _Store(argparse.Action):
    """argparse's plain store, which also notes the flag in args.given: a resumed run refuses the
    given flags that would change its model or data (twinlm/training/settings.py resume_with).
    An empty value is refused (`--out ''` must not mean the default folder), except where empty
    is a value (EMPTY_IS_A_VALUE)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if values == "" and self.dest not in EMPTY_IS_A_VALUE:
            parser.error(f"argument {'/'.join(self.option_strings)}: must not be empty")
        setattr(namespace, self.dest, values)
        namespace.given = {*getattr(namespace, "given", ()), self.dest}


EMPTY_IS_A_VALUE = {"primer"}  # `charrnn sample --primer ''`: start from nothing (the default)


class _Parser(argparse.ArgumentParser):
    """argparse that notes in args.given the flags given (see _Store)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register("action", None, _Store)
        self.register("action", "store", _Store)


# The settings of `charrnn compare`: those its cells share (--hidden-size: the LSTM's, the budget's).
COMPARE_SETTINGS = (
    "dtype", "emb_dim", "hidden_size", "num_layers", "drop_rate", "batch_size", "seq_length",
    "steps", "lr", "eval_every", "eval_batches", "seed",
)  # fmt: skip


def _run_flags(p: argparse.ArgumentParser, settings: type, *, out: str) -> None:
    """A training command's flags: its settings' and RunOptions' (twinlm/training/settings.py
    declares them), and where its run goes."""
    add_flags(p, RunOptions)
    add_flags(p, settings)
    p.add_argument("--out", default=out, help=f"folder for the checkpoint and plots ({out})")
    p.add_argument("--resume", default=None, help="continue (or, with a larger --steps, extend)")
    p.add_argument("--force", action="store_true", help="replace the checkpoint already in --out")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="twinlm",
        description="GPT-2, Qwen3 and Karpathy's char-RNN (vanilla RNN, GRU, LSTM) written twice "
        "(NumPy with hand-derived gradients, and PyTorch from elementary ops), trained side by "
        "side and proved equal.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "check",
        help="parity table: every op, both backends, float64 and float32; with --impl, your own "
        "ops (docs/check-your-backward.md)",
    )
    p.add_argument("--seed", type=INDEX_LIKE, default=0)
    p.add_argument(
        "--impl",
        default=None,
        help="a .py file (or a folder of them) with your own <op>_forward / <op>_backward: check "
        "them against numpy_impl's (runs that code)",
    )
    p.add_argument("--op", default=None, help="only this op (e.g. layernorm)")
    p.add_argument(
        "--examples",
        type=STEPS_LIKE,
        default=None,
        help="examples per op for the sweep and float32 (default: 10 with --impl, else 4)",
    )
    p.set_defaults(func="twinlm.parity.check:main_check")

    p = sub.add_parser(
        "exercise", help="write an op's forward/backward stubs to fill in, then check --impl"
    )
    p.add_argument("op", nargs="?", default=None, help="the op (--list shows them)")
    p.add_argument("--out", default="exercises", help="folder for OP.py (exercises)")
    p.add_argument("--force", action="store_true", help="replace an existing OP.py")
    p.add_argument("--list", action="store_true", help="list the ops offered")
    p.set_defaults(func="twinlm.parity.exercise:main_exercise")

    p = sub.add_parser(
        "demo", help="NumPy and PyTorch train the same GPT in lockstep (`make demo`)"
    )
    p.add_argument("--steps", type=STEPS_LIKE, default=600)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    p.add_argument("--out", default="runs/demo", help="folder for the picture (runs/demo)")
    p.set_defaults(func="twinlm.demo:main_demo")

    p = sub.add_parser("train", help="train a GPT (chapter 5) or Qwen3 on a text, either backend")
    _run_flags(p, TrainSettings, out="runs/gpt")
    p.add_argument("--text", default=None, help="UTF-8 text file (default: the embedded corpus)")
    p.set_defaults(func="twinlm.training.lm:main_train")

    p = sub.add_parser("generate", help="continue a prompt: a trained or imported GPT or Qwen3")
    p.add_argument("--backend", choices=["numpy", "torch"], default="numpy")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", default=None, help="a `twinlm train` checkpoint")
    source.add_argument(
        "--weights", default=None, help="GPT-2 weights (HF safetensors, .pth) or a Qwen3 folder"
    )
    p.add_argument("--prompt", default="Every effort moves you")
    p.add_argument("--max-new-tokens", type=INDEX_LIKE, default=50)
    p.add_argument("--temperature", type=NON_NEGATIVE, default=0.0, help="0: greedy")
    p.add_argument(
        "--top-k", type=STEPS_LIKE, default=None, help="sample from the k likeliest tokens"
    )
    p.add_argument(
        "--seed", type=INDEX_LIKE, default=123, help="sampling seed (same in both backends)"
    )
    p.add_argument("--no-cache", action="store_true", help="the book's loop, without a KV cache")
    p.add_argument("--eos-id", type=INDEX_LIKE, default=None, help="stop at this id (50256 is EOT)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--device", default=None, help="torch device, e.g. cuda (default: cpu)")
    p.add_argument(
        "--n-heads", type=STEPS_LIKE, default=None, help="attention heads, for --weights"
    )
    p.set_defaults(func="twinlm.generation:main_generate")

    p = sub.add_parser("data", help="download the book's and char-rnn's data sets (cached)")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("get", help="fetch a data set, verify its sha256, print its path")
    p.add_argument("name", choices=["verdict", "shakespeare", "sms-spam"])
    p.add_argument("--cache-dir", default=None, help="default: $TWINLM_CACHE/data")
    p.add_argument("--url", default=None, help="download from this mirror instead")
    p.add_argument("--sha256", default=None, help="expect this hash instead of the pinned one")
    p.set_defaults(func="twinlm.data.download:main_get")

    p = sub.add_parser("bench", help="race NumPy, torch-CPU and GPU on every op; write the report")
    p.add_argument("--full", action="store_true", help="the full size sweep (default: quick)")
    p.add_argument("-k", default=None, metavar="EXPR", help="only benchmarks matching (pytest -k)")
    p.add_argument("--time", type=RATE, default=0.3, help="seconds of timed rounds per benchmark")
    p.add_argument(
        "--threads", type=STEPS_LIKE, default=None, help="CPU threads for NumPy and torch"
    )
    p.add_argument("--out", default=None, help="report folder (default: bench/report)")
    p.add_argument("--json", default=None, help="raw JSON (default: .benchmarks/latest.json)")
    p.add_argument("--report-only", action="store_true", help="rebuild the report from --json")
    p.set_defaults(func="twinlm.report.bench:main_bench")

    p = sub.add_parser("classify", help="GPT or Qwen3 as a spam classifier (chapter 6)")
    classify_sub = p.add_subparsers(dest="classify_command", required=True)
    p = classify_sub.add_parser("train", help="fine-tune a decapitated GPT; curves, checkpoint")
    _run_flags(p, ClassifySettings, out="runs/classifier")
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
    _run_flags(p, CharRNNSettings, out="runs/charrnn")
    p.add_argument("--text", default=None, help="text file (default: the embedded corpus)")
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
    p.add_argument("--temperature", type=NON_NEGATIVE, default=1.0, help="0: greedy")
    p.add_argument("--top-k", type=STEPS_LIKE, default=None)
    p.add_argument("--length", type=INDEX_LIKE, default=500, help="bytes to generate")
    p.add_argument("--seed", type=INDEX_LIKE, default=123)
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
    p.add_argument(
        "--budget", type=STEPS_LIKE, default=None, help="parameters (default: the LSTM's)"
    )
    p.add_argument("--backend", choices=["numpy", "torch"], default=None, help="default: numpy")
    add_flags(p, CharRNNSettings, only=COMPARE_SETTINGS)
    p.add_argument("--out", default="runs/charrnn-compare")
    p.add_argument("--force", action="store_true", help="replace the runs already in --out")
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
    p.add_argument(
        "--seed", type=INDEX_LIKE, default=123, help="replaces the book's 123 at every reseed"
    )
    p.add_argument("--text", default=None, help="ch05: training text (default: the-verdict.txt)")
    p.add_argument(
        "--epochs", type=STEPS_LIKE, default=None, help="ch05/ch06: epochs (book: 10 / 5)"
    )
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


def _handler(func: str):
    """A subcommand's work: "module:function", imported only when it runs, called with the parsed
    flags."""
    module, name = func.split(":")
    return getattr(importlib.import_module(module), name)


def _exit_code(e: Exception) -> int | None:
    """The exit status of an anticipated failure (module docstring); None for a bug."""
    if getattr(e, "exit_code", None) is not None:
        return e.exit_code
    if isinstance(e, (ValueError, TypeError, FileNotFoundError, FileExistsError)):
        return 2
    if isinstance(e, (IsADirectoryError, NotADirectoryError, PermissionError)):
        return 2
    if isinstance(e, OSError) and e.errno in REFUSED:  # a read-only file system: a path to change
        return 2
    if isinstance(e, (OSError, MemoryError)) or type(e).__name__ == "OutOfMemoryError":
        return 1  # disk full, network down, out of (GPU) memory
    return None


REFUSED = (errno.EROFS, errno.EACCES, errno.EPERM)  # a path twinlm may not write: bad input


def _message(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    return str(e) or type(e).__name__


def _anticipated(e: Exception) -> tuple[int, str] | None:
    """(exit status, the one line to print) for an anticipated failure; None for a bug."""
    code = _exit_code(e)
    return None if code is None else (code, _message(e))


class _Terminated(KeyboardInterrupt):
    """SIGTERM outside a training run (which saves first: twinlm/training/loop.py): the command
    stops as on Ctrl-C, its cleanup run, and exits 143."""

    exit_code = 128 + signal.SIGTERM


def _terminate(signum, frame) -> None:
    raise _Terminated("stopped by SIGTERM")


@contextlib.contextmanager
def _sigterm_stops():
    """SIGTERM raises _Terminated for the length of the block (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGTERM) is _terminate:  # not one set inside (launched's)
            signal.signal(signal.SIGTERM, old)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    sub = getattr(args, f"{args.command}_command", None)
    label = f"{parser.prog} {args.command}" + (f" {sub}" if sub else "")
    from twinlm.training.distributed import launched

    try:
        # under torchrun: one rank of a process group, whose failures launched() reports
        with _sigterm_stops(), launched(label, _anticipated):
            return int(_handler(args.func)(args) or 0)
    except KeyboardInterrupt as e:  # Ctrl-C; a training run's Interrupted says what it saved
        if os.environ.get("TWINLM_DEBUG"):
            raise
        print(f"{label}: {str(e) or 'interrupted'}", file=sys.stderr)
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
