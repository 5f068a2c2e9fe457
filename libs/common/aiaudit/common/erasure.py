"""Erasure of a data subject's content (ARCHITECTURE promise 3), recorded in the subject's log.

The content and salt of the named events (or of every event of a subject)
are deleted from ``event_content``; the leaves commit to that content only
through salted HMACs, so every leaf, proof and checkpoint still verifies,
and ``VerifyEvent`` answers ``VERIFIED_ERASED``. In the same transaction an
``EVENT_TYPE_PRIVACY_ERASURE`` event is appended to the log naming the erased
events, the reason and who asked: the erasure is itself audited and
tamper-evident. The search indexer re-indexes the named events when it
reaches that record, so their text leaves the index too, and the alerting
engine blanks the evidence excerpts of the alerts naming them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from aiaudit.common.store.prepare import prepare, set_timestamp
from aiaudit.common.store.sql import NewEvent, SqlEventStore
from aiaudit.common.v1 import event_pb2


@dataclass(frozen=True)
class Erased:
    """What one erasure did."""

    record_id: str
    """The ``EVENT_TYPE_PRIVACY_ERASURE`` event appended to the log."""
    erased: list[str]
    """Events whose content this erasure deleted (unknown or already erased ones are not)."""
    named: list[str]
    """Every event the record names."""


def erasure_event(
    tenant: str,
    event_ids: Sequence[str],
    reason: str,
    requested_by: str,
    subject_id: str,
    when: dt.datetime,
) -> event_pb2.Event:
    """The record of an erasure."""
    event = event_pb2.Event(
        event_id=f"erasure-{uuid.uuid4()}",
        tenant_id=tenant,
        event_type=event_pb2.EVENT_TYPE_PRIVACY_ERASURE,
        actor=event_pb2.Actor(user_id=requested_by),
        privacy_action=event_pb2.PrivacyAction(
            subject_id=subject_id,
            event_ids=list(event_ids),
            reason=reason,
            requested_by=requested_by,
        ),
    )
    set_timestamp(event.occurred_time, when)
    return event


def erase(
    store: SqlEventStore,
    tenant: str,
    reason: str,
    requested_by: str,
    event_ids: Sequence[str] = (),
    subject_id: str = "",
) -> Erased:
    """Erases the content of ``event_ids`` and/or of every event of ``subject_id``.

    Raises ValueError when nothing is named, or when no reason or requester is given.
    """
    if not reason.strip() or not requested_by.strip():
        raise ValueError("an erasure needs a reason and who requested it")
    now = dt.datetime.now(dt.UTC)

    def record_of(named: list[str]) -> NewEvent:
        return prepare(erasure_event(tenant, named, reason, requested_by, subject_id, now), now)

    named, erased, record_id = store.erase(tenant, event_ids, subject_id, record_of)
    return Erased(record_id, erased, named)
