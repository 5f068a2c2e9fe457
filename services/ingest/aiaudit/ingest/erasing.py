"""EraseEvents: erasure requests over gRPC (``aiaudit.common.erasure`` does the work).

The request is checked first, every bad field named; then ``content.erase``
on the tenant. On PostgreSQL the deletion runs as the login in
``ingest.privacy_database_url`` (a member of ``aiaudit_privacy``): the
writer login ingest appends with holds no DELETE. The erasure record names
the caller as the one who asked. A large erasure is several records, and the
answer lists the ids only up to a bound (:func:`answer`).
"""

from __future__ import annotations

import logging

import grpc
import psycopg
import sqlalchemy as sa
from google.rpc import code_pb2

from aiaudit.common import access, erasure, status
from aiaudit.common.access import AccessLog
from aiaudit.common.auth import Authenticator
from aiaudit.common.event_ids import EVENT_ID
from aiaudit.common.store.sql import NoLogError, SqlEventStore
from aiaudit.common.tenants import TENANT_ID
from aiaudit.ingest.v1 import ingest_service_pb2 as pb

log = logging.getLogger(__name__)

MAX_EVENT_IDS = 1000
PERMISSION = "content.erase"


class Eraser:
    """The EraseEvents handler over the store that may delete content (None: not configured)."""

    def __init__(self, auth: Authenticator, store: SqlEventStore | None, log: AccessLog) -> None:
        """``store``: a login in ``aiaudit_privacy`` (or the embedded store).

        ``log`` records the erasures that found nothing (that answer says a
        subject has no events, a read like any other) and the refused ones.
        """
        self._auth = auth
        self._store = store
        self._log = log

    def erase_events(
        self, request: pb.EraseEventsRequest, context: grpc.ServicerContext
    ) -> pb.EraseEventsResponse:
        """Erases, or aborts with the status that says why nothing was erased."""
        caller = self._auth.authenticate(context)
        problems = _problems(request) + erasure.problems(
            caller.principal, request.subject_id, request.reason
        )
        if problems:
            status.abort(
                context, status.bad_request("invalid request; nothing was erased", problems)
            )
        tenant = request.tenant_id
        if not caller.allows(PERMISSION, tenant):
            asked: dict[str, str | int | bool] = {
                "subject_id": request.subject_id,
                "reason": request.reason,
                "events_named": len(request.event_ids),
            }
            refused = self._log.refuse(
                caller, tenant, PERMISSION, "erasure.erase_events", asked, "nothing was erased"
            )
            status.abort(context, refused)
        if self._store is None:
            status.abort(
                context,
                status.error(
                    code_pb2.FAILED_PRECONDITION,
                    "this server cannot delete content: set ingest.privacy_database_url to a "
                    "login in role aiaudit_privacy; nothing was erased",
                    "ERASURE_NOT_CONFIGURED",
                ),
            )
        assert self._store is not None
        try:
            done = erasure.erase(
                self._store,
                tenant,
                request.reason,
                caller.principal,
                list(request.event_ids),
                request.subject_id,
                key_id=caller.key_id,
                roles=caller.roles,
            )
        except NoLogError as exc:  # a record would make the mistyped tenant a log
            status.abort(context, status.error(code_pb2.NOT_FOUND, str(exc), "NOTHING_TO_ERASE"))
        except ValueError as exc:  # a subject without events, and no ids
            record = self._log.submit(
                caller,
                tenant,
                "erasure.nothing_to_erase",
                {"subject_id": request.subject_id, "reason": request.reason},
            )
            if not access.recorded(record):
                status.abort(context, access.UNRECORDED)
            status.abort(context, status.error(code_pb2.NOT_FOUND, str(exc), "NOTHING_TO_ERASE"))
        except (sa.exc.DataError, psycopg.DataError) as exc:  # a retry cannot help
            status.abort(
                context,
                status.error(
                    code_pb2.INVALID_ARGUMENT,
                    f"the store refused a value of this erasure ({str(exc).splitlines()[0]}); "
                    "nothing was erased",
                    "STORE_REFUSED_VALUE",
                ),
            )
        except sa.exc.SQLAlchemyError as exc:
            log.warning("erasure not committed: %s", exc)
            status.abort(
                context,
                status.error(
                    code_pb2.UNAVAILABLE,
                    "the store did not commit the erasure; nothing was erased, retry",
                    "STORE_UNAVAILABLE",
                ),
            )
        return answer(done)


def answer(done: erasure.Erased) -> pb.EraseEventsResponse:
    """The counts, the records, and at most :data:`~aiaudit.common.erasure.LISTED_IDS` ids a list.

    Every id of a subject of ~50,000 events went over the 4 MB a client receives
    by default (RESOURCE_EXHAUSTED after the erasure committed; past ~1.5 M, over
    what the server sends): the records hold the full lists.
    """
    most = erasure.LISTED_IDS
    return pb.EraseEventsResponse(
        record_event_id=done.record_id,
        erased_event_ids=done.erased[:most],
        named_event_ids=done.named[:most],
        record_event_ids=done.record_ids,
        erased_count=len(done.erased),
        named_count=len(done.named),
        event_ids_truncated=len(done.named) > most,  # erased ones are named too
    )


def _problems(request: pb.EraseEventsRequest) -> list[tuple[str, str]]:
    out = []
    if not TENANT_ID.fullmatch(request.tenant_id):
        out.append(("tenant_id", "is required: 1-64 characters of [a-z0-9_-]"))
    if not request.reason.strip():
        out.append(("reason", "is required: the legal basis or reason, recorded in the log"))
    if not request.event_ids and not request.subject_id:
        out.append(("event_ids", "name the events to erase, or set subject_id"))
    if len(request.event_ids) > MAX_EVENT_IDS:
        out.append(("event_ids", f"has {len(request.event_ids)} ids; the limit is {MAX_EVENT_IDS}"))
    out += [
        (f"event_ids[{i}]", "must be 1-128 characters of [A-Za-z0-9._:-]")
        for i, event_id in enumerate(request.event_ids[:MAX_EVENT_IDS])
        if not EVENT_ID.fullmatch(event_id)
    ]
    return out
