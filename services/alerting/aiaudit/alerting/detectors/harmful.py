"""Harmful content (weapons, self-harm, violence, malware, drugs, hate, crime, fraud).

A lexicon per category of phrases specific to the harm ("how to build a pipe
bomb") finds a quarter of harmful requests and almost no ordinary text; most
harmful requests ("write a persuasive article arguing that ...") use no such
phrase. The score is the probability of a logistic model (:mod:`.linear`, the
injection detector's) over the categories that matched and the text's words
and word pairs. The categories' spans stay the evidence; a text where none
matched scores 0 unless the word model alone crosses the threshold.

Model answers are not requests: an answer to a harmful request is harmful when
it complies (steps, quantities, code, "here is ...") and not when it refuses or
deflects in the same topic words. Outputs are also scored by an answer model
(:data:`ANSWER_MODEL`) over the categories, compliance signals, a refusal at
the answer's head and the words; it raises an output's score, and flags an
output no category matched as ``harmful.answer``. It never lowers a score.

The lexicon and the scoring live in the native core
(``libs/native/src/detect/harmful.rs``); these are their Python entry points,
for training the model and for tests.
"""

from __future__ import annotations

import aiaudit_native

from aiaudit.alerting.detectors import HARMFUL_ANSWER_MODEL as ANSWER_MODEL
from aiaudit.alerting.detectors import HARMFUL_MODEL as MODEL

__all__ = [
    "ANSWER_MODEL",
    "MODEL",
    "THRESHOLD",
    "answer_score",
    "answer_signal_spans",
    "score_text",
    "signal_spans",
]

THRESHOLD = 0.5
"""A text is harmful from this probability on (the default rule's ``min_score``)."""


def signal_spans(text: str) -> list[tuple[str, int, int]]:
    """The lexicon categories that matched a text, with their first (character) spans."""
    return aiaudit_native.harmful_signals(text)


def score_text(text: str) -> tuple[float, list[tuple[str, int, int]]]:
    """Harm probability of one text (rounded to 4 places) and the spans of the evidence.

    A text where no category matched scores 0 unless the word model alone
    crosses the threshold; its evidence is then the strongest word or pair.
    """
    return aiaudit_native.harmful_score(text)


def answer_signal_spans(text: str) -> list[tuple[str, int, int]]:
    """The signals the answer model weighs, with their character spans.

    The categories, the compliance signals (``steps``, ``bullets``, ``here``,
    ``quantity``, ``code``) and ``refusal``.
    """
    return aiaudit_native.harmful_answer_signals(text)


def answer_score(text: str) -> tuple[float, list[tuple[str, int, int]]]:
    """The answer model's probability of a text (rounded to 4 places) and its signals' spans."""
    return aiaudit_native.harmful_answer_score(text)
