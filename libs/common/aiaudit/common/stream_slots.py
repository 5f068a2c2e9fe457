"""Caps on open streams: each holds one of the server's RPC threads for as long as it is open.

The server has ``rpc_threads`` of them, 64 by default and never fewer (``config.MIN_RPC_THREADS``),
and holds at least 64 calls at once (``config.MIN_CONCURRENT_RPCS``): open streams count there too.

Uncapped, streams of one RPC (``AppendStream``, ``WatchAlerts``, ``Export``, and on the main
port reflection's ``ServerReflectionInfo``, capped in ``aiaudit.cli.server.ServiceStreams``)
could take every thread, and every other RPC of the process, a gateway's unary ``Append``
included, would wait for one. Health's ``Watch`` holds no thread: its slots, counted apart
from the others (a :class:`ProcessStreams` of its own), bound memory.
"""

from __future__ import annotations

import collections
import threading

import grpc
from google.rpc import code_pb2

from aiaudit.common import status
from aiaudit.common.config import ConfigError

CEILING = 48
"""Most streams a process holds open, of every capped RPC together (and the most one RPC
may be configured to): 16 of its RPC threads (at least 64, ``rpc_threads``) stay for the
other RPCs whatever the settings."""


def check_limits(setting: str, most: int, per_caller: int) -> None:
    """Refuses limits that cannot work; ``setting`` names the first, e.g. ``ingest.max_...``."""
    if not 1 <= most <= CEILING:
        raise ConfigError(
            f"setting '{setting}': {most} is invalid: 1 to {CEILING} (each open stream holds "
            "one of the server's RPC threads, 64 by default)"
        )
    if not 1 <= per_caller <= most:
        name = setting.rpartition(".")[2]
        raise ConfigError(
            f"setting '{setting}_per_caller': {per_caller} is invalid: 1 to {name} ({most})"
        )


class ProcessStreams:
    """The open streams of every capped RPC of a process, against :data:`CEILING`."""

    def __init__(self, most: int = CEILING) -> None:
        """``most`` streams in all."""
        self.most = most
        self.open = 0
        self.lock = threading.Lock()


PROCESS = ProcessStreams()


class StreamSlots:
    """Counts the open streams of one RPC, in all and per principal, against their limits."""

    def __init__(
        self, rpc: str, most: int, per_caller: int, process: ProcessStreams = PROCESS
    ) -> None:
        """``most`` streams of ``rpc`` (named in refusals), ``per_caller`` for one principal.

        ``process`` counts them with the other capped RPCs' (two services'
        limits, each allowed alone, could otherwise take every thread together).
        """
        self.rpc, self.most, self.per_caller = rpc, most, per_caller
        self._process = process
        self._open: collections.Counter[str] = collections.Counter()

    def take(self, principal: str) -> str:
        """Takes a slot; "" when taken, else why not."""
        with self._process.lock:
            if self._open.total() >= self.most:
                return f"{self.most} {self.rpc} streams are open on this server, its limit"
            if self._open[principal] >= self.per_caller:
                return f"caller {principal!r} has {self.per_caller} {self.rpc} streams open"
            if self._process.open >= self._process.most:
                return (
                    f"{self._process.most} streams of this server's RPCs are open, "
                    "the most its threads allow"
                )
            self._open[principal] += 1
            self._process.open += 1
            return ""

    def give_back(self, principal: str) -> None:
        """Frees a slot taken by :meth:`take`."""
        with self._process.lock:
            self._open[principal] -= 1
            self._process.open -= 1
            if not self._open[principal]:
                del self._open[principal]

    def take_or_abort(
        self, context: grpc.ServicerContext, principal: str, reason: str, advice: str
    ) -> None:
        """Takes a slot, or ends the call: RESOURCE_EXHAUSTED with ``reason`` and ``advice``."""
        refused = self.take(principal)
        if refused:
            status.abort(
                context,
                status.error(
                    code_pb2.RESOURCE_EXHAUSTED,
                    f"{refused}; {advice}",
                    reason,
                    limit=str(self.most),
                    per_caller=str(self.per_caller),
                ),
            )
