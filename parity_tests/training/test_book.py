"""`twinlm book`: the book's recipe replayed in both backends against the book's own code.

The references are the book's functions as printed, written here from torch built-ins only
(GPTDatasetV1 in a torch DataLoader, train_model_simple, calc_loss_loader, evaluate_model,
generate_text_simple, torch.optim.AdamW, F.cross_entropy) around helpers.BookGPTModel (the book's
classes with nn.Dropout). Seeded alike, the replay must print the reference's lines (torch: every
loss within 1e-5, NumPy within 1e-4; a printed digit may differ only where the reference sits that
close to a rounding boundary), draw the same random numbers (torch's generator ends in the same
state), and produce the same samples.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import BookGPTModel
from torch.utils.data import DataLoader, Dataset

from twinlm.book import sampling
from twinlm.book.loader import BookLoader, windows_or_none
from twinlm.book.recipe import BookRecipe, BookTask, log_line, train_model_simple
from twinlm.book.stream import BookStream
from twinlm.training.loop import Run

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py

SEED = 123
CFG = {
    "vocab_size": 256,  # bytes: the test's tokenizer
    "context_length": 16,
    "emb_dim": 32,
    "n_heads": 2,
    "n_layers": 2,
    "drop_rate": 0.1,
    "qkv_bias": False,
}
RECIPE = BookRecipe(cfg=CFG, seed=SEED, epochs=2, sample_tokens=6, start_context="the ")
TOL = {"torch": 1e-5, "numpy": 1e-4}  # on every printed loss


def encode(text: str) -> list[int]:
    return list(text.encode("utf-8"))


def decode(ids) -> str:
    return bytes(ids).decode("utf-8", errors="replace")


def make_text(n_words: int = 90) -> str:
    words = "the a verdict painter donkey sketch Stroud Gisburn said picture".split()
    return " ".join(np.random.default_rng(0).choice(words, n_words))


# ---- the book's code, from torch built-ins ---------------------------------------------------------


class GPTDatasetV1(Dataset):
    def __init__(self, token_ids, max_length, stride):
        self.input_ids, self.target_ids = [], []
        for i in range(0, len(token_ids) - max_length, stride):
            self.input_ids.append(torch.tensor(token_ids[i : i + max_length]))
            self.target_ids.append(torch.tensor(token_ids[i + 1 : i + max_length + 1]))

    def __len__(self):
        return len(self.input_ids)

    def __getitem__(self, idx):
        return self.input_ids[idx], self.target_ids[idx]


def book_loader(ids, batch_size, length, shuffle, drop_last):
    dataset = GPTDatasetV1(ids, length, length)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, num_workers=0
    )


def calc_loss_batch(x, y, model):
    return F.cross_entropy(model(x).flatten(0, 1), y.flatten())


def calc_loss_loader(loader, model, num_batches=None):
    total_loss = 0.0
    if len(loader) == 0:
        return float("nan")
    num_batches = len(loader) if num_batches is None else min(num_batches, len(loader))
    for i, (x, y) in enumerate(loader):
        if i < num_batches:
            total_loss += calc_loss_batch(x, y, model).item()
        else:
            break
    return total_loss / num_batches


def evaluate_model(model, train_loader, val_loader, eval_iter):
    model.eval()
    with torch.no_grad():
        train_loss = calc_loss_loader(train_loader, model, num_batches=eval_iter)
        val_loss = calc_loss_loader(val_loader, model, num_batches=eval_iter)
    model.train()
    return train_loss, val_loss


def generate_text_simple(model, idx, max_new_tokens, context_size):
    for _ in range(max_new_tokens):
        with torch.no_grad():
            logits = model(idx[:, -context_size:])[:, -1, :]
        probas = torch.softmax(logits, dim=-1)
        idx = torch.cat((idx, torch.argmax(probas, dim=-1, keepdim=True)), dim=1)
    return idx


def book_train_model_simple(model, train_loader, val_loader, optimizer, r: BookRecipe):
    log, samples = [], []
    tokens_seen, global_step = 0, -1
    for epoch in range(r.epochs):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = calc_loss_batch(x, y, model)
            loss.backward()
            optimizer.step()
            tokens_seen += x.numel()
            global_step += 1
            if global_step % r.eval_freq == 0:
                train_loss, val_loss = evaluate_model(model, train_loader, val_loader, r.eval_iter)
                log.append((epoch + 1, global_step, tokens_seen, train_loss, val_loss))
        model.eval()
        idx = torch.tensor([encode(r.start_context)])
        ids = generate_text_simple(model, idx, r.sample_tokens, CFG["context_length"])
        samples.append(ids[0].tolist())
        model.train()
    return log, samples


def reference_run(text: str):
    """The notebook's cells: reseed, loaders; reseed, model, AdamW, train_model_simple."""
    split = int(RECIPE.train_ratio * len(text))
    train_ids, val_ids = encode(text[:split]), encode(text[split:])
    torch.manual_seed(SEED)
    L = CFG["context_length"]
    train_loader = book_loader(train_ids, RECIPE.batch_size, L, shuffle=True, drop_last=True)
    val_loader = book_loader(val_ids, RECIPE.batch_size, L, shuffle=False, drop_last=False)
    torch.manual_seed(SEED)
    model = BookGPTModel(CFG)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=RECIPE.lr, weight_decay=RECIPE.weight_decay
    )
    log, samples = book_train_model_simple(model, train_loader, val_loader, optimizer, RECIPE)
    return log, samples, torch.get_rng_state(), model.state_dict()


def replay_run(text: str, backend: str):
    split = int(RECIPE.train_ratio * len(text))
    stream = BookStream(SEED)
    stream.reseed("loaders")
    L, B = CFG["context_length"], RECIPE.batch_size
    train_loader = BookLoader(*windows_or_none(encode(text[:split]), L, L), B, True, True, stream)
    val_loader = BookLoader(*windows_or_none(encode(text[split:]), L, L), B, False, False, stream)
    stream.reseed("training")
    run = Run(BookTask(RECIPE, train_loader, val_loader, stream), backend)
    lines = []
    log, samples = train_model_simple(run, encode, decode, echo=lines.append)
    return log, samples, torch.get_rng_state(), run.engine.params(), lines


def printed(value: float) -> str:
    return f"{value:.3f}"


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_train_model_simple_is_the_books(backend, record_error):
    text = make_text()
    want_log, want_samples, want_rng, want_params = reference_run(text)
    log, samples, rng, params, lines = replay_run(text, backend)

    assert torch.equal(rng, want_rng), "the replay drew a different number of random numbers"
    assert len(log) == len(want_log) >= 6
    worst = 0.0
    for row, (epoch, step, seen, train, val) in zip(log, want_log):
        assert (row["epoch"], row["step"], row["tokens_seen"]) == (epoch, step, seen)
        for ours, ref in ((row["train"], train), (row["val"], val)):
            worst = max(worst, abs(ours - ref))
            # a printed digit may only differ where the reference is within TOL of a boundary
            boundary = abs((ref * 1000) % 1 - 0.5) * 1e-3 < TOL[backend]
            assert printed(ours) == printed(ref) or boundary, (step, ours, ref)
    record_error(
        f"book replay [{backend}]", "printed losses vs the book's code", worst, TOL[backend]
    )
    assert [s["ids"] for s in samples] == want_samples
    assert lines[0].startswith(
        f"Ep 1 (Step 000000): Train loss {printed(want_log[0][3])}, Val loss {printed(want_log[0][4])}"
    )
    err = max(float(np.abs(params[k] - want_params[k].numpy()).max()) for k in params)
    assert err < 1e-3, err  # two epochs of AdamW from the same start, the same batches and masks


def test_book_loader_draws_what_dataloader_draws():
    """Full epochs, evaluation-style partial passes (break after 2 batches), an unshuffled loader
    with a ragged last batch: the same batches, and torch's generator in the same state."""
    ids = encode(make_text(60))
    L = 8
    inputs, targets = windows_or_none(ids, L, L)

    def passes(train, val):
        seen = []
        for _ in range(2):
            seen += [(x.tolist(), y.tolist()) for x, y in train]  # an epoch
            for i, (x, _) in enumerate(train):  # calc_loss_loader(num_batches=2)
                if i >= 2:
                    break
                seen.append(x.tolist())
            seen += [x.tolist() for x, _ in val]
        return seen, torch.get_rng_state()

    torch.manual_seed(7)
    want = passes(
        book_loader(ids, 3, L, shuffle=True, drop_last=True),
        book_loader(ids, 4, L, shuffle=False, drop_last=False),
    )
    torch.manual_seed(7)
    stream = BookStream(7)
    got = passes(
        BookLoader(inputs, targets, 3, True, True, stream),
        BookLoader(inputs, targets, 4, False, False, stream),
    )
    assert got[0] == want[0]
    assert torch.equal(got[1], want[1])
    assert len(BookLoader(inputs, targets, 4, False, False, stream)) == -(-len(inputs) // 4)


def test_dropout_masks_are_the_books_nn_dropout_draws():
    """The masks BookStream draws for one forward, replayed into torch_impl, give the book's
    GPTModel's training-mode output (its own nn.Dropout draws), and use up the same draws."""
    from twinlm.shared.naming import gpt_dropout_mask_shapes

    cfg = {**CFG, "drop_rate": 0.3}
    x = torch.from_numpy(np.random.default_rng(1).integers(0, 256, (3, 11)))
    torch.manual_seed(5)
    book = BookGPTModel(cfg).double().train()
    want = book(x)
    after = torch.get_rng_state()
    stream = BookStream(5)
    stream.reseed("model")
    model = stream.gpt_model(cfg, "torch").double()
    masks = stream.dropout_masks(gpt_dropout_mask_shapes(cfg, 3, 11), 0.3, np.float64)
    assert torch.equal(torch.get_rng_state(), after)
    got = model(x, dropout_masks={k: torch.from_numpy(m) for k, m in masks.items()})
    assert torch.allclose(got, want, rtol=0, atol=1e-12)
    assert 0.5 < np.mean(np.concatenate([m.ravel() for m in masks.values()])) < 0.9


@pytest.mark.parametrize("shape", [(9,), (3, 40)])
def test_multinomial_is_torch_multinomial(shape):
    probs = torch.softmax(torch.randn(shape, generator=torch.Generator().manual_seed(0)), dim=-1)
    torch.manual_seed(11)
    want = [torch.multinomial(probs, 1).squeeze(-1).tolist() for _ in range(200)]
    after = torch.get_rng_state()
    torch.manual_seed(11)
    stream = BookStream(11)
    got = [sampling.multinomial(probs.numpy(), stream).tolist() for _ in range(200)]
    assert got == want
    assert torch.equal(torch.get_rng_state(), after)


def test_log_line_is_the_books_format_with_perplexity():
    line = log_line(1, 0, 9.7814, 9.9329)
    assert line.startswith("Ep 1 (Step 000000): Train loss 9.781, Val loss 9.933   (perplexity ")
    assert line.endswith(f"(perplexity {math.exp(9.7814):,.0f} / {math.exp(9.9329):,.0f})")


SLOW_NUMPY = pytest.param("numpy", marks=pytest.mark.slow)  # opt in: -m slow (see below)


@pytest.mark.parametrize("backend", ["torch", SLOW_NUMPY])
def test_ch04_at_124m_prints_the_books_numbers(backend, request):
    """GPT_CONFIG_124M from the stream: the dropout-on logits of In [25] (4 decimals) and the ids
    of In [32] are the book's, and so is every other row of the chapter.

    torch runs by default (18 s measured on a busy 2-core machine). NumPy builds the 163M
    parameters twice (torch's draws, then its own seeded arrays, overwritten) and runs 124M
    forwards: 74 s measured on the same busy machine, so it is opt-in (`pytest -m slow`);
    `twinlm book ch04 --backend numpy` prints the same table."""
    if backend == "numpy" and "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("the 124M NumPy replay is opt-in: pytest -m slow")
    from twinlm.book.ch04 import run_ch04
    from twinlm.book.table import compare_rows
    from twinlm.data.tokenizer import decode as gpt2_decode
    from twinlm.data.tokenizer import encode as gpt2_encode
    from twinlm.shared.config import GPT_CONFIG_124M

    stream = BookStream(SEED)
    computed, rows = run_ch04(backend, GPT_CONFIG_124M, stream, gpt2_encode, gpt2_decode, echo=str)
    assert computed["generate"]["ids"] == [
        15496,
        11,
        314,
        716,
        27018,
        24086,
        47843,
        30961,
        42348,
        7267,
    ]
    matches = {r.key: r.match for r in compare_rows(rows, "ch04", set())}
    assert set(matches.values()) <= {"yes", "≈"}, matches
    assert len(matches) == 18


def test_book_command_ch05_small(tmp_path, capsys):
    """`twinlm book ch05` end to end on a small config and a short text: the book's lines, the
    table (book values n/a where the config changed, matched where it cannot matter), --json."""
    from twinlm.cli import main

    text = tmp_path / "story.txt"
    text.write_text(make_text(400), encoding="utf-8")
    out = tmp_path / "ch05.json"
    sets = ["emb_dim=16", "n_heads=2", "n_layers=1", "context_length=32", "sample_tokens=4"]
    args = ["book", "ch05", "--backend", "torch", "--text", str(text), "--epochs", "1"]
    ckpt = tmp_path / "book.safetensors"
    assert main([*args, "--set", *sets, "--json", str(out), "--save", str(ckpt)]) == 0
    printed = capsys.readouterr().out
    assert "Ep 1 (Step 000000): Train loss " in printed and "(perplexity " in printed
    assert "In [32] 1,000 draws, T=1" in printed and "| yes" in printed  # the toy cells match
    import json

    got = json.loads(out.read_text(encoding="utf-8"))
    assert set(got) >= {"generate_untrained", "initial_losses", "log", "after_training", "table"}
    assert set(got["log"][0]) == {"epoch", "step", "tokens_seen", "train", "val"}
    assert len(got["after_training"]["ids"]) == len(got["generate_untrained"]["ids"]) + 15
    matches = {r["key"]: r["match"] for r in got["table"]}
    assert matches["log.000000"] == "n/a" and matches["temperature.counts_1"] == "yes"
    assert got["settings"]["changed"] == ["cfg", "epochs", "recipe", "text"]
    score = ["score", "--checkpoint", str(ckpt), "--text", "the painter said", "--png"]
    assert main([*score, str(tmp_path / "score.png"), "--color", "never"]) == 0
    assert "2 tokens scored" in capsys.readouterr().out  # 3 ids, 2 predicted


def test_book_command_errors(tmp_path, capsys, monkeypatch):
    from twinlm.cli import main
    from twinlm.data import download

    def offline(*args, **kwargs):
        raise download.DownloadError("no network")

    monkeypatch.setattr(download, "download", offline)
    monkeypatch.setenv("TWINLM_CACHE", str(tmp_path))
    assert main(["book", "ch05"]) == 2
    assert "ch05 needs the-verdict.txt: run `twinlm data get verdict`" in capsys.readouterr().err
    assert main(["book", "ch06"]) == 2
    assert "ch06 needs GPT-2 124M weights (--weights PATH" in capsys.readouterr().err
    assert main(["book", "ch04", "--set", "emb_dim"]) == 2
    assert "--set takes KEY=VALUE, got 'emb_dim'" in capsys.readouterr().err
    assert main(["book", "ch04", "--set", "lr=0.1"]) == 2
    assert "--set: unknown key 'lr'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # the parser checks every flag (settings.py Integer)
        main(["book", "ch05", "--epochs", "0"])
    assert e.value.code == 2
    assert "argument --epochs: must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(ValueError, match="inputs and targets must hold as many rows, got 3 and 2"):
        BookLoader(np.zeros((3, 4)), np.zeros((2, 4)), 2, False, False, BookStream())


def test_table_matches_yes_approximately_no_and_na():
    from twinlm.book.table import Row, compare_rows, half_unit

    assert half_unit("9.781") == pytest.approx(5e-4) and half_unit("7.4541e-05") == pytest.approx(
        5e-10
    )
    rows = [
        Row("toy.loss", "loss", "10.7722", [10.7722]),
        Row("toy.perplexity", "ppl", "47678.8647", [47678.8647]),  # a float32 ulp away
        Row("initial_losses.train", "train", "10.9876", [10.9876], ("text",)),
        Row(
            "log.000000",
            "log",
            "Ep 1 (Step 000000): Train loss 9.782, Val loss 9.933",
            [1, 0, 9.7821, 9.933],
        ),
        Row("no.such.key", "unknown", "1"),
    ]
    matches = [r.match for r in compare_rows(rows, "ch05", {"text"})]
    assert matches == ["yes", "≈", "n/a", "NO", "n/a"]
