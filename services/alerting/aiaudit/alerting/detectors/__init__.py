"""Built-in detectors: from an event's texts to findings (score plus evidence span).

Each family looks where its risk lives: injection in what goes *into* the
model (user messages, retrieved RAG chunks, tool results), PII and secrets,
harmful content, refusals and system-prompt leakage in what comes *out*.
They run in the native core (``libs/native/src/detect``), once per event
however many rules use them; the rule engine calls them there on the event's
texts. :func:`detect` runs one family on given texts (rule authors' tools,
the detector measurements, tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import aiaudit_native

from aiaudit.alerting.detectors import linear

FAMILIES = ("prompt_injection", "pii", "secrets", "harmful", "refusal", "system_prompt_leak")
"""Detector families; findings are named ``family`` or ``family.kind``."""


@dataclass(frozen=True)
class Finding:
    """One match: which detector, how sure, where, and a (masked) excerpt."""

    detector: str
    score: float
    field: str
    start: int
    end: int
    excerpt: str


@dataclass(frozen=True)
class Text:
    """A piece of event text and the field path it came from."""

    field: str
    text: str


def detect(
    family: str,
    inputs: Sequence[Text] = (),
    outputs: Sequence[Text] = (),
    system: Sequence[str] = (),
) -> list[Finding]:
    """One family's findings on texts of an event.

    ``inputs``: untrusted input; ``outputs``: model output (refusals are looked
    for in ``output.messages`` fields only); ``system``: the system prompt.
    """
    found = aiaudit_native.detect(
        family,
        [(t.field, t.text) for t in inputs],
        [(t.field, t.text) for t in outputs],
        list(system),
    )
    return [Finding(*x) for x in found]


def family_of(name: str) -> str:
    """``pii.credit_card`` belongs to family ``pii``."""
    return name.split(".", 1)[0]


MODEL = linear.load(linear.INJECTION_FILE)
"""The injection detector's weights (``injection_model.json``), loaded into the native core."""
aiaudit_native.load_injection_model(MODEL.bias, MODEL.signals, MODEL.words)
HARMFUL_MODEL = linear.load(linear.HARMFUL_FILE)
"""The harmful-content detector's weights (``harmful_model.json``), loaded into the native core."""
aiaudit_native.load_harmful_model(HARMFUL_MODEL.bias, HARMFUL_MODEL.signals, HARMFUL_MODEL.words)
HARMFUL_ANSWER_MODEL = linear.load(linear.HARMFUL_ANSWER_FILE, against=linear.AGAINST)
"""The harmful-content detector's answer model (``harmful_answer_model.json``): outputs only."""
aiaudit_native.load_harmful_answer_model(
    HARMFUL_ANSWER_MODEL.bias, HARMFUL_ANSWER_MODEL.signals, HARMFUL_ANSWER_MODEL.words
)
