"""The SDK tests' server: a real ``aiaudit serve`` process on the test's store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sdk.test_logger import Server


@pytest.fixture
def server(store_url: str, tmp_path: Path) -> Iterator[Server]:
    """A server (not started) on the store, its loggers closed and it stopped after the test."""
    if store_url.startswith("sqlite"):
        store_url = f"sqlite:///{tmp_path / 'sdk.db'}"
    running = Server(store_url, tmp_path)
    yield running
    for logger in running.loggers:
        logger.close(timeout=1)
    running.stop()
