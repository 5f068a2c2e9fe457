r"""Lines of an offline proof bundle, written from the documented format (README "Integrity").

An export with ``include_proofs`` is a bundle that ``aiaudit verify --bundle``
checks with nothing but the verifier key. Each line is one JSON object::

    {"log_id": "acme", "sequence": 41, "event_id": "e-1",
     "canonical": "<base64 of the canonical event bytes>",
     "tlog_proof": "c2sp.org/tlog-proof@v1\nindex 41\n<base64 hash>...\n\n<signed checkpoint>",
     "salt": "<base64>", "content": {"input.messages[0].parts[0].text": "..."}}

Its first line is the export's **scope**, ``{"scope": {...}}`` (README,
"Offline bundle"): what the export was made for, as its access record says
it, which the verifier prints as the exporter's claim and checks against
what the lines prove (:func:`scope`). Its last line, when the export could get one,
is the **seal**, ``{"seal": {...}}`` (:func:`seal`): the export's closing record in the
log, holding how many event lines it wrote and a digest of them, and a salted digest of
the scope line (:func:`scope_digest`), with its proof against a later checkpoint, so that
a line removed, added or reordered, or the scope line edited, is found offline.

This module is written from that specification, not shared with the
integrity service's code, so the format stays a contract between the two
services (and any third-party verifier) rather than an import.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from aiaudit.search.exporting import one_line

TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
"""First line of a c2sp.org/tlog-proof."""


def tlog_proof(index: int, hashes: Sequence[bytes], signed_checkpoint: str) -> str:
    """A c2sp.org/tlog-proof: header, ``index N``, audit path (leaf first), blank, checkpoint."""
    head = [TLOG_PROOF_HEADER, f"index {index}", *(base64.b64encode(h).decode() for h in hashes)]
    return "\n".join(head) + "\n\n" + signed_checkpoint


def line(
    log_id: str,
    sequence: int,
    event_id: str,
    canonical: bytes,
    proof: str,
    salt: bytes | None,
    content: Mapping[str, str] | None,
) -> str:
    """One bundle line with its newline; ``salt``/``content`` only together (absent if erased)."""
    out: dict[str, Any] = {
        "log_id": log_id,
        "sequence": sequence,
        "event_id": event_id,
        "canonical": base64.b64encode(canonical).decode(),
        "tlog_proof": proof,
    }
    if salt is not None and content is not None:
        out["salt"] = base64.b64encode(salt).decode()
        out["content"] = dict(content)
    text = json.dumps(out, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return one_line(text) + "\n"  # one line for every reader, as exports


def scope(
    tenant: str,
    tree_size: int,
    exported_at: str,
    requested_by: str,
    access_record: str,
    with_content: bool,
    filter_text: str,
    query: str,
    up_to_sequence: int,
) -> str:
    """The bundle's first line, with its newline: what this export is.

    ``access_record``: the event id of the export's record in the tenant's
    log, committed after the checkpoint was taken (so not provable with it);
    ``up_to_sequence``: the events committed before the export (its snapshot).
    An export is in sequence order, whatever its request.
    """
    fields: dict[str, Any] = {
        "action": "search.export",
        "log_id": tenant,
        "tree_size": tree_size,
        "exported_at": exported_at,
        "requested_by": requested_by,
        "access_record": access_record,
        "content": "included" if with_content else "withheld: no content.read",
        "filter": filter_text,
        "query": query,
        "order_by": "sequence asc",
        "up_to_sequence": up_to_sequence,
    }
    text = json.dumps({"scope": fields}, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return one_line(text) + "\n"


SEAL_ACTION = "search.export.seal"
"""``access.action`` of a search export's closing record (README, "Offline bundle")."""


def sealed_item(sequence: int, leaf_hash: bytes) -> bytes:
    """What one event line adds to the seal's digest: its sequence and leaf hash.

    The sequence as 8 bytes, big-endian, then SHA-256(0x00 || canonical): both read
    from the line alone.
    """
    return sequence.to_bytes(8, "big") + leaf_hash


SCOPE_SALT_BYTES = 32


def scope_digest(salt: bytes, scope_line: str) -> str:
    """The closing record's ``access.scope_sha256``: SHA-256(salt || the scope line), hex.

    ``scope_line``: the bundle's first line as :func:`scope` wrote it, its newline left
    out (its UTF-8 bytes exactly). The scope repeats the export's filter and query, which
    its access record keeps as content (shown only with ``content.read``): unsalted, any
    reader of the log could test a guessed filter against the digest (the other fields
    are in the access record, the time within milliseconds of it). The salt is the seal
    line's ``scope_salt``: whoever holds the bundle holds the scope anyway.
    """
    text = scope_line.removesuffix("\n").encode()
    return hashlib.sha256(salt + text).hexdigest()


def seal(
    tenant: str,
    sequence: int,
    event_id: str,
    canonical: bytes,
    proof: str,
    consistency: Sequence[bytes],
    scope_salt: bytes | None = None,
) -> str:
    """The bundle's last line, with its newline: the export's closing record, proven.

    ``canonical``: the record's committed bytes (an ``EVENT_TYPE_AUDIT_ACCESS`` event of
    action :data:`SEAL_ACTION` naming the export's access record, the count and the
    SHA-256 of the event lines' :func:`sealed_item`, and the :func:`scope_digest` of the
    scope line with ``scope_salt``); ``proof``: its tlog-proof against a checkpoint signed
    after it; ``consistency``: the consistency proof from the event lines' checkpoint to
    that one. ``scope_salt`` None: a seal as written before closing records committed to
    the scope line (tests of such bundles).
    """
    fields: dict[str, Any] = {
        "log_id": tenant,
        "sequence": sequence,
        "event_id": event_id,
        "canonical": base64.b64encode(canonical).decode(),
        "tlog_proof": proof,
        "consistency_proof": [base64.b64encode(h).decode() for h in consistency],
    }
    if scope_salt is not None:
        fields["scope_salt"] = base64.b64encode(scope_salt).decode()
    text = json.dumps({"seal": fields}, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return one_line(text) + "\n"
