"""How far each consumer of the log is behind, as OpenTelemetry gauges an operator alerts on.

The product promises that an event is signed into a checkpoint, searchable and
checked by every rule within about a second. A consumer that falls behind (its
leader lost, OpenSearch or Vault down, a backlog after an outage) breaks that
silently: nothing is lost, the consumer catches up later, and until then
searches miss events and rules fire late. These gauges say so while it lasts:

- ``aiaudit.consumer.lag.entries`` ({entry}): entries past the consumer's
  position, over every log;
- ``aiaudit.consumer.lag.age`` (s): how long ago the oldest of them was
  received (0 when caught up).

Both carry ``aiaudit.consumer`` (``integrity``, ``alerting``, ``search-indexer``
or an indexer's own cursor). Every replica reports them, standbys included: the
figures come from the store, so they grow while no replica leads. They are read
once per metrics export (``OTEL_METRIC_EXPORT_INTERVAL``), a query over the
``logs`` table and one primary-key probe per log behind; with metrics off the
callbacks never run. Both gauges of one export share one measurement.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import sqlalchemy as sa
from opentelemetry import metrics

from aiaudit.common.store import SqlEventStore, cursors
from aiaudit.common.store.cursors import Pending, pending

log = logging.getLogger(__name__)

SHARED_SECONDS = 1.0
"""How long one measurement serves both gauges (an export's callbacks run back to back)."""

CONSUMER = "aiaudit.consumer"
"""The attribute naming the consumer."""


@dataclass(frozen=True)
class Watched:
    """A consumer: its name, the store holding its log, and where its positions are."""

    consumer: str
    store: SqlEventStore
    positions: Callable[[sa.Connection], Mapping[str, int]]


class ConsumerLag:
    """The two gauges over every consumer a component registered with :meth:`watch`."""

    def __init__(self, meter_provider: metrics.MeterProvider) -> None:
        """Creates the gauges (the no-op provider's never call back)."""
        self._lock = threading.Lock()
        self._watched: list[Watched] = []
        self._measured: tuple[float, list[tuple[str, Pending]]] = (float("-inf"), [])
        """When the figures were last measured (monotonic), and what they were."""
        meter = meter_provider.get_meter("aiaudit.consumers")
        meter.create_observable_gauge(
            "aiaudit.consumer.lag.entries",
            [self._entries],
            unit="{entry}",
            description="Log entries the consumer has not processed yet",
        )
        meter.create_observable_gauge(
            "aiaudit.consumer.lag.age",
            [self._age],
            unit="s",
            description="Age of the oldest log entry the consumer has not processed yet",
        )

    def watch(
        self,
        consumer: str,
        store: SqlEventStore,
        positions: Callable[[sa.Connection], Mapping[str, int]] | None = None,
    ) -> None:
        """Reports ``consumer`` over the logs of ``store``.

        ``positions`` reads its position in each log (given a connection to
        ``store``); by default, from the store's cursor of that name.
        """
        read = positions or (lambda conn: cursors.positions(conn, consumer))
        with self._lock:
            self._watched.append(Watched(consumer, store, read))

    def close(self) -> None:
        """Reports nothing more: the consumers and their stores are about to stop.

        The last export, when the server's telemetry shuts down, would otherwise
        open connections to stores already closed.
        """
        with self._lock:
            self._watched.clear()
            self._measured = (float("-inf"), [])

    def _pending(self) -> list[tuple[str, Pending]]:
        """Each consumer's figures, measured once for both gauges of one export.

        The SDK calls the two callbacks one after the other: a measurement younger
        than :data:`SHARED_SECONDS` is the same export's, and is used again.
        """
        with self._lock:
            watched = list(self._watched)
            taken, measured = self._measured
            if time.monotonic() - taken < SHARED_SECONDS:
                return measured
        measured = []
        for w in watched:
            try:
                with w.store.engine.connect() as conn:
                    measured.append((w.consumer, pending(conn, w.positions(conn))))
            except (sa.exc.SQLAlchemyError, sqlite3.Error) as exc:
                # No figure rather than a wrong one: an absent series is what to alert on too.
                log.warning("lag of consumer %s not measured: %s", w.consumer, exc)
        with self._lock:
            if self._watched:  # not closed meanwhile
                self._measured = (time.monotonic(), measured)
        return measured

    def _entries(self, _options: metrics.CallbackOptions) -> Iterator[metrics.Observation]:
        for consumer, p in self._pending():
            yield metrics.Observation(p.entries, {CONSUMER: consumer})

    def _age(self, _options: metrics.CallbackOptions) -> Iterator[metrics.Observation]:
        now = dt.datetime.now(dt.UTC)
        for consumer, p in self._pending():
            age = 0.0 if p.oldest is None else max(0.0, (now - p.oldest).total_seconds())
            yield metrics.Observation(age, {CONSUMER: consumer})
