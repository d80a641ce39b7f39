"""Issue 22, weights: hostile GPT-2 files (HF safetensors, the book's .pth) and Qwen3 folders
(config.json, the shard index, shards, tokenizer files), each refused with exit 2 and one line that
names the file and the key — or, where the file is fine, loaded. The case ids say the class:

    outside/    nothing is read outside the folder given
    silent/     a value read wrong in silence before (a string as a boolean, NaN weights, …)
    traceback/  a traceback (exit 70) before
    message/    a wrong exit status or a message that named no file before

The memory bombs (a layer index or count of 10⁹) are in test_memory_bombs.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hostile import (
    DROP,
    QWEN3_CONFIG,
    Case,
    book_state,
    check_case,
    generate,
    gpt2_tensors,
    patched,
    qwen3_folder,
    qwen3_tensors,
    raw_safetensors,
    write_gpt2,
    write_pth,
)
from safetensors.numpy import save_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py

F32 = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}


def nan_at(key: str, value=np.nan, shape=None):
    t = gpt2_tensors()
    a = t[key].copy()
    a.reshape(-1)[3] = value
    return a


def sharded(tmp, shard: str, where=None):
    """A Qwen3 folder whose index maps every tensor to `shard`, written at `where` (default: the
    folder / shard)."""
    folder = tmp / "q"
    t = qwen3_tensors()
    qwen3_folder(folder, index={"metadata": {}, "weight_map": {k: shard for k in t}})
    target = where if where is not None else folder / shard
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(t, str(target))
    return generate(folder)


def qwen3_config(**changes):
    return lambda tmp: generate(qwen3_folder(tmp / "q", patched(QWEN3_CONFIG, **changes)))


def qwen3_header(header, data=b"", length=None):
    def build(tmp):
        folder = qwen3_folder(tmp / "q")
        raw_safetensors(folder / "model.safetensors", header, data, length)
        return generate(folder)

    return build


def qwen3_index(index):
    return lambda tmp: generate(qwen3_folder(tmp / "q", index=index))


def gpt2(**changes):
    return lambda tmp: [*generate(write_gpt2(tmp / "g", **changes))]


def gpt2_config(config):
    return lambda tmp: generate(write_gpt2(tmp / "g", config=config))


def gpt2_header(header, data=b"", length=None):
    return lambda tmp: generate(raw_safetensors(tmp / "g.safetensors", header, data, length))


def pth(state_of):
    return lambda tmp: [*generate(write_pth(tmp / "book.pth", state_of())), "--n-heads", "2"]


def book_with(**changes):
    def state():
        s = book_state()
        for k, v in changes.items():
            k = k.replace("__", ".")
            s.pop(k) if v is None else s.__setitem__(k, v)
        return s

    return state


def torch_nan():
    import torch

    s = book_state()
    s["trf_blocks.0.ff.layers.0.weight"][1, 2] = torch.inf
    return s


OUTSIDE = [
    Case("outside/qwen3-shard-dotdot", lambda t: sharded(t, "../outside.safetensors"), 2,
         ("'../outside.safetensors', outside", "model.safetensors.index.json")),
    Case("outside/qwen3-shard-absolute",
         lambda t: sharded(t, str(t / "abs.safetensors"), t / "abs.safetensors"), 2,
         ("abs.safetensors", "outside")),
    Case("outside/qwen3-shard-dotdot-inside-name",
         lambda t: sharded(t, "sub/../../escape.safetensors", t / "escape.safetensors"), 2,
         ("outside",)),
    Case("outside/qwen3-shard-name-with-nul", lambda t: sharded(t, "a\0b.safetensors",
         t / "ab.safetensors"), 2, ("model.safetensors.index.json", "must name a file")),
    Case("outside/qwen3-shard-in-subfolder-is-fine",
         lambda t: sharded(t, "shards/model-1.safetensors"), 0),
    Case("outside/missing-relative-path-is-not-a-hub-id",
         lambda t: generate("../nope.safetensors"), 2, ("../nope.safetensors",)),
    Case("outside/missing-folder-like-path-is-not-a-hub-id",
         lambda t: generate("./models/x.bin"), 2, ("models/x.bin",)),
]  # fmt: skip

SILENT = [
    Case("silent/qwen3-tie-word-embeddings-string", qwen3_config(tie_word_embeddings="false"), 2,
         ("config.json", "tie_word_embeddings must be true or false", "'false'")),
    Case("silent/qwen3-attention-bias-string", qwen3_config(attention_bias="false"), 2,
         ("config.json", "attention_bias")),
    Case("silent/qwen3-use-sliding-window-string", qwen3_config(use_sliding_window="false"), 2,
         ("config.json", "use_sliding_window")),
    Case("silent/qwen3-tie-word-embeddings-int", qwen3_config(tie_word_embeddings=0), 2,
         ("tie_word_embeddings",)),
    Case("silent/qwen3-vocab-size-float", qwen3_config(vocab_size=300.0), 2,
         ("config.json", "vocab_size must be a positive int", "300.0")),
    Case("silent/qwen3-hidden-size-string", qwen3_config(hidden_size="16"), 2, ("hidden_size",)),
    Case("silent/qwen3-layers-bool", qwen3_config(num_hidden_layers=True), 2,
         ("num_hidden_layers",)),
    Case("silent/qwen3-kv-heads-string", qwen3_config(num_key_value_heads="2"), 2,
         ("num_key_value_heads",)),
    Case("silent/qwen3-rope-theta-infinity",
         lambda t: generate(qwen3_folder(t / "q", json.dumps(patched(
             QWEN3_CONFIG, rope_parameters={"rope_theta": float("inf")})))), 2,
         ("config.json", "rope_theta must be a positive number", "inf")),
    Case("silent/qwen3-rope-theta-nan",
         lambda t: generate(qwen3_folder(t / "q", json.dumps(patched(
             QWEN3_CONFIG, rope_parameters=DROP, rope_theta=float("nan"))))), 2, ("rope_theta",)),
    Case("silent/qwen3-rope-theta-string", qwen3_config(rope_parameters={"rope_theta": "1e4"}),
         2, ("rope_theta",)),
    Case("silent/qwen3-rms-norm-eps-zero", qwen3_config(rms_norm_eps=0), 2, ("rms_norm_eps",)),
    Case("silent/qwen3-hidden-act-int", qwen3_config(hidden_act=5), 2, ("hidden_act",)),
    Case("silent/qwen3-nan-weight",
         lambda t: generate(qwen3_folder(t / "q", tensors=qwen3_tensors() | {
             "model.layers.1.self_attn.q_proj.weight": np.full((24, 16), np.nan, np.float32)})),
         2, ("q", "model.layers.1.self_attn.q_proj.weight", "non-finite")),
    Case("silent/gpt2-nan-weight", gpt2(h__0__attn__c_attn__weight=nan_at("h.0.attn.c_attn.weight")),
         2, ("model.safetensors", "h.0.attn.c_attn.weight", "non-finite", "nan")),
    Case("silent/gpt2-inf-embedding", gpt2(wte__weight=nan_at("wte.weight", -np.inf)), 2,
         ("wte.weight", "-inf")),
    Case("silent/book-pth-inf", pth(torch_nan), 2,
         ("book.pth", "trf_blocks.0.ff.layers.0.weight", "non-finite")),
    Case("silent/gpt2-config-n-layer-bool", gpt2_config({"n_layer": True, "n_head": 2}), 2,
         ("config.json", "n_layer must be a positive int")),
    Case("silent/gpt2-config-n-embd-float", gpt2_config({"n_embd": 16.0, "n_head": 2}), 2,
         ("config.json", "n_embd")),
    Case("silent/gpt2-config-n-head-string", gpt2_config({"n_head": "2"}), 2,
         ("config.json", "n_head")),
    Case("silent/gpt2-config-activation", gpt2_config({"n_head": 2, "activation_function": "relu"}),
         2, ("config.json", "activation_function 'relu'")),
    Case("silent/gpt2-config-layernorm-eps", gpt2_config({"n_head": 2, "layer_norm_epsilon": 1e-6}),
         2, ("config.json", "layer_norm_epsilon")),
    Case("silent/gpt2-config-n-positions-mismatch", gpt2_config({"n_head": 2, "n_positions": 1024}),
         2, ("config.json says n_positions=1024, but the weights have 8",)),
    Case("silent/gpt2-config-vocab-size-string", gpt2_config({"n_head": 2, "vocab_size": "6400"}),
         2, ("config.json: vocab_size must be a positive int",)),
    Case("silent/gpt2-config-qkv-bias-false", gpt2_config({"n_head": 2, "qkv_bias": False}), 2,
         ("config.json says qkv_bias=False",)),
    Case("silent/gpt2-config-qkv-bias-string", gpt2_config({"n_head": 2, "qkv_bias": "true"}), 2,
         ("qkv_bias must be true or false",)),
    Case("silent/gpt2-prefixed-and-plain-key-twice",
         gpt2(transformer__wte__weight=gpt2_tensors()["wte.weight"] + 1), 2,
         ("transformer.wte.weight twice",)),
    Case("silent/gpt2-bf16-file-loads",
         lambda t: [*generate(raw_safetensors(t / "bf16.safetensors", {
             k: {"dtype": "BF16", "shape": list(v.shape), "data_offsets": [o, o + 2 * v.size]}
             for k, v, o in _offsets(gpt2_tensors(), 2)}, _bf16_bytes(gpt2_tensors()))), "--n-heads", "2"],
         0),
]  # fmt: skip


def _offsets(t: dict, itemsize: int):
    o = 0
    for k, v in t.items():
        yield k, v, o
        o += itemsize * v.size


def _bf16_bytes(t: dict) -> bytes:
    return b"".join((v.view(np.uint32) >> 16).astype("<u2").tobytes() for v in t.values())


TRACEBACK = [
    Case("traceback/qwen3-header-without-data-offsets",
         qwen3_header({"a": {"dtype": "F32", "shape": [1]}}, b"\0" * 4), 2,
         ("model.safetensors is not a readable safetensors file", "data_offsets")),
    Case("traceback/qwen3-header-entry-is-a-string", qwen3_header({"a": "hello"}), 2,
         ("model.safetensors is not a readable safetensors file",)),
    Case("traceback/qwen3-header-is-a-list", qwen3_header([1, 2]), 2, ("model.safetensors",)),
    Case("traceback/qwen3-header-overlapping-offsets",
         qwen3_header({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                       "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8),
         2, ("model.safetensors", "invalid offset")),
    Case("traceback/qwen3-header-negative-dim",
         qwen3_header({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4),
         2, ("model.safetensors",)),
    Case("traceback/qwen3-header-length-2**64-1", qwen3_header(F32, b"", 2**64 - 1), 2,
         ("model.safetensors", "header too large")),
    Case("traceback/qwen3-header-data-offsets-three",
         qwen3_header({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}}, b"\0" * 8),
         2, ("model.safetensors",)),
    Case("traceback/qwen3-header-shape-product-overflows",
         qwen3_header({"a": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 4]}},
                      b"\0" * 4), 2, ("model.safetensors", "overflow")),
    Case("traceback/qwen3-int-tensor", lambda t: generate(qwen3_folder(t / "q", tensors={
         **qwen3_tensors(), "model.norm.weight": np.ones(16, np.int64)})), 2,
         ("model.safetensors: tensor model.norm.weight has dtype I64",)),
    Case("traceback/qwen3-heads-zero-without-head-dim",
         qwen3_config(num_attention_heads=0, head_dim=DROP), 2,
         ("config.json", "num_attention_heads must be a positive int", "0")),
    Case("traceback/qwen3-rope-parameters-list", qwen3_config(rope_parameters=[1, 2]), 2,
         ("config.json", "rope_parameters must be a JSON object")),
    Case("traceback/qwen3-rope-scaling-string", qwen3_config(rope_scaling="yarn"), 2,
         ("config.json", "rope_scaling")),
    Case("traceback/qwen3-layer-types-string", qwen3_config(layer_types="full_attention"), 2,
         ("config.json", "layer_types")),
    Case("traceback/qwen3-weight-map-list", qwen3_index({"weight_map": ["a"]}), 2,
         ("model.safetensors.index.json", "weight_map must be a JSON object")),
    Case("traceback/qwen3-weight-map-null", qwen3_index({"weight_map": None}), 2,
         ("model.safetensors.index.json", "weight_map")),
    Case("traceback/qwen3-index-is-a-list", qwen3_index([1]), 2,
         ("model.safetensors.index.json", "must hold a JSON object, got a list")),
    Case("traceback/qwen3-index-shard-name-int", qwen3_index({"weight_map": {"a": 5}}), 2,
         ("model.safetensors.index.json", "entry for a")),
    Case("traceback/qwen3-index-deep-nesting", qwen3_index("[" * 100_000 + "]" * 100_000), 2,
         ("model.safetensors.index.json", "not readable JSON")),
    Case("traceback/qwen3-config-deep-nesting",
         lambda t: generate(qwen3_folder(t / "q", '{"a":' * 100_000 + "1" + "}" * 100_000)), 2,
         ("config.json", "not readable JSON")),
    Case("traceback/book-pth-int-keys",
         pth(lambda: {0: book_state()["tok_emb.weight"]}), 2, ("book.pth", "key 0")),
    Case("traceback/tokenizer-config-pad-token-list",
         lambda t: generate(_with_file(qwen3_folder(t / "q"), "tokenizer_config.json",
                                       '{"pad_token": ["a"]}')), 2,
         ("tokenizer_config.json", "pad_token")),
    Case("traceback/config-eos-token-id-string",
         qwen3_config(eos_token_id="151643"), 2, ("config.json", "eos_token_id")),
    Case("traceback/tokenizer-config-not-an-object",
         lambda t: generate(_with_file(qwen3_folder(t / "q"), "tokenizer_config.json", "[]")), 2,
         ("tokenizer_config.json", "JSON object")),
]  # fmt: skip


def _with_file(folder, name: str, text: str):
    (folder / name).write_text(text)
    return folder


MESSAGE = [
    Case("message/qwen3-config-invalid-json-names-config",
         lambda t: generate(qwen3_folder(t / "q", "{not json")), 2,
         ("config.json is not readable JSON",)),
    Case("message/qwen3-config-not-an-object", lambda t: generate(qwen3_folder(t / "q", "[1]")),
         2, ("config.json must hold a JSON object, got a list",)),
    Case("message/config-other-model-type",
         lambda t: generate(qwen3_folder(t / "q", patched(QWEN3_CONFIG, model_type="llama"))), 2,
         ("config.json says model_type 'llama'",)),
    Case("message/config-model-type-not-a-string",
         lambda t: generate(qwen3_folder(t / "q", patched(QWEN3_CONFIG, model_type=["qwen3"]))),
         2, ("config.json", "model_type")),
    Case("message/gpt2-config-invalid-json", gpt2_config("{"), 2,
         ("config.json is not readable JSON",)),
    Case("message/gpt2-header-garbage", gpt2_header(b"\xff\xfe not json"), 2,
         ("g.safetensors is not a readable safetensors file",)),
    Case("message/gpt2-empty-file", lambda t: generate(_empty(t / "e.safetensors")), 2,
         ("e.safetensors is not a readable safetensors file",)),
    Case("message/gpt2-truncated",
         lambda t: generate(_truncated(write_gpt2(t / "g") / "model.safetensors")), 2,
         ("model.safetensors", "truncated")),
    Case("message/gpt2-zero-vocabulary",
         gpt2(wte__weight=np.zeros((0, 16), np.float32)), 2, ("model.safetensors",)),
    Case("message/gpt2-block-gap", lambda t: generate(write_gpt2(
         t / "g", {k.replace("h.1.", "h.2."): v for k, v in gpt2_tensors(2).items()})), 2,
         ("model.safetensors", "h.1.")),
    Case("message/gpt2-block-index-not-a-number", gpt2(h__x__ln_1__weight=np.ones(16, np.float32)),
         2, ("model.safetensors", "h.x.ln_1.weight")),
    Case("message/book-pth-wrapped-not-a-mapping", pth(lambda: {"model_state_dict": [1, 2]}), 2,
         ("book.pth",)),
    Case("message/book-pth-missing-key", pth(book_with(trf_blocks__0__norm1__scale=None)), 2,
         ("book.pth", "trf_blocks.0.norm1.scale")),
    Case("message/qwen3-n-heads-flag",
         lambda t: [*generate(qwen3_folder(t / "q")), "--n-heads", "2"], 2, ("n_heads",)),
    Case("message/qwen3-config-layers-more-than-tensors", qwen3_config(num_hidden_layers=3), 2,
         ("config.json says num_hidden_layers=3", "2 layers")),
    Case("message/qwen3-index-names-missing-shard",
         lambda t: generate(qwen3_folder(t / "q", index={"weight_map": {"a": "gone.safetensors"}})),
         2, ("gone.safetensors",)),
    Case("message/qwen3-folder-loads", lambda t: generate(qwen3_folder(t / "q")), 0),
    Case("message/gpt2-loads", gpt2(), 0),
    Case("message/book-pth-loads", pth(book_state), 0),
]  # fmt: skip


def _empty(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def _truncated(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    return path


CASES = OUTSIDE + SILENT + TRACEBACK + MESSAGE


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_hostile_weights(case, tmp_path):
    check_case(case, tmp_path)


def test_outside_shard_is_never_opened(tmp_path, monkeypatch):
    """Not only refused: the file outside the folder is not opened at all."""
    import builtins

    from twinlm.weights import load_qwen3

    sharded(tmp_path, "../outside.safetensors")
    opened, real_open = [], builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: opened.append(str(f)) or real_open(f, *a, **k))  # fmt: skip
    with pytest.raises(ValueError, match="outside"):
        load_qwen3(tmp_path / "q")
    assert not any("outside.safetensors" in f for f in opened)


def test_torch_backend_on_a_float32_folder_warns_nothing(tmp_path, capsys):
    """Before: torch's "The given NumPy array is not writable" warning (the weights were read-only
    views of the file)."""
    import warnings

    folder = qwen3_folder(tmp_path / "q")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_case(Case("torch", lambda t: [*generate(folder), "--backend", "torch"], 0), tmp_path)
    assert "not writable" not in capsys.readouterr().err


def test_loaded_arrays_are_the_loaders_own(tmp_path):
    """Fine-tuning updates weights in place: every array is writable and owns its memory, bf16
    widened exactly (the top 16 bits of the float32 it came from)."""
    from twinlm.weights import load_gpt2, load_qwen3

    _, params = load_qwen3(qwen3_folder(tmp_path / "q"))
    assert all(a.flags.writeable for a in params.values())
    t = gpt2_tensors()
    header = {k: {"dtype": "BF16", "shape": list(v.shape), "data_offsets": [o, o + 2 * v.size]}
              for k, v, o in _offsets(t, 2)}  # fmt: skip
    _, params = load_gpt2(raw_safetensors(tmp_path / "b.safetensors", header, _bf16_bytes(t)), 2)
    want = (t["wte.weight"].view(np.uint32) & 0xFFFF0000).view(np.float32)
    np.testing.assert_array_equal(params["tok_emb.weight"], want)
    assert all(a.flags.writeable for a in params.values())
