"""A search export's seal: its closing record, proving which lines the export wrote.

A search export's lines are the events its filter matched, and no line proves which those
are: a line removed, or another event of the log added with its proof, verified alike, and
the summary ended "scope: not proven: ..." (review, 2026-12-06). The search service now
ends an export with a seal line, ``{"seal": {...}}``: its closing record in the log (an
access record naming the export's own, the number of event lines and the SHA-256 of their
sequences and leaf hashes, in order) with its tlog-proof against a later checkpoint and
the consistency proof from the lines' checkpoint to that one. Both verifiers, aiaudit's
and ``interop/go-verifier``, check it and agree line for line. Since the review of
2026-12-06 the record also commits to the scope line (``access.scope_sha256``, salted with
the seal's ``scope_salt``): a sealed export's scope is proven, an edited one a problem, and
a seal written before says that its scope is the exporter's claim. The bundles are built in
memory, as ``test_bundle_scope`` builds them; ``tests/search/test_proofs.py`` exports one
from the running services.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aiaudit.common import access, canonical
from aiaudit.common.auth import Caller
from aiaudit.common.store.prepare import prepare
from aiaudit.integrity import bundle, merkle, note
from aiaudit.search import bundle as writer
from tests.helpers import interaction
from tests.integrity.conftest import ORIGIN_PREFIX
from tests.integrity.test_bundle_scope import WHEN, range_scope, search_scope, summary, unproven
from tests.integrity.test_cli import TENANT, Line, checkpoint_of, key_name, key_of, write
from tests.integrity.test_go_verifier import both

OFFICER = Caller("officer", frozenset({TENANT}), frozenset({"compliance_officer"}), "k-1")
EXPORT_RECORD = "access-2"
CLOSING_RECORD = "access-3"
SCOPE_SALT = bytes(range(32))
NARROW = 'actor.user_id = "alice" AND model.name = "m-1"'
"""The filter of the sealed export the scope-edit cases start from (``sealed_export``'s)."""


def sealed_export(
    tmp_path: Path,
    exported: tuple[int, ...] = (0, 1, 2),
    key: str = "key.pem",
    added: tuple[int, ...] = (),
    scope_sealed: bool = True,
    doctor: Callable[[bytes], bytes] | None = None,
    **closing: Any,
) -> list[Line]:
    """A search export of TENANT's events ``exported`` (of e-0..e-2, proven against the
    checkpoint of size 3): its scope, its lines, and its seal: the closing record at
    sequence 4 (after the export's access record at 3), proven against the checkpoint of
    size 5 signed by ``tmp_path/key`` and consistent with the first. ``added``: events of the
    log with a line too, which the export did not write; ``scope_sealed``: the record commits
    to the scope line (``access.scope_sha256``, with the seal's ``scope_salt``), False for a
    seal written before it did; ``doctor``: the record's canonical bytes as the log holds
    them, rewritten (a log holding bytes no canonicaliser wrote); ``closing``: what the
    record says otherwise."""
    now = dt.datetime.now(dt.UTC)
    scope = search_scope(access_record=EXPORT_RECORD, filter=NARROW)
    events = [interaction(TENANT, f"e-{i}", text=f"secret {i}") for i in range(3)]
    prepared = [prepare(e, now) for e in events]
    record = access.access_event(
        OFFICER, TENANT, "search.export", {"filter": "x"}, now, event_id=EXPORT_RECORD
    )
    prepared.append(prepare(record, now))
    digest = hashlib.sha256()
    for i in exported:
        digest.update(writer.sealed_item(i, prepared[i].committed.leaf_hash))
    said: dict[str, str | int | bool] = {
        "export_record": EXPORT_RECORD,
        "count": len(exported),
        "lines_sha256": digest.hexdigest(),
        "up_to_sequence": 3,
        "tree_size": 3,
    }
    if scope_sealed:  # the scope line as `write` writes it
        said["scope_sha256"] = writer.scope_digest(SCOPE_SALT, json.dumps(scope))
    seal = access.access_event(
        OFFICER, TENANT, writer.SEAL_ACTION, {**said, **closing}, now, (), CLOSING_RECORD
    )
    prepared.append(prepare(seal, now))
    canonicals = [p.committed.canonical for p in prepared]
    if doctor is not None:
        canonicals[4] = doctor(canonicals[4])
    leaves = [canonical.leaf_hash(c) for c in canonicals]

    signer = note.file_signer(ORIGIN_PREFIX, tmp_path / key)
    signing = note.file_signer(ORIGIN_PREFIX, tmp_path / "key.pem")  # the lines' key
    tree, edge = merkle.MemoryNodeStore(), merkle.CompactRange()
    tree.write_nodes(edge.extend(leaves[:3]))
    origin = f"{ORIGIN_PREFIX}/{TENANT}"
    first = note.sign_checkpoint(note.Checkpoint(origin, 3, edge.root()), [signing])
    tree.write_nodes(edge.extend(leaves[3:]))
    later = note.sign_checkpoint(note.Checkpoint(origin, 5, edge.root()), [signer])
    lines = [
        json.loads(
            bundle.event_line(
                TENANT,
                i,
                prepared[i].event.event_id,
                prepared[i].committed.canonical,
                bundle.format_tlog_proof(i, merkle.inclusion_proof(i, 3, tree), first),
                prepared[i].salt,
                prepared[i].committed.content,
            )
        )
        for i in sorted({*exported, *added})
    ]
    closing_line = writer.seal(
        TENANT,
        4,
        CLOSING_RECORD,
        canonicals[4],
        writer.tlog_proof(4, merkle.inclusion_proof(4, 5, tree), later),
        merkle.consistency_proof(3, 5, tree),
        SCOPE_SALT if scope_sealed else None,
    )
    return [scope, *lines, json.loads(closing_line)]


def complete(count: int) -> str:
    """The scope's last line once the seal verified."""
    return (
        "scope: complete: the lines are every event the export wrote, in its order "
        f"({count} event(s), sealed by its closing record {CLOSING_RECORD!r} at sequence 4, "
        "proven under checkpoint size 5)"
    )


SCOPE_PROVEN = (
    "scope (line 1): the export's, as its seal's closing record commits to it "
    "(access.scope_sha256); checked against the proven lines: its log, checkpoint size and "
    "sequences"
)
SCOPE_CLAIMED = (
    "scope (line 1): the exporter's claim, which no signature covers; checked against the "
    "proven lines: its log, checkpoint size and sequences"
)


def test_a_sealed_search_export_verifies_as_complete_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """The old verifiers called the seal line malformed (`unknown field 'seal'`) and said
    the selection was not proven; a seal that holds now says it is the export's whole, and
    that its scope is the export's (its closing record commits to the scope line)."""
    for exported in ((0, 1, 2), (0, 2)):
        lines = sealed_export(tmp_path, exported)
        shown = summary(tmp_path, capsys, lines)
        assert shown[-4] == SCOPE_PROVEN, shown
        assert shown[-2].startswith(f"scope: filter {NARROW!r}; "), shown
        assert shown[-1] == complete(len(exported)), shown
        assert both(go_verifier, capsys, tmp_path / "b.jsonl") == (0, [])
    # Without its seal the same export is said to be unproven, as before.
    shown = summary(tmp_path, capsys, lines[:-1])
    assert shown[-1] == unproven(3)
    assert both(go_verifier, capsys, tmp_path / "b.jsonl") == (0, [])


def _seal(lines: list[Line], edit: Callable[[dict[str, Any]], None]) -> list[Line]:
    """The bundle with its seal's fields edited."""
    sealed = json.loads(json.dumps(lines[-1]))
    edit(sealed["seal"])
    return [*lines[:-1], sealed]


def _recount(seal: dict[str, Any]) -> None:
    """A forger's seal: the record's count rewritten in its canonical bytes."""
    committed = base64.b64decode(seal["canonical"])
    forged = committed.replace(
        b'"access.count":{"intValue":"3"}', b'"access.count":{"intValue":"2"}'
    )
    assert forged != committed
    seal["canonical"] = base64.b64encode(forged).decode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


SCOPE_EDITED = (
    "line 5 seal: the scope line (line 1) is not the one the closing record commits to "
    "(access.scope_sha256): the scope was edited"
)


def _other_proof(seal: dict[str, Any]) -> None:
    hashes = seal["consistency_proof"]
    hashes[0] = base64.b64encode(bytes(32)).decode()


MUTATED: dict[str, tuple[Callable[[Path], list[Line]], list[str]]] = {
    "a line removed": (
        lambda p: (lambda s: [s[0], s[1], s[3], s[4]])(sealed_export(p)),
        ["line 4 seal: the closing record counts 3 event line(s) and the bundle holds 2: 1 "
         "missing (a line removed)"],
    ),
    "another event of the log added": (
        lambda p: sealed_export(p, (0, 2), added=(1,)),
        ["line 5 seal: the closing record counts 2 event line(s) and the bundle holds 3: 1 not "
         "written by the export (a line added)"],
    ),
    "lines reordered": (
        lambda p: (lambda s: [s[0], s[2], s[1], s[3], s[4]])(sealed_export(p)),
        ["line 5 seal: the event lines are not those the closing record's digest commits to: a "
         "line replaced, or the lines reordered"],
    ),
    "a seal of another export": (
        lambda p: sealed_export(p, export_record="access-9"),
        ["line 5 seal: the seal closes the export of access record 'access-9', not the scope's "
         f"{EXPORT_RECORD!r} (line 1): a seal of another export"],
    ),
    "a forged seal": (
        lambda p: _seal(sealed_export(p), _recount),
        ["line 5 seal: inclusion proof: the record is not in the log under the seal's "
         "checkpoint"],
    ),
    "a seal whose checkpoint does not extend the lines'": (
        lambda p: _seal(sealed_export(p), _other_proof),
        ["line 5 seal: consistency proof: the seal's checkpoint (size 5) does not extend the "
         "lines' (size 3)"],
    ),
    "a closing record of another snapshot": (
        lambda p: sealed_export(p, up_to_sequence=2),
        ["line 5 seal: the closing record's up_to_sequence 2 is not the scope's 3 (line 1)"],
    ),
    "a seal not last": (
        lambda p: (lambda s: [s[0], s[1], s[2], s[4], s[3]])(sealed_export(p)),
        ["line 4 seal: a seal must be the bundle's last line (the export writes it after its "
         "last event)"],
    ),
    "two seals": (
        lambda p: (lambda s: [*s, s[4]])(sealed_export(p)),
        ["line 6 seal: a second seal line (line 5 holds the first): an export writes one, so "
         "bundles were joined"],
    ),
    "a seal under a range export's scope": (
        lambda p: [range_scope(access_record=EXPORT_RECORD), *sealed_export(p)[1:]],
        ["line 5 seal: a seal closes a search export, and the scope is of "
         "integrity.export_bundle"],
    ),
    "a seal without a scope": (
        lambda p: sealed_export(p)[1:],
        ["line 4 seal: a seal closes the export its scope line names, and the bundle has none"],
    ),
    "a field the format has not": (
        lambda p: _seal(sealed_export(p), lambda s: s.update(count=3)),
        ["line 5 seal: malformed seal: unknown field 'count': a seal holds canonical, "
         "consistency_proof, event_id, log_id, scope_salt, sequence, tlog_proof"],
    ),
    "a seal whose scope_salt was removed": (
        lambda p: _seal(sealed_export(p), lambda s: s.pop("scope_salt")),
        ["line 5 seal: the closing record commits to the scope line (access.scope_sha256) and "
         "the seal holds no scope_salt to check it with"],
    ),
    "another scope_salt": (
        lambda p: _seal(sealed_export(p), lambda s: s.update(scope_salt=_b64(bytes(32)))),
        [SCOPE_EDITED],
    ),
    "a scope_salt of another length": (
        lambda p: _seal(sealed_export(p), lambda s: s.update(scope_salt=_b64(bytes(16)))),
        ["line 5 seal: malformed seal: field 'scope_salt' must be 32 bytes"],
    ),
    "a scope_salt added to a seal whose record commits to no scope": (
        lambda p: _seal(
            sealed_export(p, scope_sealed=False), lambda s: s.update(scope_salt=_b64(SCOPE_SALT))
        ),
        ["line 5 seal: the seal holds a scope_salt and its closing record commits to no scope "
         "line (no access.scope_sha256)"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(MUTATED))
def test_a_seal_that_does_not_match_its_lines_is_a_problem_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path, case: str
) -> None:
    """Each verified as the export did (a seal line was malformed to the old verifiers, so
    none of these bundles was told apart from an untouched sealed one); now each names what
    differs, in both verifiers alike."""
    build, problems = MUTATED[case]
    path = write(tmp_path / "b.jsonl", build(tmp_path))
    assert both(go_verifier, capsys, path) == (1, problems)


def test_a_seal_signed_by_an_unknown_key_is_a_problem_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """A seal whose checkpoint no trusted key signed proves nothing."""
    path = write(tmp_path / "b.jsonl", sealed_export(tmp_path, key="forger.pem"))
    assert both(go_verifier, capsys, path) == (
        1,
        ["line 5 seal: checkpoint: the seal's checkpoint does not verify with the trusted keys"],
    )


def _scope(lines: list[Line], **edit: Any) -> list[Line]:
    """The bundle with its scope's fields edited."""
    return [{"scope": {**lines[0]["scope"], **edit}}, *lines[1:]]


WIDER = 'actor.user_id = "alice"'
SCOPE_EDITS: dict[str, Callable[[list[Line]], list[Line]]] = {
    "its filter widened": lambda s: _scope(s, filter=WIDER),
    "its query": lambda s: _scope(s, query="salary"),
    "its requester": lambda s: _scope(s, requested_by="dpo@example.test"),
    "its time": lambda s: _scope(s, exported_at="2026-01-01T00:00:00.000000Z"),
}


@pytest.mark.parametrize("case", list(SCOPE_EDITS))
def test_a_sealed_exports_scope_edited_is_a_problem_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path, case: str
) -> None:
    """Nothing signed the scope line, and the seal did not commit to it: an export of a
    narrow filter, sealed and complete, its scope edited to claim a wider filter (or
    another query, requester, time), verified exit 0 in both verifiers, saying "complete"
    under the edited filter (review, 2026-12-06). The closing record now holds the salted
    SHA-256 of the scope line (``access.scope_sha256``), and an edit is a problem."""
    lines = SCOPE_EDITS[case](sealed_export(tmp_path))
    path = write(tmp_path / "b.jsonl", lines)
    assert both(go_verifier, capsys, path) == (1, [SCOPE_EDITED])


def test_a_sealed_scope_is_its_bytes_as_written_and_survives_crlf_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """The digest is of the scope line's exact bytes, without its line ending: the same
    fields spelt otherwise are another line; a file whose lines end in CRLF is the same."""
    lines = sealed_export(tmp_path)
    path = tmp_path / "b.jsonl"
    texts = [json.dumps(line) for line in lines]
    path.write_text("".join(f"{t}\r\n" for t in texts))
    assert both(go_verifier, capsys, path) == (0, [])
    respelt = json.dumps(lines[0], separators=(",", ":"))
    path.write_text("".join(f"{t}\n" for t in [respelt, *texts[1:]]))
    assert both(go_verifier, capsys, path) == (1, [SCOPE_EDITED])


def test_a_seal_written_before_it_committed_to_the_scope_says_the_scope_is_a_claim(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """A closing record without ``access.scope_sha256`` (sealed before the fix) still proves
    the lines complete, in both verifiers; its scope is printed as the exporter's claim, as
    edited, and the summary says that the seal does not cover it."""
    lines = sealed_export(tmp_path, scope_sealed=False)
    for bundle_lines in (lines, _scope(lines, filter=WIDER)):
        shown = summary(tmp_path, capsys, bundle_lines)
        assert shown[-4] == SCOPE_CLAIMED, shown
        assert shown[-1] == complete(3) + bundle.UNSEALED_SCOPE, shown
        assert both(go_verifier, capsys, tmp_path / "b.jsonl") == (0, [])
    assert shown[-2].startswith(f"scope: filter {WIDER!r}; "), shown


def _twice(committed: bytes) -> bytes:
    """The record's count given twice: 2, then its own 3 (encoding/json keeps the last)."""
    count = b'"access.count":{"intValue":"3"}'
    assert count in committed
    return committed.replace(count, b'"access.count":{"intValue":"2"},' + count)


NOT_READ = ["line 5 seal: the record's canonical bytes are not a JSON object"]
DOCTORED: dict[str, tuple[Callable[[bytes], bytes], list[str]]] = {
    "a name twice": (_twice, NOT_READ),
    "data after the object": (lambda c: c + b" {}", NOT_READ),
    "NaN": (lambda c: c.replace(b'"eventType"', b'"x":NaN,"eventType"', 1), NOT_READ),
    "spacing (read alike)": (lambda c: c.replace(b'"eventType"', b'"eventType" ', 1), []),
}


@pytest.mark.parametrize("case", list(DOCTORED))
def test_a_closing_record_is_read_alike_by_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path, case: str
) -> None:
    """The Go verifier read the record's canonical bytes with encoding/json alone: a name
    given twice read as its last value, and data after the object was ignored, where aiaudit
    refuses both; aiaudit read NaN, which Go refuses. A log holding such bytes (no
    canonicaliser writes them) had a seal that verified "complete" in one verifier and was
    malformed to the other. Both now read it alike, as strictly as a line."""
    doctor, problems = DOCTORED[case]
    path = write(tmp_path / "b.jsonl", sealed_export(tmp_path, doctor=doctor))
    assert both(go_verifier, capsys, path) == (1 if problems else 0, problems)


NOTHING = "the bundle holds no events: nothing verified"
EMPTY = (
    "scope: complete: the export matched no event before sequence 3 (sealed by its closing "
    f"record {CLOSING_RECORD!r} at sequence 4, proven under checkpoint size 5)"
)


def _empty_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path, *options: str
) -> tuple[list[Line], list[str]]:
    """A sealed export that matched no event (its scope and its seal, the closing record
    counting 0) verifies in both verifiers, with ``options``: its lines, aiaudit's summary."""
    lines = sealed_export(tmp_path, ())
    assert [list(line) for line in lines] == [["scope"], ["seal"]]
    path = write(tmp_path / "b.jsonl", lines)
    assert both(go_verifier, capsys, path, *options) == (0, [])
    return lines, summary(tmp_path, capsys, lines)


def test_a_sealed_export_that_matched_nothing_verifies_as_complete_and_empty_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """An export that matched no event is its scope line and its seal, whose proven closing
    record counts 0 event lines and commits to the scope: "alice had no interaction with
    the model before sequence U" is evidence too. It failed in both verifiers as "the
    bundle holds no events" (exit 1). It now verifies, and the summary names the seal's
    checkpoint in place of the lines' (there are none) and says that the seal's consistency
    proof from the scope's checkpoint is not checked: that checkpoint is in no line."""
    lines, shown = _empty_verifies(tmp_path, capsys, go_verifier)
    origin, size, root = checkpoint_of(lines[-1]["seal"])
    assert (origin, size) == (f"{ORIGIN_PREFIX}/{TENANT}", "5")
    assert shown == [
        f"log {TENANT}: checkpoint {origin} size 5 root {root} signed by "
        f"{key_name(key_of(tmp_path))} (the seal's: the bundle holds no event line)",
        f"log {TENANT}: 0 event(s); the seal's consistency proof from the scope's checkpoint "
        "size 3 is not checked (no line of the bundle holds that checkpoint, and no line "
        "needs it)",
        SCOPE_PROVEN,
        f"scope: search.export of log {TENANT!r} requested by 'officer' at '{WHEN}'; access "
        f"record {EXPORT_RECORD!r} (an event of the log written after this checkpoint: match "
        "it there)",
        f"scope: filter {NARROW!r}; query ''; order_by 'sequence asc'; events before sequence "
        "3; checkpoint size 3; content included",
        EMPTY,
    ]
    # --log: the seal's log verifies; another is named, as a line of another log is.
    _empty_verifies(tmp_path, capsys, go_verifier, "--log", TENANT)
    path = tmp_path / "b.jsonl"
    assert both(go_verifier, capsys, path, "--log", "t-other") == (
        1,
        [f"line 2 seal: log {TENANT!r} is not one of the logs to verify (t-other)", NOTHING],
    )


EMPTY_FAILING: dict[str, tuple[Callable[[Path], list[Line]], list[str]]] = {
    "a non-empty export with its lines all removed": (
        lambda p: (lambda s: [s[0], s[4]])(sealed_export(p)),
        ["line 2 seal: the closing record counts 3 event line(s) and the bundle holds 0: 3 "
         "missing (a line removed)", NOTHING],
    ),
    "no seal (unsealed)": (lambda p: sealed_export(p, ())[:1], [NOTHING]),
    "a seal whose record commits to no scope line": (
        lambda p: sealed_export(p, (), scope_sealed=False), [NOTHING],
    ),
    "its scope_salt removed": (
        lambda p: _seal(sealed_export(p, ()), lambda s: s.pop("scope_salt")),
        ["line 2 seal: the closing record commits to the scope line (access.scope_sha256) and "
         "the seal holds no scope_salt to check it with", NOTHING],
    ),
    "its scope edited": (
        lambda p: _scope(sealed_export(p, ()), filter=WIDER),
        ["line 2 seal: the scope line (line 1) is not the one the closing record commits to "
         "(access.scope_sha256): the scope was edited", NOTHING],
    ),
    "a scope of another log": (
        lambda p: _scope(sealed_export(p, ()), log_id="t-other"),
        [f"line 2 seal: the seal's log {TENANT!r} is not the scope's log 't-other' (line 1)",
         NOTHING],
    ),
    "a seal without a scope": (
        lambda p: sealed_export(p, ())[1:],
        ["line 1 seal: a seal closes the export its scope line names, and the bundle has none",
         NOTHING],
    ),
    "a seal of another export": (
        lambda p: sealed_export(p, (), export_record="access-9"),
        ["line 2 seal: the seal closes the export of access record 'access-9', not the scope's "
         f"{EXPORT_RECORD!r} (line 1): a seal of another export", NOTHING],
    ),
    "a closing record of another snapshot": (
        lambda p: sealed_export(p, (), up_to_sequence=2),
        ["line 2 seal: the closing record's up_to_sequence 2 is not the scope's 3 (line 1)",
         NOTHING],
    ),
    "a seal signed by an unknown key": (
        lambda p: sealed_export(p, (), key="forger.pem"),
        ["line 2 seal: checkpoint: the seal's checkpoint does not verify with the trusted keys",
         NOTHING],
    ),
    "a forged count of 0": (
        lambda p: _seal(
            sealed_export(p, (0,)),
            lambda s: s.update(
                canonical=_b64(
                    base64.b64decode(s["canonical"]).replace(
                        b'"access.count":{"intValue":"1"}', b'"access.count":{"intValue":"0"}'
                    )
                )
            ),
        ),
        ["line 3 seal: inclusion proof: the record is not in the log under the seal's "
         "checkpoint"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(EMPTY_FAILING))
def test_a_bundle_without_events_that_its_seal_does_not_prove_empty_still_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path, case: str
) -> None:
    """Only a seal that verifies, whose closing record counts 0 and commits to the scope
    line, makes a bundle without events verify (the untouched one, first, which failed on
    the old code): an export whose lines were all removed (its record counts them), no
    seal, a seal of before closing records held the scope's digest (its scope is a claim),
    or a scope or seal edited fail as before, in both verifiers alike."""
    _empty_verifies(tmp_path, capsys, go_verifier)
    build, problems = EMPTY_FAILING[case]
    path = write(tmp_path / "b.jsonl", build(tmp_path))
    assert both(go_verifier, capsys, path) == (1, problems)
