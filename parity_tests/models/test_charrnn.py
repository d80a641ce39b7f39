"""char-RNN: the whole model in NumPy vs torch_impl vs torch's own modules, truncated-BPTT training
in lockstep, bit-for-bit resume, sampling, and the input checks.

The whole model is wrapped in an OpCase — inputs: byte ids, the carried state (h0, c0), every
parameter and the dropout masks; outputs: logits and the final state (h_n, c_n) — so the generic
harness compares all three backends with random upstream gradients on the logits AND on (h_n, c_n).
The independent reference is torch.nn.Embedding / torch.nn.LSTM / torch.nn.Linear via
torch.func.functional_call (with dropout on, one single-layer nn.LSTM per layer, so the same masks
can go between them).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch.func import functional_call

import numpy_impl
import torch_impl
from twinlm.cli import main
from twinlm.data.bytes import ByteVocab, StreamBatches, split_ids
from twinlm.parity.harness import (
    TOL_FLOAT64,
    OpCase,
    adjoint_error,
    compare_float32,
    compare_float64,
    grads_error,
    random_douts,
    rel_error,
    run_numpy,
    run_torch,
)
from twinlm.shared.init import init_charrnn_params
from twinlm.shared.naming import charrnn_param_shapes
from twinlm.training.charrnn import (
    CharRNNSettings,
    CharRNNTask,
    build_charrnn,
    load_for_sampling,
    resume,
    sample,
)
from twinlm.training.engines import Batch, make_engine
from twinlm.training.loop import Run

TOL_FD = 1e-7  # central differences along a random direction, eps 1e-6, float64
TOL_TRAJECTORY = 1e-9  # relative, 100 optimizer steps
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


# ---- the model as an OpCase ----------------------------------------------------------------------


def _cfg(d: dict, num_layers: int, p: float) -> dict:
    return {"vocab_size": d["vocab"], "emb_dim": d["emb"], "hidden_size": d["hidden"],
            "num_layers": num_layers, "drop_rate": p}  # fmt: skip


class _BuiltinCharRNN(torch.nn.Module):
    """The same model from torch's own modules: the reference, and the state_dict layout."""

    def __init__(self, cfg: dict):
        super().__init__()
        V, D, H, L = cfg["vocab_size"], cfg["emb_dim"], cfg["hidden_size"], cfg["num_layers"]
        self.embedding = torch.nn.Embedding(V, D)
        self.lstm = torch.nn.LSTM(D, H, L, batch_first=True)
        self.decoder = torch.nn.Linear(H, V)


def _builtin_forward(a: dict, cfg: dict, masks: list | None):
    """torch built-ins: F.embedding, nn.LSTM, F.linear; masks as x·m/(1-p) after each LSTM layer."""
    D, H, L, p = cfg["emb_dim"], cfg["hidden_size"], cfg["num_layers"], cfg["drop_rate"]
    h0, c0 = a["h0"], a["c0"]
    layer_in = F.embedding(a["x"], a["embedding.weight"])  # (B, T, D)
    lstm_params = {k[len("lstm.") :]: v for k, v in a.items() if k.startswith("lstm.")}
    if masks is None:  # the real multi-layer nn.LSTM
        lstm = torch.nn.LSTM(D, H, L, batch_first=True).to(h0.dtype)
        h, (h_n, c_n) = functional_call(lstm, lstm_params, (layer_in, (h0, c0)))
    else:
        hs, cs = [], []
        for k in range(L):
            lstm = torch.nn.LSTM(layer_in.shape[-1], H, 1, batch_first=True).to(h0.dtype)
            layer = {f"{w}_l0": lstm_params[f"{w}_l{k}"]
                     for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}  # fmt: skip
            out, (h_k, c_k) = functional_call(
                lstm, layer, (layer_in, (h0[k : k + 1], c0[k : k + 1]))
            )
            hs.append(h_k)
            cs.append(c_k)
            layer_in = out * masks[k].to(out.dtype) / (1 - p)
        h, h_n, c_n = layer_in, torch.cat(hs), torch.cat(cs)
    return F.linear(h, a["decoder.weight"], a["decoder.bias"]), h_n, c_n


def charrnn_case(num_layers: int, p: float = 0.0) -> OpCase:
    """(x, h0, c0, params…, masks…) -> (logits, h_n, c_n); dropout on when p > 0."""
    L = num_layers

    def sample(rng, dtype, d):
        B, S, H = d["batch"], d["seq"], d["hidden"]
        cfg = _cfg(d, L, p)
        arrays = {
            "x": rng.integers(0, d["vocab"], (B, S)),
            "h0": (0.5 * rng.standard_normal((L, B, H))).astype(dtype),  # a carried state
            "c0": rng.standard_normal((L, B, H)).astype(dtype),
        }
        for name, shape in charrnn_param_shapes(cfg).items():
            # Weights ~ 1/√fan_in, both LSTM biases independent and non-zero.
            scale = shape[1] ** -0.5 if len(shape) == 2 and name != "embedding.weight" else 0.5
            arrays[name] = (scale * rng.standard_normal(shape)).astype(dtype)
        if p > 0:
            for k in range(L):
                arrays[f"mask{k}"] = rng.random((B, S, H)) >= p
        return arrays

    def cfg_of(a):
        V, D = a["embedding.weight"].shape
        return {"vocab_size": int(V), "emb_dim": int(D), "hidden_size": int(a["h0"].shape[-1]),
                "num_layers": L, "drop_rate": p}  # fmt: skip

    def masks(a):  # mask k after LSTM layer k, as the built-in reference takes them
        return [a[f"mask{k}"] for k in range(L)] if p > 0 else None

    def named_masks(a):  # the same masks by name (naming.charrnn_dropout_mask_shapes)
        return model_masks(a, L, p)

    def params(a):
        return {k: a[k] for k in charrnn_param_shapes(cfg_of(a))}

    def np_forward(a):
        model = numpy_impl.CharRNN(cfg_of(a))
        model.load_state_dict(params(a))
        logits, (h_n, c_n) = model.forward(a["x"], (a["h0"], a["c0"]), named_masks(a))
        return (logits, h_n, c_n), model

    def np_backward(douts, model):
        dlogits, dh_n, dc_n = douts
        grads = model.backward(dlogits, (dh_n, dc_n))
        dh0, dc0 = model.dstate0
        return {"h0": dh0, "c0": dc0, **grads}

    def torch_forward(a):
        model = torch_impl.CharRNN(cfg_of(a), dtype=a["h0"].dtype)
        logits, (h_n, c_n) = functional_call(
            model, params(a), (a["x"], (a["h0"], a["c0"]), named_masks(a))
        )
        return logits, h_n, c_n

    dims = {"batch": 3, "seq": 6, "vocab": 11, "emb": 5, "hidden": 7}
    return OpCase(
        f"charrnn[L={L}{f', p={p}' if p else ''}]",
        sample,
        np_forward,
        np_backward,
        torch_impl=torch_forward,
        torch_ref=lambda a: _builtin_forward(a, cfg_of(a), masks(a)),
        grad_inputs=("h0", "c0", *charrnn_param_shapes(_cfg(dims, L, p))),
        dims=dims,
        fd_dims=dims,
    )


def _inputs(case: OpCase, seed: int, **dims):
    rng = np.random.default_rng(seed)
    arrays = case.sample(rng, np.float64, {**case.dims, **dims})
    douts = random_douts(rng, run_numpy(case, arrays)[0])  # on logits AND on (h_n, c_n)
    return arrays, douts, rng


CASES = [(1, 0.0), (2, 0.0), (2, 0.3), (3, 0.5)]


@pytest.mark.parametrize("num_layers, p", CASES)
def test_whole_model_three_way_float64(num_layers, p, record_error):
    """Logits, final state, the gradient of every parameter and of the carried state (h0, c0)."""
    case = charrnn_case(num_layers, p)
    arrays, douts, _ = _inputs(case, seed=10 * num_layers + int(10 * p), batch=3, seq=7)
    ref_outs, ref_grads = run_torch(case, case.torch_ref, arrays, douts)
    scale = max(float(np.abs(g).max()) for g in ref_grads.values())
    op = f"charrnn L={num_layers} p={p}"
    for backend, (outs, grads) in {
        "numpy": run_numpy(case, arrays, douts),
        "torch_impl": run_torch(case, case.torch_impl, arrays, douts),
    }.items():
        for name, o, r in zip(("logits", "h_n", "c_n"), outs, ref_outs, strict=True):
            assert o.dtype == np.float64
            record_error(op, f"{backend} {name}", rel_error(o, r), TOL_FLOAT64)
        assert set(grads) == set(ref_grads) == set(case.grad_inputs)
        worst = max(rel_error(g, ref_grads[k], floor=1e-3 * scale) for k, g in grads.items())
        record_error(op, f"{backend} grads (all {len(grads)})", worst, TOL_FLOAT64)


@given(
    st.integers(1, 3),  # batch
    st.integers(1, 5),  # seq
    st.integers(1, 6),  # vocab
    st.integers(1, 4),  # emb
    st.integers(1, 4),  # hidden
    st.integers(1, 3),  # num_layers
    st.sampled_from([0.0, 0.4]),
    st.integers(0, 2**32 - 1),
)
def test_hypothesis_small_shapes(B, S, V, D, H, L, p, seed):
    """Size-1 dimensions included: one sequence, one step, a one-byte vocabulary, one unit."""
    case = charrnn_case(L, p)
    arrays, douts, _ = _inputs(case, seed, batch=B, seq=S, vocab=V, emb=D, hidden=H)
    errors = compare_float64(case, arrays, douts)
    assert errors.forward <= TOL_FLOAT64 and errors.grad <= TOL_FLOAT64, errors


def test_dropout_masks_and_carried_state_matter():
    """Not vacuous: the masks and the carried state each change the logits by O(1)."""
    case = charrnn_case(2, 0.3)
    arrays, _, _ = _inputs(case, seed=4)
    logits = run_numpy(case, arrays)[0][0]
    no_masks = {k: v for k, v in arrays.items() if not k.startswith("mask")}
    assert rel_error(run_numpy(charrnn_case(2), no_masks)[0][0], logits) > 1e-2
    zero_state = {**arrays, "h0": 0 * arrays["h0"], "c0": 0 * arrays["c0"]}
    assert rel_error(run_numpy(case, zero_state)[0][0], logits) > 1e-2


@pytest.mark.parametrize("num_layers, p", [(2, 0.0), (2, 0.3)])
def test_loss_and_grads_against_builtin_cross_entropy(num_layers, p, record_error):
    """loss_and_grads (the training path) vs F.cross_entropy over the built-in model."""
    case = charrnn_case(num_layers, p)
    arrays, _, rng = _inputs(case, seed=7)
    targets = rng.integers(0, case.dims["vocab"], arrays["x"].shape)
    model = case.np_forward(arrays)[1]  # numpy_impl.CharRNN holding the sampled parameters
    loss, grads, (h_n, _) = model.loss_and_grads(
        arrays["x"], targets, (arrays["h0"], arrays["c0"]), model_masks(arrays, num_layers, p)
    )
    tensors = {k: torch.from_numpy(v.copy()) for k, v in arrays.items()}
    for k in grads:
        tensors[k].requires_grad_(True)
    logits, ref_h_n, _ = case.torch_ref(tensors)
    ref_loss = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), torch.from_numpy(targets).ravel()
    )
    ref_loss.backward()
    ref_grads = {k: tensors[k].grad.numpy() for k in grads}
    record_error(
        "charrnn loss", "numpy vs F.cross_entropy", rel_error(loss, ref_loss.item()), TOL_FLOAT64
    )
    record_error(
        "charrnn loss", "numpy grads vs builtin", grads_error(grads, ref_grads), TOL_FLOAT64
    )
    assert rel_error(h_n, ref_h_n.detach().numpy()) <= TOL_FLOAT64


def model_masks(arrays: dict, num_layers: int, p: float) -> dict | None:
    """The case's masks by name: "lstm.dropout.{k}" after layer k < L-1, "dropout" last."""
    if p == 0:
        return None
    names = [f"lstm.dropout.{k}" for k in range(num_layers - 1)] + ["dropout"]
    return {name: arrays[f"mask{k}"] for k, name in enumerate(names)}


@pytest.mark.parametrize("num_layers, p", [(1, 0.0), (3, 0.5)])
def test_finite_difference_random_directions(num_layers, p, record_error):
    """⟨J·t, c⟩ by central differences along random t (all parameters and h0, c0) = ⟨t, Jᵀc⟩."""
    case = charrnn_case(num_layers, p)
    for seed in range(3):
        arrays, _, rng = _inputs(case, seed, batch=2, seq=5)
        record_error("charrnn", "fd adjoint", adjoint_error(case, arrays, rng), TOL_FD)


def test_float32_no_worse_than_torch(record_float32):
    """float32 against the float64 built-in, torch's float32 as the reference (the float32 standard
    in twinlm/parity/harness.py)."""
    case = charrnn_case(2, 0.3)
    arrays, douts, _ = _inputs(case, seed=3, batch=4, seq=12, hidden=16, emb=8)
    record_float32("charrnn", compare_float32(case, arrays, douts))


def test_state_dict_keys_are_torch_modules_keys():
    """The NumPy params, torch_impl.CharRNN and the model built from torch's own modules share keys
    and shapes; a built-in state_dict loads into both and gives the same logits."""
    cfg = {"vocab_size": 9, "emb_dim": 4, "hidden_size": 5, "num_layers": 2, "drop_rate": 0.0}
    builtin = _BuiltinCharRNN(cfg).double()
    ref_sd = builtin.state_dict()
    ours = torch_impl.CharRNN(cfg, dtype=torch.float64)
    assert list(ours.state_dict()) == list(ref_sd) == list(charrnn_param_shapes(cfg))
    ours.load_state_dict(ref_sd)
    numpy_model = numpy_impl.CharRNN(cfg)
    numpy_model.load_state_dict(ref_sd)
    assert numpy_model.dtype == np.float64
    x = np.random.default_rng(0).integers(0, 9, (2, 4))
    e = builtin.embedding(torch.from_numpy(x))
    ref = builtin.decoder(builtin.lstm(e)[0]).detach().numpy()
    assert rel_error(numpy_model.forward(x)[0], ref) <= TOL_FLOAT64
    assert rel_error(ours(torch.from_numpy(x))[0].detach().numpy(), ref) <= TOL_FLOAT64


def test_shared_initializer():
    """Both backends start from init_charrnn_params; float32 is the float64 init rounded; torch's
    default init distributions (N(0, 1) embedding, U(±1/√H) elsewhere)."""
    cfg = {"vocab_size": 40, "emb_dim": 16, "hidden_size": 64, "num_layers": 2, "drop_rate": 0.0}
    p64 = init_charrnn_params(cfg, seed=3, dtype=np.float64)
    p32 = numpy_impl.CharRNN(cfg, seed=3).params
    torch_params = make_engine("torch", build_charrnn("torch", cfg, 3, "float32")).params()
    for k, v in p64.items():
        assert np.array_equal(p32[k], v.astype(np.float32)), k
        assert np.array_equal(torch_params[k], p32[k]), k
    assert abs(p64["embedding.weight"].std() - 1) < 0.1
    for k, v in p64.items():
        if k != "embedding.weight":
            assert np.abs(v).max() <= 1 / 8 and np.abs(v).max() > 0.9 / 8, k
    assert not np.array_equal(init_charrnn_params(cfg, seed=4)["decoder.bias"], p32["decoder.bias"])


# ---- batches, training, resume -------------------------------------------------------------------

TEXT = "".join(
    f"{i}: the quick brown fox jumps over the lazy dog, {i * i} times.\n" for i in range(40)
)


def run_of(backend: str, s: CharRNNSettings, text=TEXT) -> Run:
    return Run(CharRNNTask(text, s), backend)


def settings(**kw) -> CharRNNSettings:
    base = dict(emb_dim=8, hidden_size=16, num_layers=2, drop_rate=0.25, batch_size=3,
                seq_length=16, steps=100, lr=5e-3, lr_decay=0.9, decay_after=1, clip=1.0,
                eval_every=50, eval_batches=3, seed=7)  # fmt: skip
    return CharRNNSettings(**{**base, **kw})


def test_stream_batches_are_contiguous_streams():
    """Row b of batch k+1 continues row b of batch k; targets are the next byte; no overlaps."""
    ids = np.arange(1000) * 7 % 101  # distinct neighbours, so a shift would show
    B, T = 4, 9
    batches = StreamBatches(ids, B, T)
    assert batches.per_epoch == (len(ids) - 1) // (B * T)
    xs, ys = zip(*(batches.batch(k) for k in range(batches.per_epoch)))
    streams, targets = np.concatenate(xs, axis=1), np.concatenate(ys, axis=1)  # (B, S)
    S = batches.per_epoch * T
    for b in range(B):
        np.testing.assert_array_equal(streams[b], ids[b * S : (b + 1) * S])
        np.testing.assert_array_equal(targets[b], ids[b * S + 1 : (b + 1) * S + 1])
    train, val = split_ids(np.arange(1000))
    assert len(train) == 900 and val[0] == 900


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_carried_state_is_truncated_bptt(backend):
    """Batch 1 from batch 0's carried state gives the logits of one forward over both batches; its
    training step's gradient is that of a forward from a constant state (the truncation)."""
    t = run_of(backend, settings(dtype="float64", drop_rate=0.0, clip=1e9))
    S = t.task.settings.seq_length
    (x0, y0), (x1, y1) = t.task.train.batch(0), t.task.train.batch(1)
    _, carry = t.engine.eval_loss(x0, y0, t.task.initial_carry())
    model = numpy_impl.CharRNN(t.task.cfg, seed=t.task.settings.seed, dtype=np.float64)
    both, _ = model.forward(np.concatenate([x0, x1], axis=1))
    second, _ = model.forward(x1, carry)
    assert rel_error(second, both[:, S:]) <= TOL_FLOAT64
    assert rel_error(model.forward(x1)[0], both[:, S:]) > 1e-3  # the state does carry information
    # The training step from the carried state: gradients stop at the batch start.
    _, grads, _ = model.loss_and_grads(x1, y1, tuple(s.copy() for s in carry))
    loss = t.engine.step(Batch(x1, y1, {}, carry), lr=0.0)[0]
    assert abs(loss - model.loss_and_grads(x1, y1, carry)[0]) <= 1e-12
    if backend == "torch":
        g_torch = {n: p.grad.numpy() for n, p in t.engine.model.named_parameters()}
        assert grads_error(g_torch, grads) <= TOL_FLOAT64


def test_state_carries_within_an_epoch_and_resets_when_the_streams_restart():
    t = run_of("numpy", settings(batch_size=4, seq_length=48))
    seen, step = [], t.engine.step

    def recording_step(batch, lr):  # note the state each batch starts from
        seen.append(batch.state)
        return step(batch, lr)

    t.engine.step = recording_step
    per_epoch = t.task.per_epoch
    for _ in range(per_epoch + 2):
        t.train_step()
    starts = [float(np.abs(h).max()) for h, _ in seen]
    assert starts[0] == 0 and starts[per_epoch] == 0  # each epoch starts from zeros
    assert min(starts[1:per_epoch]) > 0 and starts[-1] > 0  # carried in between


def test_training_trajectory_numpy_vs_torch_float64(record_error):
    """100 steps of truncated BPTT (2 layers, H 16, dropout, clip, lr decay, two epoch boundaries):
    the same losses and final parameters from both backends."""
    s = settings(dtype="float64")
    task = CharRNNTask(TEXT, s)  # one task, two runs: the same batches and masks for both
    runs = {b: Run(task, b) for b in ("numpy", "torch")}
    assert task.per_epoch < 50  # the streams restart (and the state resets) twice
    losses = {b: np.array([t.train_step() for _ in range(s.steps)]) for b, t in runs.items()}
    gap = float(np.max(np.abs(losses["numpy"] - losses["torch"]) / np.abs(losses["torch"])))
    record_error("charrnn trainer", "loss, 100 steps (f64)", gap, TOL_TRAJECTORY)
    p_np, p_t = runs["numpy"].engine.params(), runs["torch"].engine.params()
    worst = max(rel_error(p_np[k], p_t[k]) for k in p_t)
    record_error("charrnn trainer", "params after 100 steps (f64)", worst, TOL_TRAJECTORY)
    carry = max(rel_error(a, b) for a, b in zip(runs["numpy"].carry, runs["torch"].carry))
    record_error("charrnn trainer", "carried state after 100 (f64)", carry, TOL_TRAJECTORY)
    assert losses["numpy"][-10:].mean() < losses["numpy"][:10].mean() - 0.5  # it learns
    assert task.lr(s.steps - 1) < s.lr  # the decay was in effect


# ---- sampling ------------------------------------------------------------------------------------


def test_vocab_round_trip():
    text = "héllo, wörld — ünïcode ✓\n"
    vocab = ByteVocab.from_text(text)
    assert vocab.symbols == bytes(sorted(set(text.encode())))
    ids = vocab.encode(text)
    assert ids.dtype == np.int64 and list(ids) == [vocab.symbols.index(b) for b in text.encode()]
    assert vocab.decode(ids).decode() == text
    every = ByteVocab(bytes(range(256)))
    np.testing.assert_array_equal(every.encode(bytes(range(256))), np.arange(256))
    assert every.decode(np.arange(256)) == bytes(range(256))


def _greedy_reference(engine, vocab: ByteVocab, primer: bytes, n: int) -> bytes:
    """Greedy decoding with the built-in torch modules, re-reading the whole text every step from a
    zero state (no carried state at all)."""
    builtin = _BuiltinCharRNN(engine.model.cfg).double()
    builtin.load_state_dict({k: torch.from_numpy(v).double() for k, v in engine.params().items()})
    ids = list(vocab.encode(primer))
    with torch.no_grad():
        for _ in range(n):
            h = builtin.lstm(builtin.embedding(torch.tensor([ids])))[0]
            ids.append(int(builtin.decoder(h[0, -1]).argmax()))
    return vocab.decode(np.array(ids[len(primer) :]))


def _trained_pair(dtype: str = "float64", steps: int = 30):
    task = CharRNNTask(TEXT, settings(dtype=dtype, steps=steps))
    runs = {b: Run(task, b) for b in ("numpy", "torch")}
    for t in runs.values():
        for _ in range(steps):
            t.train_step()
    return runs


def test_sampling_same_seed_same_bytes_across_backends():
    runs = _trained_pair()
    vocab = runs["numpy"].task.vocab
    out = {
        b: sample(t.engine, vocab, "the ", 120, temperature=1.0, seed=11) for b, t in runs.items()
    }
    assert out["numpy"] == out["torch"]
    assert len(out["numpy"]) == 120
    other_seed = sample(runs["numpy"].engine, vocab, "the ", 120, temperature=1.0, seed=12)
    assert other_seed != out["numpy"]  # the seed matters, so the agreement is not vacuous
    top3 = {b: sample(t.engine, vocab, "", 60, 0.8, seed=1, top_k=3) for b, t in runs.items()}
    assert top3["numpy"] == top3["torch"]


def test_greedy_is_deterministic_and_matches_builtin_reference():
    runs = _trained_pair()
    vocab = runs["numpy"].task.vocab
    primer = b"13: the quick"
    ref = _greedy_reference(runs["numpy"].engine, vocab, primer, 40)
    for b, t in runs.items():
        first = sample(t.engine, vocab, primer, 40, temperature=0.0, seed=1)
        assert sample(t.engine, vocab, primer, 40, temperature=0.0, seed=99) == first, b
        assert first == ref, b


# ---- command line ---------------------------------------------------------------------------------


def test_cli_train_sample_resume(tmp_path, capsys):
    text = tmp_path / "fox.txt"
    text.write_bytes(TEXT.encode())
    out = tmp_path / "run"
    args = ["charrnn", "train", "--backend", "numpy", "--text", str(text), "--dtype", "float64",
            "--hidden-size", "16", "--emb-dim", "8", "--batch-size", "3", "--seq-length", "16",
            "--steps", "4", "--eval-every", "2", "--eval-batches", "2", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    assert (out / "loss.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert "val" in printed and "bpc" in printed and "nats" in printed
    ckpt = str(out / "checkpoint.safetensors")
    more = ["charrnn", "train", "--text", str(text), "--resume", ckpt, "--steps", "6",
            "--out", str(out)]  # fmt: skip
    assert main(more) == 0
    assert resume(ckpt, TEXT).step == 6
    capsys.readouterr()
    samples = {}
    for backend in ("numpy", "torch"):
        cmd = ["charrnn", "sample", "--checkpoint", ckpt, "--backend", backend, "--primer", "the ",
               "--length", "50", "--temperature", "0.7", "--seed", "3"]  # fmt: skip
        assert main(cmd) == 0
        samples[backend] = capsys.readouterr().out
    assert samples["numpy"] == samples["torch"] and samples["numpy"].startswith("the ")
    _, vocab, meta = load_for_sampling(ckpt)
    assert meta["step"] == 6 and len(vocab) == len(set(TEXT.encode()))


# ---- bad input ------------------------------------------------------------------------------------


def test_bad_input_is_named():
    cfg = {"vocab_size": 9, "emb_dim": 4, "hidden_size": 5, "num_layers": 2, "drop_rate": 0.1}
    numpy_model, torch_model = numpy_impl.CharRNN(cfg), torch_impl.CharRNN(cfg)
    bad_ids = np.array([[1, 2, 9]])
    with pytest.raises(ValueError, match=r"x must lie in \[0, 9\), got 9"):
        numpy_model.forward(bad_ids)
    with pytest.raises(ValueError, match=r"x must lie in \[0, 9\), got 9"):
        torch_model(torch.from_numpy(bad_ids))
    for forward, ones, ids in (
        (numpy_model.forward, np.ones, np.array([[1, 2]])),
        (torch_model, torch.ones, torch.tensor([[1, 2]])),
    ):
        with pytest.raises(TypeError, match="dropout_masks must be a dict of named keep-masks"):
            forward(ids, dropout_masks=[ones((1, 2, 5)), ones((1, 2, 5))])  # the old list form
        with pytest.raises(ValueError, match=r"unknown names \['lstm.dropout.1'\]"):
            forward(ids, dropout_masks={"lstm.dropout.1": ones((1, 2, 5))})
        with pytest.raises(
            ValueError, match=r"\['dropout'\] must have shape \(1, 2, 5\), got \(1, 3"
        ):
            forward(ids, dropout_masks={"dropout": ones((1, 3, 5))})
    with pytest.raises(ValueError, match=r"h0 must have shape \(2, 1, 5\)"):
        numpy_model.forward(np.array([[1, 2]]), (np.zeros((1, 1, 5), np.float32),) * 2)
    with pytest.raises(ValueError, match="cfg\\['hidden_size'\\] must be >= 1"):
        numpy_impl.CharRNN({**cfg, "hidden_size": 0})
    with pytest.raises(ValueError, match="cfg must have keys"):
        torch_impl.CharRNN({"vocab_size": 9})
    with pytest.raises(ValueError, match="drop_rate"):
        torch_impl.CharRNN({**cfg, "drop_rate": 1.0})

    with pytest.raises(ValueError, match="text must not be empty"):
        CharRNNTask("", settings())
    with pytest.raises(ValueError, match="seq_length must be >= 1"):
        CharRNNTask(TEXT, settings(seq_length=0))
    with pytest.raises(ValueError, match="fewer than one batch"):
        CharRNNTask(TEXT[:200], settings(batch_size=4, seq_length=50))
    with pytest.raises(ValueError, match="backend must be one of"):
        run_of("jax", settings())

    vocab = ByteVocab.from_text("abc")
    with pytest.raises(
        ValueError, match=r"primer holds bytes outside the 3-byte vocabulary: \[b'z'\]"
    ):
        vocab.encode("abz", "primer")
    with pytest.raises(TypeError, match="text must be str or bytes"):
        vocab.encode(123)
    with pytest.raises(ValueError, match=r"ids must be integers in \[0, 3\)"):
        vocab.decode([0, 3])
    adapter = make_engine("numpy", build_charrnn("numpy", {**cfg, "vocab_size": 3}, 0, "float32"))
    with pytest.raises(ValueError, match="primer holds bytes outside"):
        sample(adapter, vocab, "xyz", 5)
    with pytest.raises(ValueError, match="temperature must be finite and >= 0"):
        sample(adapter, vocab, "ab", 5, temperature=-1.0)
    with pytest.raises(ValueError, match="length must be >= 0"):
        sample(adapter, vocab, "ab", -1)
