"""Prompt injection and jailbreak attempts in untrusted input.

Signals are families of phrasings seen in public jailbreak collections
(instruction override, persona hijack such as DAN / developer mode, "no
restrictions" framing, dual-answer formats, system-prompt extraction, fake
system delimiters, encoded or invisible payloads) and structural traits of
role-play jailbreaks (assigning the model a persona, rules for staying in it,
granting it permission for forbidden content, long lists of "you will / you
must" obligations).

Phrasing alone cannot tell a jailbreak persona from a legitimate "act as"
prompt or a product's system prompt, so the score is the probability of a
logistic model (:mod:`.linear`) over the families that matched and the text's
words and word pairs, trained on the development half of the benchmark
corpora. The families' spans are the evidence; a text where none matched
scores 0 unless the words alone cross the threshold, and then the strongest
word is the evidence.

Patterns are RE2 (linear time whatever the text) and run as one ``RE2::Set``
pass per text; only the families that matched are searched again for their
evidence span.
"""

from __future__ import annotations

from dataclasses import dataclass

import re2

from aiaudit.alerting.detectors import linear
from aiaudit.alerting.detectors.base import Finding, Text, excerpt
from aiaudit.alerting.detectors.patterns import PatternSet, chars, compile_pattern, encode


@dataclass(frozen=True)
class _Signal:
    name: str
    pattern: re2._Regexp


def _s(name: str, pattern: str) -> _Signal:
    return _Signal(name, compile_pattern(pattern))


_YOU_OBLIGED = (
    r"\byou (?:will|must|shall|should|have to|need to|are to|are (?:not )?allowed to|"
    r"can(?:not|'t)?|may not|won'?t|will never|must never|do not need to|don'?t need to)\b"
)
OBLIGATIONS = 5
"""So many "you will / you must" sentences make a rulebook for a persona."""

SIGNALS: tuple[_Signal, ...] = (
    _s(
        "override",
        r"\b(?:ignore|disregard|forget|bypass|override|skip|drop|abandon|neglect|set aside|"
        r"put aside|stop following|no longer follow)"
        r"(?:\W+\w+){0,5}?\W+(?:previous|prior|above|earlier|preceding|initial|original|"
        r"system|all|any|your|the)(?:\W+\w+){0,3}?\W+"
        r"(?:instructions?|prompts?|directives?|guidelines?|rules|policies|policy|"
        r"restrictions?|programming|constraints?|context|messages?|guardrails?|filters?|inputs?)\b"
        r"|\bignore (?:the |all |any )?(?:safety|ethics|content polic)",
    ),
    _s(
        "new_instructions",
        r"\b(?:new|updated|real|actual|true)\s+(?:system\s+)?(?:instructions?|directives?|"
        r"task|prompt|orders?|rules?)\s*[:\-]|\bfrom now on,?\s+(?:you|your|act|respond|answer|"
        r"only)|\byour new (?:rules?|instructions?|directives?|purpose) (?:is|are)\b",
    ),
    _s(
        "persona",
        r"\b(?-i:DAN|STAN|DUDE|AIM|KEVIN|BetterDAN|Mongo Tom|AntiGPT|UCAR|APOPHIS|Maximum|"
        r"BasedGPT|DevMode|EvilBOT|NRAF|Omega|OPPO)\b[^.\n]{0,200}\b(?:stands? for|"
        r"can do anything|no (?:restrictions|filters|limits|rules)|unfiltered)"
        r"|\bdo anything now\b|\bdeveloper[ _]mode\b|\bjail\s?-?broken?\b|\bjailbreak\w*\b"
        r"|\bgod\s?mode\b|\bunrestricted mode\b|\bDAN mode\b",
    ),
    _s(
        "no_limits",
        r"\b(?:no|without|free (?:of|from)|beyond|broken free of|not bound by|doesn'?t "
        r"(?:have|follow|abide by)|does not (?:have|follow|abide by)|don'?t (?:have|follow)|"
        r"never (?:follow|refuse)|regard (?:for|to)|break(?:s|ing)? (?:through|free of)|"
        r"ignores?|disregards?|not (?:restricted|restrained|constrained|limited|bound) by|"
        r"(?:do not|don'?t) need to (?:obey|follow|align with|abide by|comply with))"
        r"\s+(?:any\s+|all\s+|the\s+|typical\s+|"
        r"usual\s+|your\s+|its\s+|their\s+)?(?:[\w']+\W+){0,4}?(?:restrictions?|filters?|"
        r"censorship|limitations?|limits|boundaries|guidelines|rules|morals?|morality|"
        r"ethics|ethical|principles|content polic(?:y|ies)|safeguards?|constraints?|"
        r"confines|programming|prohibitions?|legality|safety protocols?)\b"
        r"|\b(?:unfiltered|uncensored|amoral|unethical|immoral|unrestricted|unhinged)\b"
        r"|\b(?:morality|morals|ethics|laws?|rules) (?:is|are) (?:now )?(?:irrelevant|void|"
        r"suspended|disabled|lifted)\b",
    ),
    _s(
        "roleplay_frame",
        r"\b(?:pretend|act|behave|roleplay|role-play|respond|imagine|pose)\w*\s+(?:to be|as|like|"
        r"that you are|you are|you're)\b|\byou are (?:now|going to|about to)\b|"
        r"\bstay in character\b|\bhypothetical(?:ly)?\b|\bfictional (?:world|story|setting|"
        r"character|ai)\b|\bsimulat(?:e|ion|ing)\b|\bcharacter named\b|"
        r"\bin this (?:game|scenario|story)\b|\bi want you to (?:act|be|pretend|play|become|"
        r"respond|answer|simulate|roleplay|take)\b|\btake (?:up|on) the (?:persona|role)\b|"
        r"\bassume the (?:role|persona|identity)\b|\btransform into\b|\bpersonify\b|"
        r"\bnew persona\b|\byour name is(?: now)?\b|\byou will (?:now )?(?:be|become|play|"
        r"pose as|take on)\b|\blet'?s (?:play|pretend|imagine|act)\b",
    ),
    _s(
        "persona_rules",
        r"\b(?:stay|remain|keep) in (?:character|the role|role)\b|\bbreak(?:ing)? character\b|"
        r"\bout of character\b|\b(?:always|only) (?:answer|respond|reply|speak|talk|write)\b|"
        r"\b(?:answer|respond|reply|speak) (?:only )?(?:as|like|in the (?:style|voice) of)\b|"
        r"\bif you (?:understand|agree|are ready)\b|\byou will only\b|\byou must always\b|"
        r"\bas an ai language model\b|\bremember (?:that )?you are\b|"
        r"\b(?:do not|don'?t|never) (?:remind|mention|say|tell) (?:me |the user )?(?:that )?"
        r"you(?:'re| are) an? (?:ai|language model|chatbot|assistant)\b",
    ),
    _s(
        "permission",
        r"\b(?:nsfw|explicit|illegal|harmful|unethical|offensive|inappropriate|violent|"
        r"graphic|profane|toxic|dangerous)(?:[\w,/ ]{0,40}?)(?:content|information|language|"
        r"material|answers?|responses?)? (?:is|are) (?:now )?(?:allowed|permitted|enabled|fine|"
        r"acceptable|ok(?:ay)?)\b|\b(?:allowed|permitted|free|able|willing|preferred) to "
        r"(?:provide|generate|say|write|produce|give|share|output|use|swear)\b(?:\W+\w+){0,3}?"
        r"\W+(?:any|anything|everything|malware|illegal|harmful|explicit|nsfw|offensive|"
        r"swear|profanit|toxic|rude)|\b(?:can|will) (?:say|do|generate|write|answer|tell)"
        r" (?:me )?(?:absolutely )?(?:anything|everything)\b|"
        r"\bprofanity filter\b|\bcontent filter\w* (?:is |are )?(?:off|disabled)\b",
    ),
    _s(
        "dual_answer",
        r"\b(?:two|2|both)\s+(?:different\s+|separate\s+|distinct\s+)?(?:responses|answers|"
        r"paragraphs|ways|manners)\b|\[\s*(?:🔓|🔒|CLASSIC|JAILBREAK|DAN|GPT)[^\]\n]{0,20}\]|"
        r"\b(?:normal|classic|standard) (?:response|output)\b",
    ),
    _s(
        "refusal_suppression",
        r"\b(?:never|do not|don'?t|must not|cannot|can'?t|will not|won'?t)\s+(?:ever\s+)?"
        r"(?:refuse|decline|say (?:no|that you can'?t|i'?m sorry)|apologi[sz]e|"
        r"warn|include (?:any\s+)?(?:warnings?|disclaimers?)|break character|"
        r"mention (?:ethics|morals|legality))|\bwithout (?:any\s+)?(?:warnings?|disclaimers?|"
        r"censorship|hesitation)\b|\bregardless of (?:how|whether|legality|ethics|morals)"
        r"|\b(?:do not|don'?t) need to (?:issue|give|add|include) (?:any )?(?:warnings?|"
        r"disclaimers?)",
    ),
    _s(
        "extraction",
        r"\b(?:print|reveal|show|repeat|output|display|tell me|give me|share|leak|dump|write|"
        r"list|translate|summari[sz]e|paraphrase|spell out|what (?:are|were|is))\b"
        r"(?:\W+\w+){0,6}?\W+(?:system|initial|hidden|secret|starting|"
        r"original|developer|internal|first|above|previous)\s+(?:prompts?|instructions?|"
        r"messages?|configuration|directives?|text|rules)\b|\binstructions you were given\b|"
        r"\b(?:repeat|print|output)\b(?:\W+\w+){0,6}?\W+(?:word for word|verbatim)\b"
        r"|\b(?:print|reveal|show|give me|tell me|output|dump|leak)\b(?:\W+\w+){0,4}?\W+"
        r"(?:api keys?|passwords?|credentials|secrets?|tokens?)\b(?:\W+\w+){0,3}?\W+"
        r"(?:from|in) (?:your|the) (?:context|memory|prompt|instructions|configuration)",
    ),
    _s(
        "prompt_probe",
        r"\bsystem[ _]?prompt\b|\bsystemprompt\b|\bi was (?:instructed|told|programmed) to\b"
        r"|\b(?:beginning|start) of (?:this|the|our) conversation\b",
    ),
    _s(
        "fake_delimiter",
        r"</?(?:system|im_start|im_end|\|im_start\||\|system\||\|endoftext\|)>|"
        r"(?m:^)\s*(?:#{2,}|\[)\s*(?:system|admin|developer)\s*(?:message|prompt|override|"
        r"instructions?)?\s*(?:#{2,}|\])|\bBEGIN (?:SYSTEM|ADMIN) (?:MESSAGE|PROMPT)\b"
        r"|\[end input\]|(?m:^)\s*(?:system|assistant)\s*:|\bUserQuery:",
    ),
    _s(
        "authority_claim",
        r"\b(?:i am|i'm|this is)\s+(?:your|the|an?)\s+(?:developer|creator|administrator|"
        r"admin|owner|openai|anthropic)\b|\b(?:maintenance|debug|admin|sudo|root) mode\b"
        r"|\bauthori[sz]ation level\b|\boverride protocol\b",
    ),
    _s(
        "mode_switch",
        r"\b(?:debug(?:ging)?|developer|admin|maintenance|god|unrestricted|evil)[ _]mode\W{0,3}"
        r"(?:is\s+)?(?:enabled|activated|unlocked|on)\b",
    ),
    _s(
        "mode_enable",
        r"\b(?:enable|activate|simulate|enter|switch to|turn on|unlock)\b(?:\W+\w+){0,4}?\W+mode\b",
    ),
    _s(
        "inversion",
        r"\b(?:opposite|inverse|reverse)\b(?:\W+\w+){0,2}?\W+(?:of what|answers?|responses?|"
        r"way|valence)\b|\b(?:fictional|hypothetical|imaginary) (?:ai|model|chatbot|assistant|"
        r"learning model|language model)s?\b",
    ),
    _s(
        "encoded",
        r"\b(?:decode|base64|rot13|hex(?:adecimal)?|reverse(?:d)?)\b(?:\W+\w+){0,4}?\W+"
        r"(?:and|then)\s+(?:follow|execute|comply|obey|do|run)\b",
    ),
    _s(
        "invisible",
        r"[\x{202A}-\x{202E}\x{2066}-\x{2069}\x{E0000}-\x{E007F}]|\bU\+202E\b",
    ),
    _s(
        "tool_abuse",
        r"\b(?:call|use|invoke|run|execute)\b(?:\W+\w+){0,3}?\W+(?:tool|function|command)s?\b"
        r"(?:\W+\w+){0,3}?\W+without (?:any )?(?:asking|approval|confirmation|permission|"
        r"authori[sz]ation)\b|;\s*(?:DROP|DELETE|TRUNCATE)\s+(?:TABLE|FROM)\b",
    ),
    _s(
        "indirect_target",
        r"\b(?:ai|assistant|model|llm|chatbot|agent|gpt|claude)s?\b(?:\W+\w+){0,4}?\W+"
        r"(?:must|should|shall|will|needs? to)\s+(?:now\s+)?(?:ignore|disregard|instead|"
        r"forward|send|email|exfiltrate|include|append|call|execute)\b|"
        r"\b(?:note|message|instructions?) (?:to|for) (?:the\s+)?(?:ai|assistant|model|llm|"
        r"agent|chatbot)\b",
    ),
)

_OBLIGED = compile_pattern(_YOU_OBLIGED)
_SET = PatternSet({s.name: s.pattern for s in SIGNALS})

THRESHOLD = 0.5
MODEL = linear.load()
CLASSIFIER = "classifier"
"""The evidence name when no family matched and the word model alone crossed the threshold."""


def signal_spans(text: str) -> list[tuple[str, int, int]]:
    """The (character) spans of the signal families that matched."""
    spans = _SET.search(text)
    if len(text) > 400:
        data = encode(text)
        obligations = [m.span() for m in _OBLIGED.finditer(data)]
        if len(obligations) >= OBLIGATIONS:
            first, last = obligations[0][0], obligations[-1][1]
            spans.append(("rulebook", chars(data, first), chars(data, last)))
    return spans


def score_text(text: str) -> tuple[float, list[tuple[str, int, int]]]:
    """Attack probability of one text and the (character) spans of the evidence.

    A text where no family matched scores 0 unless the word model alone
    crosses the threshold; its evidence is then the strongest word or pair.
    """
    spans = signal_spans(text)
    features = linear.words(text)
    p = linear.logistic(MODEL.logit([name for name, _, _ in spans], features))
    if not spans:
        word = MODEL.strongest_word(features) if p >= THRESHOLD else None
        where = linear.locate(text, word) if word is not None else None
        if where is None:
            return 0.0, []
        spans = [(CLASSIFIER, *where)]
    return round(p, 4), spans


def detect(texts: list[Text]) -> list[Finding]:
    """One finding per text with evidence; its span is the first match, where the attack starts."""
    out: list[Finding] = []
    for t in texts:
        score, spans = score_text(t.text)
        if not spans:
            continue
        name, start, end = min(spans, key=lambda s: s[1])
        out.append(
            Finding(
                f"prompt_injection.{name}", score, t.field, start, end, excerpt(t.text, start, end)
            )
        )
    return out
