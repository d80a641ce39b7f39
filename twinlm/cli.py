"""The `twinlm` command line. Each subcommand's work lives in its own module; this file only parses."""

from __future__ import annotations

import argparse
import sys


def _check(args: argparse.Namespace) -> int:
    from twinlm.check import run_check

    return run_check(seed=args.seed)


def _demo(args: argparse.Namespace) -> int:
    from twinlm.check import run_check

    return run_check(seed=0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="twinlm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="parity table: every op, both backends, float64 and float32")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_check)

    p = sub.add_parser("demo", help="the main demo (what `make demo` runs)")
    p.set_defaults(func=_demo)

    # Further subcommands (train, generate, data, charrnn, classify, bench) register below.
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
