"""A corpus's own slice of the GPT-2 vocabulary (twinlm/data/subvocab.py), checked against GPT-2
ids renumbered here with a plain dict."""

from __future__ import annotations

import numpy as np
import pytest

from twinlm.data.subvocab import CorpusVocab
from twinlm.data.tokenizer import encode as gpt2_encode

TEXTS = ["Return the next item from the generator.", "When exhausted, raise StopIteration."]


def test_vocab_renumbers_the_gpt2_tokens_in_order():
    vocab = CorpusVocab.from_texts(TEXTS)
    used = sorted({t for text in TEXTS for t in gpt2_encode(text)})
    new_id = {t: i for i, t in enumerate(used)}  # the reference: rank among the ids used
    assert len(vocab) == len(used)
    assert vocab.token_ids.tolist() == used and vocab.token_ids.dtype == np.int64
    for text in TEXTS:
        ids = vocab.encode(text)
        assert ids.dtype == np.int64
        assert ids.tolist() == [new_id[t] for t in gpt2_encode(text)]
        assert vocab.decode(ids) == text
        assert vocab.decode(ids.tolist()) == text
    assert vocab.decode([]) == ""


def test_vocab_covers_every_part_as_encoded():
    """A split can cut a word in two: "exhau" + "stion" encode to ex·h·au + st·ion, while the
    whole "exhaustion" is ex·haust·ion. The vocabulary holds what each part encodes to."""
    vocab = CorpusVocab.from_texts(["exhau", "stion"])
    assert vocab.token_ids.tolist() == sorted({1069, 71, 559, 301, 295})
    assert vocab.decode(vocab.encode("exhau")) == "exhau"
    with pytest.raises(ValueError, match=r"token 'haust' \(GPT-2 id 42456\)"):
        vocab.encode("exhaustion")


def test_vocab_errors():
    vocab = CorpusVocab.from_texts(TEXTS)
    with pytest.raises(
        ValueError, match=r"text uses the token ' z' \(GPT-2 id 1976\), which is not in"
    ):
        vocab.encode("Return the zebra")
    with pytest.raises(ValueError, match=rf"ids must lie in \[0, {len(vocab)}\), got {len(vocab)}"):
        vocab.decode([0, len(vocab)])
    with pytest.raises(ValueError, match=r"ids must lie in \[0, \d+\), got -1"):
        vocab.decode(np.array([-1]))
    with pytest.raises(TypeError, match="ids must be an integer array, got float64"):
        vocab.decode(np.array([0.0]))
    with pytest.raises(TypeError, match="texts must be a sequence of str, got one str"):
        CorpusVocab.from_texts("Return the next item.")
    with pytest.raises(ValueError, match="token_ids must hold at least one token id, got none"):
        CorpusVocab.from_texts([""])


def test_vocab_over_another_tokenizer():
    """base_encode/base_decode: any id-level tokenizer, here bytes."""
    vocab = CorpusVocab.from_texts(
        ["abcab"], base_encode=lambda t: list(t.encode()), base_decode=lambda i: bytes(i).decode()
    )
    assert vocab.token_ids.tolist() == [97, 98, 99] and len(vocab) == 3
    assert vocab.encode("cab").tolist() == [2, 0, 1]
    assert vocab.decode([2, 0, 1]) == "cab"
