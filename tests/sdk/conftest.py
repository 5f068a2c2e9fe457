"""The SDK tests' servers: a real ``aiaudit serve`` process, or the suite in this process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.sdk.test_concurrency_limit import SdkServer
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


@pytest.fixture
def in_process(store_url: str, tmp_path: Path) -> Iterator[Callable[..., SdkServer]]:
    """Starts a :class:`SdkServer` (in this process) serving many calls at once, with the given
    settings (data in ``path``, the test's directory unless told); each stopped after the test."""
    started: list[SdkServer] = []

    def start(path: Path = tmp_path, **overrides: object) -> SdkServer:
        path.mkdir(exist_ok=True)
        started.append(SdkServer(store_url, path, one_call=False, **overrides))
        return started[-1]

    yield start
    for server in started:
        server.stop()
