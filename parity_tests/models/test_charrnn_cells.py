"""char-RNN with each of char-rnn's cells: the GRU and the vanilla RNN (tanh, relu) beside the LSTM
of test_charrnn.py. The whole model three ways (NumPy, torch_impl, torch's own nn.Embedding /
nn.GRU / nn.RNN / nn.Linear) with random upstream gradients on the logits AND on the final state;
100 steps of truncated-BPTT training in lockstep for every cell; bit-for-bit resume; the same
samples from both backends; the command line; and checkpoints from before the cell was recorded,
which are LSTMs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

import numpy_impl
import torch_impl
from twinlm.cli import main
from twinlm.parity.harness import (
    TOL_FLOAT64,
    OpCase,
    adjoint_error,
    compare_float64,
    random_douts,
    rel_error,
    run_numpy,
)
from twinlm.shared.naming import CELL_STATE, CELLS, charrnn_param_shapes
from twinlm.training.charrnn import (
    CharRNNSettings,
    CharRNNTask,
    cell_of,
    load_for_sampling,
    resume,
    sample,
)
from twinlm.training.checkpoint import load_checkpoint, save_checkpoint
from twinlm.training.loop import Run

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py
TOL_FD = 1e-7
TOL_TRAJECTORY = 1e-9  # relative, 100 optimizer steps
OTHER_CELLS = ("gru", "rnn_tanh", "rnn_relu")
CORE = {"lstm": "lstm", "gru": "gru", "rnn_tanh": "rnn", "rnn_relu": "rnn"}


def _builtin_layers(cell: str, i: int, h: int, layers: int) -> torch.nn.Module:
    if cell == "gru":
        return torch.nn.GRU(i, h, layers, batch_first=True)
    return torch.nn.RNN(i, h, layers, nonlinearity=cell.removeprefix("rnn_"), batch_first=True)


def charrnn_case(cell: str, num_layers: int, p: float = 0.0) -> OpCase:
    """(x, h0, params…, masks…) -> (logits, h_n), for a cell with h as its only state."""
    L, core = num_layers, CORE[cell]

    def cfg_of(d):
        return {"cell": cell, "vocab_size": d["vocab"], "emb_dim": d["emb"],
                "hidden_size": d["hidden"], "num_layers": L, "drop_rate": p}  # fmt: skip

    def sample(rng, dtype, d):
        B, S, H = d["batch"], d["seq"], d["hidden"]
        arrays = {"x": rng.integers(0, d["vocab"], (B, S)),
                  "h0": (0.5 * rng.standard_normal((L, B, H))).astype(dtype)}  # fmt: skip
        for name, shape in charrnn_param_shapes(cfg_of(d)).items():
            scale = shape[1] ** -0.5 if len(shape) == 2 and name != "embedding.weight" else 0.5
            arrays[name] = (scale * rng.standard_normal(shape)).astype(dtype)
        for k in range(L if p > 0 else 0):  # mask k after layer k; the last before the decoder
            arrays[f"mask{k}"] = rng.random((B, S, H)) >= p
        return arrays

    def dims_of(a):
        V, D = a["embedding.weight"].shape
        return {"vocab": int(V), "emb": int(D), "hidden": int(a["h0"].shape[-1])}

    def params(a):
        return {k: a[k] for k in charrnn_param_shapes(cfg_of(dims_of(a)))}

    def named_masks(a):
        if p == 0:
            return None
        names = [f"{core}.dropout.{k}" for k in range(L - 1)] + ["dropout"]
        return {name: a[f"mask{k}"] for k, name in enumerate(names)}

    def np_forward(a):
        model = numpy_impl.CharRNN(cfg_of(dims_of(a)))
        model.load_state_dict(params(a))
        logits, (h_n,) = model.forward(a["x"], (a["h0"],), named_masks(a))
        return (logits, h_n), model

    def np_backward(douts, model):
        dlogits, dh_n = douts
        grads = model.backward(dlogits, (dh_n,))
        return {"h0": model.dstate0[0], **grads}

    def torch_forward(a):
        model = torch_impl.CharRNN(cfg_of(dims_of(a)), dtype=a["h0"].dtype)
        logits, (h_n,) = functional_call(model, params(a), (a["x"], (a["h0"],), named_masks(a)))
        return logits, h_n

    def reference(a):
        """F.embedding, torch.nn.GRU / RNN (one per layer with the masks between), F.linear."""
        h0, H = a["h0"], a["h0"].shape[-1]
        layer_in = F.embedding(a["x"], a["embedding.weight"])
        rec = {k[len(core) + 1 :]: v for k, v in a.items() if k.startswith(core + ".")}
        if p == 0:
            module = _builtin_layers(cell, layer_in.shape[-1], H, L).to(h0.dtype)
            layer_in, h_n = functional_call(module, rec, (layer_in, h0))
        else:
            hs = []
            for k in range(L):
                module = _builtin_layers(cell, layer_in.shape[-1], H, 1).to(h0.dtype)
                layer = {f"{w}_l0": rec[f"{w}_l{k}"]
                         for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}  # fmt: skip
                out, h_k = functional_call(module, layer, (layer_in, h0[k : k + 1]))
                hs.append(h_k)
                layer_in = out * a[f"mask{k}"].to(out.dtype) / (1 - p)
            h_n = torch.cat(hs)
        return F.linear(layer_in, a["decoder.weight"], a["decoder.bias"]), h_n

    dims = {"batch": 3, "seq": 6, "vocab": 11, "emb": 5, "hidden": 7}
    return OpCase(
        f"charrnn[{cell}, L={L}{f', p={p}' if p else ''}]",
        sample,
        np_forward,
        np_backward,
        torch_impl=torch_forward,
        torch_ref=reference,
        grad_inputs=("h0", *charrnn_param_shapes(cfg_of(dims))),
        dims=dims,
        fd_dims=dims,
    )


@pytest.mark.parametrize("cell", OTHER_CELLS)
@pytest.mark.parametrize("num_layers, p", [(1, 0.0), (2, 0.3)])
def test_whole_model_three_way_float64(cell, num_layers, p, record_error):
    """Logits, h_n, and the gradient of every parameter and of the carried h0."""
    case = charrnn_case(cell, num_layers, p)
    rng = np.random.default_rng(num_layers)
    arrays = case.sample(rng, np.float64, case.dims)
    douts = random_douts(rng, run_numpy(case, arrays)[0])  # on the logits AND on h_n
    errors = compare_float64(case, arrays, douts)
    record_error(f"charrnn {cell}", "float64 forward", errors.forward, TOL_FLOAT64)
    record_error(f"charrnn {cell}", "float64 grad", errors.grad, TOL_FLOAT64)
    record_error(f"charrnn {cell}", "fd adjoint", adjoint_error(case, arrays, rng), TOL_FD)


def test_state_dict_keys_are_torch_modules_keys():
    cfg = {"vocab_size": 9, "emb_dim": 4, "hidden_size": 5, "num_layers": 2, "drop_rate": 0.0}
    for cell in CELLS:
        c = {**cfg, "cell": cell}
        keys = list(charrnn_param_shapes(c))
        assert (
            keys == list(torch_impl.CharRNN(c).state_dict()) == list(numpy_impl.CharRNN(c).params)
        )
        assert keys[1].startswith(CORE[cell] + ".weight_ih_l0")
        assert len(numpy_impl.CharRNN(c).zero_state(2)) == len(CELL_STATE[cell])
    assert charrnn_param_shapes(cfg) == charrnn_param_shapes({**cfg, "cell": "lstm"})


# ---- training in lockstep, resume, sampling ------------------------------------------------------

TEXT = "".join(
    f"{i}: the quick brown fox jumps over the lazy dog, {i * i} times.\n" for i in range(40)
)


def settings(**kw) -> CharRNNSettings:
    base = dict(emb_dim=8, hidden_size=16, num_layers=2, drop_rate=0.25, batch_size=3,
                seq_length=16, steps=100, lr=5e-3, lr_decay=0.9, decay_after=1, clip=1.0,
                eval_every=50, eval_batches=3, seed=7)  # fmt: skip
    return CharRNNSettings(**{**base, **kw})


@pytest.mark.parametrize("model, nonlinearity", [("gru", "tanh"), ("rnn", "tanh"), ("rnn", "relu")])
def test_training_trajectory_numpy_vs_torch_float64(model, nonlinearity, record_error):
    """100 steps of truncated BPTT (2 layers, dropout, clip, lr decay, two epoch boundaries): the
    same losses, final parameters and carried state from both backends."""
    s = settings(dtype="float64", model=model, nonlinearity=nonlinearity)
    task = CharRNNTask(TEXT, s)  # one task, two runs: the same batches and masks for both
    cell = task.cfg["cell"]
    assert cell == cell_of(model, nonlinearity) and task.per_epoch < 50
    runs = {b: Run(task, b) for b in ("numpy", "torch")}
    losses = {b: np.array([t.train_step() for _ in range(s.steps)]) for b, t in runs.items()}
    gap = float(np.max(np.abs(losses["numpy"] - losses["torch"]) / np.abs(losses["torch"])))
    record_error(f"charrnn trainer {cell}", "loss, 100 steps (f64)", gap, TOL_TRAJECTORY)
    p_np, p_t = runs["numpy"].engine.params(), runs["torch"].engine.params()
    assert list(p_np) == list(p_t) and any(k.startswith(CORE[cell] + ".") for k in p_np)
    worst = max(rel_error(p_np[k], p_t[k]) for k in p_t)
    record_error(f"charrnn trainer {cell}", "params after 100 steps (f64)", worst, TOL_TRAJECTORY)
    assert len(runs["numpy"].carry) == len(runs["torch"].carry) == 1  # (h,)
    carry = rel_error(runs["numpy"].carry[0], runs["torch"].carry[0])
    record_error(f"charrnn trainer {cell}", "carried h after 100 (f64)", carry, TOL_TRAJECTORY)
    assert losses["numpy"][-10:].mean() < losses["numpy"][:10].mean() - 0.5  # it learns


@pytest.mark.parametrize("model", ["gru", "rnn"])
def test_resume_continues_bit_for_bit_and_samples_agree(model, tmp_path):
    """10 steps, save, 10 more == 20 straight (parameters and carried h exactly); the checkpoint
    records the cell; both backends sample the same bytes from it."""
    s = settings(model=model, steps=20, checkpoint_every=0)
    straight = Run(CharRNNTask(TEXT, s), "numpy")
    for _ in range(20):
        straight.train_step()
    first = Run(CharRNNTask(TEXT, s), "numpy")
    for _ in range(10):
        first.train_step()
    ckpt = first.save(tmp_path / "ckpt.safetensors")
    again = resume(ckpt, TEXT, backend="numpy")
    for _ in range(10):
        again.train_step()
    for k, v in straight.engine.params().items():
        assert np.array_equal(again.engine.params()[k], v), k
    assert np.array_equal(again.carry[0], straight.carry[0]) and len(again.carry) == 1
    engine, vocab, meta = load_for_sampling(ckpt, "torch")
    assert meta["cfg"]["cell"] == cell_of(model) and meta["settings"]["model"] == model
    out = {b: sample(load_for_sampling(ckpt, b)[0], vocab, "the ", 60, 0.9, seed=5)
           for b in ("numpy", "torch")}  # fmt: skip
    assert out["numpy"] == out["torch"] and len(out["numpy"]) == 60


def test_cli_train_sample_resume_with_other_models(tmp_path, capsys):
    """--model gru through train, resume (a different --model is refused) and sample, torch
    backend; --model rnn --nonlinearity relu trains (numpy backend)."""
    text = tmp_path / "fox.txt"
    text.write_bytes(TEXT.encode())
    common = ["--text", str(text), "--hidden-size", "8", "--emb-dim", "4", "--batch-size", "2",
              "--seq-length", "8", "--eval-every", "3", "--eval-batches", "1"]  # fmt: skip
    out = tmp_path / "relu"
    args = ["charrnn", "train", "--model", "rnn", "--nonlinearity", "relu", "--steps", "1",
            *common, "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert "rnn_relu 2×8" in capsys.readouterr().out  # the header names the cell
    assert load_for_sampling(out / "checkpoint.safetensors")[2]["cfg"]["cell"] == "rnn_relu"
    out = tmp_path / "gru"
    args = ["charrnn", "train", "--model", "gru", "--backend", "torch", "--steps", "3", *common,
            "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    ckpt = str(out / "checkpoint.safetensors")
    more = ["charrnn", "train", "--text", str(text), "--resume", ckpt, "--steps", "4",
            "--out", str(out)]  # fmt: skip
    assert main(more) == 0
    capsys.readouterr()
    assert main([*more, "--model", "lstm"]) == 2  # not the checkpoint's model: one line
    assert "--model would change the model" in capsys.readouterr().err
    cmd = ["charrnn", "sample", "--checkpoint", ckpt, "--length", "20", "--seed", "1"]
    assert main(cmd) == 0
    assert load_for_sampling(ckpt)[2]["step"] == 4


def test_checkpoint_without_a_cell_is_an_lstm(tmp_path):
    """A checkpoint written before the cell was recorded (no cfg["cell"], no settings model) loads,
    samples and resumes as the LSTM it is."""
    s = settings(steps=4)
    run = Run(CharRNNTask(TEXT, s), "numpy")
    for _ in range(2):
        run.train_step()
    path = run.save(tmp_path / "new.safetensors")
    tensors, meta = load_checkpoint(path)
    meta["cfg"].pop("cell")
    meta["settings"].pop("model")
    meta["settings"].pop("nonlinearity")
    old = save_checkpoint(tmp_path / "old.safetensors", tensors, json.loads(json.dumps(meta)))
    engine, vocab, meta = load_for_sampling(old, "torch")
    assert "cell" not in meta["cfg"] and hasattr(engine.model, "lstm")
    assert sample(engine, vocab, "the", 10, seed=1) == sample(
        load_for_sampling(path, "torch")[0], vocab, "the", 10, seed=1
    )
    resumed = resume(old, TEXT)
    assert resumed.task.cfg["cell"] == "lstm" and len(resumed.carry) == 2
    resumed.train_step()


def test_bad_cell_and_state_are_named():
    cfg = {"vocab_size": 9, "emb_dim": 4, "hidden_size": 5, "num_layers": 2, "drop_rate": 0.0}
    with pytest.raises(ValueError, match=r"cfg\['cell'\] must be one of"):
        numpy_impl.CharRNN({**cfg, "cell": "transformer"})
    with pytest.raises(ValueError, match="model must be one of"):
        CharRNNTask(TEXT, settings(model="transformer"))
    with pytest.raises(ValueError, match="nonlinearity must be one of"):
        CharRNNTask(TEXT, settings(model="rnn", nonlinearity="sigmoid"))
    ids = np.array([[1, 2]])
    zeros = np.zeros((2, 1, 5), np.float32)
    for model, x, state in (
        (numpy_impl.CharRNN({**cfg, "cell": "gru"}), ids, (zeros, zeros)),
        (
            torch_impl.CharRNN({**cfg, "cell": "rnn_tanh"}),
            torch.from_numpy(ids),  # a torch model takes torch ids (a NumPy array is refused)
            (torch.zeros(2, 1, 5),) * 2,
        ),
    ):
        with pytest.raises(ValueError, match=r"state must be a tuple \(h\) for a"):
            model.forward(x, state)
    with pytest.raises(ValueError, match=r"state must be a tuple \(h, c\) for a lstm cell, got 1"):
        numpy_impl.CharRNN(cfg).forward(ids, (zeros,))


def test_compare_at_equal_parameter_count_smoke(tmp_path, capsys):
    """`twinlm charrnn compare` at toy size: every cell's largest hidden size within the LSTM's
    parameter count; two cells trained, a table row and a curve each (the real run is a command,
    not a test)."""
    from twinlm.training.charrnn_compare import compare, hidden_for_budget, param_count

    cfg = {"vocab_size": 30, "emb_dim": 4, "hidden_size": 8, "num_layers": 2, "drop_rate": 0.0}
    budget = param_count({**cfg, "cell": "lstm"})
    for cell in CELLS:
        h = hidden_for_budget(cfg, cell, budget)
        assert param_count({**cfg, "cell": cell, "hidden_size": h}) <= budget
        assert param_count({**cfg, "cell": cell, "hidden_size": h + 1}) > budget
    assert hidden_for_budget(cfg, "lstm", budget) == 8
    s = settings(emb_dim=4, hidden_size=8, batch_size=2, seq_length=8, steps=2, eval_every=2,
                 eval_batches=1, drop_rate=0.0)  # fmt: skip
    rows = compare(TEXT, s, tmp_path, cells=("gru", "lstm"), progress=False)
    assert [r["cell"] for r in rows] == ["gru", "lstm"]
    assert rows[0]["hidden"] > rows[1]["hidden"] == 8  # the same budget
    assert all(0 < r["val_bpc"] < 10 for r in rows)
    table = (tmp_path / "compare.md").read_text()
    assert table.count("\n| ") == 3 and (tmp_path / "compare.png").stat().st_size > 1000
    assert (tmp_path / "gru" / "checkpoint.safetensors").is_file()
