"""Fixtures of the command-line tests (the helpers are parity_tests/cli_helpers.py)."""

from __future__ import annotations

import pytest
from cli_helpers import TEXT


@pytest.fixture
def text(tmp_path):
    """cli_helpers.TEXT in a UTF-8 file."""
    path = tmp_path / "fox.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path
