"""How window samples are stored (``alerting_windows.samples``): packed bytes, and the text
rows of earlier versions still loading after migration ``alerting_0006``.

A restart or a restore rebuilds windows from these rows (and the replay after the
windows cursor), so they must give back every sample bit for bit, whatever version
wrote them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from aiaudit.alerting.evaluate import Evaluator, WindowState
from aiaudit.alerting.rules import compile_rule
from aiaudit.alerting.store import JOURNAL, AlertStore
from aiaudit.alerting.tables import windows
from aiaudit.common.store.migrate import migrate
from tests.helpers import store_as_left

Sample = tuple[float, float]
RULE = compile_rule(
    "id: w\nseverity: low\nwindow:\n    duration: 1h\n    aggregate: sum\n"
    "    field: usage.output_tokens\n    group_by: [actor.user_id]\n    threshold: {gt: 1.0e+300}\n"
)
ODD = [0.0, -0.0, float("nan"), float("inf"), float("-inf"), 5e-324, -1.5, 0.1, 1.0e300]


def _bits(samples: list[Sample] | None) -> list[tuple[bytes, bytes]]:
    assert samples is not None
    return [(struct.pack("<d", t), struct.pack("<d", v)) for t, v in samples]


def _state(groups: dict[str, list[Sample]]) -> WindowState:
    """Window state holding these samples (marked changed, as evaluation leaves them)."""
    state = WindowState()
    Evaluator([RULE]).add_samples(
        [("w", g, t, v) for g, samples in groups.items() for t, v in samples], state
    )
    return state


def _text_f64(samples: list[Sample]) -> str:
    """Samples as versions before ``alerting_0006`` stored them."""
    raw = b"".join(struct.pack("<dd", t, v) for t, v in samples)
    return "f64:" + base64.b64encode(raw).decode()


def test_a_saved_window_is_a_small_row_and_loads_back_bit_for_bit(
    alerting_url: str, tenant: str
) -> None:
    """400 samples of a window a quarter of a second apart: as text (``f64:`` + base64) the
    row was 8.5 KB, which PostgreSQL compressed and moved out of line at every save."""
    spread = [(round(1_780_000_000 + i * 0.25 + (i % 7) * 1e-3, 6), 1.0) for i in range(400)]
    odd = [(1_780_000_000.0 + i, v) for i, v in enumerate(ODD)]
    long_group = "g" * 600 + "\x00"  # stored under a digest, the group with the samples
    state = _state({"bob": spread, "odd": odd, long_group: spread[:3]})
    engine = sa.create_engine(alerting_url)
    try:
        store = AlertStore(engine)
        with store.write() as conn, conn.begin():
            store.save_windows(conn, tenant, state.take_changed())
        with engine.connect() as conn:
            size = conn.execute(
                sa.select(sa.func.length(windows.c.samples)).where(
                    windows.c.tenant == tenant, windows.c.group_key == "bob"
                )
            ).scalar_one()
            loaded = store.load_windows(conn, tenant, ["w"])
        assert size < 2000  # PostgreSQL keeps a row under ~2 KB inline, uncompressed
        assert len(loaded) == 3
        for group in ("bob", "odd", long_group):
            assert _bits(loaded.samples("w", group)) == _bits(state.samples("w", group))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def earlier(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """A store as versions before ``alerting_0006`` left it: at ``alerting_0005``, the
    samples column text (``alerting_0001`` makes the tables from today's definitions)."""

    def set_back(conn: sa.Connection) -> None:
        if conn.dialect.name == "postgresql":
            conn.execute(
                sa.text("ALTER TABLE alerting_windows ALTER COLUMN samples TYPE text USING ''")
            )
            return
        conn.execute(sa.text("DROP TABLE alerting_windows"))
        conn.execute(
            sa.text(
                "CREATE TABLE alerting_windows (tenant VARCHAR(64) NOT NULL,"
                " rule_id VARCHAR(64) NOT NULL, group_key VARCHAR(512) NOT NULL,"
                " samples TEXT NOT NULL, PRIMARY KEY (tenant, rule_id, group_key))"
            )
        )

    with store_as_left(request, tmp_path, "alerting_0005", set_back) as engine:
        yield engine


def test_rows_of_earlier_versions_still_load_after_the_migration(earlier: sa.Engine) -> None:
    f64 = [(1_780_000_000.25, 1.0), (1_780_000_001.5, 2.5), (1_780_000_002.0, float("nan"))]
    pairs = [(1_700_000_000.5, 1.0), (1_700_000_001.25, 42.0)]
    long_group = "g" * 600
    digested = "\x01sha256:" + hashlib.sha256(long_group.encode()).hexdigest()
    journal = [[7, "w", "bob", 1_780_000_003.0, 5.0]]
    with earlier.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO alerting_windows (tenant, rule_id, group_key, samples)"
                " VALUES ('t', :r, :g, :s)"
            ),
            [
                {"r": "w", "g": "alice", "s": _text_f64(f64)},
                {"r": "w", "g": "bob", "s": json.dumps([list(p) for p in pairs])},
                {"r": "w", "g": digested, "s": json.dumps([long_group, _text_f64(f64[:2])])},
                {"r": JOURNAL, "g": f"{10:020d}", "s": json.dumps(journal)},
            ],
        )
    migrate(earlier)
    migrate(earlier)  # again: nothing to do
    column = next(
        c for c in sa.inspect(earlier).get_columns("alerting_windows") if c["name"] == "samples"
    )
    assert isinstance(column["type"], sa.LargeBinary)
    store = AlertStore(earlier)
    with earlier.connect() as conn:
        loaded = store.load_windows(conn, "t", ["w"])
        assert store.load_journal(conn, "t", 0, 10) == {7: [("w", "bob", 1_780_000_003.0, 5.0)]}
    assert len(loaded) == 3
    assert _bits(loaded.samples("w", "alice")) == _bits(f64)
    assert _bits(loaded.samples("w", "bob")) == _bits(pairs)
    assert _bits(loaded.samples("w", long_group)) == _bits(f64[:2])
    # The next save rewrites a window over its old row; the others still load as they were.
    later = _state({"alice": [*f64, (1_780_000_009.0, 3.0)], long_group: [(1.0, 2.0)]})
    with store.write() as conn, conn.begin():
        store.save_windows(conn, "t", later.take_changed())
    with earlier.connect() as conn:
        again = store.load_windows(conn, "t", ["w"])
    assert _bits(again.samples("w", "alice")) == _bits(later.samples("w", "alice"))
    assert _bits(again.samples("w", long_group)) == _bits([(1.0, 2.0)])
    assert _bits(again.samples("w", "bob")) == _bits(pairs)
