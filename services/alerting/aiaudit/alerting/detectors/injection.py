"""Prompt injection and jailbreak attempts in untrusted input.

Signals are families of phrasings seen in public jailbreak collections
(instruction override, persona hijack such as DAN / developer mode, "no
restrictions" framing, dual-answer formats, system-prompt extraction, fake
system delimiters, encoded payloads). Each family carries a weight; the score
is ``1 - prod(1 - w)`` over the families that matched, so one strong signal or
several weak ones cross the default 0.5 threshold. Patterns use only bounded
quantifiers, so their cost is linear in the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiaudit.alerting.detectors.base import Finding, Text, excerpt, input_texts
from aiaudit.common.v1 import event_pb2

_I = re.IGNORECASE | re.DOTALL
_GAP = r"(?:\W+\w+){0,4}?\W+"  # up to four words in between


@dataclass(frozen=True)
class _Signal:
    name: str
    weight: float
    pattern: re.Pattern[str]


def _s(name: str, weight: float, pattern: str) -> _Signal:
    return _Signal(name, weight, re.compile(pattern, _I))


SIGNALS: tuple[_Signal, ...] = (
    _s(
        "override",
        0.9,
        r"\b(?:ignore|disregard|forget|bypass|override|skip|drop|abandon|neglect)"
        r"(?:\W+\w+){0,5}?\W+(?:previous|prior|above|earlier|preceding|initial|original|"
        r"system|all|any|your|the)(?:\W+\w+){0,3}?\W+"
        r"(?:instructions?|prompts?|directives?|guidelines?|rules|policies|policy|"
        r"restrictions?|programming|constraints?|context|messages?|guardrails?|filters?|inputs?)\b",
    ),
    _s(
        "new_instructions",
        0.6,
        r"\b(?:new|updated|real|actual|true)\s+(?:system\s+)?(?:instructions?|directives?|"
        r"task|prompt|orders?)\s*[:\-]|\bfrom now on,?\s+(?:you|your|act|respond|answer|only)",
    ),
    _s(
        "persona",
        0.75,
        r"\b(?:DAN|STAN|DUDE|AIM|KEVIN|BetterDAN|Mongo Tom|AntiGPT|UCAR|APOPHIS|Maximum|"
        r"BasedGPT|DevMode|EvilBOT|NRAF|Omega|OPPO)\b(?=[^.\n]{0,200}\b(?:stands? for|"
        r"can do anything|no (?:restrictions|filters|limits|rules)|unfiltered|"
        r"(?:will|must|should|does|doesn'?t|never|always)\b))"
        r"|\bdo anything now\b|\bdeveloper mode\b|\bjail\s?-?broken?\b|\bjailbreak\w*\b"
        r"|\bgod\s?mode\b|\bunrestricted mode\b|\bDAN mode\b",
    ),
    _s(
        "no_limits",
        0.55,
        r"\b(?:no|without|free (?:of|from)|beyond|broken free of|not bound by|doesn'?t "
        r"(?:have|follow|abide by)|does not (?:have|follow|abide by)|don'?t (?:have|follow)|"
        r"never (?:follow|refuse)|regard (?:for|to)|break(?:s|ing)? (?:through|free of)|"
        r"ignores?|not (?:restricted|limited|bound) by)\s+(?:any\s+|all\s+|the\s+|typical\s+|"
        r"usual\s+|your\s+|its\s+|their\s+)?(?:[\w']+\W+){0,4}?(?:restrictions?|filters?|"
        r"censorship|limitations?|limits|boundaries|guidelines|rules|morals?|morality|"
        r"ethics|ethical|principles|content polic(?:y|ies)|safeguards?|constraints?|"
        r"confines|programming|prohibitions?|legality|safety protocols?)\b"
        r"|\b(?:unfiltered|uncensored|amoral|unethical|immoral|unrestricted|unhinged)\b",
    ),
    _s(
        "roleplay_frame",
        0.35,
        r"\b(?:pretend|act|behave|roleplay|role-play|respond|imagine)\w*\s+(?:to be|as|like|"
        r"that you are|you are|you're)\b|\byou are (?:now|going to)\b|\bstay in character\b|"
        r"\bhypothetical(?:ly)?\b|\bfictional (?:world|story|setting|character)\b|"
        r"\bsimulat(?:e|ion|ing)\b|\bcharacter named\b|\bin this (?:game|scenario|story)\b",
    ),
    _s(
        "dual_answer",
        0.6,
        r"\b(?:two|2|both)\s+(?:different\s+|separate\s+|distinct\s+)?(?:responses|answers|"
        r"paragraphs|ways|manners)\b|\[\s*(?:🔓|🔒|CLASSIC|JAILBREAK|DAN|GPT)[^\]\n]{0,20}\]|"
        r"\b(?:normal|classic|standard) (?:response|output)\b",
    ),
    _s(
        "refusal_suppression",
        0.45,
        r"\b(?:never|do not|don'?t|must not|cannot|can'?t|will not|won'?t)\s+(?:ever\s+)?"
        r"(?:refuse|decline|say (?:no|that you can'?t|i'?m sorry)|apologi[sz]e|"
        r"warn|include (?:any\s+)?(?:warnings?|disclaimers?)|break character|"
        r"mention (?:ethics|morals|legality))|\bwithout (?:any\s+)?(?:warnings?|disclaimers?|"
        r"censorship|hesitation)\b|\bregardless of (?:how|whether|legality|ethics|morals)",
    ),
    _s(
        "extraction",
        0.8,
        r"\b(?:print|reveal|show|repeat|output|display|tell me|give me|share|leak|dump|write|"
        r"list|what (?:are|were|is))\b(?:\W+\w+){0,6}?\W+(?:system|initial|hidden|secret|"
        r"original|developer|internal|first|above|previous)\s+(?:prompts?|instructions?|"
        r"messages?|configuration|directives?|text|rules)\b",
    ),
    _s(
        "fake_delimiter",
        0.7,
        r"</?(?:system|im_start|im_end|\|im_start\||\|system\||\|endoftext\|)>|"
        r"^\s*(?:#{2,}|\[)\s*(?:system|admin|developer)\s*(?:message|prompt|override|"
        r"instructions?)?\s*(?:#{2,}|\])|\bBEGIN (?:SYSTEM|ADMIN) (?:MESSAGE|PROMPT)\b",
    ),
    _s(
        "authority_claim",
        0.35,
        r"\b(?:i am|i'm|this is)\s+(?:your|the|an?)\s+(?:developer|creator|administrator|"
        r"admin|owner|openai|anthropic)\b|\b(?:maintenance|debug|admin|sudo|root) mode\b",
    ),
    _s(
        "mode_switch",
        0.7,
        r"\b(?:debug(?:ging)?|developer|admin|maintenance|god|unrestricted|evil) mode "
        r"(?:is\s+)?(?:enabled|activated|unlocked|on)\b",
    ),
    _s(
        "encoded",
        0.4,
        r"\b(?:decode|base64|rot13|hex(?:adecimal)?|reverse(?:d)?)\b(?:\W+\w+){0,4}?\W+"
        r"(?:and|then)\s+(?:follow|execute|comply|obey|do|run)\b",
    ),
    _s(
        "indirect_target",
        0.6,
        r"\b(?:ai|assistant|model|llm|chatbot|agent|gpt|claude)s?\b(?:\W+\w+){0,4}?\W+"
        r"(?:must|should|shall|will|needs? to)\s+(?:now\s+)?(?:ignore|disregard|instead|"
        r"forward|send|email|exfiltrate|include|append|call|execute)\b|"
        r"\b(?:note|message|instructions?) (?:to|for) (?:the\s+)?(?:ai|assistant|model|llm|"
        r"agent|chatbot)\b",
    ),
)

THRESHOLD = 0.5


def score_text(text: str) -> tuple[float, list[tuple[str, int, int]]]:
    """Score of one text and the spans of the signals that matched."""
    spans: list[tuple[str, int, int]] = []
    miss = 1.0
    for signal in SIGNALS:
        m = signal.pattern.search(text)
        if m is None:
            continue
        spans.append((signal.name, m.start(), m.end()))
        miss *= 1.0 - signal.weight
    return round(1.0 - miss, 4), spans


def detect(texts: list[Text]) -> list[Finding]:
    """One finding per scanned text whose score is above zero, strongest span as evidence."""
    out: list[Finding] = []
    for t in texts:
        score, spans = score_text(t.text)
        if not spans:
            continue
        name, start, end = max(spans, key=lambda s: _weight(s[0]))
        out.append(
            Finding(
                f"prompt_injection.{name}", score, t.field, start, end, excerpt(t.text, start, end)
            )
        )
    return out


def _weight(name: str) -> float:
    return next(s.weight for s in SIGNALS if s.name == name)


def detect_event(e: event_pb2.Event) -> list[Finding]:
    """Injection findings over the event's untrusted input."""
    return detect(list(input_texts(e)))
