"""The chapter-6 spam classifier (GPT with a new class head): NumPy vs torch_impl vs torch built-ins.

References, each independent of the code under test:
- torch_impl.GPTClassifier with autograd (same weights, same dropout masks replayed);
- the book's recipe from torch built-ins: the whole GPT (F.embedding, F.layer_norm,
  F.scaled_dot_product_attention, F.gelu; helpers.py), the new head on every position (F.linear), then the
  classified position picked by an index built by hand from the known text lengths;
- the same model run on each text alone, unpadded (causal attention: right padding cannot change
  the earlier positions), for the last-non-pad position;
- F.cross_entropy for the loss; a count of the block backwards for where the backward stops.
Weights are perturbed away from the init (biases 0, scales 1), which would hide bugs.
"""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import builtin_gpt_hidden

import numpy_impl
import numpy_impl.gpt as np_gpt  # its gpt_body_backward runs the block backwards of both models
import torch_impl
from twinlm.data.spam import encode_dataset, make_synthetic_spam, random_split
from twinlm.parity.harness import TOL_FLOAT64, Float32Runs, grads_error, rel_error
from twinlm.shared.config import get_config
from twinlm.shared.init import draw_dropout_masks
from twinlm.shared.naming import gpt_dropout_mask_shapes
from twinlm.training.classify import ClassifySettings, ClassifyTask, classify_texts, load_classifier
from twinlm.training.loop import Run

CFG = get_config("test", n_layers=3)  # vocab 67, context 12, emb 16, 2 heads, qkv_bias, dropout 0.1
K = 3  # classes: more than the spam task's two, so no 2-class shortcut can hide
PAD = 66
LENGTHS = np.array([10, 7, 3, 1])  # right-padded to 10
OPTIONS = {  # trainable option -> (k, blocks that train); n_layers = 3
    "head": (None, []),
    "last-block": (None, [2]),
    "last-k": (2, [1, 2]),
    "all": (None, [0, 1, 2]),
}
TOL_TRAJECTORY_FLOAT64 = 1e-9
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


def _expected_trainable(trainable: str, cfg=CFG) -> set[str]:
    """Written out here, apart from twinlm.shared.classifier.trainable_keys."""
    k, blocks = OPTIONS[trainable]
    names = set(numpy_impl.GPTClassifier(cfg, K, trainable="all", pad_id=PAD).params)
    if trainable == "all":
        return names
    keep = ("out_head.",) if trainable == "head" else ("out_head.", "final_norm.")
    keep += tuple(f"trf_blocks.{i}." for i in blocks)
    return {n for n in names if n.startswith(keep)}


def _batch(seed=0):
    """Token ids (4, 10) right-padded to LENGTHS with PAD (no PAD inside a text), labels (4,)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, PAD, (len(LENGTHS), LENGTHS.max()))
    for row, n in zip(idx, LENGTHS):
        row[n:] = PAD
    return idx, rng.integers(0, K, len(LENGTHS))


def _models(trainable, position, dtype=np.float64, seed=0, cfg=CFG):
    """A NumPy and a torch_impl classifier holding the same perturbed weights."""
    k = OPTIONS[trainable][0]
    opts = dict(trainable=trainable, k=k, position=position, pad_id=PAD)
    np_model = numpy_impl.GPTClassifier(cfg, K, **opts, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 100)
    np_model.load_state_dict(
        {n: v + 0.1 * rng.standard_normal(v.shape) for n, v in np_model.params.items()}
    )
    t_dtype = torch.float64 if dtype == np.float64 else torch.float32
    t_model = torch_impl.GPTClassifier(cfg, K, **opts, dtype=t_dtype, backbone=np_model.params)
    t_model.load_state_dict({n: torch.from_numpy(v.copy()) for n, v in np_model.params.items()})
    return np_model, t_model.eval()  # eval: no dropout unless masks are given


def _name(trainable: str, position: str) -> str:
    """Short enough for the summary table's op column."""
    return f"clf {trainable} {'nonpad' if position == 'last-non-pad' else 'last'}"


def _torch_grads(model) -> dict[str, np.ndarray]:
    return {n: p.grad.numpy() for n, p in model.named_parameters() if p.grad is not None}


# ---- forward and gradients, every option ---------------------------------------------------------


@pytest.mark.parametrize("dropout", [False, True], ids=["no-dropout", "dropout"])
@pytest.mark.parametrize("position", ["last", "last-non-pad"])
@pytest.mark.parametrize("trainable", list(OPTIONS))
def test_classifier_numpy_matches_torch_float64(trainable, position, dropout, record_error):
    np_model, t_model = _models(trainable, position)
    idx, labels = _batch()
    B, L = idx.shape
    masks = (
        draw_dropout_masks(
            gpt_dropout_mask_shapes(CFG, B, L),
            np.random.default_rng(7),
            CFG["drop_rate"],
            np.float64,
        )
        if dropout
        else {}
    )
    t_masks = {n: torch.from_numpy(m) for n, m in masks.items()}

    logits = np_model.forward(idx, dropout_masks=masks)  # (B, K)
    dlogits = np.random.default_rng(1).standard_normal(logits.shape)  # random upstream gradient
    grads = np_model.backward(dlogits)
    t_logits = t_model(torch.from_numpy(idx), dropout_masks=t_masks)
    t_logits.backward(torch.from_numpy(dlogits))
    t_grads = _torch_grads(t_model)

    expected = _expected_trainable(trainable)
    assert set(grads) == set(t_grads) == expected  # frozen parameters get no gradient at all
    assert {n for n, p in t_model.named_parameters() if p.requires_grad} == expected
    if dropout:  # the masks drop something and change the logits
        assert rel_error(logits, np_model.forward(idx)) > 1e-3
    name = _name(trainable, position) + (" +drop" if dropout else "")
    record_error(name, "logits vs torch_impl", rel_error(logits, t_logits.detach().numpy()),
                 TOL_FLOAT64)  # fmt: skip
    record_error(name, "grads vs torch_impl", grads_error(grads, t_grads), TOL_FLOAT64)

    # The loss: NumPy's cross entropy and backward against F.cross_entropy and autograd.
    loss, loss_grads = np_model.loss_and_grads(idx, labels, dropout_masks=masks)
    t_model.zero_grad(set_to_none=True)
    t_loss = F.cross_entropy(
        t_model(torch.from_numpy(idx), dropout_masks=t_masks), torch.from_numpy(labels)
    )
    t_loss.backward()
    record_error(name, "loss vs F.cross_entropy", abs(loss - t_loss.item()) / t_loss.item(),
                 TOL_FLOAT64)  # fmt: skip
    record_error(name, "loss grads vs torch", grads_error(loss_grads, _torch_grads(t_model)),
                 TOL_FLOAT64)  # fmt: skip


def _builtin_run(params, idx, labels, position, dtype=torch.float64):
    """The book's recipe from torch built-ins (helpers.py): logits for every position (new head on
    the whole sequence), then pick one. Returns (logits, loss, every parameter's gradient)."""
    tp = {n: torch.tensor(v, dtype=dtype, requires_grad=True) for n, v in params.items()}
    normed = builtin_gpt_hidden(tp, torch.from_numpy(idx), CFG)  # (B, T, C)
    all_logits = F.linear(normed, tp["out_head.weight"], tp["out_head.bias"])  # (B, T, K)
    picked = LENGTHS - 1 if position == "last-non-pad" else np.full(len(idx), idx.shape[1] - 1)
    logits = all_logits[torch.arange(len(idx)), torch.from_numpy(picked)]  # (B, K)
    loss = F.cross_entropy(logits, torch.from_numpy(labels))
    loss.backward()
    return logits.detach().numpy(), loss.item(), {n: v.grad.numpy() for n, v in tp.items()}


@pytest.mark.parametrize("position", ["last", "last-non-pad"])
@pytest.mark.parametrize("trainable", list(OPTIONS))
def test_classifier_matches_book_recipe_from_builtins(trainable, position, record_error):
    """The book: logits for every position (new head on the whole sequence), then pick one."""
    np_model, _ = _models(trainable, position)
    idx, labels = _batch()
    loss, grads = np_model.loss_and_grads(idx, labels)
    logits = np_model.forward(idx)
    ref_logits, ref_loss, ref_grads = _builtin_run(np_model.params, idx, labels, position)
    ref_grads = {n: ref_grads[n] for n in grads}

    name = _name(trainable, position)
    record_error(name, "logits vs built-ins", rel_error(logits, ref_logits), TOL_FLOAT64)
    record_error(name, "loss vs built-ins", abs(loss - ref_loss) / ref_loss, TOL_FLOAT64)
    record_error(name, "grads vs built-ins", grads_error(grads, ref_grads), TOL_FLOAT64)


def test_classifier_float32_no_worse_than_torch(record_float32):
    """float32 in, float32 out; NumPy and torch_impl against the float64 built-in recipe on the same
    rounded weights, the float32 built-in recipe as the reference (the float32 standard in
    twinlm/parity/harness.py). The key biases' gradients, zero in exact arithmetic, are rounding
    noise in every float32 run; the standard judges them like the rest."""
    np32, t32 = _models("all", "last-non-pad", np.float32)
    idx, labels = _batch()
    exact = _builtin_run(np32.params, idx, labels, "last-non-pad")
    ref32 = _builtin_run(np32.params, idx, labels, "last-non-pad", torch.float32)
    logits = np32.forward(idx)
    _, grads = np32.loss_and_grads(idx, labels)
    t_logits = t32(torch.from_numpy(idx))
    F.cross_entropy(t_logits, torch.from_numpy(labels)).backward()
    assert logits.dtype == np.float32 and all(g.dtype == np.float32 for g in grads.values())
    t_got = (t_logits.detach().numpy(), _torch_grads(t32))
    runs = Float32Runs()
    for name, got in (("numpy", (logits, grads)), ("torch_impl", t_got)):
        runs[name, "logits"].add([got[0]], [ref32[0]], [exact[0]])
        runs[name, "grads"].add(got[1], ref32[2], exact[2])
    record_float32("clf all", runs)


def test_both_backends_start_identical_and_keep_the_book_keys():
    np_model = numpy_impl.GPTClassifier(CFG, 2, seed=5, pad_id=PAD)
    t_model = torch_impl.GPTClassifier(CFG, 2, seed=5, pad_id=PAD)
    state = t_model.state_dict()
    assert list(state) == list(np_model.params)  # the book's keys, in its order
    assert all(np.array_equal(state[n].numpy(), v) for n, v in np_model.params.items())
    W, b = np_model.params["out_head.weight"], np_model.params["out_head.bias"]
    assert W.shape == (2, CFG["emb_dim"]) and b.shape == (2,)
    bound = 1 / np.sqrt(CFG["emb_dim"])  # torch.nn.Linear's default init range
    assert np.abs(W).max() <= bound and np.abs(b).max() <= bound and np.abs(b).min() > 0
    # A given backbone is copied: training the classifier never moves the caller's GPT.
    gpt = numpy_impl.GPTModel(CFG, seed=3, dtype=np.float64)
    clf = numpy_impl.GPTClassifier(CFG, 2, backbone=gpt.params, dtype=np.float64, pad_id=PAD)
    assert np.array_equal(clf.params["tok_emb.weight"], gpt.params["tok_emb.weight"])
    clf.params["tok_emb.weight"] += 1.0
    assert not np.array_equal(clf.params["tok_emb.weight"], gpt.params["tok_emb.weight"])


# ---- where the NumPy backward stops ------------------------------------------------------------------


@pytest.mark.parametrize("trainable", list(OPTIONS))
def test_numpy_backward_stops_at_the_first_trainable_block(trainable, monkeypatch):
    calls = []
    real = np_gpt.transformer_block_backward

    def counting(dy, cache):
        if trainable == "head":
            raise AssertionError("a block backward ran with only the head trainable")
        calls.append(1)
        return real(dy, cache)

    monkeypatch.setattr(np_gpt, "transformer_block_backward", counting)
    np_model, _ = _models(trainable, "last")
    idx, labels = _batch()
    _, grads = np_model.loss_and_grads(idx, labels)
    blocks = OPTIONS[trainable][1]
    assert len(calls) == len(blocks)
    embed_cache, block_caches = np_model._cache[2]  # gpt_body_forward's cache
    assert len(block_caches) == len(blocks)  # frozen blocks keep no cache
    assert (embed_cache is not None) == (trainable == "all")


# ---- last token vs last non-pad token ------------------------------------------------------------------


def test_last_non_pad_picks_the_last_real_token():
    idx, _ = _batch()
    idx[0, 4] = PAD  # a pad id inside a text does not end it
    want = LENGTHS - 1  # built by hand from the lengths the batch was made with
    assert np.array_equal(numpy_impl.token_positions(idx, "last-non-pad", PAD), want)
    assert (
        torch_impl.token_positions(torch.from_numpy(idx), "last-non-pad", PAD).tolist()
        == want.tolist()
    )
    assert numpy_impl.token_positions(idx, "last", PAD).tolist() == [9] * 4

    # Classifying the padded batch at the last non-pad token = classifying each text alone, unpadded.
    np_model, t_model = _models("last-block", "last-non-pad")
    last_model, _ = _models("last-block", "last")
    logits = np_model.forward(idx)
    t_logits = t_model(torch.from_numpy(idx)).detach().numpy()
    for row, n in enumerate(LENGTHS):
        alone = last_model.forward(idx[row : row + 1, :n])  # (1, K), no padding
        assert rel_error(logits[row], alone[0]) < 1e-13
        assert rel_error(t_logits[row], alone[0]) < 1e-13
    # The book's last token is a pad token for every shorter text, and changes their logits.
    padded_last = last_model.forward(idx)
    assert rel_error(padded_last[0], logits[0]) < 1e-13  # the full-length text: same position
    assert all(rel_error(padded_last[r], logits[r]) > 1e-3 for r in (1, 2, 3))


# ---- fine-tuning trajectories ------------------------------------------------------------------------


def _train_pair(trainable, steps, seed=0):
    """Both backends, same init, same batches and dropout masks, AdamW (book: wd 0.1)."""
    cfg = {**CFG, "qkv_bias": False}  # key-bias grads are rounding noise; see test_gpt_training.py
    np_model, t_model = _models(trainable, "last-non-pad", cfg=cfg, seed=seed)
    init = np_model.state_dict()
    np_opt = numpy_impl.AdamW({n: np_model.params[n] for n in np_model.trainable_keys}, lr=3e-3,
                     weight_decay=0.1)  # fmt: skip
    t_opt = torch.optim.AdamW([p for p in t_model.parameters() if p.requires_grad], lr=3e-3,
                              weight_decay=0.1, foreach=False)  # fmt: skip
    rng = np.random.default_rng(seed)
    losses, t_losses = [], []
    for _ in range(steps):
        lengths = rng.integers(1, 13, 6)
        idx = rng.integers(0, PAD, (6, 12))
        idx[np.arange(12) >= lengths[:, None]] = PAD
        labels = idx[:, 0] % K  # learnable: the first token decides
        masks = draw_dropout_masks(
            gpt_dropout_mask_shapes(cfg, 6, 12), rng, cfg["drop_rate"], np.float64
        )
        loss, grads = np_model.loss_and_grads(idx, labels, dropout_masks=masks)
        np_opt.step(grads)
        losses.append(loss)
        t_opt.zero_grad(set_to_none=True)
        t_masks = {n: torch.from_numpy(m) for n, m in masks.items()}
        t_loss = F.cross_entropy(
            t_model(torch.from_numpy(idx), dropout_masks=t_masks), torch.from_numpy(labels)
        )
        t_loss.backward()
        t_opt.step()
        t_losses.append(t_loss.item())
    t_params = {n: v.detach().numpy() for n, v in t_model.state_dict().items()}
    return init, np.array(losses), np_model.params, np.array(t_losses), t_params


@pytest.mark.parametrize("trainable", ["last-block", "head"])
def test_frozen_backbone_trajectory_float64(trainable, record_error):
    start = time.perf_counter()
    init, losses, params, t_losses, t_params = _train_pair(trainable, 50)
    print(f"\n50 steps ({trainable}, both backends): {time.perf_counter() - start:.2f} s")
    trained = _expected_trainable(trainable, {**CFG, "qkv_bias": False})
    for n in init:
        if n in trained:  # the run is a real one: every trainable tensor moved
            assert not np.array_equal(params[n], init[n])
        else:  # frozen: bit for bit unchanged, in both backends (no weight decay either)
            assert np.array_equal(params[n], init[n]), n
            assert np.array_equal(t_params[n], init[n]), n
    assert losses[-10:].mean() < losses[:10].mean()
    loss_gap = float(np.max(np.abs(losses - t_losses) / np.abs(t_losses)))
    param_gap = max(rel_error(params[n], t_params[n]) for n in trained)
    name = f"clf {trainable}"
    record_error(name, "loss, 50 steps (f64)", loss_gap, TOL_TRAJECTORY_FLOAT64)
    record_error(name, "trained params, 50 steps", param_gap, TOL_TRAJECTORY_FLOAT64)


# ---- a separable text task, end to end ------------------------------------------------------------


def _words(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text.lower())


def _synthetic_data(n=200):
    """make_synthetic_spam texts with a word-level vocabulary (88 words; pad = 88), 70/10/20."""
    vocab = {w: i for i, w in enumerate(sorted({w for _, t in make_synthetic_spam(2000) for w in
                                                _words(t)}))}  # fmt: skip
    pad = len(vocab)

    def encode(text):
        return [vocab[w] for w in _words(text)]

    train, val, test = random_split(make_synthetic_spam(n, seed=0), 0.7, 0.1, seed=1)
    train_ds = encode_dataset(train, None, pad, encode)
    L = train_ds.max_length
    data = (train_ds, encode_dataset(val, L, pad, encode), encode_dataset(test, L, pad, encode))
    return data, pad, encode


def test_synthetic_spam_both_backends_learn_it(record_error):
    data, pad, encode = _synthetic_data()
    results = {}
    for backend in ("numpy", "torch"):
        s = ClassifySettings(
            preset="test", trainable="last-block", position="last-non-pad", pad_id=pad,
            dtype="float64", epochs=5, batch_size=8, lr=1e-3, eval_every=10, eval_batches=2,
            seed=0, overrides=dict(vocab_size=pad + 1, context_length=data[0].max_length),
        )  # fmt: skip
        task = ClassifyTask(s, encode=encode, data=data)
        run = Run(task, backend)
        epoch_seconds = []
        for _ in range(s.epochs):
            start = time.perf_counter()
            for _ in range(task.per_epoch):
                run.train_step()
            epoch_seconds.append(time.perf_counter() - start)
        logits, labels = task.predict(run.engine, task.test_ds)
        results[backend] = logits, labels, run.history["step_loss"]
        acc = float((logits.argmax(1) == labels).mean())
        print(f"\n{backend}: test accuracy {acc:.1%}, {np.mean(epoch_seconds):.3f} s per epoch")
        assert acc >= 0.95
    (logits, labels, losses), (t_logits, t_labels, t_losses) = results["numpy"], results["torch"]
    assert np.array_equal(labels, t_labels)
    assert np.array_equal(logits.argmax(1), t_logits.argmax(1))  # identical predictions
    record_error("clf synthetic", "test logits (f64)", rel_error(logits, t_logits),
                 TOL_TRAJECTORY_FLOAT64)  # fmt: skip
    gap = float(np.max(np.abs(np.array(losses) - t_losses) / np.abs(t_losses)))
    record_error("clf synthetic", "step losses (f64)", gap, TOL_TRAJECTORY_FLOAT64)


def test_cli_train_and_predict(tmp_path, capsys):
    """`twinlm classify train` on the synthetic set (real tokenizer, tiny preset), then predict."""
    from twinlm.cli import main

    out = tmp_path / "run"
    args = ["classify", "train", "--backend", "numpy", "--synthetic-size", "60", "--epochs", "1",
            "--eval-every", "2", "--eval-batches", "1", "--trainable", "head", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "test confusion matrix" in printed and "true spam" in printed
    for name in ("classifier.safetensors", "loss.png", "accuracy.png", "confusion.png"):
        assert (out / name).stat().st_size > 0
    ckpt = str(out / "classifier.safetensors")
    assert main(["classify", "predict", "--checkpoint", ckpt, "--text", "hello there"]) == 0
    label, prob, text = capsys.readouterr().out.strip().split("\t")
    assert label in ("ham", "spam") and 0.5 <= float(prob) <= 1 and text == "hello there"
    # Both backends load the checkpoint and agree.
    texts = ["WIN a FREE prize now", "see you at the station"]
    np_model, meta = load_classifier(ckpt, "numpy")
    t_model, _ = load_classifier(ckpt, "torch")
    a, b = classify_texts(np_model, meta, texts), classify_texts(t_model, meta, texts)
    assert [x[0] for x in a] == [x[0] for x in b]
    assert np.allclose([x[1] for x in a], [x[1] for x in b], rtol=1e-5)


# ---- bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model_cls", [numpy_impl.GPTClassifier, torch_impl.GPTClassifier], ids=["numpy", "torch"]
)
def test_bad_options(model_cls):
    with pytest.raises(ValueError, match=r"trainable must be one of .*got 'last-two'"):
        model_cls(CFG, 2, trainable="last-two")
    for k in (0, 4):
        with pytest.raises(ValueError, match=rf"k must be in \[1, n_layers=3\], got {k}"):
            model_cls(CFG, 2, trainable="last-k", k=k, pad_id=PAD)
    with pytest.raises(ValueError, match=r"k must be given with trainable='last-k'"):
        model_cls(CFG, 2, trainable="last-k", pad_id=PAD)
    with pytest.raises(ValueError, match=r"k is only used with trainable='last-k'"):
        model_cls(CFG, 2, trainable="head", k=1, pad_id=PAD)
    with pytest.raises(TypeError, match=r"k must be an integer, got float 1.0"):
        model_cls(CFG, 2, trainable="last-k", k=1.0, pad_id=PAD)
    with pytest.raises(ValueError, match=r"num_classes must be >= 2.*got 1"):
        model_cls(CFG, 1, pad_id=PAD)
    for pad_id in (-1, 67, 50256):  # 50256, the default, is outside the test vocabulary
        with pytest.raises(ValueError, match=rf"pad_id must be a token id in \[0, vocab_size=67\), got {pad_id}"):  # fmt: skip
            model_cls(CFG, 2, pad_id=pad_id)
    with pytest.raises(ValueError, match=r"position must be one of .*got 'first'"):
        model_cls(CFG, 2, position="first", pad_id=PAD)


def test_bad_inputs():
    np_model, t_model = _models("last-block", "last-non-pad")
    idx, labels = _batch()
    idx[2] = PAD
    with pytest.raises(ValueError, match=r"idx row 2 holds only pad tokens \(66\)"):
        np_model.forward(idx)
    with pytest.raises(ValueError, match=r"idx row 2 holds only pad tokens \(66\)"):
        t_model(torch.from_numpy(idx))
    idx, _ = _batch()
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\), got 3"):
        np_model.loss_and_grads(idx, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"labels must have shape \(4\), got \(3,\)"):
        np_model.loss_and_grads(idx, labels[:3])
    with pytest.raises(
        ValueError, match=r"idx has sequence length 13, more than context_length 12"
    ):
        np_model.forward(np.zeros((1, 13), dtype=np.int64))
    with pytest.raises(ValueError, match=r"dlogits must have shape \(4, 3\)"):
        np_model.forward(idx)
        np_model.backward(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"dropout_masks has unknown names \['drop_head'\]"):
        np_model.forward(idx, dropout_masks={"drop_head": np.ones((4, 10, 16))})
    with pytest.raises(ValueError, match=r"preset 'test' has vocab_size 67, fewer than the GPT-2"):
        ClassifyTask(ClassifySettings(preset="test", pad_id=0))


def test_cli_errors_name_the_problem(tmp_path, capsys):
    from twinlm.cli import main

    out = ["--out", str(tmp_path / "run")]
    assert main(["classify", "train", "--trainable", "last-k", "--k", "5", *out]) == 2
    err = capsys.readouterr().err
    assert "twinlm classify train: error: k must be in [1, n_layers=2], got 5" in err
    missing = ["classify", "predict", "--checkpoint", "/nonexistent/c.safetensors", "--text", "hi"]
    assert main(missing) == 2
    assert "twinlm classify predict: error: checkpoint not found" in capsys.readouterr().err


@pytest.mark.parametrize("module", [numpy_impl, torch_impl], ids=["numpy", "torch"])
def test_classifier_constructors(module):
    """One constructor serves both classifiers: each pads with its tokenizer's <|endoftext|> by
    default, takes any other pad_id, and refuses the other architecture's config."""
    gpt_cfg = {**CFG, "vocab_size": 50257, "n_layers": 1}
    qwen3_cfg = {**get_config("qwen3-test"), "vocab_size": 151936, "n_layers": 1}
    assert module.GPTClassifier(gpt_cfg).pad_id == 50256
    assert module.Qwen3Classifier(qwen3_cfg).pad_id == 151643
    assert module.Qwen3Classifier(qwen3_cfg, pad_id=7, position="last-non-pad").pad_id == 7
    with pytest.raises(ValueError, match=r"cfg is missing Qwen3 keys \['n_kv_heads'"):
        module.Qwen3Classifier(gpt_cfg)
    with pytest.raises(ValueError, match=r"cfg is missing keys \['drop_rate', 'qkv_bias'\]"):
        module.GPTClassifier(qwen3_cfg)
