"""A background thread that polls, can be woken early, and stops cleanly."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod


class Worker(ABC):
    """Base of the consumers' loops: ``_run`` waits on ``_wake`` between passes."""

    def __init__(self, name: str) -> None:
        """A stopped worker; ``start`` runs it."""
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Starts the loop."""
        self._thread.start()

    def wake(self) -> None:
        """New work exists: run a pass now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Finishes the current pass and stops."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=timeout)

    @abstractmethod
    def _run(self) -> None:
        """The loop; returns once ``_stop`` is set."""
