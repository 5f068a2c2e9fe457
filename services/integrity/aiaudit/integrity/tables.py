"""Tables of the integrity service: the Merkle tree's stored nodes and signed checkpoints.

Both are append-only: a perfect subtree hash never changes once its last
leaf is integrated, and a signed checkpoint is a statement that is never
withdrawn. On PostgreSQL only INSERT and SELECT are granted on them.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

nodes = sa.Table(
    "integrity_nodes",
    metadata,
    sa.Column("log_id", sa.String(64), primary_key=True),
    sa.Column("level", sa.SmallInteger, primary_key=True),
    sa.Column("idx", sa.BigInteger, primary_key=True),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
)
"""Perfect subtree hashes: leaves ``[idx * 2**level, (idx + 1) * 2**level)`` of a log.

Level 0 holds the leaf hashes as the notary integrated them, so ``verify``
can name an event whose stored leaf changed after integration.
"""

checkpoints = sa.Table(
    "integrity_checkpoints",
    metadata,
    sa.Column("log_id", sa.String(64), primary_key=True),
    sa.Column("tree_size", sa.BigInteger, primary_key=True),
    sa.Column("root_hash", sa.LargeBinary(32), nullable=False),
    sa.Column("signed_note", sa.Text, nullable=False),
    sa.Column("sign_time", sa.DateTime(timezone=True), nullable=False),
    sa.Column("key_version", sa.String(64), nullable=False),
)
"""Every signed checkpoint; the primary key makes two notaries unable to sign one size twice."""
