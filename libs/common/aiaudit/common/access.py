"""Every read of audit data is itself an audit event in the tenant's log.

Search, export, proof and alert reads call :meth:`AccessLog.record` before
they answer; the record is committed like any event (sequenced, hashed,
covered by checkpoints), so access to evidence is as tamper-evident as the
evidence.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping

from aiaudit.common.auth import Caller
from aiaudit.common.store.prepare import prepare
from aiaudit.common.store.sql import SqlEventStore
from aiaudit.common.v1 import event_pb2


def access_event(
    caller: Caller,
    tenant: str,
    action: str,
    details: Mapping[str, str | int | bool],
    when: dt.datetime,
) -> event_pb2.Event:
    """The EVENT_TYPE_AUDIT_ACCESS event describing one read."""
    event = event_pb2.Event(
        event_id=f"access-{uuid.uuid4()}",
        tenant_id=tenant,
        event_type=event_pb2.EVENT_TYPE_AUDIT_ACCESS,
        actor=event_pb2.Actor(
            user_id=caller.principal,
            api_key_id=caller.key_id,
            user_role=",".join(sorted(caller.roles)),
        ),
    )
    event.occurred_time.FromDatetime(when)
    event.attributes["access.action"].string_value = action
    for key, value in details.items():
        slot = event.attributes[f"access.{key}"]
        if isinstance(value, bool):
            slot.bool_value = value
        elif isinstance(value, int):
            slot.int_value = value
        else:
            slot.string_value = str(value)[:4096]
    return event


class AccessLog:
    """Records reads straight into the store (one small transaction per read)."""

    def __init__(self, store: SqlEventStore) -> None:
        """Access records go to this store."""
        self._store = store

    def record(
        self, caller: Caller, tenant: str, action: str, details: Mapping[str, str | int | bool]
    ) -> None:
        """Commits the access record; raises if the store refuses (then the read must fail too)."""
        now = dt.datetime.now(dt.UTC)
        self._store.append_group(
            [[prepare(access_event(caller, tenant, action, details, now), now)]]
        )
