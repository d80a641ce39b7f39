"""SMS spam classification data: the book's chapter-6 preprocessing, backend-neutral (NumPy arrays).

    load_sms_spam(path)            the UCI SMSSpamCollection TSV -> [(label, text)], ham 0 / spam 1
    balance(rows, seed)            every spam row + as many ham rows, drawn without replacement
                                   (book: df[ham].sample(num_spam, random_state=123), 747 + 747)
    random_split(rows, 0.7, 0.1)   seeded shuffle, then 70 % / 10 % / 20 %; for 1,494 rows
                                   int(0.7·n), int(0.1·n) and the rest: 1,045 / 149 / 300
    encode_dataset(rows, ...)      the book's SpamDataset: token ids, truncated to max_length and
                                   right-padded with <|endoftext|> (50256) -> ids int64 (N, L),
                                   labels int64 (N,); L = the longest example unless max_length
    prepare_sms_spam(...)          all of the above; validation and test are padded/truncated to
                                   the training set's length, as in the book

The seeds give a deterministic split, not pandas' exact rows (pandas is not a dependency).
The file is read one message per line. The UCI readme counts 5,574 messages (747 spam); pandas'
default quote handling in the book's `read_csv` can merge lines whose text starts with a double
quote, so the book's table has a couple of ham rows fewer. The spam count, and so the balanced set,
is 747 + 747 either way.

`make_synthetic_spam(n, seed)` makes a small, separable stand-in for tests: every spam text holds at
least one of `SPAM_WORDS`, no ham text holds any.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from twinlm.shared.classifier import PAD_ID  # noqa: F401  (the book pads with it; re-exported)

LABELS = {"ham": 0, "spam": 1}
BOOK_SEED = 123  # the book's random_state for both the balancing and the split

Rows = list[tuple[int, str]]


def load_sms_spam(path: str | os.PathLike) -> Rows:
    """Parse the tab-separated `label<TAB>text` file; labels "ham"/"spam" become 0/1."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path must be the SMSSpamCollection file, not found: {path}")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text: {e}") from e
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        label, tab, text = line.partition("\t")
        if not tab:
            raise ValueError(f"{path}:{number}: expected 'label<TAB>text', got {line[:60]!r}")
        if label not in LABELS:
            raise ValueError(f"{path}:{number}: label must be 'ham' or 'spam', got {label!r}")
        rows.append((LABELS[label], text))
    if not rows:
        raise ValueError(f"{path} holds no messages")
    return rows


def balance(rows: Sequence[tuple[int, str]], seed: int = BOOK_SEED) -> Rows:
    """All spam rows plus an equal number of ham rows drawn without replacement (ham first)."""
    ham = [r for r in rows if r[0] == 0]
    spam = [r for r in rows if r[0] == 1]
    if len(ham) < len(spam):
        raise ValueError(
            f"rows must hold at least as many ham as spam, got {len(ham)} < {len(spam)}"
        )
    pick = np.random.default_rng(seed).choice(len(ham), size=len(spam), replace=False)
    return [ham[i] for i in pick] + spam


def random_split(
    rows: Sequence, train_frac: float = 0.7, validation_frac: float = 0.1, seed: int = BOOK_SEED
) -> tuple[list, list, list]:
    """Seeded shuffle, then the first int(n·train_frac) rows, the next int(n·validation_frac),
    and the rest for testing — the book's `random_split`."""
    if not 0.0 < train_frac <= 1.0:
        raise ValueError(f"train_frac must be in (0, 1], got {train_frac}")
    if not 0.0 <= validation_frac <= 1.0 - train_frac:
        raise ValueError(
            f"validation_frac must be in [0, 1 - train_frac] = [0, {1.0 - train_frac:g}], "
            f"got {validation_frac}"
        )
    order = np.random.default_rng(seed).permutation(len(rows))
    shuffled = [rows[i] for i in order]
    train_end = int(len(rows) * train_frac)
    validation_end = train_end + int(len(rows) * validation_frac)
    return shuffled[:train_end], shuffled[train_end:validation_end], shuffled[validation_end:]


@dataclass(frozen=True)
class SpamDataset:
    """Token ids (N, L) int64, right-padded with `pad_id`, and labels (N,) int64."""

    ids: np.ndarray
    labels: np.ndarray
    pad_id: int = PAD_ID

    @property
    def max_length(self) -> int:
        return int(self.ids.shape[1])

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __getitem__(self, i):
        return self.ids[i], self.labels[i]

    def batches(
        self, batch_size: int, shuffle: bool = False, seed: int = 0, drop_last: bool = False
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids (B, L), labels (B,)) batches, like the book's DataLoader (which uses shuffle=True,
        drop_last=True for training)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        order = (
            np.random.default_rng(seed).permutation(len(self)) if shuffle else np.arange(len(self))
        )
        stop = len(self) - len(self) % batch_size if drop_last else len(self)
        for start in range(0, stop, batch_size):
            take = order[start : start + batch_size]
            yield self.ids[take], self.labels[take]


def encode_dataset(
    rows: Sequence[tuple[int, str]],
    max_length: int | None = None,
    pad_id: int = PAD_ID,
    encode: Callable[[str], list[int]] | None = None,
) -> SpamDataset:
    """The book's SpamDataset: encode every text, truncate to `max_length` when given, and
    right-pad with `pad_id` to `max_length` (default: the longest encoded text)."""
    if max_length is not None and (
        isinstance(max_length, bool) or not isinstance(max_length, int) or max_length <= 0
    ):
        raise ValueError(f"max_length must be a positive int or None, got {max_length!r}")
    if not rows:
        raise ValueError("rows must hold at least one (label, text) pair, got none")
    if encode is None:
        from twinlm.data.tokenizer import encode
    labels = np.array([label for label, _ in rows], dtype=np.int64)  # (N,)
    if not np.isin(labels, (0, 1)).all():
        raise ValueError(f"labels must be 0 (ham) or 1 (spam), got {sorted(set(labels.tolist()))}")
    tokens = [list(encode(text)) for _, text in rows]
    if max_length is None:
        max_length = max(1, max(len(t) for t in tokens))
    ids = np.full((len(tokens), max_length), pad_id, dtype=np.int64)  # (N, L)
    for row, t in zip(ids, tokens):
        t = t[:max_length]
        row[: len(t)] = t
    return SpamDataset(ids, labels, pad_id)


def prepare_sms_spam(
    path: str | os.PathLike | None = None,
    *,
    seed: int = BOOK_SEED,
    max_length: int | None = None,
    context_length: int | None = None,
    encode: Callable[[str], list[int]] | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[SpamDataset, SpamDataset, SpamDataset]:
    """(train, validation, test) as in the book's chapter 6. `path` defaults to the downloaded
    SMSSpamCollection (twinlm.data.download.fetch); validation and test take the training set's length."""
    if path is None:
        from twinlm.data.download import fetch

        path = fetch("sms-spam", cache_dir=cache_dir)
    train, validation, test = random_split(balance(load_sms_spam(path), seed), 0.7, 0.1, seed)
    train_ds = encode_dataset(train, max_length, encode=encode)
    if context_length is not None and train_ds.max_length > context_length:
        raise ValueError(
            f"the longest training text has {train_ds.max_length} tokens, more than the model's "
            f"context_length {context_length}; pass max_length={context_length}"
        )
    length = train_ds.max_length
    return (
        train_ds,
        encode_dataset(validation, length, encode=encode),
        encode_dataset(test, length, encode=encode),
    )


# ---------------------------------------------------------------------------------------------
# A synthetic, separable stand-in

SPAM_WORDS = ("WIN", "prize", "claim", "FREE", "cash", "winner", "URGENT")

_SPAM_TEMPLATES = (
    "WIN a {amount} {reward} now! Text {code} to {number}",
    "URGENT! You are a winner. Claim your {reward} worth {amount}: call {number}",
    "FREE {reward} for you. To claim reply {code} before {day}",
    "Your number won a {amount} cash prize. Call {number} to claim",
)
_HAM_TEMPLATES = (
    "Are we still on for {meal} {day}?",
    "I'll be {minutes} minutes late, {excuse}. See you at the {place}",
    "Can you pick up some {item} on the way to the {place}?",
    "{greeting}! Call me when you get home, see you {day}",
)
_SLOTS = {
    "amount": ("£100", "£500", "£1000", "$2000"),
    "reward": ("holiday", "phone", "voucher", "gift card"),
    "code": ("YES", "GO", "NOW"),
    "number": ("08001234567", "09061701461", "87077"),
    "day": ("today", "tomorrow", "Friday", "weekend"),
    "meal": ("lunch", "dinner", "coffee"),
    "minutes": ("5", "10", "20"),
    "excuse": ("bus is slow", "still at work", "traffic"),
    "place": ("station", "cinema", "office", "park"),
    "item": ("milk", "bread", "eggs"),
    "greeting": ("Hey", "Hi", "Morning"),
}


def make_synthetic_spam(n: int, seed: int = 0) -> Rows:
    """n (label, text) rows, n // 2 of them spam, in a seeded random order. Deterministic."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.array([1] * (n // 2) + [0] * (n - n // 2), dtype=np.int64))
    rows = []
    for label in labels.tolist():
        templates = _SPAM_TEMPLATES if label else _HAM_TEMPLATES
        template = templates[rng.integers(len(templates))]
        slots = {k: v[rng.integers(len(v))] for k, v in _SLOTS.items()}
        rows.append((label, template.format(**slots)))
    return rows
