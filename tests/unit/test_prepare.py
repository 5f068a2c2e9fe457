"""``prepare`` stamps the receive time into the wire bytes: same result as stamping the message."""

from __future__ import annotations

import datetime as dt

import pytest

from aiaudit.common import canonical
from aiaudit.common.store.prepare import prepare, prepare_batch, receive_time_field
from aiaudit.common.v1 import event_pb2 as ev
from tests.helpers import interaction

SALT = b"s" * 32
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def reference(event: ev.Event, at: dt.datetime) -> canonical.Committed:
    """The construction the wire stamp must equal: a copy with its fields set, committed."""
    stamped = ev.Event()
    stamped.CopyFrom(event)
    stamped.receive_time.FromDatetime(at)
    stamped.occurred_time.nanos -= stamped.occurred_time.nanos % 1000
    return canonical.commit(stamped, SALT)


@pytest.mark.parametrize(
    ("client_receive", "occurred", "at"),
    [
        (None, (1_772_000_000, 123_456_000), dt.datetime(2026, 12, 2, 9, 0, 0, 1, tzinfo=dt.UTC)),
        # a client's receive time, nanos and all, is replaced, even by a zero nanos
        ((5, 999_999_999), (1_772_000_000, 7), dt.datetime(2026, 12, 2, tzinfo=dt.UTC)),
        ((-5, 1), (-86_400, 999_999), dt.datetime(1969, 12, 31, 23, 59, 59, 5, tzinfo=dt.UTC)),
        (None, (0, 0), dt.datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=dt.UTC)),
    ],
)
def test_stamped_wire_commits_as_the_stamped_message(
    client_receive: tuple[int, int] | None, occurred: tuple[int, int], at: dt.datetime
) -> None:
    event = interaction("t", text="hello")
    if client_receive is not None:
        event.receive_time.seconds, event.receive_time.nanos = client_receive
    event.occurred_time.seconds, event.occurred_time.nanos = occurred
    expected = reference(event, at)
    wire = event.SerializeToString()
    for got in (prepare(ev.Event.FromString(wire), at, SALT, wire), prepare(event, at, SALT)):
        assert got.committed == expected
        assert got.receive_time == at
        # stamped and cut in place: the event as stored
        assert got.event == canonical.restore(expected.canonical, expected.content)


def test_a_batch_gets_one_receive_time_and_a_salt_each() -> None:
    at = dt.datetime(2026, 12, 2, 9, 30, tzinfo=dt.UTC)
    events = [interaction("t", text=f"m{i}") for i in range(3)]
    wires = [e.SerializeToString() for e in events]
    batch = prepare_batch(events, at, wires)
    assert len({n.salt for n in batch}) == 3
    for e, wire, n in zip(events, wires, batch, strict=True):
        since = at - EPOCH
        stamp = receive_time_field(since.days * 86_400 + since.seconds, since.microseconds * 1000)
        assert n.committed == canonical.commit_wire(wire + stamp, n.salt)
        restored = canonical.restore(n.committed.canonical, n.committed.content)
        assert restored.receive_time.ToDatetime(dt.UTC) == at
        assert restored == e == n.event
