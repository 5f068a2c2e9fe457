"""Transit batches larger than one request may carry (a real OpenBao).

OpenBao refuses a request body of more than 1,000 JSON strings by default
(``max_request_json_strings``): an encrypt, decrypt or rewrap of 250 data keys or
more. Until 2026-12-07 the Transit KEK sent any batch as one request, so a group
of that many new subjects, a read page of that many subjects' keys and a rewrap
page of that many keys failed whole, every time. A batch now goes as requests of
at most ``BATCH_ITEMS`` keys, in order, and fails as a whole if one of them does.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler

import hvac.exceptions
import pytest
import sqlalchemy as sa

from aiaudit.common.keys.kek import KekError, transit_version
from aiaudit.common.keys.rewrap import RewrapReport, rewrap_keys
from aiaudit.common.keys.transit import BATCH_ITEMS, TransitKek
from tests.conftest import Postgres
from tests.contract.test_content_kek import bootstrapped, data_keys, openbao, tampered  # noqa: F401
from tests.contract.test_content_rewrap import readable, rewrap_token, rotated, stored_keys
from tests.helpers import serve_http
from tests.integrity.conftest import Vault, vault  # noqa: F401  (the session's OpenBao)


def test_one_request_past_batch_items_is_refused_by_openbao(openbao: Vault) -> None:  # noqa: F811
    """Why ``BATCH_ITEMS``: this OpenBao takes that many keys in one request, not one more."""
    settings, token = bootstrapped(openbao)
    transit = openbao.client(token).secrets.transit
    where = {"name": settings.key, "mount_point": settings.mount}
    items = [{"plaintext": "AAAA", "reference": str(i)} for i in range(BATCH_ITEMS + 1)]
    transit.encrypt_data(batch_input=items[:BATCH_ITEMS], **where)
    with pytest.raises(hvac.exceptions.InvalidRequest, match="exceeded maximum number of strings"):
        transit.encrypt_data(batch_input=items, **where)


def test_10001_keys_wrap_and_unwrap_in_one_call(openbao: Vault) -> None:  # noqa: F811
    """A whole ingest batch (or read page) of 10,001 new subjects' keys round-trips, in
    order. Until 2026-12-07 OpenBao refused the wrap (one request of 10,001 items)."""
    settings, token = bootstrapped(openbao)
    kek = TransitKek(openbao.client(token), settings.mount, settings.key)
    keys = data_keys(10_001)
    wrapped = kek.wrap(keys)
    assert len(set(wrapped)) == 10_001
    assert kek.unwrap(wrapped) == keys


def test_a_key_refused_in_a_later_request_is_none_alone(openbao: Vault) -> None:  # noqa: F811
    """Decrypt and rewrap answer None for a key Transit refuses, at its own place in the
    call, whichever request carried it; the others open (or rewrap) as ever."""
    settings, token = bootstrapped(openbao)
    kek = TransitKek(openbao.client(token), settings.mount, settings.key)
    keys = data_keys(BATCH_ITEMS + 20)
    wrapped = kek.wrap(keys)
    bad = BATCH_ITEMS + 5
    wrapped[bad] = tampered(wrapped[bad])
    opened = kek.unwrap(wrapped)
    assert [i for i, k in enumerate(opened) if k is None] == [bad]
    assert opened[:bad] + opened[bad + 1 :] == keys[:bad] + keys[bad + 1 :]
    openbao.client().secrets.transit.rotate_key(name=settings.key, mount_point=settings.mount)
    operator = TransitKek(
        openbao.client(rewrap_token(openbao, settings)), settings.mount, settings.key
    )
    rewrapped = operator.rewrap(wrapped)
    assert [i for i, w in enumerate(rewrapped) if w is None] == [bad]
    assert {transit_version(w) for w in rewrapped if w is not None} == {2}
    assert kek.unwrap([w if w is not None else wrapped[bad] for w in rewrapped]) == opened


class SecondRefused(BaseHTTPRequestHandler):
    """The real OpenBao behind a forwarder that answers the second request 503 (Vault
    sealed, or restarted, between two requests of one call)."""

    upstream = ""
    seen = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).seen += 1
        if type(self).seen == 2:
            status, payload = 503, json.dumps({"errors": ["Vault is sealed"]}).encode()
        else:
            forward = urllib.request.Request(
                self.upstream + self.path,
                data=body,
                method="POST",
                headers={
                    "X-Vault-Token": self.headers.get("X-Vault-Token", ""),
                    "Content-Type": "application/json",
                },
            )
            try:
                with urllib.request.urlopen(forward, timeout=10) as answer:
                    status, payload = answer.status, answer.read()
            except urllib.error.HTTPError as exc:
                status, payload = exc.code, exc.read()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.mark.parametrize("op", ["encrypt", "decrypt"])
def test_a_request_refused_midway_fails_the_whole_call(openbao: Vault, op: str) -> None:  # noqa: F811
    """One request of the call failing fails the call, naming the items it carried, as a
    single request would (no partial answer: the keys already answered go unused)."""
    settings, token = bootstrapped(openbao)
    kek = TransitKek(openbao.client(token), settings.mount, settings.key)
    keys = data_keys(BATCH_ITEMS + 50)
    wrapped = kek.wrap(keys) if op == "decrypt" else []
    server, proxy = serve_http(type("ToOpenBao", (SecondRefused,), {"upstream": openbao.addr}))
    try:
        through = TransitKek(openbao.client(token, addr=proxy), settings.mount, settings.key)
        with pytest.raises(KekError) as refused:
            through.wrap(keys) if op == "encrypt" else through.unwrap(wrapped)
    finally:
        server.shutdown()
    assert str(refused.value) == (
        f"Transit key {kek.name} {op} of {BATCH_ITEMS + 50} data key(s), items "
        f"{BATCH_ITEMS}-{BATCH_ITEMS + 49}: VaultDown (Vault is sealed)"
    )


def test_a_group_of_300_new_subjects_is_sealed_read_and_rewrapped(
    openbao: Vault,  # noqa: F811
    sealed_store: Postgres | str,
) -> None:
    """300 new subjects in one append (one wrap of 300 keys), their events read through a
    fresh keyring (one unwrap of 300), and rewrapped in one page of the default size.
    Until 2026-12-07 OpenBao refused the append's wrap: the group failed, for good."""
    subjects = [f"subject-{i}" for i in range(300)]
    settings, _, url, admin_url, kek, texts = rotated(openbao, sealed_store, subjects)
    assert len(texts) == 600
    operator = TransitKek(
        openbao.client(rewrap_token(openbao, settings)), settings.mount, settings.key
    )
    engine = sa.create_engine(admin_url)
    report = RewrapReport()
    rewrap_keys(engine, operator, report)
    engine.dispose()
    assert (report.rewrapped, report.damaged, report.behind) == (300, 0, 0)
    assert {transit_version(w) for w in stored_keys(admin_url).values()} == {2}
    assert readable(url, kek) == texts
