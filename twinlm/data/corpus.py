"""The embedded corpora: real text on every machine, offline, taken from the running Python's
standard library.

- `stdlib_prose` (the default): the English prose of the standard library's docstrings, one
  paragraph a line — "Return the next item from the generator. When exhausted, raise
  StopIteration." About 1 MB of technical English, so a small model's samples read like words.
- `stdlib_source`: the source code of a fixed list of modules, like Karpathy's Linux-source
  experiment (whitespace and Python fragments: a harder text to make look readable).

Both are fixed for a given Python version; another version brings its own edition of these files,
hence a slightly different corpus.
"""

from __future__ import annotations

import ast
import os
import re
import sysconfig
import warnings
from collections.abc import Iterator
from pathlib import Path

from twinlm.shared.validate import require_choice, require_int

DEFAULT_CORPUS_BYTES = 1_000_000  # about the size of tiny shakespeare
CORPUS_KINDS = ("prose", "source")

# stdlib_source: modules that are single files in every Python from 3.10 on (pathlib and zipfile
# became packages in 3.13/3.12, so they are left out).
CORPUS_MODULES = (
    "abc.py",
    "argparse.py",
    "ast.py",
    "bisect.py",
    "calendar.py",
    "collections/__init__.py",
    "contextlib.py",
    "copy.py",
    "csv.py",
    "dataclasses.py",
    "difflib.py",
    "enum.py",
    "fractions.py",
    "functools.py",
    "heapq.py",
    "inspect.py",
    "json/decoder.py",
    "json/encoder.py",
    "os.py",
    "pprint.py",
    "random.py",
    "shlex.py",
    "shutil.py",
    "statistics.py",
    "string.py",
    "tempfile.py",
    "textwrap.py",
    "threading.py",
    "tokenize.py",
    "typing.py",
)
# stdlib_prose skips folders of tests (doctest transcripts, Python 2 fixtures) and third parties.
SKIPPED_DIRS = frozenset({"test", "tests", "idle_test", "lib2to3", "site-packages", "__pycache__"})

_ROLE = re.compile(r":[\w:.-]+:`~?([^`]*)`")  # :func:`name` -> name (reST roles)
_LITERAL = re.compile(r"``([^`]*)``")  # ``x`` -> x


def default_corpus(
    max_bytes: int = DEFAULT_CORPUS_BYTES, kind: str = "prose", stdlib: str | None = None
) -> str:
    """The embedded corpus `kind` ("prose": stdlib_prose, "source": stdlib_source), cut to at
    most `max_bytes` UTF-8 bytes. `stdlib` overrides the folder read (default the running
    Python's, `sysconfig.get_paths()["stdlib"]`)."""
    require_choice("kind", kind, CORPUS_KINDS)
    return (stdlib_prose if kind == "prose" else stdlib_source)(max_bytes, stdlib)


def stdlib_prose(max_bytes: int = DEFAULT_CORPUS_BYTES, stdlib: str | None = None) -> str:
    """The prose paragraphs of the standard library's docstrings, one a line, cut to at most
    `max_bytes` UTF-8 bytes.

    Files in sorted order (SKIPPED_DIRS left out), docstrings in source order, cleaned as
    `inspect.cleandoc` does and cut at blank lines. A paragraph is kept when it is prose: no
    indented line (code, literal blocks, argument tables), no `>>>`, not ending in `::`; once
    reST roles and ``literals`` are reduced to their text, its words joined by single spaces, it starts
    with a capital letter, ends with a full stop, holds at least 40 characters of which ≥ 90 % are
    letters or spaces, and has not appeared before.
    """
    require_int("max_bytes", max_bytes, 1)
    root = _stdlib_root(stdlib)
    parts, size, seen = [], 0, set()
    for path in _python_files(root):
        for para in _docstring_paragraphs(path):
            if para not in seen:
                seen.add(para)
                parts.append(para + "\n")
                size += len(para.encode("utf-8")) + 1
        if size >= max_bytes:
            break
    if not parts:
        raise FileNotFoundError(
            f"no standard-library docstrings found under {root} for the default corpus; "
            "pass a text file instead (--text)"
        )
    return _cut("".join(parts), max_bytes)


def stdlib_source(max_bytes: int = DEFAULT_CORPUS_BYTES, stdlib: str | None = None) -> str:
    """The standard library's own source: CORPUS_MODULES in sorted order, each after a
    `# ===== <path> =====` header, cut to at most `max_bytes` UTF-8 bytes. Files missing under
    the folder are skipped."""
    require_int("max_bytes", max_bytes, 1)
    root = _stdlib_root(stdlib)
    parts = []
    for rel in sorted(CORPUS_MODULES):
        path = root / rel
        if path.is_file():
            parts.append(f"# ===== {rel} =====\n\n{path.read_text(encoding='utf-8')}\n")
    if not parts:
        raise FileNotFoundError(
            f"no standard-library sources found under {root} for the default corpus; "
            "pass a text file instead (--text)"
        )
    return _cut("".join(parts), max_bytes)


def _stdlib_root(stdlib: str | None) -> Path:
    return Path(stdlib or sysconfig.get_paths()["stdlib"])


def _cut(text: str, max_bytes: int) -> str:
    data = text.encode("utf-8")[:max_bytes]
    return data.decode("utf-8", errors="ignore")  # drop a character cut in half at the end


def _python_files(root: Path) -> list[Path]:
    """Every .py file under root outside SKIPPED_DIRS (never entered), sorted by relative path."""
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS]
        files += [Path(folder, n) for n in names if n.endswith(".py")]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _docstring_paragraphs(path: Path) -> Iterator[str]:
    """The prose paragraphs of one file's docstrings (see stdlib_prose)."""
    try:
        with warnings.catch_warnings():  # invalid escapes in old files: SyntaxWarning
            warnings.simplefilter("ignore")
            tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError):  # not this Python's syntax, or a null byte
        return
    for node in _documented(tree):
        for block in re.split(r"\n[ \t]*\n", ast.get_docstring(node) or ""):
            if _is_prose_block(block):
                para = " ".join(block.split())  # one line, single spaces
                para = _LITERAL.sub(r"\1", _ROLE.sub(r"\1", para))
                if _is_prose_line(para):
                    yield para


def _documented(node: ast.AST) -> Iterator[ast.AST]:
    """The module, then every class and function in source order, nested ones included: the nodes
    that can hold a docstring. Only statements are visited (expressions hold none)."""
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        yield node
    for field in ("body", "orelse", "finalbody", "handlers", "cases"):  # lists of statements
        for child in getattr(node, field, ()):
            yield from _documented(child)


def _is_prose_block(block: str) -> bool:
    lines = block.strip("\n").splitlines()
    return bool(lines) and not (
        any(line[:1] in (" ", "\t") for line in lines)
        or ">>>" in block
        or block.rstrip().endswith("::")
    )


def _is_prose_line(para: str) -> bool:
    letters = sum(c.isalpha() or c == " " for c in para)
    return (
        len(para) >= 40 and para[0].isupper() and para.endswith(".") and letters >= 0.9 * len(para)
    )
