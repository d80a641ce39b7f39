"""`twinlm score`: per-token loss, perplexity and entropy, both backends, against torch built-ins
(the logits from helpers.builtin_gpt_hidden and F.linear, F.cross_entropy(reduction="none"),
torch.distributions.Categorical's entropy), in float64; and the command's line and heat map."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import builtin_gpt_hidden

import numpy_impl
import torch_impl
from twinlm.book.score import coloured_line, token_scores
from twinlm.cli import main
from twinlm.parity.harness import TOL_FLOAT64, rel_error
from twinlm.shared.config import get_config
from twinlm.training.checkpoint import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py
CFG = get_config("test", drop_rate=0.0)  # vocab 67, context 12


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("n", [2, 9, 20])  # 20 > context + 1: cut to the first 13 ids
def test_token_scores_against_torch_builtins(backend, n, record_error):
    model = (
        numpy_impl.GPTModel(CFG, seed=3, dtype=np.float64)
        if backend == "numpy"
        else torch_impl.GPTModel(CFG, seed=3, dtype=torch.float64)
    )
    ids = np.random.default_rng(n).integers(0, CFG["vocab_size"], n).tolist()
    got = token_scores(model, ids)

    kept = ids[: CFG["context_length"] + 1]
    p = {
        k: torch.from_numpy(v)
        for k, v in numpy_impl.GPTModel(CFG, seed=3, dtype=np.float64).params.items()
    }
    x, y = torch.tensor([kept[:-1]]), torch.tensor(kept[1:])
    logits = F.linear(builtin_gpt_hidden(p, x, CFG), p["out_head.weight"])[0]  # (n, V)
    loss = F.cross_entropy(logits, y, reduction="none")
    entropy = torch.distributions.Categorical(logits=logits).entropy()
    assert got["ids"].tolist() == kept
    for name, want in (("loss", loss), ("perplexity", loss.exp()), ("entropy", entropy)):
        err = rel_error(got[name], want.numpy())
        record_error("token_scores", f"{name} vs torch built-ins", err, TOL_FLOAT64)


def test_token_scores_needs_two_tokens():
    with pytest.raises(ValueError, match="at least 2 tokens"):
        token_scores(numpy_impl.GPTModel(CFG, seed=0), [5])


def test_coloured_line_marks_every_scored_token():
    line = coloured_line(["a", "b", "c"], np.array([0.0, 9.0]), 4.0, colour=True)
    assert line.startswith("a\x1b[48;2;") and line.count("\x1b[0m") == 2
    assert coloured_line(["a", "b"], np.array([1.0]), 4.0, colour=False) == "a|b"


def test_score_command_prints_and_draws(tmp_path, capsys):
    cfg = {**CFG, "vocab_size": 50257, "context_length": 16}  # the GPT-2 tokenizer's ids
    params = numpy_impl.GPTModel(cfg, seed=1).params
    ckpt = save_checkpoint(
        tmp_path / "gpt.safetensors",
        {f"model.{k}": v for k, v in params.items()},
        {"kind": "gpt", "cfg": cfg, "step": 0},
    )
    png = tmp_path / "heat.png"
    args = [
        "score",
        "--checkpoint",
        str(ckpt),
        "--text",
        "Every effort moves you",
        "--png",
        str(png),
    ]
    assert main([*args, "--backend", "torch", "--color", "always"]) == 0
    out = capsys.readouterr().out
    assert "4 tokens scored" not in out and "3 tokens scored" in out  # 4 ids, 3 predicted
    assert "\x1b[48;2;" in out and png.stat().st_size > 1000
    mean = float(out.split("mean loss ")[1].split()[0])
    assert abs(mean - math.log(50257)) < 1.0  # an untrained model: about a uniform guess
