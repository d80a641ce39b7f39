"""The design's layering, read off every import statement in the tree (lazy ones included).

    __main__, cli, demo            the entry points, each above the next
    book                           the book's chapters replayed with its recipe (`twinlm book`)
    generation                     generation bookkeeping (KV cache, loop) over either backend
    training, parity               the one training loop; the op registry and harness
    data, weights, report          downloads and tokenizers; pretrained weights; plots and tables
    models                         a model of either backend: built, filled, placed, converted
    numpy_impl, torch_impl         the two backends
    twinlm.shared                  what both backends import

A module may import its own layer's package and anything below it, never above: so no module
calls back up into the layer that calls it. numpy_impl never imports torch; torch_impl never
imports numpy_impl; twinlm.shared imports neither backend nor torch. numpy_impl/fast (the fast
path, with its row blocks and threads) is numpy_impl's own: the rest of the tree picks it with
kernels="fast" and never imports it.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

LAYERS = [
    {"twinlm.shared"},
    {"numpy_impl", "torch_impl"},
    {"twinlm.models"},  # the one switch between the backends; everything above builds through it
    {"twinlm.data", "twinlm.weights", "twinlm.report"},
    {"twinlm.training", "twinlm.parity"},
    {"twinlm.generation"},
    {"twinlm.book"},
    {"twinlm.demo"},
    {"twinlm.cli"},
    {"twinlm.__main__", "twinlm"},
]
# Within one layer, packages that may import each other (the arrows go one way only).
SIDEWAYS = {
    "twinlm.weights": {"twinlm.data"},  # a weights folder may carry its tokenizer
    "twinlm.report": {"twinlm.data"},  # a report's folder is checked as every output is (files.py)
}
FORBIDDEN = {
    "numpy_impl": {"torch", "torch_impl"},
    "torch_impl": {"numpy_impl"},
    "twinlm.shared": {"torch"},
}


def unit_of(module: str) -> str | None:
    """The layering unit a dotted module name belongs to (its package, or twinlm's top module)."""
    parts = module.split(".")
    if parts[0] in ("numpy_impl", "torch_impl"):
        return parts[0]
    if parts[0] != "twinlm":
        return None
    return "twinlm" if len(parts) == 1 else f"twinlm.{parts[1]}"


def layer_of(unit: str) -> int:
    return next(i for i, units in enumerate(LAYERS) if unit in units)


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in a file, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            found += [
                (node.lineno, f"{base}.{a.name}" if base == "twinlm" else base) for a in node.names
            ]
    return found


def source_files() -> list[Path]:
    return sorted(
        p for pkg in ("twinlm", "numpy_impl", "torch_impl") for p in (ROOT / pkg).rglob("*.py")
    )


def test_every_unit_has_a_layer():
    for path in source_files():
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        unit = unit_of(module)
        assert any(unit in units for units in LAYERS), f"{path} is in no layer ({unit})"


@pytest.mark.parametrize("path", source_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path):
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    here = unit_of(module)
    bad = []
    for line, name in imports(path):
        top = name.split(".")[0]
        if any(top == f or name.startswith(f + ".") or name == f for f in FORBIDDEN.get(here, ())):
            bad.append(f"line {line}: {name} (forbidden in {here})")
            continue
        there = unit_of(name)
        if there is None or there == here:
            continue
        if layer_of(there) > layer_of(here) or (
            layer_of(there) == layer_of(here) and there not in SIDEWAYS.get(here, set())
        ):
            bad.append(f"line {line}: {name} ({there} is not below {here})")
    assert not bad, f"{path.relative_to(ROOT)} imports upwards or sideways:\n" + "\n".join(bad)


def fast_path_imports(path: Path) -> list[str]:
    """'line N: name' for every import of numpy_impl.fast (or a module of it) in a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found += [
            f"line {node.lineno}: {n}"
            for n in names
            if n == "numpy_impl.fast" or n.startswith("numpy_impl.fast.")
        ]
    return found


def test_only_numpy_impl_imports_the_fast_path():
    outside = [p for p in source_files() if not p.is_relative_to(ROOT / "numpy_impl")]
    bad = {str(p.relative_to(ROOT)): fast_path_imports(p) for p in outside if fast_path_imports(p)}
    assert not bad, f"numpy_impl/fast imported outside numpy_impl: {bad}"
    # not vacuous: numpy_impl's own models reach it (lazily) through kernel_ops
    assert fast_path_imports(ROOT / "numpy_impl" / "__init__.py")


def test_at_most_five_top_level_modules():
    top = sorted(p.name for p in (ROOT / "twinlm").glob("*.py"))
    assert len(top) <= 5, f"twinlm/ has {len(top)} top-level modules: {top}"


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("numpy_impl", "torch"), ("torch_impl", "numpy_impl"), ("twinlm.shared", "torch")],
)
def test_importing_a_package_loads_nothing_forbidden(package, forbidden):
    code = (
        f"import sys, {package}; "
        f"bad = sorted(m for m in sys.modules if m == {forbidden!r} or m.startswith({forbidden!r} + '.')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, f"importing {package} loaded {done.stdout.strip()}"


# Where a backend may be told apart by its name: twinlm.models (building, filling, placing and
# converting a model), the engines (each backend's step) and the report (benchmark rows' labels).
BACKEND_SWITCH_HOMES = ("twinlm/models/", "twinlm/training/engines.py", "twinlm/training/distributed.py", "twinlm/report/")  # fmt: skip
BACKEND_BY_NAME = re.compile(r"""backend\s*[!=]=\s*["'](numpy|torch)["']""")


def test_the_backend_switch_has_one_home():
    strays = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
        for path in source_files()
        if not str(path.relative_to(ROOT)).startswith(BACKEND_SWITCH_HOMES)
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if BACKEND_BY_NAME.search(line)
    ]
    assert not strays, "build models of either backend with twinlm.models:\n" + "\n".join(strays)
