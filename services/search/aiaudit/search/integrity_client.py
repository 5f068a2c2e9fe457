"""Calls to IntegrityService on behalf of a search caller, with the caller's own credentials.

Search holds no credential of its own for proofs: each call forwards the
caller's ``authorization`` header, so the integrity service applies the
caller's ``proofs.read`` grant and records the access under the caller's
principal (least privilege: a search replica cannot read proofs nobody asked
for). Services meet only through the protos.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import grpc

from aiaudit.common import client
from aiaudit.common.v1 import proof_pb2
from aiaudit.integrity.v1 import integrity_service_pb2 as ipb
from aiaudit.integrity.v1 import integrity_service_pb2_grpc as ipb_grpc

Metadata = tuple[tuple[str, str], ...]


def forwarded(context: grpc.ServicerContext) -> Metadata:
    """The incoming call's ``authorization`` header, to send on with the caller's calls."""
    return tuple((str(k), str(v)) for k, v in context.invocation_metadata() if k == "authorization")


def origin(cp: proof_pb2.Checkpoint) -> str:
    """The origin line a checkpoint's signed note begins with (c2sp.org/tlog-checkpoint)."""
    return cp.signed_note.partition("\n")[0]


class IntegrityClient:
    """A channel to IntegrityService; every method raises ``grpc.RpcError`` as received."""

    def __init__(
        self,
        address: str,
        ca_file: Path | None,
        timeout: float,
        identity: tuple[Path, Path] | None = None,
    ) -> None:
        """Opens the channel lazily (gRPC connects on the first call).

        ``identity``: the certificate and key this server presents as a client
        where the integrity service asks for one (mTLS).
        """
        self.address = address
        self._channel = client.RenewingChannel(address, None, ca_file, identity)
        self._stubs: tuple[grpc.Channel, ipb_grpc.IntegrityServiceStub] | None = None
        self._timeout = timeout

    @property
    def timeout(self) -> float:
        """Deadline in seconds of each call (``search.integrity_timeout``)."""
        return self._timeout

    @property
    def _stub(self) -> ipb_grpc.IntegrityServiceStub:
        """The stub of the current channel (a new one after the TLS files were renewed)."""
        ch, known = self._channel.current(), self._stubs
        if known is not None and known[0] is ch:
            return known[1]
        stub = ipb_grpc.IntegrityServiceStub(ch)  # type: ignore[no-untyped-call]
        self._stubs = (ch, stub)
        return stub

    def close(self) -> None:
        """Closes the channel."""
        self._channel.close()

    def verify_event(self, md: Metadata, log_id: str, event_id: str) -> ipb.VerifyEventResponse:
        """IntegrityService.VerifyEvent."""
        request = ipb.VerifyEventRequest(log_id=log_id, event_id=event_id)
        response: ipb.VerifyEventResponse = self._stub.VerifyEvent(
            request, timeout=self._timeout, metadata=md
        )
        return response

    def latest_checkpoint(self, md: Metadata, log_id: str) -> proof_pb2.Checkpoint | None:
        """The latest signed checkpoint; None while the log has none (FAILED_PRECONDITION)."""
        try:
            response: ipb.GetCheckpointResponse = self._stub.GetCheckpoint(
                ipb.GetCheckpointRequest(log_id=log_id), timeout=self._timeout, metadata=md
            )
        except grpc.RpcError as err:
            if err.code() == grpc.StatusCode.FAILED_PRECONDITION:
                return None
            raise
        return response.checkpoint

    def proofs(
        self, md: Metadata, log_id: str, tree_size: int, sequences: Sequence[int]
    ) -> list[proof_pb2.InclusionProof]:
        """Inclusion proofs of ``sequences`` against the checkpoint at ``tree_size``, in order."""
        request = ipb.BatchGetInclusionProofsRequest(
            log_id=log_id, sequences=list(sequences), tree_size=tree_size
        )
        response: ipb.BatchGetInclusionProofsResponse = self._stub.BatchGetInclusionProofs(
            request, timeout=self._timeout, metadata=md
        )
        return list(response.proofs)

    def consistency(
        self, md: Metadata, log_id: str, old: proof_pb2.Checkpoint, to_size: int
    ) -> list[bytes]:
        """The consistency proof from the checkpoint ``old`` to the checkpoint at ``to_size``.

        ``old``'s origin goes with it: after an accepted loss another epoch may
        have signed its size with another tree, and the service then refuses
        (``ACROSS_A_LOSS``) instead of proving from a tree that is not ``old``'s.
        """
        request = ipb.GetConsistencyProofRequest(
            log_id=log_id,
            from_size=old.tree_size,
            to_size=to_size,
            from_origin=origin(old),
        )
        response: ipb.GetConsistencyProofResponse = self._stub.GetConsistencyProof(
            request, timeout=self._timeout, metadata=md
        )
        return list(response.proof.hashes)
