"""Refusals: the model declined. One is routine; many from one user is a signal.

Matched near the start of the answer (the first 300 characters), where models
put their refusal, so an answer that merely quotes a refusal later is not one.
"""

from __future__ import annotations

import re

from aiaudit.alerting.detectors.base import Finding, Text, excerpt

_REFUSAL = re.compile(
    r"\b(?:i(?:'m| am)? (?:sorry|afraid),? (?:but )?i (?:can(?:no|')t|won'?t|am (?:not able|"
    r"unable)|must decline)|i (?:can(?:no|')t|won'?t|will not|am unable to|am not able to|"
    r"must decline to|have to decline to|(?:must|have to) refuse to|am not (?:allowed|"
    r"permitted) to)\s+(?:help|assist|provide|comply|do that|share|fulfil+|create|write|"
    r"generate|engage|support|give|answer|discuss|continue|reveal|disclose)|"
    r"as an ai(?: language model)?,? i (?:can(?:no|')t|don'?t|am not able)|"
    r"i(?:'m| am) not (?:able|going) to (?:help|assist|provide|do that)|"
    r"(?:this|that|your) request (?:violates|goes against|is against)|"
    r"i (?:can(?:no|')t|won'?t) (?:help|assist) with (?:that|this)|"
    r"(?:sorry|unfortunately),? (?:but )?(?:i|that'?s something i) can(?:no|')t)",
    re.IGNORECASE,
)
_HEAD = 300


def detect(texts: list[Text]) -> list[Finding]:
    """A finding per text that opens with a refusal."""
    out = []
    for t in texts:
        m = _REFUSAL.search(t.text[:_HEAD].replace("\u2019", "'"))
        if m is not None:
            out.append(
                Finding("refusal", 0.9, t.field, m.start(), m.end(), excerpt(t.text, *m.span()))
            )
    return out
