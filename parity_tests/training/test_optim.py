"""numpy_impl.AdamW / clip_grad_norm against torch.optim.AdamW / clip_grad_norm_, and the schedule.

The references are torch's own implementations (AdamW with foreach=False, the single-tensor code
whose float operations ours follows), and for the schedule the book's training loop written out.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import torch_impl
from numpy_impl.fast.blocks import BLOCK_ELEMENTS
from numpy_impl.optim import AdamW, clip_coef, clip_grad_norm
from twinlm.parity.harness import Float32Runs, rel_error
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


def test_adamw_float32_no_worse_than_torch(record_float32):
    """float32: both optimizers against the float64 run on the same float32-rounded inputs, torch's
    as the reference (the float32 standard in twinlm/parity/harness.py)."""
    rng = np.random.default_rng(2)
    params = {k: v.astype(np.float32) for k, v in _random_params(rng).items()}
    grads = [{k: g.astype(np.float32) for k, g in _random_grads(rng).items()} for _ in range(20)]
    lrs = [lr_at(s, **SCHEDULE) + 1e-3 for s in range(20)]
    hyper = dict(weight_decay=0.1)
    exact, _, _, _ = _run_both(params, grads, lrs, np.float64, **hyper)
    ours, theirs, _, _ = _run_both(params, grads, lrs, np.float32, **hyper)
    assert all(v.dtype == np.float32 for v in ours.values())
    runs = Float32Runs()
    runs["numpy", "params"].add(ours, theirs, exact)
    record_float32("AdamW", runs)


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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_fused_into_adamw_is_identical(dtype):
    """clip_coef + step(grads, grad_scale=coef) (what NumpyEngine does) gives bit for bit the
    parameters of clip_grad_norm + step, here with a parameter larger than the fast path's block
    and one of one element. The reference only: the fast path folds the factor into its constants
    (other rounding), and parity_tests/ops/test_fast_path.py holds it to the reference with
    clipping."""
    rng = np.random.default_rng(5)
    shapes = {"big": (3, BLOCK_ELEMENTS + 7), "w": (6, 5), "one": (1,)}
    params = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    a, b = ({k: v.copy() for k, v in params.items()} for _ in range(2))
    opt_a, opt_b = (AdamW(d, lr=1e-2, weight_decay=0.1) for d in (a, b))
    for _ in range(3):
        grads = {k: (3.0 * rng.standard_normal(s)).astype(dtype) for k, s in shapes.items()}
        norm, coef = clip_coef(grads, 0.5)
        opt_a.step(grads, grad_scale=coef)  # grads themselves stay as they were
        assert norm == clip_grad_norm(grads, 0.5) and coef < 1.0
        opt_b.step(grads)
    for k in shapes:
        np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_array_equal(opt_a.exp_avg_sq[k], opt_b.exp_avg_sq[k])


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


# ---- torch_impl.AdamW / clip_grad_norm: NumPy vs torch_impl vs torch.optim -------------------------

HYPER = {  # lr is set per step; betas, eps and weight decay varied (the lerp's two branches too)
    "default": dict(betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1),
    "beta1<0.5, no decay": dict(betas=(0.3, 0.95), eps=1e-6, weight_decay=0.0),
    "beta1=0.5": dict(betas=(0.5, 0.9), eps=1e-10, weight_decay=0.02),
    "beta1=0": dict(betas=(0.0, 0.99), eps=1e-7, weight_decay=1.0),
}
N_STEPS = 60


def _grads_at(rng, step: int, dtype) -> dict:
    """Random grads; "b" has none on every third step (None) and "one" none on every fifth (absent)."""
    grads = {k: g.astype(dtype) for k, g in _random_grads(rng).items()}
    if step % 3 == 1:
        grads["b"] = None
    if step % 5 == 2:
        del grads["one"]
    return grads


def _run_three(params, steps, dtype, hyper, save_at=None):
    """numpy_impl.AdamW, torch_impl.AdamW and torch.optim.AdamW(foreach=False) over the same
    steps [(lr, grads)]; returns each one's final params and (steps, m, v) state."""
    tdtype = _torch_dtype(dtype)
    np_params = {k: v.astype(dtype) for k, v in params.items()}
    ti_params = {k: torch.tensor(v, dtype=tdtype) for k, v in params.items()}
    ref_params = {k: torch.tensor(v, dtype=tdtype, requires_grad=True) for k, v in params.items()}
    opts = [
        AdamW(np_params, lr=steps[0][0], **hyper),
        torch_impl.AdamW(ti_params, lr=steps[0][0], **hyper),
        torch.optim.AdamW(list(ref_params.values()), lr=steps[0][0], foreach=False, **hyper),
    ]
    for lr, grads in steps:
        grads = {k: None if g is None else g.astype(dtype) for k, g in grads.items()}
        opts[0].lr = opts[1].lr = lr
        opts[2].param_groups[0]["lr"] = lr
        opts[0].step(grads)
        opts[1].step({k: None if g is None else torch.tensor(g) for k, g in grads.items()})
        for k, p in ref_params.items():
            p.grad = None if grads.get(k) is None else torch.tensor(grads[k])
        opts[2].step()
    ref_state = {k: opts[2].state[p] for k, p in ref_params.items() if p in opts[2].state}
    states = [
        (opts[0].steps, opts[0].exp_avg, opts[0].exp_avg_sq),
        (
            opts[1].steps,
            *({k: t.numpy() for k, t in d.items()} for d in (opts[1].exp_avg, opts[1].exp_avg_sq)),
        ),
        (
            {k: int(s["step"]) for k, s in ref_state.items()},
            {k: s["exp_avg"].numpy() for k, s in ref_state.items()},
            {k: s["exp_avg_sq"].numpy() for k, s in ref_state.items()},
        ),
    ]
    finals = [
        np_params,
        *({k: t.detach().numpy() for k, t in d.items()} for d in (ti_params, ref_params)),
    ]
    return finals, states


def _steps(rng, dtype, n=N_STEPS):
    lrs = [lr_at(s, **{**SCHEDULE, "total_steps": n}) + 1e-3 for s in range(n)]
    return [(lr, _grads_at(rng, s, dtype)) for s, lr in enumerate(lrs)]


@pytest.mark.parametrize("hyper", list(HYPER.values()), ids=list(HYPER))
def test_torch_impl_adamw_three_way_float64(hyper, record_error):
    rng = np.random.default_rng(10)
    params = _random_params(rng)
    finals, states = _run_three(params, _steps(rng, np.float64), np.float64, hyper)
    (ours, impl, ref), (s_ours, s_impl, s_ref) = finals, states
    assert s_ours[0] == s_impl[0] == s_ref[0]  # per-parameter step counts, missing grads skipped
    assert s_ours[0]["w"] == N_STEPS and s_ours[0]["b"] < N_STEPS and s_ours[0]["one"] < N_STEPS
    assert max(rel_error(ref[k], params[k]) for k in SHAPES) > 1e-3  # the params really moved
    for name, got, state in (("numpy", ours, s_ours), ("torch_impl", impl, s_impl)):
        err = max(rel_error(got[k], ref[k]) for k in SHAPES)
        err_state = max(rel_error(state[i][k], s_ref[i][k]) for i in (1, 2) for k in SHAPES)
        record_error("AdamW 3-way", f"{name} params vs torch (f64)", err, TOL_ADAMW_FLOAT64)
        record_error("AdamW 3-way", f"{name} m, v vs torch (f64)", err_state, TOL_ADAMW_FLOAT64)
    err = max(rel_error(impl[k], ours[k]) for k in SHAPES)
    record_error("AdamW 3-way", "torch_impl vs numpy (f64)", err, TOL_ADAMW_FLOAT64)


def test_torch_impl_adamw_float32_no_worse_than_torch(record_float32):
    """float32: each optimizer against the float64 run on the same float32-rounded inputs,
    torch.optim's as the reference (the float32 standard in twinlm/parity/harness.py)."""
    rng = np.random.default_rng(11)
    params = {k: v.astype(np.float32) for k, v in _random_params(rng).items()}
    steps = _steps(rng, np.float32)
    exact = _run_three(params, steps, np.float64, HYPER["default"])[0][2]
    (ours, impl, ref), _ = _run_three(params, steps, np.float32, HYPER["default"])
    assert all(v.dtype == np.float32 for d in (ours, impl) for v in d.values())
    runs = Float32Runs()
    for name, got in (("numpy", ours), ("torch_impl", impl)):
        runs[name, "params"].add(got, ref, exact)
    record_float32("AdamW 3-way", runs)


def test_adamw_state_dicts_are_one_format_and_resume_across_backends():
    """torch_impl.AdamW.state_dict() has numpy_impl.AdamW's keys and value kinds; each optimizer
    resumes from the other's state and continues as the uninterrupted run does."""
    rng = np.random.default_rng(12)
    params = _random_params(rng)
    steps = _steps(rng, np.float64, n=12)
    hyper = HYPER["beta1<0.5, no decay"]
    straight, _ = _run_three(params, steps, np.float64, hyper)

    np_params = {k: v.copy() for k, v in params.items()}
    t_params = {k: torch.tensor(v) for k, v in params.items()}
    np_opt, t_opt = AdamW(np_params, **hyper), torch_impl.AdamW(t_params, **hyper)
    for lr, grads in steps[:6]:
        np_opt.lr = t_opt.lr = lr
        np_opt.step(grads)
        t_opt.step({k: None if g is None else torch.tensor(g) for k, g in grads.items()})
    np_state, t_state = np_opt.state_dict(), t_opt.state_dict()
    assert list(t_state) == list(np_state)
    assert t_state["steps"] == np_state["steps"] and t_state["betas"] == np_state["betas"]
    assert all(isinstance(v, torch.Tensor) for v in t_state["exp_avg"].values())
    t_opt.exp_avg["w"] += 1.0  # the saved state holds copies
    assert not torch.equal(t_state["exp_avg"]["w"], t_opt.exp_avg["w"])

    # Swap: NumPy continues from torch_impl's state, torch_impl from NumPy's (with lr = 123 given to
    # the constructors: the hyper-parameters come from the state).
    np_resumed = {k: t.detach().numpy().copy() for k, t in t_params.items()}
    for k, v in np_params.items():
        t_params[k] = torch.tensor(v)
    np_params, np_opt = np_resumed, AdamW(np_resumed, lr=123.0)
    t_opt = torch_impl.AdamW(t_params, lr=123.0)
    np_opt.load_state_dict(t_state)
    t_opt.load_state_dict(np_state)
    for lr, grads in steps[6:]:
        np_opt.lr = t_opt.lr = lr
        np_opt.step(grads)
        t_opt.step({k: None if g is None else torch.tensor(g) for k, g in grads.items()})
    for k in SHAPES:
        assert rel_error(np_params[k], straight[1][k]) <= TOL_ADAMW_FLOAT64  # torch_impl's run
        assert rel_error(t_params[k].numpy(), straight[0][k]) <= TOL_ADAMW_FLOAT64  # NumPy's run


def _clip_three(grads: dict, max_norm: float, dtype):
    """(norm, clipped grads) from numpy_impl, torch_impl and torch.nn.utils.clip_grad_norm_
    (foreach=False), each on its own copy of grads in dtype."""
    grads = {k: None if g is None else g.astype(dtype) for k, g in grads.items()}
    ref = {
        k: torch.zeros(g.shape, dtype=_torch_dtype(dtype), requires_grad=True)
        for k, g in grads.items()
        if g is not None
    }
    for k, t in ref.items():
        t.grad = torch.tensor(grads[k])
    ref_norm = float(torch.nn.utils.clip_grad_norm_(list(ref.values()), max_norm, foreach=False))
    ours = {k: None if g is None else g.copy() for k, g in grads.items()}
    impl = {k: None if g is None else torch.tensor(g) for k, g in grads.items()}
    ours_norm, impl_norm = clip_grad_norm(ours, max_norm), torch_impl.clip_grad_norm(impl, max_norm)
    assert impl["none"] is None and impl["w"].dtype == _torch_dtype(dtype)
    return {
        "numpy": (ours_norm, {k: g for k, g in ours.items() if g is not None}),
        "torch_impl": (impl_norm, {k: g.numpy() for k, g in impl.items() if g is not None}),
        "torch": (ref_norm, {k: t.grad.numpy() for k, t in ref.items()}),
    }


@pytest.mark.parametrize("max_norm", [0.5, 1e6], ids=["clips", "no-clip"])
def test_torch_impl_clip_grad_norm_three_way(max_norm, record_error, record_float32):
    """float64: NumPy and torch_impl against torch's clip_grad_norm_; float32: each against the
    float64 run on the same rounded grads, torch's as the reference (the float32 standard)."""
    rng = np.random.default_rng(13)
    grads = {k: g.astype(np.float32) for k, g in _random_grads(rng).items()} | {"none": None}
    f64 = _clip_three(grads, max_norm, np.float64)
    f32 = _clip_three(grads, max_norm, np.float32)
    ref_norm, ref_grads = f64["torch"]

    def errors(norm, got):
        return abs(norm - ref_norm) / ref_norm, max(rel_error(got[k], ref_grads[k]) for k in got)

    runs = Float32Runs()
    for name in ("numpy", "torch_impl"):
        norm_err, grad_err = errors(*f64[name])
        record_error("clip_grad_norm 3-way", f"{name} norm (f64)", norm_err, 1e-14)
        record_error("clip_grad_norm 3-way", f"{name} grads (f64)", grad_err, 1e-14)
        runs[name, "norm"].add([np.float32(f32[name][0])], [f32["torch"][0]], [ref_norm])
        runs[name, "grads"].add(f32[name][1], f32["torch"][1], ref_grads)
    record_float32("clip_grad_norm 3-way", runs)
    assert torch_impl.clip_grad_norm({"a": None}, 1.0) == 0.0


def test_torch_impl_optim_bad_input():
    params = {"w": torch.zeros(2, 3)}
    with pytest.raises(ValueError, match="lr must be >= 0"):
        torch_impl.AdamW(params, lr=-1.0)
    with pytest.raises(ValueError, match="betas must both lie in"):
        torch_impl.AdamW(params, betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="params must be a non-empty dict"):
        torch_impl.AdamW([torch.zeros(3)])
    opt = torch_impl.AdamW(params)
    with pytest.raises(ValueError, match=r"grads\['w'\] must have shape \(2, 3\), got \(3, 2\)"):
        opt.step({"w": torch.zeros(3, 2)})
    with pytest.raises(ValueError, match=r"not parameters: \['v'\]"):
        opt.step({"v": torch.zeros(2)})
    state = opt.state_dict()
    state["steps"] = {"w": 1}
    state["exp_avg"] = {"w": torch.zeros(3, 3)}
    with pytest.raises(ValueError, match=r"state\['exp_avg'\]\['w'\] must have shape \(2, 3\)"):
        opt.load_state_dict(state)
    with pytest.raises(ValueError, match="max_norm must be positive"):
        torch_impl.clip_grad_norm({"w": torch.ones(2)}, 0.0)
