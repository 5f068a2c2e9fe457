"""One gRPC server hosting the configured services, with health and reflection."""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from aiaudit.cli.health_port import HealthPort
from aiaudit.cli.health_servicer import Health
from aiaudit.common import collector, wrapping
from aiaudit.common.access import AccessLog
from aiaudit.common.auth import Authenticator
from aiaudit.common.caller_share import CallerShare, calls_per_caller
from aiaudit.common.component import Component, Context, Stopping
from aiaudit.common.config import (
    ConfigError,
    Settings,
    require_authentication,
    require_sealed_content,
    require_tls,
)
from aiaudit.common.consumer_lag import ConsumerLag
from aiaudit.common.credential_gate import CredentialGate
from aiaudit.common.keys import configured
from aiaudit.common.request_parsing import RequestParsing
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.stream_slots import ProcessStreams, StreamSlots
from aiaudit.common.telemetry import Telemetry, configure
from aiaudit.common.tls import ClientNames, ServerCertificates, TlsFilesError

log = logging.getLogger(__name__)

COMPONENTS = {
    "ingest": "aiaudit.ingest.component",
    "integrity": "aiaudit.integrity.component",
    "search": "aiaudit.search.component",
    "alerting": "aiaudit.alerting.component",
}
"""Service name -> module with ``start(ctx) -> Component``, in start order."""


@dataclass
class Suite:
    """The running server and what it owns."""

    server: grpc.Server
    port: int
    store: SqlEventStore
    components: dict[str, Component]
    health: health.HealthServicer
    telemetry: Telemetry
    health_server: HealthPort | None = None
    stopping: Stopping = dataclasses.field(default_factory=Stopping)
    """Where the components learn when :meth:`stop` cancels the calls in flight."""
    share: CallerShare | None = None
    """Each principal's calls in progress, against its share of the threads (None: dev mode)."""
    lag: ConsumerLag | None = None
    """The consumers' lag gauges, silenced before the components stop."""
    rpc_threads: futures.ThreadPoolExecutor | None = None
    """The server's RPC threads, ended by :meth:`stop` (grpcio leaves them to their owner)."""

    def stop(self, grace: float = 5.0) -> None:
        """Stops taking calls, lets in-flight ones finish, then stops components and the store.

        Calls still in flight after ``grace`` s are cancelled; the components
        learn of that deadline first (:class:`Stopping`): what a call waits on
        without a limit gives up before it, so that the call is answered.
        """
        self.stopping.begin(time.monotonic() + grace)
        self.health.enter_graceful_shutdown()
        if self.health_server is not None:
            self.health_server.stop()
        self.server.stop(grace).wait()
        if self.rpc_threads is not None:
            # Idle threads end at once, one still in a handler once it returns. Left alone,
            # every suite a process started and stopped (a test run starts hundreds) kept its own.
            self.rpc_threads.shutdown(wait=False)
        if self.lag is not None:
            self.lag.close()
        for component in reversed(self.components.values()):
            component.stop()
        self.store.close()
        self.telemetry.shutdown()


REFLECTION_STREAMS = 4
"""``ServerReflectionInfo`` streams open at once in a process (``grpcurl`` opens one a call)."""
REFLECTION_STREAMS_PER_CALLER = 2
HEALTH_WATCHES = 512
"""``grpc.health.v1.Health/Watch`` streams open at once in a process.

A watch holds no RPC thread (:mod:`aiaudit.cli.health_servicer` answers it from a
callback), only memory: about 22 KB on the server, so 512 take about 11 MB. gRPC's
client-side health checking opens one per connection of each client channel, and a fleet
may share one key."""
HEALTH_WATCHES_PER_CALLER = 128
"""A fleet of 128 client channels on one key, each with a connection to this process; a
quarter of the process's watches, so three other callers always find room."""

_REFLECTION = ("ServerReflectionInfo", "REFLECTION_STREAMS_EXHAUSTED", "close one")
_WATCH = ("Health/Watch", "HEALTH_WATCHES_EXHAUSTED", "close one, or call Check")


class ServiceStreams(wrapping.BehaviourWrapper):
    """Caps the streams of reflection and health, like the services' own (:class:`StreamSlots`).

    Each open ``ServerReflectionInfo`` holds one of the server's RPC threads: uncapped,
    64 reflection streams of an ``auditor`` key took every thread, and a gateway's unary
    ``Append`` timed out (review, 2026-12-06). They are counted in the process's
    :data:`aiaudit.common.stream_slots.CEILING` with the services' streams, per process
    and per principal; one more is refused ``RESOURCE_EXHAUSTED``. A ``Health/Watch``
    holds no thread (a non-blocking behaviour, :mod:`aiaudit.cli.health_servicer`, its
    mark kept by every wrapper): its caps, apart from that ceiling, bound memory only.
    Installed after the credential gate: every call that reaches it names a known caller.
    """

    def __init__(self, auth: Authenticator) -> None:
        """``auth``: the gate's authenticator, naming the principal a slot is counted for."""
        super().__init__()
        self._auth = auth
        reflection_slots = StreamSlots(
            _REFLECTION[0], REFLECTION_STREAMS, REFLECTION_STREAMS_PER_CALLER
        )
        watch_slots = StreamSlots(
            _WATCH[0], HEALTH_WATCHES, HEALTH_WATCHES_PER_CALLER, ProcessStreams(HEALTH_WATCHES)
        )
        self._capped = {
            f"/{reflection.SERVICE_NAME}/ServerReflectionInfo": (reflection_slots, _REFLECTION),
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": (
                reflection_slots,
                _REFLECTION,
            ),
            f"/{health.SERVICE_NAME}/Watch": (watch_slots, _WATCH),
        }

    def applies(self, method: str, handler: wrapping.Handler) -> bool:
        """Reflection's and health's streams."""
        return method in self._capped and handler.response_streaming

    def wrap(self, handler: wrapping.Handler, method: str) -> wrapping.Handler:
        """The handler holding a slot of the method's while the stream is open."""
        slots, (_, reason, advice) = self._capped[method]
        serve = wrapping.behaviour(handler)
        auth = self._auth

        def capped(request: Any, context: grpc.ServicerContext, *more: Any) -> Any:
            # The slot is held until the call ends: by its client (cancelled, half-closed),
            # its deadline, the server stopping (every call cancelled), or its last answer.
            # grpcio's callback says so once it has ended; a blocking stream's last answer,
            # before its status is sent, so that its client may open the next at once. A
            # non-blocking Watch (``more``: its send_response_callback) has returned long
            # before its end.
            principal = auth.authenticate(context).principal
            slots.take_or_abort(context, principal, reason, advice)
            give_back = _once(lambda: slots.give_back(principal))
            if not context.add_callback(give_back):
                give_back()  # the call has ended already
            answers = serve(request, context, *more)
            return answers if more else _then(answers, give_back)

        return wrapping.rewrapped(handler, capped)


def _once(action: Callable[[], None]) -> Callable[[], None]:
    """A function doing ``action`` the first time it is called, from whichever thread."""
    pending = [action]
    lock = threading.Lock()

    def first() -> None:
        with lock:
            todo = pending.pop() if pending else None
        if todo is not None:
            todo()

    return first


def _then(answers: Iterable[Any], done: Callable[[], None]) -> Iterator[Any]:
    """``answers``, then ``done`` (also when the stream is closed before its end)."""
    try:
        yield from answers
    finally:
        done()


def _certificates(s: Settings) -> ServerCertificates | None:
    """The server's TLS files; None (plaintext) only when neither is set.

    One without the other is refused here too, not only by ``config.load``:
    Settings built another way, or a check lost from the loader (it was, for
    some hours on 2026-12-05), served plaintext where TLS was asked for.
    """
    if (s.tls_cert_file is None) != (s.tls_key_file is None):
        given, missing = (
            ("tls_cert_file", "tls_key_file")
            if s.tls_key_file is None
            else ("tls_key_file", "tls_cert_file")
        )
        raise ConfigError(
            f"settings 'tls_cert_file' and 'tls_key_file' must be set together: {given} is "
            f"set and {missing} is not (the port would serve plaintext)"
        )
    if s.tls_cert_file is None or s.tls_key_file is None:
        return None
    try:
        return ServerCertificates(s.tls_cert_file, s.tls_key_file, s.tls_client_ca_file)
    except TlsFilesError as exc:
        raise ConfigError(
            f"settings 'tls_cert_file'/'tls_key_file'/'tls_client_ca_file': {exc}"
        ) from None


def _client_names(settings: Settings, chosen: tuple[str, ...]) -> list[ClientNames]:
    """The check of integrity's callers' certificates (``integrity.client_names``), if any.

    An interceptor: the server takes them when it is built, before the components start.
    """
    if "integrity" not in chosen:
        return []
    from aiaudit.integrity import handlers as integrity_handlers
    from aiaudit.integrity import settings as integrity_settings

    names = integrity_settings.load(settings).client_names
    if not names:
        return []
    return [ClientNames(integrity_handlers.SERVICE_NAME, names, "integrity.client_names")]


def _data_dir(path: Path) -> None:
    """The embedded data directory: made 0700; a WARNING if one that exists is open to others.

    It holds the store, the search index (content as plain text), the content
    KEK and the notary key. Made under the usual umask it was 0755 (review,
    2026-12-05). One that exists is left as its owner set it (a group may be
    meant to read backups), but each start says so. A path that is a file, or
    that cannot be made, is a bad setting: exit 2 naming it, not ``[Errno 17]``.
    """
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"setting 'data_dir': {path} exists and is not a directory") from None
    except OSError as exc:
        raise ConfigError(
            f"setting 'data_dir': cannot make the directory {path}: {exc.strerror or exc}"
        ) from None
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning(
            "data_dir is open to other users: chmod 700 it (its database files are 0600)",
            extra={"data_dir": str(path), "mode": oct(mode)},
        )


def keepalive_options(s: Settings) -> list[tuple[str, int]]:
    """HTTP/2 keepalive of the server's connections, and the pings it takes from clients.

    The server pings every connection each ``keepalive_time_seconds`` (with
    calls or without, however quiet the stream) and closes one whose ping is
    unanswered after ``keepalive_timeout_seconds``: its calls are cancelled, so
    a long stream of a client that vanished without a FIN or RST (a NAT that
    dropped its mapping, a cut network) ends and gives back its slot. Without
    it gRPC waits for TCP, about two hours: four vanished ``WatchAlerts`` of
    one principal refused its every new watch that long (review, 2026-12-05).
    gRPC bounds the unanswered ping by ``grpc.http2.ping_timeout_ms`` (one
    minute by default), not by ``grpc.keepalive_timeout_ms`` alone: both are set.

    Clients may ping as often as ``keepalive_min_client_ping_seconds``, with
    calls or without. gRPC's defaults are 5 minutes, and 2 hours without
    calls: under them a client pinging a quiet watch every 20 s (grpc-go's
    ``keepalive.ClientParameters``, say) is sent GOAWAY ``too_many_pings`` at
    its fourth ping, and the watch ends ``UNAVAILABLE``.
    """
    timeout = int(s.keepalive_timeout_seconds * 1000)
    return [
        ("grpc.keepalive_time_ms", int(s.keepalive_time_seconds * 1000)),
        ("grpc.keepalive_timeout_ms", timeout),
        ("grpc.http2.ping_timeout_ms", timeout),
        ("grpc.http2.max_pings_without_data", 0),  # a quiet stream is pinged all the same
        ("grpc.keepalive_permit_without_calls", 1),
        (
            "grpc.http2.min_ping_interval_without_data_ms",
            int(s.keepalive_min_client_ping_seconds * 1000),
        ),
    ]


def start(settings: Settings, shared_port: bool = False) -> Suite:
    """Opens the store (migrating the embedded one), starts the components, serves.

    ``shared_port``: this process is one of ``workers`` on the same port
    (SO_REUSEPORT). Otherwise the port is its own: gRPC sets SO_REUSEPORT by
    default, and a second ``serve`` on a port in use started and took half of
    the connections into another store.
    """
    require_tls(settings)
    require_authentication(settings)
    require_sealed_content(settings)
    certificates = _certificates(settings)  # before anything is opened that must be closed
    chosen = settings.services or tuple(COMPONENTS)
    unknown = sorted(set(chosen) - set(COMPONENTS))
    if unknown:
        raise ConfigError(f"setting 'services': unknown {unknown}; known: {sorted(COMPONENTS)}")
    client_names = _client_names(settings, chosen)  # outermost: the certificate comes first
    try:
        telemetry = configure(os.environ)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if settings.embedded:
        _data_dir(settings.data_dir)
    auth = Authenticator.from_settings(settings)
    store = open_store(
        settings.store_url, run_migrations=settings.embedded, keys=configured.keyring(settings)
    )
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", int(shared_port)),
        *keepalive_options(settings),
    ]
    gate = [] if auth.dev_mode else [CredentialGate(auth)]  # before a call takes a thread
    # Then each principal's calls are counted against its share of the threads (in dev mode
    # every caller is one principal: not counted).
    share = (
        None
        if auth.dev_mode
        else CallerShare(
            auth,
            calls_per_caller(settings.caller_thread_share, settings.rpc_threads),
            f"caller_thread_share {settings.caller_thread_share:g} of rpc_threads "
            f"{settings.rpc_threads}",
        )
    )
    # Then reflection's and health's streams are capped (timed and traced, refused or not).
    # Last, so innermost: a request that does not parse is INVALID_ARGUMENT (not grpcio's
    # INTERNAL), for a caller the gate let through, and timed and traced like any other call.
    rpc_threads = futures.ThreadPoolExecutor(
        max_workers=settings.rpc_threads, thread_name_prefix="rpc"
    )
    server = grpc.server(
        rpc_threads,
        interceptors=[
            *client_names,
            *gate,
            *([] if share is None else [share]),
            *telemetry.interceptors,
            ServiceStreams(auth),
            RequestParsing(auth),
        ],
        options=options,
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
    )
    health_servicer = Health()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    try:
        if certificates is None:
            port = server.add_insecure_port(settings.address)
        else:
            port = server.add_secure_port(settings.address, certificates.credentials())
    except RuntimeError:  # what grpcio raises when the bind fails
        port = 0
    if port == 0:
        store.close()
        raise OSError(f"cannot bind {settings.address} (in use, or not an address of this host)")
    # Bound before components start, so they can call services of this suite
    # (search calls integrity) at the real address, also when port 0 was asked.
    host = settings.address.rpartition(":")[0]
    stopping = Stopping()
    lag = ConsumerLag(telemetry.meter_provider)
    ctx = Context(
        dataclasses.replace(settings, address=f"{host}:{port}"),
        store,
        server,
        health_servicer,
        auth,
        AccessLog(store),
        tracer_provider=telemetry.tracer_provider,
        stopping=stopping,
        meter_provider=telemetry.meter_provider,
        lag=lag,
    )
    components: dict[str, Component] = {}
    try:
        for name in COMPONENTS:
            if name in chosen:
                components[name] = importlib.import_module(COMPONENTS[name]).start(ctx)
    except BaseException:  # a component refused to start: release the port and the others
        server.stop(None)
        lag.close()
        for component in reversed(components.values()):
            component.stop()
        store.close()
        telemetry.shutdown()
        raise
    services = [n for c in components.values() for n in c.service_names]
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    for name in services:
        if health_servicer.status_of(name) is None:  # a component's own verdict wins
            health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        [*services, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    collector.settle()  # what start-up built, out of the collector's way
    server.start()
    health_server = (
        HealthPort(settings.health_address, health_servicer.status_of, shared_port)
        if settings.health_address
        else None
    )
    log.info(
        "serving",
        extra={
            "address": settings.address,
            "port": port,
            "services": services,
            "store": "sqlite" if settings.embedded else "postgresql",
        },
    )
    return Suite(
        server,
        port,
        store,
        components,
        health_servicer,
        telemetry,
        health_server,
        stopping,
        share,
        lag,
        rpc_threads,
    )
