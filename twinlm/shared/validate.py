"""Input checks shared by both backends' public entry points.

Pure Python on `.shape` / `.dtype`, so NumPy arrays and torch tensors go through the same code and
the same messages: `ValueError`/`TypeError` naming the argument, what was expected, what was given.
Nothing here imports numpy or torch.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence

from twinlm.shared.naming import CELL_STATE, CELLS, QKV_PROJECTIONS


def _shape(a) -> tuple[int, ...]:
    return tuple(a.shape)  # NumPy's shape and torch.Size both hold Python ints


def _named_shape(name: str, a) -> tuple[int, ...]:
    """a's shape, or a TypeError naming `name` when a is no array (a list, a number, None)."""
    if not hasattr(a, "shape"):
        raise TypeError(f"{name} must be an array, got {type(a).__name__}")
    return _shape(a)


# NumPy's dtype.kind for the common dtypes: str(np.dtype) costs microseconds, kind nanoseconds,
# and these checks run on every op call. Other dtypes (torch's, ml_dtypes' bfloat16) go by name.
_NUMPY_KINDS = {"f": "float", "i": "int", "u": "int", "b": "bool", "c": "complex"}


def _dtype_family(a) -> str:
    kind = getattr(a.dtype, "kind", None)
    if kind in _NUMPY_KINDS:
        return _NUMPY_KINDS[kind]
    name = str(a.dtype)
    if "complex" in name:
        return "complex"
    if "float" in name or "double" in name or "half" in name:
        return "float"
    return "int" if "int" in name else "other"


def is_integer_dtype(a) -> bool:
    """True for NumPy or torch integer arrays (signed or unsigned), False for bool and floats."""
    return _dtype_family(a) == "int"


def is_float_dtype(a) -> bool:
    return _dtype_family(a) == "float"


def require_float(name: str, a) -> None:
    if not hasattr(a, "dtype") or not is_float_dtype(a):
        raise TypeError(
            f"{name} must be a floating-point array, got {getattr(a, 'dtype', type(a))}"
        )


def require_float_inputs(names: Sequence[str], arrays: Sequence) -> None:
    """Each array floating point (int, bool and complex refused), all of one dtype (no silent
    upcast); a None entry (an absent bias) is skipped. O(1): reads .dtype, never the data."""
    first = None
    for n, a in zip(names, arrays):
        if a is None:
            continue
        require_float(n, a)
        if first is None:
            first = a.dtype
        elif a.dtype is not first:  # built-in dtypes are singletons; else compare by name
            present = [(n, a) for n, a in zip(names, arrays) if a is not None]
            require_same_dtype([n for n, _ in present], [a for _, a in present])
            return


ARRAY_TYPES = {"numpy": "a NumPy array", "torch": "a torch.Tensor"}  # by the type's top module


def require_backend(name: str, a, backend: str) -> None:
    """`a` is an array of `backend` ("numpy": an ndarray, "torch": a Tensor), read off its type's
    module so that neither library is imported here."""
    got = type(a).__module__.split(".")[0]
    if got != backend:
        raise TypeError(
            f"{name} must be {ARRAY_TYPES[backend]} (a {backend} model), "
            f"got {type(a).__name__} from {got}"
        )


def require_real(name: str, value, min_value: float | None = None) -> None:
    """A finite real number (Python, NumPy; bool refused), optionally at least `min_value`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if min_value is not None and value < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {value}")


def require_eps(name: str, eps) -> None:
    """A norm's ε: finite and ≥ 0 (0 is torch's F.layer_norm's and nn.RMSNorm's to accept too)."""
    require_real(name, eps, 0.0)


def require_ndim(name: str, a, min_ndim: int, max_ndim: int | None = None) -> None:
    nd = len(_named_shape(name, a))
    if nd < min_ndim or (max_ndim is not None and nd > max_ndim):
        want = f"{min_ndim}" if max_ndim == min_ndim else f"at least {min_ndim}"
        if max_ndim is not None and max_ndim != min_ndim:
            want = f"{min_ndim} to {max_ndim}"
        raise ValueError(f"{name} must have {want} dimensions, got shape {_shape(a)}")


def require_shape(name: str, a, expected: Sequence[int | None]) -> None:
    """`expected` may hold None for 'any size' in that position."""
    got = _named_shape(name, a)
    if got == expected:  # the common case, without the per-dimension loop
        return
    if len(got) != len(expected) or any(e is not None and g != e for g, e in zip(got, expected)):
        want = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{name} must have shape {want}, got {got}")


def require_last_dim(name: str, a, size: int, because: str = "") -> None:
    got = _named_shape(name, a)
    if not got or got[-1] != size:
        why = f" ({because})" if because else ""
        raise ValueError(f"{name} must have last dimension {size}{why}, got shape {got}")


def require_same_shape(names: Iterable[str], arrays: Iterable) -> None:
    names, shapes = list(names), [_shape(a) for a in arrays]
    if len(set(shapes)) > 1:
        listed = ", ".join(f"{n} {s}" for n, s in zip(names, shapes))
        raise ValueError(f"{' and '.join(names)} must have the same shape, got {listed}")


def require_broadcastable(name: str, a, shape: Sequence[int]) -> None:
    """`a` broadcasts to exactly `shape` (each trailing dimension equal or 1), never enlarging it."""
    got, shape = _shape(a), tuple(int(s) for s in shape)
    if len(got) > len(shape) or any(g not in (1, s) for g, s in zip(got[::-1], shape[::-1])):
        raise ValueError(f"{name} must broadcast to shape {shape}, got shape {got}")


def require_ids(name: str, ids, upper: int, allowed: Iterable[int] = ()) -> None:
    """Integer ids in [0, upper); values in `allowed` (e.g. an ignore_index) pass too."""
    if not hasattr(ids, "dtype") or not is_integer_dtype(ids):
        raise TypeError(f"{name} must be an integer array, got {getattr(ids, 'dtype', type(ids))}")
    if _shape(ids) and 0 in _shape(ids):
        return
    bad = (ids < 0) | (ids >= upper)
    for v in allowed:
        bad = bad & (ids != v)
    if bool(bad.any()):
        first = ids[bad].reshape(-1)[0]
        raise ValueError(f"{name} must lie in [0, {upper}), got {int(first)}")


def require_probability(name: str, p: float) -> None:
    if not 0.0 <= float(p) < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {p}")


def require_int(name: str, value, min_value: int | None = None) -> None:
    """A Python or NumPy integer (bool is rejected), optionally at least `min_value`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if min_value is not None and value < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {value}")


def require_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")


def require_choice(name: str, value, choices: Sequence) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def require_divisible(name: str, value: int, by_name: str, by: int) -> None:
    if by <= 0 or value % by != 0:
        raise ValueError(f"{name} ({value}) must be divisible by {by_name} ({by})")


def require_keys(name: str, mapping, required: Iterable[str], optional: Iterable[str] = ()) -> None:
    """`mapping` (a params dict) holds every key in `required`, and nothing outside required + optional."""
    required, optional = list(required), list(optional)
    missing = [k for k in required if k not in mapping]
    unexpected = [k for k in mapping if k not in required and k not in optional]
    if missing or unexpected:
        extra = f" (optional: {optional})" if optional else ""
        raise ValueError(
            f"{name} must have keys {required}{extra}; missing {missing}, unexpected {unexpected}"
        )


def require_exact_keys(name: str, mapping, expected: Iterable[str], what: str = "") -> None:
    """`mapping` holds exactly the keys in `expected`; the message lists what is missing and what
    is unexpected (not the whole expected list, which for a GPT is long). `what` ends the subject,
    e.g. " cfg" for "gpt_params keys do not match cfg"."""
    expected = list(expected)
    missing = [k for k in expected if k not in mapping]
    unexpected = [k for k in mapping if k not in expected]
    if missing or unexpected:
        raise ValueError(
            f"{name} keys do not match{what}: missing {missing}, unexpected {unexpected}"
        )


LSTM_WEIGHTS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")  # per layer, torch.nn.LSTM's order
RECURRENT_WEIGHTS = LSTM_WEIGHTS  # torch.nn.GRU and torch.nn.RNN name theirs the same


def require_recurrent_weights(
    weight_ih, weight_hh, bias_ih, bias_hh, gates: int, suffix: str = ""
) -> tuple[int, int]:
    """torch.nn.LSTM / GRU / RNN layout with `gates` stacked pre-activations (4, 3, 1):
    weight_ih (gates·H, I), weight_hh (gates·H, H), bias_ih and bias_hh (gates·H,), all floating
    point of one dtype. Returns (I, H). `suffix` names a layer's keys, e.g. "_l1"."""
    names = [f"{w}{suffix}" for w in RECURRENT_WEIGHTS]
    arrays = (weight_ih, weight_hh, bias_ih, bias_hh)
    for n, a in zip(names, arrays):
        require_float(n, a)
    require_ndim(names[1], weight_hh, 2, 2)
    hidden = _shape(weight_hh)[1]
    require_shape(names[1], weight_hh, (gates * hidden, hidden))
    require_ndim(names[0], weight_ih, 2, 2)
    require_shape(names[0], weight_ih, (gates * hidden, None))
    require_shape(names[2], bias_ih, (gates * hidden,))
    require_shape(names[3], bias_hh, (gates * hidden,))
    require_same_dtype(names, arrays)
    return _shape(weight_ih)[1], hidden


def require_lstm_weights(
    weight_ih, weight_hh, bias_ih, bias_hh, suffix: str = ""
) -> tuple[int, int]:
    """torch.nn.LSTM layout: weight_ih (4H, I), weight_hh (4H, H), bias_ih and bias_hh (4H,), all
    floating point of one dtype. Returns (I, H). `suffix` names a layer's keys, e.g. "_l1"."""
    return require_recurrent_weights(weight_ih, weight_hh, bias_ih, bias_hh, 4, suffix)


def require_same_dtype(names: Iterable[str], arrays: Iterable) -> None:
    arrays = list(arrays)
    first = arrays[0].dtype if arrays else None
    if all(a.dtype is first for a in arrays):  # built-in dtypes are singletons: the fast path
        return
    names, dtypes = list(names), [str(a.dtype) for a in arrays]
    if len(set(dtypes)) > 1:
        listed = ", ".join(f"{n} {d}" for n, d in zip(names, dtypes))
        raise TypeError(f"{' and '.join(names)} must have the same dtype, got {listed}")


def require_token_batch(
    name: str,
    idx,
    vocab_size: int,
    context_length: int | None = None,
    backend: str | None = None,
) -> None:
    """Token ids (batch, seq): integers in [0, vocab_size), batch ≥ 1, 1 ≤ seq ≤ context_length;
    an array of `backend` when given (a model's forward names its own)."""
    if backend is not None and hasattr(idx, "dtype"):
        require_backend(name, idx, backend)
    require_ids(name, idx, vocab_size)
    got = _shape(idx)
    if len(got) != 2:
        raise ValueError(f"{name} must have 2 dimensions (batch, seq), got shape {got}")
    if got[0] == 0:
        raise ValueError(f"{name} must hold at least one sequence, got shape {got}")
    if got[1] == 0:
        raise ValueError(f"{name} must hold at least one position, got shape {got}")
    if context_length is not None and got[1] > context_length:
        raise ValueError(
            f"{name} has sequence length {got[1]}, more than context_length {context_length}"
        )


CHARRNN_CONFIG_KEYS = ("vocab_size", "emb_dim", "hidden_size", "num_layers", "drop_rate")


def require_charrnn_config(cfg) -> None:
    """A char-RNN config dict: vocab_size, emb_dim, hidden_size, num_layers integers ≥ 1,
    drop_rate in [0, 1), optionally cell (one of naming.CELLS; absent: "lstm"), nothing else."""
    if not isinstance(cfg, dict):
        raise TypeError(f"cfg must be a dict with keys {list(CHARRNN_CONFIG_KEYS)}, got {cfg!r}")
    require_keys("cfg", cfg, CHARRNN_CONFIG_KEYS, optional=("cell",))
    for key in CHARRNN_CONFIG_KEYS[:-1]:
        require_int(f"cfg[{key!r}]", cfg[key], 1)
    require_probability("cfg['drop_rate']", cfg["drop_rate"])
    if "cell" in cfg:
        require_choice("cfg['cell']", cfg["cell"], CELLS)


def require_cell_state(name: str, state, cell: str) -> None:
    """A recurrent model's state: None, or a tuple (list) of one array per CELL_STATE[cell]
    ((h, c) for the LSTM, (h,) for the GRU and the vanilla RNN); shapes are the layer's to check."""
    if state is None:
        return
    names = CELL_STATE[cell]
    if not isinstance(state, tuple | list) or len(state) != len(names):
        got = f"{len(state)} arrays" if isinstance(state, tuple | list) else type(state).__name__
        raise ValueError(
            f"{name} must be a tuple ({', '.join(names)}) for a {cell} cell, got {got}"
        )


def require_dropout_masks(name: str, masks, shapes: dict[str, tuple[int, ...]]) -> None:
    """Named dropout keep-masks: a dict whose names are some of `shapes` (any subset; a missing
    name means no dropout there), each mask of that shape (naming.*_dropout_mask_shapes)."""
    if not isinstance(masks, dict):
        raise TypeError(
            f"{name} must be a dict of named keep-masks (some of {list(shapes)}), "
            f"got {type(masks).__name__}"
        )
    unknown = sorted(set(masks) - set(shapes))
    if unknown:
        raise ValueError(f"{name} has unknown names {unknown}; expected some of {list(shapes)}")
    for key, mask in masks.items():
        require_shape(f"{name}[{key!r}]", mask, shapes[key])


# ---- the optimizers' checks: one copy for numpy_impl/optim.py and torch_impl/optim.py ------------


def require_adamw_options(params, lr: float, betas, eps: float, weight_decay: float) -> None:
    """AdamW's constructor: a non-empty dict of parameters; lr, eps, weight_decay finite and ≥ 0;
    betas a pair in [0, 1) (torch.optim.AdamW's ranges; it lets lr = inf through, we do not)."""
    if not isinstance(params, dict) or not params:
        raise TypeError("params must be a non-empty dict of name -> array")
    _require_adamw_settings(lr, betas, eps, weight_decay, "{}")


def _require_adamw_settings(lr, betas, eps, weight_decay, name: str) -> None:
    """lr, eps, weight_decay finite and ≥ 0, betas a pair in [0, 1); `name` formats each
    setting's name ("{}" for the constructor's arguments, "state[{!r}]" for a state_dict's)."""
    require_real(name.format("lr"), lr, 0.0)
    if not isinstance(betas, tuple | list) or len(betas) != 2:
        raise TypeError(f"{name.format('betas')} must be a pair (beta1, beta2), got {betas!r}")
    for b in betas:
        require_real(name.format("betas"), b)
        if not 0.0 <= b < 1.0:
            raise ValueError(f"{name.format('betas')} must both lie in [0, 1), got {tuple(betas)}")
    require_real(name.format("eps"), eps, 0.0)
    require_real(name.format("weight_decay"), weight_decay, 0.0)


def require_grads(grads, params) -> None:
    """An optimizer step's grads: keys among the params', each None or of its parameter's shape."""
    unknown = sorted(set(grads) - set(params))
    if unknown:
        raise ValueError(f"grads has keys that are not parameters: {unknown}")
    for name, g in grads.items():
        if g is not None and _shape(g) != _shape(params[name]):
            raise ValueError(
                f"grads[{name!r}] must have shape {_shape(params[name])}, got {_shape(g)}"
            )


def require_adamw_state(state, params) -> None:
    """An AdamW state_dict: every key, and m and v of each stepped parameter's shape."""
    for key in ("lr", "betas", "eps", "weight_decay", "steps", "exp_avg", "exp_avg_sq"):
        if key not in state:
            raise ValueError(f"state is missing {key!r}")
    settings = (state["lr"], state["betas"], state["eps"], state["weight_decay"])
    _require_adamw_settings(*settings, "state[{!r}]")
    for name in state["steps"]:
        if name not in params:
            raise ValueError(f"state has an entry for unknown parameter {name!r}")
        for buf in ("exp_avg", "exp_avg_sq"):
            a = state[buf].get(name)
            if a is None or _shape(a) != _shape(params[name]):
                got = None if a is None else _shape(a)
                raise ValueError(
                    f"state[{buf!r}][{name!r}] must have shape {_shape(params[name])}, got {got}"
                )


# ---- the ops' input checks: one copy, called by numpy_impl and torch_impl alike -------------------


def require_linear_inputs(x, weight, bias) -> None:
    """linear: x (..., in), weight (out, in), bias (out,) or None, floating point of one dtype."""
    require_float_inputs(("x", "weight", "bias"), (x, weight, bias))
    require_ndim("weight", weight, 2, 2)
    require_last_dim("x", x, _shape(weight)[1], "weight.shape[1], the layer's in_features")
    if bias is not None:
        require_shape("bias", bias, (_shape(weight)[0],))


def require_softmax_input(x) -> None:
    """softmax over the last axis: x floating point with at least one dimension."""
    require_float("x", x)
    require_ndim("x", x, 1)


def require_layernorm_inputs(x, scale, shift, eps) -> None:
    """layernorm: x (..., D), scale and shift (D,), one floating dtype; eps finite and ≥ 0."""
    require_float("x", x)
    require_ndim("x", x, 1)
    require_shape("scale", scale, (_shape(x)[-1],))
    require_shape("shift", shift, (_shape(x)[-1],))
    require_float_inputs(("x", "scale", "shift"), (x, scale, shift))
    require_eps("eps", eps)


def require_rmsnorm_inputs(x, weight, eps) -> None:
    """rmsnorm: x (..., D), weight (D,), one floating dtype; eps finite and ≥ 0."""
    require_float("x", x)
    require_ndim("x", x, 1)
    require_shape("weight", weight, (_shape(x)[-1],))
    require_float_inputs(("x", "weight"), (x, weight))
    require_eps("eps", eps)


def require_attention_inputs(q, k, v, causal: bool, dropout_mask, p: float) -> None:
    """attention(q, k, v): q (..., Tq, d), k and v (..., Tk, d), floating point; causal needs
    Tq ≤ Tk (the queries are the last positions); dropout_mask (..., Tq, Tk), required if p > 0."""
    for name, a in (("q", q), ("k", k), ("v", v)):
        require_float(name, a)
        require_ndim(name, a, 2)
    require_same_dtype(("q", "k", "v"), (q, k, v))
    require_same_shape(("k", "v"), (k, v))
    # q: same leading dims and head size as k, any number of query rows.
    k_shape = _shape(k)
    require_shape("q", q, (*k_shape[:-2], None, k_shape[-1]))
    if causal and _shape(q)[-2] > k_shape[-2]:
        raise ValueError(
            f"causal attention needs no more queries than keys (q rows are the last positions), "
            f"got q {_shape(q)} and k {k_shape}"
        )
    require_probability("p", p)
    if dropout_mask is not None:
        require_shape("dropout_mask", dropout_mask, (*_shape(q)[:-1], k_shape[-2]))
    elif p > 0:
        raise ValueError(f"p = {p} needs a dropout_mask (drawn by the caller), got None")


MHA_KEYS = ("W_query.weight", "W_key.weight", "W_value.weight", "out_proj.weight", "out_proj.bias")
MHA_QKV_BIAS_KEYS = ("W_query.bias", "W_key.bias", "W_value.bias")  # present when qkv_bias=True


def require_mha_inputs(x, params, num_heads: int) -> int:
    """multihead_attention: x (B, T, d_in) against the params' shapes (the book's
    MultiHeadAttention state_dict keys); returns d_out."""
    require_keys("params", params, MHA_KEYS, MHA_QKV_BIAS_KEYS)
    require_ndim("W_query.weight", params["W_query.weight"], 2, 2)
    d_out, d_in = _shape(params["W_query.weight"])
    require_divisible("d_out", d_out, "num_heads", num_heads)
    require_float("x", x)
    require_shape("x", x, (None, None, d_in))
    for name in QKV_PROJECTIONS:
        require_shape(f"{name}.weight", params[f"{name}.weight"], (d_out, d_in))
        if params.get(f"{name}.bias") is not None:
            require_shape(f"{name}.bias", params[f"{name}.bias"], (d_out,))
    require_shape("out_proj.weight", params["out_proj.weight"], (d_out, d_out))
    require_shape("out_proj.bias", params["out_proj.bias"], (d_out,))
    return d_out


FEEDFORWARD_KEYS = ("layers.0.weight", "layers.0.bias", "layers.2.weight", "layers.2.bias")


def require_feedforward_inputs(x, params) -> None:
    """feedforward: x (..., d) against layers.0.weight (hidden, d) and the other params' shapes."""
    require_keys("params", params, FEEDFORWARD_KEYS)
    require_ndim("layers.0.weight", params["layers.0.weight"], 2, 2)
    hidden, d = _shape(params["layers.0.weight"])
    require_float("x", x)
    require_last_dim("x", x, d, "layers.0.weight is (hidden, d)")
    require_shape("layers.0.bias", params["layers.0.bias"], (hidden,))
    require_shape("layers.2.weight", params["layers.2.weight"], (d, hidden))
    require_shape("layers.2.bias", params["layers.2.bias"], (d,))


def require_recurrent_cell_inputs(
    x, states: dict, weight_ih, weight_hh, bias_ih, bias_hh, gates: int
) -> None:
    """One recurrent step: x (B, I), each state (B, H) (h; and c for the LSTM), by name in
    `states`, the weights in torch's cell layout with `gates` pre-activations, one dtype."""
    input_size, hidden = require_recurrent_weights(weight_ih, weight_hh, bias_ih, bias_hh, gates)
    for name, a in (("x", x), *states.items()):
        require_float(name, a)
    require_ndim("x", x, 2, 2)
    if _shape(x)[1] != input_size:
        raise ValueError(
            f"x must have last dimension {input_size} (weight_ih is ({gates}H, I) = "
            f"{_shape(weight_ih)}), got shape {_shape(x)}"
        )
    for name, a in states.items():
        require_shape(name, a, (_shape(x)[0], hidden))
    names = ("x", *states, "weight_ih")
    require_same_dtype(names, (x, *states.values(), weight_ih))  # no silent upcasts


def require_lstm_cell_inputs(x, h, c, weight_ih, weight_hh, bias_ih, bias_hh) -> None:
    """lstm_cell: x (B, I), h and c (B, H), the weights in torch.nn.LSTMCell's layout, one dtype."""
    require_recurrent_cell_inputs(x, {"h": h, "c": c}, weight_ih, weight_hh, bias_ih, bias_hh, 4)


def require_mask_list(name: str, masks: Sequence, count: int, what: str, shape) -> None:
    """`count` dropout keep-masks, each of `shape` or None (no dropout there); `what` says which,
    for the message."""
    if len(masks) != count:
        raise ValueError(f"{name} must hold {what}, got {len(masks)}")
    for k, m in enumerate(masks):
        if m is not None:
            require_shape(f"{name}[{k}]", m, shape)


def require_recurrent_params(params, gates: int, module: str) -> tuple[int, int, int]:
    """A multi-layer recurrent layer's params, keyed like `module`'s state_dict (weight_ih_l{k},
    …; module "torch.nn.LSTM", "torch.nn.GRU" or "torch.nn.RNN"), in its layout with `gates`
    pre-activations, of one dtype. Returns (input_size, hidden_size, num_layers), read off them."""
    if not isinstance(params, dict) or "weight_ih_l0" not in params:
        raise ValueError(
            f"params must be a dict keyed like {module}'s state_dict (weight_ih_l0, …)"
        )
    num_layers = 0
    while f"weight_ih_l{num_layers}" in params:
        num_layers += 1
    names = [f"{w}_l{k}" for k in range(num_layers) for w in RECURRENT_WEIGHTS]
    require_keys("params", params, names)
    layer0 = (params[f"{w}_l0"] for w in RECURRENT_WEIGHTS)
    input_size, hidden = require_recurrent_weights(*layer0, gates, "_l0")
    for k in range(1, num_layers):  # layer k reads layer k-1's hidden state
        layer = [params[f"{w}_l{k}"] for w in RECURRENT_WEIGHTS]
        require_shape(f"weight_hh_l{k}", layer[1], (gates * hidden, hidden))
        require_shape(f"weight_ih_l{k}", layer[0], (gates * hidden, hidden))
        require_recurrent_weights(*layer, gates, suffix=f"_l{k}")
    require_same_dtype(list(params), params.values())
    return input_size, hidden, num_layers


def require_lstm_params(params) -> tuple[int, int, int]:
    """A multi-layer LSTM's params, keyed like torch.nn.LSTM's state_dict (weight_ih_l{k}, …), in
    its layout, of one dtype. Returns (input_size, hidden_size, num_layers), read off them."""
    return require_recurrent_params(params, 4, "torch.nn.LSTM")


def require_recurrent_inputs(
    x,
    state: dict,
    dropout_masks,
    p: float,
    *,
    input_size: int,
    hidden_size: int,
    num_layers: int,
    dtype,
    batch_first: bool = True,
) -> None:
    """A multi-layer recurrent layer's forward: x (B, T, I) (or (T, B, I)) of the parameters'
    dtype, at least one sequence of one step; each initial state by name in `state` ({"h0": …}
    and "c0" for the LSTM; a None value: zeros) (L, B, H); p in [0, 1) and, when L > 1, L - 1
    keep-masks shaped like the output (required when p > 0)."""
    require_float("x", x)
    require_ndim("x", x, 3, 3)
    got = _shape(x)
    B, T, I = got if batch_first else (got[1], got[0], got[2])
    if I != input_size:
        raise ValueError(f"x must have last dimension {input_size} (input_size), got shape {got}")
    if T == 0 or B == 0:
        raise ValueError(f"x must hold at least one sequence of at least one step, got shape {got}")
    if x.dtype != dtype:
        raise TypeError(f"x must have the parameters' dtype {dtype}, got {x.dtype}")
    L, H = num_layers, hidden_size
    for name, s in state.items():
        if s is None:
            continue
        require_float(name, s)
        require_shape(name, s, (L, B, H))
        if s.dtype != dtype:
            raise TypeError(f"{name} must have dtype {dtype}, got {s.dtype}")
    require_probability("p", p)
    out_shape = (B, T, H) if batch_first else (T, B, H)
    if dropout_masks is None:
        if p > 0 and L > 1:
            raise ValueError(
                f"p = {p} needs dropout_masks: {L - 1} keep-masks shaped like the output "
                f"{out_shape}"
            )
    else:
        what = f"{L - 1} masks (one between each pair of layers)"
        require_mask_list("dropout_masks", dropout_masks, L - 1, what, out_shape)


def require_lstm_inputs(
    x,
    state,
    dropout_masks,
    p: float,
    *,
    input_size: int,
    hidden_size: int,
    num_layers: int,
    dtype,
    batch_first: bool = True,
) -> None:
    """The multi-layer LSTM's forward (require_recurrent_inputs with state (h0, c0) or None)."""
    states = {} if state is None else dict(zip(("h0", "c0"), state, strict=True))
    require_recurrent_inputs(
        x,
        states,
        dropout_masks,
        p,
        input_size=input_size,
        hidden_size=hidden_size,
        num_layers=num_layers,
        dtype=dtype,
        batch_first=batch_first,
    )


def require_cached_ids(idx, cfg: dict, cache, backend: str) -> None:
    """forward_cached: idx (B, T) token ids of `backend`, in [0, vocab_size), that fit the cache's
    batch and free positions and the model's context (positions cache.length .. + T)."""
    require_token_batch("idx", idx, cfg["vocab_size"], cfg["context_length"], backend=backend)
    max_len = min(cache.max_len, cfg["context_length"])
    require_cache_room(idx, batch=cache.tokens.shape[0], length=cache.length, max_len=max_len)


def require_cache_room(idx, batch: int, length: int, max_len: int) -> None:
    """KV-cached forward: idx (B, T) must match the cache's batch and fit its free positions."""
    got = _shape(idx)
    if got[0] != batch or length + got[1] > max_len:
        raise ValueError(
            f"idx (shape {got}) does not fit the cache: batch {batch}, "
            f"{length} of {max_len} positions used"
        )


# ---- Qwen3's ops -----------------------------------------------------------------------------------


def require_rope_inputs(x, cos, sin) -> None:
    """rope: x (..., T, d) floating point with d even; cos and sin (T, d/2)."""
    require_float("x", x)
    require_ndim("x", x, 2)
    T, d = _shape(x)[-2:]
    if d % 2 != 0:
        raise ValueError(f"x must have an even last dimension (RoPE rotates pairs), got {d}")
    require_shape("cos", cos, (T, d // 2))
    require_shape("sin", sin, (T, d // 2))
    require_float_inputs(("x", "cos", "sin"), (x, cos, sin))


def require_gqa_inputs(q, k, v, causal: bool) -> int:
    """grouped_query_attention: q (B, H, Tq, d), k and v (B, Hkv, Tk, d) with Hkv dividing H;
    causal needs Tq ≤ Tk. Returns the group size H / Hkv."""
    for name, a in (("q", q), ("k", k), ("v", v)):
        require_float(name, a)
        require_ndim(name, a, 4, 4)
    require_same_dtype(("q", "k", "v"), (q, k, v))
    require_same_shape(("k", "v"), (k, v))
    B, Hkv, Tk, d = _shape(k)
    require_shape("q", q, (B, None, None, d))
    H, Tq = _shape(q)[1:3]
    require_divisible("q heads", H, "key/value heads", Hkv)
    if causal and Tq > Tk:
        raise ValueError(
            f"causal attention needs no more queries than keys (q rows are the last positions), "
            f"got q {_shape(q)} and k {_shape(k)}"
        )
    return H // Hkv


SWIGLU_KEYS = ("gate_proj.weight", "up_proj.weight", "down_proj.weight")


def require_swiglu_inputs(x, params) -> None:
    """swiglu: x (..., d) against gate_proj.weight (hidden, d), up_proj (hidden, d), down_proj
    (d, hidden), Hugging Face's Qwen3MLP keys."""
    require_keys("params", params, SWIGLU_KEYS)
    require_ndim("gate_proj.weight", params["gate_proj.weight"], 2, 2)
    hidden, d = _shape(params["gate_proj.weight"])
    require_float("x", x)
    require_last_dim("x", x, d, "gate_proj.weight is (hidden, d)")
    require_shape("up_proj.weight", params["up_proj.weight"], (hidden, d))
    require_shape("down_proj.weight", params["down_proj.weight"], (d, hidden))
    require_float_inputs(("x", *SWIGLU_KEYS), (x, *(params[k] for k in SWIGLU_KEYS)))


QWEN3_ATTENTION_KEYS = (
    "q_proj.weight",
    "k_proj.weight",
    "v_proj.weight",
    "o_proj.weight",
    "q_norm.weight",
    "k_norm.weight",
)
QWEN3_ATTENTION_BIAS_KEYS = ("q_proj.bias", "k_proj.bias", "v_proj.bias", "o_proj.bias")


def require_qwen3_attention_inputs(x, params, n_heads: int, n_kv_heads: int, cos, sin) -> int:
    """qwen3_attention: x (B, T, C) against Hugging Face's Qwen3Attention keys (relative to
    `self_attn.`), n_kv_heads dividing n_heads, the RoPE tables (T, head_dim / 2). Returns head_dim."""
    require_keys("params", params, QWEN3_ATTENTION_KEYS, QWEN3_ATTENTION_BIAS_KEYS)
    require_int("n_heads", n_heads, 1)
    require_int("n_kv_heads", n_kv_heads, 1)
    require_divisible("n_heads", n_heads, "n_kv_heads", n_kv_heads)
    require_ndim("q_norm.weight", params["q_norm.weight"], 1, 1)
    hd = _shape(params["q_norm.weight"])[0]
    require_float("x", x)
    require_ndim("x", x, 3, 3)
    C = _shape(x)[-1]
    outs = {"q_proj": n_heads * hd, "k_proj": n_kv_heads * hd, "v_proj": n_kv_heads * hd}
    for name, out in outs.items():
        require_shape(f"{name}.weight", params[f"{name}.weight"], (out, C))
        if params.get(f"{name}.bias") is not None:
            require_shape(f"{name}.bias", params[f"{name}.bias"], (out,))
    require_shape("o_proj.weight", params["o_proj.weight"], (C, n_heads * hd))
    if params.get("o_proj.bias") is not None:
        require_shape("o_proj.bias", params["o_proj.bias"], (C,))
    require_shape("k_norm.weight", params["k_norm.weight"], (hd,))
    T = _shape(x)[1]
    require_shape("cos", cos, (T, hd // 2))
    require_shape("sin", sin, (T, hd // 2))
    return hd


def require_no_dropout(dropout_rng=None, dropout_masks=None) -> None:
    """Qwen3 has no dropout: a generator or a non-empty mask dict is a mistake, named."""
    if dropout_rng is not None or dropout_masks:
        raise ValueError(
            "Qwen3 is dropout-free: pass no dropout_rng and no (or empty) dropout_masks, got "
            f"dropout_rng={dropout_rng!r}, dropout_masks with {len(dropout_masks or {})} masks"
        )
