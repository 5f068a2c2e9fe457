"""A window row the engine cannot read is refused with an error that says what is wrong.

``alerting_windows.samples`` holds this version's packed form (first byte 1) or the text
of earlier versions (``f64:`` or ``[``). A row of another form (a later version's, after
a rollback, or a damaged one) stops the load of the tenant's windows: the error names the
first byte and the row's tenant and rule, where a JSON parser's "Expecting value: line 1
column 1" said neither that the row was of an unknown form nor which row it was.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from aiaudit.alerting.store import AlertStore
from aiaudit.alerting.tables import windows


@pytest.mark.parametrize("stored", [b"\x07\x00\x02", b"", b"\x00f64:"])
def test_a_row_of_an_unknown_form_is_refused_naming_it(
    alerting_url: str, tenant: str, stored: bytes
) -> None:
    engine = sa.create_engine(alerting_url)
    try:
        store = AlertStore(engine)
        with store.write() as conn, conn.begin():
            conn.execute(
                sa.insert(windows).values(tenant=tenant, rule_id="w", group_key="g", samples=stored)
            )
        with engine.connect() as conn, pytest.raises(ValueError) as raised:
            store.load_windows(conn, tenant, ["w"])
        message = str(raised.value)
        assert "unknown form" in message
        assert repr(stored[:1]) in message
        assert tenant in message and "'w'" in message
    finally:
        engine.dispose()
