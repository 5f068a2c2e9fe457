"""``aiaudit integrity accept-loss``: signs a log's loss statement so that it signs on.

A store restored from a backup older than an exported checkpoint holds its
log: the notary will not sign new events at the lost sequences under the
origin that already signed others there. Once the operator has found no
later backup holding them, this signs the statement of the next epoch
(:mod:`loss`) and writes it, create-once, to the append-only directory;
the notary, which re-reads the statements of every log it holds, then signs
the log's new events under the new epoch's origin.

It refuses (nothing written) what is no loss: a log that is not behind its
current epoch's largest exported checkpoint, and a store whose tree is not
the one its own or its exported checkpoints signed at a size it still holds
(that is damage: ``aiaudit verify`` names it).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from aiaudit.common.store import cursors
from aiaudit.integrity import loss, merkle, origins, storage, worm
from aiaudit.integrity.merkle import CompactRange
from aiaudit.integrity.notary import CONSUMER
from aiaudit.integrity.note import NoteError, VerifierKey, open_checkpoint, sign_note
from aiaudit.integrity.signers import KeySource


class RefusedError(Exception):
    """Nothing to accept, or not a loss: nothing was written (exit 2)."""


@dataclass(frozen=True)
class Accepted:
    """The statement written, and what it says."""

    path: Path
    epoch: int
    statement: loss.LossStatement


def accept_loss(
    engine: sa.Engine,
    keys: KeySource,
    prefix: str,
    directory: Path,
    log_id: str,
    reason: str,
) -> Accepted:
    """Signs and writes the statement of ``log_id``'s next epoch, or raises ``RefusedError``."""
    if why := loss.reason_problem(reason):
        raise RefusedError(f"--reason: {why}")
    trusted = keys.verifier_keys()
    with engine.connect() as conn, conn.begin():  # the roots are read from its node rows
        size, root_at = _store_tree(conn, log_id)
        found = loss.found(directory, prefix, log_id, trusted)
        chain, errors, _ = loss.chain(found, root_at)
        epoch = chain.epoch
        if any(item.epoch == epoch + 1 for item in found):  # there, not counted: never replaced
            raise RefusedError(
                f"log {log_id}: epoch {epoch + 1} already has a statement that does not count "
                f"({'; '.join(errors)}); run aiaudit verify"
            )
        exported = {e: _opened(directory, prefix, log_id, e, trusted) for e in range(epoch + 1)}
        for e, checkpoints in exported.items():
            for at, root in sorted(checkpoints.items()):
                if at <= size and chain.later_loss(e, at) is None and root_at(at) != root:
                    raise RefusedError(
                        f"log {log_id}: the store's tree at size {at} is not the one its "
                        f"exported checkpoint of {origins.origin(prefix, log_id, e)} signed: "
                        "that is damage, not a loss; run aiaudit verify"
                    )
    current = origins.origin(prefix, log_id, epoch)
    lost = max(exported[epoch], default=0)
    if lost <= size:
        raise RefusedError(
            f"log {log_id}: nothing to accept: its store holds {size} integrated leaves, and "
            f"the largest exported checkpoint of {current} has size {lost}"
        )
    statement = loss.LossStatement(
        origins.origin(prefix, log_id, epoch + 1),
        current,
        size,
        _root(root_at, size),
        lost,
        exported[epoch][lost],
        loss.now(),
        reason,
    )
    signed = sign_note(loss.format_statement(statement), [keys.active().signer])
    try:
        path = worm.write_statement(directory, log_id, epoch + 1, signed)
    except FileExistsError as exc:  # another run wrote one meanwhile
        raise RefusedError(f"log {log_id}: {exc}; nothing written") from None
    return Accepted(path, epoch + 1, statement)


def _store_tree(conn: sa.Connection, log_id: str) -> tuple[int, loss.RootAt]:
    """The notary's integrated size and the store's roots, checked as ``Notary._load`` checks.

    The edge must extend the store's latest checkpoint: a tree that does not
    is damage, which no statement covers.
    """
    size = cursors.position(conn, CONSUMER, log_id)
    table = storage.NodeTable(conn, log_id)
    try:
        edge = CompactRange.load(size, table)
        signed = storage.latest_checkpoint(conn, log_id)
        if signed is not None:
            proof = merkle.consistency_proof(signed.tree_size, size, table)
            merkle.verify_consistency(signed.tree_size, size, signed.root_hash, edge.root(), proof)
    except (ValueError, merkle.MissingNodeError) as exc:
        raise RefusedError(
            f"log {log_id}: its {size} integrated leaves do not extend its stored checkpoints "
            f"({exc}): that is damage, not a loss; run aiaudit verify"
        ) from None
    roots = {size: edge.root()}

    def root_at(at: int) -> bytes | None:
        if at > size:
            return None
        if at not in roots:
            try:
                roots[at] = merkle.root_at(at, table)
            except merkle.MissingNodeError:
                return None
        return roots[at]

    return size, root_at


def _root(root_at: loss.RootAt, size: int) -> bytes:
    root = root_at(size)
    assert root is not None  # the edge's own size
    return root


def _opened(
    directory: Path, prefix: str, log_id: str, epoch: int, trusted: list[VerifierKey]
) -> dict[int, bytes]:
    """Root by size of the epoch's exported checkpoints that open with the trusted keys."""
    out = {}
    origin = origins.origin(prefix, log_id, epoch)
    for _, signed in worm.read_all(directory, log_id, epoch):
        try:
            cp = open_checkpoint(signed, trusted, origin)
        except NoteError:  # not the key's: verify names it
            continue
        out[cp.size] = cp.root_hash
    return out


def describe(accepted: Accepted, log_id: str) -> str:
    """What the command prints: where, which epoch, and the sequences given up."""
    s = accepted.statement
    return (
        f"log {log_id}: loss statement of epoch {accepted.epoch} written to {accepted.path}\n"
        f"log {log_id}: epoch {accepted.epoch} ({s.origin}) continues {s.previous} at size "
        f"{s.size} (root {base64.b64encode(s.root).decode()}); sequences "
        f"{s.size}..{s.lost_size - 1} of its checkpoint of size {s.lost_size} are lost"
    )
