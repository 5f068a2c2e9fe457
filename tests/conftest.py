"""Shared fixtures: real backends started by the repo's scripts, never mocks.

PostgreSQL is started by scripts/backends/postgres.sh (idempotent), so plain
`pytest` works as well as the README's test command. Every test writes to its
own tenant (its own log), so tests never see each other's events.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import hashlib
import os
import secrets
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
import sqlalchemy as sa
import yaml

from aiaudit.common import client, config
from aiaudit.common.auth import ROLE_PERMISSIONS
from aiaudit.common.store import open_store
from aiaudit.common.store.sql import SqlEventStore
from tests import go_verifier as go
from tests.helpers import store_as_left, wait_until

REPO = Path(__file__).resolve().parents[1]


def _script_env(script: str) -> dict[str, str]:
    out = subprocess.run(
        ["bash", str(REPO / "scripts" / "backends" / script), "start"],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@dataclass(frozen=True)
class Postgres:
    admin_dsn: str
    admin_url: str
    app_url: str
    """A login role granted only aiaudit_writer: what ingest runs as."""
    consumer_url: str
    """A login role granted only aiaudit_consumer: what the search indexer runs as (the notary
    and alerting run as their own roles, members of it)."""
    privacy_url: str
    """A login role granted only aiaudit_privacy: what `aiaudit erase` runs as."""


_TEMPLATES: dict[str, str] = {}
"""Per PostgreSQL server (its DSN): the database migrated once in this process that each
test's database copies. A copy takes ~0.1 s; migrating every new database took ~2 s, and
a few hundred tests take one."""


def _template(base_dsn: str) -> str:
    """The server's migrated template, made on first use (again if the server is new)."""
    name = _TEMPLATES.get(base_dsn)
    with psycopg.connect(base_dsn, autocommit=True) as conn:
        if (
            name is not None
            and conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        ):
            return name
        name = f"aiaudit_template_{uuid.uuid4().hex[:8]}"
        conn.execute(f"CREATE DATABASE {name}")
    url = base_dsn.rsplit("/", 1)[0] + f"/{name}"
    open_store(
        url.replace("postgresql://", "postgresql+psycopg://", 1), run_migrations=True
    ).close()
    with psycopg.connect(base_dsn, autocommit=True) as conn:
        # A copy needs its template without sessions; none may open one from now on.
        conn.execute(f"ALTER DATABASE {name} WITH ALLOW_CONNECTIONS false")
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
    atexit.register(_drop_template, base_dsn, name)
    _TEMPLATES[base_dsn] = name
    return name


def _drop_template(base_dsn: str, name: str) -> None:
    """Drops a template at exit; its server may be gone already (a test's own server)."""
    with (
        contextlib.suppress(psycopg.Error),
        psycopg.connect(base_dsn, autocommit=True, connect_timeout=5) as conn,
    ):
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@contextlib.contextmanager
def _database() -> Iterator[Postgres]:
    """A migrated database of its own with a login per role, dropped (logins too) after."""
    env = _script_env("postgres.sh")
    base_dsn = env["AIAUDIT_TEST_PG_DSN"]
    template = _template(base_dsn)
    db = f"aiaudit_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(base_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db} TEMPLATE {template}")
    admin_dsn = base_dsn.rsplit("/", 1)[0] + f"/{db}"
    admin_url = admin_dsn.replace("postgresql://", "postgresql+psycopg://", 1)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        # Each store's random id (migration alerting_0005 makes it once): one per copy too.
        conn.execute("UPDATE alerting_store SET store_id = %s", (uuid.uuid4().hex,))
    host = admin_dsn.split("@", 1)[1]
    users, urls = [], []
    for role in ("aiaudit_writer", "aiaudit_consumer", "aiaudit_privacy"):
        user, password = f"u_{uuid.uuid4().hex[:8]}", secrets.token_hex(16)
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}' IN ROLE {role}")
        users.append(user)
        urls.append(f"postgresql+psycopg://{user}:{password}@{host}")
    yield Postgres(admin_dsn, admin_url, *urls)
    with psycopg.connect(base_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {db} WITH (FORCE)")
        for user in users:
            conn.execute(f"DROP ROLE IF EXISTS {user}")


SESSION_DATABASES: set[str] = set()
"""Names of the databases many tests share (see ``own_postgres``, :func:`refuse_shared`)."""


@contextlib.contextmanager
def shared_database() -> Iterator[Postgres]:
    """A database for many tests (each writes to its own tenant), known as shared."""
    with _database() as pg:
        SESSION_DATABASES.add(pg.admin_dsn.rsplit("/", 1)[1])
        yield pg


def refuse_shared(url: str, what: str) -> None:
    """Fails the test if ``url`` is a shared database: ``what`` would tail every log there.

    A consumer that starts from the first entry of every log (a new search index)
    would first work through every earlier test's events, and how long that takes
    depends on which tests ran before: two searches waited 30 s in vain behind
    305,000 entries (CI, 2026-12-07).
    """
    if url.startswith("postgresql") and url.rsplit("/", 1)[1] in SESSION_DATABASES:
        raise AssertionError(
            f"{what} on a database other tests share indexes every earlier test's events"
            " first (how long depends on which tests ran before): use own_postgres"
        )


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A database shared by the session's tests (each writes to its own tenant)."""
    with shared_database() as pg:
        yield pg


@pytest.fixture
def own_postgres() -> Iterator[Postgres]:
    """A database of the test's own, for suites whose consumers tail every log of the store.

    The search indexer (and the notary) start from the first entry of every
    log: in the session's database they would first work through every earlier
    test's events, and how long that takes depends on which tests ran before.
    """
    with _database() as pg:
        yield pg


@pytest.fixture(scope="session")
def go_verifier() -> Path:
    """``interop/go-verifier`` built once: the auditor that uses none of our code."""
    return go.build()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
        open_store(url, run_migrations=True).close()
        return url
    pg: Postgres = request.getfixturevalue("postgres")
    return pg.app_url


@pytest.fixture(params=["sqlite", "postgresql"])
def sealed_store(request: pytest.FixtureRequest, tmp_path: Path) -> Postgres | str:
    """A store for tests that seal content under a KEK of their own: its own database.

    In the session's database other tests' consumers (an indexer tails every
    log) would meet rows they hold no KEK for; so would they a log a test
    tampered with (the notary refuses to sign one). SQLite: the URL;
    PostgreSQL: the database with its logins.
    """
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'aiaudit.db'}"
        open_store(url, run_migrations=True).close()
        return url
    pg: Postgres = request.getfixturevalue("own_postgres")
    return pg


def as_role(
    store_url: str, request: pytest.FixtureRequest, url_of: Callable[[Postgres], str]
) -> str:
    """The same store as another login: on PostgreSQL ``url_of`` the session's logins;
    SQLite has no roles, so the store itself."""
    if store_url.startswith("sqlite"):
        return store_url
    return url_of(request.getfixturevalue("postgres"))


@pytest.fixture
def consumer_url(store_url: str, request: pytest.FixtureRequest) -> str:
    """The same store, as the least-privileged role a consumer runs as."""
    return as_role(store_url, request, lambda pg: pg.consumer_url)


@pytest.fixture
def privacy_url(store_url: str, request: pytest.FixtureRequest) -> str:
    """The same store, as the role `aiaudit erase` runs as."""
    return as_role(store_url, request, lambda pg: pg.privacy_url)


@pytest.fixture
def store(store_url: str) -> Iterator[SqlEventStore]:
    s = open_store(store_url)
    yield s
    s.close()


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@dataclass
class Running:
    channel: grpc.Channel
    suite: object
    address: str
    keys: dict[str, str]
    """API key by role name (each on every tenant), to open channels as that role."""

    def as_role(self, role: str) -> grpc.Channel:
        return client.channel(self.address, self.keys[role])


def write_keys(path: Path, tenants: list[str] | None = None) -> dict[str, str]:
    """An api_keys_file with one key per role; returns the plain keys."""
    keys = {role: secrets.token_urlsafe(24) for role in ROLE_PERMISSIONS}
    entries = [
        {
            "id": f"key-{role}",
            "sha256": hashlib.sha256(key.encode()).hexdigest(),
            "principal": f"test-{role}",
            "tenants": tenants or ["*"],
            "roles": [role],
        }
        for role, key in keys.items()
    ]
    path.write_text(yaml.safe_dump({"keys": entries}))
    return keys


def serve_suite(
    tmp_path: Path, config_file: Path | None = None, **overrides: object
) -> tuple[Any, dict[str, str]]:
    """The suite on a free loopback port, with API keys of every role; (suite, keys).

    ``overrides`` go over the defaults here (data in ``tmp_path``); sections go in ``config_file``.
    On PostgreSQL content is stored in clear unless they set ``content_keys``.
    """
    from aiaudit.cli.server import start

    keys = write_keys(tmp_path / "keys.yaml")
    defaults: dict[str, object] = {
        "api_keys_file": tmp_path / "keys.yaml",
        "address": "127.0.0.1:0",
        "data_dir": tmp_path,
    }
    settings = config.load(config_file, env={}, overrides={**defaults, **overrides})
    if not settings.embedded and not settings.content_keys:  # as before serve refused it unset
        settings = dataclasses.replace(settings, content_keys="none")
    return start(settings), keys


@pytest.fixture(params=["sqlite", "postgresql"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A store of its own at head, for a test to set back a revision once it holds rows."""
    with store_as_left(request, tmp_path, "heads", lambda _conn: None) as engine:
        yield engine


def swept_at_start(tmp_path: Path, ingest: dict[str, object]) -> None:
    """Runs the embedded suite with these ``ingest`` settings until its first retention sweep.

    The suite sweeps once at start; the tests then read what that sweep left.
    """
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"ingest": ingest}))
    suite, _ = serve_suite(tmp_path, cfg)
    try:
        sweeper = suite.components["ingest"].retention
        assert sweeper is not None
        wait_until(lambda: sweeper.sweeps >= 1)
    finally:
        suite.stop()


@pytest.fixture
def server(store_url: str, tmp_path: Path) -> Iterator[Running]:
    suite, keys = serve_suite(
        tmp_path,
        database_url=store_url,
        max_batch_events=100,
        max_event_bytes=256 * 1024,
        max_message_bytes=4 * 1024 * 1024,
    )
    address = f"127.0.0.1:{suite.port}"
    channel = client.channel(address, keys["admin"])
    yield Running(channel, suite, address, keys)
    channel.close()
    suite.stop()


def engine_for(url: str) -> sa.Engine:
    return sa.create_engine(url)


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("AIAUDIT_DATABASE_URL", None)
    return env
