"""A corpus's own slice of the GPT-2 vocabulary: the BPE tokens its texts use, renumbered 0..V-1.

A small GPT trained on 200 kB of English meets about 4,000 of GPT-2's 50,257 tokens; the other
46,000 rows of tok_emb and out_head never see a gradient except through the softmax, yet cost
most of every step (the (B·L, 50257) logits, their softmax, AdamW over 6.4 M parameters). With
the tokens renumbered, vocab_size = V and the same model trains several times faster:

    new id   = rank of the GPT-2 id in the sorted set of ids the texts use
    encode(t) = new ids of gpt2_encode(t)         (a token outside the set: ValueError)
    decode(i) = gpt2_decode(token_ids[i])

The text is split into words exactly as GPT-2 splits it; only the numbering changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from twinlm.shared.validate import require_ids


class CorpusVocab:
    """The sorted set of GPT-2 token ids (`token_ids`, (V,) int64) that some texts encode to."""

    def __init__(self, token_ids, base_encode: Callable | None = None, base_decode=None):
        from twinlm.data import tokenizer

        ids = np.unique(np.asarray(token_ids, dtype=np.int64))  # (V,) sorted
        if ids.size == 0:
            raise ValueError("token_ids must hold at least one token id, got none")
        self.base_encode = base_encode or tokenizer.encode
        self.base_decode = base_decode or tokenizer.decode
        self.token_ids = ids
        self._new = np.full(int(ids[-1]) + 1, -1, np.int64)  # GPT-2 id -> new id, -1: not in it
        self._new[ids] = np.arange(len(ids))

    @classmethod
    def from_texts(cls, texts: Sequence[str], base_encode=None, base_decode=None) -> CorpusVocab:
        """The tokens of every text in `texts`, encoded one by one (encode a training split and
        its validation split separately, as the model will see them: a cut can split a word into
        tokens the whole text never uses)."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of str, got one str; wrap it in a list")
        from twinlm.data import tokenizer

        encode = base_encode or tokenizer.encode
        parts = [np.asarray(encode(t), dtype=np.int64) for t in texts]
        return cls(np.concatenate(parts) if parts else [], base_encode, base_decode)

    def __len__(self) -> int:
        return len(self.token_ids)

    def encode(self, text: str) -> np.ndarray:
        """New ids, (n,) int64; a GPT-2 token outside the vocabulary raises ValueError naming it."""
        base = np.asarray(self.base_encode(text), dtype=np.int64).reshape(-1)  # (n,)
        new = np.where(base < len(self._new), self._new[np.minimum(base, len(self._new) - 1)], -1)
        if (new < 0).any():
            token = int(base[new < 0][0])
            raise ValueError(
                f"text uses the token {self.base_decode([token])!r} (GPT-2 id {token}), which is "
                f"not in this corpus's vocabulary of {len(self)} tokens"
            )
        return new

    def decode(self, ids) -> str:
        """The text of new ids (any integer sequence, each in [0, V))."""
        ids = np.asarray(ids).reshape(-1)  # (n,)
        if ids.size == 0:
            return ""
        require_ids("ids", ids, len(self))
        return self.base_decode(self.token_ids[ids].tolist())
