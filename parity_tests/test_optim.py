"""numpy_impl.AdamW / clip_grad_norm against torch.optim.AdamW / clip_grad_norm_, and the schedule.

The references are torch's own implementations (AdamW with foreach=False, the single-tensor code
whose float operations ours follows), and for the schedule the book's training loop written out.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from numpy_impl.optim import AdamW, clip_grad_norm
from twinlm.parity.harness import FLOAT32_FLOOR, rel_error
from twinlm.training.schedule import lr_at

SHAPES = {"w": (6, 5), "b": (5,), "emb": (4, 3, 2), "one": (1,)}
TOL_ADAMW_FLOAT64 = 1e-12  # ours agrees with torch to a few ulps per step
SCHEDULE = dict(peak_lr=5e-3, warmup_steps=5, total_steps=20, min_lr=1e-4)


def _random_params(rng, dtype=np.float64):
    return {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}


def _random_grads(rng, dtype=np.float64):
    return {k: (3.0 * rng.standard_normal(s)).astype(dtype) for k, s in SHAPES.items()}


def _run_both(params, grads_per_step, lrs, dtype, **hyper):
    """Our AdamW and torch's on copies of the same params and grads; returns both final dicts and
    both optimizers' (m, v) state."""
    ours = {k: v.astype(dtype) for k, v in params.items()}
    opt = AdamW(ours, lr=lrs[0], **hyper)
    tparams = {k: torch.tensor(v, dtype=_torch_dtype(dtype)) for k, v in params.items()}
    for t in tparams.values():
        t.requires_grad_(True)
    topt = torch.optim.AdamW(list(tparams.values()), lr=lrs[0], foreach=False, **hyper)
    for lr, grads in zip(lrs, grads_per_step, strict=True):
        opt.lr = lr
        for group in topt.param_groups:
            group["lr"] = lr
        for k, t in tparams.items():
            t.grad = torch.tensor(grads[k], dtype=_torch_dtype(dtype))
        opt.step({k: g.astype(dtype) for k, g in grads.items()})
        topt.step()
    theirs = {k: t.detach().numpy() for k, t in tparams.items()}
    tstate = {k: topt.state[t] for k, t in tparams.items()}
    return ours, theirs, opt, tstate


def _torch_dtype(dtype):
    return torch.float64 if np.dtype(dtype) == np.float64 else torch.float32


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.3, 0.95)], ids=["default", "beta1<0.5"])
def test_adamw_matches_torch_float64(betas, record_error):
    """20 steps, weight decay on, lr changing every step (warmup then cosine)."""
    rng = np.random.default_rng(1)
    params = _random_params(rng)
    grads = [_random_grads(rng) for _ in range(20)]
    lrs = [lr_at(s, **SCHEDULE) + 1e-3 for s in range(20)]
    ours, theirs, opt, tstate = _run_both(
        params, grads, lrs, np.float64, betas=betas, eps=1e-8, weight_decay=0.1
    )
    err_params = max(rel_error(ours[k], theirs[k]) for k in SHAPES)
    err_state = max(
        max(rel_error(opt.exp_avg[k], tstate[k]["exp_avg"].numpy()) for k in SHAPES),
        max(rel_error(opt.exp_avg_sq[k], tstate[k]["exp_avg_sq"].numpy()) for k in SHAPES),
    )
    assert all(opt.steps[k] == int(tstate[k]["step"]) == 20 for k in SHAPES)
    # The params must have moved well beyond the tolerance, or the comparison says nothing.
    assert max(rel_error(ours[k], params[k]) for k in SHAPES) > 1e-3
    record_error("AdamW", "params (float64)", err_params, TOL_ADAMW_FLOAT64)
    record_error("AdamW", "exp_avg, exp_avg_sq (f64)", err_state, TOL_ADAMW_FLOAT64)


def test_adamw_float32_no_worse_than_torch(record_error):
    """float32: both optimizers against the float64 run on the same float32-rounded inputs;
    ours may be at most 2x as far from it as torch's, plus a floor (the OpInfo rule)."""
    rng = np.random.default_rng(2)
    params = {k: v.astype(np.float32) for k, v in _random_params(rng).items()}
    grads = [{k: g.astype(np.float32) for k, g in _random_grads(rng).items()} for _ in range(20)]
    lrs = [lr_at(s, **SCHEDULE) + 1e-3 for s in range(20)]
    hyper = dict(weight_decay=0.1)
    exact, _, _, _ = _run_both(params, grads, lrs, np.float64, **hyper)
    ours, theirs, _, _ = _run_both(params, grads, lrs, np.float32, **hyper)
    assert all(v.dtype == np.float32 for v in ours.values())
    err_ours = max(rel_error(ours[k], exact[k]) for k in SHAPES)
    err_torch = max(rel_error(theirs[k], exact[k]) for k in SHAPES)
    record_error("AdamW", "float32 vs float64", err_ours, 2 * err_torch + FLOAT32_FLOOR)


@pytest.mark.parametrize("max_norm", [0.5, 1e6], ids=["clips", "no-clip"])
def test_clip_grad_norm_matches_torch(max_norm, record_error):
    rng = np.random.default_rng(3)
    grads = _random_grads(rng)
    tensors = {
        k: torch.zeros(s, dtype=torch.float64, requires_grad=True) for k, s in SHAPES.items()
    }
    for k, t in tensors.items():
        t.grad = torch.tensor(grads[k])
    theirs_norm = torch.nn.utils.clip_grad_norm_(list(tensors.values()), max_norm, foreach=False)

    ours = {k: g.copy() for k, g in grads.items()}
    ours_norm = clip_grad_norm(ours, max_norm)

    err_norm = abs(ours_norm - float(theirs_norm)) / float(theirs_norm)
    err_grads = max(rel_error(ours[k], tensors[k].grad.numpy()) for k in SHAPES)
    record_error("clip_grad_norm", "norm (float64)", err_norm, 1e-14)
    record_error("clip_grad_norm", "clipped grads (float64)", err_grads, 1e-14)
    # Independent check of the definition: the global norm, and the clipped norm.
    flat = np.concatenate([g.ravel() for g in grads.values()])
    assert ours_norm == pytest.approx(math.sqrt(float(flat @ flat)), rel=1e-14)
    clipped = np.concatenate([g.ravel() for g in ours.values()])
    assert np.linalg.norm(clipped) == pytest.approx(min(max_norm, ours_norm), rel=1e-5)


def test_clip_grad_norm_skips_none_and_keeps_dtype():
    grads = {"a": np.full(4, 3.0, dtype=np.float32), "b": None}
    norm = clip_grad_norm(grads, 1.0)
    assert norm == pytest.approx(6.0)
    assert grads["a"].dtype == np.float32 and grads["b"] is None
    assert np.linalg.norm(grads["a"]) == pytest.approx(1.0, rel=1e-5)


def _book_schedule(n_steps, peak_lr, warmup_steps, total_steps, min_lr, initial_lr):
    """The learning rates of the book's train_model (appendix D), written as the book writes it."""
    lr_increment = (peak_lr - initial_lr) / warmup_steps
    lrs, global_step = [], -1
    for _ in range(n_steps):
        global_step += 1
        if global_step < warmup_steps:
            lr = initial_lr + global_step * lr_increment
        else:
            progress = (global_step - warmup_steps) / (total_steps - warmup_steps)
            lr = min_lr + (peak_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))
        lrs.append(lr)
    return lrs


def test_schedule_matches_the_book_and_its_landmarks():
    kw = dict(peak_lr=1e-3, warmup_steps=20, total_steps=100, min_lr=1e-5, initial_lr=1e-4)
    ours = [lr_at(s, **kw) for s in range(101)]
    assert ours == pytest.approx(_book_schedule(101, **kw), rel=1e-15, abs=0)
    assert ours[0] == kw["initial_lr"]
    assert ours[10] == pytest.approx((kw["initial_lr"] + kw["peak_lr"]) / 2, rel=1e-14)
    assert ours[20] == kw["peak_lr"]  # cos(0) = 1: the peak, exactly
    assert ours[60] == pytest.approx((kw["peak_lr"] + kw["min_lr"]) / 2, rel=1e-14)
    assert ours[100] == pytest.approx(kw["min_lr"], rel=1e-14)
    assert lr_at(500, **kw) == ours[100]  # held at the floor after the end
    assert all(a > b for a, b in zip(ours[20:], ours[21:]))  # strictly decreasing after warmup
    assert lr_at(0, **SCHEDULE) == 0.0  # default initial_lr


def test_adamw_state_dict_round_trip_continues_identically():
    rng = np.random.default_rng(4)
    params = _random_params(rng)
    grads = [_random_grads(rng) for _ in range(10)]
    opt = AdamW(params, lr=2e-3, weight_decay=0.05)
    for g in grads[:5]:
        opt.step(g)
    saved_params = {k: v.copy() for k, v in params.items()}
    saved_state = opt.state_dict()
    for g in grads[5:]:
        opt.step(g)

    resumed = {k: v.copy() for k, v in saved_params.items()}
    opt2 = AdamW(resumed, lr=123.0)  # hyper-parameters come from the state
    opt2.load_state_dict(saved_state)
    for g in grads[5:]:
        opt2.step(g)
    for k in SHAPES:
        np.testing.assert_array_equal(resumed[k], params[k])
    assert opt2.steps == opt.steps
    # state_dict holds copies: stepping after saving must not change what was saved
    assert saved_state["steps"]["w"] == 5


def test_optim_bad_input():
    params = {"w": np.zeros((2, 3))}
    with pytest.raises(ValueError, match="lr must be >= 0"):
        AdamW(params, lr=-1.0)
    with pytest.raises(ValueError, match="betas must both lie in"):
        AdamW(params, betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="params must be a non-empty dict"):
        AdamW([np.zeros(3)])
    opt = AdamW(params)
    with pytest.raises(ValueError, match=r"grads\['w'\] must have shape \(2, 3\), got \(3, 2\)"):
        opt.step({"w": np.zeros((3, 2))})
    with pytest.raises(ValueError, match=r"not parameters: \['v'\]"):
        opt.step({"v": np.zeros(2)})
    state = opt.state_dict()
    state["steps"] = {"w": 1}
    state["exp_avg"] = {"w": np.zeros((3, 3))}
    with pytest.raises(ValueError, match=r"state\['exp_avg'\]\['w'\] must have shape \(2, 3\)"):
        opt.load_state_dict(state)
    with pytest.raises(ValueError, match="max_norm must be positive"):
        clip_grad_norm({"w": np.ones(2)}, 0.0)
    with pytest.raises(ValueError, match="total_steps .* must be greater than warmup_steps"):
        lr_at(0, peak_lr=1.0, warmup_steps=10, total_steps=10, min_lr=0.0)
    with pytest.raises(ValueError, match="step must be >= 0"):
        lr_at(-1, **SCHEDULE)
    with pytest.raises(ValueError, match="min_lr <= peak_lr"):
        lr_at(0, peak_lr=1e-4, warmup_steps=1, total_steps=10, min_lr=1e-3)
