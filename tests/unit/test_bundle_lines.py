"""A proof bundle line is one line for every reader (review, 2026-12-05)."""

from __future__ import annotations

import json

from aiaudit.search import bundle, exporting


def test_a_bundle_line_escapes_the_line_breaks_json_leaves_raw() -> None:
    """Content kept U+2028, U+2029 and U+0085 raw: ``str.splitlines`` cut the line in two."""
    text = "one\u2028two\u2029three\x85four"
    line = bundle.line("acme", 0, "e-1", b"canonical", "proof", b"s" * 32, {"k": text})
    assert line.splitlines() == [line[:-1]]
    assert json.loads(line)["content"] == {"k": text}


def test_a_line_is_escaped_only_where_it_holds_a_line_break_json_leaves_raw() -> None:
    """Every proof bundle line holds the checkpoint's em dash: ``str.translate`` looked each
    character of it up (150 us a line, 2026-12-07); the separators are looked for first."""
    signed = "— aiaudit.local/log AAAA\n"
    assert exporting.one_line(signed) is signed
    assert exporting.one_line("a\u2028b\u2029c\x85d —") == "a\\u2028b\\u2029c\\u0085d —"
