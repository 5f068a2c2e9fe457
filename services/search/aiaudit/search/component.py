"""The search component: the indexer thread plus SearchService handlers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from grpc_health.v1 import health_pb2

from aiaudit.common import leader
from aiaudit.common.component import Context
from aiaudit.common.config import ConfigError, local_target, section
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.stream_slots import StreamSlots
from aiaudit.search import handlers
from aiaudit.search.backends.base import SearchBackend
from aiaudit.search.indexer import Indexer
from aiaudit.search.integrity_client import IntegrityClient
from aiaudit.search.settings import SearchSettings
from aiaudit.search.v1 import search_service_pb2_grpc as pb_grpc


@dataclass
class Search:
    """Running search."""

    indexer: Indexer
    backend: SearchBackend
    own_store: SqlEventStore | None
    integrity: IntegrityClient | None
    service_names: list[str] = field(default_factory=lambda: [handlers.SERVICE_NAME])

    def stop(self) -> None:
        """Stops the indexer, then closes the backend, the integrity channel and the store."""
        self.indexer.stop()
        self.backend.close()
        if self.integrity is not None:
            self.integrity.close()
        if self.own_store is not None:
            self.own_store.close()


def open_backend(s: SearchSettings, ctx: Context, store: SqlEventStore) -> SearchBackend:
    """The backend the settings choose."""
    if s.backend == "opensearch":
        from aiaudit.search.backends.opensearch import OpenSearchBackend, connect

        client = connect(
            s.urls,
            s.opensearch_username,
            s.opensearch_password,
            str(s.opensearch_ca_file) if s.opensearch_ca_file else None,
            s.opensearch_verify_certs,
            s.opensearch_timeout,
        )
        backend = OpenSearchBackend(
            client,
            store.engine,
            s.index_prefix,
            s.refresh_interval,
            retention_days=s.retention_days,
        )
        backend.check_at_start()  # another prefix's overlapping template: ConfigError
        return backend
    from aiaudit.search.backends.sqlite_fts import SqliteFtsBackend

    return SqliteFtsBackend(s.sqlite_path or ctx.settings.data_dir / "search.db")


def start(ctx: Context) -> Search:
    """Opens the backend, starts the indexer, registers SearchService."""
    s = section(ctx.settings, "search", SearchSettings)
    s.validate(ctx.settings.allow_insecure)
    channel = integrity_channel(s, ctx)  # refused before anything is opened or started
    own = open_store(s.database_url, pool_size=4, keys=ctx.store.keys) if s.database_url else None
    store = own or ctx.store
    backend = open_backend(s, ctx, store)

    def report(serving: bool) -> None:
        state = health_pb2.HealthCheckResponse.SERVING
        if not serving:
            state = health_pb2.HealthCheckResponse.NOT_SERVING
        ctx.health.set(handlers.SERVICE_NAME, state)

    indexer = Indexer(
        store,
        backend,
        s.batch_size,
        s.poll_interval,
        s.max_backoff,
        report,
        s.retention_days,
        s.retention_sweep_interval,
        s.wake_linger,
        # One indexer at a time into the shared OpenSearch; the embedded index is this process's.
        leader.for_engine(store.engine, Indexer.leader_job(s.index_prefix))
        if s.backend == "opensearch"
        else None,
    )
    indexer.watch(ctx.store.engine)
    indexer.start()
    ctx.lag.watch(consumer_name(s), store, lambda _conn: backend.positions())
    integrity = None
    if channel is not None:
        integrity = IntegrityClient(
            channel.target, channel.ca_file, s.integrity_timeout, channel.identity
        )
    pb_grpc.add_SearchServiceServicer_to_server(  # type: ignore[no-untyped-call]
        handlers.SearchHandlers(
            ctx,
            store,
            backend,
            indexer,
            s.export_wait,
            StreamSlots("Export", s.max_export_streams, s.max_export_streams_per_caller),
            integrity,
            s.proof_wait,
        ),
        ctx.server,
    )
    return Search(indexer, backend, own, integrity)


def consumer_name(s: SearchSettings) -> str:
    """The indexer as a consumer of the log, as the lag gauges name it.

    Into OpenSearch, its store cursor (one per index prefix); the embedded index
    keeps its positions in its own file and takes the default prefix's name.
    """
    if s.backend != "opensearch":
        return "search-indexer"
    from aiaudit.search.backends.opensearch import cursor_name  # opensearch-py

    return cursor_name(s.index_prefix)


@dataclass(frozen=True)
class IntegrityChannel:
    """Where search calls IntegrityService, and with which TLS files (no CA file: plaintext)."""

    target: str
    ca_file: Path | None
    identity: tuple[Path, Path] | None


def integrity_channel(s: SearchSettings, ctx: Context) -> IntegrityChannel | None:
    """The channel to IntegrityService (this suite's own address unless configured).

    Each call on it forwards the caller's ``authorization`` header: plaintext is
    refused (ConfigError) unless the target is on this host or ``allow_insecure``
    is set, as client commands are. It used to be plaintext whenever this server
    served without TLS, whatever ``search.integrity_address`` named, so every
    caller's key or token crossed the network in clear (review, 2026-12-05).
    """
    target = s.integrity_target(ctx.settings.address)
    if target is None:
        return None
    own = ctx.settings
    ca_file = s.integrity_ca_file
    if ca_file is None and own.tls_cert_file is not None:
        ca_file = own.tls_client_ca_file or own.tls_cert_file
    if ca_file is None and not local_target(target) and not own.allow_insecure:
        raise ConfigError(
            f"setting 'search.integrity_address': {target} is another host and the channel "
            "would be plaintext, carrying every caller's API key or token in clear; set "
            "search.integrity_ca_file (the integrity service's CA), serve with tls_cert_file, "
            "or set allow_insecure=true for a trusted network"
        )
    identity = None
    if own.tls_client_ca_file is not None and own.tls_cert_file and own.tls_key_file:
        identity = (own.tls_cert_file, own.tls_key_file)  # mTLS: present our own certificate
    return IntegrityChannel(target, ca_file, identity)
