"""`twinlm book ch06` against the book's chapter-6 code written here from torch built-ins
(helpers.BookGPTModel with a new nn.Linear head, DataLoader, F.cross_entropy, torch.optim.AdamW,
calc_loss_loader, calc_accuracy_loader, train_classifier_simple), on a small GPT and a synthetic
SMS file (no download, no pretrained weights). The same draws, the same numbers: torch within
1e-5 on every loss, NumPy within 1e-4, the accuracies equal."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import BookGPTModel
from torch.utils.data import DataLoader, TensorDataset

from twinlm.book.ch06 import book_split, read_spam_table, run_ch06
from twinlm.book.stream import BookStream

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py
CFG = {
    "vocab_size": 50257,  # the book pads with 50256
    "context_length": 64,
    "emb_dim": 16,
    "n_heads": 2,
    "n_layers": 2,
    "drop_rate": 0.0,
    "qkv_bias": True,
}
TOL = {"torch": 1e-5, "numpy": 1e-4}


def encode(text: str) -> list[int]:
    return list(text.encode("utf-8"))[:40]


def decode(ids) -> str:
    return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


def write_inputs(tmp_path):
    """A tab-separated SMS file (120 ham, 40 spam; one text in quotes) and a book .pth."""
    rng = np.random.default_rng(0)
    words = "free win call now prize meet lunch home later text reply ok see you".split()
    lines = []
    for i in range(160):
        label = "spam" if i % 4 == 1 else "ham"
        text = " ".join(rng.choice(words, rng.integers(2, 9)))
        lines.append(f"{label}\t{chr(34) + text + chr(34) if i == 7 else text}")
    tsv = tmp_path / "SMSSpamCollection.tsv"
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    torch.manual_seed(0)
    pth = tmp_path / "gpt.pth"
    torch.save(BookGPTModel(CFG).state_dict(), pth)
    (tmp_path / "config.json").write_text(json.dumps({"n_heads": CFG["n_heads"]}))
    return tsv, pth


# ---- the book's code -------------------------------------------------------------------------------


def arrays(rows, max_length=None):
    tokens = [encode(t) for _, t in rows]
    L = max_length or max(len(t) for t in tokens)
    ids = [t[:L] + [50256] * (L - len(t[:L])) for t in tokens]
    return torch.tensor(ids), torch.tensor([label for label, _ in rows])


def calc_loss_loader(loader, model, num_batches):
    total, n = 0.0, min(num_batches, len(loader))
    for i, (x, y) in enumerate(loader):
        if i >= n:
            break
        total += F.cross_entropy(model(x)[:, -1, :], y).item()
    return total / n


@torch.no_grad()
def calc_accuracy_loader(loader, model, num_batches=None):
    model.eval()
    n = len(loader) if num_batches is None else min(num_batches, len(loader))
    correct = examples = 0
    for i, (x, y) in enumerate(loader):
        if i >= n:
            break
        predicted = torch.argmax(model(x)[:, -1, :], dim=-1)
        examples += predicted.shape[0]
        correct += (predicted == y).sum().item()
    return correct / examples


def reference(tsv, pth, epochs):
    train, val, test = book_split(read_spam_table(tsv), 123)
    data = {"train": arrays(train)}
    L = data["train"][0].shape[1]
    data |= {"val": arrays(val, L), "test": arrays(test, L)}
    torch.manual_seed(123)
    loaders = {
        k: DataLoader(TensorDataset(*v), batch_size=8, shuffle=k == "train", drop_last=k == "train")
        for k, v in data.items()
    }
    model = BookGPTModel(CFG)
    model.load_state_dict(torch.load(pth))
    model.eval()
    for p in model.parameters():
        p.requires_grad = False
    torch.manual_seed(123)
    model.out_head = torch.nn.Linear(CFG["emb_dim"], 2)
    for p in [*model.trf_blocks[-1].parameters(), *model.final_norm.parameters()]:
        p.requires_grad = True
    out = {}
    torch.manual_seed(123)
    with torch.no_grad():
        out["losses"] = [calc_loss_loader(loaders[k], model, 5) for k in ("train", "val", "test")]
    torch.manual_seed(123)
    out["accuracy"] = [
        calc_accuracy_loader(loaders[k], model, 10) for k in ("train", "val", "test")
    ]
    torch.manual_seed(123)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.1)
    log, accs, global_step = [], [], -1
    for _ in range(epochs):  # train_classifier_simple
        model.train()
        for x, y in loaders["train"]:
            optimizer.zero_grad()
            F.cross_entropy(model(x)[:, -1, :], y).backward()
            optimizer.step()
            global_step += 1
            if global_step % 50 == 0:
                model.eval()
                with torch.no_grad():
                    log.append([calc_loss_loader(loaders[k], model, 5) for k in ("train", "val")])
                model.train()
        accs.append([calc_accuracy_loader(loaders[k], model, 5) for k in ("train", "val")])
    out |= {"log": log, "accs": accs}
    out["final"] = [calc_accuracy_loader(loaders[k], model) for k in ("train", "val", "test")]
    return out | {"rng": torch.get_rng_state()}


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_ch06_replays_the_books_fine_tuning(backend, tmp_path, record_error):
    tsv, pth = write_inputs(tmp_path)
    want = reference(tsv, pth, epochs=2)
    args = SimpleNamespace(weights=str(pth), data=str(tsv), backend=backend, epochs=2, set=None)
    computed, rows, _, changed = run_ch06(args, BookStream(123), encode, decode, echo=str)
    assert torch.equal(torch.get_rng_state(), want["rng"]), "a different number of draws"
    assert changed == {"weights", "epochs"}  # not the book's run: its values do not apply

    losses = [computed["initial_losses"][k] for k in ("train", "val", "test")]
    logged = [[r["train"], r["val"]] for r in computed["log"]]
    got, ref = np.array(losses + sum(logged, [])), np.array(want["losses"] + sum(want["log"], []))
    assert len(computed["log"]) == len(want["log"]) == 1  # 14 steps: step 0
    err = float(np.abs(got - ref).max())
    record_error(f"book ch06 [{backend}]", "losses vs the book's code", err, TOL[backend])
    accuracy = [computed["initial_accuracy"][k] for k in ("train", "val", "test")]
    assert accuracy == want["accuracy"]
    assert [[a["train"], a["val"]] for a in computed["accuracies"]] == want["accs"]
    assert [computed["final_accuracy"][k] for k in ("train", "val", "test")] == want["final"]
    labels = {r.key: r.ours for r in rows}
    assert (
        labels["data.counts"] == "ham 120, spam 40" and labels["data.balanced"] == "ham 40, spam 40"
    )
    assert labels["data.batches"] == "7 training batches, 1 validation batches, 2 test batches"


def test_book_split_is_pandas_sampling():
    """pandas' df.sample(n, random_state=s) is RandomState(s).choice(len, n, replace=False)."""
    rows = [("ham", f"h{i}") for i in range(30)] + [("spam", f"s{i}") for i in range(12)]
    train, val, test = book_split(rows, 7)
    rs = np.random.RandomState(7)
    ham = [(0, f"h{i}") for i in rs.choice(30, 12, replace=False)]
    balanced = ham + [(1, f"s{i}") for i in range(12)]
    order = np.random.RandomState(7).choice(24, 24, replace=False)
    shuffled = [balanced[i] for i in order]
    assert (train, val, test) == (shuffled[:16], shuffled[16:18], shuffled[18:])


def test_ch06_offline_says_what_it_needs(tmp_path):
    args = SimpleNamespace(weights=None, data=None, backend="numpy", epochs=None, set=None)
    with pytest.raises(FileNotFoundError, match="ch06 needs GPT-2 124M weights .* SMS spam data"):
        run_ch06(args, BookStream(123), encode, decode)
