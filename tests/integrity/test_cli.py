"""``aiaudit verify`` and ``aiaudit integrity``: forged bundles fail, bad input is one line.

Bundles here are built in memory (events prepared as ingest does, a tree and
a checkpoint signed with a key file), so most tests need no store or server.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import socket
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from aiaudit.cli.main import main
from aiaudit.common import canonical, client
from aiaudit.common.store import SqlEventStore
from aiaudit.common.store.prepare import prepare
from aiaudit.common.store.schema import content_keys
from aiaudit.common.store.sql import Receipt
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.integrity import bundle, merkle, note
from aiaudit.integrity.receipts import ReceiptNotary
from aiaudit.integrity.signers import FileKeys
from tests.helpers import interaction, run_into_closed_pipe, traced_peak, wait_until
from tests.integrity.conftest import ORIGIN_PREFIX, Notaries, append
from tests.integrity.test_notary import covers

TENANT = "t1"
Line = dict[str, Any]


def said(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """What the command told the user on stderr (not the JSON logs of threads running beside)."""
    return [line for line in capsys.readouterr().err.splitlines() if not line.startswith("{")]


def make_bundle(
    tmp_path: Path, n: int = 3, origin_prefix: str = ORIGIN_PREFIX, media: bytes = b""
) -> list[Line]:
    """``n`` events of TENANT with proofs to one checkpoint signed by ``tmp_path/key.pem``
    (each with an inline ``text/plain`` media part of ``media``, if given)."""
    events = [interaction(TENANT, f"e-{i}", text=f"secret {i}") for i in range(n)]
    if media:
        digest = hashlib.sha256(media).hexdigest()
        for e in events:
            e.input.messages[0].parts.add().media.CopyFrom(
                ev.Media(mime_type="text/plain", size_bytes=len(media), sha256=digest, data=media)
            )
    return proved_lines(tmp_path, events, origin_prefix)


def proved_lines(
    tmp_path: Path, events: list[ev.Event], origin_prefix: str = ORIGIN_PREFIX
) -> list[Line]:
    """Bundle lines of ``events`` (one log's, in sequence order from 0) with proofs to one
    checkpoint of them signed by ``tmp_path/key.pem``."""
    signer = note.file_signer(ORIGIN_PREFIX, tmp_path / "key.pem")
    now = dt.datetime.now(dt.UTC)
    prepared = [prepare(e, now) for e in events]
    tree, edge = merkle.MemoryNodeStore(), merkle.CompactRange()
    tree.write_nodes(edge.extend(p.committed.leaf_hash for p in prepared))
    log_id = events[0].tenant_id
    cp = note.Checkpoint(f"{origin_prefix}/{log_id}", len(events), edge.root())
    signed = note.sign_checkpoint(cp, [signer])
    return [
        json.loads(
            bundle.event_line(
                log_id,
                i,
                p.event.event_id,
                p.committed.canonical,
                bundle.format_tlog_proof(i, merkle.inclusion_proof(i, len(events), tree), signed),
                p.salt,
                p.committed.content,
            )
        )
        for i, p in enumerate(prepared)
    ]


def scope_line(text: str | bytes) -> bool:
    """Whether a bundle line is its scope or seal line (``{"scope": ...}``, ``{"seal": ...}``),
    not an event's."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):  # a line nested too deep is no scope
        return False
    return isinstance(obj, dict) and ("scope" in obj or "seal" in obj)


def event_lines(text: Path | str | bytes) -> list[Line]:
    """A bundle's event lines (a file's, or its text), its scope and seal lines left out."""
    if isinstance(text, Path):
        text = text.read_text()
    if isinstance(text, bytes):
        text = text.decode()
    return [json.loads(t) for t in text.splitlines() if t.strip() and not scope_line(t)]


def scope_of(text: Path | str | bytes) -> dict[str, Any]:
    """A bundle's scope: its first line's ``scope`` object."""
    if isinstance(text, Path):
        text = text.read_text()
    if isinstance(text, bytes):
        text = text.decode()
    first = json.loads(text.splitlines()[0])
    assert set(first) == {"scope"}, first
    return dict(first["scope"])


def key_of(tmp_path: Path) -> str:
    return note.file_signer(ORIGIN_PREFIX, tmp_path / "key.pem").verifier_key.encode()


def write(path: Path, lines: list[Line]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def verify(path: Path, key: str, *extra: str) -> int:
    return main(["verify", "--bundle", str(path), "--verifier-key", key, *extra])


def check(tmp_path: Path, lines: list[Line], *extra: str) -> int:
    path = write(tmp_path / "bundle.jsonl", lines)
    return verify(path, key_of(tmp_path), "--origin-prefix", ORIGIN_PREFIX, *extra)


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return int(s.getsockname()[1])


def test_an_untouched_bundle_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert check(tmp_path, make_bundle(tmp_path)) == 0
    assert "3 event(s) checked, 0 problem(s)" in capsys.readouterr().err


def checkpoint_of(line: Line) -> tuple[str, str, str]:
    """The origin, size and root of the checkpoint a line's proof leads to."""
    origin, size, root = line["tlog_proof"].split("\n\n", 1)[1].split("\n")[:3]
    return origin, size, root


def key_name(key: str) -> str:
    """``name+keyid`` of a verifier key ``name+keyid+base64`` (whose base64 may hold a +)."""
    return "+".join(key.split("+")[:2])


def test_a_bundle_that_verifies_says_what_was_proven(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A truncated, reordered, older or two-tenant bundle and one with a line's content
    stripped all printed just "N event(s) checked, 0 problem(s)" (review 2026-12-05): not
    the checkpoint, which sequences of it the bundle holds, whose content was proven, nor the
    key. Now each is said, per log, on stderr before the count; stdout stays the problems."""
    lines = make_bundle(tmp_path, 6)
    bare = {k: v for k, v in lines[4].items() if k not in ("salt", "content")}
    kept = [lines[5], lines[0], lines[1], lines[3], bare]
    key = key_of(tmp_path)
    origin, _, root = checkpoint_of(lines[0])
    summary = [
        f"log {TENANT}: checkpoint {origin} size 6 root {root} signed by {key_name(key)}",
        f"log {TENANT}: 5 event(s) at sequences 0..1, 3..5; 1 of the checkpoint's 6 not in the "
        "bundle; lines not in sequence order",
        f"log {TENANT}: content verified for 4 event(s); 1 without content (erased or "
        "withheld): their content is not proven",
        bundle.NO_SCOPE,
        f"verifier key {key_name(key)}: given with --verifier-key",
        "5 event(s) checked, 0 problem(s)",
    ]
    assert check(tmp_path, kept) == 0
    out = capsys.readouterr()
    assert (out.out, said_of(out.err)) == ("", summary)
    # The whole checkpoint, in order.
    assert check(tmp_path, lines) == 0
    assert said_of(capsys.readouterr().err)[1] == (
        f"log {TENANT}: 6 event(s) at sequences 0..5; all 6 of the checkpoint"
    )


def said_of(err: str) -> list[str]:
    """stderr's lines without the JSON logs of threads running beside."""
    return [line for line in err.splitlines() if not line.startswith("{")]


def test_lines_of_two_exports_of_one_log_are_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An old export's lines followed by a newer one's, each proven against its own
    checkpoint, passed (review 2026-12-05). An export proves every line against one
    checkpoint of its log, and nothing in the bundle shows two are of one history."""
    older, newer = make_bundle(tmp_path, 3), make_bundle(tmp_path, 4)
    (_, _, r3), (_, _, r4) = checkpoint_of(older[0]), checkpoint_of(newer[0])
    assert check(tmp_path, [older[0], newer[1], newer[3], older[2]]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"line 2 event e-1: log '{TENANT}' has a second checkpoint (size 4 root {r4}) besides"
        f" line 1's (size 3 root {r3}): an export proves all its lines against one checkpoint,"
        " so lines of different exports were joined"
    ]
    # The same size with another root is a forked log, named as such only.
    assert check(tmp_path, [older[0], make_bundle(tmp_path, 3)[1]]) == 1
    (fork,) = capsys.readouterr().out.splitlines()
    assert fork.endswith("has another root than line 1's: a forked log")


def test_a_key_from_the_local_data_dir_is_said_to_be_no_published_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --verifier-key the key of the data dir at hand is trusted: a bundle made by
    any server started in that folder verified, and the output named no key (review
    2026-12-05). The summary names the key and where it came from."""
    lines = make_bundle(tmp_path)
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "key.pem").rename(data / "notary-ed25519.pem")
    config = tmp_path / "config.yaml"
    config.write_text(f"integrity:\n  origin_prefix: {ORIGIN_PREFIX}\n")
    path = write(tmp_path / "b.jsonl", lines)
    assert (
        main(["verify", "--bundle", str(path), "--config", str(config), "--data-dir", str(data)])
        == 0
    )
    told = said_of(capsys.readouterr().err)
    key = note.file_signer(ORIGIN_PREFIX, data / "notary-ed25519.pem").verifier_key.encode()
    assert told[-2:] == [
        f"verifier key {key_name(key)}: read from {data / 'notary-ed25519.pem'}, this "
        "machine's configured signing key (no --verifier-key): a local key, not a published "
        "one; pass the key the server publishes with --verifier-key",
        "3 event(s) checked, 0 problem(s)",
    ]


@pytest.mark.parametrize("offline", ["--bundle", "--receipt"])
def test_a_key_found_by_the_folder_it_runs_in_is_no_trust_anchor(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    offline: str,
) -> None:
    """Without --verifier-key the key of ./data was trusted, the default data dir, which is
    whatever folder the command runs in: a folder handed over with a forged bundle or receipt
    (``data/notary-ed25519.pem`` beside it, the key the forger signed with) verified it, exit
    0 and "0 problem(s)" (review, 2026-12-06). Such a key is refused before anything is read;
    a data dir named by the auditor (--data-dir) is still this machine's key, said so."""
    forged = tmp_path / "handed-over"
    (forged / "data").mkdir(parents=True)
    lines = make_bundle(forged)
    path = write(forged / "b.jsonl", lines) if offline == "--bundle" else _receipt(forged)
    (forged / "key.pem").rename(forged / "data" / "notary-ed25519.pem")
    monkeypatch.chdir(forged)
    monkeypatch.setenv("AIAUDIT_INTEGRITY_ORIGIN_PREFIX", ORIGIN_PREFIX)
    assert main(["verify", offline, path.name]) == 2
    out = capsys.readouterr()
    assert out.out == ""
    assert (
        "no --verifier-key: the key file data/notary-ed25519.pem is found by the folder this "
        "runs in (the default data dir ./data), so a folder handed over with the file could hold "
        "the key it is signed with; pass the key the server publishes (aiaudit integrity "
        "verifier-key) with --verifier-key, or name the notary's data dir with --data-dir"
    ) in out.err
    # Named by the auditor, the data dir is this machine's configuration, as before.
    assert main(["verify", offline, path.name, "--data-dir", "data"]) == 0


@pytest.mark.parametrize("drop", ["salt", "content"])
def test_content_and_salt_come_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], drop: str
) -> None:
    """A forged prompt without its salt used to pass: content was only checked with one."""
    lines = make_bundle(tmp_path)
    lines[1]["content"] = {k: "FORGED" for k in lines[1]["content"]}
    del lines[1][drop]
    assert check(tmp_path, lines) == 1
    kept = "content" if drop == "salt" else "salt"
    assert f"line 2 event e-1: malformed line: {kept} without {drop}" in capsys.readouterr().out


def test_lines_of_logs_not_asked_for_are_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = make_bundle(tmp_path)
    assert check(tmp_path, lines, "--log", TENANT) == 0
    assert check(tmp_path, lines, "--log", "other") == 1
    out = capsys.readouterr().out
    assert "line 1 event e-0: log 't1' is not one of the logs to verify (other)" in out


def test_the_origin_prefix_defaults_to_the_configured_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --origin-prefix, a checkpoint of another log named like this one must fail."""
    monkeypatch.setenv("AIAUDIT_INTEGRITY_ORIGIN_PREFIX", ORIGIN_PREFIX)
    key = key_of(tmp_path)
    assert verify(write(tmp_path / "good.jsonl", make_bundle(tmp_path)), key) == 0
    foreign = make_bundle(tmp_path, origin_prefix="other.example/log")
    assert verify(write(tmp_path / "foreign.jsonl", foreign), key) == 1
    out = capsys.readouterr().out
    assert "line 1 event e-0: checkpoint origin 'other.example/log/t1' is not" in out


@pytest.mark.parametrize(
    ("value", "kind"), [(0.9, "a number"), (True, "a boolean"), ("0", "a string")]
)
def test_the_sequence_must_be_a_json_integer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: object, kind: str
) -> None:
    lines = make_bundle(tmp_path)
    lines[0]["sequence"] = value
    assert check(tmp_path, lines) == 1
    out = capsys.readouterr().out
    assert (
        f"line 1 event e-0: malformed line: field 'sequence' must be an integer, not {kind}\n"
        == out
    )


def test_an_event_twice_is_a_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = make_bundle(tmp_path)
    assert check(tmp_path, [*lines, lines[1]]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "line 4 event e-1: duplicate: line 2 has the same log and sequence"
    ]
    # The earlier line is found by a second read: the first one of that log and event id.
    renumbered = {**lines[1], "sequence": 2}
    assert check(tmp_path, [lines[0], {**lines[1], "log_id": "t2"}, lines[1], renumbered]) == 1
    assert capsys.readouterr().out.splitlines()[-2:] == [
        "line 4 event e-1: duplicate: line 3 has the same log and event_id",
        "line 4 event e-1: proof index 1 is not the event's sequence 2",
    ]


def test_verifying_a_bundle_keeps_no_python_entry_per_event(tmp_path: Path) -> None:
    """``verify --bundle`` grew by about 0.45 KB per event (review 2026-12-05): a dict entry
    per line for its sequence and another for its event id, to find duplicates. Sequences
    are now ranges per log and event ids 16-byte digests: well under 200 bytes per event
    (tracemalloc, in a process of its own, on 10,000 events without content, the smallest
    lines)."""
    n = 10_000
    signer = note.file_signer(ORIGIN_PREFIX, tmp_path / "key.pem")
    ids = [f"e-{i:032x}" for i in range(n)]
    committed = [
        json.dumps({"eventId": e, "tenantId": TENANT}, separators=(",", ":")).encode() for e in ids
    ]
    tree, edge = merkle.MemoryNodeStore(), merkle.CompactRange()
    tree.write_nodes(edge.extend(canonical.leaf_hash(c) for c in committed))
    signed = note.sign_checkpoint(
        note.Checkpoint(f"{ORIGIN_PREFIX}/{TENANT}", n, edge.root()), [signer]
    )
    path = tmp_path / "big.jsonl"
    with path.open("w") as f:
        for i, (e, c) in enumerate(zip(ids, committed, strict=True)):
            proof = bundle.format_tlog_proof(i, merkle.inclusion_proof(i, n, tree), signed)
            f.write(bundle.event_line(TENANT, i, e, c, proof) + "\n")
    argv = ["verify", "--bundle", str(path), "--verifier-key", signer.verifier_key.encode()]
    code, peak = traced_peak([*argv, "--origin-prefix", ORIGIN_PREFIX], tmp_path / "peak.json")
    assert code == 0
    assert peak / n < 200, f"{peak / n:.0f} bytes per event"


MEDIA = "input.messages[0].parts[1].media.data"


def _uncanonical(b64: str) -> str:
    """Another base64 text of the same bytes: the unused bits before the padding set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    body = b64.rstrip("=")
    assert len(body) != len(b64), "needs padding, hence unused bits"
    last = alphabet[alphabet.index(body[-1]) + 1]
    return body[:-1] + last + b64[len(body) :]


@pytest.mark.parametrize(
    ("forge", "what"),
    [
        (  # what follows the padding: lenient base64 ignored it, a reader sees it
            lambda line: {
                **line,
                "content": {
                    **line["content"],
                    MEDIA: line["content"][MEDIA] + base64.b64encode(b" NOT 100 EUR").decode(),
                },
            },
            f"event e-0: {MEDIA}: bytes not in canonical base64",
        ),
        (
            lambda line: {
                **line,
                "content": {**line["content"], MEDIA: "__==" + line["content"][MEDIA]},
            },
            f"event e-0: {MEDIA}: bytes not in canonical base64",
        ),
        (
            lambda line: {
                **line,
                "content": {**line["content"], MEDIA: _uncanonical(line["content"][MEDIA])},
            },
            f"event e-0: {MEDIA}: bytes not in canonical base64",
        ),
        (
            lambda line: {**line, "canonical": _uncanonical(line["canonical"])},
            "event e-0: malformed line: field 'canonical' is not in canonical base64",
        ),
        (
            lambda line: {
                **line,
                "salt": base64.b64encode(base64.b64decode(line["salt"]) + bytes(32)).decode(),
            },
            "event e-0: malformed line: salt has 64 bytes, not 32",
        ),
        (
            lambda line: {**line, "event": {"actor": {"userId": "mallory"}}},
            "event e-0: malformed line: unknown field 'event': a line holds canonical, content,",
        ),
    ],
)
def test_what_reads_two_ways_is_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], forge: Any, what: str
) -> None:
    """Edits a review made that still verified: each value read one way here, another way by
    a person or another decoder."""
    (line,) = make_bundle(tmp_path, 1, media=b"I approve payment of 100 EUR.")
    assert _uncanonical(line["canonical"]) != line["canonical"]
    assert check(tmp_path, [line]) == 0
    assert check(tmp_path, [forge(line)]) == 1
    assert f"line 1 {what}" in capsys.readouterr().out


def _proof(line: Line, edit: Any) -> Line:
    """``line`` with its tlog-proof's text lines (header, index, hashes, ...) edited."""
    head, blank, signed = line["tlog_proof"].partition("\n\n")
    return {**line, "tlog_proof": "\n".join(edit(head.split("\n"))) + blank + signed}


@pytest.mark.parametrize(
    ("forge", "what"),
    [
        (  # Arabic-Indic one: str.isdigit took it and int() read it as 1
            lambda line: json.dumps(
                _proof(line, lambda p: [p[0], "index \u0661", *p[2:]]), ensure_ascii=False
            ),
            "malformed line: tlog-proof index must be a decimal number (ASCII digits)",
        ),
        (
            lambda line: json.dumps(_proof(line, lambda p: [p[0], "index \uff11", *p[2:]])),
            "malformed line: tlog-proof index must be a decimal number (ASCII digits)",
        ),
        (
            lambda line: json.dumps(_proof(line, lambda p: [*p[:2], _uncanonical(p[2]), *p[3:]])),
            "malformed line: tlog-proof hash 1 is not in canonical base64",
        ),
        (
            lambda line: json.dumps(
                _proof(line, lambda p: [p[0], "extra " + _uncanonical("eA=="), *p[1:]])
            ),
            "malformed line: tlog-proof extra data is not in canonical base64",
        ),
        (
            lambda line: json.dumps({**line, "sequence": 0}).replace(
                '"sequence": 0', '"sequence": -0'
            ),
            "malformed line: integer -0 is not written as 0",
        ),
    ],
)
def test_a_proof_or_number_spelt_two_ways_is_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], forge: Any, what: str
) -> None:
    """The README promises one reading of a line; each of these verified (exit 0)."""
    lines = make_bundle(tmp_path, 3)
    assert check(tmp_path, lines) == 0
    good_extra = _proof(lines[1], lambda p: [p[0], "extra eA==", *p[1:]])
    assert check(tmp_path, [lines[0], good_extra, lines[2]]) == 0  # canonical extra data
    capsys.readouterr()
    target = lines[0] if "-0" in what else lines[1]
    forged = forge(target)
    assert forged != json.dumps(target)
    path = tmp_path / "forged.jsonl"
    path.write_text(
        "".join((forged if line is target else json.dumps(line)) + "\n" for line in lines),
        encoding="utf-8",
    )
    assert verify(path, key_of(tmp_path), "--origin-prefix", ORIGIN_PREFIX) == 1
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].endswith(what), out


@pytest.mark.parametrize("where", ["line", "content"])
def test_a_key_twice_in_one_object_is_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    """Python keeps the last of two equal keys, other parsers the first: a reader could be
    shown a forged prompt beside the genuine one that verifies."""
    (line,) = make_bundle(tmp_path, 1)
    text = json.dumps(line)
    if where == "line":
        text = '{"event_id": "FAKE", ' + text[1:]
        key = "event_id"
    else:
        key = "input.messages[0].parts[0].text"
        text = text.replace('"content": {', f'"content": {{"{key}": "FORGED PROMPT", ', 1)
    path = tmp_path / "bundle.jsonl"
    path.write_text(text + "\n")
    assert verify(path, key_of(tmp_path), "--origin-prefix", ORIGIN_PREFIX) == 1
    assert f"malformed line: key {key!r} appears twice in one object" in capsys.readouterr().out


def test_two_roots_for_one_checkpoint_size_are_a_forked_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two histories of one log, both signed (a stolen key, a rewritten store): each line
    verifies against its own checkpoint, but together they cannot both be the log."""
    one, other = make_bundle(tmp_path), make_bundle(tmp_path)
    assert check(tmp_path, one) == check(tmp_path, other) == 0
    capsys.readouterr()
    assert check(tmp_path, [one[0], other[1]]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"line 2 event e-1: checkpoint {ORIGIN_PREFIX}/{TENANT} size 3 has another root than"
        " line 1's: a forked log"
    ]


@pytest.mark.parametrize(
    ("event_id", "shown"),
    [
        ("x\r\x1b[2K3 event(s) checked, 0 problem(s)\x1b[8m", "x\\r\\x1b[2K3 event(s)"),
        # a lone surrogate: printing it raised UnicodeEncodeError; such a line is malformed
        ("\udc00", '?: malformed line: the value of "event_id" escapes a lone surrogate'),
    ],
)
def test_what_the_file_names_is_printed_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], event_id: str, shown: str
) -> None:
    lines = make_bundle(tmp_path, 2)
    assert check(tmp_path, [{**lines[0], "event_id": event_id}, lines[1]]) == 1
    out = capsys.readouterr()
    assert out.out.splitlines()[0].startswith(f"line 1 event {shown}")
    assert "\x1b" not in out.out
    assert "2 event(s) checked, 1 problem(s)" in out.err  # the summary still comes


def _canonical(line: Line, raw: bytes) -> Line:
    return {**line, "canonical": base64.b64encode(raw).decode()}


@pytest.mark.parametrize(
    ("forge", "what"),
    [
        (lambda line: b"[1,2,3]\n", "event ?: malformed line: a line must be a JSON object"),
        (lambda line: b"42\n", "event ?: malformed line: a line must be a JSON object"),
        (lambda line: b"\xff\xfe garbage\n", "event ?: malformed line: 'utf-8' codec"),
        (
            lambda line: json.dumps(_canonical(line, b"[1]")).encode() + b"\n",
            "event e-0: canonical is an array, not a JSON object",
        ),
        (
            lambda line: (
                json.dumps({**line, "content": {**line["content"], "x": 5}}).encode() + b"\n"
            ),
            "event e-0: malformed line: content 'x' must be a string, not an integer",
        ),
        (
            lambda line: json.dumps({**line, "log_id": [TENANT]}).encode() + b"\n",
            "event e-0: malformed line: field 'log_id' must be a string, not an array",
        ),
    ],
)
def test_malformed_lines_are_problems_not_tracebacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], forge: Any, what: str
) -> None:
    first = make_bundle(tmp_path, 1)[0]
    path = tmp_path / "bundle.jsonl"
    path.write_bytes(forge(first))
    assert verify(path, key_of(tmp_path), "--origin-prefix", ORIGIN_PREFIX) == 1
    assert f"line 1 {what}" in capsys.readouterr().out


def _receipt(tmp_path: Path) -> Path:
    """A genuine receipt note of TENANT, signed by the key of :func:`make_bundle`."""
    keys = FileKeys(ORIGIN_PREFIX, tmp_path / "key.pem")
    leaf = merkle.leaf_hash(b"event")
    got = Receipt("e-9", TENANT, 9, leaf, dt.datetime.now(dt.UTC))
    path = tmp_path / "receipt.note"
    path.write_text(ReceiptNotary(keys, ORIGIN_PREFIX).sign([got])[0])
    return path


def test_a_receipt_whose_reader_closed_the_pipe_is_said_nothing_of(tmp_path: Path) -> None:
    """``verify --receipt F | head``: what it printed lost, its summary on stderr said
    ``valid signature, 1 event(s)`` (and until 2026-12-07 ``aiaudit: [Errno 32] Broken
    pipe``). Exit 1, nothing said, as every command. A process of its own: the real stdout."""
    path = _receipt(tmp_path)
    argv = ["verify", "--receipt", str(path), "--verifier-key", key_of(tmp_path)]
    done = run_into_closed_pipe([*argv, "--origin-prefix", ORIGIN_PREFIX])
    assert (done.returncode, done.stderr) == (1, "")


def test_a_bundle_beside_a_receipt_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the receipt was read: a tampered bundle given with a valid receipt passed (exit 0)."""
    lines = make_bundle(tmp_path)
    lines[1]["content"] = {k: "FORGED" for k in lines[1]["content"]}
    tampered = write(tmp_path / "tampered.jsonl", lines)
    receipt = _receipt(tmp_path)
    key = key_of(tmp_path)
    prefix = ["--verifier-key", key, "--origin-prefix", ORIGIN_PREFIX]
    assert main(["verify", "--receipt", str(receipt), *prefix]) == 0
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(["verify", "--bundle", str(tampered), *prefix, "--receipt", str(receipt)])
    assert exited.value.code == 2
    assert "argument --receipt: not allowed with argument --bundle" in capsys.readouterr().err
    assert verify(tampered, key, "--origin-prefix", ORIGIN_PREFIX) == 1


@pytest.mark.parametrize("offline", ["--bundle", "--receipt"])
@pytest.mark.parametrize(
    "option",
    [
        ["--database-url", "sqlite:///elsewhere.db"],
        ["--mode", "full"],  # even the default: it is not what an offline check does
        ["--workers", "4"],
        ["--checkpoint-dir", "cps"],
    ],
)
def test_options_of_the_store_are_refused_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], offline: str, option: list[str]
) -> None:
    """They were silently ignored beside --bundle or --receipt."""
    path = write(tmp_path / "b.jsonl", make_bundle(tmp_path)) if offline == "--bundle" else None
    path = path or _receipt(tmp_path)
    argv = ["verify", offline, str(path), "--verifier-key", key_of(tmp_path), *option]
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--origin-prefix", ORIGIN_PREFIX])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option[0]}: not allowed with argument {offline}" in err
    assert "are options of verifying the store" in err


def test_log_is_refused_with_a_receipt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["verify", "--receipt", str(_receipt(tmp_path)), "--verifier-key", key_of(tmp_path)]
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--origin-prefix", ORIGIN_PREFIX, "--log", "other"])
    assert exited.value.code == 2
    assert "argument --log: not allowed with argument --receipt" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "error"), [("missing", "No such file or directory"), (".", "Is a directory")]
)
def test_an_unreadable_bundle_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, error: str
) -> None:
    assert verify(tmp_path / name, key_of(tmp_path)) == 1
    assert said(capsys) == [f"aiaudit verify: bundle {tmp_path / name}: {error}"]


@pytest.mark.parametrize(
    ("name", "error"), [("missing", "No such file or directory"), (".", "Is a directory")]
)
def test_an_unreadable_receipt_is_one_line_as_a_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, error: str
) -> None:
    """``verify --receipt /missing`` printed ``receipt /missing: [Errno 2] No such file or
    directory: '/missing'`` on stdout, where ``--bundle`` says one line on stderr."""
    path = tmp_path / name
    argv = ["verify", "--receipt", str(path), "--verifier-key", key_of(tmp_path)]
    assert main(argv) == 1
    assert capsys.readouterr().out == ""
    assert main(argv) == 1
    assert said(capsys) == [f"aiaudit verify: receipt {path}: {error}"]


@pytest.mark.parametrize(
    ("argv", "where", "remedy"),
    [
        (["verify", "--bundle", "b.jsonl", "--data-dir", "data"], "data", "pass --verifier-key"),
        (["verify"], "data", "pass --verifier-key"),
        (
            ["integrity", "verifier-key", "--local", "--data-dir", "nowhere"],
            "nowhere",
            "name the notary's data dir with --data-dir",
        ),
    ],
)
def test_reading_commands_create_no_key(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    where: str,
    remedy: str,
) -> None:
    """A key made up by a reading command would be trusted by nobody: say it is missing,
    and what helps (``integrity verifier-key --local`` prints keys: it takes none)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "b.jsonl").write_text("")
    assert main(argv) == 2
    assert f"no key at {where}/notary-ed25519.pem; {remedy}" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.jsonl"]


@pytest.mark.parametrize("option", ["--verifier-key", "--origin-prefix"])
def test_verifier_key_takes_no_trusted_key_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    """It prints the keys to trust; until 2026-12-07 it took --verifier-key, printed the key
    given back with --local (and ignored it otherwise), and took an --origin-prefix it never
    used: options in its --help that no README line named."""
    note.file_signer("aiaudit.local/log", tmp_path / "notary-ed25519.pem")
    given = key_of(tmp_path / "other")
    argv = ["integrity", "verifier-key", "--local", "--data-dir", str(tmp_path), option, given]
    with pytest.raises(SystemExit) as usage:
        main(argv)
    assert usage.value.code == 2
    assert f"unrecognized arguments: {option}" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["verify", "export"])
def test_reading_commands_create_no_store(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    key = key_of(tmp_path / "k")
    monkeypatch.chdir(tmp_path)
    argv = {
        "verify": ["verify", "--verifier-key", key],
        "export": ["integrity", "export-bundle", "--log", TENANT, "--requested-by=me", "o.jsonl"],
    }[command]
    assert main(argv) == 2
    assert "no store at data/aiaudit.db" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k"]


def test_verifier_key_refuses_to_send_the_api_key_in_clear(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the commands that call no server may skip the client TLS check."""

    def connect(*args: object) -> None:
        raise AssertionError("connected to another host without TLS")

    monkeypatch.setattr(client, "for_command", connect)
    remote = ["integrity", "verifier-key", "--address", "192.0.2.1:50051", "--api-key", "k"]
    assert main(remote) == 2
    assert "--address 192.0.2.1:50051: another host; give --ca-file" in capsys.readouterr().err
    signer = note.file_signer("aiaudit.local/log", tmp_path / "notary-ed25519.pem")
    key = signer.verifier_key.encode()
    # --local calls no server: it refuses --address (tests/unit/test_client_options.py), and a
    # remote address configured, with no --ca-file, is not checked
    monkeypatch.setenv("AIAUDIT_ADDRESS", "192.0.2.1:50051")
    local = ["integrity", "verifier-key", "--local", "--data-dir", str(tmp_path)]
    assert main(local) == 0
    assert capsys.readouterr().out.split() == [key]


def test_verifier_key_with_the_server_down_is_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = closed_port()
    assert main(["integrity", "verifier-key", "--address", f"127.0.0.1:{port}"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"aiaudit integrity verifier-key: 127.0.0.1:{port}: UNAVAILABLE")


@pytest.mark.parametrize("command", ["integrity", "content-keys"])
def test_bootstrap_vault_unreachable_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """Alike for both keys: content-keys' said ``aiaudit: HTTPConnectionPool(...)`` without
    the command or ``Vault at ADDR`` until 2026-12-07."""
    monkeypatch.setenv("VAULT_TOKEN", "t")
    addr = f"http://127.0.0.1:{closed_port()}"
    assert main([command, "bootstrap-vault", "--vault-addr", addr]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"aiaudit {command} bootstrap-vault: Vault at {addr}: ")


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["verify", "--workers", "0"], "argument --workers: 0 is less than 1"),
        (["verify", "--workers", "-3"], "argument --workers: -3 is less than 1"),
        (["integrity", "export-bundle", "--log", TENANT, "--start", "-3", "x"], "--start: -3"),
        (["integrity", "export-bundle", "--log", TENANT, "--count", "-1", "x"], "--count: -1"),
    ],
)
def test_counts_below_their_minimum_are_refused(
    capsys: pytest.CaptureFixture[str], argv: list[str], error: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert error in capsys.readouterr().err


def checkpointed(store: SqlEventStore, notaries: Notaries, tenant: str, tmp_path: Path) -> FileKeys:
    """Three events of ``tenant``, covered by a checkpoint of a notary signing with a key file."""
    append(store, tenant, 3)
    keys = FileKeys(ORIGIN_PREFIX, tmp_path / "key.pem")
    notaries.start(keys)
    wait_until(lambda: covers(notaries.url, tenant, 3))
    return keys


def test_export_bundle_errors_are_one_line_and_write_nothing(
    store_url: str,
    store: SqlEventStore,
    notaries: Notaries,
    tenant: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    keys = checkpointed(store, notaries, tenant, tmp_path)
    export = ["integrity", "export-bundle", "--database-url", notaries.url, "--requested-by", "me"]
    export += ["--record-database-url", store_url]
    out = tmp_path / "out.jsonl"
    assert main([*export, "--log", "nolog", str(out)]) == 1
    assert said(capsys) == ["aiaudit integrity export-bundle: log 'nolog' has no checkpoint yet"]
    assert not out.exists()
    nowhere = Path("/nonexistent/dir/x.jsonl")
    assert main([*export, "--log", tenant, str(nowhere)]) == 1
    assert said(capsys) == [
        f"aiaudit integrity export-bundle: cannot write {nowhere}: No such file or directory"
    ]
    assert main([*export, "--log", tenant, str(out)]) == 0
    key = keys.verifier_keys()[0].encode()
    assert verify(out, key, "--origin-prefix", ORIGIN_PREFIX, "--log", tenant) == 0


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the one sealing by default
def test_a_bundle_without_content_opens_no_data_key(
    store_url: str,
    store: SqlEventStore,
    notaries: Notaries,
    tenant: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Proofs and canonical forms are not sealed: a bundle of them is read without
    unwrapping any data key, so a damaged one (or a KEK out of reach) does not stop it."""
    keys = checkpointed(store, notaries, tenant, tmp_path)
    engine = sa.create_engine(store_url)
    with engine.begin() as conn:  # alice's data key altered
        changed = conn.execute(
            sa.update(content_keys)
            .where(content_keys.c.log_id == tenant, content_keys.c.subject == "alice")
            .values(wrapped=sa.func.substr(content_keys.c.wrapped, 2))
        )
        assert changed.rowcount == 1, "the embedded store seals content"
    engine.dispose()
    export = ["integrity", "export-bundle", "--database-url", store_url, "--requested-by", "dpo"]
    export += ["--record-database-url", store_url, "--log", tenant]
    assert main([*export, str(tmp_path / "whole.jsonl")]) == 1
    assert "does not open" in said(capsys)[0]
    out = tmp_path / "proofs.jsonl"
    assert main([*export, "--no-content", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) >= 3 and not any("content" in line for line in lines)
    key = keys.verifier_keys()[0].encode()
    assert verify(out, key, "--origin-prefix", ORIGIN_PREFIX, "--log", tenant) == 0
    # Nor does it need the KEK: its access record has no content to seal either.
    (tmp_path / "content.kek").rename(tmp_path / "kept-elsewhere.kek")
    assert main([*export, str(tmp_path / "whole.jsonl")]) == 2
    assert "content.kek is missing: restore that file" in said(capsys)[-1]
    assert main([*export, "--no-content", str(out)]) == 0
    assert verify(out, key, "--origin-prefix", ORIGIN_PREFIX, "--log", tenant) == 0
    assert not (tmp_path / "content.kek").exists(), "no new key file was made"


@pytest.mark.parametrize("offline", ["--bundle", "--receipt"])
def test_offline_verify_needs_no_valid_server_settings(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    offline: str,
) -> None:
    """A bad server setting in the environment (AIAUDIT_MAX_BATCH_EVENTS=abc) stopped
    ``verify --bundle`` at exit 2: an auditor's machine must not need a valid server
    configuration to check a file. What it reads (the origin prefix) is still read."""
    monkeypatch.setenv("AIAUDIT_MAX_BATCH_EVENTS", "abc")
    monkeypatch.setenv("AIAUDIT_TLS_CERT_FILE", str(tmp_path / "nonexistent.pem"))
    monkeypatch.setenv("AIAUDIT_INTEGRITY_CHECKPOINT_INTERVAL", "-1")
    monkeypatch.setenv("AIAUDIT_INTEGRITY_ORIGIN_PREFIX", ORIGIN_PREFIX)
    path = write(tmp_path / "b.jsonl", make_bundle(tmp_path)) if offline == "--bundle" else None
    path = path or _receipt(tmp_path)
    assert main(["verify", offline, str(path), "--verifier-key", key_of(tmp_path)]) == 0
    monkeypatch.setenv("AIAUDIT_INTEGRITY_ORIGIN_PREFIX", "other.example/log")
    assert main(["verify", offline, str(path), "--verifier-key", key_of(tmp_path)]) == 1
    capsys.readouterr()
    assert main(["verify", "--data-dir", str(tmp_path)]) == 2  # the store's: every setting
    assert "'max_batch_events'" in capsys.readouterr().err
