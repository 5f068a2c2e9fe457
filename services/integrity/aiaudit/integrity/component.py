"""The integrity component: the notary worker plus IntegrityService handlers.

Every replica serves reads; only the replica holding the database lock
integrates and signs (see ``leader``). The notary looks at the log once a
poll interval (by default a second, as often as it signs): being woken by
every commit could not make it integrate sooner, only cost a thread wake-up
per commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import hvac
import sqlalchemy as sa
from grpc_health.v1 import health_pb2

from aiaudit.common import leader
from aiaudit.common.component import Context
from aiaudit.common.config import Settings
from aiaudit.common.keys import configured
from aiaudit.common.receipts import ReceiptSigning
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.integrity import handlers, storage
from aiaudit.integrity import settings as integrity_settings
from aiaudit.integrity.notary import CONSUMER, Notary, NotaryConfig
from aiaudit.integrity.receipts import ReceiptNotary
from aiaudit.integrity.settings import IntegritySettings
from aiaudit.integrity.signers import FileKeys, KeySource, TransitKeys, WithFormer

log = logging.getLogger(__name__)


@dataclass
class Integrity:
    """Running integrity service."""

    notary: Notary
    store: SqlEventStore
    owns_store: bool
    receipts: ReceiptSigning
    reads: sa.Engine
    service_names: list[str] = field(default_factory=lambda: [handlers.SERVICE_NAME])

    def stop(self) -> None:
        """Withdraws the receipt signer, stops the notary (releasing leadership) and its pool."""
        self.receipts.install(None)
        self.notary.stop()
        if self.reads.dialect.name != "sqlite":  # else the store's own pool, closed below
            self.reads.dispose()
        if self.owns_store:
            self.store.close()


def vault_client(s: IntegritySettings, env: dict[str, str]) -> hvac.Client:
    """An hvac client for the configured Vault, with the notary's token."""
    return configured.vault_client(
        s.vault_addr, s.vault_token_file, env, s.vault_timeout, "integrity.vault_token_file"
    )


def key_source(settings: Settings, s: IntegritySettings) -> KeySource:
    """The configured checkpoint key, trusting the keys it replaced."""
    keys: KeySource
    if s.signer == "vault":
        keys = TransitKeys(
            vault_client(s, settings.env), s.vault_mount, s.vault_key, s.note_key_name
        )
    else:
        keys = FileKeys(s.note_key_name, integrity_settings.key_file(settings, s))
    # The file key is read here; Vault's are asked for only once serving (a collision
    # with one of them needs a preimage of a key Vault made).
    current = keys.verifier_keys() if isinstance(keys, FileKeys) else []
    former = integrity_settings.former_verifier_keys(s, current)
    return WithFormer(keys, former) if former else keys


def notary_config(settings: Settings, s: IntegritySettings) -> NotaryConfig:
    """The notary's settings."""
    return NotaryConfig(
        origin_prefix=s.origin_prefix,
        checkpoint_dir=Path(integrity_settings.checkpoint_dir(settings, s)),
        checkpoint_interval=s.checkpoint_interval,
        poll_interval=s.poll_interval,
        batch_size=s.batch_size,
    )


def start(ctx: Context) -> Integrity:
    """Registers IntegrityService and starts the notary."""
    s = integrity_settings.load(ctx.settings)
    keys = key_source(ctx.settings, s)
    own = bool(s.database_url)
    store = open_store(s.database_url, keys=ctx.store.keys) if own else ctx.store
    notary = Notary(
        store.engine,
        keys,
        leader.for_engine(store.engine, leader.NOTARY),
        notary_config(ctx.settings, s),
        on_health=lambda ok: ctx.health.set(
            handlers.SERVICE_NAME,
            health_pb2.HealthCheckResponse.SERVING
            if ok
            else health_pb2.HealthCheckResponse.NOT_SERVING,
        ),
    )
    # Ingest in this process signs receipts with the checkpoint key (no network hop).
    ctx.receipts.install(ReceiptNotary(keys, s.origin_prefix))
    reads = handlers.read_engine(store)
    handlers.add_to_server(
        ctx.server,
        handlers.IntegrityHandlers(
            store,
            reads,
            keys,
            ctx.auth,
            ctx.access,
            s.origin_prefix,
            s.classification_required_time,
            Path(integrity_settings.checkpoint_dir(ctx.settings, s)),
        ),
    )
    with store.engine.connect() as conn:
        missing = storage.missing_privileges(conn)
    if missing:
        # A login without the aiaudit_notary role (e.g. the ingest writer): say so once.
        log.error(
            "notary not started: the database login lacks %s; set integrity.database_url "
            "to a login granted aiaudit_notary",
            ", ".join(missing),
        )
        ctx.health.set(handlers.SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
    else:
        notary.start()
    ctx.lag.watch(CONSUMER, store)
    return Integrity(notary, store, own, ctx.receipts, reads)
