"""Every public default, against the built-in's default it stands for.

The other tests pass eps, ignore_index, betas… explicitly, so a changed default went unseen
(rmsnorm_forward's eps 1e-6 → 1e-5 passed everything). Two layers here:

1. The signatures: every parameter with a default in numpy_impl, numpy_impl.fast and torch_impl's
   public functions, classes and methods is enumerated with inspect and compared with the table
   below, whose values are read off the built-ins (torch's signatures, transformers' Qwen3Config and
   GPT2Config) wherever one exists. A default that is not in the table fails the test, so a new one
   must be added with its reference.
2. Behaviour: each numeric default is used (the argument omitted) and the result compared with the
   built-in called with its own default, at inputs where the default matters (a variance near eps,
   ignored targets, several AdamW steps).

test_a_mutated_default_is_caught edits __defaults__ / __kwdefaults__ and confirms both layers fail.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import GPT2Config, Qwen3Config

import numpy_impl
import torch_impl
from numpy_impl import fast
from twinlm.shared.config import QWEN3_PRESETS
from twinlm.shared.naming import KERNELS

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _default(fn, name: str):
    return inspect.signature(fn).parameters[name].default


_ADAMW = torch.optim.AdamW
_RNN = torch.nn.modules.rnn.RNNBase
# What GPT-2 and Qwen3 use, from their Hugging Face configs' defaults.
GPT2_GELU = {"gelu_new": "tanh", "gelu": "none"}[GPT2Config().activation_function]
QWEN3_RMS_EPS = Qwen3Config().rms_norm_eps

# (parameter, group) -> (expected default, where it comes from). The group separates parameters of
# one name that stand for different built-ins (a LayerNorm's eps vs an RMSNorm's vs AdamW's).
REFERENCE: dict[tuple[str, str], tuple[object, str]] = {
    ("eps", "layernorm"): (_default(F.layer_norm, "eps"), "F.layer_norm / nn.LayerNorm"),
    ("eps", "rmsnorm"): (QWEN3_RMS_EPS, "Qwen3Config().rms_norm_eps (nn.RMSNorm has none)"),
    ("eps", "adamw"): (_default(_ADAMW, "eps"), "torch.optim.AdamW"),
    ("lr", "adamw"): (_default(_ADAMW, "lr"), "torch.optim.AdamW"),
    ("betas", "adamw"): (_default(_ADAMW, "betas"), "torch.optim.AdamW"),
    ("weight_decay", "adamw"): (_default(_ADAMW, "weight_decay"), "torch.optim.AdamW"),
    ("grad_scale", "adamw"): (1.0, "an unscaled gradient"),
    ("approximate", "gelu"): (GPT2_GELU, "GPT2Config().activation_function"),
    ("ignore_index", "*"): (_default(F.cross_entropy, "ignore_index"), "F.cross_entropy"),
    ("bias", "*"): (None, "F.linear"),
    ("p", "*"): (_default(_RNN, "dropout"), "nn.LSTM/GRU/RNN and nn.MultiheadAttention dropout"),
    ("nonlinearity", "*"): (_default(torch.nn.RNNCell, "nonlinearity"), "nn.RNN / nn.RNNCell"),
    ("num_layers", "*"): (_default(_RNN, "num_layers"), "nn.LSTM/GRU/RNN"),
    ("qkv_bias", "*"): (False, "the book's MultiHeadAttention"),
    # reset_after=True is torch.nn.GRU's convention (r applied to W_hn h + b_hn); nn.GRU has no
    # switch, so the behaviour test below is its reference.
    ("reset_after", "*"): (True, "torch.nn.GRU's convention"),
    # Deliberate departures from torch, the book's: causal attention, batch-first sequences.
    ("causal", "*"): (True, "the book's attention is causal (F.sdpa's is_causal is False)"),
    ("batch_first", "*"): (True, "the book's char-RNN is batch-first (nn.LSTM's is False)"),
    # Not numerics: absent inputs and the project's own choices.
    ("kernels", "*"): (KERNELS[0], "twinlm.shared.naming.KERNELS: the reference"),
    ("last_only", "*"): (True, "generation needs the last position"),
    ("num_classes", "*"): (2, "the book's spam classifier"),
    ("trainable", "*"): ("last-block", "the book's chapter 6"),
    ("position", "*"): ("last", "the book's chapter 6"),
    ("first_trainable", "*"): (0, "every block trainable"),
    ("time_major", "*"): ((), "no mask is time-major"),
}
NONE_MEANS_ABSENT = {  # None: an absent optional input (zeros state, no masks, no rng …)
    "backbone", "device", "dh_n", "dropout_mask", "dropout_masks", "dropout_rng", "dstate", "h",
    "h0", "k", "pad_id", "state",
}  # fmt: skip


def _group(qualname: str, param: str) -> str:
    q = qualname.lower()
    if param == "eps":
        if "adamw" in q:
            return "adamw"
        return "layernorm" if "layernorm" in q else "rmsnorm"  # qwen3_* ops: their RMSNorms
    if param in ("lr", "betas", "weight_decay", "grad_scale"):
        return "adamw"
    if param == "approximate":
        return "gelu"
    return "*"


def public_defaults() -> list[tuple[str, str, object, object]]:
    """(where, parameter, its default, the function) for every public function, class constructor
    and public method of the three op sets."""
    out = []
    for mod in (numpy_impl, fast, torch_impl):
        names = getattr(mod, "__all__", None) or [n for n in dir(mod) if not n.startswith("_")]
        for name in names:
            obj = getattr(mod, name)
            if inspect.isclass(obj):
                fns = [
                    (f"{name}.{m}", f)
                    for m, f in inspect.getmembers(obj, inspect.isfunction)
                    if (m == "__init__" or not m.startswith("_"))
                    and f.__module__.split(".")[0] in ("numpy_impl", "torch_impl", "twinlm")
                ]
            elif inspect.isfunction(obj):
                fns = [(name, obj)]
            else:
                continue
            for qual, fn in fns:
                for p in inspect.signature(fn).parameters.values():
                    if p.default is not inspect.Parameter.empty:
                        out.append((f"{mod.__name__}.{qual}", p.name, p.default, fn))
    return out


def check_signatures() -> None:
    unknown, wrong = [], []
    for where, param, default, _ in public_defaults():
        if param in ("dtype", "seed"):
            continue  # checked by test_dtype_and_seed_defaults
        if param in NONE_MEANS_ABSENT:
            if default is not None:
                wrong.append(f"{where}({param}={default!r}): expected None")
            continue
        key = (param, _group(where, param))
        if key not in REFERENCE:
            unknown.append(f"{where}({param}={default!r})")
            continue
        want, source = REFERENCE[key]
        if default != want or type(default) is not type(want):
            wrong.append(f"{where}({param}={default!r}): {source} says {want!r}")
    assert not unknown, f"defaults with no reference in REFERENCE (add one): {unknown}"
    assert not wrong, "\n".join(wrong)


def test_every_default_matches_its_reference():
    assert len(public_defaults()) > 200  # the enumeration reaches every op set
    check_signatures()


def test_dtype_and_seed_defaults():
    """NumPy models default to float32 (torch's default dtype), torch_impl's to torch's default;
    rope_angles computes in float64 in both."""
    for where, param, default, _ in public_defaults():
        if param == "dtype":
            if "rope_angles" in where:
                assert default in (np.float64, torch.float64), where
            elif where.startswith("numpy_impl"):
                assert np.dtype(default) == np.dtype(str(torch.get_default_dtype())[6:]), where
            else:
                assert default is None, where
        elif param == "seed":
            assert default in (0, None), where


# ---- behaviour: the default used, against the built-in's -----------------------------------------

RNG = np.random.default_rng(7)
D = 8


def _t(a):
    return torch.from_numpy(np.array(a))


def _close(a, b, what: str) -> None:
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    err = np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)
    assert err <= 1e-10, f"{what}: relative error {err:.2e} against the built-in's default"


def _small_variance() -> np.ndarray:
    """Rows whose variance (about 1e-6) is of the size of eps, so that eps changes the result."""
    return 1e-3 * RNG.standard_normal((3, D)) + RNG.standard_normal((3, 1))


def check_layernorm() -> None:
    x, w, b = _small_variance(), RNG.standard_normal(D), RNG.standard_normal(D)
    want = F.layer_norm(_t(x), (D,), _t(w), _t(b))  # its default eps
    _close(numpy_impl.layernorm_forward(x, w, b)[0], want, "numpy layernorm")
    _close(fast.layernorm_forward(x, w, b)[0], want, "fast layernorm")
    _close(torch_impl.layernorm(_t(x), _t(w), _t(b)), want, "torch_impl layernorm")
    m = torch_impl.LayerNorm(D).double()
    with torch.no_grad():
        m.scale.copy_(_t(w)), m.shift.copy_(_t(b))
    _close(m(_t(x)), want, "torch_impl.LayerNorm")


def check_rmsnorm() -> None:
    x, w = 1e-3 * RNG.standard_normal((3, D)), RNG.standard_normal(D)
    ref = torch.nn.RMSNorm(D, eps=QWEN3_RMS_EPS).double()  # Qwen3's RMSNorm: its config's eps
    with torch.no_grad():
        ref.weight.copy_(_t(w))
    want = ref(_t(x))
    _close(numpy_impl.rmsnorm_forward(x, w)[0], want, "numpy rmsnorm")
    _close(fast.rmsnorm_forward(x, w)[0], want, "fast rmsnorm")
    _close(torch_impl.rmsnorm(_t(x), _t(w)), want, "torch_impl rmsnorm")
    m = torch_impl.RMSNorm(D).double()
    with torch.no_grad():
        m.weight.copy_(_t(w))
    _close(m(_t(x)), want, "torch_impl.RMSNorm")
    for name, cfg in QWEN3_PRESETS.items():
        assert cfg["rms_norm_eps"] == QWEN3_RMS_EPS, name


def check_gelu() -> None:
    x = 3.0 * RNG.standard_normal(50)
    want = F.gelu(_t(x), approximate=GPT2_GELU)  # GPT-2's activation, "gelu_new" = tanh
    _close(numpy_impl.gelu_forward(x)[0], want, "numpy gelu")
    _close(fast.gelu_forward(x)[0], want, "fast gelu")
    _close(torch_impl.gelu(_t(x)), want, "torch_impl gelu")
    _close(torch_impl.GELU()(_t(x)), want, "torch_impl.GELU")


def check_cross_entropy() -> None:
    logits = RNG.standard_normal((6, 5))
    targets = np.array([0, -100, 4, -100, 2, 1])  # F.cross_entropy's default ignore_index
    want = F.cross_entropy(_t(logits), _t(targets))
    _close(numpy_impl.cross_entropy_forward(logits, targets)[0], want, "numpy cross entropy")
    _close(fast.cross_entropy_forward(logits, targets)[0], want, "fast cross entropy")
    _close(torch_impl.cross_entropy(_t(logits), _t(targets)), want, "torch_impl cross entropy")


def check_adamw() -> None:
    w0 = RNG.standard_normal(5)
    grads = [RNG.standard_normal(5) for _ in range(3)]
    ref = torch.nn.Parameter(_t(w0))
    opt = torch.optim.AdamW([ref])  # every default
    for g in grads:
        ref.grad = _t(g)
        opt.step()
    ours = [
        ("numpy", numpy_impl.AdamW, lambda a: np.array(a)),
        ("torch_impl", torch_impl.AdamW, _t),
    ]
    for label, cls, conv in ours:
        params = {"w": conv(w0)}
        o = cls(params)
        for g in grads:
            o.step({"w": conv(g)})
        _close(params["w"], ref, f"{label} AdamW")


def check_recurrent_cells() -> None:
    H, I, B = 4, 3, 2
    x, h = RNG.standard_normal((B, I)), RNG.standard_normal((B, H))
    for ref_cls, ours, t_ours in (
        (torch.nn.GRUCell, numpy_impl.gru_cell_forward, torch_impl.gru_cell),
        (torch.nn.RNNCell, numpy_impl.rnn_cell_forward, torch_impl.rnn_cell),
    ):
        ref = ref_cls(I, H).double()  # its default convention / nonlinearity
        w = [
            p.detach().numpy().copy()
            for p in (ref.weight_ih, ref.weight_hh, ref.bias_ih, ref.bias_hh)
        ]
        want = ref(_t(x), _t(h))
        _close(ours(x, h, *w)[0], want, f"numpy {ours.__name__}")
        _close(t_ours(_t(x), _t(h), *map(_t, w)), want, f"torch_impl {t_ours.__name__}")
    for name in ("LSTM", "GRU", "RNN"):  # num_layers: one layer's parameters, as torch's
        ref = getattr(torch.nn, name)(I, H)
        assert set(getattr(numpy_impl, name)(I, H).params) == set(ref.state_dict()), name
        assert set(getattr(torch_impl, name)(I, H).state_dict()) == set(ref.state_dict()), name


def check_attention() -> None:
    q, k, v = (RNG.standard_normal((2, 4, 3)) for _ in range(3))
    want = F.scaled_dot_product_attention(_t(q), _t(k), _t(v), is_causal=True)
    _close(numpy_impl.attention_forward(q, k, v)[0], want, "numpy attention")
    _close(fast.attention_forward(q, k, v)[0], want, "fast attention")
    _close(torch_impl.attention(_t(q), _t(k), _t(v)), want, "torch_impl attention")
    x, w = RNG.standard_normal((2, 3)), RNG.standard_normal((4, 3))
    _close(numpy_impl.linear_forward(x, w)[0], F.linear(_t(x), _t(w)), "numpy linear")
    _close(torch_impl.linear(_t(x), _t(w)), F.linear(_t(x), _t(w)), "torch_impl linear")


BEHAVIOUR = {
    "layernorm": check_layernorm,
    "rmsnorm": check_rmsnorm,
    "gelu": check_gelu,
    "cross_entropy": check_cross_entropy,
    "adamw": check_adamw,
    "recurrent_cells": check_recurrent_cells,
    "attention_linear": check_attention,
}


@pytest.mark.parametrize("name", list(BEHAVIOUR))
def test_default_behaves_as_the_builtin_default(name: str):
    BEHAVIOUR[name]()


# ---- the tests can fail: mutate a default, both layers notice ------------------------------------

# (function whose default to change, parameter, mutant value, the behaviour check that must fail;
# None where no built-in behaviour differs, e.g. a departure the signature table alone pins)
MUTANTS = [
    (numpy_impl.rmsnorm_forward, "eps", 1e-5, "rmsnorm"),
    (torch_impl.rmsnorm, "eps", 1e-5, "rmsnorm"),
    (torch_impl.RMSNorm.__init__, "eps", 1e-5, "rmsnorm"),
    (numpy_impl.layernorm_forward, "eps", 1e-6, "layernorm"),
    (fast.layernorm_forward, "eps", 1e-6, "layernorm"),
    (torch_impl.LayerNorm.__init__, "eps", 1e-6, "layernorm"),
    (numpy_impl.gelu_forward, "approximate", "none", "gelu"),
    (fast.gelu_forward, "approximate", "none", "gelu"),
    (torch_impl.gelu, "approximate", "none", "gelu"),
    (numpy_impl.cross_entropy_forward, "ignore_index", -1, "cross_entropy"),
    (torch_impl.cross_entropy, "ignore_index", -1, "cross_entropy"),
    (numpy_impl.AdamW.__init__, "weight_decay", 0.0, "adamw"),
    (numpy_impl.AdamW.__init__, "betas", (0.9, 0.99), "adamw"),
    (torch_impl.AdamW.__init__, "eps", 1e-6, "adamw"),
    (torch_impl.AdamW.__init__, "lr", 1e-2, "adamw"),
    (numpy_impl.gru_cell_forward, "reset_after", False, "recurrent_cells"),
    (torch_impl.gru_cell, "reset_after", False, "recurrent_cells"),
    (numpy_impl.rnn_cell_forward, "nonlinearity", "relu", "recurrent_cells"),
    (torch_impl.rnn_cell, "nonlinearity", "relu", "recurrent_cells"),
    (numpy_impl.attention_forward, "causal", False, "attention_linear"),
    (torch_impl.attention, "causal", False, "attention_linear"),
    (numpy_impl.lstm_forward, "p", 0.5, None),
    (torch_impl.LSTM.__init__, "batch_first", False, None),
]


def _mutate(monkeypatch, fn, param: str, value) -> None:
    """Change `param`'s default of `fn` in place (positional in __defaults__, keyword-only in
    __kwdefaults__), as an edit of the source would."""
    params = list(inspect.signature(fn).parameters.values())
    p = next(q for q in params if q.name == param)
    if p.kind is inspect.Parameter.KEYWORD_ONLY:
        monkeypatch.setattr(fn, "__kwdefaults__", {**fn.__kwdefaults__, param: value})
        return
    positional = [q for q in params if q.kind is not inspect.Parameter.KEYWORD_ONLY]
    with_default = [q.name for q in positional if q.default is not inspect.Parameter.empty]
    defaults = list(fn.__defaults__)
    defaults[with_default.index(param)] = value
    monkeypatch.setattr(fn, "__defaults__", tuple(defaults))


@pytest.mark.parametrize(
    "fn, param, value, behaviour",
    MUTANTS,
    ids=[f"{fn.__module__}.{fn.__qualname__}-{p}={v!r}" for fn, p, v, _ in MUTANTS],
)
def test_a_mutated_default_is_caught(monkeypatch, fn, param, value, behaviour):
    _mutate(monkeypatch, fn, param, value)
    assert _default(fn, param) == value  # the mutant is live
    with pytest.raises(AssertionError):
        check_signatures()
    if behaviour is not None:  # a refused call (the mutant ignore_index) is caught too
        with pytest.raises((AssertionError, ValueError)):
            BEHAVIOUR[behaviour]()
