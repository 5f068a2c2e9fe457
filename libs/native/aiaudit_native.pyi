"""Native core of aiaudit (Rust, ``libs/native``): the canonical form of events."""

FieldSpec = tuple[
    int, tuple[str, str], int, bool, bool, bool, int, tuple[str, dict[int, str]] | None, int, bool
]
"""(number, (name, JSON name), FieldDescriptor.TYPE_*, repeated, explicit
presence, sensitive content, message type index or -1, enum (type name, value
names by number), oneof index or -1, map field), in declaration order."""

class Schema:
    """The message types of an event, built once from their descriptors."""

    def __init__(self, messages: list[tuple[str, list[FieldSpec]]], root: int) -> None: ...
    def commit(self, event: bytes, salt: bytes) -> tuple[bytes, dict[str, str]]:
        """(canonical bytes, content by JSON path) of a serialised event; ValueError if none."""
    def restore(self, canonical: bytes, content: dict[str, str] | None) -> bytes:
        """The serialised event of a canonical form and its content; ValueError if unusual."""
    def check(self, event: bytes, max_text: int) -> list[tuple[str, str]]:
        """Ingest's field checks: (path relative to the event, problem), in declaration order."""

def merkle_levels(leaves: bytes) -> list[bytes]:
    """RFC 6962 subtree levels over concatenated 32-byte leaf hashes, each level concatenated."""
