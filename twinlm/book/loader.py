"""The book's data loaders (chapter 2's GPTDatasetV1 in a torch DataLoader with num_workers=0),
yielding NumPy batches and drawing from the book's stream exactly as torch's DataLoader does.

    windows                 GPTDatasetV1: inputs[k] = ids[k·stride : k·stride + L], targets one
                            token further (twinlm.data.windows.make_windows)
    iter(loader)            one draw, the DataLoader iterator's base seed (shuffled or not)
    first batch, shuffled   RandomSampler: one more draw, then a permutation of the windows
    batches                 the order cut into batch_size rows; drop_last skips a short last batch

Every iteration draws, so the book's evaluation passes over the training loader (calc_loss_loader)
move the stream on as much as an epoch's start does. `book_loaders` is chapter 5's pair: the 90/10
character split, windows with max_length = stride = the context length, batch size 2, training
shuffled with drop_last, validation in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from twinlm.book.stream import BookStream
from twinlm.data.windows import make_windows, num_batches, train_val_split
from twinlm.shared.validate import require_int

Batches = Iterator[tuple[np.ndarray, np.ndarray]]


class BookLoader:
    """DataLoader(GPTDatasetV1(...), batch_size, shuffle, drop_last, num_workers=0) over windows
    inputs, targets (N, L) int64, with its random draws taken from `stream`."""

    def __init__(
        self,
        inputs: np.ndarray,
        targets: np.ndarray,
        batch_size: int,
        shuffle: bool,
        drop_last: bool,
        stream: BookStream,
    ):
        require_int("batch_size", batch_size, 1)
        if len(inputs) != len(targets):
            raise ValueError(
                f"inputs and targets must hold as many rows, got {len(inputs)} and {len(targets)}"
            )
        self.inputs, self.targets = inputs, targets
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.stream = stream

    def __len__(self) -> int:
        return num_batches(len(self.inputs), self.batch_size, self.drop_last)

    def __iter__(self) -> Batches:
        self.stream.loader_iter()  # drawn by iter() itself, before any batch
        return self._batches()

    def _batches(self) -> Batches:
        n = len(self.inputs)
        order = self.stream.permutation(n) if self.shuffle else np.arange(n)  # at the 1st batch
        for b in range(len(self)):
            rows = order[b * self.batch_size : (b + 1) * self.batch_size]  # (B,)
            yield self.inputs[rows], self.targets[rows]  # (B, L) each, fresh arrays


def windows_or_none(ids: list[int], max_length: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """GPTDatasetV1's windows; (0, L) arrays where the text is too short for one (the book's
    dataset is then empty and its loader yields nothing)."""
    if len(ids) <= max_length:
        empty = np.zeros((0, max_length), dtype=np.int64)
        return empty, empty.copy()
    return make_windows(ids, max_length, stride)


def book_loaders(
    text: str,
    encode: Callable[[str], list[int]],
    context_length: int,
    stream: BookStream,
    batch_size: int = 2,
    train_ratio: float = 0.9,
) -> tuple[BookLoader, BookLoader]:
    """Chapter 5's train_loader and val_loader (cell 'Train/validation ratio')."""
    train_text, val_text = train_val_split(text, train_ratio)
    L = context_length
    train = windows_or_none(encode(train_text), L, L)
    val = windows_or_none(encode(val_text), L, L)
    return (
        BookLoader(*train, batch_size, shuffle=True, drop_last=True, stream=stream),
        BookLoader(*val, batch_size, shuffle=False, drop_last=False, stream=stream),
    )
