"""One GPT training interface over both backends, so the trainer and the demo are backend-neutral.

Each backend holds a model and its AdamW; `train_step` takes a NumPy batch, the learning rate and
the dropout masks (drawn by the caller from a NumPy generator), so the two backends can be fed the
very same numbers and compared step by step. Checkpoint state is a flat dict of NumPy arrays:
`model.<key>` and `optim.exp_avg.<key>` / `optim.exp_avg_sq.<key>`, plus per-parameter step counts.
"""

from __future__ import annotations

import numpy as np
import torch

import numpy_impl as N
import torch_impl as T
from twinlm.checkpoint import split_prefix, with_prefix

BACKENDS = ("numpy", "torch")
DTYPES = {"float32": (np.float32, torch.float32), "float64": (np.float64, torch.float64)}


class NumpyGPT:
    name = "numpy"

    def __init__(self, cfg: dict, seed: int, dtype: str, weight_decay: float, clip: float):
        self.model = N.GPTModel(cfg, seed=seed, dtype=DTYPES[dtype][0])
        self.opt = N.AdamW(self.model.params, lr=0.0, weight_decay=weight_decay)
        self.clip = clip

    def train_step(self, x: np.ndarray, y: np.ndarray, lr: float, masks: dict) -> float:
        loss, grads = self.model.loss_and_grads(x, y, dropout_masks=masks)
        N.clip_grad_norm(grads, self.clip)
        self.opt.lr = lr
        self.opt.step(grads)
        return loss

    def eval_loss(self, x: np.ndarray, y: np.ndarray) -> float:
        loss, _ = N.cross_entropy_forward(self.model.forward(x), y)
        return float(loss)

    def params(self) -> dict[str, np.ndarray]:
        return self.model.params

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
        self.model = T.GPTModel(cfg, seed=seed, dtype=DTYPES[dtype][1])
        self.names = [n for n, _ in self.model.named_parameters()]
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=0.0, weight_decay=weight_decay, foreach=False
        )
        self.clip = clip

    def train_step(self, x: np.ndarray, y: np.ndarray, lr: float, masks: dict) -> float:
        self.model.train()
        tmasks = {k: torch.from_numpy(m) for k, m in masks.items()}
        logits = self.model(torch.from_numpy(x), dropout_masks=tmasks)
        loss = T.cross_entropy(logits, torch.from_numpy(y))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.step()
        return float(loss.detach())

    @torch.no_grad()
    def eval_loss(self, x: np.ndarray, y: np.ndarray) -> float:
        self.model.eval()
        logits = self.model(torch.from_numpy(x))
        return float(T.cross_entropy(logits, torch.from_numpy(y)))

    def params(self) -> dict[str, np.ndarray]:
        return {k: v.detach().numpy() for k, v in self.model.state_dict().items()}

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
