"""A caller's identity must fit the records that name it, or the caller is refused at once.

A token's ``sub`` (or a key's principal) becomes ``actor.user_id`` of every record of the
caller's reads and changes, a ``varchar(256)`` on PostgreSQL, which also holds no U+0000;
no store encodes a lone surrogate (JSON spells one ``\\ud800``). Until 2026-12-07 such a
subject was accepted: on PostgreSQL every read of that caller failed at its record,
answered UNAVAILABLE "retry" for ever; on SQLite (no length enforced) a long one was
served, one with a surrogate failed as on PostgreSQL. Now both refuse the token
UNAUTHENTICATED, naming the claim and the limit, and nothing is written.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
import yaml

from aiaudit.alerting.tables import alerts
from aiaudit.common import client
from aiaudit.common.erasure import USER_ID_CHARS
from aiaudit.common.store.schema import events
from aiaudit.search.v1 import search_service_pb2 as spb
from aiaudit.search.v1 import search_service_pb2_grpc as spb_grpc
from tests.conftest import serve_suite
from tests.unit.test_oidc import AUDIENCE, ISSUER, jwk, rsa_key, token, write_jwks

SIGNER = rsa_key()


@pytest.fixture
def suite(store_url: str, tmp_path: Path) -> Iterator[tuple[Any, str]]:
    """Ingest and search (SQLite index) on ``store_url``, with OIDC tokens; (suite, url)."""
    jwks = write_jwks(tmp_path / "jwks.json", [jwk(SIGNER, "k1")])
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"search": {"backend": "sqlite"}}))
    running, _ = serve_suite(
        tmp_path,
        cfg,
        database_url=store_url,
        services=["ingest", "search"],
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks_file=jwks,
    )
    yield running, store_url
    running.stop()


def _reads(address: str, bearer: str, tenant: str) -> list[grpc.RpcError | None]:
    """Two searches of ``tenant`` as the token's caller: each error, None for an answer."""
    channel = client.channel(address, bearer)
    stub = spb_grpc.SearchServiceStub(channel)  # type: ignore[no-untyped-call]
    out: list[grpc.RpcError | None] = []
    try:
        for where in ("", "event_type = INTERACTION"):
            try:
                stub.SearchEvents(spb.SearchEventsRequest(tenant_id=tenant, filter=where))
                out.append(None)
            except grpc.RpcError as exc:
                out.append(exc)
    finally:
        channel.close()
    return out


def _recorded(store_url: str, tenant: str) -> list[str | None]:
    """The ``user_id`` of every record of the tenant's log."""
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            query = sa.select(events.c.user_id).where(events.c.log_id == tenant)
            return list(conn.scalars(query))
    finally:
        engine.dispose()


def test_the_alerts_columns_naming_a_caller_hold_the_limit() -> None:
    """Who acknowledged or resolved an alert is the caller's principal too."""
    for column in (alerts.c.acknowledged_by, alerts.c.resolved_by):
        assert column.type.length >= USER_ID_CHARS  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("subject", "said"),
    [
        ("u" * (USER_ID_CHARS + 1), f"'sub' is {USER_ID_CHARS + 1} characters"),
        ("é" * (USER_ID_CHARS + 1), f"'sub' is {USER_ID_CHARS + 1} characters"),
        ("alice\x00@example.test", "'sub' holds U+0000"),
        ("alice\ud800@example.test", "'sub' holds U+D800"),
    ],
    ids=["ascii", "non-ascii", "nul", "surrogate"],
)
def test_a_subject_no_record_can_hold_is_refused_nothing_written(
    suite: tuple[Any, str], subject: str, said: str
) -> None:
    running, store_url = suite
    address = f"127.0.0.1:{running.port}"
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    bearer = token(SIGNER, "k1", sub=subject, roles=["admin"], tenants=[tenant])
    for error in _reads(address, bearer, tenant):
        assert error is not None
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error
        assert said in str(error.details()), error
        assert f"at most {USER_ID_CHARS}" in str(error.details()) or "holds U+" in said
        assert "retry" not in str(error.details()).lower()
    assert _recorded(store_url, tenant) == []


def test_a_subject_of_the_limit_is_served_and_recorded_whole(suite: tuple[Any, str]) -> None:
    running, store_url = suite
    address = f"127.0.0.1:{running.port}"
    tenant = f"t-{uuid.uuid4().hex[:12]}"
    subject = "é" * USER_ID_CHARS  # characters, as varchar(n) counts them, not bytes
    bearer = token(SIGNER, "k1", sub=subject, roles=["admin"], tenants=[tenant])
    assert _reads(address, bearer, tenant) == [None, None]
    assert _recorded(store_url, tenant) == [subject, subject]  # one record a read
