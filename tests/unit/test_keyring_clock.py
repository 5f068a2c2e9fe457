"""The clock that dates data keys wrapped ahead misses no time the host was away.

A key wrapped ahead is stored at most ``SPARE_SECONDS`` after its wrap began, so that
a rewrap started that long after a Transit rotation finds every key under the old
version. Until 2026-12-07 the keyring read ``time.monotonic``, which stops while the
host is suspended (and a paused VM's kernel may not count the pause): a replica that
slept through the rotation and the rewrap stored its spares as fresh, under the
version then retired. The readings here are the test's own, set by hand.
"""

from __future__ import annotations

from aiaudit.common.keys.keyring import Elapsed


class Reading:
    """A clock source moved by the test."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_step_of_the_wall_clock_ahead_counts_and_one_back_does_not() -> None:
    boot, wall = Reading(100.0), Reading(1_700_000_000.0)
    clock = Elapsed(boot, wall)
    start = clock()
    boot.now += 5
    wall.now += 5
    assert clock() - start == 5
    wall.now += 600  # a paused VM, its boot clock stopped: NTP steps the system time
    assert clock() - start == 605
    wall.now -= 3_600  # set back: no reading goes back, and boot time still runs
    assert clock() - start == 605
    boot.now += 2
    assert clock() - start == 607
