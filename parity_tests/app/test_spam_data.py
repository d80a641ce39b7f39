"""SMS spam preprocessing (the book's chapter 6) on small TSV files written by the test."""

from __future__ import annotations

import re

import numpy as np
import pytest

from twinlm.data.spam import (
    PAD_ID,
    SPAM_WORDS,
    balance,
    encode_dataset,
    load_sms_spam,
    make_synthetic_spam,
    prepare_sms_spam,
    random_split,
)


def char_codes(text: str) -> list[int]:
    """A stand-in tokenizer whose ids are easy to check by eye (and never equal PAD_ID)."""
    return [ord(c) for c in text]


def decode_row(row: np.ndarray) -> str:
    return "".join(chr(i) for i in row if i != PAD_ID)


HAM = [f"ok see you at {i} o'clock" + "!" * (i % 5) for i in range(30)]
SPAM = [f"WIN a prize number {i}, text CLAIM to 8{i:03d}" for i in range(7)]
HAM[3] = '"Hi there", she said. "Bye"'  # a text starting with a quote is kept as written


@pytest.fixture
def tsv(tmp_path):
    labels_texts = [("ham", t) for t in HAM] + [("spam", t) for t in SPAM]
    order = np.random.default_rng(0).permutation(len(labels_texts))
    lines = [f"{labels_texts[i][0]}\t{labels_texts[i][1]}" for i in order]
    path = tmp_path / "SMSSpamCollection"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, [(int(labels_texts[i][0] == "spam"), labels_texts[i][1]) for i in order]


def test_load_counts_and_labels(tsv):
    path, expected = tsv
    rows = load_sms_spam(path)
    assert rows == expected
    assert sum(label == 0 for label, _ in rows) == 30
    assert sum(label == 1 for label, _ in rows) == 7


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="SMSSpamCollection file, not found"):
        load_sms_spam(tmp_path / "missing")
    bad = tmp_path / "bad"
    bad.write_text("ham\tfine\nham\talso fine\nno tab here\n")
    with pytest.raises(ValueError, match=r":3: expected 'label<TAB>text', got 'no tab here'"):
        load_sms_spam(bad)
    bad.write_text("ham\tfine\nSpam\tloud\n")
    with pytest.raises(ValueError, match=r":2: label must be 'ham' or 'spam', got 'Spam'"):
        load_sms_spam(bad)
    bad.write_text("\n\n")
    with pytest.raises(ValueError, match="holds no messages"):
        load_sms_spam(bad)
    bad.write_bytes(b"ham\t\xff\xfe\n")
    with pytest.raises(ValueError, match="is not UTF-8 text"):
        load_sms_spam(bad)


def test_balance(tsv):
    rows = load_sms_spam(tsv[0])
    balanced = balance(rows, seed=123)
    ham_part, spam_part = balanced[:7], balanced[7:]
    assert spam_part == [r for r in rows if r[0] == 1]  # every spam row, in file order
    assert all(label == 0 for label, _ in ham_part)
    assert len(set(ham_part)) == 7 and set(ham_part) <= {r for r in rows if r[0] == 0}
    assert balance(rows, seed=123) == balanced  # deterministic
    assert balance(rows, seed=7)[:7] != ham_part
    with pytest.raises(ValueError, match="at least as many ham as spam, got 1 < 2"):
        balance([(0, "a"), (1, "b"), (1, "c")])


def test_book_sizes():
    """747 spam among the UCI messages -> 747 + 747, split 1,045 / 149 / 300 as in the book."""
    rows = [(0, f"h{i}") for i in range(4827)] + [(1, f"s{i}") for i in range(747)]
    balanced = balance(rows)
    assert len(balanced) == 1494 and sum(label for label, _ in balanced) == 747
    train, validation, test = random_split(balanced, 0.7, 0.1)
    assert (len(train), len(validation), len(test)) == (1045, 149, 300)
    assert sorted(train + validation + test) == sorted(balanced)  # a partition


def test_random_split_is_a_seeded_shuffle():
    rows = list(range(20))
    train, validation, test = random_split(rows, 0.7, 0.1, seed=1)
    assert (len(train), len(validation), len(test)) == (14, 2, 4)
    assert sorted(train + validation + test) == rows
    assert train + validation + test != rows  # shuffled
    assert random_split(rows, 0.7, 0.1, seed=1) == (train, validation, test)
    assert random_split(rows, 0.7, 0.1, seed=2) != (train, validation, test)
    with pytest.raises(ValueError, match=r"train_frac must be in \(0, 1\], got 0"):
        random_split(rows, 0, 0.1)
    with pytest.raises(ValueError, match=r"validation_frac must be in \[0, 1 - train_frac\]"):
        random_split(rows, 0.7, 0.4)


def test_encode_pads_to_longest_with_eot():
    rows = [(0, "hi"), (1, "WIN now"), (0, "")]
    ds = encode_dataset(rows, encode=char_codes)
    assert ds.ids.dtype == np.int64 and ds.labels.dtype == np.int64
    assert ds.ids.shape == (3, 7) and ds.max_length == 7 and len(ds) == 3
    np.testing.assert_array_equal(ds.labels, [0, 1, 0])
    np.testing.assert_array_equal(ds.ids[0], [104, 105] + [50256] * 5)
    np.testing.assert_array_equal(ds.ids[1], [87, 73, 78, 32, 110, 111, 119])
    np.testing.assert_array_equal(ds.ids[2], [50256] * 7)
    ids, label = ds[1]
    assert decode_row(ids) == "WIN now" and label == 1


def test_encode_truncates_and_pads_to_max_length():
    ds = encode_dataset([(1, "abcdefgh"), (0, "ab")], max_length=5, encode=char_codes)
    np.testing.assert_array_equal(ds.ids, [[97, 98, 99, 100, 101], [97, 98, 50256, 50256, 50256]])
    ds = encode_dataset([(0, "ab")], max_length=4, pad_id=0, encode=char_codes)
    np.testing.assert_array_equal(ds.ids, [[97, 98, 0, 0]])


def test_encode_errors():
    with pytest.raises(ValueError, match="max_length must be a positive int or None, got 0"):
        encode_dataset([(0, "a")], max_length=0, encode=char_codes)
    with pytest.raises(ValueError, match="rows must hold at least one"):
        encode_dataset([], encode=char_codes)
    with pytest.raises(ValueError, match=r"labels must be 0 \(ham\) or 1 \(spam\), got \[0, 2\]"):
        encode_dataset([(0, "a"), (2, "b")], encode=char_codes)


def test_default_tokenizer_is_gpt2_bpe():
    """The book's example ids for "Hello, I am" under GPT-2's BPE; pad = <|endoftext|>."""
    from twinlm.data.tokenizer import EOT_ID

    assert PAD_ID == EOT_ID == 50256
    ds = encode_dataset([(0, "Hello, I am"), (1, "Hello")])
    np.testing.assert_array_equal(ds.ids, [[15496, 11, 314, 716], [15496, 50256, 50256, 50256]])


def test_prepare_pads_every_split_to_the_longest_training_text(tsv):
    path, rows = tsv
    train, validation, test = prepare_sms_spam(path, encode=char_codes)
    assert (len(train), len(validation), len(test)) == (9, 1, 4)  # 14 = 7 spam + 7 ham
    texts = {
        split: [decode_row(r) for r in ds.ids]
        for split, ds in zip("tvs", (train, validation, test))
    }
    longest = max(len(t) for t in texts["t"])
    assert train.max_length == validation.max_length == test.max_length == longest
    assert (train.ids[:, -1] != PAD_ID).any()  # some training text fills every position
    # Each row is one balanced message (validation/test ones cut to the training length).
    sources = {t: 0 for t in HAM} | {t: 1 for t in SPAM}
    matched = []
    for ds, split in ((train, "t"), (validation, "v"), (test, "s")):
        for text, label in zip(texts[split], ds.labels):
            (source,) = [s for s in sources if s[:longest] == text]
            assert sources[source] == label
            matched.append(source)
    assert len(set(matched)) == 14 and set(SPAM) <= set(matched)
    with pytest.raises(
        ValueError, match=f"the longest training text has {longest} tokens.*context_length 10"
    ):
        prepare_sms_spam(path, encode=char_codes, context_length=10)
    short = prepare_sms_spam(path, encode=char_codes, max_length=10, context_length=10)
    assert all(ds.ids.shape[1] == 10 for ds in short)


def test_batches():
    ds = encode_dataset([(i % 2, "x" * (i + 1)) for i in range(10)], encode=char_codes)
    plain = list(ds.batches(4))
    assert [b[0].shape for b in plain] == [(4, 10), (4, 10), (2, 10)]
    np.testing.assert_array_equal(np.concatenate([b[0] for b in plain]), ds.ids)
    shuffled = list(ds.batches(4, shuffle=True, seed=1, drop_last=True))
    assert [len(b[1]) for b in shuffled] == [4, 4]
    seen = np.concatenate([b[0] for b in shuffled])
    assert len({r.tobytes() for r in seen}) == 8 and not np.array_equal(seen, ds.ids[:8])
    with pytest.raises(ValueError, match="batch_size must be a positive int, got 0"):
        next(ds.batches(0))


def test_synthetic_spam_is_separable_and_deterministic():
    rows = make_synthetic_spam(40, seed=3)
    assert rows == make_synthetic_spam(40, seed=3)
    assert rows != make_synthetic_spam(40, seed=4)
    assert len(rows) == 40 and sum(label for label, _ in rows) == 20
    marker = re.compile(r"\b(" + "|".join(SPAM_WORDS) + r")\b", re.IGNORECASE)
    for label, text in rows:
        assert bool(marker.search(text)) == bool(label), text
    assert len({text for _, text in rows}) > 20  # varied texts, not a handful repeated
    assert make_synthetic_spam(0) == [] and sum(label for label, _ in make_synthetic_spam(5)) == 2
    with pytest.raises(ValueError, match="n must be a non-negative int, got -1"):
        make_synthetic_spam(-1)
