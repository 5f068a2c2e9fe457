"""The native core keeps the interpreter lock for per-event work on small events.

A thread that releases it must then wait for whichever thread took it over,
up to the switch interval (5 ms) when that thread is busy in Python: a
search page restored 50 events in 256 ms instead of 0.3 ms beside one busy
thread. Large inputs are still worked on with the lock released.

How it is observed without timing anything: see :func:`released`.
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
import time
from collections.abc import Callable

import aiaudit_native

from aiaudit.common import canonical
from aiaudit.common.store.prepare import prepare
from aiaudit.ingest.validation import Limits, native_checks
from tests.helpers import interaction

TRIES = 20
"""Tries to see a release; a call that never releases fails them all."""
SWITCH_INTERVAL = 0.2
"""Far longer than the calls watched (microseconds each), short enough to keep the test
quick: every time the main thread waits while the counter runs costs up to this."""


def released(call: Callable[[], object]) -> bool:
    """Whether ``call`` let another thread run, i.e. released the interpreter lock.

    A second thread counts while it holds the lock. Once the main thread has
    taken the lock back (the counter then waits for it), nothing but a release
    lets the counter run within the switch interval, so its count moves
    during ``call`` exactly when ``call`` released the lock.
    """
    count = 0
    stop = False
    started = threading.Event()

    def run() -> None:
        nonlocal count
        started.set()
        while not stop:
            count += 1

    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL)
    thread = threading.Thread(target=run, daemon=True)
    try:
        thread.start()
        started.wait()
        before = count
        call()
        moved = count != before
    finally:
        stop = True
        thread.join()
        sys.setswitchinterval(previous)
    return moved


def stored(text_size: int) -> tuple[bytes, bytes, dict[str, str]]:
    """A serialised event, its canonical form and content, the user's text ``text_size`` long."""
    event = interaction("lock-test")
    event.input.messages[0].parts[0].text = "x" * text_size
    new = prepare(event, dt.datetime.now(dt.UTC))
    return event.SerializeToString(), new.committed.canonical, new.committed.content


def test_per_event_calls_on_small_events_keep_the_lock() -> None:
    schema, checks = canonical.native_schema(), native_checks(Limits())
    wire, body, content = stored(200)
    assert not released(lambda: schema.restore(body, content))
    assert not released(lambda: schema.restore(body, None))
    assert not released(lambda: schema.commit(wire, bytes(32)))
    assert not released(lambda: checks.check(wire, 1e10, bool))
    card = [("output.messages[0].parts[0].text", "card 4111 1111 1111 1111")]
    assert aiaudit_native.detect("pii", [], card, [])  # a finding: the detector did run
    assert not released(lambda: aiaudit_native.detect("pii", [], card, []))


def test_large_events_are_worked_on_with_the_lock_released() -> None:
    """A release is seen only if the counter wakes before the call ends: several tries (in a
    full test run, threads other tests left behind may take the lock at a release first)."""
    schema, checks = canonical.native_schema(), native_checks(Limits())
    wire, body, content = stored(2 * 1024 * 1024)
    assert any(released(lambda: schema.restore(body, content)) for _ in range(TRIES))
    assert any(released(lambda: schema.commit(wire, bytes(32))) for _ in range(TRIES))
    assert any(released(lambda: checks.check(wire, 1e10, bool)) for _ in range(TRIES))
    long_text = [("output.messages[0].parts[0].text", "lorem ipsum " * 200_000)]
    assert any(
        released(lambda: aiaudit_native.detect("pii", [], long_text, [])) for _ in range(TRIES)
    )


def test_the_method_sees_a_release_and_only_a_release() -> None:
    assert released(lambda: time.sleep(0.001))
    assert not released(lambda: sum(range(1000)))
