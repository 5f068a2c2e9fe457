"""`aiaudit content-keys rewrap` against a real OpenBao Transit key, on both stores.

Rotate, rewrap, retire the old versions (``min_decryption_version``, trim): every
event still reads. Keys erased or rewritten while the rewrap runs stay as they
are (compare-and-swap on the wrapped bytes); a second run rewraps nothing.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import NamedTuple

import hvac.exceptions
import pytest
import sqlalchemy as sa
import yaml

from aiaudit.cli.main import main
from aiaudit.common.keys import rewrap
from aiaudit.common.keys.kek import KekError, transit_version
from aiaudit.common.keys.keyring import Keyring
from aiaudit.common.keys.rewrap import MAX_PAGE_SIZE, RewrapReport, rewrap_keys
from aiaudit.common.keys.transit import ContentKeySettings, TransitKek, rewrap_policy
from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare_batch
from aiaudit.common.store.schema import content_keys
from aiaudit.common.store.sql import Conflict
from tests.conftest import Postgres
from tests.contract.test_content_kek import bootstrapped, openbao, tampered  # noqa: F401
from tests.helpers import free_port, interaction, serve_http
from tests.integrity.conftest import Vault, vault  # noqa: F401  (the session's OpenBao)

SUBJECTS = ("alice", "bob", "carol", "dave", "erin")


def urls(sealed_store: Postgres | str) -> tuple[str, str]:
    """(what the services write with, the administrator's URL the rewrap runs with)."""
    if isinstance(sealed_store, str):
        return sealed_store, sealed_store
    return sealed_store.app_url, sealed_store.admin_url


def rewrap_token(v: Vault, settings: ContentKeySettings) -> str:
    """A token holding only the rewrap policy that bootstrap wrote."""
    token = v.client().auth.token.create(policies=[settings.rewrap_policy_name], ttl="1h")
    return str(token["auth"]["client_token"])


def sealed_events(
    url: str, kek: TransitKek, subjects: Sequence[str], keys: Keyring | None = None
) -> dict[str, str]:
    """Two events per subject appended to log ``t``, sealed under ``kek`` (through ``keys``,
    a service's keyring, if given); event id -> text."""
    store = open_store(url, keys=keys or Keyring(kek))
    texts: dict[str, str] = {}
    events = []
    for s in subjects:
        for n in range(2):
            e = interaction("t", f"{s}-{n}-{len(texts)}", text=f"secret of {s} #{n}", user=s)
            events.append(e)
            texts[e.event_id] = f"secret of {s} #{n}"
    (outcome,) = store.append_group([prepare_batch(events, dt.datetime.now(dt.UTC))])
    assert not isinstance(outcome, Conflict)
    store.close()
    return texts


def stored_keys(admin_url: str) -> dict[str, bytes]:
    """Subject -> wrapped key, as stored."""
    engine = sa.create_engine(admin_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(content_keys.c.subject, content_keys.c.wrapped)).all()
    engine.dispose()
    return {str(s): bytes(w) for s, w in rows}


def readable(url: str, kek: TransitKek) -> dict[str, str]:
    """Event id -> text of every event of log ``t``, read through a fresh keyring."""
    store = open_store(url, keys=Keyring(kek))
    try:
        return {
            e.event_id: e.to_event().input.messages[0].parts[0].text
            for e in store.read_log("t", 0, 1000)
        }
    finally:
        store.close()


def rewrap_cli(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    url: str,
    settings: dict[str, object],
    token: str,
    *flags: str,
) -> tuple[int, str, str]:
    """Runs ``aiaudit content-keys rewrap`` as an operator does: (exit code, stdout, stderr)."""
    cfg = tmp_path / "rewrap.yaml"
    cfg.write_text(yaml.safe_dump({"data_dir": str(tmp_path), **settings}))
    monkeypatch.setenv("VAULT_TOKEN", token)
    argv = ["content-keys", "rewrap", "--config", str(cfg), "--database-url", url, *flags]
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


class Rotated(NamedTuple):
    """A bootstrapped key whose version 1 sealed some subjects' events, then rotated."""

    settings: ContentKeySettings
    token: str
    """The services' token (encrypt / decrypt)."""
    url: str
    admin_url: str
    kek: TransitKek
    """The services' KEK."""
    texts: dict[str, str]
    """Event id -> text of the events sealed."""

    @property
    def where(self) -> dict[str, str]:
        """The key, as hvac's Transit calls name it."""
        return {"name": self.settings.key, "mount_point": self.settings.mount}


def rotated(v: Vault, sealed_store: Postgres | str, subjects: Sequence[str] = SUBJECTS) -> Rotated:
    """Bootstrap a key, seal two events per subject under its version 1, rotate it."""
    settings, token = bootstrapped(v)
    url, admin_url = urls(sealed_store)
    kek = TransitKek(v.client(token), settings.mount, settings.key)
    texts = sealed_events(url, kek, subjects)
    v.client().secrets.transit.rotate_key(name=settings.key, mount_point=settings.mount)
    return Rotated(settings, token, url, admin_url, kek, texts)


def vault_settings(v: Vault, settings: ContentKeySettings) -> dict[str, object]:
    return {
        "content_keys": "vault",
        "content_vault_addr": v.addr,
        "content_vault_mount": settings.mount,
        "content_vault_key": settings.key,
    }


def test_rotate_rewrap_and_retire_the_old_versions_every_event_still_reads(
    openbao: Vault,  # noqa: F811
    sealed_store: Postgres | str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, _, url, admin_url, kek, texts = r = rotated(openbao, sealed_store)
    admin = openbao.client().secrets.transit
    texts |= sealed_events(url, kek, ["late"])  # wrapped under version 2 already
    before = stored_keys(admin_url)
    assert {transit_version(w) for s, w in before.items() if s != "late"} == {1}
    assert transit_version(before["late"]) == 2

    cli = (tmp_path, monkeypatch, capsys, admin_url, vault_settings(openbao, settings))
    code, out, err = rewrap_cli(*cli, rewrap_token(openbao, settings), "--page-size", "2")
    assert code == 0
    assert json.loads(out) == {
        "kek": f"vault:{settings.mount}/{settings.key}",
        "version": 2,
        "rewrapped": 5,
        "current": 1,
        "changed": 0,
        "damaged": 0,
        "damaged_key_ids": [],
        "behind": 0,
    }
    assert err == (  # what to do next, and when
        f"aiaudit content-keys rewrap: every data key of {kek.name} is under version 2. "
        "Services store keys they wrapped ahead up to 60 s after wrapping them: retire older "
        "versions only after a run that started at least 60 s after the rotation (run it "
        "again then if this one did not)\n"
    )
    after = stored_keys(admin_url)
    assert after.keys() == before.keys()
    assert {transit_version(w) for w in after.values()} == {2}
    assert after["late"] == before["late"]  # already current: not written

    # Retire version 1 for good: the backups' keys no longer open, the live ones do.
    where = r.where
    admin.update_key_configuration(min_decryption_version=2, **where)
    admin.update_key_configuration(min_encryption_version=2, **where)  # trim needs it set
    admin.trim_key(min_version=2, **where)
    assert list(admin.read_key(**where)["data"]["keys"]) == ["2"]
    assert kek.unwrap([before["alice"]]) == [None]  # what a backup holds: gone
    assert readable(url, kek) == texts

    code, out, _ = rewrap_cli(*cli, rewrap_token(openbao, settings))
    assert code == 0
    again = json.loads(out)
    assert (again["rewrapped"], again["current"], again["version"], again["behind"]) == (0, 6, 2, 0)
    assert stored_keys(admin_url) == after


class Meanwhile:
    """The real Transit rewrap, then ``act`` on what it was asked (the window a slow
    Vault call leaves between a page's read and its update), at call ``on_call``."""

    def __init__(
        self, kek: TransitKek, act: Callable[[Sequence[bytes]], None], on_call: int = 2
    ) -> None:
        self.kek = kek
        self.name = kek.name
        self.act = act
        self.on_call = on_call  # 2 by default: a page in the middle
        self.calls = 0

    def rewrap(self, wrapped: Sequence[bytes]) -> list[bytes | None]:
        out = self.kek.rewrap(wrapped)
        self.calls += 1
        if self.calls == self.on_call:
            self.act(wrapped)
        return out


def test_a_key_erased_during_the_rewrap_is_not_brought_back(
    openbao: Vault,  # noqa: F811
    sealed_store: Postgres | str,
) -> None:
    settings, _, url, admin_url, kek, texts = rotated(openbao, sealed_store)
    engine = sa.create_engine(admin_url)
    erased: list[bytes] = []

    def erase(wrapped: Sequence[bytes]) -> None:  # as an erasure destroys the subject's key
        with engine.begin() as conn:
            conn.execute(sa.delete(content_keys).where(content_keys.c.wrapped == wrapped[0]))
        erased.extend(wrapped)

    rewrapper = Meanwhile(
        TransitKek(openbao.client(rewrap_token(openbao, settings)), settings.mount, settings.key),
        erase,
    )
    report = RewrapReport()
    rewrap_keys(engine, rewrapper, report, page_size=1)
    engine.dispose()
    assert (report.rewrapped, report.changed, report.current, report.version) == (4, 1, 0, 2)
    after = stored_keys(admin_url)
    assert len(after) == 4 and erased[0] not in after.values()
    assert {transit_version(w) for w in after.values()} == {2}
    read = readable(url, kek)
    gone = {i for i, text in read.items() if text != texts[i]}
    assert len(gone) == 2  # the erased subject's two events: no key opens them any more


def test_a_key_rewritten_during_the_rewrap_is_not_set_back(
    openbao: Vault,  # noqa: F811
    sealed_store: Postgres | str,
) -> None:
    """Another run, after a further rotation, writes version 3 while this one holds version 2
    for the same key: written over it, version 2 would come back, and retiring it (after the
    other run reported every key on 3) would destroy the key."""
    settings, _, url, admin_url, kek, texts = r = rotated(openbao, sealed_store)
    admin, where = openbao.client().secrets.transit, r.where
    engine = sa.create_engine(admin_url)
    operator = TransitKek(
        openbao.client(rewrap_token(openbao, settings)), settings.mount, settings.key
    )
    theirs: list[bytes] = []

    def other_run(wrapped: Sequence[bytes]) -> None:
        admin.rotate_key(**where)
        (newer,) = operator.rewrap(wrapped)
        assert newer is not None and transit_version(newer) == 3
        with engine.begin() as conn:
            conn.execute(
                sa.update(content_keys)
                .where(content_keys.c.wrapped == wrapped[0])
                .values(wrapped=newer)
            )
        theirs.append(newer)

    report = RewrapReport()
    rewrap_keys(engine, Meanwhile(operator, other_run), report, page_size=1)
    engine.dispose()
    assert (report.rewrapped, report.changed) == (4, 1)
    after = stored_keys(admin_url)
    assert theirs[0] in after.values()  # the other run's version 3 stands
    # This run's version is 3 from then on: the keys of later pages went to 3 too.
    assert sorted(transit_version(w) for w in after.values()) == [2, 3, 3, 3, 3]
    assert report.version == 3
    again = RewrapReport()
    rewrap_keys(sa.create_engine(admin_url), operator, again)
    assert (again.rewrapped, again.current, again.version) == (1, 4, 3)
    admin.update_key_configuration(min_decryption_version=3, **where)
    assert readable(url, kek) == texts


def test_a_key_an_older_run_wrote_first_is_rewrapped_again(
    openbao: Vault,  # noqa: F811
    sealed_store: Postgres | str,
) -> None:
    """An older run, whose Transit call came before the last rotation, writes version 2
    between this run's read (version 1) and its update (version 3). This run's update
    then finds other bytes: the key is read again and, still behind, rewrapped again.
    Counted as ``changed`` and left on 2 (until 2026-12-07), it made a run that reported
    nothing to rewrap, and retiring version 2 as it said destroyed the key."""
    settings, _, url, admin_url, kek, texts = r = rotated(openbao, sealed_store, ["alice"])
    admin, where = openbao.client().secrets.transit, r.where
    operator = TransitKek(
        openbao.client(rewrap_token(openbao, settings)), settings.mount, settings.key
    )
    (old,) = stored_keys(admin_url).values()
    (older_runs,) = operator.rewrap([old])  # the older run's Transit call, before the rotation
    assert older_runs is not None and transit_version(older_runs) == 2
    admin.rotate_key(**where)
    texts |= sealed_events(url, kek, ["bob", "carol"])  # wrapped under version 3 already
    engine = sa.create_engine(admin_url)

    def older_run_updates(wrapped: Sequence[bytes]) -> None:
        assert old in wrapped
        with engine.begin() as conn:
            conn.execute(
                sa.update(content_keys)
                .where(content_keys.c.wrapped == old)
                .values(wrapped=older_runs)
            )

    report = RewrapReport()
    rewrap_keys(engine, Meanwhile(operator, older_run_updates, on_call=1), report)
    engine.dispose()
    found = (report.rewrapped, report.changed, report.current, report.damaged, report.version)
    assert found == (1, 0, 2, 0, 3)
    assert {transit_version(w) for w in stored_keys(admin_url).values()} == {3}
    admin.update_key_configuration(min_decryption_version=3, **where)
    assert readable(url, kek) == texts


class Reversing(BaseHTTPRequestHandler):
    """The real OpenBao behind a faulty intermediary that hands back each batch answer
    to ``operation`` reversed: as many answers, each for another item."""

    upstream = ""
    operation = "rewrap"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        token = self.headers.get("X-Vault-Token", "")
        forward = urllib.request.Request(
            self.upstream + self.path,
            data=body,
            method="POST",
            headers={"X-Vault-Token": token, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(forward, timeout=10) as answer:
                status, payload = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        if f"/{self.operation}/" in self.path:
            doc = json.loads(payload)
            doc["data"]["batch_results"].reverse()
            payload = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def test_answers_out_of_order_write_nothing(
    openbao: Vault,  # noqa: F811
    sealed_store: Postgres | str,
) -> None:
    """Each item carries a reference Transit echoes; an answer for another item is refused.
    Taken in order (until 2026-12-07), each of the two keys got the other's data key,
    wrapped: the compare-and-swap held (the rows were as read), and both subjects' content
    no longer opened, with the run reporting 2 rewrapped."""
    settings, _, url, admin_url, kek, texts = rotated(openbao, sealed_store, ["alice", "bob"])
    before = stored_keys(admin_url)
    server, proxy = serve_http(type("ToOpenBao", (Reversing,), {"upstream": openbao.addr}))
    try:
        operator = TransitKek(
            openbao.client(rewrap_token(openbao, settings), addr=proxy),
            settings.mount,
            settings.key,
        )
        engine = sa.create_engine(admin_url)
        report = RewrapReport()
        with pytest.raises(KekError, match=r"rewrap of 2 data key.*out of order"):
            rewrap_keys(engine, operator, report)
        engine.dispose()
    finally:
        server.shutdown()
    assert report.rewrapped == 0
    assert stored_keys(admin_url) == before
    assert readable(url, kek) == texts


def test_wrapped_keys_answered_out_of_order_store_nothing(
    openbao: Vault,  # noqa: F811
    sealed_store: Postgres | str,
) -> None:
    """The same fault on the services' encrypt: taken in order (until 2026-12-07), each new
    subject's row held another's data key, wrapped, and its content never opened."""
    settings, token = bootstrapped(openbao)
    url, admin_url = urls(sealed_store)
    faulty = {"upstream": openbao.addr, "operation": "encrypt"}
    server, proxy = serve_http(type("ToOpenBao", (Reversing,), faulty))
    try:
        through = TransitKek(openbao.client(token, addr=proxy), settings.mount, settings.key)
        with pytest.raises(KekError, match=r"encrypt of \d+ data key.*out of order"):
            sealed_events(url, through, ["alice", "bob"])
    finally:
        server.shutdown()
    assert stored_keys(admin_url) == {}
    assert readable(url, TransitKek(openbao.client(token), settings.mount, settings.key)) == {}


def test_a_run_stopped_midway_is_finished_by_the_next(
    openbao: Vault,  # noqa: F811
    sealed_store: Postgres | str,
) -> None:
    """Each page commits on its own: what a run did before it stopped stays, readable."""
    settings, _, url, admin_url, kek, texts = rotated(openbao, sealed_store)
    stopped = rewrap_token(openbao, settings)
    operator = TransitKek(openbao.client(stopped), settings.mount, settings.key)
    engine = sa.create_engine(admin_url)
    report = RewrapReport()
    revoke = Meanwhile(operator, lambda _: openbao.client().auth.token.revoke(stopped))
    with pytest.raises(KekError, match="rewrap of 1 data key"):
        rewrap_keys(engine, revoke, report, page_size=1)
    assert (report.rewrapped, report.version) == (2, 2)
    assert sorted(transit_version(w) for w in stored_keys(admin_url).values()) == [1, 1, 1, 2, 2]
    assert readable(url, kek) == texts
    again = RewrapReport()
    fresh = TransitKek(openbao.client(rewrap_token(openbao, settings)), settings.mount, "content")
    rewrap_keys(engine, fresh, again)
    engine.dispose()
    assert (again.rewrapped, again.current, again.changed) == (3, 2, 0)
    assert {transit_version(w) for w in stored_keys(admin_url).values()} == {2}
    assert readable(url, kek) == texts


def test_without_rights_or_vault_nothing_is_written_and_the_error_names_the_key(
    openbao: Vault,  # noqa: F811
    sealed_store: Postgres | str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, token, url, admin_url, _, _ = rotated(openbao, sealed_store)
    before = stored_keys(admin_url)
    kek = f"vault:{settings.mount}/{settings.key}"
    cli = (tmp_path, monkeypatch, capsys, admin_url, vault_settings(openbao, settings))

    # The services' token (encrypt / decrypt only) may not rewrap.
    code, out, err = rewrap_cli(*cli, token)
    assert (code, out) == (1, "")
    assert err.startswith(f"aiaudit content-keys rewrap: Vault at {openbao.addr}: Transit key ")
    assert f"{kek} rewrap of 5 data key(s): Forbidden" in err and "permission denied" in err
    assert "0 key(s) were rewrapped before it" in err
    assert "vault:v1:" not in err and stored_keys(admin_url) == before

    dead = f"http://127.0.0.1:{free_port()}"
    code, out, err = rewrap_cli(*cli, rewrap_token(openbao, settings), "--vault-addr", dead)
    assert (code, out) == (1, "")
    assert f"Vault at {dead}: Transit key {kek} rewrap of 5 data key(s): Vault unreachable" in err
    assert stored_keys(admin_url) == before

    plain = "http://vault.example:8200"  # the token would cross the network in clear
    code, out, err = rewrap_cli(*cli, rewrap_token(openbao, settings), "--vault-addr", plain)
    assert (code, out) == (2, "") and "--vault-addr" in err and plain in err

    file_kek = {**vault_settings(openbao, settings), "content_keys": "file"}
    code, out, err = rewrap_cli(
        tmp_path, monkeypatch, capsys, admin_url, file_kek, rewrap_token(openbao, settings)
    )
    assert (code, out) == (2, "")
    assert "setting 'content_keys' is 'file', not 'vault'" in err

    if isinstance(sealed_store, Postgres):  # the services' login may not UPDATE content_keys
        cli = (tmp_path, monkeypatch, capsys, url, vault_settings(openbao, settings))
        code, out, err = rewrap_cli(*cli, rewrap_token(openbao, settings))
        assert (code, out) == (1, "")
        assert "permission denied for table content_keys" in err
        assert "run it as the database's administrator" in err
        assert stored_keys(admin_url) == before


def test_a_damaged_key_is_named_and_the_others_are_rewrapped(
    openbao: Vault,  # noqa: F811
    sealed_store: Postgres | str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings, _, _, admin_url, _, _ = rotated(openbao, sealed_store)
    engine = sa.create_engine(admin_url)
    with engine.begin() as conn:
        key_id, wrapped = conn.execute(
            sa.select(content_keys.c.key_id, content_keys.c.wrapped).where(
                content_keys.c.subject == "bob"
            )
        ).one()
        altered = tampered(bytes(wrapped))
        conn.execute(
            sa.update(content_keys).where(content_keys.c.key_id == key_id).values(wrapped=altered)
        )
    engine.dispose()
    cli = (tmp_path, monkeypatch, capsys, admin_url, vault_settings(openbao, settings))
    code, out, err = rewrap_cli(*cli, rewrap_token(openbao, settings))
    assert code == 1
    report = json.loads(out)
    assert (report["rewrapped"], report["damaged"], report["damaged_key_ids"]) == (4, 1, [key_id])
    assert report["behind"] == 0  # under version 1 too, but a run again would change nothing
    assert "1 data key(s) of" in err and "did not rewrap" in err and "behind" not in err
    after = stored_keys(admin_url)
    assert after["bob"] == altered  # left as it was
    assert {transit_version(w) for s, w in after.items() if s != "bob"} == {2}


def test_a_key_stored_where_the_run_has_passed_is_counted_behind(
    openbao: Vault,  # noqa: F811
    sealed_store: Postgres | str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A replica stores a key it wrapped before the rotation while the run reads, under a
    key id the pages have passed: the run cannot rewrap it, so it ends by counting the keys
    still behind, says so (exit 1), and the next run takes it. Until 2026-12-07 the run
    reported every key rewrapped, and retiring version 1 as it said lost that content."""
    settings, _, _, admin_url, kek, _ = rotated(openbao, sealed_store)
    under_v1 = stored_keys(admin_url)["alice"]
    engine = sa.create_engine(admin_url)
    pages: list[int] = []
    real_page = rewrap._rewrap_page

    def page_then_a_late_key(*args: object) -> None:
        real_page(*args)  # type: ignore[arg-type]
        pages.append(1)
        if len(pages) == 2:  # key id 0: below every page still to come
            with engine.begin() as conn:
                conn.execute(
                    sa.insert(content_keys).values(
                        key_id=0,
                        log_id="t",
                        subject="late",
                        kek=kek.name,
                        wrapped=under_v1,
                        create_time=dt.datetime.now(dt.UTC),
                    )
                )

    monkeypatch.setattr(rewrap, "_rewrap_page", page_then_a_late_key)
    cli = (tmp_path, monkeypatch, capsys, admin_url, vault_settings(openbao, settings))
    code, out, err = rewrap_cli(*cli, rewrap_token(openbao, settings), "--page-size", "2")
    engine.dispose()
    assert code == 1
    report = json.loads(out)
    assert (report["rewrapped"], report["damaged"], report["behind"]) == (5, 0, 1)
    assert err == (
        f"aiaudit content-keys rewrap: 1 data key(s) of {kek.name} are still under a version "
        "older than 2 (stored during this run): run it again; retire no version before a run "
        'reports "behind": 0\n'
    )
    monkeypatch.setattr(rewrap, "_rewrap_page", real_page)
    code, out, _ = rewrap_cli(*cli, rewrap_token(openbao, settings))
    again = json.loads(out)
    assert (code, again["rewrapped"], again["current"], again["behind"]) == (0, 1, 5, 0)
    assert {transit_version(w) for w in stored_keys(admin_url).values()} == {2}


def test_a_page_size_out_of_bounds_is_refused_naming_the_flag(
    openbao: Vault,  # noqa: F811
    sealed_store: Postgres | str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A page is one transaction, held in memory: at most 10,000 keys (until 2026-12-07 any
    size was sent, and held in memory at once)."""
    settings, _, _, admin_url, _, _ = rotated(openbao, sealed_store, ["alice"])
    before = stored_keys(admin_url)
    cli = (tmp_path, monkeypatch, capsys, admin_url, vault_settings(openbao, settings))
    for size in (0, -1, MAX_PAGE_SIZE + 1, 10**9):
        code, out, err = rewrap_cli(*cli, rewrap_token(openbao, settings), "--page-size", str(size))
        assert (code, out) == (2, "")
        assert err.startswith(
            f"aiaudit: configuration error: --page-size {size}: from 1 to {MAX_PAGE_SIZE} "
        )
    assert stored_keys(admin_url) == before
    operator = TransitKek(
        openbao.client(rewrap_token(openbao, settings)), settings.mount, settings.key
    )
    engine = sa.create_engine(admin_url)
    with pytest.raises(ValueError, match=f"page size {MAX_PAGE_SIZE + 1}: from 1 to"):
        rewrap_keys(engine, operator, RewrapReport(), MAX_PAGE_SIZE + 1)
    engine.dispose()
    assert stored_keys(admin_url) == before
    code, out, _ = rewrap_cli(
        *cli, rewrap_token(openbao, settings), "--page-size", str(MAX_PAGE_SIZE)
    )
    assert (code, json.loads(out)["rewrapped"]) == (0, 1)


def test_bootstrap_writes_a_rewrap_policy_that_can_do_nothing_else(openbao: Vault) -> None:  # noqa: F811
    settings, _ = bootstrapped(openbao)
    admin = openbao.client()
    rules = admin.sys.read_policy(settings.rewrap_policy_name)["data"]["rules"]
    assert rules == rewrap_policy(settings.mount, settings.key)
    assert rules.count("path ") == 1 and f'"{settings.mount}/rewrap/{settings.key}"' in rules
    kek = TransitKek(admin, settings.mount, settings.key)
    (wrapped,) = kek.wrap([b"k" * 32])
    operator = openbao.client(rewrap_token(openbao, settings)).secrets.transit
    where = {"name": settings.key, "mount_point": settings.mount}
    assert operator.rewrap_data(ciphertext=wrapped.decode(), **where)["data"]["ciphertext"]
    with pytest.raises(hvac.exceptions.Forbidden):
        operator.decrypt_data(ciphertext=wrapped.decode(), **where)
    with pytest.raises(hvac.exceptions.Forbidden):
        operator.encrypt_data(plaintext="AAAA", **where)
    with pytest.raises(hvac.exceptions.Forbidden):
        operator.read_key(**where)
    with pytest.raises(hvac.exceptions.Forbidden):
        operator.rotate_key(**where)
