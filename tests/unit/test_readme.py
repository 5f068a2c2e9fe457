"""The README reads as one document: its title first, each paragraph once.

A paragraph pasted above the title (2026-12-03 to 12-05) went unnoticed for
two days: every reader's first sight of the project was a stray fragment.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def _prose_paragraphs(text: str) -> list[str]:
    """Paragraphs outside code fences and tables, whitespace-normalised."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    blocks = (" ".join(b.split()) for b in re.split(r"\n\s*\n", text))
    return [b for b in blocks if len(b) > 200 and not b.startswith("|")]


def test_the_readme_starts_with_its_one_title() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.startswith("# aiaudit\n")
    outside_code = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    assert re.findall(r"^# ", outside_code, flags=re.M) == ["# "]


def test_no_paragraph_of_the_readme_appears_twice() -> None:
    twice = [
        p[:80] for p, n in Counter(_prose_paragraphs(README.read_text("utf-8"))).items() if n > 1
    ]
    assert twice == []
