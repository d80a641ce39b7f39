"""The comparison table: quantity | the book's printed value | this run | match, and --json.

A row's book value comes from values.json (the notebook's printed text, with its cell). It is
"n/a" where the run is not the book's: a row names what it depends on (the config, the seed, the
text, the full number of epochs, the weights), and the chapter says which of those it changed.

    match "yes"   this run prints exactly what the book prints
          "≈"     numbers only, each within float32 rounding of the book's: |ours − book| ≤ half a
                  unit of the book's last printed digit + 1e-5·max(1, |book|) (the unrounded
                  value is compared; a wrong recipe misses by far more)
          "NO"    anything else
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from twinlm.data.json_files import config_value, read_json_object

VALUES = Path(__file__).with_name("values.json")
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?")
FLOAT32_SLACK = 1e-5  # "within float32 rounding", relative (1e-4 on a loss near 10)


def book_values(chapter: str) -> dict[str, dict]:
    """The book's printed values of one chapter, by key (values.json)."""
    return json.loads(VALUES.read_text(encoding="utf-8")).get(chapter, {})


def book_sources() -> dict[str, dict]:
    return json.loads(VALUES.read_text(encoding="utf-8"))["sources"]


def collapse(text: str) -> str:
    return " ".join(text.split())


def half_unit(printed: str) -> float:
    """Half a unit of the last digit of a printed number: "9.781" 5e-4, "7.4541e-05" 5e-10."""
    mantissa, _, exponent = printed.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 0.5 * 10.0 ** (int(exponent or 0) - decimals)


def numbers_close(book: str, values: list[float]) -> bool:
    """Every number printed in `book` within half a unit of its last digit + FLOAT32_SLACK·
    max(1, |value|) of the unrounded `values` (same count, same order)."""
    printed = NUMBER.findall(book)
    if len(printed) != len(values) or not printed:
        return False
    for text, value in zip(printed, values):
        book_value = float(text.replace(",", ""))
        slack = half_unit(text) + FLOAT32_SLACK * max(1.0, abs(book_value))
        if not math.isfinite(value) or abs(value - book_value) > slack:
            return False
    return True


@dataclass
class Row:
    """One quantity: what this run printed (`ours`), its unrounded numbers for the ≈ test, and
    what it depends on ("cfg", "seed", "text", "epochs", "weights")."""

    key: str
    label: str
    ours: str
    values: list[float] | None = None
    depends: tuple[str, ...] = ("cfg", "seed")
    book: str | None = None
    cell: int | None = None
    match: str = "n/a"
    extra: dict = field(default_factory=dict)


def compare_rows(rows: list[Row], chapter: str, changed: set[str]) -> list[Row]:
    """Fill in each row's book value and match; "n/a" where the run changed what it depends on
    or the book prints no such value."""
    known = book_values(chapter)
    for row in rows:
        entry = known.get(row.key)
        if entry is None or changed & set(row.depends):
            row.book, row.match = None, "n/a"
            continue
        row.book, row.cell = entry["value"], entry["cell"]
        ours, book = row.ours, row.book
        if entry.get("collapse_whitespace"):
            ours, book = collapse(ours), collapse(book)
        if ours == book:
            row.match = "yes"
        elif row.values is not None and numbers_close(book, row.values):
            row.match = "≈"
        else:
            row.match = "NO"
    return rows


def _cell(text: str | None, width: int) -> str:
    text = "book value n/a" if text is None else text.replace("\n", "⏎")
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(rows: list[Row], width: int = 44) -> str:
    """The rows as an aligned text table (long values cut to `width`)."""
    label_w = max(len("quantity"), *(len(r.label) for r in rows))
    head = f"{'quantity':<{label_w}} | {'book':<{width}} | {'this run':<{width}} | match"
    lines = [head, "-" * len(head)]
    for r in rows:
        book = _cell(r.book, width)
        lines.append(
            f"{r.label:<{label_w}} | {book:<{width}} | {_cell(r.ours, width):<{width}} | {r.match}"
        )
    tally = {m: sum(r.match == m for r in rows) for m in ("yes", "≈", "NO", "n/a")}
    lines.append(", ".join(f"{n} {m}" for m, n in tally.items()))
    return "\n".join(lines)


def markdown_table(runs: dict[str, list[Row]]) -> str:
    """Runs of one chapter (name → rows, e.g. "numpy", "torch") as one Markdown table: the book's
    value, then each run's value and match (as in docs/book.md)."""
    names = list(runs)
    head = "| quantity | book | " + " | ".join(f"{n} | match" for n in names) + " |"
    lines = [head, "|---|---|" + "---|---|" * len(names)]
    by_key = [{r.key: r for r in rows} for rows in runs.values()]
    first = next(iter(runs.values()))

    def esc(text: str | None) -> str:
        text = "book value n/a" if text is None else text
        return text.replace("|", "\\|").replace("\n", "⏎")

    for row in first:
        cells = [esc(row.label), esc(row.book)]
        for rows in by_key:
            other = rows.get(row.key)
            cells += [esc(other.ours), other.match] if other else ["–", "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_json(path: str | Path, computed: dict, rows: list[Row], settings: dict) -> Path:
    """--json OUT: what the run computed, its settings and the table."""
    path = Path(path)
    payload = {**computed, "settings": settings, "table": [asdict(r) for r in rows]}
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_run(path: str | Path) -> tuple[dict, list[Row]]:
    """(settings, rows) of a `twinlm book --json` file; ValueError naming the file and the key
    where it is not one."""
    payload = read_json_object(path)
    settings = config_value(payload, "settings", "object", path)
    for key in ("chapter", "backend"):
        config_value(settings, key, "str", f"{path} (settings)")
    config_value(settings, "seconds", "positive number", f"{path} (settings)")
    table = config_value(payload, "table", "list", path)
    fields = set(Row.__dataclass_fields__)
    rows = []
    for i, r in enumerate(table):
        if type(r) is not dict or not {"key", "label", "ours"} <= set(r) <= fields:
            raise ValueError(
                f"{path}: table[{i}] must be a row object with the keys {sorted(fields)}"
            )
        if not all(type(r[k]) is str for k in ("key", "label", "ours", "match") if k in r) or (
            type(r.get("book")) not in (str, type(None))
        ):
            raise ValueError(
                f"{path}: table[{i}]'s key, label, ours, book and match must be strings"
            )
        rows.append(Row(**r))
    return settings, rows


def main(argv: list[str] | None = None) -> int:
    """`python -m twinlm.book.table RUN.json …`: one Markdown table of `twinlm book --json` runs
    of a chapter, a column per run (as in docs/book.md). A file that is missing or not such a run
    is one line on stderr, exit 2."""
    import sys

    paths = argv if argv is not None else sys.argv[1:]
    if not paths:
        print(
            "twinlm.book.table: error: give one or more `twinlm book --json` files "
            "(python -m twinlm.book.table RUN.json [RUN.json …])",
            file=sys.stderr,
        )
        return 2
    runs, said = {}, []
    try:
        for path in paths:
            s, rows = read_run(path)
            runs[s["backend"]] = rows
            said.append(
                f"`twinlm book {s['chapter']} --backend {s['backend']}`: {s['seconds']:.0f} s"
            )
    except ValueError as e:
        print(f"twinlm.book.table: error: {e}", file=sys.stderr)
        return 2
    print("; ".join(said) + "\n\n" + markdown_table(runs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
