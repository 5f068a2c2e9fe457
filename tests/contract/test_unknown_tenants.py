"""A read of a tenant with no log opens none (both stores).

A key covering every tenant (``*``) may name any tenant; every read commits
an access record into the tenant's log first, so until 2026-12-07 a read of a
tenant with no events opened a log for it, the record its first entry. Now
such a read is answered NOT_FOUND (``TENANT_NOT_FOUND``, the tenant named),
its record not written, with a WARNING; reads of a tenant with a
log are recorded as ever, and ingest opens a log with its first event. A key
naming the tenant reads it before its first event, and its refusals there are
recorded too, each record opening the log. Alerting's reads:
``tests/alerting/test_access.py``; rule changes, which through ``*`` open no log
either (since 2026-12-07): ``tests/alerting/test_unknown_tenant_rules.py``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from aiaudit.common import client, config
from aiaudit.common.store import open_store
from aiaudit.ingest.v1 import ingest_service_pb2 as ipb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as ipb_grpc
from aiaudit.integrity.v1 import integrity_service_pb2 as gpb
from aiaudit.integrity.v1 import integrity_service_pb2_grpc as gpb_grpc
from aiaudit.search.v1 import search_service_pb2 as spb
from aiaudit.search.v1 import search_service_pb2_grpc as spb_grpc
from tests.conftest import Running, write_keys
from tests.helpers import access_records, clear_on_postgres, error_info, interaction


def _reads(channel: grpc.Channel, tenant: str) -> dict[str, Callable[[], Any]]:
    """Search's and integrity's reads of ``tenant``, by name (streams read to their end).

    AlertingService's: ``tests/alerting/test_access.py`` (alerting needs a login of its own).
    """
    search = spb_grpc.SearchServiceStub(channel)
    integrity = gpb_grpc.IntegrityServiceStub(channel)
    return {
        "SearchEvents": lambda: search.SearchEvents(spb.SearchEventsRequest(tenant_id=tenant)),
        "Aggregate": lambda: search.Aggregate(spb.AggregateRequest(tenant_id=tenant)),
        "GetEvent": lambda: search.GetEvent(spb.GetEventRequest(tenant_id=tenant, event_id="e")),
        "Export": lambda: list(
            search.Export(spb.ExportRequest(tenant_id=tenant, format=spb.EXPORT_FORMAT_JSONL))
        ),
        "GetCheckpoint": lambda: integrity.GetCheckpoint(gpb.GetCheckpointRequest(log_id=tenant)),
        "GetInclusionProof": lambda: integrity.GetInclusionProof(
            gpb.GetInclusionProofRequest(log_id=tenant, sequence=0)
        ),
        "BatchGetInclusionProofs": lambda: integrity.BatchGetInclusionProofs(
            gpb.BatchGetInclusionProofsRequest(log_id=tenant, sequences=[0])
        ),
        "GetConsistencyProof": lambda: integrity.GetConsistencyProof(
            gpb.GetConsistencyProofRequest(log_id=tenant, from_size=1, to_size=2)
        ),
        "VerifyEvent": lambda: integrity.VerifyEvent(
            gpb.VerifyEventRequest(log_id=tenant, event_id="e")
        ),
    }


_REFUSAL = ("access.action", "access.outcome", "access.permission")


def _not_found(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    assert err.value.code() == grpc.StatusCode.NOT_FOUND, err.value.details()
    return err.value


def _unknown_tenant_is_not_found(
    channel: grpc.Channel, ghost: str, logs: Callable[[], dict[str, int]]
) -> None:
    """Every read of ``ghost`` is TENANT_NOT_FOUND naming it, and no log is opened."""
    before = logs()
    assert ghost not in before
    for name, read in _reads(channel, ghost).items():
        err = _not_found(read)
        assert error_info(err) == ("TENANT_NOT_FOUND", {"tenant_id": ghost}), name
        assert f"tenant {ghost!r} has no events" in (err.details() or ""), name
        assert logs() == before, f"{name} of a tenant with no log changed the logs"


def test_reads_of_a_tenant_with_no_log_by_a_wildcard_key_open_none(
    server: Running, store_url: str, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    ghost = f"{tenant}-typo"
    store = open_store(store_url)
    try:
        with caplog.at_level(logging.WARNING, logger="aiaudit.common.access"):
            _unknown_tenant_is_not_found(server.channel, ghost, store.log_sizes)
        warned = [r.getMessage() for r in caplog.records if "which has no log" in r.getMessage()]
        assert len(warned) == len(_reads(server.channel, ghost))
        assert warned[0] == (
            f"test-admin (key 'key-admin') asked search.events of tenant {ghost!r}, which has "
            "no log: not recorded, answered NOT_FOUND"
        )
        # Ingest opens a log with its first event; its reads are then recorded as ever.
        ipb_grpc.IngestServiceStub(server.channel).Append(
            ipb.AppendRequest(events=[interaction(tenant)])
        )
        assert store.has_log(tenant)
        search = spb_grpc.SearchServiceStub(server.channel)
        search.SearchEvents(spb.SearchEventsRequest(tenant_id=tenant))
        search.Aggregate(spb.AggregateRequest(tenant_id=tenant))
        recorded = [
            r.attributes["access.action"].string_value for r in access_records(store_url, tenant)
        ]
        assert recorded == ["search.events", "search.aggregate"]
    finally:
        store.close()


@contextlib.contextmanager
def _suite_naming(
    tenant: str, store_url: str, privacy_url: str, tmp_path: Path
) -> Iterator[tuple[Any, dict[str, str]]]:
    """The suite with a key of every role on ``tenant`` alone (it names it); (suite, keys)."""
    from aiaudit.cli.server import start

    keys = write_keys(tmp_path / "keys.yaml", tenants=[tenant])
    settings: dict[str, object] = {
        "address": "127.0.0.1:0",
        "database_url": store_url,
        "data_dir": str(tmp_path),
        "api_keys_file": str(tmp_path / "keys.yaml"),
        **clear_on_postgres(store_url),
    }
    if privacy_url != store_url:  # PostgreSQL: ingest deletes content as this login
        settings["ingest"] = {"privacy_database_url": privacy_url}
    (tmp_path / "aiaudit.yaml").write_text(yaml.safe_dump(settings))
    suite = start(config.load(tmp_path / "aiaudit.yaml", env={}))
    try:
        yield suite, keys
    finally:
        suite.stop()


def test_a_key_naming_the_tenant_reads_it_before_its_first_event(
    store_url: str, privacy_url: str, tmp_path: Path, tenant: str
) -> None:
    """A tenant's own key names it: it exists by configuration, and its reads before the
    first event are answered (empty) and recorded, their record opening the log.

    An erasure there finds nothing to erase: NOT_FOUND, nothing written.
    """
    with _suite_naming(tenant, store_url, privacy_url, tmp_path) as (suite, keys):
        channel = client.channel(f"127.0.0.1:{suite.port}", keys["admin"])
        erase = ipb_grpc.IngestServiceStub(channel).EraseEvents
        err = _not_found(
            lambda: erase(ipb.EraseEventsRequest(tenant_id=tenant, subject_id="a", reason="r"))
        )
        assert error_info(err)[0] == "NOTHING_TO_ERASE"
        assert not suite.store.has_log(tenant)
        search = spb_grpc.SearchServiceStub(channel)
        found = search.SearchEvents(spb.SearchEventsRequest(tenant_id=tenant))
        assert (list(found.results), found.total_size) == ([], 0)
        assert suite.store.log_sizes()[tenant] == 1  # the search's record
        ipb_grpc.IngestServiceStub(channel).Append(ipb.AppendRequest(events=[interaction(tenant)]))
        assert suite.store.log_sizes()[tenant] == 2


def test_a_refusal_of_a_key_naming_the_tenant_is_recorded_before_its_first_event(
    store_url: str, privacy_url: str, tmp_path: Path, tenant: str
) -> None:
    """A refusal is recorded wherever the granted request's record would be: a key naming
    a tenant with no log yet leaves it, opening the log, as its granted read would.

    Until 2026-12-07 the refusal went unrecorded there (a WARNING only), while the same
    key's granted reads were recorded: an analyst's full-text search of a tenant about
    to go live (content.read lacking) left no trace.
    """
    with _suite_naming(tenant, store_url, privacy_url, tmp_path) as (suite, keys):
        analyst = spb_grpc.SearchServiceStub(
            client.channel(f"127.0.0.1:{suite.port}", keys["analyst"])
        )
        with pytest.raises(grpc.RpcError) as err:
            analyst.SearchEvents(spb.SearchEventsRequest(tenant_id=tenant, query="diagnosis"))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, err.value.details()
        assert suite.store.log_sizes().get(tenant) == 1, "the refusal's record opens the log"
    (record,) = access_records(store_url, tenant)
    assert record.actor.user_id == "test-analyst"
    assert {k: record.attributes[k].string_value for k in _REFUSAL} == {
        "access.action": "search.events",
        "access.outcome": "denied",
        "access.permission": "content.read",
    }
    assert {m.name: m.parts[0].text for m in record.input.messages} == {"query": "diagnosis"}
