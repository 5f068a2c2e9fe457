"""The alerting component: rule engine, sink deliverer and AlertingService on the shared server."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from grpc_health.v1 import health_pb2

from aiaudit.alerting import handlers
from aiaudit.alerting.engine import CONSUMER, Engine, EngineThread
from aiaudit.alerting.model import Alert
from aiaudit.alerting.rulebook import RuleBook
from aiaudit.alerting.rules import RuleSyntaxError
from aiaudit.alerting.service import AlertingService, Changes
from aiaudit.alerting.settings import AlertingSettings
from aiaudit.alerting.sinks import Deliverer, SinkConfig, alert_json
from aiaudit.alerting.store import AlertStore
from aiaudit.common import commits
from aiaudit.common.component import Context
from aiaudit.common.config import ConfigError, section
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.store.prepare import prepare
from aiaudit.common.stream_slots import StreamSlots
from aiaudit.common.v1 import event_pb2


@dataclass
class Alerting:
    """Running alerting."""

    engine: EngineThread
    deliverers: list[Deliverer]
    """One per configured sink: a sink that does not answer holds up no other."""
    service: AlertingService
    own_store: SqlEventStore | None
    unwatch: Callable[[], None]
    service_names: list[str] = field(default_factory=lambda: [handlers.SERVICE_NAME])

    def wake(self) -> None:
        """New events were committed."""
        self.engine.wake()

    def stop(self) -> None:
        """Finishes the current batch and delivery, then releases the connection pool."""
        self.unwatch()
        self.engine.stop()
        for deliverer in self.deliverers:
            deliverer.stop()
        if self.own_store is not None:
            self.own_store.close()


def start(ctx: Context) -> Alerting:
    """Starts the engine and the deliverer and registers AlertingService."""
    s = section(ctx.settings, "alerting", AlertingSettings)
    s.validate(ctx.settings.allow_insecure)
    own = open_store(s.database_url, keys=ctx.store.keys) if s.database_url else None
    events = own or ctx.store
    store = AlertStore(events.engine)
    try:
        book = RuleBook(store, s.default_rules, tuple(Path(p) for p in s.rules_files))
    except RuleSyntaxError as exc:
        raise ConfigError(f"setting alerting.rules_files: {exc}") from None
    changes = Changes()
    sinks = SinkConfig(
        s.webhook_url, s.webhook_secret, s.syslog_address, s.webhook_timeout,
        s.max_attempts, s.retry_base, s.syslog_tls,
    )  # fmt: skip
    deliverers = [Deliverer(store.engine, sinks, sink=name) for name in sinks.sinks]

    def changed(_alerts: list[Alert]) -> None:
        changes.notify()
        for deliverer in deliverers:
            deliverer.wake()

    def health(ok: bool) -> None:
        ctx.health.set(
            handlers.SERVICE_NAME,
            health_pb2.HealthCheckResponse.SERVING
            if ok
            else health_pb2.HealthCheckResponse.NOT_SERVING,
        )

    engine = EngineThread(
        Engine(
            events,
            store,
            book,
            s.sinks,
            s.batch_size,
            alert_json,
            changed,
            window_save_events=s.window_save_events,
            handover_seconds=s.handover_seconds,
        ),
        s.poll_interval,
        health,
    )
    # As the suite's login (no alerting.database_url) a rule change is recorded in the rule
    # write's transaction; a login in aiaudit_alerting may not write the log: the suite's
    # store commits the record (on SQLite the service always records in the transaction).
    record = _recorder(ctx.store) if own is not None else None
    service = AlertingService(events, store, book, changes, record, s.watch_interval)
    handlers.add_to_server(
        ctx.server,
        handlers.AlertingHandlers(
            service,
            ctx.auth,
            ctx.access,
            StreamSlots("WatchAlerts", s.max_watch_streams, s.max_watch_streams_per_caller),
        ),
    )
    # Ingest commits through the suite's engine: evaluate at once instead of at the next poll.
    unwatch = commits.on_commit(ctx.store.engine, engine.wake)
    engine.start()
    ctx.lag.watch(CONSUMER, events)
    for deliverer in deliverers:
        deliverer.start()
    return Alerting(engine, deliverers, service, own, unwatch)


def _recorder(store: SqlEventStore) -> Callable[[event_pb2.Event], None]:
    """Rule changes go to the tenant's log through the suite's (writer) store.

    The service calls it under the tenant's head lock, before the rule write commits.
    """

    def record(event: event_pb2.Event) -> None:
        store.append_group([[prepare(event, dt.datetime.now(dt.UTC))]])

    return record
