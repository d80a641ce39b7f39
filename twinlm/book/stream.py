"""The book's random stream: torch's global generator, drawn with the calls the book's code makes,
in the order it makes them; both backends take their random numbers from here (NumPy as arrays).

The book seeds torch at a few cells (`torch.manual_seed(123)`) and from there everything random
draws from that one generator, in the order the code runs:

    GPTModel(cfg)                  the initial weights, module by module as __init__ creates them
                                   (nn.Embedding: normal_, nn.Linear: kaiming_uniform_ and the bias)
    for x, y in loader             DataLoader.__iter__ draws one int64, its workers' base seed
                                   (every loader, shuffled or not); a shuffled loader's
                                   RandomSampler draws one more int64 at the first batch and seeds
                                   a private generator with it for torch.randperm(n)
    model(x), training mode        every nn.Dropout draws torch.empty_like(x).bernoulli_(1 - p),
                                   in the order the modules run
    torch.multinomial(probs, 1)    draws q = torch.empty_like(probs).exponential_(1) and returns
                                   argmax(probs / q) (torch's sampler for one draw, see sampling.py)

BookStream makes exactly these calls, so after the same sequence the generator is in the same
state as the book's, and hands the results on: the weights go into either backend's model, masks,
permutations and exponential draws go to NumPy as arrays (the math that uses them stays NumPy).
`reseed(where)` is the book's `torch.manual_seed(123)` at a notebook cell, with `seed` in place of
123; `reseeds` keeps the cells it was called for, in order.
"""

from __future__ import annotations

import numpy as np
import torch

import torch_impl
from twinlm.models import convert, require_memory
from twinlm.shared.naming import BACKENDS
from twinlm.shared.validate import require_choice, require_int


class BookStream:
    """torch's global generator as the book uses it, with `seed` in place of the book's 123."""

    def __init__(self, seed: int = 123):
        require_int("seed", seed, 0)
        self.seed = int(seed)
        self.reseeds: list[str] = []

    def reseed(self, where: str) -> None:
        """torch.manual_seed(seed), as the book's notebook does at cell `where`."""
        torch.manual_seed(self.seed)
        self.reseeds.append(where)

    # ---- the draws, each with the call the book's code makes ------------------------------------

    @staticmethod
    def loader_iter() -> None:
        """What iter(DataLoader) draws: one int64 (the base seed of its worker processes)."""
        torch.empty((), dtype=torch.int64).random_()

    @staticmethod
    def permutation(n: int) -> np.ndarray:
        """RandomSampler's order of n items: a seed drawn from the stream, then torch.randperm(n)
        from a generator seeded with it. int64 (n,)."""
        seed = int(torch.empty((), dtype=torch.int64).random_().item())
        generator = torch.Generator()
        generator.manual_seed(seed)
        return torch.randperm(n, generator=generator).numpy()

    @staticmethod
    def dropout_masks(
        shapes: dict[str, tuple[int, ...]], p: float, dtype=np.float32
    ) -> dict[str, np.ndarray]:
        """0/1 keep-masks by name, as the book's nn.Dropout modules draw them (bernoulli_(1 - p) on
        a tensor of the activation's shape and dtype), in the order of `shapes`."""
        torch_dtype = getattr(torch, np.dtype(dtype).name)
        masks = torch_impl.draw_dropout_masks(shapes, p, torch_dtype)
        return {k: m.numpy() for k, m in masks.items()}

    @staticmethod
    def exponential(shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        """q ~ Exp(1) of probs' shape and dtype: what torch.multinomial(probs, 1) draws."""
        torch_dtype = getattr(torch, np.dtype(dtype).name)
        return torch.empty(shape, dtype=torch_dtype).exponential_(1).numpy()

    @staticmethod
    def linear(in_features: int, out_features: int) -> tuple[np.ndarray, np.ndarray]:
        """(weight (out, in), bias (out,)) of a new torch.nn.Linear(in_features, out_features),
        as the book draws chapter 6's classification head."""
        layer = torch.nn.Linear(in_features, out_features)
        return layer.weight.detach().numpy(), layer.bias.detach().numpy()

    # ---- the model ---------------------------------------------------------------------------------

    @staticmethod
    def gpt_model(cfg: dict, backend: str):
        """The book's `GPTModel(cfg)` (float32), its weights drawn from the stream by torch_impl's
        modules, created in the book's order; for NumPy the same weights in a numpy_impl model.
        Both are in training mode, like a fresh nn.Module (NumPy draws nothing unless given
        masks)."""
        require_choice("backend", backend, BACKENDS)
        require_memory("GPTModel", cfg)
        model = torch_impl.GPTModel(cfg)  # seed=None: torch's default init, from the stream
        return convert(model, backend)
