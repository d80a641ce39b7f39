"""A Hugging Face tokenizer folder (`tokenizer.json`) through the `tokenizers` library, with the
special ids a model folder records: pad and end-of-text.

Qwen3 uses a byte-level BPE whose 151,643 regular tokens are followed by its special tokens (the
embedding has 151,936 rows, the last ones unused); its base model pads and ends text with
`<|endoftext|>` (id 151643), which is what the classifier pads with instead of GPT-2's 50256. Where the ids come from, first found wins:
    pad_token_id:  tokenizer_config.json's pad_token (a string or {"content": …}), looked up in the
                   vocabulary; else config.json's pad_token_id; else the eos id
    eos_token_id:  config.json's eos_token_id (the first, if a list); else tokenizer_config.json's
                   eos_token; else <|endoftext|> if the vocabulary has it (None if not)
Text is encoded without added special tokens (Qwen3's base tokenizer adds none anyway), so
encode/decode round-trip plain text. `tokenizers` comes with the [hf] and [dev] extras.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


class HFTokenizer:
    """encode(text) -> ids, decode(ids) -> text, pad_token_id, eos_token_id, vocab_size."""

    def __init__(self, folder: str | os.PathLike):
        folder = Path(folder)
        file = folder / "tokenizer.json"
        if not file.is_file():
            raise FileNotFoundError(f"{folder} holds no tokenizer.json")
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise FileNotFoundError(
                f"reading {file} needs the tokenizers library: pip install 'twinlm[hf]'"
            ) from None
        try:
            self._tok = Tokenizer.from_file(str(file))
        except Exception as e:  # tokenizers raises its own exception type for a bad file
            raise ValueError(f"{file} is not a readable tokenizers file: {e}") from e
        self.folder = folder
        config = _json(folder / "config.json")
        tok_config = _json(folder / "tokenizer_config.json")
        self.eos_token_id = _first_id(config.get("eos_token_id"))
        if self.eos_token_id is None:
            self.eos_token_id = self._lookup(tok_config.get("eos_token", "<|endoftext|>"))
        pad = self._lookup(tok_config.get("pad_token"))
        if pad is None:
            pad = _first_id(config.get("pad_token_id"))
        self.pad_token_id = pad if pad is not None else self.eos_token_id

    @property
    def vocab_size(self) -> int:
        """Ids in use, special tokens included (a model's embedding may have more rows)."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)

    def _lookup(self, token) -> int | None:
        if isinstance(token, dict):
            token = token.get("content")
        return None if token is None else self._tok.token_to_id(token)


def load_hf_tokenizer(folder: str | os.PathLike) -> HFTokenizer:
    """The tokenizer of a Hugging Face model folder (tokenizer.json and its special ids)."""
    return HFTokenizer(folder)


def has_hf_tokenizer(folder: str | os.PathLike) -> bool:
    return (Path(folder) / "tokenizer.json").is_file()


def _json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not readable JSON: {e}") from e
    return value if isinstance(value, dict) else {}


def _first_id(value) -> int | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
