"""The ingest component: group committer plus IngestService handlers."""

from __future__ import annotations

from dataclasses import dataclass, field

from opentelemetry import metrics

from aiaudit.common.component import Context
from aiaudit.common.config import Settings
from aiaudit.common.retention import RetentionSweeper
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.stream_slots import StreamSlots
from aiaudit.ingest import handlers
from aiaudit.ingest import settings as ingest_settings
from aiaudit.ingest.committer import GroupCommitter
from aiaudit.ingest.erasing import Eraser
from aiaudit.ingest.ip_policy import IpPolicy, key_from_file
from aiaudit.ingest.redaction import ContentRedaction
from aiaudit.ingest.validation import Limits


@dataclass
class Ingest:
    """Running ingest."""

    committer: GroupCommitter
    privacy: SqlEventStore | None = None
    """The store EraseEvents deletes through, when it is a login of its own."""
    retention: RetentionSweeper | None = None
    service_names: list[str] = field(default_factory=lambda: [handlers.SERVICE_NAME])

    def stop(self) -> None:
        """Commits what is queued (lanes until the stop's grace), stops the retention sweeps."""
        self.committer.close()
        if self.retention is not None:
            self.retention.stop()
        if self.privacy is not None:
            self.privacy.close()


def start(ctx: Context) -> Ingest:
    """Registers IngestService on the shared server."""
    s = ctx.settings
    own = ingest_settings.load(s)
    privacy = (
        open_store(own.privacy_database_url, keys=ctx.store.keys)
        if own.privacy_database_url
        else None
    )
    # The embedded store has no roles: it may delete content itself.
    eraser_store = privacy or (ctx.store if s.embedded else None)
    committer = GroupCommitter(ctx.store, s.max_group_events)
    ctx.stopping.on_stop(committer.stop_lanes_by)  # lanes answered before calls are cancelled
    ctx.meter_provider.get_meter("aiaudit.ingest").create_observable_gauge(
        "aiaudit.ingest.commit.queue",
        [lambda _options: queue_depths(committer)],
        unit="{batch}",
        description="Batches acknowledged by no transaction yet, by stage (keys, ready)",
    )
    limits = Limits(
        max_batch_events=s.max_batch_events,
        max_event_bytes=s.max_event_bytes,
        max_message_bytes=s.max_message_bytes,
    )
    handlers.add_to_server(
        ctx.server,
        handlers.IngestHandlers(
            committer,
            limits,
            ctx.auth,
            StreamSlots("AppendStream", own.max_append_streams, own.max_append_streams_per_caller),
            receipt_signing=ctx.receipts,
            ip_policy=_ip_policy(own, s),
            redaction=ContentRedaction(own.redact_content, classify=own.classify_content),
        ),
        Eraser(ctx.auth, eraser_store, ctx.access),
    )
    retention = None
    periods = ingest_settings.by_class(own)
    erasing = own.content_retention_days or any(periods.values())
    if erasing or ingest_settings.erases_by_tenant(own):
        assert eraser_store is not None  # load() refused the settings without one
        retention = RetentionSweeper(
            eraser_store,
            own.content_retention_days,
            own.retention_sweep_interval,
            by_class=periods,
            by_tenant=own.content_retention_by_tenant,
        )
        retention.start()
    return Ingest(committer, privacy, retention)


def queue_depths(committer: GroupCommitter) -> list[metrics.Observation]:
    """The group commit's waiting batches, one observation per stage."""
    return [
        metrics.Observation(n, {"aiaudit.commit.stage": stage})
        for stage, n in committer.stages().items()
    ]


def _ip_policy(own: ingest_settings.IngestSettings, s: Settings) -> IpPolicy:
    key = None
    if own.ip_address == "pseudonymise":
        path = own.ip_pseudonym_key_file or s.data_dir / "ip-pseudonym.key"
        key = key_from_file(path, create=own.ip_pseudonym_key_file is None)
    return IpPolicy(own.ip_address, key)
