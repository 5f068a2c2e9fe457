"""A data key an erasure destroyed opens nothing more, even in a process that held it.

Crypto-shredding holds only while no process keeps the key: a reader (search,
alerting, integrity) caches data keys by id, and one that had read the
subject's events before the erasure went on opening their content with it.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from aiaudit.common.erasure import erase
from aiaudit.common.store.schema import event_content
from tests.conftest import Postgres
from tests.contract.test_content_keys import append, keyed
from tests.helpers import interaction


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def _urls(sealed_store: Postgres | str) -> tuple[str, str, str]:
    if isinstance(sealed_store, str):
        return sealed_store, sealed_store, sealed_store
    return sealed_store.app_url, sealed_store.privacy_url, sealed_store.admin_url


def test_content_put_back_after_its_subjects_erasure_opens_in_no_process(
    sealed_store: Postgres | str, tmp_path: Path, tenant: str
) -> None:
    """The sealed rows of a backup, put back after the erasure, stay shredded everywhere."""
    app_url, privacy_url, admin_url = _urls(sealed_store)
    kek = tmp_path / "kek"
    writer = keyed(app_url, kek)
    append(writer, interaction(tenant, "a-1", text="alice's diagnosis", user="alice"))
    append(writer, interaction(tenant, "b-1", text="bob's note", user="bob"))
    engine = sa.create_engine(admin_url)
    with engine.connect() as conn:
        backup = [dict(r._mapping) for r in conn.execute(sa.select(event_content)).all()]
    reader = keyed(app_url, kek)  # a long-running reader: it has opened alice's content
    assert {s.event_id: s.content is not None for s in reader.read_log(tenant, 0, 10)} == {
        "a-1": True,
        "b-1": True,
    }
    eraser = keyed(privacy_url, kek)
    assert erase(eraser, tenant, "gdpr", "officer", subject_id="alice").erased == ["a-1"]
    with engine.begin() as conn:  # a table restored from a backup taken before the erasure
        conn.execute(
            sa.insert(event_content),
            [r for r in backup if r["log_id"] == tenant and r["seq"] == 0],
        )
    engine.dispose()
    fresh = keyed(app_url, kek)
    try:
        for each in (fresh, reader, writer):
            found = {s.event_id: s for s in each.read_log(tenant, 0, 10)}
            assert found["a-1"].content is None, "the key is destroyed: nothing opens it"
            assert found["b-1"].to_event().input.messages[0].parts[0].text == "bob's note"
    finally:
        for each in (writer, reader, eraser, fresh):
            each.close()
