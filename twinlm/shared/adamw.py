"""AdamW's bookkeeping, the same for numpy_impl.AdamW and torch_impl.AdamW (their step() holds
the math): the hyper-parameters, each parameter's step count t and moments m (exp_avg) and v
(exp_avg_sq), created at zero on the parameter's first step (like torch, a parameter without a
gradient is skipped and its t stays put), and the state_dict that resumes either optimizer from
the other's:
    {"lr", "betas", "eps", "weight_decay", "steps": {name: t}, "exp_avg": {name: m},
     "exp_avg_sq": {name: v}}     m, v: copies, NumPy arrays or tensors as the optimizer holds them
A subclass supplies `_zeros_like(p)` and `_copy_like(a, p)` (a copy of a NumPy array or a tensor
in p's dtype, and device) for its own arrays.
"""

from __future__ import annotations

from twinlm.shared.validate import require_adamw_options, require_adamw_state


class AdamWState:
    """AdamW's hyper-parameters and per-parameter state over a dict of parameters (module
    docstring). Set `lr` before a step to follow a schedule (twinlm.training.schedule.lr_at)."""

    def __init__(
        self,
        params: dict,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ):
        require_adamw_options(params, lr, betas, eps, weight_decay)
        self.params = params
        self.lr = lr
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = eps
        self.weight_decay = weight_decay
        self.steps: dict[str, int] = {}  # per parameter, like torch: a missing grad skips it
        self.exp_avg: dict = {}  # m
        self.exp_avg_sq: dict = {}  # v

    def _zeros_like(self, p):
        raise NotImplementedError

    def _copy_like(self, a, p):
        raise NotImplementedError

    def advance(self, name: str):
        """The moments of parameter `name` and its step count t for the step being taken: m = v =
        0 and t = 1 on its first step, else t + 1. Returns (m, v, t), m and v to update in
        place."""
        if name not in self.steps:
            p = self.params[name]
            self.steps[name] = 0
            self.exp_avg[name] = self._zeros_like(p)
            self.exp_avg_sq[name] = self._zeros_like(p)
        self.steps[name] += 1
        return self.exp_avg[name], self.exp_avg_sq[name], self.steps[name]

    def state_dict(self) -> dict:
        """Everything needed to resume: hyper-parameters, per-parameter step, m and v (copies)."""
        return {
            "lr": self.lr,
            "betas": self.betas,
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "steps": dict(self.steps),
            "exp_avg": {k: self._copy_like(a, a) for k, a in self.exp_avg.items()},
            "exp_avg_sq": {k: self._copy_like(a, a) for k, a in self.exp_avg_sq.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        """Resume from a state_dict() of either backend's AdamW (the same format)."""
        require_adamw_state(state, self.params)
        self.lr = state["lr"]
        self.betas = tuple(state["betas"])
        self.eps = state["eps"]
        self.weight_decay = state["weight_decay"]
        self.steps = {k: int(t) for k, t in state["steps"].items()}
        like = self.params
        self.exp_avg = {k: self._copy_like(a, like[k]) for k, a in state["exp_avg"].items()}
        self.exp_avg_sq = {k: self._copy_like(a, like[k]) for k, a in state["exp_avg_sq"].items()}
