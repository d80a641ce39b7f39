"""GPT-2, the fast path: numpy_impl/gpt.py's body with the fast transformer blocks, and
GPTModel.loss_and_grads for kernels="fast", the training step, written out whole over a
Workspace (workspace.py) that the model keeps from step to step:

- every activation, gradient and scratch array of the step is the workspace's, allocated at the
  first step of a (B, T) shape and reused after (products with np.matmul(..., out=...), the ops'
  `_into` forms), so a step costs no fresh pages from the kernel;
- the logits become the softmax and then d loss / d logits in place (numpy_impl/fast/loss.py);
  the FFN's hidden layer becomes GELU(h + b₀) (the bias add fused into GELU's pass) and then its
  gradient; the context of the attention becomes d context; the backward's (N, C) scratch is
  shared by all blocks;
- the arithmetic is the reference's (numpy_impl/gpt.py, transformer.py, attention.py,
  feedforward.py, linear.py, embedding.py, dropout.py) product for product, so the results agree
  to rounding (parity_tests/ops/test_fast_path.py).

Lifetime: the gradients returned are the workspace's arrays, valid until the model's next
loss_and_grads (which overwrites them); a caller that keeps gradients across steps copies them.
The NumPy engine, data-parallel all-reduce (which replaces them with views of its own bucket),
clip_coef and AdamW all use them before the next step. `forward`/`backward` allocate as before;
loss_and_grads leaves no forward cache (`backward` needs a new forward).
"""

from __future__ import annotations

import math

import numpy as np

from numpy_impl.embedding import sum_rows_into
from numpy_impl.fast.attention import (
    attention_backward_into,
    attention_into,
    dropout_keep,
    row_blocks,
)
from numpy_impl.fast.gelu import gelu_into
from numpy_impl.fast.layernorm import layernorm_backward_into, layernorm_into
from numpy_impl.fast.loss import cross_entropy_backward_inplace, cross_entropy_inplace
from numpy_impl.fast.transformer import transformer_block_backward, transformer_block_forward
from numpy_impl.fast.workspace import Workspace
from numpy_impl.gpt import gpt_body_backward_with, gpt_body_with, select_dropout_masks
from twinlm.shared.naming import QKV_PROJECTIONS
from twinlm.shared.validate import require_shape, require_token_batch


def gpt_body_forward(
    idx: np.ndarray,
    params: dict[str, np.ndarray],
    cfg: dict,
    dropout_masks: dict[str, np.ndarray] | None = None,
    first_trainable: int = 0,
):
    """numpy_impl.gpt_body_forward with the fast blocks."""
    return gpt_body_with(
        transformer_block_forward, idx, params, cfg, dropout_masks, first_trainable
    )


def gpt_body_backward(dx: np.ndarray, cache) -> dict[str, np.ndarray]:
    """The body's parameter gradients; `cache` stays whole."""
    embed_cache, block_caches = cache
    return gpt_body_backward_with(transformer_block_backward, dx, (embed_cache, dict(block_caches)))


def workspace_of(model) -> Workspace:
    """The model's training-step workspace, made at its first fast step (an attribute of the model
    instance, so it lives and goes with the model)."""
    ws = getattr(model, "_fast_workspace", None)
    if ws is None:
        ws = model._fast_workspace = Workspace()
    return ws


def gpt_loss_and_grads(model, idx, targets, dropout_rng=None, dropout_masks=None):
    """GPTModel.loss_and_grads for kernels="fast" (module docstring). Returns (loss, grads); the
    grads are valid until the model's next loss_and_grads."""
    cfg, P = model.cfg, model.params
    require_token_batch("idx", idx, cfg["vocab_size"], cfg["context_length"])
    require_shape("targets", targets, idx.shape)
    B, T = idx.shape
    masks = select_dropout_masks(cfg, B, T, model.dtype, dropout_rng, dropout_masks)
    model.last_dropout_masks = masks
    model._cache = None  # an earlier forward's cache is not this step's
    step = _Step(workspace_of(model), P, cfg, masks, B, T, model.dtype)
    x = step.embed(idx)
    caches = []
    for i in range(cfg["n_layers"]):
        x, cache = step.block(i, x)
        caches.append(cache)
    loss, dx = step.head_loss_and_backward(x, targets)
    for i in reversed(range(cfg["n_layers"])):
        step.block_backward(i, dx, caches.pop())  # dx: d loss / d x_i, in place
    step.embed_backward(idx, dx)
    return float(loss), {k: step.grads[k] for k in P}


class _Carver:
    """Consecutive arrays cut from one flat array: take(shape) is the next prod(shape) elements."""

    def __init__(self, flat: np.ndarray) -> None:
        self.flat, self.used = flat, 0

    def take(self, shape: tuple[int, ...]) -> np.ndarray:
        n = math.prod(shape)
        a = self.flat[self.used : self.used + n].reshape(shape)
        self.used += n
        return a


class _Step:
    """One fast training step's pieces over the workspace `ws`.

    Memory plan: block i's activations (what its backward reads) are cut from one array, the
    block's arena, made large enough for a block's gradients too; block i's gradients, computed
    when block i + 1's backward is done, are cut from block i + 1's arena, and the top block's,
    then tok_emb's when they fit, from the logits' array (used up after the head's backward):
    activations and gradients share memory as torch's graph and its .grad do over a step.
    Everything else (the x/h stream between blocks, the backward's (N, C) scratch) is one array
    for all blocks."""

    def __init__(self, ws: Workspace, P: dict, cfg: dict, masks: dict, B: int, T: int, dtype):
        ws.reset_unless((B, T, np.dtype(dtype).str, tuple(sorted(masks))))
        self.ws, self.P, self.cfg, self.masks = ws, P, cfg, masks
        self.B, self.T, self.N, self.C = B, T, B * T, cfg["emb_dim"]
        self.H, self.p, self.dtype = cfg["n_heads"], cfg["drop_rate"], dtype
        self.L = cfg["n_layers"]
        self.Dh = P["trf_blocks.0.ff.layers.0.weight"].shape[0] if self.L else 4 * self.C
        att = sum(B * self.H * (r1 - r0) * e for r0, r1, e in row_blocks(T, T, True))
        self.activations = 6 * self.N * self.C + 2 * self.N + 2 * self.N * self.Dh + att
        self.block_grads = sum(a.size for k, a in P.items() if k.startswith("trf_blocks.0."))
        self.arena_size = max(self.activations, self.block_grads)
        self.spare: _Carver | None = None  # the logits' array once used up (head_loss_and_backward)
        self.grads = {  # the blocks' and tok_emb's: cut at their backward
            k: ws.array("grad " + k, a.shape, a.dtype)
            for k, a in P.items()
            if not k.startswith("trf_blocks.") and k != "tok_emb.weight"
        }

    def a(self, key: str, cols: int | None = None) -> np.ndarray:
        """The workspace's (N, cols) array `key` (cols None: C)."""
        return self.ws.array(key, (self.N, self.C if cols is None else cols), self.dtype)

    def arena(self, i: int) -> _Carver:
        return _Carver(self.ws.array(f"block {i}", (self.arena_size,), self.dtype))

    def heads(self, a: np.ndarray) -> np.ndarray:
        """(N, C) as the (B, H, T, C/H) view of the heads."""
        return a.reshape(self.B, self.T, self.H, -1).transpose(0, 2, 1, 3)

    def drop_(self, x: np.ndarray, name: str) -> np.ndarray:
        """x ⊙ mask / (1 - p) in place where the step has mask `name` (numpy_impl/dropout.py's
        products; its backward is the same), x where not."""
        mask = self.masks.get(name)
        if mask is not None:
            xv = x.reshape(mask.shape)
            xv *= mask.astype(x.dtype, copy=False)
            xv *= 1.0 / (1.0 - float(self.p))
        return x

    def drop_grad(self, dy: np.ndarray, name: str) -> np.ndarray:
        """The backward of drop_ into a scratch array, dy itself without a mask (dy is kept)."""
        if self.masks.get(name) is None:
            return dy
        out = self.a("d dropped")
        np.copyto(out, dy)
        return self.drop_(out, name)

    # ---- forward --------------------------------------------------------------------------------

    def embed(self, idx: np.ndarray) -> np.ndarray:
        """x₀ = drop(tok_emb[idx] + pos_emb[0..T-1]) (N, C)."""
        x = self.a("x 0")
        np.take(self.P["tok_emb.weight"], idx.reshape(-1), axis=0, out=x)
        x.reshape(self.B, self.T, self.C)[...] += self.P["pos_emb.weight"][: self.T]
        return self.drop_(x, "drop_emb")

    def block(self, i: int, x: np.ndarray):
        """x_{i+1} = block_i(x_i) (numpy_impl/transformer.py). Returns (x_{i+1}, cache)."""
        P, pre, a, cut = self.P, f"trf_blocks.{i}.", self.a, self.arena(i)
        N, C, Dh = self.N, self.C, self.Dh
        ln1 = (cut.take((N, C)), cut.take((N, 1)), P[pre + "norm1.scale"])  # x̂, σ, scale
        n = a("n")  # norm1(x), then norm2(h): recomputed from x̂ in the backward
        layernorm_into(x, P[pre + "norm1.scale"], P[pre + "norm1.shift"], n, *ln1[:2])
        qkv = [cut.take((N, C)) for _ in QKV_PROJECTIONS]  # q, k, v
        for name, out in zip(QKV_PROJECTIONS, qkv):
            _linear_into(n, P[pre + f"att.{name}.weight"], P.get(pre + f"att.{name}.bias"), out)
        scale = 1.0 / math.sqrt(C // self.H)  # a Python float: float32 stays float32
        qkv[0] *= scale  # q/√d, as the fast attention scales (W_query's gradient needs n1, not q)
        keep = dropout_keep(self.masks.get(pre + "att.dropout"), self.dtype, self.p)
        ctx = cut.take((N, C))  # the heads' outputs, merged by the layout itself

        def alloc(key, shape, dtype):  # the scores: the arena's; Ã (dropout): the workspace's
            return cut.take(shape) if key[0] == "w" else self.ws.array(f"{i} {key}", shape, dtype)

        att = attention_into(*map(self.heads, qkv), True, keep, self.heads(ctx), scale, alloc)
        h = a("h")
        _linear_into(ctx, P[pre + "att.out_proj.weight"], P[pre + "att.out_proj.bias"], h)
        self.drop_(h, pre + "drop_shortcut.att")
        h += x  # h = x + a
        ln2 = (cut.take((N, C)), cut.take((N, 1)), P[pre + "norm2.scale"])
        layernorm_into(h, P[pre + "norm2.scale"], P[pre + "norm2.shift"], n, *ln2[:2])
        g, dgdh = cut.take((N, Dh)), cut.take((N, Dh))
        _linear_into(n, P[pre + "ff.layers.0.weight"], None, g)  # h₀ = n2 W₀ᵀ; g = GELU(h₀ + b₀)
        gelu_into(g, g, dgdh, "tanh", bias=P[pre + "ff.layers.0.bias"])
        y = a(f"x {(i + 1) % 2}")  # x_{i+1}: x_i is not needed after the block
        _linear_into(g, P[pre + "ff.layers.2.weight"], P[pre + "ff.layers.2.bias"], y)
        self.drop_(y, pre + "drop_shortcut.ff")
        y += h  # y = h + f
        assert cut.used == self.activations, "the arena holds the block's activations"
        return y, (ln1, qkv, att, ctx, ln2, g, dgdh)

    def head_loss_and_backward(self, x: np.ndarray, targets: np.ndarray):
        """The final norm, the head, the loss, and back: (loss, d loss / d x_L (N, C))."""
        P, G, a, V = self.P, self.grads, self.a, self.cfg["vocab_size"]
        lnf = (a("xhatf"), a("stdf", 1), P["final_norm.scale"])
        nf = a("n")
        layernorm_into(x, P["final_norm.scale"], P["final_norm.shift"], nf, *lnf[:2])
        logits = a("logits", V)  # (N, V): the logits, then the softmax, then d loss / d logits
        _linear_into(nf, P["out_head.weight"], None, logits)
        loss, loss_cache = cross_entropy_inplace(logits.reshape(self.B, self.T, V), targets)
        dlogits = cross_entropy_backward_inplace(np.ones((), dtype=self.dtype), loss_cache)
        dlogits = dlogits.reshape(self.N, V)
        _linear_grads(dlogits, nf, G["out_head.weight"], None)
        dnf = _input_grad(dlogits, P["out_head.weight"], a("d n"))
        dx = a("d x")  # d loss / d x_i, for every block in turn
        layernorm_backward_into(dnf, lnf, dx, G["final_norm.scale"], G["final_norm.shift"])
        self.spare = _Carver(logits.reshape(-1))  # free from here to the step's end
        return loss, dx

    def grad_array(self, key: str, cut: _Carver | None) -> np.ndarray:
        """Parameter `key`'s gradient array: cut from `cut` when it has room, else its own."""
        shape = self.P[key].shape
        if cut is not None and cut.flat.size - cut.used >= math.prod(shape):
            return cut.take(shape)
        return self.ws.array("grad " + key, shape, self.dtype)

    # ---- backward -------------------------------------------------------------------------------

    def block_backward(self, i: int, dx: np.ndarray, cache) -> None:
        """dx ← d loss / d x_i from d loss / d x_{i+1}, in place; block i's gradients into grads
        (cut from block i + 1's arena, whose activations are used up; the top block's: their own)."""
        ln1, qkv, att, ctx, ln2, g, dgdh = cache
        P, pre, a = self.P, f"trf_blocks.{i}.", self.a
        cut = self.arena(i + 1) if i + 1 < self.L else self.spare
        for k in P:
            if k.startswith(pre):
                self.grads[k] = self.grad_array(k, cut)

        def grad(key):
            return self.grads[pre + key]

        n, dn, branch = a("n"), a("d n"), a("d branch")  # (N, C) scratch, shared by the blocks
        # y = h + f: f's branch, drop → ff → norm2
        df = self.drop_grad(dx, pre + "drop_shortcut.ff")
        _linear_grads(df, g, grad("ff.layers.2.weight"), grad("ff.layers.2.bias"))
        _input_grad(df, P[pre + "ff.layers.2.weight"], g)  # dg, over g
        g *= dgdh  # dh₀ = dg ⊙ GELU'(h₀)
        _normed(ln2, P[pre + "norm2.shift"], n)  # n2, as the forward computed it
        _linear_grads(g, n, grad("ff.layers.0.weight"), grad("ff.layers.0.bias"))
        _input_grad(g, P[pre + "ff.layers.0.weight"], dn)
        layernorm_backward_into(dn, ln2, branch, grad("norm2.scale"), grad("norm2.shift"))
        dx += branch  # dh = dy + ∂norm2(…)
        # h = x + a: the attention's branch, drop → out_proj → attention → q, k, v → norm1
        da = self.drop_grad(dx, pre + "drop_shortcut.att")
        _linear_grads(da, ctx, grad("att.out_proj.weight"), grad("att.out_proj.bias"))
        _input_grad(da, P[pre + "att.out_proj.weight"], ctx)  # d ctx, over ctx
        dqkv = [a(f"d {name}") for name in QKV_PROJECTIONS]

        def alloc(key, shape, dtype):
            return self.ws.array(f"d att {key}", shape, dtype)

        attention_backward_into(self.heads(ctx), att, *map(self.heads, dqkv), alloc)
        _normed(ln1, P[pre + "norm1.shift"], n)  # n1
        for name, d in zip(QKV_PROJECTIONS, dqkv):
            bias = pre + f"att.{name}.bias"
            _linear_grads(d, n, grad(f"att.{name}.weight"), self.grads.get(bias))
        for j, (name, d) in enumerate(zip(QKV_PROJECTIONS, dqkv)):  # x feeds all three: dx adds
            _input_grad(d, P[pre + f"att.{name}.weight"], dn if j == 0 else branch)
            if j:
                dn += branch
        layernorm_backward_into(dn, ln1, branch, grad("norm1.scale"), grad("norm1.shift"))
        dx += branch  # dx = dh + ∂norm1(…)

    def embed_backward(self, idx: np.ndarray, dx: np.ndarray) -> None:
        """The embeddings' gradients (numpy_impl/embedding.py's sums) from d loss / d x₀."""
        dx = self.drop_(dx, "drop_emb")  # dropout's backward is its forward; dx is ours
        self.grads["tok_emb.weight"] = self.grad_array("tok_emb.weight", self.spare)
        self.grads["tok_emb.weight"].fill(0)
        sum_rows_into(self.grads["tok_emb.weight"], idx.reshape(-1), dx)
        dpos = self.grads["pos_emb.weight"]  # (context, C): position t read once per sequence
        dpos[self.T :] = 0
        np.sum(dx.reshape(self.B, self.T, self.C), axis=0, out=dpos[: self.T])


def _normed(ln_cache, shift: np.ndarray, out: np.ndarray) -> None:
    """out ← x̂ ⊙ scale + shift: a LayerNorm's output again from its cache (layernorm_into's
    last two passes, so the same numbers)."""
    xhat, _, scale = ln_cache
    np.multiply(xhat, scale, out=out)
    out += shift


def _linear_into(x: np.ndarray, weight: np.ndarray, bias, y: np.ndarray) -> None:
    """y ← x Wᵀ + b (numpy_impl/linear.py's products), x (N, in), y (N, out)."""
    np.matmul(x, weight.T, out=y)
    if bias is not None:
        y += bias


def _input_grad(dy: np.ndarray, weight: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """dx ← dy W (numpy_impl/linear.py's backward for the input). Returns dx."""
    return np.matmul(dy, weight, out=dx)


def _linear_grads(dy: np.ndarray, x: np.ndarray, dweight: np.ndarray, dbias) -> None:
    """dW ← dyᵀ x, db ← Σ_rows dy (numpy_impl/linear.py's backward, into the caller's arrays)."""
    np.matmul(dy.T, x, out=dweight)
    if dbias is not None:
        np.sum(dy, axis=0, out=dbias)
