"""GPT-2 weight import: HF safetensors / .bin and the book's .pth, checked against a reference
GPT-2 forward written here directly on Hugging Face's tensors with torch built-ins.

Nothing is downloaded: every file is written by the test with HF's exact key names and Conv1D
shapes for a tiny config, filled with random (non-trivial) values.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file

from numpy_impl.gpt import GPTModel as NumpyGPT
from torch_impl.gpt import GPTModel as TorchGPT
from twinlm.parity.harness import TOL_FLOAT64, Float32Runs
from twinlm.shared.config import PRESETS
from twinlm.weights import GPT2_HEADS_BY_WIDTH, load_gpt2

V, C, D, H, L = 37, 8, 16, 4, 2  # vocab, context, width, heads, layers of the tiny GPT-2


def hf_tensors(
    seed=0, d=D, n_layers=L, vocab=V, context=C, prefix="", buffers=False, lm_head=False
):
    """Random tensors under exactly GPT2LMHeadModel's names and shapes (Conv1D: (in, out))."""
    rng = np.random.default_rng(seed)

    def w(*shape, std=0.3):
        return (std * rng.standard_normal(shape)).astype(np.float32)

    t = {"wte.weight": w(vocab, d), "wpe.weight": w(context, d)}
    for i in range(n_layers):
        h = f"h.{i}."
        t |= {
            h + "ln_1.weight": 1 + w(d, std=0.2),
            h + "ln_1.bias": w(d, std=0.1),
            h + "attn.c_attn.weight": w(d, 3 * d),
            h + "attn.c_attn.bias": w(3 * d, std=0.1),
            h + "attn.c_proj.weight": w(d, d),
            h + "attn.c_proj.bias": w(d, std=0.1),
            h + "ln_2.weight": 1 + w(d, std=0.2),
            h + "ln_2.bias": w(d, std=0.1),
            h + "mlp.c_fc.weight": w(d, 4 * d),
            h + "mlp.c_fc.bias": w(4 * d, std=0.1),
            h + "mlp.c_proj.weight": w(4 * d, d),
            h + "mlp.c_proj.bias": w(d, std=0.1),
        }
        if buffers:  # what older transformers versions saved alongside the weights
            t[h + "attn.bias"] = np.tril(np.ones((context, context), np.float32))[None, None]
            t[h + "attn.masked_bias"] = np.array(-1e4, np.float32)
    t |= {"ln_f.weight": 1 + w(d, std=0.2), "ln_f.bias": w(d, std=0.1)}
    t = {prefix + k: v for k, v in t.items()}
    if lm_head:  # an untied head, so the test can tell which matrix the loader used
        t["lm_head.weight"] = w(vocab, d)
    return t


def hf_reference_logits(tensors, idx, n_heads, dtype):
    """GPT-2 forward on HF's tensors with torch built-ins; Conv1D is `x @ W + b`."""
    T = {
        k.removeprefix("transformer."): torch.from_numpy(v.astype(dtype))
        for k, v in tensors.items()
    }
    idx = torch.from_numpy(idx)
    B, S = idx.shape
    d = T["wte.weight"].shape[1]
    n_layers = sum(1 for k in T if k.endswith("attn.c_attn.weight"))
    x = T["wte.weight"][idx] + T["wpe.weight"][:S]
    for i in range(n_layers):
        h = f"h.{i}."
        a = F.layer_norm(x, (d,), T[h + "ln_1.weight"], T[h + "ln_1.bias"], eps=1e-5)
        qkv = a @ T[h + "attn.c_attn.weight"] + T[h + "attn.c_attn.bias"]
        q, k, v = (z.view(B, S, n_heads, d // n_heads).transpose(1, 2) for z in qkv.split(d, -1))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, S, d)
        x = x + y @ T[h + "attn.c_proj.weight"] + T[h + "attn.c_proj.bias"]
        m = F.layer_norm(x, (d,), T[h + "ln_2.weight"], T[h + "ln_2.bias"], eps=1e-5)
        m = F.gelu(m @ T[h + "mlp.c_fc.weight"] + T[h + "mlp.c_fc.bias"], approximate="tanh")
        x = x + m @ T[h + "mlp.c_proj.weight"] + T[h + "mlp.c_proj.bias"]
    x = F.layer_norm(x, (d,), T["ln_f.weight"], T["ln_f.bias"], eps=1e-5)
    head = T.get("lm_head.weight", T["wte.weight"])  # GPT-2 ties the head to wte
    return (x @ head.T).numpy()


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def both_backends_logits(cfg, params, idx):
    """Logits of numpy_impl.GPTModel and torch_impl.GPTModel holding `params`."""
    np_model = NumpyGPT(cfg)
    np_model.load_state_dict(params)
    dtype = torch.float64 if params["tok_emb.weight"].dtype == np.float64 else torch.float32
    torch_model = TorchGPT(cfg, dtype=dtype).eval()
    torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    with torch.no_grad():
        torch_logits = torch_model(torch.from_numpy(idx)).numpy()
    return {"numpy": np_model.forward(idx), "torch_impl": torch_logits}


def write_hf(folder, tensors, n_head=None, name="model.safetensors"):
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / name))
    if n_head is not None:
        (folder / "config.json").write_text(
            json.dumps({"n_embd": D, "n_layer": L, "n_head": n_head})
        )
    return folder / name


@pytest.mark.parametrize(
    "variant",
    [
        "plain+config.json",
        "transformer-prefix+buffers",
        "lm_head+n_heads-argument",
        "pytorch_model.bin",
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hf_weights_give_reference_logits(tmp_path, record_error, record_float32, variant, dtype):
    tensors = hf_tensors(
        seed=1,
        prefix="" if variant.startswith("plain") else "transformer.",
        buffers="buffers" in variant,
        lm_head="lm_head" in variant,
    )
    if variant == "pytorch_model.bin":  # HF keys in a torch.save file
        (tmp_path / "config.json").write_text(json.dumps({"n_head": H}))
        torch.save({k: torch.from_numpy(v) for k, v in tensors.items()}, tmp_path / variant)
        cfg, params = load_gpt2(tmp_path, dtype=dtype)
    elif variant.endswith("argument"):  # no config.json: the argument supplies the heads
        file = write_hf(tmp_path, tensors)
        cfg, params = load_gpt2(file, n_heads=H, dtype=dtype)
    else:
        write_hf(tmp_path, tensors, n_head=H)
        cfg, params = load_gpt2(tmp_path, dtype=dtype)

    assert cfg == {
        "vocab_size": V,
        "context_length": C,
        "emb_dim": D,
        "n_heads": H,
        "n_layers": L,
        "drop_rate": 0.0,
        "qkv_bias": True,
    }
    assert all(p.dtype == dtype and p.flags.c_contiguous for p in params.values())
    idx = np.random.default_rng(2).integers(0, V, size=(3, C))
    ref = hf_reference_logits(tensors, idx, H, dtype)
    exact = hf_reference_logits(tensors, idx, H, np.float64)  # the tensors are float32 values
    runs = Float32Runs()
    for backend, logits in both_backends_logits(cfg, params, idx).items():
        assert logits.dtype == dtype
        if dtype == np.float64:
            record_error("load_gpt2 hf", f"logits float64 {backend}", rel(logits, ref), TOL_FLOAT64)
        else:  # the float32 standard, the built-ins' float32 logits as the reference
            runs[backend, "logits"].add([logits], [ref], [exact])
    record_float32("load_gpt2 hf", runs)


def test_hf_mapping_by_hand(tmp_path):
    """Spot checks written out: c_attn's column blocks are q | k | v; Conv1D weights transposed."""
    tensors = hf_tensors(seed=3)
    _, p = load_gpt2(write_hf(tmp_path, tensors), n_heads=H)
    t = tensors
    for j, proj in enumerate(("W_query", "W_key", "W_value")):
        cols = slice(j * D, (j + 1) * D)
        np.testing.assert_array_equal(
            p[f"trf_blocks.1.att.{proj}.weight"], t["h.1.attn.c_attn.weight"][:, cols].T
        )
        np.testing.assert_array_equal(
            p[f"trf_blocks.1.att.{proj}.bias"], t["h.1.attn.c_attn.bias"][cols]
        )
    np.testing.assert_array_equal(p["trf_blocks.0.ff.layers.0.weight"], t["h.0.mlp.c_fc.weight"].T)
    np.testing.assert_array_equal(
        p["trf_blocks.0.ff.layers.2.weight"], t["h.0.mlp.c_proj.weight"].T
    )
    np.testing.assert_array_equal(
        p["trf_blocks.0.att.out_proj.weight"], t["h.0.attn.c_proj.weight"].T
    )
    np.testing.assert_array_equal(p["trf_blocks.1.norm2.shift"], t["h.1.ln_2.bias"])
    np.testing.assert_array_equal(p["final_norm.scale"], t["ln_f.weight"])
    # Tied head: the same values, but its own array, so fine-tuning the head leaves tok_emb alone.
    np.testing.assert_array_equal(p["out_head.weight"], t["wte.weight"])
    assert not np.shares_memory(p["out_head.weight"], p["tok_emb.weight"])


def test_heads_argument_wins_over_config_json(tmp_path):
    write_hf(tmp_path, hf_tensors(), n_head=H)
    assert load_gpt2(tmp_path)[0]["n_heads"] == H
    assert load_gpt2(tmp_path, n_heads=2)[0]["n_heads"] == 2


def test_heads_from_gpt2_table_by_width(tmp_path):
    # The table must agree with the GPT-2 presets (an independent statement of the same sizes).
    presets = {
        PRESETS[n]["emb_dim"]: PRESETS[n]["n_heads"] for n in PRESETS if n.startswith("gpt2")
    }
    assert presets == GPT2_HEADS_BY_WIDTH
    file = write_hf(tmp_path, hf_tensors(d=768, n_layers=1, vocab=3, context=2))  # no config.json
    cfg, _ = load_gpt2(file)
    assert (cfg["emb_dim"], cfg["n_heads"], cfg["n_layers"]) == (768, 12, 1)


def test_book_pth_round_trip(tmp_path, record_float32):
    """A state_dict as the book's GPTModel saves it (mask buffers included) loads unchanged, and
    NumPy's float32 logits meet the float32 standard, torch_impl's float32 model as the reference."""
    cfg = {**PRESETS["test"], "drop_rate": 0.0}
    model = TorchGPT(cfg, seed=5).eval()
    state = dict(model.state_dict())
    C_test = cfg["context_length"]
    for i in range(cfg["n_layers"]):  # the book's MultiHeadAttention registers this buffer
        state[f"trf_blocks.{i}.att.mask"] = torch.triu(torch.ones(C_test, C_test), diagonal=1)
    torch.save(state, tmp_path / "model.pth")
    got_cfg, params = load_gpt2(tmp_path / "model.pth", n_heads=cfg["n_heads"])
    assert got_cfg == cfg
    assert list(params) == [k for k in state if not k.endswith("att.mask")]
    for k, v in params.items():
        np.testing.assert_array_equal(v, state[k].numpy())
    idx = np.random.default_rng(0).integers(0, cfg["vocab_size"], size=(2, cfg["context_length"]))
    with torch.no_grad():
        ref = model(torch.from_numpy(idx)).numpy()
        exact = model.double()(torch.from_numpy(idx)).numpy()
    np_model = NumpyGPT(got_cfg)
    np_model.load_state_dict(params)
    runs = Float32Runs()
    runs["numpy", "logits"].add([np_model.forward(idx)], [ref], [exact])
    record_float32("load_gpt2 book", runs)


def test_book_pth_without_qkv_bias_and_wrapped_with_optimizer(tmp_path):
    cfg = {**PRESETS["test"], "drop_rate": 0.0, "qkv_bias": False}
    model = TorchGPT(cfg, seed=6)
    optimizer_state = {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 4e-4}]}
    torch.save(  # chapter 5's "model_and_optimizer.pth" (optimizer state abridged)
        {"model_state_dict": model.state_dict(), "optimizer_state_dict": optimizer_state},
        tmp_path / "model_and_optimizer.pth",
    )
    got_cfg, params = load_gpt2(tmp_path, n_heads=cfg["n_heads"])
    assert got_cfg == cfg
    assert "trf_blocks.0.att.W_query.bias" not in params
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(params[k], v.numpy())


def test_hf_then_book_pth_is_identical(tmp_path):
    """HF -> book keys -> torch.save -> load again: same cfg, same arrays."""
    cfg, params = load_gpt2(write_hf(tmp_path / "hf", hf_tensors(seed=4), n_head=H))
    torch.save({k: torch.from_numpy(v) for k, v in params.items()}, tmp_path / "book.pth")
    cfg2, params2 = load_gpt2(tmp_path / "book.pth", n_heads=H)
    assert cfg2 == cfg
    assert list(params2) == list(params)
    for k in params:
        np.testing.assert_array_equal(params2[k], params[k])


# ---- errors ----------------------------------------------------------------------------------


def test_truncated_files(tmp_path):
    file = write_hf(tmp_path, hf_tensors())
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_gpt2(file, n_heads=H)
    pth = tmp_path / "model.pth"
    torch.save({"tok_emb.weight": torch.zeros(3, 4)}, pth)
    pth.write_bytes(pth.read_bytes()[:100])
    with pytest.raises(ValueError, match="not a readable PyTorch weights file"):
        load_gpt2(pth, n_heads=H)


class NotWeights:
    """Any class: unpickling it could run code, so weights_only=True refuses it."""


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"tok_emb.weight": NotWeights()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="weights_only=True"):
        load_gpt2(tmp_path / "evil.pth", n_heads=H)


def test_missing_keys_are_named_with_count(tmp_path):
    t = hf_tensors()
    del t["h.1.mlp.c_fc.weight"], t["h.0.ln_2.bias"]
    with pytest.raises(
        ValueError, match=r"missing 2 tensor\(s\).*h\.0\.ln_2\.bias, h\.1\.mlp\.c_fc\.weight"
    ):
        load_gpt2(write_hf(tmp_path / "a", t), n_heads=H)
    t = {k: v for k, v in hf_tensors().items() if not k.startswith("h.0.")}  # a whole block gone
    with pytest.raises(
        ValueError, match=r"missing 12 tensor\(s\).*h\.0\.ln_1\.weight.*\(12 in all\)"
    ):
        load_gpt2(write_hf(tmp_path / "b", t), n_heads=H)


def test_mismatched_shape_names_key_expected_and_got(tmp_path):
    t = hf_tensors()
    t["h.1.mlp.c_fc.weight"] = t["h.1.mlp.c_fc.weight"][:, :60].copy()
    with pytest.raises(
        ValueError, match=r"h\.1\.mlp\.c_fc\.weight must have shape \(16, 64\), got \(16, 60\)"
    ):
        load_gpt2(write_hf(tmp_path, t), n_heads=H)


def test_mismatched_book_shape(tmp_path):
    cfg, params = load_gpt2(write_hf(tmp_path, hf_tensors()), n_heads=H)
    params["trf_blocks.0.norm1.scale"] = params["trf_blocks.0.norm1.scale"][:-1]
    torch.save({k: torch.from_numpy(v) for k, v in params.items()}, tmp_path / "model.pth")
    with pytest.raises(
        ValueError, match=r"trf_blocks\.0\.norm1\.scale must have shape \(16,\), got \(15,\)"
    ):
        load_gpt2(tmp_path / "model.pth", n_heads=H)


def test_unexpected_keys_are_named(tmp_path):
    t = hf_tensors() | {"score.weight": np.zeros((2, D), np.float32)}
    with pytest.raises(ValueError, match=r"1 unexpected tensor\(s\).*score\.weight"):
        load_gpt2(write_hf(tmp_path, t), n_heads=H)


def test_not_gpt2_weights(tmp_path):
    save_file({"encoder.weight": np.zeros((2, 2), np.float32)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="holds no GPT-2 weights.*encoder.weight"):
        load_gpt2(tmp_path / "x.safetensors", n_heads=H)


def test_unknown_width_without_n_heads(tmp_path):
    file = write_hf(tmp_path, hf_tensors())
    with pytest.raises(
        ValueError, match="cannot tell the number of attention heads for emb_dim 16.*pass n_heads"
    ):
        load_gpt2(file)


def test_bad_heads(tmp_path):
    file = write_hf(tmp_path, hf_tensors())
    with pytest.raises(ValueError, match=r"emb_dim \(16\) must be divisible by n_heads \(3"):
        load_gpt2(file, n_heads=3)
    with pytest.raises(ValueError, match="n_heads must be positive, got 0"):
        load_gpt2(file, n_heads=0)
    with pytest.raises(TypeError, match="n_heads must be an int or None, got float"):
        load_gpt2(file, n_heads=4.0)
    with pytest.raises(TypeError, match="dtype must be float32 or float64, got float16"):
        load_gpt2(file, n_heads=H, dtype=np.float16)


def test_config_json_that_does_not_match_the_weights(tmp_path):
    write_hf(tmp_path, hf_tensors())
    (tmp_path / "config.json").write_text(json.dumps({"n_embd": 768, "n_head": 12}))
    with pytest.raises(ValueError, match="config.json says n_embd=768, but the weights have 16"):
        load_gpt2(tmp_path)


def test_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="path must be a GPT-2 weights file"):
        load_gpt2(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="found: none"):
        load_gpt2(tmp_path)
    torch.save({}, tmp_path / "a.pth")
    torch.save({}, tmp_path / "b.pth")
    with pytest.raises(FileNotFoundError, match="exactly one weights file.*found: a.pth, b.pth"):
        load_gpt2(tmp_path)
