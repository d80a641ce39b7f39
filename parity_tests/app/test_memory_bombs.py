"""Issue 22, memory bombs: a file that claims an absurd size (a layer index or count of 10⁸–10⁹, a
vocabulary given as a number) in every format twinlm reads. Before, a loader built per-layer
structures from the claim before checking anything: 23–35 s and 3.4–3.7 GB, then MemoryError
(exit 1). Each case now runs in a subprocess under a 2 GB address-space limit (RLIMIT_AS) and
must exit 2 with one line naming the file and the key, within TIME_LIMIT seconds of the command
starting (imports excluded: the interpreter and torch take seconds on a busy machine, and are
not what is measured). One child runs them all, one after another; it reports each command's
time and the process's peak memory so far, which the test output lists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hostile import (
    QWEN3_CONFIG,
    Case,
    book_state,
    checkpoint,
    checkpoint_text,
    generate,
    nested,
    patched,
    qwen3_folder,
    tamper,
    write_gpt2,
    write_pth,
)

ADDRESS_SPACE = 2 << 30  # bytes
TIME_LIMIT = 2.0  # seconds from a command's start to its exit
_CHILD = """
import io, json, resource, sys, time
from contextlib import redirect_stderr, redirect_stdout
resource.setrlimit(resource.RLIMIT_AS, ({limit}, {limit}))
import torch  # imports first: they are not what is measured
import twinlm.cli, twinlm.generation, twinlm.weights, twinlm.training.checkpoint
import twinlm.training.charrnn, twinlm.training.classify, twinlm.training.lm
reports = []
for argv in json.loads(sys.stdin.read()):
    err = io.StringIO()
    start = time.perf_counter()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code = twinlm.cli.main(argv)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reports.append({{"code": code, "seconds": seconds, "peak_mb": peak_mb, "err": err.getvalue()}})
print(json.dumps(reports))
"""


def run_bounded(argvs: list[list]) -> list[dict]:
    """Run the command lines one after another in one child process under the address-space
    limit; a report for each: exit status, seconds, the process's peak RSS so far, stderr. A child
    that does not finish in two minutes is killed (the old behaviour)."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-c", _CHILD.format(limit=ADDRESS_SPACE)]
    argvs = [[str(a) for a in argv] for argv in argvs]
    done = subprocess.run(
        args, input=json.dumps(argvs), capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def gpt2_with_stray_block(tmp: Path) -> list:
    stray = {"h__999999999__ln_1__weight": np.ones(16, np.float32)}
    return generate(write_gpt2(tmp / "g", **stray))


def book_with_stray_block(tmp: Path) -> list:
    state = book_state()
    state["trf_blocks.999999999.norm1.scale"] = state["trf_blocks.0.norm1.scale"].clone()
    return [*generate(write_pth(tmp / "book.pth", state)), "--n-heads", "2"]


def qwen3_claiming(**config):
    return lambda tmp: generate(qwen3_folder(tmp / "q", patched(QWEN3_CONFIG, **config)))


def gpt2_config_claiming(tmp: Path) -> list:
    return generate(write_gpt2(tmp / "g", config={"n_head": 2, "n_layer": 10**9}))


def tampered(kind: str, key: str, value, command):
    def build(tmp: Path) -> list:
        path = tamper(checkpoint(kind, tmp), lambda m: nested(m, key, value))
        return command(tmp, path)

    return build


def generate_ckpt(tmp, path):
    return ["generate", "--checkpoint", path, "--prompt", "hi", "--max-new-tokens", "1"]


def sample_ckpt(tmp, path):
    return ["charrnn", "sample", "--checkpoint", path, "--length", "5"]


def predict_ckpt(tmp, path):
    return ["classify", "predict", "--checkpoint", path, "--text", "win a prize"]


def resume_gpt(tmp, path):
    return ["train", "--resume", path, "--text", checkpoint_text("gpt"), "--out", tmp / "r"]


def resume_charrnn(tmp, path):
    text = checkpoint_text("charrnn")
    return ["charrnn", "train", "--text", text, "--resume", path, "--out", tmp / "r"]


BOMBS = [
    Case("bomb/gpt2-safetensors-block-999999999", gpt2_with_stray_block, 2,
         ("model.safetensors", "h.999999999.ln_1.weight")),
    Case("bomb/book-pth-block-999999999", book_with_stray_block, 2,
         ("book.pth", "trf_blocks.999999999.norm1.scale")),
    Case("bomb/gpt2-config-n-layer-1e9", gpt2_config_claiming, 2, ("config.json", "n_layer")),
    Case("bomb/qwen3-num-hidden-layers-1e9", qwen3_claiming(num_hidden_layers=10**9), 2,
         ("config.json", "num_hidden_layers=1000000000")),
    Case("bomb/qwen3-vocab-size-1e12", qwen3_claiming(vocab_size=10**12), 2,
         ("q", "model.embed_tokens.weight")),
    Case("bomb/qwen3-intermediate-size-1e9", qwen3_claiming(intermediate_size=10**9), 2,
         ("q", "mlp.gate_proj.weight")),
    Case("bomb/checkpoint-gpt-n-layers-1e8", tampered("gpt", "cfg/n_layers", 10**8, generate_ckpt),
         2, ("gpt.safetensors", "n_layers=100000000")),
    Case("bomb/checkpoint-classifier-n-layers-1e8",
         tampered("classifier", "cfg/n_layers", 10**8, predict_ckpt), 2,
         ("classifier.safetensors", "n_layers=100000000")),
    Case("bomb/checkpoint-charrnn-num-layers-1e8",
         tampered("charrnn", "cfg/num_layers", 10**8, sample_ckpt), 2,
         ("charrnn.safetensors", "num_layers=100000000")),
    Case("bomb/checkpoint-charrnn-hidden-size-1e6",
         tampered("charrnn", "cfg/hidden_size", 10**6, sample_ckpt), 2,
         ("charrnn.safetensors", "(from its metadata's cfg)")),
    Case("bomb/checkpoint-charrnn-vocab-1e9", tampered("charrnn", "vocab", 10**9, sample_ckpt), 2,
         ("charrnn.safetensors", "'vocab'")),
    Case("bomb/checkpoint-settings-overrides-n-layers-1e8",
         tampered("gpt", "settings/overrides", {"vocab_size": 50257, "n_layers": 10**8}, resume_gpt),
         2, ("gpt.safetensors", "n_layers")),
    Case("bomb/checkpoint-settings-num-layers-1e8",
         tampered("charrnn", "settings/num_layers", 10**8, resume_charrnn), 2,
         ("charrnn.safetensors", "num_layers")),
]  # fmt: skip


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, dict]:
    """Every bomb built, then run in one bounded child process: {case id: its report}."""
    root = tmp_path_factory.mktemp("bombs")
    argvs = [case.build(root / str(i)) for i, case in enumerate(BOMBS)]
    return dict(zip([case.id for case in BOMBS], run_bounded(argvs)))


@pytest.mark.parametrize("case", BOMBS, ids=repr)
def test_memory_bomb_is_refused_at_once_in_bounded_memory(case, reports, record_error):
    report = reports[case.id]
    err = report["err"]
    assert "Traceback" not in err, err
    assert report["code"] == case.code, err
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1, err
    for words in case.says:
        assert words in lines[0], f"{words!r} not in {lines[0]!r}"
    record_error(case.id, "seconds to refuse", report["seconds"], TIME_LIMIT)
    record_error(case.id, "peak RSS so far (MB)", report["peak_mb"], ADDRESS_SPACE / 2**20)
