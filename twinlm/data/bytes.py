"""Byte-level data for Karpathy's char-RNN: the vocabulary and the stateful batches.

Vocabulary. The sorted set of bytes that occur in the corpus; a byte's id is its rank in that set,
so `decode(encode(text)) == text` for any text made of those bytes (UTF-8 letters are several bytes
and are learnt byte by byte, like the original).

Stateful batches (char-rnn's CharSplitLMMinibatchLoader). The ids are cut into B contiguous streams
of equal length; batch k holds the k-th chunk of T = seq_length bytes of every stream:
    ids    = [ s_0 | s_1 | … | s_{B-1} ] (+ 1 byte for the last target; a ragged tail is dropped)
    x_k    = streams[:, k·T : (k+1)·T]            (B, T)
    y_k    = the same positions one byte later    (B, T)  y_k[b, t] = x_k[b, t+1], continued
So row b of batch k+1 continues row b of batch k, and a recurrent state at the end of batch k is the
right initial state for batch k+1. Train/validation split: the first 90 % of the bytes / the rest.
"""

from __future__ import annotations

import numpy as np

from twinlm.shared.validate import require_int


def as_bytes(name: str, text) -> bytes:
    if isinstance(text, str):
        return text.encode("utf-8")
    if isinstance(text, (bytes, bytearray, memoryview)):
        return bytes(text)
    raise TypeError(f"{name} must be str or bytes, got {type(text).__name__}")


class ByteVocab:
    """The sorted set of a corpus's bytes. encode(str | bytes) -> int64 ids; decode(ids) -> bytes."""

    def __init__(self, symbols):
        symbols = sorted(set(as_bytes("symbols", symbols)))
        if not symbols:
            raise ValueError("symbols must hold at least one byte, got an empty vocabulary")
        self.symbols = bytes(symbols)  # id -> byte
        self._ids = np.full(256, -1, np.int64)  # byte -> id, -1 where the byte is not in it
        self._ids[np.frombuffer(self.symbols, np.uint8)] = np.arange(len(symbols))

    @classmethod
    def from_text(cls, text) -> ByteVocab:
        data = as_bytes("text", text)
        if not data:
            raise ValueError("text must not be empty: the vocabulary is the set of its bytes")
        return cls(data)

    def __len__(self) -> int:
        return len(self.symbols)

    def __eq__(self, other) -> bool:
        return isinstance(other, ByteVocab) and self.symbols == other.symbols

    def encode(self, text, name: str = "text") -> np.ndarray:
        """Ids (len(bytes),) int64; a byte outside the vocabulary raises ValueError naming it."""
        raw = np.frombuffer(as_bytes(name, text), np.uint8)  # (n,)
        ids = self._ids[raw]  # (n,)
        if (ids < 0).any():
            missing = sorted({bytes([b]) for b in raw[ids < 0].tolist()})
            raise ValueError(
                f"{name} holds bytes outside the {len(self)}-byte vocabulary: {missing[:10]}"
            )
        return ids

    def decode(self, ids) -> bytes:
        ids = np.asarray(ids)
        if ids.size and (
            not np.issubdtype(ids.dtype, np.integer) or ids.min() < 0 or ids.max() >= len(self)
        ):
            raise ValueError(f"ids must be integers in [0, {len(self)}), got {ids.ravel()[:10]}")
        return np.frombuffer(self.symbols, np.uint8)[ids.ravel()].tobytes()


class StreamBatches:
    """B contiguous streams of `ids`, served as consecutive (B, T) chunks (see module docstring)."""

    def __init__(self, ids: np.ndarray, batch_size: int, seq_length: int, name: str = "text"):
        require_int("batch_size", batch_size, 1)
        require_int("seq_length", seq_length, 1)
        B, T = batch_size, seq_length
        self.per_epoch = (len(ids) - 1) // (B * T)  # batches per pass over the streams
        if self.per_epoch < 1:
            raise ValueError(
                f"{name} has {len(ids)} bytes, fewer than one batch needs: batch_size × "
                f"seq_length + 1 = {B * T + 1}; use a longer text or a smaller batch"
            )
        n = B * self.per_epoch * T  # bytes used; the ragged tail is dropped
        ids = np.asarray(ids, np.int64)
        self.x = ids[:n].reshape(B, n // B)  # (B, S)  row b is stream b
        self.y = ids[1 : n + 1].reshape(B, n // B)  # (B, S)  the next byte of every position
        self.seq_length = T

    def batch(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch k (0 ≤ k < per_epoch): (x, y), fresh contiguous (B, T) int64 arrays."""
        cols = slice(k * self.seq_length, (k + 1) * self.seq_length)
        return np.ascontiguousarray(self.x[:, cols]), np.ascontiguousarray(self.y[:, cols])


def split_ids(ids: np.ndarray, train_frac: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """The first 90 % of the bytes for training, the rest for validation."""
    cut = int(round(train_frac * len(ids)))
    return ids[:cut], ids[cut:]
