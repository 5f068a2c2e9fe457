"""IntegrityService handlers: checkpoints, proofs, event verification, verifier keys.

Tree sizes always come from stored signed checkpoints, never from the caller:
an RFC 9162 proof alone does not fix the size, so a caller's ``tree_size``
only selects one of the checkpoints the notary signed. Every read needs
``proofs.read`` on the log's tenant and is recorded as an access event
before the answer is sent: the record is submitted first and committed
(grouped with concurrent reads' records) while the read runs, and the answer
waits for that commit, so a record's fsync overlaps the query instead of
adding to it and no answer leaves without a durable record. Errors are
answers too ("no such event", "no checkpoint at that size" tell what the log
holds): once a record is submitted, ``_run`` waits for it however the call
ends, and a record that failed turns any answer into UNAVAILABLE.

Reads run outside a transaction (autocommit): the tables they read are
append-only and the notary stores a tree's nodes before it signs the
checkpoint naming them, so every row a found checkpoint needs is already
visible; skipping BEGIN/ROLLBACK saves two round trips per call. On
PostgreSQL they use their own pool without a ping per checkout (another
round trip): after a database restart one call per stale connection answers
UNAVAILABLE ("retry"), and the pool reconnects.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import NoReturn, TypeVar

import grpc
import sqlalchemy as sa
from google.rpc import code_pb2, status_pb2

from aiaudit.common import access, canonical, event_ids, restore, status, tenants
from aiaudit.common.access import AccessLog
from aiaudit.common.auth import Authenticator, Caller
from aiaudit.common.keys.kek import KekError
from aiaudit.common.keys.seal import SealError
from aiaudit.common.store import SqlEventStore, utc_sessions
from aiaudit.common.store.prepare import set_timestamp
from aiaudit.common.store.schema import log_entries, logs
from aiaudit.common.store.sql import StoredEvent
from aiaudit.common.v1 import proof_pb2
from aiaudit.integrity import checks, integrated, loss, merkle, origins, storage
from aiaudit.integrity.note import NoteError, parse_checkpoint, parse_note
from aiaudit.integrity.signers import KeySource, SignerUnavailableError, open_signed
from aiaudit.integrity.v1 import integrity_service_pb2 as pb
from aiaudit.integrity.v1 import integrity_service_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

SERVICE_NAME = "aiaudit.integrity.v1.IntegrityService"
PERMISSION = "proofs.read"
MAX_BATCH = 1000
"""Most sequences one BatchGetInclusionProofs call proves (bounds the reply and the time)."""

T = TypeVar("T")


class _AbortError(Exception):
    def __init__(self, status: status_pb2.Status) -> None:
        self.status = status


class _Read:
    """One call's access records once ``_enter`` submitted them; ``_run`` waits on every exit.

    Held per call (not in the handler or a thread-local) because gRPC serves
    calls concurrently on pooled threads.
    """

    __slots__ = ("records",)

    def __init__(self) -> None:
        self.records: list[Future[None]] = []

    def unrecorded(self) -> status_pb2.Status | None:
        """Waits for every record submitted; what to answer when one did not commit."""
        failed = [access.unrecorded(record) for record in self.records]
        return next((f for f in failed if f is not None), None)


def _ranges(sequences: Sequence[int]) -> list[str]:
    """The distinct sequences in order, runs written ``a-b``: ``[5, 3, 4, 0]`` as ``0``, ``3-5``."""
    runs: list[str] = []
    ordered = sorted(set(sequences))
    start = prev = ordered[0]
    for seq in [*ordered[1:], None]:
        if seq is not None and seq == prev + 1:
            prev = seq
            continue
        runs.append(str(start) if start == prev else f"{start}-{prev}")
        if seq is not None:
            start = prev = seq
    return runs


def _invalid(field: str, description: str) -> NoReturn:
    raise _AbortError(status.bad_request(f"{field}: {description}", [(field, description)]))


def _fail(code: int, message: str, reason: str, **metadata: str) -> NoReturn:
    raise _AbortError(status.error(code, message, reason, **metadata))


def _size_field(tree_size: int, field: str) -> None:
    """Checked before anything is read or recorded (bad input writes nothing)."""
    if tree_size < 0:
        _invalid(field, "must not be negative (0 means the latest checkpoint)")


def _status_of(exc: Exception) -> status_pb2.Status | None:
    """The status a read's failure answers, or None for one this module did not raise."""
    if isinstance(exc, _AbortError):
        return exc.status
    if isinstance(exc, merkle.MissingNodeError):  # a node row deleted under a signed tree
        log.error("integrity read found the stored tree incomplete: %s", exc)
        return status.error(
            code_pb2.DATA_LOSS,
            f"the stored tree is missing a node ({exc}); run `aiaudit verify` on the store",
            "TREE_MISMATCH",
        )
    # SQLite: a binary column rewritten as text; a checkpoint row forged by raw SQL
    if isinstance(exc, storage.StoredAsTextError | storage.NoteMismatchError):
        log.error("integrity read found a damaged row: %s", exc)
        return status.error(
            code_pb2.DATA_LOSS,
            f"{exc}; run `aiaudit verify` on the store",
            "STORED_AS_TEXT" if isinstance(exc, storage.StoredAsTextError) else "NOTE_MISMATCH",
            column=exc.column,
        )
    if isinstance(exc, KekError):
        log.warning("integrity read could not open data keys: %s", exc)
        return status.sealing(exc)
    if isinstance(exc, sa.exc.DBAPIError):
        log.warning("integrity read failed: %s", exc)
        return status.error(
            code_pb2.UNAVAILABLE, "the store is unavailable; retry", "STORE_UNAVAILABLE"
        )
    return None


def _unverified(
    seqs: Sequence[int],
    leaves: Mapping[int, bytes],
    paths: Sequence[Sequence[bytes]],
    cp: storage.StoredCheckpoint,
) -> tuple[int, merkle.ProofError] | None:
    """The first leaf whose path does not lead to the signed root, and why; None if all do.

    Each path is checked alone, by RFC 9162's algorithm (``merkle.verify_inclusion``),
    as a verifier will: paths built together are not trusted to agree for it.
    """
    for seq, path in zip(seqs, paths, strict=True):
        try:
            merkle.verify_inclusion(seq, cp.tree_size, leaves[seq], path, cp.root_hash)
        except merkle.ProofError as exc:
            return seq, exc
    return None


def _outside_log(
    conn: sa.Connection, log_id: str, seq: int, signed: storage.StoredCheckpoint | None
) -> int | None:
    """The log's head when an entry stored at ``seq`` is no leaf of the log, else None.

    The log's leaves are sequences 0..head-1: an entry below 0 or at or past the
    head was put there by raw SQL (forged or moved), and no proof can include it.
    Only a sequence that ``signed`` does not cover reads the head, so a proof of a
    signed leaf pays nothing. The head is read after the entry: a genuine entry
    commits with its head's growth, so it is always below the head read later.
    """
    if signed is not None and 0 <= seq < signed.tree_size:
        return None
    found = conn.execute(sa.select(logs.c.size).where(logs.c.log_id == log_id)).scalar()
    head = int(found or 0)
    return None if 0 <= seq < head else head


def _leaves_are(head: int) -> str:
    """Which sequences a log whose head is ``head`` has, and how another got into the store."""
    return (
        f"its entries are sequences 0..{head - 1} (head {head}); the entry was forged or moved "
        "in the store"
    )


def checkpoint_proto(cp: storage.StoredCheckpoint) -> proof_pb2.Checkpoint:
    """A stored checkpoint in its wire form."""
    out = proof_pb2.Checkpoint(
        log_id=cp.log_id, tree_size=cp.tree_size, root_hash=cp.root_hash, signed_note=cp.signed_note
    )
    set_timestamp(out.sign_time, cp.sign_time)  # FromDatetime is slow Python, paid per read
    return out


class IntegrityHandlers(pb_grpc.IntegrityServiceServicer):
    """Reads the node and checkpoint tables; any replica (leader or not) serves them."""

    def __init__(
        self,
        store: SqlEventStore,
        reads: sa.Engine,
        keys: KeySource,
        auth: Authenticator,
        access_log: AccessLog,
        origin_prefix: str,
        classification_required_since: dt.datetime | None = None,
        checkpoint_dir: Path | None = None,
    ) -> None:
        """Handlers over the integrity tables in ``store``, read through ``reads``.

        ``reads`` is an autocommit engine on the same database (see ``read_engine``).
        ``classification_required_since``: the setting of that name (``VerifyEvent``).
        ``checkpoint_dir``: the notary's, whose loss statements say which sizes a
        consistency proof across epochs can serve (``GetConsistencyProof``).
        """
        self._store = store
        self._reads = reads
        self._keys = keys
        self._auth = auth
        self._access = access_log
        self._origin_prefix = origin_prefix
        self._since = classification_required_since
        self._checkpoint_dir = checkpoint_dir
        self._nodes = storage.NodeCache()

    def _enter(
        self,
        read: _Read,
        caller: Caller,
        context: grpc.ServicerContext,
        log_id: str,
        action: str,
        details: Mapping[str, str | int | bool],
        *more: Mapping[str, str | int | bool],
    ) -> None:
        """Authorises the read and submits its access records (``_run`` waits for them).

        ``more``: the details of further records of the same read, for one that
        names more than a record keeps. ``caller`` was authenticated first, before
        the request's fields were checked: a caller without a key learns nothing
        about its request (as ingest, search and alerting answer it).
        """
        if not tenants.valid(log_id):
            _invalid("log_id", f"required: the tenant id, {tenants.RULE}")
        self._access.require(context, caller, PERMISSION, log_id, action, details)
        read.records = [
            self._access.submit(caller, log_id, action, one) for one in (details, *more)
        ]

    def _reading(self) -> sa.Connection:
        """A connection for reads, outside any transaction (see the module docstring)."""
        return self._reads.connect()

    def _run(self, context: grpc.ServicerContext, body: Callable[[_Read], T]) -> T:
        """``body``'s answer or error, sent only once its access record (if any) is durable.

        No durable record, no answer: a failed record makes the call UNAVAILABLE
        (NOT_FOUND for a tenant with no log, whose record is never written)
        whether ``body`` returned or raised, so that not even a NOT_FOUND says
        unrecorded what the log holds. What is refused before ``_enter`` (bad
        input, authentication) has no record to wait for; a permission
        refusal's record is committed by ``AccessLog.refuse`` before it aborts.
        """
        read = _Read()
        try:
            out = body(read)
        except Exception as exc:
            refused = _status_of(exc)
            failed = read.unrecorded()
            if failed is not None:
                status.abort(context, failed)
            if refused is None:
                raise  # gRPC's own abort (authentication, permission), or a bug
            status.abort(context, refused)
            raise AssertionError("unreachable") from None
        failed = read.unrecorded()
        if failed is not None:  # UNAVAILABLE; NOT_FOUND for a tenant with no log
            status.abort(context, failed)
        return out

    def _checkpoint(
        self, conn: sa.Connection, log_id: str, tree_size: int, field: str
    ) -> storage.StoredCheckpoint:
        found = (
            storage.checkpoint_at(conn, log_id, tree_size)
            if tree_size
            else storage.latest_checkpoint(conn, log_id)
        )
        return self._found(found, log_id, tree_size, field)

    @staticmethod
    def _found(
        found: storage.StoredCheckpoint | None, log_id: str, tree_size: int, field: str
    ) -> storage.StoredCheckpoint:
        """The checkpoint found for ``tree_size`` (0: the latest), or the error saying why not.

        Its columns are those its note states, or DATA_LOSS names the one that is not
        (:func:`storage.as_noted`): every RPC that answers a stored checkpoint's size or
        root finds it here.
        """
        if found is not None:
            return storage.as_noted(found)
        if tree_size == 0:
            _fail(
                code_pb2.FAILED_PRECONDITION,
                f"log {log_id!r} has no signed checkpoint yet",
                "NO_CHECKPOINT",
                log_id=log_id,
            )
        _fail(
            code_pb2.NOT_FOUND,
            f"log {log_id!r} has no checkpoint at size {tree_size} ({field})",
            "CHECKPOINT_NOT_FOUND",
            field=field,
        )

    def GetCheckpoint(  # noqa: N802 (gRPC method name)
        self, request: pb.GetCheckpointRequest, context: grpc.ServicerContext
    ) -> pb.GetCheckpointResponse:
        """The latest checkpoint or the one at ``tree_size``."""

        def body(read: _Read) -> pb.GetCheckpointResponse:
            caller = self._auth.authenticate(context)  # before anything is said about the request
            _size_field(request.tree_size, "tree_size")
            self._enter(
                read,
                caller,
                context,
                request.log_id,
                "integrity.get_checkpoint",
                {"tree_size": request.tree_size},
            )
            with self._reading() as conn:
                cp = self._checkpoint(conn, request.log_id, request.tree_size, "tree_size")
            return pb.GetCheckpointResponse(checkpoint=checkpoint_proto(cp))

        return self._run(context, body)

    def GetInclusionProof(  # noqa: N802
        self, request: pb.GetInclusionProofRequest, context: grpc.ServicerContext
    ) -> pb.GetInclusionProofResponse:
        """Audit path of one leaf (by event id or sequence) against a signed checkpoint."""

        def body(read: _Read) -> pb.GetInclusionProofResponse:
            caller = self._auth.authenticate(context)  # before anything is said about the request
            which = request.WhichOneof("leaf")
            if which is None:
                _invalid("leaf", "set event_id or sequence")
            if which == "sequence" and request.sequence < 0:
                _invalid("sequence", "must not be negative")
            if which == "event_id" and not event_ids.valid(request.event_id):
                _invalid("event_id", f"must be an event id: {event_ids.RULE}")
            _size_field(request.tree_size, "tree_size")
            self._enter(
                read,
                caller,
                context,
                request.log_id,
                "integrity.get_inclusion_proof",
                {which: getattr(request, which), "tree_size": request.tree_size},
            )
            with self._reading() as conn:
                target = storage.proof_target(
                    conn, request.log_id, which, getattr(request, which), request.tree_size
                )
                if target is None and which == "sequence":
                    signed = storage.latest_checkpoint(conn, request.log_id)
                    if signed is not None and request.sequence < storage.as_noted(signed).tree_size:
                        _fail(  # as BatchGetInclusionProofs says it
                            code_pb2.DATA_LOSS,
                            f"log {request.log_id!r} has no entry at sequence {request.sequence}"
                            f", below its signed size {signed.tree_size}; run `aiaudit verify` "
                            "on the store",
                            "ENTRY_MISSING",
                        )
                if target is None:
                    _fail(
                        code_pb2.NOT_FOUND,
                        f"log {request.log_id!r} has no entry with {which} "
                        f"{getattr(request, which)!r}",
                        "ENTRY_NOT_FOUND",
                        field=which,
                    )
                head = _outside_log(conn, request.log_id, target.seq, target.checkpoint)
                if head is not None:
                    self._no_leaf(conn, request.log_id, target.seq, head)
                cp = self._covers(
                    self._found(target.checkpoint, request.log_id, request.tree_size, "tree_size"),
                    request.log_id,
                    target.seq,
                    request.tree_size,
                )
                hashes = self._checked_proof(conn, request.log_id, target, cp)
            return pb.GetInclusionProofResponse(
                proof=proof_pb2.InclusionProof(
                    log_id=request.log_id,
                    leaf_index=target.seq,
                    tree_size=cp.tree_size,
                    hashes=hashes,
                ),
                checkpoint=checkpoint_proto(cp),
                leaf_hash=target.leaf_hash,
            )

        return self._run(context, body)

    @staticmethod
    def _no_leaf(conn: sa.Connection, log_id: str, seq: int, head: int) -> NoReturn:
        """DATA_LOSS naming the entry at ``seq``, outside its log: nothing proves it."""
        event_id = conn.execute(
            sa.select(log_entries.c.event_id).where(
                log_entries.c.log_id == log_id, log_entries.c.seq == seq
            )
        ).scalar()
        _fail(
            code_pb2.DATA_LOSS,
            f"log {log_id!r} holds event {event_id!r} at sequence {seq}, which is not a leaf "
            f"of the log and has no proof: {_leaves_are(head)}; run `aiaudit verify` on the store",
            "NOT_A_LEAF",
            event_id=str(event_id),
            sequence=str(seq),
            head=str(head),
        )

    def _checked_proof(
        self,
        conn: sa.Connection,
        log_id: str,
        target: storage.ProofTarget,
        cp: storage.StoredCheckpoint,
    ) -> list[bytes]:
        """The leaf's audit path, verified against the signed root before it is served."""
        leaves = {target.seq: target.leaf_hash}
        return self._checked_proofs(conn, log_id, [target.seq], leaves, cp)[0]

    def _checked_proofs(
        self,
        conn: sa.Connection,
        log_id: str,
        seqs: Sequence[int],
        leaves: Mapping[int, bytes],
        cp: storage.StoredCheckpoint,
    ) -> list[list[bytes]]:
        """The leaves' audit paths in order, each verified against the signed root.

        Built through the node cache, every node the paths need in one read; paths that
        do not all verify are built again from the table alone (the cache may predate a
        restored database). If a path fails then too, the stored tree disagrees with its
        own signed checkpoint: DATA_LOSS naming the first such leaf.
        """
        for cache in (self._nodes, None):
            paths = merkle.inclusion_proofs(
                seqs, cp.tree_size, storage.NodeTable(conn, log_id, cache)
            )
            failed = _unverified(seqs, leaves, paths, cp)
            if failed is None:
                return paths
            seq, exc = failed
            log.error(
                "inclusion proof of %s/%d against size %d does not verify (%s): %s",
                log_id,
                seq,
                cp.tree_size,
                "cached nodes" if cache else "stored nodes",
                exc,
            )
            self._nodes.clear()
        _fail(
            code_pb2.DATA_LOSS,
            f"the stored tree of log {log_id!r} does not match its signed checkpoint at size "
            f"{cp.tree_size} (leaf {seq}); run `aiaudit verify` on the store",
            "TREE_MISMATCH",
            sequence=str(seq),
        )

    def BatchGetInclusionProofs(  # noqa: N802
        self, request: pb.BatchGetInclusionProofsRequest, context: grpc.ServicerContext
    ) -> pb.BatchGetInclusionProofsResponse:
        """Audit paths of many leaves against one checkpoint; one access record for the batch.

        Every path is verified against the signed root before it is served, as
        ``GetInclusionProof``'s are (and through the same node cache); the nodes of
        all the paths are read in one query (``_checked_proofs``).
        """

        def body(read: _Read) -> pb.BatchGetInclusionProofsResponse:
            caller = self._auth.authenticate(context)  # before anything is said about the request
            seqs = list(request.sequences)
            if not 0 < len(seqs) <= MAX_BATCH:
                _invalid("sequences", f"1 to {MAX_BATCH} sequences, got {len(seqs)}")
            for i, seq in enumerate(seqs):
                if seq < 0:
                    _invalid(f"sequences[{i}]", "must not be negative")
            _size_field(request.tree_size, "tree_size")
            batch: dict[str, str | int | bool] = {
                "count": len(seqs),
                "first_sequence": min(seqs),
                "last_sequence": max(seqs),
                "tree_size": request.tree_size,
            }
            parts = access.named_parts(_ranges(seqs))
            self._enter(
                read,
                caller,
                context,
                request.log_id,
                "integrity.batch_get_inclusion_proofs",
                *(
                    {**batch, "sequences": part, "part": i, "parts": len(parts)}
                    for i, part in enumerate(parts, 1)
                ),
            )
            response = pb.BatchGetInclusionProofsResponse()
            with self._reading() as conn:
                cp = self._covering(conn, request.log_id, max(seqs), request.tree_size)
                leaves = storage.leaf_hashes(conn, request.log_id, seqs)
                for seq in seqs:
                    if seq not in leaves:  # below a signed size, so the entry was removed
                        _fail(
                            code_pb2.DATA_LOSS,
                            f"log {request.log_id!r} has no entry at sequence {seq}, below its "
                            f"signed size {cp.tree_size}; run `aiaudit verify` on the store",
                            "ENTRY_MISSING",
                            sequence=str(seq),
                        )
                paths = self._checked_proofs(conn, request.log_id, seqs, leaves, cp)
                for seq, hashes in zip(seqs, paths, strict=True):
                    response.proofs.add(
                        log_id=request.log_id, leaf_index=seq, tree_size=cp.tree_size, hashes=hashes
                    )
            response.checkpoint.CopyFrom(checkpoint_proto(cp))
            return response

        return self._run(context, body)

    def _covering(
        self, conn: sa.Connection, log_id: str, seq: int, tree_size: int
    ) -> storage.StoredCheckpoint:
        return self._covers(
            self._checkpoint(conn, log_id, tree_size, "tree_size"), log_id, seq, tree_size
        )

    @staticmethod
    def _covers(
        cp: storage.StoredCheckpoint, log_id: str, seq: int, tree_size: int
    ) -> storage.StoredCheckpoint:
        """``cp`` if it covers ``seq``, else the error (bad ``tree_size``, or not signed yet)."""
        if seq >= cp.tree_size:
            if tree_size:
                _invalid(
                    "tree_size",
                    f"the checkpoint at size {tree_size} does not cover sequence {seq}",
                )
            _fail(
                code_pb2.FAILED_PRECONDITION,
                f"no checkpoint covers sequence {seq} of log {log_id!r} yet "
                f"(the latest has size {cp.tree_size}); retry after the next checkpoint",
                "NOT_YET_CHECKPOINTED",
                sequence=str(seq),
            )
        return cp

    def GetConsistencyProof(  # noqa: N802
        self, request: pb.GetConsistencyProofRequest, context: grpc.ServicerContext
    ) -> pb.GetConsistencyProofResponse:
        """Proof that the tree at ``from_size`` is a prefix of a signed checkpoint's tree."""

        def body(read: _Read) -> pb.GetConsistencyProofResponse:
            caller = self._auth.authenticate(context)  # before anything is said about the request
            if request.from_size < 1:
                _invalid("from_size", "must be at least 1 (nothing is proved from the empty tree)")
            _size_field(request.to_size, "to_size")
            from_epoch = self._from_epoch(request.log_id, request.from_origin)
            details: dict[str, str | int | bool] = {
                "from_size": request.from_size,
                "to_size": request.to_size,
            }
            if request.from_origin:
                details["from_origin"] = request.from_origin
            self._enter(
                read, caller, context, request.log_id, "integrity.get_consistency_proof", details
            )
            with self._reading() as conn:
                cp = self._checkpoint(conn, request.log_id, request.to_size, "to_size")
                if request.from_size > cp.tree_size:
                    _invalid(
                        "from_size",
                        f"{request.from_size} is larger than the checkpoint size {cp.tree_size}",
                    )
                self._across_a_loss(conn, request.log_id, request.from_size, from_epoch, cp)
                hashes = self._checked_consistency(conn, request.log_id, request.from_size, cp)
            return pb.GetConsistencyProofResponse(
                proof=proof_pb2.ConsistencyProof(
                    log_id=request.log_id,
                    from_size=request.from_size,
                    to_size=cp.tree_size,
                    hashes=hashes,
                )
            )

        return self._run(context, body)

    def _from_epoch(self, log_id: str, from_origin: str) -> int | None:
        """The epoch ``from_origin`` names (None: not given); checked before anything is read."""
        if not from_origin:
            return None
        epoch = origins.epoch_of(from_origin, self._origin_prefix, log_id)
        if epoch is None:
            base = origins.origin(self._origin_prefix, log_id)
            _invalid(  # the input clipped: what is wrong with it must fit in the answer
                "from_origin",
                f"{status.clip(from_origin, 64)!r} is no origin of log "
                f"{status.clip(log_id, 64)!r} ({status.clip(base, 64)!r}, or that followed by "
                "/epoch-<n> after an accepted loss)",
            )
        return epoch

    def _across_a_loss(
        self,
        conn: sa.Connection,
        log_id: str,
        from_size: int,
        from_epoch: int | None,
        cp: storage.StoredCheckpoint,
    ) -> None:
        """Refuses a proof from a size that an accepted loss left to two histories.

        The tree of epoch n (:mod:`loss`) shares only leaves ``0..M-1`` with the
        epoch it continues: at a larger size the two epochs' checkpoints differ,
        and a proof from the store's tree could not verify against the earlier
        one. With ``from_epoch`` (the caller's checkpoint's, ``from_origin``),
        the answer says so when that epoch's tree at ``from_size`` is not
        ``cp``'s epoch's, naming the statement where the two part. Without it,
        as before the field: unless the checkpoint stored at ``from_size`` is
        of ``cp``'s epoch, a size that a statement up to ``cp``'s epoch names
        lost (``M+1..N``) is refused, naming the latest such statement: from
        there on ``cp``'s tree at that size is no earlier epoch's. The
        statements count as for the notary (:func:`loss.chain` with the roots
        it integrated): one signed on another copy of the database (a restore
        drill's, whose lost tree the store holds) counted here, and a caller
        from its epoch was told that sizes "were lost" that nothing lost
        (review, 2026-12-07).
        """
        to_origin = _origin(cp)
        to_epoch = origins.epoch_of(to_origin, self._origin_prefix, log_id)
        if to_epoch is None or self._checkpoint_dir is None or from_epoch == to_epoch:
            return
        if from_epoch is None:
            at = storage.checkpoint_at(conn, log_id, from_size)
            if not to_epoch or (at is not None and _origin(at) == to_origin):
                return
        try:
            trusted = self._keys.verifier_keys()
        except SignerUnavailableError:
            _fail(code_pb2.UNAVAILABLE, "verifier keys are unavailable; retry", "KEYS_UNAVAILABLE")
        found = loss.found(self._checkpoint_dir, self._origin_prefix, log_id, trusted)
        chain, _, _ = loss.chain(found, integrated.roots(conn, log_id))
        if from_epoch is None:
            parted = chain.last_lost(to_epoch, from_size)
            from_epoch = 0 if parted is None else parted - 1
        elif from_epoch > chain.epoch:
            _invalid(
                "from_origin",
                f"{origins.origin(self._origin_prefix, log_id, from_epoch)!r}: log {log_id!r} "
                f"has no epoch {from_epoch} (no valid loss statement begins it; its epochs are "
                f"0..{chain.epoch})",
            )
        else:
            parted = chain.parting(from_epoch, to_epoch, from_size)
        if parted is None:
            return
        statement = chain.losses[parted - 1]
        from_origin = origins.origin(self._origin_prefix, log_id, from_epoch)
        _fail(
            code_pb2.FAILED_PRECONDITION,
            f"log {log_id!r}: a checkpoint of {from_origin} at size {from_size} is no prefix "
            f"of {to_origin}'s tree: the loss statement of epoch {parted} continues epoch "
            f"{parted - 1} at size {statement.size}, and sizes {statement.size + 1}.."
            f"{statement.lost_size} of epoch {parted - 1} were lost (ask from a size of at most "
            f"{chain.shared(from_epoch, to_epoch)}, or of {to_origin}'s own checkpoints)",
            "ACROSS_A_LOSS",
            from_origin=from_origin,
            to_origin=to_origin,
        )

    @staticmethod
    def _checked_consistency(
        conn: sa.Connection, log_id: str, from_size: int, cp: storage.StoredCheckpoint
    ) -> list[bytes]:
        """The consistency path, checked against the signed roots before it is served.

        As inclusion paths are: against the checkpoint's root, and against the
        root signed at ``from_size`` when that size was signed. A stored node
        changed after signing made a proof that failed at the auditor's, who
        would read it as a forked log; it is this store's tree that is wrong.
        """
        table = storage.NodeTable(conn, log_id)
        hashes = merkle.consistency_proof(from_size, cp.tree_size, table)
        old_root = merkle.root_at(from_size, table)
        signed_old = storage.checkpoint_at(conn, log_id, from_size)
        try:
            merkle.verify_consistency(from_size, cp.tree_size, old_root, cp.root_hash, hashes)
            if signed_old is not None and signed_old.root_hash != old_root:
                raise merkle.ProofError(f"the root at {from_size} is not the one signed")
        except merkle.ProofError as exc:
            log.error(
                "consistency proof of %s %d..%d fails: %s", log_id, from_size, cp.tree_size, exc
            )
            _fail(
                code_pb2.DATA_LOSS,
                f"the stored tree of log {log_id!r} does not match its signed checkpoints "
                f"({exc}); run `aiaudit verify` on the store",
                "TREE_MISMATCH",
            )
        return hashes

    def VerifyEvent(  # noqa: N802
        self, request: pb.VerifyEventRequest, context: grpc.ServicerContext
    ) -> pb.VerifyEventResponse:
        """Recomputes the leaf from the stored event and checks it against the latest checkpoint."""

        def body(read: _Read) -> pb.VerifyEventResponse:
            caller = self._auth.authenticate(context)  # before anything is said about the request
            if not event_ids.valid(request.event_id):
                _invalid("event_id", f"required: {event_ids.RULE}")
            self._enter(
                read,
                caller,
                context,
                request.log_id,
                "integrity.verify_event",
                {"event_id": request.event_id},
            )
            return self._verify(request.log_id, request.event_id)

        return self._run(context, body)

    def _verify(self, log_id: str, event_id: str) -> pb.VerifyEventResponse:
        try:
            stored = self._store.get_event(log_id, event_id)
        except SealError as exc:  # altered or moved: the content no longer opens
            problems = [f"sealed content does not open: {exc}"]
            with self._reading() as conn:  # and a copy forged outside the log is named as such
                target = storage.proof_target(conn, log_id, "event_id", event_id, 0)
                if target is not None:
                    head = _outside_log(conn, log_id, target.seq, target.checkpoint)
                    if head is not None:
                        problems.append(
                            f"sequence {target.seq} is not a leaf of the log: {_leaves_are(head)}"
                        )
            return pb.VerifyEventResponse(status=pb.VERIFY_STATUS_TAMPERED, problems=problems)
        except restore.StoredAsTextEventError as exc:  # SQLite: as verify names them
            problems = [storage.text_column(column) for column in exc.columns]
            return pb.VerifyEventResponse(status=pb.VERIFY_STATUS_TAMPERED, problems=problems)
        except restore.DamagedContentError as exc:  # no content (`[1]`): as verify names it
            return pb.VerifyEventResponse(status=pb.VERIFY_STATUS_TAMPERED, problems=[exc.why])
        if stored is None:
            _fail(
                code_pb2.NOT_FOUND,
                f"log {log_id!r} has no event {event_id!r}",
                "EVENT_NOT_FOUND",
                field="event_id",
            )
        problems = checks.event_problems(
            log_id,
            event_id,
            stored.leaf_hash,
            stored.canonical or None,
            stored.salt,
            stored.content,
        )
        with self._reading() as conn:
            if stored.salt is None and storage.has_content_commitments(stored.canonical):
                problems += _erasure_problems(conn, log_id, event_id, stored.sequence)
            elif stored.salt is not None:
                problems += self._classification_problems(conn, stored)
                if stored.content:  # ``{}`` holds nothing to erase (verify skips it too)
                    problems += _put_back_problems(conn, log_id, event_id, stored.sequence)
            cp = storage.latest_checkpoint(conn, log_id, as_text=True)
            unlike = _unlike_its_note(cp)
            if unlike is not None:  # no proof at a size the note does not state
                problems.append(unlike)
                return pb.VerifyEventResponse(status=pb.VERIFY_STATUS_TAMPERED, problems=problems)
            head = _outside_log(conn, log_id, stored.sequence, cp)
            if head is not None:  # no proof to check: the entry is not in the log at all
                problems.append(
                    f"sequence {stored.sequence} is not a leaf of the log: {_leaves_are(head)}"
                )
                return pb.VerifyEventResponse(status=pb.VERIFY_STATUS_TAMPERED, problems=problems)
            if cp is None or cp.tree_size <= stored.sequence:
                verdict = pb.VERIFY_STATUS_TAMPERED if problems else pb.VERIFY_STATUS_PENDING
                return pb.VerifyEventResponse(status=verdict, problems=problems)
            hashes = merkle.inclusion_proof(
                stored.sequence, cp.tree_size, storage.NodeTable(conn, log_id)
            )
        if cp.root_as_text:  # SQLite: read as its bytes, compared below as any
            column = storage.text_column("integrity_checkpoints.root_hash")
            problems.append(f"stored checkpoint at size {cp.tree_size}: {column}")
        try:
            opened = open_signed(self._keys, cp.signed_note)
            if origins.epoch_of(opened.origin, self._origin_prefix, log_id) is None:
                raise NoteError(
                    f"checkpoint origin {opened.origin!r} is not "
                    f"{origins.origin(self._origin_prefix, log_id)!r}"
                )
            if (opened.size, opened.root_hash) != (cp.tree_size, cp.root_hash):
                problems.append("stored checkpoint columns disagree with its signed note")
            leaf = canonical.leaf_hash(stored.canonical)
            merkle.verify_inclusion(stored.sequence, cp.tree_size, leaf, hashes, opened.root_hash)
        except SignerUnavailableError:
            _fail(code_pb2.UNAVAILABLE, "verifier keys are unavailable; retry", "KEYS_UNAVAILABLE")
        except (NoteError, merkle.ProofError) as exc:
            problems.append(f"checkpoint at size {cp.tree_size}: {exc}")
        if problems:
            verdict = pb.VERIFY_STATUS_TAMPERED
        elif stored.salt is None:
            verdict = pb.VERIFY_STATUS_VERIFIED_ERASED
        else:
            verdict = pb.VERIFY_STATUS_VERIFIED
        return pb.VerifyEventResponse(
            status=verdict,
            problems=problems,
            proof=proof_pb2.InclusionProof(
                log_id=log_id, leaf_index=stored.sequence, tree_size=cp.tree_size, hashes=hashes
            ),
            checkpoint=checkpoint_proto(cp),
        )

    def _classification_problems(self, conn: sa.Connection, stored: StoredEvent) -> list[str]:
        """The content row's ``data_classification`` against the committed one, as verify checks it.

        One read by the row's primary key; and, only for a classified event whose
        column is NULL and whose committed receive time is before
        ``classification_required_since``, one bounded read of the entries before
        it (:func:`storage.received_since`). NULL where no setting makes it damage
        is verify's warning: no problem here (the answer has no warnings).
        """
        row = storage.content_classification(
            conn, stored.log_id, stored.sequence, stored.receive_time
        )
        if row is None:  # erased since it was read: checked as erased by the next call
            return []
        column, empty = row
        try:
            node = json.loads(stored.canonical)
        except ValueError:
            return []  # named by event_problems
        if not isinstance(node, dict):
            return []
        wrong = checks.classification_problem(node, column, empty)
        if wrong is None:
            return []
        if wrong[1]:  # NULL on a classified event: damage only under the setting
            later = None
            if self._since is not None:
                later = storage.received_since(
                    conn, stored.log_id, stored.sequence, self._since, PRECEDING
                )
            why = checks.classification_required(node, self._since, later)
            if why is None:
                return []
            wrong = checks.classification_problem(node, column, empty, why)
            assert wrong is not None
        return [wrong[0]]

    def GetVerifierKey(  # noqa: N802
        self, request: pb.GetVerifierKeyRequest, context: grpc.ServicerContext
    ) -> pb.GetVerifierKeyResponse:
        """Verifier keys of every key version (public: any authenticated caller)."""
        self._auth.authenticate(context)
        try:
            keys = self._keys.verifier_keys()
        except SignerUnavailableError as exc:
            status.abort(
                context,
                status.error(code_pb2.UNAVAILABLE, f"{exc}; retry", "KEYS_UNAVAILABLE"),
            )
            raise AssertionError("unreachable") from None
        return pb.GetVerifierKeyResponse(
            verifier_keys=[k.encode() for k in keys], origin_prefix=self._origin_prefix
        )


PRECEDING = 4096
"""Entries before an event ``VerifyEvent`` looks through for one received at or after
``classification_required_since`` (one range of the primary key, read only for a NULL
column that the event's own receive time leaves a warning). Whoever appends an event
chooses its receive time: one backdated before the boundary but appended after an entry
received past it is named when that entry is among these; ``verify`` reads the whole log."""


def _unlike_its_note(cp: storage.StoredCheckpoint | None) -> str | None:
    """How ``cp``'s size (or note) is not what its note states, for VerifyEvent; else None.

    A root unlike the note's is named where the proof is checked against the note's root.
    A row forged at size 1000 (the real note of size 3) answered DATA_LOSS "the stored tree
    is missing a node", blaming a tree that was intact (review, 2026-12-07).
    """
    if cp is None:
        return None
    try:
        storage.as_noted(cp)
    except storage.NoteMismatchError as exc:
        return None if exc.column == "integrity_checkpoints.root_hash" else str(exc)
    return None


def _origin(cp: storage.StoredCheckpoint) -> str:
    """The origin a stored checkpoint's note names (its signature is checked where it is read)."""
    try:
        return parse_checkpoint(parse_note(cp.signed_note).text).origin
    except NoteError:
        return ""


def _erasure_problems(conn: sa.Connection, log_id: str, event_id: str, seq: int) -> list[str]:
    """What is wrong with the erasure of an event whose content is gone.

    No intact record after it naming it: deleted outside an erasure. Else the
    erasures naming it must have every part (:func:`checks.erasure_problems`):
    the records read are the ones the first check reads (by their index, after
    the event), and an erasure's parts are all committed after the events it names.
    """
    named, missing = checks.erasure_problems(storage.erasure_records(conn, log_id, seq), event_id)
    if not named:
        return ["content deleted without a privacy-erasure record naming the event"]
    return missing


def _put_back_problems(conn: sa.Connection, log_id: str, event_id: str, seq: int) -> list[str]:
    """Content present although an intact record after the event names it: put back.

    As ``verify`` names it (a restore from a backup taken before the erasure
    brings the content back, and every reader serves it again). The record is
    found through ``erasure_names`` and checked itself (:func:`storage.record_naming`).
    """
    record = storage.record_naming(conn, log_id, event_id, seq)
    if record is None:
        return []
    return [checks.put_back(record)]


def read_engine(store: SqlEventStore) -> sa.Engine:
    """The handlers' autocommit engine: its own pool without pre-ping on PostgreSQL.

    On SQLite the store's engine (its pool and pragmas), switched to autocommit.
    """
    if store.engine.dialect.name == "sqlite":
        return store.engine.execution_options(isolation_level="AUTOCOMMIT")
    return sa.create_engine(
        store.engine.url,
        pool_size=8,
        max_overflow=8,
        isolation_level="AUTOCOMMIT",
        hide_parameters=True,
        **utc_sessions(store.engine.url),
    )


def add_to_server(server: grpc.Server, handlers: IntegrityHandlers) -> None:
    """Registers the service."""
    pb_grpc.add_IntegrityServiceServicer_to_server(handlers, server)  # type: ignore[no-untyped-call]
