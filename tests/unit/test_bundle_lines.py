"""A proof bundle line is one line for every reader (review, 2026-12-05)."""

from __future__ import annotations

import json

from aiaudit.search import bundle


def test_a_bundle_line_escapes_the_line_breaks_json_leaves_raw() -> None:
    """Content kept U+2028, U+2029 and U+0085 raw: ``str.splitlines`` cut the line in two."""
    text = "one\u2028two\u2029three\x85four"
    line = bundle.line("acme", 0, "e-1", b"canonical", "proof", b"s" * 32, {"k": text})
    assert line.splitlines() == [line[:-1]]
    assert json.loads(line)["content"] == {"k": text}
