"""readable_prefix: the part of a batch before its first damaged row, found in few reads."""

from __future__ import annotations

import pytest

from aiaudit.common.restore import StoredAsTextEventError
from aiaudit.common.store.readable import readable_prefix

START = 100


class Log:
    """A log whose entries from ``damaged`` on do not read; ``budget`` cuts a read short."""

    def __init__(self, damaged: int, budget: int | None = None, named: bool = False) -> None:
        self.damaged, self.budget, self.named = damaged, budget, named
        self.reads: list[int] = []

    def read(self, n: int) -> list[int]:
        self.reads.append(n)
        if self.budget is not None and n > self.budget:
            n = self.budget  # cut before what it was asked, as a byte budget cuts
        if START + n > self.damaged:
            if self.named:
                raise StoredAsTextEventError("L", "e", self.damaged, ["events.canonical"])
            raise ValueError("sealed content does not open")
        return list(range(START, START + n))


@pytest.mark.parametrize("damaged", [START, START + 1, START + 7, START + 499])
def test_the_prefix_before_the_damaged_row_and_its_error(damaged: int) -> None:
    log = Log(damaged)
    with pytest.raises(ValueError) as first:
        log.read(500)
    good, error = readable_prefix(log.read, "L", START, 500, first.value)
    assert good == list(range(START, damaged))
    assert isinstance(error, ValueError)


def test_a_row_named_by_its_error_is_found_in_one_read() -> None:
    log = Log(START + 321, named=True)
    with pytest.raises(StoredAsTextEventError) as first:
        log.read(500)
    log.reads.clear()
    good, error = readable_prefix(log.read, "L", START, 500, first.value)
    assert good == list(range(START, START + 321))
    assert log.reads == [321]
    assert isinstance(error, StoredAsTextEventError)


def test_a_held_log_costs_one_read_of_its_first_entry() -> None:
    log = Log(START)
    with pytest.raises(ValueError) as first:
        log.read(500)
    log.reads.clear()
    assert readable_prefix(log.read, "L", START, 500, first.value)[0] == []
    assert log.reads == [1]


def test_a_read_cut_by_its_budget_before_the_damaged_row_is_returned_without_error() -> None:
    log = Log(START + 400)
    with pytest.raises(ValueError) as first:
        log.read(500)
    log.budget = 150  # larger rows: a narrowed read is cut before the damaged row
    good, error = readable_prefix(log.read, "L", START, 500, first.value)
    assert error is None
    assert good == list(range(START, START + 150))
