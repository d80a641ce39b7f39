"""Checkpoints: exact round trip, atomic replacement, clear errors on damaged files."""

from __future__ import annotations

import os

import numpy as np
import pytest

from twinlm.training.checkpoint import load_checkpoint, save_checkpoint


def _tensors(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "model.w": rng.standard_normal((3, 4)).astype(np.float32),
        "model.b": rng.standard_normal(5),
        "rng": rng.integers(0, 255, 8, dtype=np.uint8),
    }


def test_round_trip_is_exact(tmp_path):
    t = _tensors()
    meta = {"step": 7, "cfg": {"emb_dim": 8}, "rng": [1, 2, 3]}
    save_checkpoint(tmp_path / "c.safetensors", t, meta)
    got, got_meta = load_checkpoint(tmp_path / "c.safetensors")
    assert got_meta == meta
    assert set(got) == set(t)
    for k in t:
        assert got[k].dtype == t[k].dtype
        np.testing.assert_array_equal(got[k], t[k])


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, _tensors(0), {"step": 1})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _tensors(1), {"step": 2})
    monkeypatch.undo()
    _, meta = load_checkpoint(path)
    assert meta == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["c.safetensors"]  # no temp file left


def test_truncated_file_gives_clear_error(tmp_path):
    path = tmp_path / "c.safetensors"
    save_checkpoint(path, _tensors(), {"step": 1})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable safetensors checkpoint"):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.safetensors")
