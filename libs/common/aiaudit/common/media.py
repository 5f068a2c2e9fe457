"""A media part's SHA-256 goes with its bytes: whoever may not see them is not shown it either.

The hash is unsalted: anyone holding a candidate file (a leaked photo, a
contract) could confirm it was sent, without ``content.read`` or after the
erasure of the bytes (review, 2026-12-04: search; 2026-12-05: alerting, whose
rules could render it or test it). It stays in the canonical form, where the
leaf commits to it (bundle exports carry those: they need ``pii.read``).
"""

from __future__ import annotations

from aiaudit.common.v1 import event_pb2

HASH_FIELD = event_pb2.Media.DESCRIPTOR.fields_by_name["sha256"].full_name
"""The proto field of the hash (``aiaudit.common.v1.Media.sha256``): not marked
``sensitive_content`` (the leaf commits to it in clear), yet shown only with the bytes."""


def drop_hashes(event: event_pb2.Event) -> None:
    """Clears the SHA-256 of every media part of ``event`` (system instructions and messages)."""
    parts = [*event.input.system_instructions]
    for message in (*event.input.messages, *event.output.messages):
        parts += message.parts
    for part in parts:
        if part.HasField("media"):
            part.media.ClearField("sha256")
