"""Signed receipts: the seam between ingest (which acknowledges) and the notary (which signs).

Ingest must not depend on the integrity service, and the integrity service
must not sit on the ack path over the network. So the integrity component,
when it runs in the same process, installs a ``ReceiptSigner`` in the
``ReceiptSigning`` slot the shared ``Context`` carries; ingest looks it up per
request. The Vault token stays with the integrity component's configuration;
a process that runs ingest without integrity has no signer and refuses
``sign_receipts`` requests up front (nothing is written).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

from aiaudit.common.store.sql import Receipt


class ReceiptSigningUnavailableError(RuntimeError):
    """The key cannot sign right now (Vault down, sealed, denied); the events are committed."""


class ReceiptSigner(Protocol):
    """Signs the receipts of one acknowledged batch."""

    def sign(self, receipts: Sequence[Receipt]) -> list[str]:
        """One signed note per log in ``receipts``, covering all of that log's receipts.

        Raises ``ReceiptSigningUnavailableError`` when the key cannot sign.
        """
        ...


class ReceiptSigning:
    """The slot a receipt signer is installed in (empty until the integrity component starts).

    Components start in order on one ``Context``; ingest starts first and reads
    the slot per request, so the signer the integrity component installs later
    is still found.
    """

    def __init__(self) -> None:
        """An empty slot."""
        self._lock = threading.Lock()
        self._signer: ReceiptSigner | None = None

    def install(self, signer: ReceiptSigner | None) -> None:
        """Sets (or with ``None`` removes) the signer."""
        with self._lock:
            self._signer = signer

    def get(self) -> ReceiptSigner | None:
        """The installed signer, if any."""
        with self._lock:
            return self._signer
