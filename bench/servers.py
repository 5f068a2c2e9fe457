"""The suite as a server process of its own, as in production.

A benchmark that ran the server in its own process shared the GIL between the
client timing the calls, the server answering them and the server's background
threads (indexer, notary), and measured their contention as latency.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import write_keys
from tests.helpers import clear_on_postgres_env, free_port, serve_process


@dataclass(frozen=True)
class Server:
    """Where the server listens, its key of each role, and its data directory."""

    address: str
    keys: dict[str, str]
    data_dir: Path


@contextlib.contextmanager
def suite_server(
    url: str, services: Sequence[str], workers: int = 1, config: Path | None = None
) -> Iterator[Server]:
    """``aiaudit serve`` of ``services`` on store ``url``, API keys on, until the block ends.

    On PostgreSQL content is stored in clear, as the recorded figures were, unless the
    environment says otherwise (``AIAUDIT_CONTENT_KEYS=file`` measures sealing).
    """
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        keys = write_keys(Path(tmp) / "keys.yaml")
        server = serve_process(
            [
                *(["--config", str(config)] if config else []),
                "--address",
                f"127.0.0.1:{port}",
                "--services",
                ",".join(services),
                *(["--workers", str(workers)] if workers != 1 else []),
            ],
            {
                **os.environ,
                "AIAUDIT_DATABASE_URL": url,
                "AIAUDIT_DATA_DIR": tmp,
                "AIAUDIT_LOG_LEVEL": "WARNING",
                "AIAUDIT_API_KEYS_FILE": f"{tmp}/keys.yaml",
                **clear_on_postgres_env(url),
                **{k: v for k, v in os.environ.items() if k == "AIAUDIT_CONTENT_KEYS"},
            },
        )
        try:
            yield Server(f"127.0.0.1:{port}", keys, Path(tmp))
        finally:
            server.terminate()
            server.wait()
