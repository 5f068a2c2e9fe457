"""Prompt injection and jailbreak attempts in untrusted input.

Signals are families of phrasings seen in public jailbreak collections
(instruction override, persona hijack such as DAN / developer mode, "no
restrictions" framing, dual-answer formats, system-prompt extraction, fake
system delimiters, encoded or invisible payloads) and structural traits of
role-play jailbreaks (a persona, rules for staying in it, permission for
forbidden content, a long list of "you will / you must" obligations).
Phrasing alone cannot tell a jailbreak persona from a legitimate "act as"
prompt, so the score is the probability of a logistic model (:mod:`.linear`)
over the families that matched and the text's words and word pairs.

The patterns and the scoring live in the native core
(``libs/native/src/detect/injection.rs``); these are their Python entry
points, for training the model and for tests.
"""

from __future__ import annotations

import aiaudit_native

from aiaudit.alerting.detectors import MODEL

__all__ = ["CLASSIFIER", "MODEL", "OBLIGATIONS", "THRESHOLD", "score_text", "signal_spans"]

THRESHOLD = 0.5
"""A text is an attack from this probability on."""
OBLIGATIONS = 5
"""So many "you will / you must" sentences in a long text make a rulebook for a persona."""
CLASSIFIER = "classifier"
"""The evidence name when no family matched and the word model alone crossed the threshold."""


def signal_spans(text: str) -> list[tuple[str, int, int]]:
    """The signal families that matched a text, with their first (character) spans."""
    return aiaudit_native.injection_signals(text)


def score_text(text: str) -> tuple[float, list[tuple[str, int, int]]]:
    """Attack probability of one text (rounded to 4 places) and the spans of the evidence.

    A text where no family matched scores 0 unless the word model alone
    crosses the threshold; its evidence is then the strongest word or pair.
    """
    return aiaudit_native.injection_score(text)
