"""One optimizer step per backend — the whole of training, for every model twinlm trains.

    NumPy:  loss, grads = model.loss_and_grads(x, y, masks)  →  clip  →  AdamW.step(grads)
            (the clip's factor is applied inside AdamW's pass: clip_coef, step(grad_scale=…))
    torch:  logits = model(x, masks) → cross_entropy → backward  →  clip  →  AdamW.step(grads)

Both take the same NumPy batch with the same NumPy-drawn dropout masks and the same learning rate,
so the two backends can be run in lockstep and compared step by step. Between the backward and the
clip sits `reduce_grads` (None in one process): data-parallel training all-reduces the gradients
there. A recurrent model (the char-RNN) also takes the batch's starting state and returns its
final state, which the next batch starts from.

The step is also where divergence is caught: the gradient norm comes from the clip (taken with
an infinite threshold when clip is 0, which leaves the gradients as they are), and a loss or norm
that is not finite raises DivergenceError before the optimizer touches the parameters.

Both optimizers are AdamW written by hand (numpy_impl.AdamW, torch_impl.AdamW) with the same
state_dict layout, so a checkpoint holds the same tensors whichever backend wrote it.

The NumPy engine runs numpy_impl's fast path (`kernels="fast"`, numpy_impl/fast/): the model and
AdamW are switched to it, which gives the reference's results to rounding.
On the fast path a GPT's gradients are arrays of the model's step workspace (allocated once per
batch shape, numpy_impl/fast/workspace.py), valid until its next loss_and_grads: the step uses
them (all-reduce, clip, AdamW) before that, and keeps none.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

import numpy_impl

NumpyState = tuple[np.ndarray, ...] | None  # a recurrent model's state (h, c), or None


class DivergenceError(FloatingPointError):
    """A non-finite loss or gradient norm: training stops before the optimizer applies it (a
    runtime failure: the command line exits 1)."""

    exit_code = 1


def check_same_model(where: str, tensors: dict, model: dict) -> None:
    """`tensors` hold exactly the model's parameters, in its shapes (ValueError naming `where`)."""
    missing, extra = sorted(set(model) - set(tensors)), sorted(set(tensors) - set(model))
    if missing or extra:
        raise ValueError(
            f"{where} does not hold this model's parameters: missing {missing[:3]}, "
            f"unexpected {extra[:3]}"
        )
    for k, a in model.items():
        if tuple(tensors[k].shape) != tuple(a.shape):
            raise ValueError(
                f"{where}: {k} has shape {tuple(tensors[k].shape)}, the model's is {tuple(a.shape)}"
            )


def check_finite(loss: float, grad_norm: float) -> None:
    if not (math.isfinite(loss) and math.isfinite(grad_norm)):
        raise DivergenceError(f"the loss is {loss:.4g} and the gradient norm {grad_norm:.4g}")


@dataclass
class Batch:
    """One step's inputs, all NumPy: x (B, T) ids, y targets ((B, T) ids or (B,) labels), the
    dropout masks by name ({}: no dropout), and the starting state of a recurrent model."""

    x: np.ndarray
    y: np.ndarray
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    state: NumpyState = None


class NumpyEngine:
    """A numpy_impl model and numpy_impl.AdamW over its trainable parameters, both run on
    `kernels` (numpy_impl.kernel_ops: "fast" unless told otherwise)."""

    backend = "numpy"

    def __init__(
        self,
        model,
        trainable: list[str] | None = None,
        *,
        lr: float | None = None,
        weight_decay: float = 0.0,
        clip: float = 0.0,
        reduce_grads: Callable[[dict], None] | None = None,
        kernels: str = "fast",
    ):
        numpy_impl.kernel_ops(kernels)  # a known name, or a ValueError naming `kernels`
        self.model, self.clip, self.reduce_grads = model, clip, reduce_grads
        model.kernels = kernels
        keys = trainable if trainable is not None else list(model.params)
        self.opt = None  # lr None: an engine that only evaluates
        if lr is not None:
            params = {k: model.params[k] for k in keys}
            self.opt = numpy_impl.AdamW(params, lr=lr, weight_decay=weight_decay, kernels=kernels)

    def step(self, batch: Batch, lr: float) -> tuple[float, NumpyState]:
        with np.errstate(over="ignore", invalid="ignore"):  # check_finite reports it, once
            if batch.state is None:
                loss, grads = self.model.loss_and_grads(batch.x, batch.y, dropout_masks=batch.masks)
                state = None
            else:
                loss, grads, state = self.model.loss_and_grads(
                    batch.x, batch.y, batch.state, dropout_masks=batch.masks
                )
            if self.reduce_grads is not None:
                self.reduce_grads(grads)
            norm, coef = numpy_impl.clip_coef(grads, self.clip or math.inf)
            check_finite(loss, norm)
        self.opt.lr = lr
        self.opt.step(grads, grad_scale=coef)  # clip_grad_norm's scaling, fused into AdamW's pass
        return loss, state

    def eval_logits(self, x: np.ndarray, state: NumpyState = None):
        """Logits without dropout (and, for a recurrent model, its final state)."""
        with np.errstate(over="ignore", invalid="ignore"):  # a diverging run shows inf or nan
            return self.model.forward(x) if state is None else self.model.forward(x, state)

    def eval_loss(self, x: np.ndarray, y: np.ndarray, state: NumpyState = None):
        """Mean cross entropy without dropout: a float, or (float, final state) with a state."""
        out = self.eval_logits(x, state)
        logits = out if state is None else out[0]
        with np.errstate(over="ignore", invalid="ignore"):
            ops = numpy_impl.kernel_ops(self.model.kernels)
            loss = float(ops.cross_entropy_forward(logits, y)[0])
        return loss if state is None else (loss, out[1])

    def params(self) -> dict[str, np.ndarray]:
        return self.model.params

    def load_params(self, tensors: dict[str, np.ndarray], where: str = "the tensors") -> None:
        check_same_model(where, tensors, self.model.params)
        self.model.load_state_dict(tensors)  # may put new arrays in model.params:
        if self.opt is not None:
            self.opt.params = {k: self.model.params[k] for k in self.opt.params}  # step those

    def optimizer_state(self) -> dict:
        return self.opt.state_dict()

    def load_optimizer_state(self, state: dict) -> None:
        self.opt.load_state_dict(state)


class TorchEngine:
    """A torch_impl model (optionally wrapped, e.g. by DistributedDataParallel, in `module`) and
    torch_impl.AdamW over its trainable parameters."""

    backend = "torch"

    def __init__(
        self,
        model,
        trainable: list[str] | None = None,
        *,
        lr: float | None = None,
        weight_decay: float = 0.0,
        clip: float = 0.0,
        module=None,
    ):
        import torch

        import torch_impl

        self.torch, self.ops = torch, torch_impl
        self.model, self.module = model, module if module is not None else model
        self.clip = clip
        named = dict(model.named_parameters())
        self.trainable = {k: named[k] for k in (trainable if trainable is not None else named)}
        self.opt = None  # lr None: an engine that only evaluates
        if lr is not None:
            self.opt = torch_impl.AdamW(self.trainable, lr=lr, weight_decay=weight_decay)
        self.device = next(model.parameters()).device

    def _tensor(self, a: np.ndarray):
        return self.torch.from_numpy(np.ascontiguousarray(a)).to(self.device)

    def _forward(self, batch: Batch):
        x = self._tensor(batch.x)
        masks = {k: self._tensor(m) for k, m in batch.masks.items()}
        if batch.state is None:
            return self.module(x, dropout_masks=masks), None
        state = tuple(self._tensor(s) for s in batch.state)
        return self.module(x, state, dropout_masks=masks)

    def step(self, batch: Batch, lr: float) -> tuple[float, NumpyState]:
        self.model.train()
        for p in self.trainable.values():
            p.grad = None  # fresh gradients (they stay readable until the next step)
        logits, state = self._forward(batch)
        loss = self.ops.cross_entropy(logits, self._tensor(batch.y))
        loss.backward()  # (DistributedDataParallel all-reduces the gradients here)
        grads = {k: p.grad for k, p in self.trainable.items()}
        value = float(loss.detach())
        check_finite(value, self.ops.clip_grad_norm(grads, self.clip or math.inf))
        self.opt.lr = lr
        self.opt.step(grads)
        state = None if state is None else tuple(s.detach().cpu().numpy() for s in state)
        return value, state

    def eval_logits(self, x: np.ndarray, state: NumpyState = None):
        self.model.eval()
        with self.torch.no_grad():
            if state is None:
                return self.model(self._tensor(x)).cpu().numpy()
            logits, state = self.model(self._tensor(x), tuple(self._tensor(s) for s in state))
            return logits.cpu().numpy(), tuple(s.cpu().numpy() for s in state)

    def eval_loss(self, x: np.ndarray, y: np.ndarray, state: NumpyState = None):
        self.model.eval()
        with self.torch.no_grad():
            batch = Batch(x, y, {}, state)
            logits, state = self._forward(batch)
            loss = float(self.ops.cross_entropy(logits, self._tensor(y)))
        return loss if state is None else (loss, tuple(s.cpu().numpy() for s in state))

    def params(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.model.state_dict().items()}

    def load_params(self, tensors: dict[str, np.ndarray], where: str = "the tensors") -> None:
        check_same_model(where, tensors, self.model.state_dict())
        self.model.load_state_dict(
            {k: self.torch.from_numpy(np.array(v)) for k, v in tensors.items()}
        )

    def optimizer_state(self) -> dict:
        state = self.opt.state_dict()
        for buf in ("exp_avg", "exp_avg_sq"):
            state[buf] = {k: t.detach().cpu().numpy() for k, t in state[buf].items()}
        return state

    def load_optimizer_state(self, state: dict) -> None:
        state = dict(state)
        for buf in ("exp_avg", "exp_avg_sq"):
            state[buf] = {k: self._tensor(np.array(a)) for k, a in state[buf].items()}
        self.opt.load_state_dict(state)


def make_engine(
    backend: str,
    model,
    trainable: list[str] | None = None,
    *,
    lr: float | None = None,
    weight_decay: float = 0.0,
    clip: float = 0.0,
    kernels: str | None = None,
) -> NumpyEngine | TorchEngine:
    """The engine for a model of `backend` ("numpy" or "torch"): AdamW with learning rate `lr`
    over the trainable parameters (lr None: an engine that only evaluates); clip 0: no clipping;
    `kernels`: NumPy's op set (engine_kernels)."""
    kernels = engine_kernels(backend, kernels)
    if backend == "numpy":
        return NumpyEngine(
            model, trainable, lr=lr, weight_decay=weight_decay, clip=clip, kernels=kernels
        )
    return TorchEngine(model, trainable, lr=lr, weight_decay=weight_decay, clip=clip)


def engine_kernels(backend: str, kernels: str | None) -> str | None:
    """The NumPy engine's op set: `kernels`, or the fast path when None; torch has one set, so
    naming one for it is refused (ValueError naming kernels)."""
    if backend == "numpy":
        return kernels or "fast"
    if kernels is not None:
        raise ValueError(
            f"kernels (--kernels) chooses the NumPy backend's ops; backend {backend!r} has one "
            f"set, got kernels {kernels!r}"
        )
    return None
