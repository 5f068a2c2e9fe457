"""The throttle on lines anyone can cause (a refused login each): bounded, nothing uncounted."""

from __future__ import annotations

from aiaudit.common.auth import LogThrottle


class Clock:
    """Time that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_cut_at_the_rate_and_the_next_line_counts_what_was_held() -> None:
    clock = Clock()
    throttle = LogThrottle(10, clock)
    assert [throttle.allow() for _ in range(10)] == [0] * 10
    assert [throttle.allow() for _ in range(25)] == [None] * 25
    clock.now += 0.125  # a line and a quarter's worth of time
    assert throttle.allow() == 25
    assert throttle.allow() is None
    clock.now += 60  # a quiet minute refills the bucket, no more than full
    assert [throttle.allow() for _ in range(11)] == [1] + [0] * 9 + [None]


def test_steady_calls_under_the_rate_are_all_logged() -> None:
    clock = Clock()
    throttle = LogThrottle(10, clock)
    for _ in range(1000):
        clock.now += 0.2  # five a second
        assert throttle.allow() == 0
