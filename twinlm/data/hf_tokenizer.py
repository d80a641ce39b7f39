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

import os
from pathlib import Path

from twinlm.data.json_files import read_json_object


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
        config_file, tok_file = folder / "config.json", folder / "tokenizer_config.json"
        config, tok_config = _json(config_file), _json(tok_file)
        self.eos_token_id = _first_id(config, "eos_token_id", config_file)
        if self.eos_token_id is None:
            eos = _token(tok_config, "eos_token", tok_file, default="<|endoftext|>")
            self.eos_token_id = None if eos is None else self._tok.token_to_id(eos)
        pad = _token(tok_config, "pad_token", tok_file)
        pad = None if pad is None else self._tok.token_to_id(pad)
        if pad is None:
            pad = _first_id(config, "pad_token_id", config_file)
        self.pad_token_id = pad if pad is not None else self.eos_token_id

    @property
    def vocab_size(self) -> int:
        """Ids in use, special tokens included (a model's embedding may have more rows)."""
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)


def load_hf_tokenizer(folder: str | os.PathLike) -> HFTokenizer:
    """The tokenizer of a Hugging Face model folder (tokenizer.json and its special ids)."""
    return HFTokenizer(folder)


def has_hf_tokenizer(folder: str | os.PathLike) -> bool:
    return (Path(folder) / "tokenizer.json").is_file()


def _json(path: Path) -> dict:
    """The JSON object in `path`, {} if there is no such file (a malformed one is refused)."""
    return read_json_object(path) if path.is_file() else {}


def _token(config: dict, key: str, path: Path, default: str | None = None) -> str | None:
    """A special token as tokenizer_config.json gives it: a string, {"content": string}, or null
    (`default` when the key is absent)."""
    token = config.get(key, default)
    if isinstance(token, dict):
        token = token.get("content")
    if token is not None and type(token) is not str:
        raise ValueError(
            f'{path}: {key} must be a string or {{"content": string}}, got {token!r:.40}'
        )
    return token


def _first_id(config: dict, key: str, path: Path) -> int | None:
    """A token id as config.json gives it: an integer >= 0, a list of them (the first counts), or
    null."""
    value = config.get(key)
    ids = value if type(value) is list else [value]
    if value is None or value == []:
        return None
    if not all(type(i) is int and i >= 0 for i in ids):
        raise ValueError(
            f"{path}: {key} must be a token id (an integer >= 0) or a list of them, got {value!r:.40}"
        )
    return ids[0]
