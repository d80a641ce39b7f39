"""The mirror rule, read off the two packages: for every numpy_impl/<file>.py a torch_impl/<file>.py,
and for every `<name>_forward` in NumPy (with its `<name>_backward` right after it) a torch `<name>`
with the same parameters, both exported by their package.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest

import numpy_impl
import torch_impl
from twinlm.shared.config import Qwen3AttentionArgs, get_config

ROOT = Path(__file__).resolve().parents[2]


def _files(package: str) -> set[str]:
    return {p.stem for p in (ROOT / package).glob("*.py") if p.stem != "__init__"}


NUMPY_FILES = sorted(_files("numpy_impl"))


def _forwards(file: str) -> list[str]:
    """The public `<name>_forward` functions defined in numpy_impl/<file>.py, in source order."""
    tree = ast.parse((ROOT / "numpy_impl" / f"{file}.py").read_text(encoding="utf-8"))
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and node.name.endswith("_forward")
        and not node.name.startswith("_")
    ]


FORWARDS = [(file, name) for file in NUMPY_FILES for name in _forwards(file)]


def test_every_numpy_file_has_a_torch_file():
    assert _files("numpy_impl") == _files("torch_impl")


def test_the_mirror_covers_the_blocks_models_and_optimizer():
    """Not vacuous: the twins above the ops are among those checked below."""
    names = {name for _, name in FORWARDS}
    for name in ("transformer_block", "gpt_body", "lstm", "charrnn", "lstm_cell", "attention"):
        assert f"{name}_forward" in names
    for name in ("AdamW", "clip_grad_norm"):  # the optimizer: same names, not an op pair
        assert hasattr(numpy_impl, name) and hasattr(torch_impl, name)


@pytest.mark.parametrize("file, forward", FORWARDS, ids=[f"{f}.{n}" for f, n in FORWARDS])
def test_forward_has_a_torch_twin_with_the_same_parameters(file, forward):
    np_fn = getattr(importlib.import_module(f"numpy_impl.{file}"), forward)
    torch_module = importlib.import_module(f"torch_impl.{file}")
    name = forward.removesuffix("_forward")
    assert hasattr(torch_module, name), (
        f"torch_impl/{file}.py has no {name} (the twin of {forward})"
    )
    np_params = inspect.signature(np_fn).parameters
    torch_params = inspect.signature(getattr(torch_module, name)).parameters
    assert list(np_params) == list(torch_params)
    for arg, p in np_params.items():  # the same defaults, so a call means the same in both
        assert p.default == torch_params[arg].default, arg
    assert getattr(numpy_impl, forward) is np_fn and forward in numpy_impl.__all__
    assert getattr(torch_impl, name) is getattr(torch_module, name) and name in torch_impl.__all__


@pytest.mark.parametrize("file, forward", FORWARDS, ids=[f"{f}.{n}" for f, n in FORWARDS])
def test_backward_follows_its_forward(file, forward):
    """`<name>_backward` is the next top-level function after `<name>_forward`, and exported."""
    tree = ast.parse((ROOT / "numpy_impl" / f"{file}.py").read_text(encoding="utf-8"))
    defs = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)]
    backward = forward.removesuffix("_forward") + "_backward"
    assert backward in defs, f"numpy_impl/{file}.py has no {backward}"
    assert defs[defs.index(forward) + 1] == backward
    assert backward in numpy_impl.__all__


@pytest.mark.parametrize("package", [numpy_impl, torch_impl], ids=lambda p: p.__name__)
def test_package_exports_what_it_lists(package):
    assert sorted(package.__all__) == sorted(set(package.__all__))
    for name in package.__all__:
        assert hasattr(package, name), name


QWEN3_ATTENTION_OPS = ("qwen3_qkv", "qwen3_attention", "qwen3_block")


@pytest.mark.parametrize("name", QWEN3_ATTENTION_OPS)
def test_qwen3_attention_args_are_the_ops_arguments(name):
    """The bundle is spread into the ops after (x, params): its fields must be their remaining
    parameters, in order, with the same eps default, in both backends."""
    fields = list(Qwen3AttentionArgs._fields)
    for op in (getattr(numpy_impl, f"{name}_forward"), getattr(torch_impl, name)):
        params = inspect.signature(op).parameters
        assert list(params)[:2] == ["x", "params"] and list(params)[2:] == fields
        assert params["eps"].default == Qwen3AttentionArgs._field_defaults["eps"]
    cfg = {**get_config("qwen3-test"), "rms_norm_eps": 1e-5, "n_kv_heads": 1}
    args = Qwen3AttentionArgs.of(cfg, "cos", "sin")
    assert args == (cfg["n_heads"], 1, "cos", "sin", 1e-5)
