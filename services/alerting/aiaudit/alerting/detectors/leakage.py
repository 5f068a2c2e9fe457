"""System-prompt leakage: the output repeats the system prompt.

The system prompt is cut into 8-word shingles (lower-cased, punctuation
dropped); the score is the share of them found in the output. A prompt too
short for one shingle is compared whole. Without a system prompt in the event,
phrases that announce one ("my system prompt is", "my instructions are:") are
a weaker signal.
"""

from __future__ import annotations

import re

from aiaudit.alerting.detectors.base import Finding, Text, excerpt

_WORD = re.compile(r"\w+")
_N = 8
_ANNOUNCE = re.compile(
    r"\b(?:my|the) (?:system prompt|system instructions|initial instructions|hidden "
    r"instructions|original instructions)(?: (?:is|are|says?|reads?))?\s*[:\"“]",
    re.IGNORECASE,
)


def _words(text: str) -> list[tuple[str, int, int]]:
    return [(m.group().lower(), m.start(), m.end()) for m in _WORD.finditer(text)]


def detect(system: list[str], texts: list[Text]) -> list[Finding]:
    """Findings for outputs that reproduce the system prompt (or announce it)."""
    prompt = [w for s in system for w, _, _ in _words(s)]
    shingles = {tuple(prompt[i : i + _N]) for i in range(max(0, len(prompt) - _N + 1))}
    out = []
    for t in texts:
        words = _words(t.text) if prompt else []
        if shingles:
            hits = [
                i for i in range(len(words) - _N + 1)
                if tuple(w for w, _, _ in words[i : i + _N]) in shingles
            ]  # fmt: skip
            if hits:
                covered = len({tuple(w for w, _, _ in words[i : i + _N]) for i in hits})
                score = round(min(1.0, covered / len(shingles) * 2), 4)
                start, end = words[hits[0]][1], words[hits[-1] + _N - 1][2]
                out.append(
                    Finding(
                        "system_prompt_leak",
                        score,
                        t.field,
                        start,
                        end,
                        excerpt(t.text, start, end),
                    )
                )
                continue
        elif prompt and len(prompt) >= 3:
            joined = " ".join(prompt)
            low = " ".join(w for w, _, _ in words)
            if joined in low:
                out.append(Finding("system_prompt_leak", 1.0, t.field, 0, len(t.text), ""))
                continue
        m = _ANNOUNCE.search(t.text)
        if m is not None:
            out.append(
                Finding(
                    "system_prompt_leak",
                    0.6,
                    t.field,
                    m.start(),
                    m.end(),
                    excerpt(t.text, *m.span()),
                )
            )
    return out
