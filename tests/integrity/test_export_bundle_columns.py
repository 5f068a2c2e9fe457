"""An export is proven only against a checkpoint whose columns are what its signed note says.

``aiaudit integrity export-bundle`` took the latest checkpoint row's ``tree_size`` and
``root_hash`` as they were: a row forged by raw SQL (the real row copied under size 1000)
made it record an export of 1,000 events, then stop with a traceback (the stored tree
"missing a node"); a row whose root was rewritten was exported, the command naming the forged
root as the one its bundle is proven against (review, 2026-12-07). Each now fails in one line
naming the row and column, before the export is recorded, and writes nothing, as the RPCs do
(storage.as_noted).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from aiaudit.cli.main import main
from aiaudit.common.store import SqlEventStore
from aiaudit.integrity import storage
from aiaudit.integrity.tables import checkpoints
from tests.helpers import access_records
from tests.integrity.conftest import Notaries
from tests.integrity.test_cli import checkpointed, said
from tests.integrity.test_export_bundle import exporting, leftovers


@pytest.mark.parametrize(
    ("forged", "column", "detail"),
    [
        ({"tree_size": 1000}, "tree_size", "is not the size its note states ({size})"),
        ({"root_hash": b"\xff" * 32}, "root_hash", "is not the root hash its note states"),
    ],
)
def test_a_checkpoint_row_unlike_its_note_fails_the_export_naming_the_column(
    store_url: str,
    admin_url: str,
    store: SqlEventStore,
    notaries: Notaries,
    tenant: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    forged: dict[str, object],
    column: str,
    detail: str,
) -> None:
    checkpointed(store, notaries, tenant, tmp_path)
    for notary, _ in notaries.started:  # nothing signed beside the forged row
        notary.stop()
    engine = sa.create_engine(admin_url)
    try:
        with engine.begin() as conn:  # the latest row, copied (size) or rewritten (root)
            real = storage.latest_checkpoint(conn, tenant)
            assert real is not None
            mine = (checkpoints.c.log_id == tenant, checkpoints.c.tree_size == real.tree_size)
            if "tree_size" in forged:
                row = conn.execute(sa.select(checkpoints).where(*mine)).one()
                conn.execute(sa.insert(checkpoints).values(**{**row._asdict(), **forged}))
            else:
                conn.execute(sa.update(checkpoints).where(*mine).values(**forged))
    finally:
        engine.dispose()
    at = forged.get("tree_size", real.tree_size)
    out = tmp_path / "out.jsonl"
    capsys.readouterr()
    assert main([*exporting(store_url, notaries, tenant), str(out)]) == 1
    assert said(capsys) == [
        f"aiaudit integrity export-bundle: log {tenant!r} stored checkpoint at size {at}: "
        f"column integrity_checkpoints.{column} {detail.format(size=real.tree_size)} "
        "(rewritten by raw SQL?); nothing was exported; run `aiaudit verify` on the store"
    ]
    assert not out.exists()
    assert leftovers(tmp_path) == []
    assert access_records(store_url, tenant) == []  # no export recorded that did not happen
