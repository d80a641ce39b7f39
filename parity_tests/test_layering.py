"""The design's layering: numpy_impl never imports torch, torch_impl never imports numpy_impl."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("package", "forbidden"), [("numpy_impl", "torch"), ("torch_impl", "numpy_impl")]
)
def test_backend_does_not_import_the_other(package, forbidden):
    code = (
        f"import sys, {package}; "
        f"bad = sorted(m for m in sys.modules if m == {forbidden!r} or m.startswith({forbidden!r} + '.')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, f"importing {package} loaded {done.stdout.strip()}"
