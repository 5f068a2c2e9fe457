"""``integrity.classification_required_since``: NULL classification after it is damage.

The retention sweep finds content by ``event_content.data_classification`` alone
(revision 0013). NULL on a classified event was only a warning, since replicas of
the previous version write it during a rolling upgrade, so setting a RESTRICTED
row's column to NULL kept its content as INTERNAL, past its deadline, with
``verify`` passing (exit 0) and ``VerifyEvent`` not looking at the column at all.
Once the setting says every replica writes the column since T, NULL on a classified
event received at or after T, or appended after one that was (its receive time is
what its writer chose), is damage in both; before T it stays a warning.
``VerifyEvent`` also checks that every part of the erasures that erased an event is
there, as ``verify`` does. Both stores, raw SQL as the database owner.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from aiaudit.cli.main import main
from aiaudit.common.erasure import erase
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.store.prepare import prepare_batch
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.integrity import checks
from aiaudit.integrity.v1 import integrity_service_pb2 as pb
from tests.conftest import Postgres, Running
from tests.helpers import free_port, interaction, wait_until
from tests.integrity.conftest import start_suite
from tests.integrity.test_service import append, checkpoint_covers, integrity
from tests.integrity.test_verify import Log, full_log  # noqa: F401 (the fixture)

RESTRICTED, PUBLIC = ev.DATA_CLASSIFICATION_RESTRICTED, ev.DATA_CLASSIFICATION_PUBLIC
SINCE = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).replace(microsecond=0)
"""The boundary: an hour after the tests' own events (received now), so that these are
before it, as a rolling upgrade's last rows are."""
SETTING = "integrity.classification_required_since"


def rfc3339(when: dt.datetime) -> str:
    """A UTC time as problems name it."""
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def postgres(own_postgres: Postgres) -> Postgres:
    """A database of the test's own: a tampered log would stay in the session's."""
    return own_postgres


def _append_at(store: SqlEventStore, tenant: str, received: dt.datetime, *names: str) -> list[int]:
    """Appends RESTRICTED interactions received at ``received``; their sequences."""
    batch = []
    for name in names:
        event = interaction(tenant, name, text=f"card 4111 of {name}")
        event.data_classification = RESTRICTED
        batch.append(event)
    (receipts,) = store.append_group([prepare_batch(batch, received)])
    assert isinstance(receipts, list)
    return [r.sequence for r in receipts]


def _received(store: SqlEventStore, tenant: str) -> dict[str, int]:
    """Before, after and backdated: the three ways an event meets the boundary (and one
    after it whose column is changed); their sequences."""
    seqs = {}
    seqs["before"] = _append_at(store, tenant, SINCE - dt.timedelta(minutes=1), "before")[0]
    seqs["after"], seqs["changed"] = _append_at(
        store, tenant, SINCE + dt.timedelta(seconds=1), "after", "changed"
    )
    # Appended after "after", with a receive time its writer chose before the boundary.
    seqs["backdated"] = _append_at(store, tenant, SINCE - dt.timedelta(minutes=2), "backdated")[0]
    return seqs


def _null(admin: sa.Engine, tenant: str, *names: str) -> None:
    """Sets the named events' classification column to NULL, as the owner can."""
    with admin.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE event_content SET data_classification = NULL WHERE log_id = :t AND seq IN "
                "(SELECT seq FROM log_entries WHERE log_id = :t AND event_id IN :names)"
            ).bindparams(sa.bindparam("names", expanding=True)),
            {"t": tenant, "names": list(names)},
        )


def _public(admin: sa.Engine, tenant: str, name: str) -> None:
    with admin.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE event_content SET data_classification = :c WHERE log_id = :t AND seq = "
                "(SELECT seq FROM log_entries WHERE log_id = :t AND event_id = :e)"
            ),
            {"t": tenant, "e": name, "c": PUBLIC},
        )


def _why(name: str, seq: int, after: int | None = None) -> str:
    at = rfc3339(SINCE)
    if name == "backdated":
        received = rfc3339(SINCE - dt.timedelta(minutes=2))
        return (
            f"received {received}, but appended after sequence {after}"
            f" of its log, received {rfc3339(SINCE + dt.timedelta(seconds=1))}, at or after "
            f"{SETTING} ({at}) (backdated?)"
        )
    return f"received {rfc3339(SINCE + dt.timedelta(seconds=1))}, at or after {SETTING} ({at})"


def test_verify_names_null_after_the_boundary_and_warns_before_it(
    full_log: Log,  # noqa: F811 (the fixture)
    store: SqlEventStore,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    t = full_log.tenant
    seqs = _received(store, t)
    assert seqs == {"before": 15, "after": 16, "changed": 17, "backdated": 18}
    assert full_log.verify(SINCE).ok  # every column as ingest wrote it
    _null(full_log.admin, t, "before", "after", "backdated")
    warning = (
        f"log {t} sequence 15 event before: column event_content.data_classification is NULL "
        "but the committed event is DATA_CLASSIFICATION_RESTRICTED (4): content retention keeps "
        "it as INTERNAL (written by a replica older than revision 0013 during a rolling upgrade, "
        "or set to NULL?)"
    )
    report = full_log.verify(SINCE)
    after = (
        f"log {t} sequence 16 event after: column event_content.data_classification is NULL but "
        "the committed event is DATA_CLASSIFICATION_RESTRICTED (4): content retention keeps it "
        f"as INTERNAL, and the event was {_why('after', 16)}, since when every replica writes "
        "the column (set to NULL?)"
    )
    backdated = (
        f"log {t} sequence 18 event backdated: column event_content.data_classification is NULL "
        "but the committed event is DATA_CLASSIFICATION_RESTRICTED (4): content retention keeps "
        f"it as INTERNAL, and the event was {_why('backdated', 18, 16)}, since when every "
        "replica writes the column (set to NULL?)"
    )
    assert [str(p) for p in report.problems] == [after, backdated]
    assert [str(w) for w in report.warnings] == [warning]
    unset = full_log.verify(None)  # unset: as before, three warnings and no damage
    assert unset.ok and len(unset.warnings) == 3, unset.problems

    capsys.readouterr()
    assert main(full_log.argv()) == 0
    capsys.readouterr()
    flag = ["--classification-required-since", rfc3339(SINCE)]
    assert main([*full_log.argv(), *flag]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [after, backdated, f"warning: {warning}"]
    assert "checked: 2 problem(s), 1 warning(s) (no damage)" in err
    # --mode leaves reads no content row: it says the setting went unchecked (until
    # 2026-12-07 it passed silently, as if the columns had been checked).
    assert main([*full_log.argv(), *flag, "--mode", "leaves"]) == 0
    out, _ = capsys.readouterr()
    assert out.splitlines() == [
        f"warning: classification_required_since ({SINCE.isoformat()}) is not checked in "
        "--mode leaves, which reads no content row; run --mode full to check it"
    ]
    monkeypatch.setenv("AIAUDIT_INTEGRITY_CLASSIFICATION_REQUIRED_SINCE", rfc3339(SINCE))
    assert main(full_log.argv()) == 1  # the setting, from the environment
    assert main([*full_log.argv(), "--classification-required-since", ""]) == 0  # the flag wins
    capsys.readouterr()
    monkeypatch.delenv("AIAUDIT_INTEGRITY_CLASSIFICATION_REQUIRED_SINCE")
    assert main([*full_log.argv(), "--classification-required-since", "2026-12-07T10:00:00"]) == 2
    err = capsys.readouterr().err
    assert (
        "argument --classification-required-since: '2026-12-07T10:00:00' is not an RFC 3339 "
        "time with its UTC offset"
    ) in err


def _serve(tmp_path: Path, text: str) -> list[str]:
    f = tmp_path / "config.yaml"
    f.write_text(text)
    data = str(tmp_path / "data")
    return [
        "serve",
        "--config",
        str(f),
        "--data-dir",
        data,
        "--address",
        f"127.0.0.1:{free_port()}",
    ]


@pytest.mark.parametrize(
    "value", ["2026-12-07T10:00:00", "2026-12-07", "yesterday", "2026-13-07T10:00:00Z"]
)
def test_a_bad_boundary_stops_serve_and_verify_at_start_naming_the_setting(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    value: str,
) -> None:
    """A time without its offset would be read in some zone; anything else is no time."""
    named = f"setting '{SETTING}': {value!r} is not an RFC 3339 time with its UTC offset"
    assert main(_serve(tmp_path, f"integrity: {{classification_required_since: '{value}'}}\n")) == 2
    assert named in capsys.readouterr().err
    monkeypatch.setenv("AIAUDIT_INTEGRITY_CLASSIFICATION_REQUIRED_SINCE", value)
    assert main(_serve(tmp_path, "")) == 2
    assert named in capsys.readouterr().err
    assert main(["verify", "--data-dir", str(tmp_path / "data")]) == 2
    assert named in capsys.readouterr().err


def test_a_yaml_timestamp_in_the_file_reads_as_the_same_time(tmp_path: Path) -> None:
    """Unquoted in the file, YAML makes it a timestamp: read as the time it names."""
    from aiaudit.common import config
    from aiaudit.integrity import settings

    f = tmp_path / "config.yaml"
    f.write_text("integrity:\n  classification_required_since: 2026-12-07T10:00:00+02:00\n")
    s = settings.load(config.load(f, env={}, serving=False))
    assert s.classification_required_time == dt.datetime(2026, 12, 7, 8, tzinfo=dt.UTC)


@pytest.fixture
def bounded(store_url: str, notary_url: str, tmp_path: Path) -> Any:
    """The suite with the boundary set."""
    running = start_suite(
        store_url, notary_url, tmp_path, classification_required_since=rfc3339(SINCE)
    )
    yield running
    running.channel.close()
    running.suite.stop()  # type: ignore[attr-defined]


def _verdict(running: Running, tenant: str, event_id: str) -> pb.VerifyEventResponse:
    request = pb.VerifyEventRequest(log_id=tenant, event_id=event_id)
    reply: pb.VerifyEventResponse = integrity(running).VerifyEvent(request)
    return reply


def test_verify_event_checks_the_classification_column(
    bounded: Running, store_url: str, admin_url: str, tenant: str
) -> None:
    store = open_store(store_url)
    try:
        seqs = _received(store, tenant)
    finally:
        store.close()
    wait_until(lambda: checkpoint_covers(bounded, tenant, seqs["backdated"] + 1))
    for name in seqs:
        verdict = _verdict(bounded, tenant, name)
        assert verdict.status == pb.VERIFY_STATUS_VERIFIED, (name, verdict.problems)
    admin = sa.create_engine(admin_url)
    try:
        _null(admin, tenant, "before", "after", "backdated")
        _public(admin, tenant, "changed")
    finally:
        admin.dispose()
    before = _verdict(bounded, tenant, "before")  # verify's warning: no damage
    assert before.status == pb.VERIFY_STATUS_VERIFIED, before.problems
    for name in ("after", "backdated"):
        verdict = _verdict(bounded, tenant, name)
        assert verdict.status == pb.VERIFY_STATUS_TAMPERED
        assert list(verdict.problems) == [
            "column event_content.data_classification is NULL but the committed event is "
            "DATA_CLASSIFICATION_RESTRICTED (4): content retention keeps it as INTERNAL, and the "
            f"event was {_why(name, seqs[name], seqs['after'])}, since when every replica "
            "writes the column (set to NULL?)"
        ]
    changed = _verdict(bounded, tenant, "changed")
    assert changed.status == pb.VERIFY_STATUS_TAMPERED
    assert list(changed.problems) == [
        "column event_content.data_classification is DATA_CLASSIFICATION_PUBLIC (1) but the "
        "committed event is DATA_CLASSIFICATION_RESTRICTED (4): content retention goes by the "
        "column (changed?)"
    ]


def test_verify_event_names_a_changed_column_and_without_the_setting_warns_of_null(
    suite: Running, store_url: str, admin_url: str, tenant: str
) -> None:
    """No setting: a changed column is TAMPERED as verify names it; NULL is verify's warning."""
    store = open_store(store_url)
    try:
        now = dt.datetime.now(dt.UTC)
        seqs = _append_at(store, tenant, now, "changed", "nulled")
    finally:
        store.close()
    wait_until(lambda: checkpoint_covers(suite, tenant, seqs[-1] + 1))
    admin = sa.create_engine(admin_url)
    try:
        _public(admin, tenant, "changed")
        _null(admin, tenant, "nulled")
    finally:
        admin.dispose()
    changed = _verdict(suite, tenant, "changed")
    assert changed.status == pb.VERIFY_STATUS_TAMPERED
    assert list(changed.problems) == [
        "column event_content.data_classification is DATA_CLASSIFICATION_PUBLIC (1) but the "
        "committed event is DATA_CLASSIFICATION_RESTRICTED (4): content retention goes by the "
        "column (changed?)"
    ]
    nulled = _verdict(suite, tenant, "nulled")
    assert nulled.status == pb.VERIFY_STATUS_VERIFIED, nulled.problems


def test_verify_event_names_a_missing_part_of_the_erasure(
    suite: Running, privacy_url: str, admin_url: str, tenant: str
) -> None:
    """An erasure in parts, its second record's event row deleted: the event the first
    part erased was VERIFIED_ERASED, every part of its erasure unlooked at."""
    stub = integrity(suite)
    receipts = append(suite, tenant, 3)
    first, second = (r.event_id for r in receipts[:2])  # type: ignore[attr-defined]
    privacy = open_store(privacy_url)
    try:
        done = erase(privacy, tenant, "data subject request", "dpo", [first, second], per_record=1)
    finally:
        privacy.close()
    assert len(done.record_ids) == 2
    admin = sa.create_engine(admin_url)
    try:
        with admin.begin() as conn:
            seq = conn.execute(
                sa.text("SELECT seq FROM log_entries WHERE log_id = :t AND event_id = :e"),
                {"t": tenant, "e": done.record_ids[0]},
            ).scalar_one()
        wait_until(lambda: checkpoint_covers(suite, tenant, seq + 2))
        request = pb.VerifyEventRequest(log_id=tenant, event_id=first)
        assert stub.VerifyEvent(request).status == pb.VERIFY_STATUS_VERIFIED_ERASED
        with admin.begin() as conn:
            conn.execute(
                sa.text("DELETE FROM events WHERE log_id = :t AND event_id = :e"),
                {"t": tenant, "e": done.record_ids[1]},
            )
    finally:
        admin.dispose()
    verdict = stub.VerifyEvent(request)
    assert verdict.status == pb.VERIFY_STATUS_TAMPERED
    assert list(verdict.problems) == [
        f"sequence {seq} event {done.record_ids[0]}: erasure record part 1 of 2: part(s) 2 of "
        "its erasure after it are not among the log's intact records (deleted, changed, or the "
        "tail truncated?)"
    ]
    other = stub.VerifyEvent(pb.VerifyEventRequest(log_id=tenant, event_id=second))
    assert list(other.problems) == [
        "content deleted without a privacy-erasure record naming the event"
    ]
    gone = stub.VerifyEvent(pb.VerifyEventRequest(log_id=tenant, event_id=done.record_ids[1]))
    assert gone.status == pb.VERIFY_STATUS_TAMPERED
    assert gone.problems[0] == checks.MISSING_EVENT
