"""Hostile files for issue 22's tests: every file format twinlm reads, built small and valid here,
then damaged one way per case. Each case is a command line (`twinlm.cli.main` argv) run on files
it writes into a folder, with the exit status and the words its one error line must hold.

    Case(id, build, code, says)   build(tmp) -> argv; says: substrings, "{tmp}" is the folder
    run_case(case, tmp)           (exit status, stderr), in this process
    gpt2_tensors(), write_gpt2    a 1-block Hugging Face GPT-2 (vocabulary 6,400: "hi" is 5303)
    qwen3_folder(tmp, ...)        a 2-layer Qwen3 folder: config.json, model.safetensors, tokenizer
    checkpoint(kind, tmp)         a twinlm training checkpoint (gpt, charrnn, classifier), and
    tamper(src, dst, ...)         a copy with its metadata or tensors changed

Nothing here imports the code under test beyond the command line and the checkpoint reader, so
the same cases run against twinlm as it was before the fix (the report's before/after table).
"""

from __future__ import annotations

import atexit
import io
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

V, D, CONTEXT = 6400, 16, 8  # the tiny GPT-2: vocabulary, width, context


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[Path], list]
    code: int = 2
    says: tuple[str, ...] = ()

    def __repr__(self) -> str:  # pytest's id
        return self.id


def run_case(case: Case, tmp: Path) -> tuple[int, str]:
    """(exit status, stderr) of the case's command line, run in this process."""
    from twinlm.cli import main

    argv = [str(a) for a in case.build(tmp)]
    if argv[:1] == ["-m twinlm.book.table"]:  # `python -m twinlm.book.table`
        from twinlm.book.table import main

        argv = argv[1:]
    err, out = io.StringIO(), io.StringIO()
    with redirect_stderr(err), redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse
            code = e.code
    return code, err.getvalue()


def check_case(case: Case, tmp: Path) -> str:
    """Run the case; assert its exit status, one error line, no traceback, and its words."""
    code, err = run_case(case, tmp)
    assert "Traceback" not in err, err
    assert code == case.code, f"exit {code}, expected {case.code}: {err}"
    if code == 0:
        return ""
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1, err
    for words in case.says:
        assert words.format(tmp=tmp) in lines[0], f"{words.format(tmp=tmp)!r} not in {lines[0]!r}"
    return lines[0]


def generate(weights) -> list:
    return ["generate", "--weights", weights, "--prompt", "hi", "--max-new-tokens", "1"]


# ---- GPT-2 ---------------------------------------------------------------------------------------


def gpt2_tensors(n_layers: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """A Hugging Face GPT-2 state (Conv1D layout, (in, out)), float32."""
    rng = np.random.default_rng(seed)
    shapes = {"wte.weight": (V, D), "wpe.weight": (CONTEXT, D), "ln_f.weight": (D,)}
    shapes["ln_f.bias"] = (D,)
    for i in range(n_layers):
        h = f"h.{i}."
        shapes |= {h + "ln_1.weight": (D,), h + "ln_1.bias": (D,), h + "ln_2.weight": (D,)}
        shapes |= {h + "ln_2.bias": (D,), h + "attn.c_attn.weight": (D, 3 * D)}
        shapes |= {h + "attn.c_attn.bias": (3 * D,), h + "attn.c_proj.weight": (D, D)}
        shapes |= {h + "attn.c_proj.bias": (D,), h + "mlp.c_fc.weight": (D, 4 * D)}
        shapes |= {h + "mlp.c_fc.bias": (4 * D,), h + "mlp.c_proj.weight": (4 * D, D)}
        shapes |= {h + "mlp.c_proj.bias": (D,)}
    return {k: (0.1 * rng.standard_normal(s)).astype(np.float32) for k, s in shapes.items()}


def write_gpt2(folder: Path, tensors=None, config: dict | str | None = None, **changes) -> Path:
    """model.safetensors (tensors, with `changes` applied: key -> array, or None to drop) and a
    config.json with n_head 2 (or `config`: a dict, or the file's text as is)."""
    folder.mkdir(parents=True, exist_ok=True)
    t = dict(gpt2_tensors() if tensors is None else tensors)
    for k, v in changes.items():
        k = k.replace("__", ".")
        t.pop(k) if v is None else t.__setitem__(k, v)
    save_file(t, str(folder / "model.safetensors"))
    config = {"model_type": "gpt2", "n_head": 2} if config is None else config
    text = config if isinstance(config, str) else json.dumps(config)
    (folder / "config.json").write_text(text)
    return folder


def book_state(n_layers: int = 1, seed: int = 0) -> dict:
    """The book's GPTModel state_dict (torch tensors, qkv_bias), from the same numbers."""
    import torch

    t = gpt2_tensors(n_layers, seed)
    p = {"tok_emb.weight": t["wte.weight"], "pos_emb.weight": t["wpe.weight"]}
    for i in range(n_layers):
        h, b = f"h.{i}.", f"trf_blocks.{i}."
        q, k, v = np.split(t[h + "attn.c_attn.weight"], 3, axis=1)
        qb, kb, vb = np.split(t[h + "attn.c_attn.bias"], 3)
        p |= {b + "att.W_query.weight": q.T, b + "att.W_key.weight": k.T}
        p |= {b + "att.W_value.weight": v.T, b + "att.W_query.bias": qb}
        p |= {b + "att.W_key.bias": kb, b + "att.W_value.bias": vb}
        p |= {b + "att.out_proj.weight": t[h + "attn.c_proj.weight"].T}
        p |= {b + "att.out_proj.bias": t[h + "attn.c_proj.bias"]}
        p |= {b + "ff.layers.0.weight": t[h + "mlp.c_fc.weight"].T}
        p |= {b + "ff.layers.0.bias": t[h + "mlp.c_fc.bias"]}
        p |= {b + "ff.layers.2.weight": t[h + "mlp.c_proj.weight"].T}
        p |= {b + "ff.layers.2.bias": t[h + "mlp.c_proj.bias"]}
        p |= {b + "norm1.scale": t[h + "ln_1.weight"], b + "norm1.shift": t[h + "ln_1.bias"]}
        p |= {b + "norm2.scale": t[h + "ln_2.weight"], b + "norm2.shift": t[h + "ln_2.bias"]}
    p |= {"final_norm.scale": t["ln_f.weight"], "final_norm.shift": t["ln_f.bias"]}
    p["out_head.weight"] = t["wte.weight"]
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in p.items()}


def write_pth(path: Path, state) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def raw_safetensors(path: Path, header, data: bytes = b"", length: int | None = None) -> Path:
    """A safetensors file written byte by byte: the 8-byte header length (or `length`), the header
    (a JSON value, or bytes as they are), the data."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(text) if length is None else length
    path.write_bytes(n.to_bytes(8, "little") + text + data)
    return path


# ---- Qwen3 ---------------------------------------------------------------------------------------

QWEN3_CONFIG = {
    "model_type": "qwen3",
    "vocab_size": 300,
    "hidden_size": 16,
    "intermediate_size": 24,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 6,
    "max_position_embeddings": 12,
    "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
    "attention_bias": False,
    "hidden_act": "silu",
}
_TOKENIZER: dict[str, bytes] = {}


def qwen3_tensors(config: dict | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    from twinlm.shared.naming import qwen3_param_shapes

    c = config or QWEN3_CONFIG
    cfg = {"vocab_size": c["vocab_size"], "emb_dim": c["hidden_size"], "n_heads": 4}
    cfg |= {"n_kv_heads": 2, "head_dim": 6, "hidden_dim": c["intermediate_size"]}
    cfg |= {"n_layers": 2, "tie_embeddings": True, "attention_bias": False}
    rng = np.random.default_rng(seed)
    return {
        k: (0.1 * rng.standard_normal(s)).astype(np.float32)
        for k, s in qwen3_param_shapes(cfg).items()
    }


def qwen3_folder(
    folder: Path, config: dict | str | None = None, tensors=None, index: dict | str | None = None
) -> Path:
    """A Qwen3 folder: config.json (QWEN3_CONFIG, or `config`: a dict or the file's text),
    model.safetensors (or, with `index`, model.safetensors.index.json and no single file), and a
    tokenizer (trained once per process, then copied)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = QWEN3_CONFIG if config is None else config
    text = config if isinstance(config, str) else json.dumps(config)
    (folder / "config.json").write_text(text)
    t = qwen3_tensors() if tensors is None else tensors
    if index is None:
        save_file(t, str(folder / "model.safetensors"))
    else:
        text = index if isinstance(index, str) else json.dumps(index)
        (folder / "model.safetensors.index.json").write_text(text)
    write_byte_tokenizer(folder)
    return folder


def write_byte_tokenizer(folder: Path) -> None:
    """tokenizer.json: byte-level BPE with no merges (ids 0-255 the bytes' symbols, 256 the pad
    and eos token <|endoftext|>), built once per process, then copied."""
    if not _TOKENIZER:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers

        symbols = sorted(pre_tokenizers.ByteLevel.alphabet())
        vocab = {s: i for i, s in enumerate(symbols)} | {"<|endoftext|>": len(symbols)}
        tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        _TOKENIZER["tokenizer.json"] = tok.to_str().encode()
        special = {"pad_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}
        _TOKENIZER["tokenizer_config.json"] = json.dumps(special).encode()
    for name, data in _TOKENIZER.items():
        (folder / name).write_bytes(data)


def _scratch() -> Path:
    """A folder of this process's, removed when it exits: the originals tests copy from."""
    if not _SCRATCH:
        _SCRATCH.append(Path(tempfile.mkdtemp(prefix="twinlm-hostile-")))
        atexit.register(shutil.rmtree, _SCRATCH[0], ignore_errors=True)
    return _SCRATCH[0]


_SCRATCH: list[Path] = []


def patched(base: dict, **changes) -> dict:
    """A copy of a config with keys changed (a value of DROP removes the key)."""
    out = dict(base)
    for k, v in changes.items():
        out.pop(k) if v is DROP else out.__setitem__(k, v)
    return out


DROP = object()


# ---- twinlm checkpoints --------------------------------------------------------------------------

TEXT = "".join(
    f"line {i}: the quick brown fox jumps over the lazy dog {i * i}\n" for i in range(60)
)
_CHECKPOINTS: dict[str, Path] = {}


def checkpoint(kind: str, tmp: Path) -> Path:
    """A valid checkpoint of `kind` ("gpt", "charrnn", "classifier"), trained a step (once per
    process); returns the path of a fresh copy in tmp. The GPT and
    the classifier are the "test" preset with GPT-2's vocabulary, so the command line's tokenizer
    fits them; the char-RNN is `twinlm charrnn train`'s."""
    if kind not in _CHECKPOINTS:
        home = _scratch() / kind
        home.mkdir()
        text = home / "fox.txt"
        text.write_text(TEXT, encoding="utf-8")
        path = home / f"{kind}.safetensors"
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()) as err:
            _train_one(kind, text, path, err)
        _CHECKPOINTS[kind], _CHECKPOINTS[kind + "-text"] = path, text
    tmp.mkdir(parents=True, exist_ok=True)
    dst = tmp / f"{kind}.safetensors"
    shutil.copy(_CHECKPOINTS[kind], dst)
    return dst


def _train_one(kind: str, text: Path, path: Path, err) -> None:
    from twinlm.data.tokenizer import encode
    from twinlm.training.loop import Run

    gpt2_vocab = {"vocab_size": 50257}
    if kind == "charrnn":
        from twinlm.cli import main

        args = ["charrnn", "train", "--text", text, "--hidden-size", "8", "--emb-dim", "4"]
        args += ["--steps", "2", "--batch-size", "2", "--seq-length", "8", "--out", path.parent]
        assert main([str(a) for a in args]) == 0, err.getvalue()
        shutil.move(path.parent / "checkpoint.safetensors", path)
        return
    if kind == "gpt":
        from twinlm.training.lm import LMTask, TrainSettings

        s = TrainSettings(preset="test", max_length=8, stride=8, batch_size=2, steps=2)
        task = LMTask(TEXT, replace(s, overrides=gpt2_vocab, eval_every=1), encode)
    else:
        from twinlm.training.classify import ClassifySettings, ClassifyTask

        s = ClassifySettings(preset="test", synthetic_size=16, epochs=1, batch_size=8)
        task = ClassifyTask(replace(s, max_length=12, overrides=gpt2_vocab))
    run = Run(task, "numpy")
    run.evaluate()
    run.train_step()
    run.save(path)


def checkpoint_text(kind: str) -> Path:
    return _CHECKPOINTS[kind + "-text"]


def tamper(path: Path, meta: Callable[[dict], None] | None = None, tensors=None) -> Path:
    """Rewrite checkpoint `path` in place: meta(m) edits its metadata (or returns the metadata's
    text to write instead), tensors(t) its tensors."""
    from twinlm.training.checkpoint import load_checkpoint

    t, m = load_checkpoint(path)
    text = meta(m) if meta is not None else None
    if tensors is not None:
        tensors(t)
    meta_text = {"twinlm": text if isinstance(text, str) else json.dumps(m)}
    if any(not isinstance(v, np.ndarray) for v in t.values()):  # a torch tensor (bfloat16)
        import torch
        from safetensors.torch import save_file as save_torch

        t = {k: v if isinstance(v, torch.Tensor) else torch.from_numpy(v) for k, v in t.items()}
        save_torch(t, str(path), meta_text)
        return path
    save_file(t, str(path), meta_text)
    return path


def nested(m: dict, path: str, value) -> None:
    """m["a"]["b"] = value for the path "a/b" (value DROP: delete it)."""
    *parents, last = path.split("/")
    for p in parents:
        m = m[p]
    m.pop(last) if value is DROP else m.__setitem__(last, value)


if __name__ == "__main__":
    sys.exit("a library for parity_tests/app/test_hostile_*.py")
