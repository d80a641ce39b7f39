"""One training interface per model over both backends, so the trainers and the demo are
backend-neutral.

Each adapter holds a model and its optimizer; `train_step` takes a NumPy batch and the dropout masks
(drawn by the caller from a NumPy generator), so the two backends can be fed the very same numbers
and compared step by step:
    GPT (chapter 5): NumpyGPT, TorchGPT (make_backend; twinlm/training/lm.py)
    char-RNN: NumpyCharRNN, TorchCharRNN (make_charrnn_backend; twinlm/training/charrnn.py)
    classifier (chapter 6): NumpyClassifier, TorchClassifier (make_classifier_backend; classify.py)
Checkpoint state (GPT and char-RNN) is a flat dict of NumPy arrays: `model.<key>` and
`optim.exp_avg.<key>` / `optim.exp_avg_sq.<key>`, plus per-parameter step counts.
"""

from __future__ import annotations

import numpy as np
import torch

import numpy_impl
import torch_impl
from twinlm.shared.init import init_charrnn_params
from twinlm.shared.naming import sub_dict as split_prefix
from twinlm.shared.naming import with_prefix
from twinlm.shared.validate import require_charrnn_config, require_choice

BACKENDS = ("numpy", "torch")
DTYPES = {"float32": (np.float32, torch.float32), "float64": (np.float64, torch.float64)}


def _torch_backward(model, opt, x: np.ndarray, y: np.ndarray, masks: dict) -> torch.Tensor:
    """Train-mode forward of a NumPy batch with the NumPy-drawn masks replayed, cross entropy,
    and its backward into fresh gradients. Returns the loss; the caller steps the optimizer."""
    model.train()
    tmasks = {k: torch.from_numpy(m) for k, m in masks.items()}
    logits = model(torch.from_numpy(x), dropout_masks=tmasks)
    loss = torch_impl.cross_entropy(logits, torch.from_numpy(y))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    return loss


class NumpyGPT:
    name = "numpy"

    def __init__(self, cfg: dict, seed: int, dtype: str, weight_decay: float, clip: float):
        self.model = numpy_impl.GPTModel(cfg, seed=seed, dtype=DTYPES[dtype][0])
        self.opt = numpy_impl.AdamW(self.model.params, lr=0.0, weight_decay=weight_decay)
        self.clip = clip

    def train_step(self, x: np.ndarray, y: np.ndarray, lr: float, masks: dict) -> float:
        loss, grads = self.model.loss_and_grads(x, y, dropout_masks=masks)
        numpy_impl.clip_grad_norm(grads, self.clip)
        self.opt.lr = lr
        self.opt.step(grads)
        return loss

    def eval_loss(self, x: np.ndarray, y: np.ndarray) -> float:
        loss, _ = numpy_impl.cross_entropy_forward(self.model.forward(x), y)
        return float(loss)

    def params(self) -> dict[str, np.ndarray]:
        return self.model.params

    def load_params(self, tensors: dict[str, np.ndarray]) -> None:
        self.model.load_state_dict(tensors)

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        s = self.opt.state_dict()
        tensors = with_prefix(self.model.state_dict(), "model.")
        tensors |= with_prefix(s["exp_avg"], "optim.exp_avg.")
        tensors |= with_prefix(s["exp_avg_sq"], "optim.exp_avg_sq.")
        return tensors, s["steps"]

    def load_state(self, tensors: dict[str, np.ndarray], steps: dict[str, int]) -> None:
        self.model.load_state_dict(split_prefix(tensors, "model."))
        s = self.opt.state_dict()
        s.update(
            steps=steps,
            exp_avg=split_prefix(tensors, "optim.exp_avg."),
            exp_avg_sq=split_prefix(tensors, "optim.exp_avg_sq."),
        )
        self.opt.load_state_dict(s)


class TorchGPT:
    name = "torch"

    def __init__(self, cfg: dict, seed: int, dtype: str, weight_decay: float, clip: float):
        self.model = torch_impl.GPTModel(cfg, seed=seed, dtype=DTYPES[dtype][1])
        self.names = [n for n, _ in self.model.named_parameters()]
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=0.0, weight_decay=weight_decay, foreach=False
        )
        self.clip = clip

    def train_step(self, x: np.ndarray, y: np.ndarray, lr: float, masks: dict) -> float:
        loss = _torch_backward(self.model, self.opt, x, y, masks)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.step()
        return float(loss.detach())

    @torch.no_grad()
    def eval_loss(self, x: np.ndarray, y: np.ndarray) -> float:
        self.model.eval()
        logits = self.model(torch.from_numpy(x))
        return float(torch_impl.cross_entropy(logits, torch.from_numpy(y)))

    def params(self) -> dict[str, np.ndarray]:
        return {k: v.detach().numpy() for k, v in self.model.state_dict().items()}

    def load_params(self, tensors: dict[str, np.ndarray]) -> None:
        self.model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()})

    def state(self) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        tensors = with_prefix({k: v.copy() for k, v in self.params().items()}, "model.")
        steps = {}
        for name, p in zip(self.names, self.model.parameters(), strict=True):
            st = self.opt.state.get(p)
            if st:
                steps[name] = int(st["step"])
                tensors[f"optim.exp_avg.{name}"] = st["exp_avg"].detach().numpy().copy()
                tensors[f"optim.exp_avg_sq.{name}"] = st["exp_avg_sq"].detach().numpy().copy()
        return tensors, steps

    def load_state(self, tensors: dict[str, np.ndarray], steps: dict[str, int]) -> None:
        model = split_prefix(tensors, "model.")
        self.model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.items()})
        m, v = split_prefix(tensors, "optim.exp_avg."), split_prefix(tensors, "optim.exp_avg_sq.")
        for name, p in zip(self.names, self.model.parameters(), strict=True):
            if name in steps:
                self.opt.state[p] = {
                    "step": torch.tensor(float(steps[name])),
                    "exp_avg": torch.from_numpy(m[name].copy()),
                    "exp_avg_sq": torch.from_numpy(v[name].copy()),
                }


def make_backend(name: str, cfg: dict, seed: int, dtype: str = "float32",
                 weight_decay: float = 0.1, clip: float = 1.0):  # fmt: skip
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {name!r}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    cls = NumpyGPT if name == "numpy" else TorchGPT
    return cls(cfg, seed, dtype, weight_decay, clip)


# ---- char-RNN: the GPT adapters' state()/load_state(), plus the carried LSTM state ---------------
# Both take NumPy batches, states and masks and return NumPy states, so the trainer and the sampler
# (twinlm/training/charrnn.py) are backend-neutral.


class NumpyCharRNN(NumpyGPT):
    name = "numpy"

    def __init__(self, cfg: dict, seed: int, dtype: str, weight_decay: float, clip: float):
        self.model = numpy_impl.CharRNN(cfg, seed=seed, dtype=DTYPES[dtype][0])
        self.opt = numpy_impl.AdamW(self.model.params, lr=0.0, weight_decay=weight_decay)
        self.clip = clip

    def zero_state(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        return self.model.zero_state(batch)

    def train_step(self, x, y, state, lr: float, masks) -> tuple[float, tuple]:
        loss, grads, state = self.model.loss_and_grads(x, y, state, masks)
        numpy_impl.clip_grad_norm(grads, self.clip)
        self.opt.lr = lr
        self.opt.step(grads)
        return loss, state  # the new state is a plain array: nothing flows back through it

    def eval_loss(self, x, y, state) -> tuple[float, tuple]:
        logits, state = self.model.forward(x, state)
        loss, _ = numpy_impl.cross_entropy_forward(logits, y)
        return float(loss), state

    def predict(self, x, state) -> tuple[np.ndarray, tuple]:
        """float64 logits (B, V) after the last position of x (B, T), and the new state."""
        logits, state = self.model.forward(x, state)
        return logits[:, -1].astype(np.float64), state


class TorchCharRNN(TorchGPT):
    name = "torch"

    def __init__(self, cfg: dict, seed: int, dtype: str, weight_decay: float, clip: float):
        np_dtype, torch_dtype = DTYPES[dtype]
        self.model = torch_impl.CharRNN(cfg, dtype=torch_dtype)
        init = init_charrnn_params(cfg, seed, np_dtype)  # the shared initializer
        self.model.load_state_dict({k: torch.from_numpy(v) for k, v in init.items()})
        self.names = [n for n, _ in self.model.named_parameters()]
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=0.0, weight_decay=weight_decay, foreach=False
        )
        self.clip = clip

    def zero_state(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        return tuple(s.numpy() for s in self.model.zero_state(batch))

    def train_step(self, x, y, state, lr: float, masks) -> tuple[float, tuple]:
        # A state made from NumPy arrays is a leaf without grad: the backward stops at step 0.
        h0, c0 = (torch.from_numpy(s) for s in state)
        tmasks = {k: torch.from_numpy(m) for k, m in (masks or {}).items()}  # given: no draws
        logits, (h_n, c_n) = self.model(torch.from_numpy(x), (h0, c0), tmasks)
        loss = torch_impl.cross_entropy(logits, torch.from_numpy(y))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip, foreach=False)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.step()
        return float(loss.detach()), (h_n.detach().numpy(), c_n.detach().numpy())

    @torch.no_grad()
    def eval_loss(self, x, y, state) -> tuple[float, tuple]:
        self.model.eval()
        logits, (h_n, c_n) = self.model(torch.from_numpy(x), tuple(map(torch.from_numpy, state)))
        return float(torch_impl.cross_entropy(logits, torch.from_numpy(y))), (
            h_n.numpy(),
            c_n.numpy(),
        )

    @torch.no_grad()
    def predict(self, x, state) -> tuple[np.ndarray, tuple]:
        self.model.eval()
        logits, (h_n, c_n) = self.model(torch.from_numpy(x), tuple(map(torch.from_numpy, state)))
        return logits[:, -1].double().numpy(), (h_n.numpy(), c_n.numpy())


def make_charrnn_backend(name: str, cfg: dict, seed: int = 0, dtype: str = "float32",
                         weight_decay: float = 0.0, clip: float = 5.0):  # fmt: skip
    require_choice("backend", name, BACKENDS)
    require_choice("dtype", dtype, tuple(DTYPES))
    require_charrnn_config(cfg)
    cls = NumpyCharRNN if name == "numpy" else TorchCharRNN
    return cls(cfg, seed, dtype, weight_decay, clip)


# ---- the chapter-6 classifier: only the trainable parameters go to the optimizer -----------------


class NumpyClassifier:
    """numpy_impl.GPTClassifier + numpy_impl.AdamW over the trainable parameters only."""

    name = "numpy"

    def __init__(self, cfg: dict, options: dict, seed: int, dtype: str, backbone, lr: float,
                 weight_decay: float):  # fmt: skip
        self.model = numpy_impl.GPTClassifier(
            cfg, **options, seed=seed, dtype=DTYPES[dtype][0], backbone=backbone
        )
        trainable = {k: self.model.params[k] for k in self.model.trainable_keys}
        self.opt = numpy_impl.AdamW(trainable, lr=lr, weight_decay=weight_decay)

    def train_step(self, x: np.ndarray, y: np.ndarray, masks: dict) -> float:
        loss, grads = self.model.loss_and_grads(x, y, dropout_masks=masks)
        self.opt.step(grads)
        return loss

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.model.forward(x)  # no masks: evaluation mode

    def params(self) -> dict[str, np.ndarray]:
        return self.model.params

    def load_params(self, tensors: dict[str, np.ndarray]) -> None:
        self.model.load_state_dict(tensors)


class TorchClassifier:
    """torch_impl.GPTClassifier + torch.optim.AdamW over the parameters that require grad."""

    name = "torch"

    def __init__(self, cfg: dict, options: dict, seed: int, dtype: str, backbone, lr: float,
                 weight_decay: float):  # fmt: skip
        self.model = torch_impl.GPTClassifier(
            cfg, **options, seed=seed, dtype=DTYPES[dtype][1], backbone=backbone
        )
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay, foreach=False)

    def train_step(self, x: np.ndarray, y: np.ndarray, masks: dict) -> float:
        loss = _torch_backward(self.model, self.opt, x, y, masks)
        self.opt.step()
        return loss.item()

    def logits(self, x: np.ndarray) -> np.ndarray:
        self.model.eval()
        with torch.no_grad():
            return self.model(torch.from_numpy(x)).numpy()

    def params(self) -> dict[str, np.ndarray]:
        return {k: v.detach().numpy() for k, v in self.model.state_dict().items()}

    def load_params(self, tensors: dict[str, np.ndarray]) -> None:
        self.model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in tensors.items()})


def make_classifier_backend(
    name: str, cfg: dict, options: dict, seed: int = 0, dtype: str = "float32", backbone=None,
    lr: float = 5e-5, weight_decay: float = 0.1,
) -> NumpyClassifier | TorchClassifier:  # fmt: skip
    """options: num_classes, trainable, k, position, pad_id (see GPTClassifier)."""
    require_choice("backend", name, BACKENDS)
    require_choice("dtype", dtype, tuple(DTYPES))
    cls = NumpyClassifier if name == "numpy" else TorchClassifier
    return cls(cfg, options, seed, dtype, backbone, lr, weight_decay)
