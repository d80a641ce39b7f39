"""The GPT data pipeline: sliding windows of token ids, splits and batches (the default corpus
lives in corpus.py; `default_corpus` is re-exported here, where training has always found it).

Everything here is NumPy and backend-neutral, so the NumPy and the torch model train on the very
same batches (torch takes them with `torch.from_numpy`).

Windows follow the book's `GPTDatasetV1` (ch. 2): for i = 0, stride, 2·stride, … < len(ids) - L,

    inputs[k]  = ids[i     : i + L]          # (L,)
    targets[k] = ids[i + 1 : i + L + 1]      # (L,) the next token at every position

Batches follow `create_dataloader_v1`: shuffle the windows, cut them into batches, drop the
ragged last batch — with the shuffle drawn from a NumPy Generator seeded by (seed, epoch), so a
run is reproducible and every epoch has its own order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from twinlm.data.corpus import default_corpus  # noqa: F401  (lm.py and charrnn.py read it here)
from twinlm.shared.validate import require_int, require_ndim, require_same_shape


def make_windows(ids, max_length: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """Sliding windows over `ids` as the book's GPTDatasetV1: (inputs, targets), each int64 (N, L).

    N = len(range(0, len(ids) - max_length, stride)). Both are read-only strided views of one
    int64 copy of `ids` (no per-window copy); `batches` gathers rows into fresh arrays.
    """
    require_int("max_length", max_length, 1)
    require_int("stride", stride, 1)
    ids = np.asarray(ids)
    if ids.size and not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"ids must be integer token ids, got dtype {ids.dtype}")
    require_ndim("ids", ids, 1, 1)
    ids = ids.astype(np.int64)  # (T,)
    needed = max_length + 1  # one window of inputs plus the target one token further on
    if len(ids) < needed:
        raise ValueError(
            f"ids must hold at least max_length + 1 = {needed} tokens for one window "
            f"(inputs and their shifted targets), got {len(ids)}; use a longer text or a smaller "
            "max_length"
        )
    view = np.lib.stride_tricks.sliding_window_view
    inputs = view(ids[:-1], max_length)[::stride]  # (N, L): row k starts at k·stride
    targets = view(ids[1:], max_length)[::stride]  # (N, L): the same rows, one token later
    return inputs, targets


def train_val_split(text_or_ids: str | Sequence | np.ndarray, train_ratio: float = 0.9):
    """The book's split: the first `int(train_ratio · len)` characters (or ids) train, the rest
    validate. Split text before tokenizing, as the book does, or ids after — both work."""
    if not 0.0 < float(train_ratio) <= 1.0:
        raise ValueError(f"train_ratio must be in (0, 1], got {train_ratio}")
    split = int(train_ratio * len(text_or_ids))
    return text_or_ids[:split], text_or_ids[split:]


def num_batches(n_windows: int, batch_size: int, drop_last: bool = True) -> int:
    """How many batches `batches` yields for `n_windows` windows."""
    return n_windows // batch_size if drop_last else -(-n_windows // batch_size)


def batches(
    inputs: np.ndarray,
    targets: np.ndarray,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    drop_last: bool = True,
    epoch: int = 0,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (inputs, targets) batches of shape (B, L), int64, fresh contiguous arrays.

    shuffle: a permutation from `np.random.default_rng([seed, epoch])` — the same (seed, epoch)
    gives the same batches on every machine and for both backends. drop_last: skip a final batch
    smaller than batch_size (the book's training loader does; its validation loader does not).
    """
    require_int("batch_size", batch_size, 1)
    require_int("seed", seed, 0)
    require_int("epoch", epoch, 0)
    for name, a in (("inputs", inputs), ("targets", targets)):
        require_ndim(name, a, 2, 2)
        if not np.issubdtype(np.asarray(a).dtype, np.integer):
            raise TypeError(f"{name} must be integer token ids, got dtype {a.dtype}")
    require_same_shape(("inputs", "targets"), (inputs, targets))
    n = len(inputs)
    order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    for b in range(num_batches(n, batch_size, drop_last)):
        rows = order[b * batch_size : (b + 1) * batch_size]  # (B,)
        yield inputs[rows], targets[rows]  # fancy indexing copies: (B, L) each


class StepBatches:
    """The batch of optimizer step `step`: batch step % per_epoch of the epoch step // per_epoch,
    where epoch_batches(epoch) iterates one epoch's batches in its seeded order. Steps taken in
    order cost one batch each; any other step restarts its epoch (so a resumed run gets the same
    batches as one that never stopped)."""

    def __init__(self, epoch_batches: Callable[[int], Iterator], per_epoch: int):
        self.epoch_batches, self.per_epoch = epoch_batches, per_epoch
        self._next, self._it = None, iter(())

    def __call__(self, step: int):
        epoch, index = divmod(step, self.per_epoch)
        if self._next != (epoch, index):  # not where the running epoch is: start that epoch over
            self._it = self.epoch_batches(epoch)
            for _ in range(index):
                next(self._it)
        self._next = (epoch, index + 1)
        self._last = (step, next(self._it))
        return self._last[1]
