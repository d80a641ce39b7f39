"""The library API refuses bad calls at its public entry points (DESIGN.md, Errors): a TypeError or
ValueError whose message names the argument, never a deep AttributeError/IndexError/RuntimeError
or a silent result. One table: public function × bad-value class, on both backends (and the fast
NumPy path where it has its own op). Each case asserts the exception type and that the message
names the argument. The good calls beside them (float32 and float64, eps = 0 and lr = 0 where
torch's built-ins allow them) must still pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import torch

import numpy_impl
import torch_impl
from numpy_impl import fast
from twinlm.generation import NumpyLM, TorchLM
from twinlm.shared.config import get_config
from twinlm.shared.kv_cache import KVCache
from twinlm.shared.naming import sub_dict

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RNG = np.random.default_rng(0)
F64 = RNG.standard_normal((2, 3, 4))  # (B, T, D)
W = RNG.standard_normal((5, 4))  # linear weight (out, in)
D = F64.shape[-1]


@dataclass(frozen=True)
class Bad:
    id: str
    call: Callable[[], object]
    exc: type[Exception]
    arg: str  # the argument the message must name


def _t(a):
    return torch.from_numpy(np.asarray(a))


# Each backend's view of the same calls: numpy arrays in, or torch tensors in.
BACKENDS = {
    "numpy": dict(arr=np.asarray, other=_t),
    "torch": dict(arr=_t, other=np.asarray),
}

OPS = {
    "numpy": dict(
        linear=lambda x, w, b=None: numpy_impl.linear_forward(x, w, b),
        softmax=numpy_impl.softmax_forward,
        layernorm=numpy_impl.layernorm_forward,
        rmsnorm=numpy_impl.rmsnorm_forward,
        gelu=numpy_impl.gelu_forward,
        silu=numpy_impl.silu_forward,
        rope=numpy_impl.rope_forward,
        swiglu=numpy_impl.swiglu_forward,
        cross_entropy=numpy_impl.cross_entropy_forward,
        embedding=numpy_impl.embedding_forward,
        attention=numpy_impl.attention_forward,
        dropout=numpy_impl.dropout_forward,
    ),
    "fast": dict(
        layernorm=fast.layernorm_forward,
        gelu=fast.gelu_forward,
        cross_entropy=fast.cross_entropy_forward,
        attention=fast.attention_forward,
    ),
    "torch": dict(
        linear=torch_impl.linear,
        softmax=torch_impl.softmax,
        layernorm=torch_impl.layernorm,
        rmsnorm=torch_impl.rmsnorm,
        gelu=torch_impl.gelu,
        silu=torch_impl.silu,
        rope=torch_impl.rope,
        swiglu=torch_impl.swiglu,
        cross_entropy=torch_impl.cross_entropy,
        embedding=torch_impl.embedding,
        attention=torch_impl.attention,
        dropout=torch_impl.dropout,
    ),
}


def _dtype_cases(name: str, call: Callable, x: np.ndarray, arr, arg: str = "x") -> list[Bad]:
    """x as int, complex, a list, and a 0-d array."""
    return [
        Bad(f"{name}-{arg}-int", lambda: call(arr((x * 10).astype(np.int64))), TypeError, arg),
        Bad(f"{name}-{arg}-complex", lambda: call(arr(x.astype(np.complex128))), TypeError, arg),
        Bad(f"{name}-{arg}-list", lambda: call(x.tolist()), TypeError, arg),
    ]


def _eps_cases(name: str, call: Callable) -> list[Bad]:
    return [
        Bad(f"{name}-eps-nan", lambda: call(math.nan), ValueError, "eps"),
        Bad(f"{name}-eps-negative", lambda: call(-1e-5), ValueError, "eps"),
        Bad(f"{name}-eps-inf", lambda: call(math.inf), ValueError, "eps"),
        Bad(f"{name}-eps-str", lambda: call("1e-5"), TypeError, "eps"),
    ]


def op_cases(kind: str) -> list[Bad]:
    ops = OPS[kind]
    arr = BACKENDS["numpy" if kind == "fast" else kind]["arr"]
    x, w, b = arr(F64), arr(W), arr(W[:, 0].copy())
    x32 = arr(F64.astype(np.float32))
    ones = arr(np.ones(D))
    cases: list[Bad] = []
    p = f"{kind}-"
    if "linear" in ops:
        lin = ops["linear"]
        cases += _dtype_cases(p + "linear", lambda a: lin(a, w, b), F64, arr)
        cases += [
            Bad(p + "linear-mixed", lambda: lin(x32, w, b), TypeError, "weight"),
            Bad(
                p + "linear-weight-int",
                lambda: lin(x, arr(W.astype(np.int64)), b),
                TypeError,
                "weight",
            ),
            Bad(p + "linear-bias-int", lambda: lin(x, w, arr(np.arange(5))), TypeError, "bias"),
            Bad(p + "linear-x-0d", lambda: lin(arr(np.float64(1.0)), w, b), ValueError, "x"),
        ]
    if "softmax" in ops:
        cases += _dtype_cases(p + "softmax", ops["softmax"], F64, arr)
        cases.append(
            Bad(p + "softmax-0d", lambda: ops["softmax"](arr(np.float64(1.0))), ValueError, "x")
        )
    if "layernorm" in ops:
        ln = ops["layernorm"]
        cases += _dtype_cases(p + "layernorm", lambda a: ln(a, ones, ones), F64, arr)
        cases += _eps_cases(p + "layernorm", lambda e: ln(x, ones, ones, e))
        cases.append(Bad(p + "layernorm-mixed", lambda: ln(x32, ones, ones), TypeError, "scale"))
    if "rmsnorm" in ops:
        rms = ops["rmsnorm"]
        cases += _dtype_cases(p + "rmsnorm", lambda a: rms(a, ones), F64, arr)
        cases += _eps_cases(p + "rmsnorm", lambda e: rms(x, ones, e))
        cases.append(Bad(p + "rmsnorm-mixed", lambda: rms(x32, ones), TypeError, "weight"))
    if "gelu" in ops:
        cases += _dtype_cases(p + "gelu", ops["gelu"], F64, arr)
    if "silu" in ops:
        cases += _dtype_cases(p + "silu", ops["silu"], F64, arr)
    if "rope" in ops:
        cos = arr(np.ones((3, 2)))
        rope = ops["rope"]
        cases += _dtype_cases(p + "rope", lambda a: rope(a, cos, cos), F64, arr)
        cases.append(Bad(p + "rope-mixed", lambda: rope(x32, cos, cos), TypeError, "cos"))
    if "swiglu" in ops:
        sw = {
            "gate_proj.weight": arr(np.ones((6, D))),
            "up_proj.weight": arr(np.ones((6, D))),
            "down_proj.weight": arr(np.ones((D, 6))),
        }
        cases += _dtype_cases(p + "swiglu", lambda a: ops["swiglu"](a, sw), F64, arr)
        cases.append(
            Bad(p + "swiglu-mixed", lambda: ops["swiglu"](x32, sw), TypeError, "gate_proj")
        )
    if "cross_entropy" in ops:
        ce = ops["cross_entropy"]
        targets = arr(np.array([[0, 1, 2], [3, 0, 1]]))
        cases += _dtype_cases(p + "cross_entropy", lambda a: ce(a, targets), F64, arr, "logits")
        cases += [
            Bad(p + "ce-targets-float", lambda: ce(x, arr(np.zeros((2, 3)))), TypeError, "targets"),
            Bad(
                p + "ce-targets-vocab",
                lambda: ce(x, arr(np.full((2, 3), D))),
                ValueError,
                "targets",
            ),
            Bad(p + "ce-targets-list", lambda: ce(x, [[0, 1, 2], [3, 0, 1]]), TypeError, "targets"),
        ]
    if "embedding" in ops:
        emb = ops["embedding"]
        ids = arr(np.array([[0, 4], [1, 2]]))
        cases += [
            Bad(p + "embedding-ids-float", lambda: emb(arr(np.zeros((2, 2))), w), TypeError, "ids"),
            Bad(p + "embedding-ids-vocab", lambda: emb(arr(np.array([[5]])), w), ValueError, "ids"),
            Bad(p + "embedding-ids-list", lambda: emb([[0, 1]], w), TypeError, "ids"),
            Bad(
                p + "embedding-weight-int",
                lambda: emb(ids, arr(np.ones((5, 4), np.int64))),
                TypeError,
                "weight",
            ),
        ]
    if "attention" in ops:
        att = ops["attention"]
        cases += _dtype_cases(p + "attention", lambda a: att(a, x, x), F64, arr, "q")
        cases.append(Bad(p + "attention-mixed", lambda: att(x, x32, x32), TypeError, "k"))
    if "dropout" in ops:
        dr = ops["dropout"]
        mask = arr(np.ones_like(F64))
        cases += _dtype_cases(p + "dropout", lambda a: dr(a, mask, 0.5), F64, arr)
        cases += [
            Bad(p + "dropout-p-nan", lambda: dr(x, mask, math.nan), ValueError, "p"),
            Bad(p + "dropout-p-one", lambda: dr(x, mask, 1.0), ValueError, "p"),
        ]
    return cases


def module_cases() -> list[Bad]:
    """torch_impl's norm modules check eps when built, as torch.nn's do not."""
    cases = []
    for name, cls in (("LayerNorm", torch_impl.LayerNorm), ("RMSNorm", torch_impl.RMSNorm)):
        cases += _eps_cases(f"torch-{name}", lambda e, cls=cls: cls(D, e))
    return cases


def adamw_cases() -> list[Bad]:
    cases = []
    for kind, make in (
        ("numpy", lambda: {"w": np.zeros(3)}),
        ("fast", lambda: {"w": np.zeros(3)}),
        ("torch", lambda: {"w": torch.zeros(3)}),
    ):
        if kind == "torch":
            cls = torch_impl.AdamW
        else:
            kernels = "fast" if kind == "fast" else "reference"

            def cls(params, kernels=kernels, **kw):
                return numpy_impl.AdamW(params, kernels=kernels, **kw)

        bad = {
            "lr": [math.nan, math.inf, -1e-3, "0.1"],
            "eps": [math.nan, math.inf, -1e-8],
            "weight_decay": [math.nan, math.inf, -0.1],
            "betas": [(1.0, 0.999), (0.9, 1.0), (-0.1, 0.999), (math.nan, 0.999), (0.9,), 0.9],
        }
        for arg, values in bad.items():
            for v in values:
                exc = TypeError if isinstance(v, str) or v == 0.9 or v == (0.9,) else ValueError
                cases.append(
                    Bad(
                        f"{kind}-AdamW-{arg}={v!r}",
                        lambda cls=cls, make=make, arg=arg, v=v: cls(make(), **{arg: v}),
                        exc,
                        arg,
                    )
                )

                # the same setting in a state_dict being loaded (a checkpoint's)
                def load(cls=cls, make=make, arg=arg, v=v):
                    opt = cls(make())
                    opt.load_state_dict({**opt.state_dict(), arg: v})

                cases.append(Bad(f"{kind}-AdamW.load_state_dict-{arg}={v!r}", load, exc, arg))
    return cases


# ---- models: token ids in, of the right backend -------------------------------------------------

GPT_CFG = get_config("test", drop_rate=0.0)
QWEN3_CFG = get_config("qwen3-test")
CHAR_CFG = {"vocab_size": 11, "emb_dim": 4, "hidden_size": 5, "num_layers": 1, "drop_rate": 0.0}


def _models():
    """(label, backend, forward, vocab, context, name of the ids argument)."""
    n_gpt, t_gpt = (
        numpy_impl.GPTModel(GPT_CFG, dtype=np.float64),
        torch_impl.GPTModel(GPT_CFG, seed=0),
    )
    n_q, t_q = numpy_impl.Qwen3Model(QWEN3_CFG, dtype=np.float64), torch_impl.Qwen3Model(QWEN3_CFG)
    n_c, t_c = numpy_impl.CharRNN(CHAR_CFG), torch_impl.CharRNN(CHAR_CFG)
    n_gc = numpy_impl.GPTClassifier(GPT_CFG, pad_id=0, dtype=np.float64)
    t_gc = torch_impl.GPTClassifier(GPT_CFG, pad_id=0)
    n_qc = numpy_impl.Qwen3Classifier(QWEN3_CFG, pad_id=0, dtype=np.float64)
    t_qc = torch_impl.Qwen3Classifier(QWEN3_CFG, pad_id=0)
    V, C = GPT_CFG["vocab_size"], GPT_CFG["context_length"]
    return [
        ("GPTModel", "numpy", n_gpt.forward, V, C, "idx"),
        ("GPTModel", "torch", t_gpt, V, C, "idx"),
        ("Qwen3Model", "numpy", n_q.forward, V, C, "idx"),
        ("Qwen3Model", "torch", t_q, V, C, "idx"),
        ("GPTClassifier", "numpy", n_gc.forward, V, C, "idx"),
        ("GPTClassifier", "torch", t_gc, V, C, "idx"),
        ("Qwen3Classifier", "numpy", n_qc.forward, V, C, "idx"),
        ("Qwen3Classifier", "torch", t_qc, V, C, "idx"),
        ("CharRNN", "numpy", n_c.forward, CHAR_CFG["vocab_size"], None, "x"),
        ("CharRNN", "torch", t_c, CHAR_CFG["vocab_size"], None, "x"),
    ]


MODELS = _models()


IDS = np.array([[1, 2, 3], [4, 5, 6]])


def model_cases() -> list[Bad]:
    cases = []
    ids = IDS
    for label, kind, fwd, V, C, arg in MODELS:
        arr, other = BACKENDS[kind]["arr"], BACKENDS[kind]["other"]
        p = f"{kind}-{label}-"
        cases += [
            Bad(p + "list", lambda fwd=fwd: fwd(ids.tolist()), TypeError, arg),
            Bad(p + "other-backend", lambda fwd=fwd, o=other: fwd(o(ids)), TypeError, arg),
            Bad(
                p + "empty-batch",
                lambda fwd=fwd, a=arr: fwd(a(np.zeros((0, 3), np.int64))),
                ValueError,
                arg,
            ),
            Bad(
                p + "empty-seq",
                lambda fwd=fwd, a=arr: fwd(a(np.zeros((2, 0), np.int64))),
                ValueError,
                arg,
            ),
            Bad(
                p + "float-ids",
                lambda fwd=fwd, a=arr: fwd(a(ids.astype(np.float32))),
                TypeError,
                arg,
            ),
            Bad(p + "1d", lambda fwd=fwd, a=arr: fwd(a(ids[0])), ValueError, arg),
            Bad(p + "id-vocab", lambda fwd=fwd, a=arr, V=V: fwd(a(ids * 0 + V)), ValueError, arg),
            Bad(p + "id-negative", lambda fwd=fwd, a=arr: fwd(a(-ids)), ValueError, arg),
        ]
        if C is not None:
            long = np.zeros((1, C + 1), np.int64)
            cases.append(
                Bad(
                    p + "seq-context",
                    lambda fwd=fwd, a=arr, long=long: fwd(a(long)),
                    ValueError,
                    arg,
                )
            )
    return cases


def _layers():
    out = []
    for name in ("LSTM", "GRU", "RNN"):
        n = getattr(numpy_impl, name)(3, 4, dtype=np.float32)
        t = getattr(torch_impl, name)(3, 4)  # float32, batch_first
        out += [(name, "numpy", n.forward), (name, "torch", t)]
    return out


LAYERS = _layers()


def layer_cases() -> list[Bad]:
    cases = []
    x = RNG.standard_normal((2, 5, 3)).astype(np.float32)
    for name, kind, fwd in LAYERS:
        arr, other = BACKENDS[kind]["arr"], BACKENDS[kind]["other"]
        p = f"{kind}-{name}-"
        cases += [
            Bad(
                p + "int", lambda fwd=fwd, a=arr: fwd(a((x * 10).astype(np.int64))), TypeError, "x"
            ),
            Bad(
                p + "complex", lambda fwd=fwd, a=arr: fwd(a(x.astype(np.complex64))), TypeError, "x"
            ),
            Bad(p + "mixed", lambda fwd=fwd, a=arr: fwd(a(x.astype(np.float64))), TypeError, "x"),
            Bad(p + "list", lambda fwd=fwd: fwd(x.tolist()), TypeError, "x"),
            Bad(p + "other-backend", lambda fwd=fwd, o=other: fwd(o(x)), TypeError, "x"),
            Bad(p + "empty-batch", lambda fwd=fwd, a=arr: fwd(a(x[:0])), ValueError, "x"),
            Bad(p + "empty-seq", lambda fwd=fwd, a=arr: fwd(a(x[:, :0])), ValueError, "x"),
            Bad(p + "2d", lambda fwd=fwd, a=arr: fwd(a(x[0])), ValueError, "x"),
        ]
    return cases


# ---- Qwen3's block ops (eps reaches their RMSNorms), GQA, the recurrent cells -----------------------


def qwen3_op_cases() -> list[Bad]:
    cfg = QWEN3_CFG
    params = sub_dict(numpy_impl.Qwen3Model(cfg, dtype=np.float64).params, "model.layers.0.")
    cos, sin = numpy_impl.rope_angles(np.arange(3), cfg["head_dim"], cfg["rope_base"], np.float64)
    x = np.ones((2, 3, cfg["emb_dim"]))
    heads = (cfg["n_heads"], cfg["n_kv_heads"])
    cases = []
    for kind, ops, conv in (
        ("numpy", (numpy_impl.qwen3_block_forward, numpy_impl.qwen3_attention_forward,
                   numpy_impl.qwen3_qkv_forward), np.asarray),
        ("torch", (torch_impl.qwen3_block, torch_impl.qwen3_attention, torch_impl.qwen3_qkv), _t),
    ):  # fmt: skip
        p = {k: conv(v) for k, v in params.items()}
        for fn, pp in zip(ops, (p, sub_dict(p, "self_attn."), sub_dict(p, "self_attn."))):
            args = (conv(x), pp, *heads, conv(cos), conv(sin))
            cases += _eps_cases(f"{kind}-{fn.__name__}", lambda e, fn=fn, a=args: fn(*a, e))
            x_int = conv(x.astype(np.int64))
            int_call = lambda fn=fn, a=args, xi=x_int: fn(xi, *a[1:])  # noqa: E731
            cases.append(Bad(f"{kind}-{fn.__name__}-x-int", int_call, TypeError, "x"))
    q, k = np.ones((1, 4, 3, 2)), np.ones((1, 2, 3, 2))
    for kind, gqa, conv in (
        ("numpy", numpy_impl.grouped_query_attention_forward, np.asarray),
        ("torch", torch_impl.grouped_query_attention, _t),
    ):
        cases += _dtype_cases(
            f"{kind}-gqa", lambda a, g=gqa, c=conv: g(a, c(k), c(k)), q, conv, "q"
        )
        cases.append(
            Bad(f"{kind}-gqa-mixed", lambda g=gqa, c=conv: g(c(q), c(k.astype(np.float32)), c(k)),
                TypeError, "k")
        )  # fmt: skip
    return cases


def cell_cases() -> list[Bad]:
    B, I, H = 2, 3, 4
    rng = np.random.default_rng(5)
    x, h = rng.standard_normal((B, I)), rng.standard_normal((B, H))
    cases = []
    for kind, conv, cells in (
        ("numpy", np.asarray, (("lstm_cell", numpy_impl.lstm_cell_forward, 4),
                               ("gru_cell", numpy_impl.gru_cell_forward, 3),
                               ("rnn_cell", numpy_impl.rnn_cell_forward, 1))),
        ("torch", _t, (("lstm_cell", torch_impl.lstm_cell, 4), ("gru_cell", torch_impl.gru_cell, 3),
                       ("rnn_cell", torch_impl.rnn_cell, 1))),
    ):  # fmt: skip
        for name, fn, g in cells:
            w = [conv(rng.standard_normal(s)) for s in ((g * H, I), (g * H, H), (g * H,), (g * H,))]
            states = (conv(h), conv(h)) if g == 4 else (conv(h),)

            def call(a, fn=fn, w=w, states=states):
                return fn(a, *states, *w)

            cases += _dtype_cases(f"{kind}-{name}", call, x, conv)
            cases.append(Bad(f"{kind}-{name}-mixed", lambda c=call, cv=conv: c(cv(x.astype(np.float32))), TypeError, "x"))  # fmt: skip
    return cases


# ---- a numpy model's targets, and the KV-cached forward of both backends -------------------------


def target_cases() -> list[Bad]:
    ids = IDS
    cases = []
    models = [
        ("GPTModel", numpy_impl.GPTModel(GPT_CFG, dtype=np.float64), "targets"),
        (
            "GPTModel-fast",
            numpy_impl.GPTModel(GPT_CFG, dtype=np.float64, kernels="fast"),
            "targets",
        ),
        ("Qwen3Model", numpy_impl.Qwen3Model(QWEN3_CFG, dtype=np.float64), "targets"),
        ("CharRNN", numpy_impl.CharRNN(CHAR_CFG), "targets"),
    ]
    for label, m, arg in models:
        p = f"numpy-{label}.loss_and_grads-"
        V = m.cfg["vocab_size"]
        cases += [
            Bad(p + "list", lambda m=m: m.loss_and_grads(ids, ids.tolist()), TypeError, arg),
            Bad(p + "torch", lambda m=m: m.loss_and_grads(ids, _t(ids)), TypeError, arg),
            Bad(p + "float", lambda m=m: m.loss_and_grads(ids, ids * 1.0), TypeError, arg),
            Bad(p + "shape", lambda m=m: m.loss_and_grads(ids, ids[:, :2]), ValueError, arg),
            Bad(p + "vocab", lambda m=m, V=V: m.loss_and_grads(ids, ids * 0 + V), ValueError, arg),
        ]
    labels = np.array([0, 1])
    classifiers = (
        ("GPTClassifier", numpy_impl.GPTClassifier, GPT_CFG),
        ("Qwen3Classifier", numpy_impl.Qwen3Classifier, QWEN3_CFG),
    )
    for label, cls, cfg in classifiers:
        m = cls(cfg, pad_id=0, dtype=np.float64)
        p = f"numpy-{label}.loss_and_grads-"
        cases += [
            Bad(p + "list", lambda m=m: m.loss_and_grads(ids, [0, 1]), TypeError, "labels"),
            Bad(p + "torch", lambda m=m: m.loss_and_grads(ids, _t(labels)), TypeError, "labels"),
            Bad(p + "float", lambda m=m: m.loss_and_grads(ids, labels * 1.0), TypeError, "labels"),
            Bad(p + "shape", lambda m=m: m.loss_and_grads(ids, labels[:1]), ValueError, "labels"),
            Bad(p + "class", lambda m=m: m.loss_and_grads(ids, labels + 1), ValueError, "labels"),
        ]
    return cases


def cached_cases() -> list[Bad]:
    ids = IDS
    cases = []
    for kind, fc, empty, conv, other in (
        ("numpy", numpy_impl.forward_cached, NumpyLM.empty, np.asarray, _t),
        ("torch", torch_impl.forward_cached, TorchLM.empty, _t, np.asarray),
    ):
        for arch, model_kind, fwd, *_ in MODELS:
            if arch not in ("GPTModel", "Qwen3Model") or model_kind != kind:
                continue
            model = fwd if kind == "torch" else fwd.__self__
            cfg = model.cfg

            def run(a, model=model, fc=fc, empty=empty, cfg=cfg, batch=2):
                return fc(model, a, KVCache(cfg["n_layers"], batch, cfg["context_length"], empty))

            p = f"{kind}-{arch}.forward_cached-"
            long = np.zeros((2, cfg["context_length"] + 1), np.int64)
            cases += [
                Bad(p + "list", lambda r=run: r(ids.tolist()), TypeError, "idx"),
                Bad(p + "other-backend", lambda r=run, o=other: r(o(ids)), TypeError, "idx"),
                Bad(p + "float", lambda r=run, c=conv: r(c(ids * 1.0)), TypeError, "idx"),
                Bad(p + "empty-batch", lambda r=run, c=conv: r(c(ids[:0])), ValueError, "idx"),
                Bad(
                    p + "vocab",
                    lambda r=run, c=conv, V=cfg["vocab_size"]: r(c(ids * 0 + V)),
                    ValueError,
                    "idx",
                ),  # fmt: skip
                Bad(p + "context", lambda r=run, c=conv, long=long: r(c(long)), ValueError, "idx"),
                Bad(p + "cache-batch", lambda r=run, c=conv: r(c(ids[:1])), ValueError, "idx"),
            ]
    return cases


CASES = (
    op_cases("numpy")
    + op_cases("fast")
    + op_cases("torch")
    + module_cases()
    + adamw_cases()
    + model_cases()
    + layer_cases()
    + qwen3_op_cases()
    + cell_cases()
    + target_cases()
    + cached_cases()
)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_call_is_refused_naming_the_argument(case: Bad):
    with pytest.raises(case.exc) as info:
        case.call()
    assert case.arg in str(info.value), f"message does not name {case.arg!r}: {info.value}"


def test_cases_cover_every_class():
    """The table's size, so a shrinking table is noticed (report: before/after counts)."""
    assert len(CASES) >= 450, len(CASES)


# ---- good calls still pass -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["numpy", "fast", "torch"])
def test_good_calls_pass(kind: str, dtype):
    ops = OPS[kind]
    arr = BACKENDS["numpy" if kind == "fast" else kind]["arr"]
    x, ones = arr(F64.astype(dtype)), arr(np.ones(D, dtype))
    ids = arr(np.array([[0, 1, 2], [3, 0, 1]]))
    for name, call in ops.items():
        if name == "linear":
            call(x, arr(W.astype(dtype)), arr(W[:, 0].astype(dtype)))
            call(x, arr(W.astype(dtype)))
        elif name in ("softmax", "gelu", "silu"):
            call(x)
        elif name == "layernorm":
            call(x, ones, ones)
            call(x, ones, ones, 0.0)  # F.layer_norm accepts eps = 0
            call(x, ones, ones, 1)  # an int eps is a number
        elif name == "rmsnorm":
            call(x, ones)
            call(x, ones, 0.0)  # nn.RMSNorm(eps=0.0) likewise
        elif name == "rope":
            c = arr(np.ones((3, 2), dtype))
            call(x, c, c)
        elif name == "swiglu":
            sw = {
                "gate_proj.weight": arr(np.ones((6, D), dtype)),
                "up_proj.weight": arr(np.ones((6, D), dtype)),
                "down_proj.weight": arr(np.ones((D, 6), dtype)),
            }
            call(x, sw)
        elif name == "cross_entropy":
            call(x, ids)
            call(x, arr(np.array([[0, 1, 2], [3, 0, 1]], np.int32)))
        elif name == "embedding":
            call(ids, arr(W.astype(dtype)))
        elif name == "attention":
            call(x, x, x)
        elif name == "dropout":
            call(x, arr(np.ones_like(F64, dtype=bool)), 0.0)


def test_good_optimizer_and_norm_settings_pass():
    """What torch.optim.AdamW and torch.nn's norms accept, ours accept: lr = 0, betas = (0, 0),
    eps = 0, weight_decay = 0, integer values."""
    for kw in ({}, dict(lr=0.0, betas=(0.0, 0.0), eps=0.0, weight_decay=0.0), dict(lr=1, eps=0)):
        torch.optim.AdamW([torch.zeros(3, requires_grad=True)], **kw)  # the built-in agrees
        numpy_impl.AdamW({"w": np.zeros(3)}, **kw)
        numpy_impl.AdamW({"w": np.zeros(3)}, kernels="fast", **kw)
        torch_impl.AdamW({"w": torch.zeros(3)}, **kw)
    torch_impl.LayerNorm(D, 0.0)
    torch_impl.RMSNorm(D, 0.0)


def test_good_model_calls_pass():
    ids = np.array([[1, 2, 3], [4, 5, 6]])
    for _, kind, fwd, _, C, _ in MODELS:
        arr = BACKENDS[kind]["arr"]
        fwd(arr(ids))
        fwd(arr(ids.astype(np.int32)))
        if C is not None:
            fwd(arr(np.zeros((1, C), np.int64)))  # exactly the context
    x = RNG.standard_normal((2, 5, 3)).astype(np.float32)
    for _, kind, fwd in LAYERS:
        fwd(BACKENDS[kind]["arr"](x))
