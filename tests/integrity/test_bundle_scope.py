"""A bundle's scope line: what an export was made for, as its exporter says it.

A bundle recorded nothing of what it was made for (tenant, filter, range,
checkpoint, time, exporter, the export's access record): an auditor handed
one could not tell what it claims to be (review). Its first line now says so,
``{"scope": {...}}``. Nothing signs it, so ``verify --bundle`` prints it as
the exporter's claim and checks what the proven lines can refute (their log,
checkpoint size, sequences, a range's every sequence); a scope edited past
that is printed as edited, under "the exporter's claim". The bundles are
built in memory (as ``test_cli`` builds them) and checked by both verifiers,
aiaudit's and ``interop/go-verifier``, which must agree line for line.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from aiaudit.common import erasure
from aiaudit.integrity.bundle import NO_SCOPE
from tests import go_verifier as go
from tests.helpers import interaction
from tests.integrity.conftest import ORIGIN_PREFIX
from tests.integrity.test_cli import (
    TENANT,
    Line,
    key_of,
    make_bundle,
    proved_lines,
    said,
    verify,
    write,
)
from tests.integrity.test_go_verifier import both, withheld

WHEN = "2026-12-07T10:00:00.000000Z"


def range_scope(**changes: Any) -> Line:
    """The scope line of ``aiaudit integrity export-bundle`` of TENANT's 3 events."""
    fields = {
        "action": "integrity.export_bundle",
        "log_id": TENANT,
        "tree_size": 3,
        "exported_at": WHEN,
        "requested_by": "dpo@example.test",
        "access_record": "access-1",
        "content": "included",
        "start": 0,
        "end": 3,
    }
    return {"scope": {**fields, **changes}}


def search_scope(**changes: Any) -> Line:
    """The scope line of a search export with proofs of TENANT (checkpoint size 3)."""
    fields = {
        "action": "search.export",
        "log_id": TENANT,
        "tree_size": 3,
        "exported_at": WHEN,
        "requested_by": "officer",
        "access_record": "access-2",
        "content": "included",
        "filter": 'actor.user_id = "alice"',
        "query": "",
        "order_by": "sequence asc",
        "up_to_sequence": 3,
    }
    return {"scope": {**fields, **changes}}


def unproven(up_to_sequence: int) -> str:
    """The line a search export's summary ends with: its selection is not proven."""
    return (
        "scope: not proven: that the lines are every event the filter and query matched before "
        f"sequence {up_to_sequence}, and only those (a line removed, or another event of the log "
        "added with its proof against this checkpoint, verifies alike); where the log can be "
        f"read, search it with 'sequence < {up_to_sequence}' added to the filter and compare"
    )


def summary(tmp_path: Path, capsys: pytest.CaptureFixture[str], lines: list[Line]) -> list[str]:
    """aiaudit's summary of a bundle that verifies (stderr, before the keys and the count)."""
    path = write(tmp_path / "b.jsonl", lines)
    assert verify(path, key_of(tmp_path), "--origin-prefix", ORIGIN_PREFIX) == 0
    told = said(capsys)
    return [line for line in told if line.startswith(("log ", "scope"))]


def test_a_scope_is_printed_as_the_exporters_claim_and_old_bundles_still_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """The old format refused the scope line (`unknown field 'scope'`); a bundle without
    one verifies as before and is said to say nothing of its scope."""
    lines = make_bundle(tmp_path, 3)
    shown = summary(tmp_path, capsys, [range_scope(), *lines])
    assert shown[3:] == [
        "scope (line 1): the exporter's claim, which no signature covers; checked against the "
        "proven lines: its log, checkpoint size and sequences",
        f"scope: integrity.export_bundle of log {TENANT!r} requested by 'dpo@example.test' at "
        f"'{WHEN}'; access record 'access-1' (an event of the log written after this "
        "checkpoint: match it there)",
        "scope: sequences 0..2; checkpoint size 3; content included",
    ]
    assert both(go_verifier, capsys, tmp_path / "b.jsonl", "--log", TENANT) == (0, [])

    searched = search_scope(content="withheld: no content.read")
    shown = summary(tmp_path, capsys, [searched, *map(withheld, lines)])
    assert shown[2:] == [
        f"log {TENANT}: content verified for 0 event(s); 3 without content (withheld: no "
        "content.read, the scope says): their content is not proven",
        "scope (line 1): the exporter's claim, which no signature covers; checked against the "
        "proven lines: its log, checkpoint size and sequences",
        f"scope: search.export of log {TENANT!r} requested by 'officer' at '{WHEN}'; access "
        "record 'access-2' (an event of the log written after this checkpoint: match it there)",
        "scope: filter 'actor.user_id = \"alice\"'; query ''; order_by 'sequence asc'; events "
        "before sequence 3; checkpoint size 3; content withheld (the exporter has no "
        "content.read)",
        unproven(3),
    ]
    assert both(go_verifier, capsys, tmp_path / "b.jsonl") == (0, [])

    # The old format, as before: no scope, said so.
    assert summary(tmp_path, capsys, lines)[3:] == [NO_SCOPE]
    assert both(go_verifier, capsys, tmp_path / "b.jsonl") == (0, [])


def test_a_scope_edited_where_no_line_refutes_it_is_printed_as_the_exporters_word(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """No signature covers the scope: a filter, time or exporter edited verifies, and the
    output says the scope is the exporter's claim (unproven), showing what it now says."""
    lines = make_bundle(tmp_path, 3)
    edited = search_scope(filter="true", requested_by="someone else", access_record="forged")
    shown = summary(tmp_path, capsys, [edited, *lines])
    assert shown[3] == (
        "scope (line 1): the exporter's claim, which no signature covers; checked against the "
        "proven lines: its log, checkpoint size and sequences"
    )
    assert "requested by 'someone else'" in shown[4] and "access record 'forged'" in shown[4]
    assert shown[5].startswith("scope: filter 'true'; ")
    assert both(go_verifier, capsys, tmp_path / "b.jsonl") == (0, [])


def test_a_search_export_says_that_its_selection_is_not_proven_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """A search export's lines are the events its filter matched, and no line proves which
    those are: with a line removed, or another event of the log added with its proof against
    the same checkpoint (say from another export), it verified as the export did, and the
    output said its lines were checked against the scope's "sequences", while a range export
    is checked whole (review, 2026-12-06). Both verifiers now say what is not proven."""
    lines = make_bundle(tmp_path, 3)
    for kept in ([lines[0], lines[2]], lines):  # alice's two events; bob's e-1 spliced in
        shown = summary(tmp_path, capsys, [search_scope(), *kept])
        assert shown[-2].startswith("scope: filter 'actor.user_id = \"alice\"'; ")
        assert shown[-1] == unproven(3)
        assert both(go_verifier, capsys, tmp_path / "b.jsonl") == (0, [])
    shown = summary(tmp_path, capsys, [search_scope(up_to_sequence=2), lines[0], lines[1]])
    assert shown[-1] == unproven(2)
    # A range is checked whole (a line removed is a problem): nothing is left unproven.
    shown = summary(tmp_path, capsys, [range_scope(), *lines])
    assert shown[-1] == "scope: sequences 0..2; checkpoint size 3; content included"
    assert both(go_verifier, capsys, tmp_path / "b.jsonl") == (0, [])


REFUTED = {
    "another log": (
        lambda lines: [range_scope(log_id="t9"), *lines],
        [
            f"line {i + 2} event e-{i}: log {TENANT!r} is not the scope's log 't9' (line 1)"
            for i in range(3)
        ]
        + ["line 1 scope: the scope's sequences 0..2 are 3 event(s) of log 't9', and the bundle "
           "holds 0 of them: 3 missing"],
    ),
    "another checkpoint size": (
        lambda lines: [range_scope(tree_size=4), *lines],
        ["line 2 event e-0: checkpoint size 3 is not the scope's tree_size 4 (line 1)"],
    ),
    "a line removed from a range": (
        lambda lines: [range_scope(), lines[0], lines[2]],
        [f"line 1 scope: the scope's sequences 0..2 are 3 event(s) of log {TENANT!r}, and the "
         "bundle holds 2 of them: 1 missing"],
    ),
    "a line past the range": (
        lambda lines: [range_scope(end=2), *lines],
        ["line 4 event e-2: sequence 2 is not within the scope's sequences 0..1 (line 1)"],
    ),
    "a line past the search's snapshot": (
        lambda lines: [search_scope(up_to_sequence=2), *lines],
        ["line 4 event e-2: sequence 2 is not below the scope's up_to_sequence 2 (line 1)"],
    ),
    "a scope after an event": (
        lambda lines: [lines[0], range_scope(), *lines[1:]],
        ["line 2 scope: a scope line must be the bundle's first line (an export writes it "
         "first)"],
    ),
    "a second scope (bundles joined)": (
        lambda lines: [range_scope(), *lines, search_scope()],
        ["line 5 scope: a second scope line (line 1 holds the first): an export writes one, so "
         "bundles were joined"],
    ),
    "an unknown field": (
        lambda lines: [range_scope(filter="x"), *lines],
        ["line 1 scope: malformed scope: unknown field 'filter': a integrity.export_bundle "
         "scope holds access_record, action, content, end, exported_at, log_id, requested_by, "
         "start, tree_size"],
    ),
    "a field beside the scope": (
        lambda lines: [{**range_scope(), "log_id": TENANT}, *lines],
        ["line 1 scope: malformed scope: unknown field 'log_id': a scope line holds only "
         "'scope'"],
    ),
    "a number as text": (
        lambda lines: [range_scope(tree_size="3"), *lines],
        ["line 1 scope: malformed scope: field 'tree_size' must be an integer, not a string"],
    ),
    "a negative number": (
        lambda lines: [range_scope(start=-1), *lines],
        ["line 1 scope: malformed scope: field 'start' must be from 0 to 9223372036854775807, "
         "not -1"],
    ),
    "a field missing": (
        lambda lines: [{"scope": {k: v for k, v in range_scope()["scope"].items() if k != "end"}},
                       *lines],
        ["line 1 scope: malformed scope: field 'end' is missing"],
    ),
    "content not a claim the format has": (
        lambda lines: [range_scope(content="all of it"), *lines],
        ["line 1 scope: malformed scope: content 'all of it' is not one of 'included', "
         "'left out: --no-content', 'withheld: no content.read'"],
    ),
    "an unknown action": (
        lambda lines: [range_scope(action="copy"), *lines],
        ["line 1 scope: malformed scope: action 'copy' is not one of integrity.export_bundle, "
         "search.export"],
    ),
    "a range past its checkpoint": (
        lambda lines: [range_scope(end=4), *lines],
        ["line 1 scope: malformed scope: start 0 and end 4 are no range within tree_size 3"],
    ),
    "a snapshot past its checkpoint": (
        lambda lines: [search_scope(up_to_sequence=4), *lines],
        ["line 1 scope: malformed scope: up_to_sequence 4 is past tree_size 3"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(REFUTED))
def test_what_the_lines_refute_of_a_scope_is_a_problem_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path, case: str
) -> None:
    """The old format called every scope line malformed; a scope that its proven lines
    contradict (another log, checkpoint size, a sequence outside it, a range not whole), one
    not first or twice (bundles joined), or one not in the format is a problem, named alike
    by both verifiers."""
    edit, problems = REFUTED[case]
    path = write(tmp_path / "b.jsonl", edit(make_bundle(tmp_path, 3)))
    assert both(go_verifier, capsys, path) == (1, problems)


def test_a_line_without_content_says_why_when_the_bundle_can(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """A genuine line stripped of its salt and content read as "without content (erased or
    withheld)", like an erased one. An erasure record in the bundle (proven, like any line)
    that names the event now says it was erased; under a scope saying content was included,
    a line that no record explains is said to be without content though included."""
    events = [interaction(TENANT, f"e-{i}", text=f"secret {i}") for i in range(3)]
    now = dt.datetime.now(dt.UTC)
    record = erasure.erasure_event(TENANT, ["e-1"], "art. 17", "dpo", "alice", now)
    lines = proved_lines(tmp_path, [*events, record])
    erased, stripped = withheld(lines[1]), withheld(lines[2])
    bundle = [lines[0], erased, stripped, lines[3]]
    has_content = "content" in lines[3]
    verified = 1 + has_content
    no_fields = "" if has_content else "; 1 with no content fields"

    shown = summary(tmp_path, capsys, [range_scope(tree_size=4, end=4), *bundle])
    assert shown[2] == (
        f"log {TENANT}: content verified for {verified} event(s); 1 erased (named by an erasure "
        "or retention record in the bundle); 1 without content though the scope says it was "
        "included, and no erasure record in the bundle names them (erased by a record not in "
        "the bundle, or their content removed from the line): their content is not proven"
        f"{no_fields}"
    )
    assert both(go_verifier, capsys, tmp_path / "b.jsonl") == (0, [])

    # Without a scope the erased one is still proven erased; the other may be either.
    shown = summary(tmp_path, capsys, bundle)
    assert shown[2] == (
        f"log {TENANT}: content verified for {verified} event(s); 1 erased (named by an erasure "
        "or retention record in the bundle); 1 without content (erased or withheld): their "
        f"content is not proven{no_fields}"
    )
    assert both(go_verifier, capsys, tmp_path / "b.jsonl") == (0, [])

    # A record of another event, or one that does not verify, explains nothing.
    other = erasure.erasure_event(TENANT, ["e-9"], "art. 17", "dpo", "alice", now)
    unrelated = proved_lines(tmp_path, [*events, other])
    shown = summary(tmp_path, capsys, [unrelated[0], withheld(unrelated[1]), unrelated[3]])
    assert "erased (named by" not in shown[2]
    forged = json.loads(json.dumps(lines[3]))
    forged["event_id"] = "r-0"
    path = write(tmp_path / "forged.jsonl", [lines[0], erased, forged])
    assert verify(path, key_of(tmp_path), "--origin-prefix", ORIGIN_PREFIX) == 1


@pytest.mark.parametrize(
    "scope",
    [
        search_scope(content="withheld: no content.read"),
        range_scope(content="left out: --no-content"),
    ],
    ids=["withheld", "left-out"],
)
def test_content_in_a_line_refutes_a_scope_saying_it_was_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path, scope: Line
) -> None:
    """Neither writer puts content in a line when its scope says content was left out or
    withheld. A bundle whose middle line was stripped of its content, its scope edited to say
    content was withheld, verified in both verifiers: two events' content verified and the
    third "without content (withheld: no content.read, the scope says)", where the scope
    left as written said it was included and the line stripped (review)."""
    lines = make_bundle(tmp_path, 3)
    path = write(tmp_path / "b.jsonl", [scope, lines[0], withheld(lines[1]), lines[2]])
    said = repr(scope["scope"]["content"])
    assert both(go_verifier, capsys, path) == (
        1,
        [
            f"line 2 event e-0: the line holds content, though the scope says {said} (line 1)",
            f"line 4 event e-2: the line holds content, though the scope says {said} (line 1)",
        ],
    )
    # Every line without content, as the writers make it: verified, as before.
    path = write(tmp_path / "b.jsonl", [scope, *map(withheld, lines)])
    assert both(go_verifier, capsys, path) == (0, [])


def test_an_erasure_record_before_an_event_does_not_explain_its_missing_content(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """An erasure record names every id asked for, one no event had yet too (the store
    erases those it finds). An event given that id afterwards keeps its content; stripped of
    it in a bundle beside the earlier record, both verifiers said it was erased, "named by an
    erasure or retention record in the bundle" (review). A record explains only the events
    before it."""
    now = dt.datetime.now(dt.UTC)
    early = erasure.erasure_event(TENANT, ["e-1"], "art. 17", "dpo", "alice", now)
    events = [early, interaction(TENANT, "e-0", text="secret 0")]
    events.append(interaction(TENANT, "e-1", text="said after the erasure"))
    lines = proved_lines(tmp_path, events)
    bundle = [range_scope(), lines[0], lines[1], withheld(lines[2])]
    shown = summary(tmp_path, capsys, bundle)
    verified = 1 + ("content" in lines[0])
    assert shown[2].startswith(
        f"log {TENANT}: content verified for {verified} event(s); 1 without content though the "
        "scope says it was included, and no erasure record in the bundle names them"
    ), shown[2]
    assert both(go_verifier, capsys, tmp_path / "b.jsonl") == (0, [])

    # A record after the event explains it, as before.
    late = erasure.erasure_event(TENANT, ["e-1"], "art. 17", "dpo", "alice", now)
    lines = proved_lines(tmp_path, [*events[1:], late])
    bundle = [range_scope(), lines[0], withheld(lines[1]), lines[2]]
    shown = summary(tmp_path, capsys, bundle)
    assert "; 1 erased (named by an erasure or retention record in the bundle)" in shown[2]
    assert "without content" not in shown[2]
    assert both(go_verifier, capsys, tmp_path / "b.jsonl") == (0, [])


def test_a_scope_escaping_a_lone_surrogate_is_a_problem_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """Go's encoding/json reads a lone surrogate as U+FFFD, Python as itself: the Go
    verifier refused the line (exit 1, an event line), aiaudit printed the scope (exit 0)."""
    lines = make_bundle(tmp_path, 3)
    text = json.dumps(range_scope(requested_by="dpo\ud800"))  # escaped: \ud800
    path = tmp_path / "b.jsonl"
    path.write_text("".join(f"{t}\n" for t in [text, *map(json.dumps, lines)]))
    assert both(go_verifier, capsys, path) == (
        1,
        ["line 1 scope: malformed scope: the line escapes a lone surrogate (read elsewhere as "
         "U+FFFD)"],
    )  # fmt: skip


@pytest.mark.parametrize(
    "edit",
    [
        lambda text: text.replace('"start": 0', '"start": -0'),
        lambda text: text.replace('"start": 0', '"start": NaN'),
        lambda text: text.replace('"start": 0', f'"start": {"1" * 4301}'),
        lambda text: text.replace('"start": 0', '"start": 0, "x": {"a": 1, "a": 2}'),
    ],
    ids=["minus-zero", "nan", "digits", "a-name-twice-deep"],
)
def test_a_scope_line_aiaudit_cannot_parse_is_a_malformed_line_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path, edit: Any
) -> None:
    """What Python's json and Go's encoding/json read differently (-0, NaN, a 4301-digit
    integer, a name twice below the scope's own members) made one verifier call the line a
    malformed scope and the other a malformed event line, counting one event more (review).
    Both now read it as aiaudit's parser does: a malformed line, counted."""
    lines = make_bundle(tmp_path, 3)
    path = tmp_path / "b.jsonl"
    texts = [edit(json.dumps(range_scope())), *map(json.dumps, lines)]
    path.write_text("".join(f"{t}\n" for t in texts))
    key = key_of(tmp_path)
    assert verify(path, key, "--origin-prefix", ORIGIN_PREFIX) == 1
    (problem,) = capsys.readouterr().out.splitlines()
    assert problem.startswith("line 1 event ?: malformed line: "), problem
    independent = go.run(
        go_verifier, "bundle", "-verifier-key", key, "-origin-prefix", ORIGIN_PREFIX, path
    )
    assert independent.returncode == 1
    assert independent.stdout.startswith("line 1 event ?: malformed line: "), independent.stdout
    assert independent.stdout.splitlines()[-1] == "4 event(s) checked, 1 problem(s)"
