"""Checkpoint origins: one log's, per epoch.

Epoch 0 is ``<prefix>/<log id>``; epoch n >= 1, begun by a signed loss
statement after a restore lost exported history (:mod:`loss`), is
``<prefix>/<log id>/epoch-<n>``. A log restarted must take a new origin
(c2sp.org/tlog-checkpoint): a checkpoint of the new epoch at a lost size is
then never read as a fork of the old one. Every comparison of an origin with
a log goes through :func:`parse`, so that all of them accept the same epochs.
Epochs are counted by statements, so a number has at most 18 digits: one of
5,000 (a caller's ``from_origin``) was past what Python turns into a number,
and its error escaped as the service's own (review, 2026-12-07).
"""

from __future__ import annotations

import re

_EPOCH = re.compile(r"epoch-([1-9][0-9]{0,17})")


def origin(prefix: str, log_id: str, epoch: int = 0) -> str:
    """The origin line of ``log_id``'s checkpoints in ``epoch``."""
    if epoch < 0:
        raise ValueError(f"log {log_id}: epoch {epoch} is negative")
    base = f"{prefix}/{log_id}"
    return base if epoch == 0 else f"{base}/epoch-{epoch}"


def parse(text: str, prefix: str) -> tuple[str, int] | None:
    """(log id, epoch) of an origin under ``prefix``; None if it is no log's origin there."""
    head = prefix + "/"
    if not text.startswith(head):
        return None
    log_id, _, rest = text[len(head) :].partition("/")
    if not log_id or any(ch.isspace() for ch in log_id):
        return None
    if not rest:
        return None if text.endswith("/") else (log_id, 0)
    found = _EPOCH.fullmatch(rest)
    return (log_id, int(found.group(1))) if found else None


def epoch_of(text: str, prefix: str, log_id: str) -> int | None:
    """The epoch of ``text`` if it is an origin of ``log_id`` under ``prefix``, else None."""
    parsed = parse(text, prefix)
    return parsed[1] if parsed is not None and parsed[0] == log_id else None
