"""twinlm.models, the one switch between the backends: every model class built by name in either
backend and dtype, weights in and out, conversion both ways, and each refusal named.

References, each independent of the code under test: the backend's own class built directly (same
seed: the same weights, bit for bit), the arrays handed in, and for a conversion the source model's
logits from the other backend's forward (float64, ≤ 1e-12 relative).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import numpy_impl
import torch_impl
from twinlm import models
from twinlm.parity.harness import rel_error
from twinlm.shared.config import get_config
from twinlm.shared.init import init_charrnn_params, init_gpt_params, init_qwen3_params

CFG = get_config("test")
QCFG = get_config("qwen3-test")
CHAR = {"vocab_size": 11, "emb_dim": 5, "hidden_size": 7, "num_layers": 2, "drop_rate": 0.0}
CFGS = {"GPTModel": CFG, "Qwen3Model": QCFG, "CharRNN": CHAR}
TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64}
CLASSIFIER_OPTIONS = {"num_classes": 3, "trainable": "last-k", "k": 1, "pad_id": 0}
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest.py


def _state(model) -> dict[str, np.ndarray]:
    """The model's weights as NumPy, read without twinlm.models."""
    if isinstance(model, torch.nn.Module):
        return {k: v.detach().numpy() for k, v in model.state_dict().items()}
    return model.params


def _noisy(params: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Weights no initializer gives (norm weights and biases off their init too)."""
    rng = np.random.default_rng(seed)
    return {k: (v + 0.3 * rng.standard_normal(v.shape)).astype(v.dtype) for k, v in params.items()}


def _logits(model, idx: np.ndarray) -> np.ndarray:
    if isinstance(model, torch.nn.Module):
        with torch.no_grad():
            out = model.eval()(torch.from_numpy(idx))
    else:
        out = model.forward(idx)
    out = out[0] if isinstance(out, tuple) else out  # the char-RNN returns (logits, state)
    return np.asarray(out.numpy() if hasattr(out, "numpy") else out, dtype=np.float64)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["GPTModel", "Qwen3Model", "GPTClassifier", "Qwen3Classifier"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_build_model_is_the_class_built_directly(backend, name, dtype):
    cfg = QCFG if "Qwen3" in name else CFG
    options = CLASSIFIER_OPTIONS if "Classifier" in name else {}
    model = models.build_model(backend, name, cfg, dtype, seed=4, **options)
    module = numpy_impl if backend == "numpy" else torch_impl
    own_dtype = np.dtype(dtype) if backend == "numpy" else TORCH_DTYPES[dtype]
    direct = getattr(module, name)(cfg, seed=4, dtype=own_dtype, **options)
    assert type(model) is type(direct) and models.backend_of(model) == backend
    got, want = _state(model), _state(direct)
    assert list(got) == list(want)
    for k in want:
        assert got[k].dtype == np.dtype(dtype), k
        np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    if "Classifier" in name:
        assert model.trainable_keys == direct.trainable_keys


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_build_model_with_params_holds_them(backend):
    params = _noisy(init_charrnn_params(CHAR, 0, np.float64), 1)
    model = models.build_model(backend, "CharRNN", CHAR, "float64", params=params)
    got = models.numpy_params(model)
    assert list(got) == list(params)
    for k, v in params.items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)
    # The defaults: float32, and (torch) on the CPU in training mode.
    default = models.build_model(backend, "GPTModel", CFG)
    assert all(v.dtype == np.float32 for v in models.numpy_params(default).values())
    if backend == "torch":
        assert default.training and next(default.parameters()).device.type == "cpu"
        held = models.build_model(backend, "GPTModel", CFG, device="cpu", evaluation=True)
        assert not held.training


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_load_params_replaces_every_weight(backend):
    model = models.build_model(backend, "Qwen3Model", QCFG, "float64", seed=0)
    params = _noisy(init_qwen3_params(QCFG, 1, np.float64), 2)
    models.load_params(model, params)
    got = _state(model)
    for k, v in params.items():
        np.testing.assert_array_equal(got[k], v, err_msg=k)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["GPTModel", "Qwen3Model", "CharRNN"])
@pytest.mark.parametrize(("source", "target"), [("numpy", "torch"), ("torch", "numpy")])
def test_convert_keeps_the_weights_and_the_logits(source, target, name, dtype):
    init = {"GPTModel": init_gpt_params, "Qwen3Model": init_qwen3_params}.get(
        name, init_charrnn_params
    )
    cfg = CFGS[name]
    params = _noisy(init(cfg, 3, np.dtype(dtype)), 5)
    model = models.build_model(source, name, cfg, dtype, params=params)
    converted = models.convert(model, target)
    assert models.backend_of(converted) == target and type(converted).__name__ == name
    got = _state(converted)
    for k, v in params.items():
        assert got[k].dtype == np.dtype(dtype), k
        np.testing.assert_array_equal(got[k], v, err_msg=k)
    assert models.convert(converted, target) is converted
    models.load_params(converted, _noisy(params, 6))  # a copy: the source keeps its weights
    for k, v in _state(model).items():
        np.testing.assert_array_equal(v, params[k], err_msg=k)
    if dtype == "float64":
        models.load_params(converted, params)
        idx = np.random.default_rng(7).integers(0, cfg["vocab_size"], (2, 5))
        assert rel_error(_logits(converted, idx), _logits(model, idx)) <= 1e-12


def test_backend_of_and_the_refusals():
    with pytest.raises(TypeError, match="model must be a numpy_impl or torch_impl model, got dict"):
        models.backend_of({})
    with pytest.raises(ValueError, match="backend must be one of"):
        models.build_model("jax", "GPTModel", CFG)
    with pytest.raises(ValueError, match=r"dtype must be one of \['float32', 'float64'\], got 'float16'"):  # fmt: skip
        models.build_model("numpy", "GPTModel", CFG, "float16")
    with pytest.raises(ValueError, match="device is for the torch backend only"):
        models.build_model("numpy", "GPTModel", CFG, device="cpu")
    with pytest.raises(ValueError, match="model must be one of"):
        models.build_model("numpy", "LSTM", CFG)
    clf = models.build_model("numpy", "GPTClassifier", CFG, num_classes=2, pad_id=0)
    with pytest.raises(TypeError, match="model must be one of .* to convert, got GPTClassifier"):
        models.convert(clf, "torch")
    with pytest.raises(ValueError, match="backend must be one of"):
        models.convert(clf, "jax")
    assert models.float_dtype(np.float64) == np.dtype(np.float64)


def test_torch_device():
    assert models.torch_device(None) == torch.device("cpu")
    assert models.torch_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="device must be a torch device such as cpu or cuda"):
        models.torch_device("gpu0")
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    with pytest.raises(ValueError, match=f"device 'cuda:{n}'"):
        models.torch_device(f"cuda:{n}")  # one past the last device (or no CUDA at all)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_build_language_model_checks_the_arrays(backend):
    params = _noisy(init_gpt_params(CFG, 0, np.float64), 8)
    model = models.build_language_model(backend, CFG, params, "float32")
    assert getattr(model, "training", False) is False
    for k, v in _state(model).items():
        np.testing.assert_array_equal(v, params[k].astype(np.float32), err_msg=k)
    wrong = dict(params, **{"final_norm.scale": np.ones(3)})
    with pytest.raises(ValueError, match="final_norm.scale"):
        models.build_language_model(backend, CFG, wrong)
    with pytest.raises(ValueError, match=r"missing \['out_head.weight'\]"):
        models.build_language_model(
            backend, CFG, {k: v for k, v in params.items() if "out_head" not in k}
        )
