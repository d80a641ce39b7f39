"""torch_impl's modules follow one dropout rule (torch_impl/dropout.py): given masks are used as
they are, in either mode; without masks, training mode draws them with torch's generator exactly as
the book's modules (nn.Dropout) and torch.nn.LSTM(dropout=p) draw theirs; eval mode draws nothing.

References: torch.nn.Dropout itself, the book's chapter 3-4 classes as printed (helpers.py), and
torch's own nn.LSTM / nn.Embedding / nn.Dropout / nn.Linear. Seeded alike, a module and its
reference must give the same outputs (float64, ≤ 1e-10) and leave torch's generator in the same
state (the same number of draws), so the book's random stream is preserved.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import BookGPTModel, BookMultiHeadAttention, BookTransformerBlock
from torch import nn

import torch_impl
from twinlm.parity.harness import TOL_FLOAT64, grads_error, rel_error
from twinlm.shared.config import get_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py
CFG = get_config("test", drop_rate=0.3)
# nn.LSTM warns that dropout with one layer does nothing: the one-layer cases check exactly that.
ONE_LAYER_DROPOUT = pytest.mark.filterwarnings(
    "ignore:dropout option adds dropout"
)  # vocab 67, context 12, emb 16, 2 heads, 2 layers


def _same_draws(ours, ref, seed: int = 7):
    """ref() and ours() each from torch.manual_seed(seed); asserts they leave the generator in the
    same state. Returns (ours' result, ref's result)."""
    torch.manual_seed(seed)
    want = ref()
    after = torch.get_rng_state()
    torch.manual_seed(seed)
    got = ours()
    assert torch.equal(torch.get_rng_state(), after), "a different number of random draws"
    return got, want


def _flat(out) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out.detach()]
    return [t for o in out for t in _flat(o)]


def _record(record_error, op: str, got, want) -> float:
    err = max(rel_error(a.numpy(), b.numpy()) for a, b in zip(_flat(got), _flat(want), strict=True))
    record_error(op, "train-mode draws vs reference", err, TOL_FLOAT64)
    return err


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("p", [0.1, 0.5])
def test_draw_dropout_masks_is_what_nn_dropout_draws(p, dtype):
    shapes = {"drop_emb": (2, 5, 6), "att.dropout": (2, 3, 5, 5), "one": (1,), "vec": (7,)}
    ours, ref = _same_draws(
        lambda: torch_impl.draw_dropout_masks(shapes, p, dtype),
        lambda: {k: nn.Dropout(p)(torch.ones(s, dtype=dtype)) != 0 for k, s in shapes.items()},
    )
    assert list(ours) == list(shapes)
    for k, mask in ours.items():
        assert mask.dtype == dtype and mask.shape == shapes[k]
        assert torch.equal(mask, ref[k].to(dtype)), k
    every = torch.cat([m.ravel() for m in ours.values()])
    assert 0 < float(every.mean()) < 1  # some kept, some dropped


def test_multihead_attention_draws_the_books_mask(record_error):
    torch.manual_seed(0)
    book = BookMultiHeadAttention(6, 8, 10, 0.4, 2, qkv_bias=True).double().train()
    ours = torch_impl.MultiHeadAttention(6, 8, 10, 0.4, 2, qkv_bias=True).double().train()
    ours.load_state_dict(book.state_dict())
    x = torch.randn(3, 7, 6, dtype=torch.float64)
    got, want = _same_draws(lambda: ours(x), lambda: book(x))
    _record(record_error, "MultiHeadAttention", got, want)
    assert rel_error(got.detach().numpy(), ours.eval()(x).detach().numpy()) > 1e-2  # it dropped


def test_transformer_block_draws_the_books_masks(record_error):
    torch.manual_seed(0)
    book = BookTransformerBlock(CFG).double().train()
    ours = torch_impl.TransformerBlock(CFG).double().train()
    ours.load_state_dict(book.state_dict())
    x = torch.randn(2, 9, CFG["emb_dim"], dtype=torch.float64)
    got, want = _same_draws(lambda: ours(x), lambda: book(x))
    _record(record_error, "TransformerBlock", got, want)
    assert rel_error(got.detach().numpy(), ours.eval()(x).detach().numpy()) > 1e-2


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_gpt_model_is_the_books_model_weights_and_draws(qkv_bias, record_error):
    """torch.manual_seed(s); GPTModel(cfg) creates the book's parameters in the book's order (so the
    same weights, bit for bit); in training mode it draws the book's masks. Gradients agree too."""
    cfg = {**CFG, "qkv_bias": qkv_bias}
    torch.manual_seed(123)
    book = BookGPTModel(cfg)
    torch.manual_seed(123)
    ours = torch_impl.GPTModel(cfg)
    state = {k: v for k, v in book.state_dict().items() if not k.endswith("att.mask")}
    assert list(ours.state_dict()) == list(state)
    for k, v in ours.state_dict().items():
        assert torch.equal(v, state[k]), k

    book.double().train()
    ours.double().train()
    idx = torch.from_numpy(np.random.default_rng(0).integers(0, cfg["vocab_size"], (3, 11)))
    got, want = _same_draws(lambda: ours(idx), lambda: book(idx))
    _record(record_error, "GPTModel", got, want)
    dlogits = torch.randn_like(want)
    grads = {}
    for name, model, logits in (("ours", ours, got), ("book", book, want)):
        logits.backward(dlogits)
        grads[name] = {k: p.grad.numpy() for k, p in model.named_parameters()}
    err = grads_error(grads["ours"], grads["book"])  # floored: the key bias's grad is ~0
    record_error("GPTModel", "train-mode draws, grads vs book", err, TOL_FLOAT64)
    with torch.no_grad():
        assert rel_error(got.detach().numpy(), ours.eval()(idx).numpy()) > 1e-2


@pytest.mark.parametrize("trainable", ["all", "last-block"])
def test_classifier_draws_the_books_masks(trainable, record_error):
    """The book's chapter-6 model (GPTModel with out_head = Linear(C, K), last token)."""
    K = 3
    torch.manual_seed(5)
    book = BookGPTModel(CFG)
    book.out_head = nn.Linear(CFG["emb_dim"], K)
    book.double().train()
    ours = torch_impl.GPTClassifier(CFG, K, trainable=trainable, pad_id=0, dtype=torch.float64)
    ours.load_state_dict(book.state_dict())
    ours.train()
    idx = torch.from_numpy(np.random.default_rng(1).integers(1, CFG["vocab_size"], (4, 8)))
    got, want = _same_draws(lambda: ours(idx), lambda: book(idx)[:, -1, :])
    _record(record_error, f"GPTClassifier {trainable}", got, want)


@ONE_LAYER_DROPOUT
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("num_layers", [1, 3])
def test_lstm_draws_what_torch_nn_lstm_draws(num_layers, batch_first, record_error):
    """torch.nn.LSTM applies its between-layer dropout to its time-major output, so the module
    draws (T, B, H) masks whatever its layout."""
    I, H, B, T, p = 4, 5, 3, 6, 0.4
    torch.manual_seed(0)
    ref = nn.LSTM(I, H, num_layers, batch_first=batch_first, dropout=p).double().train()
    ours = torch_impl.LSTM(I, H, num_layers, batch_first=batch_first).double().train()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=torch.float64)
    state = tuple(torch.randn(num_layers, B, H, dtype=torch.float64) for _ in range(2))
    got, want = _same_draws(lambda: ours(x, state, p=p), lambda: ref(x, state))
    _record(record_error, f"LSTM L={num_layers}", got, want)
    if num_layers > 1:
        assert rel_error(got[0].detach().numpy(), ours.eval()(x, state)[0].detach().numpy()) > 1e-2


@ONE_LAYER_DROPOUT
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("kind", ["gru", "rnn_tanh", "rnn_relu"])
def test_gru_and_rnn_draw_what_torch_nn_draws(kind, batch_first, record_error):
    """torch.nn.GRU / RNN(dropout=p) draw like nn.LSTM: time-major (T, B, H) masks."""
    I, H, B, T, L, p = 4, 5, 3, 6, 3, 0.4
    torch.manual_seed(0)
    if kind == "gru":
        ref = nn.GRU(I, H, L, batch_first=batch_first, dropout=p)
        ours = torch_impl.GRU(I, H, L, batch_first)
    else:
        nl = kind.removeprefix("rnn_")
        ref = nn.RNN(I, H, L, nonlinearity=nl, batch_first=batch_first, dropout=p)
        ours = torch_impl.RNN(I, H, L, nl, batch_first)
    ref, ours = ref.double().train(), ours.double().train()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn((B, T, I) if batch_first else (T, B, I), dtype=torch.float64)
    h0 = torch.randn(L, B, H, dtype=torch.float64)
    got, want = _same_draws(lambda: ours(x, h0, p=p), lambda: ref(x, h0))
    _record(record_error, f"{kind} L={L}", got, want)
    assert rel_error(got[0].detach().numpy(), ours.eval()(x, h0)[0].detach().numpy()) > 1e-2


@pytest.mark.parametrize("cell", ["gru", "rnn_relu"])
def test_charrnn_with_other_cells_draws_what_torch_modules_draw(cell, record_error):
    cfg = {"vocab_size": 11, "emb_dim": 4, "hidden_size": 6, "num_layers": 2, "drop_rate": 0.35}
    torch.manual_seed(0)
    ref = _TorchCharRNN(cfg).double().train()
    layers = nn.GRU if cell == "gru" else nn.RNN
    kwargs = {} if cell == "gru" else {"nonlinearity": "relu"}
    ref.lstm = layers(4, 6, 2, batch_first=True, dropout=0.35, **kwargs).double()
    ours = torch_impl.CharRNN({**cfg, "cell": cell}, dtype=torch.float64).train()
    core = cell.split("_")[0]
    ours.load_state_dict({k.replace("lstm.", f"{core}."): v for k, v in ref.state_dict().items()})
    x = torch.from_numpy(np.random.default_rng(2).integers(0, 11, (3, 7)))
    h0 = torch.randn(2, 3, 6, dtype=torch.float64)
    got, want = _same_draws(lambda: ours(x, (h0,)), lambda: ref(x, h0))
    _record(record_error, f"CharRNN {cell}", (got[0], got[1][0]), want)


class _TorchCharRNN(nn.Module):
    """char-RNN from torch's own modules, dropout inside nn.LSTM and before the decoder."""

    def __init__(self, cfg):
        super().__init__()
        V, D, H, L = cfg["vocab_size"], cfg["emb_dim"], cfg["hidden_size"], cfg["num_layers"]
        self.embedding = nn.Embedding(V, D)
        self.lstm = nn.LSTM(D, H, L, batch_first=True, dropout=cfg["drop_rate"])
        self.dropout = nn.Dropout(cfg["drop_rate"])
        self.decoder = nn.Linear(H, V)

    def forward(self, x, state):
        h, state_n = self.lstm(self.embedding(x), state)
        return self.decoder(self.dropout(h)), state_n


@ONE_LAYER_DROPOUT
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_charrnn_draws_what_torch_modules_draw(num_layers, record_error):
    cfg = {
        "vocab_size": 11,
        "emb_dim": 4,
        "hidden_size": 6,
        "num_layers": num_layers,
        "drop_rate": 0.35,
    }
    torch.manual_seed(0)
    ref = _TorchCharRNN(cfg).double().train()
    ours = torch_impl.CharRNN(cfg, dtype=torch.float64).train()
    ours.load_state_dict(ref.state_dict())
    x = torch.from_numpy(np.random.default_rng(2).integers(0, 11, (3, 7)))
    state = tuple(torch.randn(num_layers, 3, 6, dtype=torch.float64) for _ in range(2))
    got, want = _same_draws(lambda: ours(x, state), lambda: ref(x, state))
    _record(record_error, f"CharRNN L={num_layers}", got, want)
    assert rel_error(got[0].detach().numpy(), ours.eval()(x, state)[0].detach().numpy()) > 1e-2


# ---- given masks, eval mode, p = 0: no draws --------------------------------------------------------


def _modules():
    """(module, input, kwargs) for every module with its own dropout."""
    torch.manual_seed(0)
    idx = torch.from_numpy(np.random.default_rng(3).integers(1, CFG["vocab_size"], (2, 6)))
    rnn_cfg = {"vocab_size": 9, "emb_dim": 3, "hidden_size": 4, "num_layers": 2, "drop_rate": 0.3}
    return {
        "TransformerBlock": (torch_impl.TransformerBlock(CFG), torch.randn(2, 6, 16), {}),
        "GPTModel": (torch_impl.GPTModel(CFG), idx, {}),
        "GPTClassifier": (torch_impl.GPTClassifier(CFG, 2, pad_id=0), idx, {}),
        "CharRNN": (torch_impl.CharRNN(rnn_cfg), idx % 9, {}),
        "LSTM": (torch_impl.LSTM(3, 4, 2), torch.randn(2, 6, 3), {"p": 0.3}),
    }


@pytest.mark.parametrize("name", list(_modules()))
def test_given_masks_and_eval_mode_draw_nothing(name):
    """In training mode an empty dict (for the LSTM layer, a list of None) is 'no dropout anywhere';
    eval mode without masks is the same; neither touches torch's generator. Without masks, training
    mode does draw."""
    module, x, kwargs = _modules()[name]
    empty = [None] if name == "LSTM" else {}
    outputs, states = [], []
    for mode, masks in (("eval", None), ("train", empty)):
        module.train(mode == "train")
        state = torch.get_rng_state()
        outputs.append(_flat(module(x, dropout_masks=masks, **kwargs)))
        assert torch.equal(torch.get_rng_state(), state), f"{mode} mode drew random numbers"
        states.append(state)
    assert all(torch.equal(a, b) for a, b in zip(*outputs, strict=True))
    drawn = _flat(module.train()(x, **kwargs))
    assert not torch.equal(torch.get_rng_state(), states[-1])
    assert not all(torch.equal(a, b) for a, b in zip(drawn, outputs[0], strict=True))


def test_given_masks_are_replayed_in_either_mode_and_a_missing_name_means_no_dropout():
    block = torch_impl.TransformerBlock(CFG).double()
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    mask = (torch.rand(2, 6, 16) >= 0.3).double()
    params = {k: v.detach() for k, v in block.named_parameters()}
    want = torch_impl.transformer_block(x, params, CFG["n_heads"], {"drop_shortcut.ff": mask}, 0.3)
    for training in (True, False):
        got = block.train(training)(x, dropout_masks={"drop_shortcut.ff": mask})
        assert torch.equal(got.detach(), want)  # one code path: the module is the functional block
    with pytest.raises(ValueError, match=r"dropout_masks has unknown names \['drop_emb'\]"):
        block(x, dropout_masks={"drop_emb": mask})
    with pytest.raises(ValueError, match=r"dropout_masks\['att.dropout'\] must have shape"):
        block(x, dropout_masks={"att.dropout": mask})
