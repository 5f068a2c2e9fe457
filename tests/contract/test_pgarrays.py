"""Arrays encoded by ``pgarrays`` are read back by PostgreSQL as the values they came from."""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable, Iterator

import psycopg
import pytest

from aiaudit.common.store import pgarrays
from tests.conftest import Postgres

TEXTS = ["", "plain", "ünïcödé ✓ 漢字", "emoji 🙂", None, "x" * 5000]
BLOBS = [b"", b"\x00\x01\xff", None, bytes(range(256)) * 20]
TIMES = [
    dt.datetime(2026, 12, 2, 4, 5, 6, 789012, tzinfo=dt.UTC),
    dt.datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),  # before the PG epoch
    dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
    dt.datetime(1, 1, 1, tzinfo=dt.UTC),
    dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
    dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=-7))),  # any offset
]


@pytest.fixture
def conn(postgres: Postgres) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres.admin_dsn, autocommit=True) as c:
        c.execute("SET TIME ZONE 'UTC'")
        yield c


@pytest.mark.parametrize(
    ("encode", "cast", "values"),
    [
        (pgarrays.text_array, "text[]", TEXTS),
        (pgarrays.bytea_array, "bytea[]", BLOBS),
        (pgarrays.timestamptz_array, "timestamptz[]", TIMES),
        (pgarrays.int2_array, "smallint[]", [0, 1, -1, 32767, -32768]),
        (pgarrays.int8_array, "bigint[]", [0, 1, -1, 2**63 - 1, -(2**63), 1_000_000]),
        (pgarrays.text_array, "text[]", []),
    ],
)
def test_round_trip_through_postgresql(
    conn: psycopg.Connection,
    encode: Callable[[list[object]], pgarrays.EncodedArray],
    cast: str,
    values: list[object],
) -> None:
    row = conn.execute(
        f"SELECT %b::{cast}, cardinality(%b::{cast})", [encode(values), encode(values)]
    ).fetchone()
    assert row is not None
    back, length = row
    assert length == len(values)
    assert back == values


def test_unnest_keeps_the_order_and_the_nulls(conn: psycopg.Connection) -> None:
    """What the small-group statement does with them: one row per position."""
    rows = conn.execute(
        "SELECT t, b, ord FROM unnest(%b::text[], %b::bytea[]) WITH ORDINALITY AS i(t, b, ord)",
        [pgarrays.text_array(["a", None, "c"]), pgarrays.bytea_array([None, b"\x01", b""])],
    ).fetchall()
    assert rows == [("a", None, 1), (None, b"\x01", 2), ("c", b"", 3)]


def test_a_naive_time_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(TypeError):
        pgarrays.timestamptz_array([dt.datetime(2026, 1, 1)])


def test_an_integer_out_of_range_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(struct.error):
        pgarrays.int2_array([32768])
    with pytest.raises(struct.error):
        pgarrays.int8_array([2**63])
