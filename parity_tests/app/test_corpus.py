"""The embedded corpora (twinlm/data/corpus.py).

The prose corpus is checked against a hand-written standard library in a temporary folder, whose
expected text is written out here in full; the real one for its shape.
"""

from __future__ import annotations

import textwrap

import pytest

from twinlm.data.corpus import CORPUS_MODULES, default_corpus, stdlib_prose, stdlib_source

# -- the prose of docstrings ------------------------------------------------------------------------

FAKE_STDLIB = {
    "abc.py": '''
        """Abstract base classes, defined here for the corpus test.

        A second paragraph that wraps
        over two lines, with :func:`len` and ``x`` in it.

        Example::

            x = Thing()

        >>> Thing()
        Thing

        too short, and lower case.

        This paragraph has no full stop at its end

        Symbols $$$ ### %%% @@@ !!! &&& *** ((( ))) [[[ ]]] {{{ }}} ^^^ outweigh the letters here.
        """

        class Thing:
            """Return a thing, made with care and returned to the caller at once."""

            def method(self):
                """Return a thing, made with care and returned to the caller at once."""
                "A string that is not a docstring, though long enough to be one."
    ''',
    "b/__init__.py": '''
        def f():
            """Every word of this paragraph is   spaced   oddly in the source."""
    ''',
    "b/broken.py": '''
        def f(:
            """A docstring in a file that does not parse is never read, though prose."""
    ''',
    "test/test_abc.py": '''
        """A paragraph in the tests folder, which the corpus leaves out on purpose."""
    ''',
}
FAKE_PROSE = (
    "Abstract base classes, defined here for the corpus test.\n"
    "A second paragraph that wraps over two lines, with len and x in it.\n"
    "Return a thing, made with care and returned to the caller at once.\n"  # once: duplicates go
    "Every word of this paragraph is spaced oddly in the source.\n"
)


def write_stdlib(root, files: dict[str, str]) -> str:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return str(root)


def test_prose_keeps_prose_paragraphs_only(tmp_path):
    root = write_stdlib(tmp_path, FAKE_STDLIB)
    assert stdlib_prose(stdlib=root) == FAKE_PROSE
    assert default_corpus(stdlib=root) == FAKE_PROSE  # prose is the default kind
    assert default_corpus(kind="prose", stdlib=root) == FAKE_PROSE


def test_prose_cut(tmp_path):
    root = write_stdlib(
        tmp_path, {"a.py": '"""Où est la gare, demanda-t-il au chef de la gare."""'}
    )
    full = "Où est la gare, demanda-t-il au chef de la gare.\n"
    assert stdlib_prose(stdlib=root) == full
    assert stdlib_prose(max_bytes=2, stdlib=root) == "O"  # half of the two-byte ù is dropped
    assert stdlib_prose(max_bytes=3, stdlib=root) == "Où"
    assert len(stdlib_prose(max_bytes=50_000).encode()) == 50_000  # the real one is longer
    with pytest.raises(FileNotFoundError, match="no standard-library docstrings found"):
        stdlib_prose(stdlib=str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="max_bytes must be >= 1, got 0"):
        stdlib_prose(max_bytes=0)
    with pytest.raises(ValueError, match=r"kind must be one of \['prose', 'source'\], got 'po'"):
        default_corpus(kind="po")


def test_prose_of_the_running_python():
    text = default_corpus(max_bytes=60_000)
    assert text == stdlib_prose(max_bytes=60_000)  # deterministic
    lines = text.splitlines()[:-1]  # the last one may be cut
    assert len(lines) > 300
    assert all(line[0].isupper() and line.endswith(".") and len(line) >= 40 for line in lines)
    assert len(set(lines)) == len(lines)
    assert ">>>" not in text and "  " not in text and "``" not in text
    words = text.split()
    assert sum(w.strip(".,;:()").isalpha() for w in words) > 0.8 * len(words)


# -- the source code ------------------------------------------------------------------------------


def test_source_of_the_running_python():
    text = default_corpus(max_bytes=200_000, kind="source")
    assert text == stdlib_source(max_bytes=200_000)
    assert len(text.encode("utf-8")) == 200_000
    assert text.startswith("# ===== abc.py =====\n")
    headers = [line[8:-6] for line in text.splitlines() if line.startswith("# ===== ")]
    assert headers == sorted(headers) and set(headers) <= set(CORPUS_MODULES)
    assert len(headers) >= 3
    assert "def " in text and "class " in text


def test_source_cut(tmp_path):
    (tmp_path / "abc.py").write_text("x = 'é'\n", encoding="utf-8")
    full = stdlib_source(stdlib=str(tmp_path))
    assert full == "# ===== abc.py =====\n\nx = 'é'\n\n"
    assert default_corpus(kind="source", stdlib=str(tmp_path)) == full
    cut = len(b"# ===== abc.py =====\n\nx = '") + 1  # half of the two-byte é
    assert stdlib_source(max_bytes=cut, stdlib=str(tmp_path)) == "# ===== abc.py =====\n\nx = '"
    with pytest.raises(FileNotFoundError, match="no standard-library sources found"):
        stdlib_source(stdlib=str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="max_bytes must be >= 1, got 0"):
        stdlib_source(max_bytes=0)
