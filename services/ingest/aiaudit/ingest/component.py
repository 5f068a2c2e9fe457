"""The ingest component: group committer plus IngestService handlers."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiaudit.common.component import Context
from aiaudit.ingest import handlers
from aiaudit.ingest.committer import GroupCommitter
from aiaudit.ingest.validation import Limits


@dataclass
class Ingest:
    """Running ingest."""

    committer: GroupCommitter
    service_names: list[str] = field(default_factory=lambda: [handlers.SERVICE_NAME])

    def stop(self) -> None:
        """Commits what is queued."""
        self.committer.close()


def start(ctx: Context) -> Ingest:
    """Registers IngestService on the shared server."""
    s = ctx.settings
    committer = GroupCommitter(ctx.store, s.max_group_events)
    limits = Limits(max_batch_events=s.max_batch_events, max_event_bytes=s.max_event_bytes)
    handlers.add_to_server(
        ctx.server,
        handlers.IngestHandlers(committer, limits, ctx.auth, receipt_signing=ctx.receipts),
    )
    return Ingest(committer)
