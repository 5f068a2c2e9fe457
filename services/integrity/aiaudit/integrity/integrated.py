"""The store's tree as the notary integrated it: roots up to its cursor, for loss statements.

Whether a loss statement counts depends on the store's tree (:mod:`loss`):
its ``continues`` root must be the store's at M, and a store that holds its
lost checkpoint's tree did not lose it. The notary compares them with the
tree it integrated, so every reader that answers what the statements mean
(the service's ``GetConsistencyProof``) reads the same: node rows past the
cursor (put back by hand, no key) are not the log's tree.
"""

from __future__ import annotations

import sqlalchemy as sa

from aiaudit.common.store import cursors
from aiaudit.integrity import loss, merkle, storage
from aiaudit.integrity.notary import CONSUMER


def roots(conn: sa.Connection, log_id: str) -> loss.RootAt:
    """The store's root at a size up to the notary's cursor (None: no tree there).

    Nothing is read until a root is asked for: a log without statements
    costs no query.
    """
    table = storage.NodeTable(conn, log_id)
    cursor: list[int] = []

    def root_at(size: int) -> bytes | None:
        if not cursor:
            cursor.append(cursors.position(conn, CONSUMER, log_id))
        if size > cursor[0]:
            return None
        try:
            return merkle.root_at(size, table)
        except merkle.MissingNodeError:
            return None

    return root_at
