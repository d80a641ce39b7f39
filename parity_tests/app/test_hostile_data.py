"""Issue 22, data files: the download cache (a forged sha256 record, --sha256 values), zip archives
(damaged, encrypted, an unknown compression, a member that lies about its size, streamed not read
whole) and the book's values table (`python -m twinlm.book.table`). Downloads come from file://
URLs, so nothing here needs a network. Case ids say the class:

    cache/      the cache served a file its pinned hash does not match
    traceback/  a traceback (exit 70, or Python's own for the table) before
    message/    a wrong exit status or a silent default before
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import tracemalloc
import zipfile

import pytest
from hostile import Case, check_case

from twinlm.data import download

SMS = b"ham\tsee you at noon\nspam\tWIN a prize now\n" * 40


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def served(tmp, name: str, data: bytes) -> str:
    """A file:// URL that serves `data`."""
    path = tmp / "server" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path.as_uri()


def get(tmp, name: str, url: str, *flags) -> list:
    return ["data", "get", name, "--cache-dir", tmp / "cache", "--url", url, *flags]


def forged(tmp, name: str = "the-verdict.txt", data: bytes = b"not the verdict\n") -> None:
    """A foreign file in the cache with a record of its own hash beside it, as sha256sum writes."""
    cache = tmp / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    (cache / name).write_bytes(data)
    (cache / f"{name}.sha256").write_text(f"{sha256(data)}  {name}\n")


def zipped(members: dict[str, bytes], method=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def patched_zip(edit) -> bytes:
    """The SMS archive with its local and central headers of the one member edited in place:
    edit(data, local_header_offset, central_header_offset)."""
    data = bytearray(zipped({"SMSSpamCollection": SMS}))
    edit(data, data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02"))
    return bytes(data)


def encrypted(data, local, central):
    data[local + 6] |= 1  # general purpose flag bit 0: encrypted
    data[central + 8] |= 1


def unknown_method(data, local, central):
    data[local + 8 : local + 10] = struct.pack("<H", 99)
    data[central + 10 : central + 12] = struct.pack("<H", 99)


def smaller_than_it_is(data, local, central):
    data[local + 22 : local + 26] = struct.pack("<I", 10)
    data[central + 24 : central + 28] = struct.pack("<I", 10)


def corrupt_stream(data, local, central):
    data[local + 60] ^= 0xFF
    data[local + 61] ^= 0xFF


def spam_get(tmp, archive: bytes) -> list:
    return get(tmp, "sms-spam", served(tmp, "sms.zip", archive), "--sha256", sha256(archive))


def forged_then_get(tmp, *flags):
    forged(tmp)
    return get(tmp, "verdict", served(tmp, "v.txt", b"a mirror's other bytes\n"), *flags)


def table(*paths) -> list:
    return ["-m twinlm.book.table", *paths]


def run_json(tmp, payload) -> list:
    path = tmp / "run.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return table(path)


ROW = {"key": "k", "label": "a quantity", "ours": "1.0", "match": "yes", "book": "1.0"}
RUN = {"settings": {"chapter": "ch04", "backend": "numpy", "seconds": 3.0}, "table": [ROW]}

CASES = [
    Case("cache/forged-record-beside-a-foreign-file", forged_then_get, 1,
         ("sha256 mismatch", download.DATASETS["verdict"].sha256)),
    Case("cache/forged-record-offline", lambda t: (forged(t), get(
         t, "verdict", (t / "nowhere.txt").as_uri()))[1], 1, ("is not used",)),
    Case("message/sha256-empty", lambda t: forged_then_get(t, "--sha256", ""), 2,
         ("argument --sha256: must not be empty",)),  # the parser refuses any empty value
    Case("message/sha256-short", lambda t: forged_then_get(t, "--sha256", "abc"), 2, ("--sha256",)),
    Case("message/sha256-not-hex", lambda t: forged_then_get(t, "--sha256", "g" * 64), 2,
         ("--sha256",)),
    Case("message/sha256-with-spaces",
         lambda t: forged_then_get(t, "--sha256", " " + "0" * 63), 2, ("--sha256",)),
    Case("message/sha256-uppercase-is-a-hash",
         lambda t: get(t, "verdict", served(t, "v.txt", b"x"), "--sha256", sha256(b"x").upper()),
         0),
    Case("message/url-not-a-url", lambda t: get(t, "verdict", "not a url"), 2,
         ("--url must be a URL", "'not a url'")),
    Case("traceback/zip-encrypted-member", lambda t: spam_get(t, patched_zip(encrypted)), 2,
         ("sms_spam_collection.zip is not a valid zip file", "encrypted")),
    Case("traceback/zip-unknown-compression", lambda t: spam_get(t, patched_zip(unknown_method)), 2,
         ("not a valid zip file", "compression method")),
    Case("traceback/zip-corrupt-stream", lambda t: spam_get(t, patched_zip(corrupt_stream)), 2,
         ("not a valid zip file",)),
    Case("message/zip-member-larger-than-declared",
         lambda t: spam_get(t, patched_zip(smaller_than_it_is)), 2, ("not a valid zip file", "CRC")),
    Case("message/zip-not-a-zip", lambda t: spam_get(t, b"plain text, no archive"), 2,
         ("not a valid zip file",)),
    Case("message/zip-without-the-member", lambda t: spam_get(t, zipped({"readme": b"hi"})), 2,
         ("must contain 'SMSSpamCollection'",)),
    Case("message/zip-stored-loads", lambda t: spam_get(
         t, zipped({"SMSSpamCollection": SMS}, zipfile.ZIP_STORED)), 0),
    Case("traceback/table-missing-file", lambda t: table(t / "nope.json"), 2,
         ("nope.json is not readable JSON", "No such file")),
    Case("traceback/table-not-json", lambda t: run_json(t, "{"), 2, ("run.json is not readable JSON",)),
    Case("traceback/table-a-list", lambda t: run_json(t, [RUN]), 2,
         ("run.json must hold a JSON object",)),
    Case("traceback/table-no-settings", lambda t: run_json(t, {"table": [ROW]}), 2,
         ("run.json is missing settings",)),
    Case("traceback/table-seconds-a-string", lambda t: run_json(t, {**RUN, "settings": {
         **RUN["settings"], "seconds": "3"}}), 2, ("seconds",)),
    Case("traceback/table-backend-missing", lambda t: run_json(t, {**RUN, "settings": {
         "chapter": "ch04", "seconds": 3}}), 2, ("backend",)),
    Case("traceback/table-row-unknown-key", lambda t: run_json(t, {**RUN, "table": [{
         **ROW, "colour": 1}]}), 2, ("table[0]",)),
    Case("traceback/table-row-not-an-object", lambda t: run_json(t, {**RUN, "table": [5]}), 2,
         ("table[0]",)),
    Case("traceback/table-row-match-a-number", lambda t: run_json(t, {**RUN, "table": [{
         **ROW, "match": 1}]}), 2, ("table[0]",)),
    Case("traceback/table-table-an-object", lambda t: run_json(t, {**RUN, "table": {}}), 2,
         ("table must be a list",)),
    Case("message/table-no-arguments", lambda t: table(), 2, ("RUN.json",)),
    Case("message/table-loads", lambda t: run_json(t, RUN), 0),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_hostile_data(case, tmp_path):
    check_case(case, tmp_path)


def test_a_forged_extracted_member_is_extracted_again(tmp_path):
    """Before: the extracted SMSSpamCollection.tsv was held to its own record, so a foreign file
    with a forged record was served. Now to the member's hash in the verified archive."""
    archive = zipped({"SMSSpamCollection": SMS})
    url = served(tmp_path, "sms.zip", archive)
    path = download.fetch("sms-spam", tmp_path / "cache", url=url, sha256=sha256(archive))
    assert path.read_bytes() == SMS
    foreign = b"spam\tforged\n"
    path.write_bytes(foreign)
    path.with_name(path.name + ".sha256").write_text(f"{sha256(foreign)}  {path.name}\n")
    again = download.fetch("sms-spam", tmp_path / "cache", url=url, sha256=sha256(archive))
    assert again.read_bytes() == SMS


def test_a_zip_member_is_streamed_not_read_whole(tmp_path):
    """64 MB of text extracted with a few hundred KB of Python allocations (it was one 64 MB
    bytes object)."""
    big = b"ham\t" + b"a" * (64 << 20) + b"\n"
    archive = tmp_path / "a.zip"
    archive.write_bytes(zipped({"SMSSpamCollection": big}))
    tracemalloc.start()
    try:
        digest = download._zip_member(archive, "SMSSpamCollection", tmp_path / "out.tsv")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert digest == sha256(big) and (tmp_path / "out.tsv").stat().st_size == len(big)
    assert peak < 2 << 20, f"peak {peak:,} bytes"


def test_a_member_larger_than_twinlm_extracts_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "MAX_MEMBER_BYTES", 100)
    archive = tmp_path / "a.zip"
    archive.write_bytes(zipped({"SMSSpamCollection": SMS}))
    with pytest.raises(ValueError, match=f"SMSSpamCollection declares {len(SMS):,} bytes"):
        download._zip_member(archive, "SMSSpamCollection", tmp_path / "out.tsv")
    assert not (tmp_path / "out.tsv").exists()
