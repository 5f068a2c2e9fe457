"""Alerting: window samples are stored as bytes, packed (``alerting_windows.samples``).

The engine rewrites every window that took a sample at each save. As text
(``f64:`` + base64 of raw doubles) a window of 400 samples was a row of 8.5 KB,
which PostgreSQL compressed and moved out of line: 75-100 ms a save of 550
such windows measured alone (110-150 ms, 13-16% of the engine's time, in the
alerting benchmark). Packed (``aiaudit.alerting.store.pack_samples``: each
sample's difference from the previous one, a few bytes) the same rows are
~1.6 KB, stored inline, and the save takes 12-16 ms.

Rows written before keep their text as its UTF-8 bytes (``f64:`` + base64, the
JSON pairs of earlier versions, a long group's ``[group, samples]``, the
journal's JSON), which the new code still reads: the windows they hold are
rebuilt exactly. On PostgreSQL the column's type changes in place (the table is
rewritten once, under its lock); on SQLite the table is copied with the column
as BLOB and the text values cast to blobs.

A database created from scratch already has the bytes column (``alerting_0001``
creates the tables from the current definitions): then nothing is done.
"""

import sqlalchemy as sa
from alembic import op

revision = "alerting_0006"
down_revision = "alerting_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Makes ``samples`` bytes where it is still text, keeping each row's text as UTF-8."""
    bind = op.get_bind()
    column = next(
        c for c in sa.inspect(bind).get_columns("alerting_windows") if c["name"] == "samples"
    )
    if isinstance(column["type"], sa.LargeBinary):
        return
    if bind.dialect.name == "postgresql":
        op.execute(
            "ALTER TABLE alerting_windows ALTER COLUMN samples TYPE bytea"
            " USING convert_to(samples, 'UTF8')"
        )
        return
    with op.batch_alter_table("alerting_windows") as batch:
        batch.alter_column("samples", type_=sa.LargeBinary, existing_nullable=False)
    op.execute(
        "UPDATE alerting_windows SET samples = CAST(samples AS BLOB) WHERE typeof(samples) = 'text'"
    )
