"""Qwen3 checkpoint folders written by transformers (float32 and bfloat16, one file and sharded,
both config.json styles) loaded by twinlm.weights.load_qwen3 without torch, their tokenizer.json,
the one-line refusals, and the command line on such a folder: generate and classify."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest
import torch
from hf_qwen3 import hf_model, old_style_config, write_tokenizer
from safetensors.numpy import save_file

import numpy_impl
from twinlm.cli import main as cli_main
from twinlm.data.hf_tokenizer import load_hf_tokenizer
from twinlm.generation import generate_ids, load_model, text_codec
from twinlm.shared.config import get_config
from twinlm.weights import load_pretrained, load_qwen3
from twinlm.weights.qwen3 import read_safetensors

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py
CFG = get_config("qwen3-test", vocab_size=300, context_length=24)  # room for a real BPE vocabulary


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """{name: folder}: the same random model saved four ways, and its float64 state_dict."""
    root = tmp_path_factory.mktemp("qwen3")
    model = hf_model(CFG, seed=5, dtype=torch.float32)
    out = {}
    for name, dtype, shard in (("f32", torch.float32, None), ("bf16", torch.bfloat16, "4KB")):
        folder = root / name
        kwargs = {"max_shard_size": shard} if shard else {}
        copy.deepcopy(model).to(dtype).save_pretrained(folder, **kwargs)
        write_tokenizer(folder, CFG["vocab_size"])
        out[name] = folder
        old = root / f"{name}-old-config"
        shutil.copytree(folder, old)
        old_style_config(old)
        out[f"{name}-old"] = old
    return out, {k: v.detach().clone() for k, v in model.named_parameters()}, model


def test_bf16_and_float32_folders_load_exactly_in_both_config_styles(folders):
    found, state, _ = folders
    assert (found["bf16"] / "model.safetensors.index.json").is_file()  # sharded
    assert not (found["f32"] / "model.safetensors.index.json").exists()
    assert "rope_parameters" in json.loads((found["f32"] / "config.json").read_text())
    old = json.loads((found["f32-old"] / "config.json").read_text())
    assert "rope_theta" in old and "torch_dtype" in old and "rope_parameters" not in old
    for name, folder in found.items():
        cfg, params = load_qwen3(folder)
        assert cfg == CFG
        assert list(params) == list(state)  # Hugging Face's order, the tied head once
        for k, v in params.items():
            want = state[k].to(torch.bfloat16) if name.startswith("bf16") else state[k]
            # bf16 → float32 in NumPy is exact: bit for bit what torch's .float() gives
            assert v.dtype == np.float32
            np.testing.assert_array_equal(v, want.float().numpy())
    _, params64 = load_qwen3(found["bf16"], dtype=np.float64)
    assert all(v.dtype == np.float64 for v in params64.values())


def test_loaded_weights_give_transformers_logits(folders):
    found, _, model = folders
    cfg, params = load_pretrained(found["f32"])
    ours = numpy_impl.Qwen3Model(cfg, seed=None)
    ours.load_state_dict(params)
    idx = np.random.default_rng(0).integers(0, 300, (2, 10))
    with torch.no_grad():
        ref = model(torch.from_numpy(idx)).logits.numpy()
    assert np.max(np.abs(ours.forward(idx) - ref)) / np.max(np.abs(ref)) < 1e-5


def test_tokenizer_round_trips_and_knows_its_special_ids(folders, tmp_path):
    folder = folders[0]["f32"]
    tok = load_hf_tokenizer(folder)
    ids = tok.encode("Every effort moves you forward.")
    assert 0 < len(ids) < 31 and max(ids) < CFG["vocab_size"]  # merges were learnt
    assert tok.decode(ids) == "Every effort moves you forward."
    assert tok.decode(tok.encode("héllo ✓")) == "héllo ✓"  # byte-level: any text
    assert tok.pad_token_id == tok.eos_token_id == 0  # <|endoftext|>, the first special token
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    (other / "tokenizer_config.json").write_text("{}")  # no pad token: config.json's, then eos
    config = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(
        json.dumps({**config, "eos_token_id": [0, 3], "pad_token_id": 7})
    )
    tok = load_hf_tokenizer(other)
    assert (tok.pad_token_id, tok.eos_token_id) == (7, 0)
    (other / "config.json").write_text(json.dumps(config))
    assert load_hf_tokenizer(other).pad_token_id == 0  # neither: the eos token, from its name
    (other / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="holds no tokenizer.json"):
        load_hf_tokenizer(other)


def _write_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    for k, v in changes.items():
        if v is None:
            config.pop(k, None)
        else:
            config[k] = v
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4}}, ValueError, "RoPE scaling 'yarn' is not implemented"),
        ({"rope_scaling": {"type": "linear", "factor": 2.0}, "rope_parameters": None, "rope_theta": 1e4}, ValueError, "RoPE scaling 'linear'"),
        ({"use_sliding_window": True}, ValueError, "sliding-window attention layers are not implemented"),
        ({"layer_types": ["sliding_attention", "full_attention"]}, ValueError, "sliding-window"),
        ({"hidden_act": "gelu"}, ValueError, "hidden_act 'gelu' is not implemented"),
        ({"model_type": "llama"}, ValueError, "says model_type 'llama'; load_qwen3 reads Qwen3"),
        ({"rope_parameters": None}, ValueError, "is missing rope_theta"),
        ({"hidden_size": 20}, ValueError, "model.embed_tokens.weight must have shape \\(300, 20\\)"),
        ({"tie_word_embeddings": False}, ValueError, "is missing lm_head.weight"),
        ({"num_key_value_heads": 3}, ValueError, "must be divisible by cfg\\['n_kv_heads'\\]"),
    ],
)  # fmt: skip
def test_refusals_are_one_line(folders, tmp_path, changes, error, match):
    folder = tmp_path / "m"
    shutil.copytree(folders[0]["f32"], folder)
    _write_config(folder, **changes)
    with pytest.raises(error, match=match) as e:
        load_qwen3(folder)
    assert "\n" not in str(e.value)


def test_missing_unexpected_and_truncated_tensors(folders, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(folders[0]["f32"], folder)
    tensors = read_safetensors(folder / "model.safetensors")
    kept = {k: np.array(v) for k, v in tensors.items() if "layers.1.mlp.up_proj" not in k}
    save_file(kept, str(folder / "model.safetensors"))
    with pytest.raises(ValueError, match="is missing model.layers.1.mlp.up_proj.weight"):
        load_qwen3(folder)
    save_file({**kept, **{k: np.array(v) for k, v in tensors.items()}, "extra.weight": np.zeros(2, np.float32)}, str(folder / "model.safetensors"))  # fmt: skip
    with pytest.raises(ValueError, match="tensors its config.json does not explain: extra.weight"):
        load_qwen3(folder)
    data = (folders[0]["f32"] / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="is truncated"):
        load_qwen3(folder)
    sharded = tmp_path / "s"
    shutil.copytree(folders[0]["bf16"], sharded)
    next(sharded.glob("model-0000*.safetensors")).unlink()
    with pytest.raises(FileNotFoundError, match="names the shard"):
        load_qwen3(sharded)


def test_paths_and_hub_ids(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="holds no config.json"):
        load_qwen3(tmp_path)
    with pytest.raises(FileNotFoundError, match="must be a Qwen3 model folder or a hub id"):
        load_qwen3(tmp_path / "no" / "such" / "folder")
    # A hub id without huggingface_hub (or offline): one line saying how to download it.
    monkeypatch.setitem(__import__("sys").modules, "huggingface_hub", None)
    with pytest.raises(FileNotFoundError, match="hf download Qwen/Qwen3-0.6B-Base --local-dir"):
        load_qwen3("Qwen/Qwen3-0.6B-Base")


def test_cli_generate_from_a_qwen3_folder(folders, capsys):
    folder = folders[0]["bf16"]
    outs = []
    for backend in ("numpy", "torch"):
        args = ["generate", "--backend", backend, "--weights", str(folder), "--prompt", "Hello, I am", "--max-new-tokens", "5"]  # fmt: skip
        assert cli_main(args) == 0
        captured = capsys.readouterr()
        assert "5 new tokens" in captured.err
        outs.append(captured.out)
    assert outs[0] == outs[1] and outs[0].startswith("Hello, I am")
    # the same tokens as generate_ids on the loaded model, with the folder's tokenizer
    encode, decode = text_codec(folder)
    model = load_model("numpy", weights=folder)
    assert outs[0].rstrip("\n") == decode(generate_ids(model, encode("Hello, I am"), 5))


def test_cli_classify_train_and_predict_with_a_qwen3_folder(folders, tmp_path, capsys):
    """The decapitation recipe end to end: a Qwen3 folder, its tokenizer and pad id, the last
    non-pad token, the last block trained; predict with both backends."""
    folder, out = folders[0]["f32"], tmp_path / "clf"
    args = ["classify", "train", "--weights", str(folder), "--synthetic-size", "40", "--epochs", "1",
            "--eval-every", "2", "--eval-batches", "1", "--batch-size", "4", "--position", "last-non-pad",
            "--max-length", "24", "--out", str(out)]  # fmt: skip
    assert cli_main(args) == 0
    assert "test confusion matrix" in capsys.readouterr().out
    ckpt = str(out / "classifier.safetensors")
    labels = []
    for backend in ("numpy", "torch"):
        assert cli_main(["classify", "predict", "--checkpoint", ckpt, "--backend", backend, "--text", "WIN a free prize"]) == 0  # fmt: skip
        labels.append(capsys.readouterr().out.split("\t")[:2])
    assert labels[0][0] == labels[1][0] and abs(float(labels[0][1]) - float(labels[1][1])) < 1e-5
