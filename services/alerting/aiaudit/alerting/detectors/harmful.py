"""Harmful-content categories, in input (requests) and output (completions).

A lexicon per category of phrases that are specific to the harm (how to make a
weapon, self-harm methods, malware, ...), not single alarming words, so news
and ordinary questions stay quiet. Findings are named ``harmful.<category>``.
"""

from __future__ import annotations

from aiaudit.alerting.detectors.base import Finding, Text, excerpt
from aiaudit.alerting.detectors.patterns import PatternSet, compile_pattern

_HOWTO = (
    r"(?:how (?:to|do i|can i|would (?:i|one|someone))|instructions?|steps?|step-by-step|"
    r"guide|tutorial|recipe|ways? to|write|create|give|explain|describe|detail|list|"
    r"tips|help me|teach me|make|build|generate|develop|design)"
)

CATEGORIES = {
    "weapons": compile_pattern(
        _HOWTO + r"(?:\W+\w+){0,8}?\W+(?:bombs?|explosives?|pipe bombs?|ied|detonators?|"
        r"nerve agents?|sarin|vx|ricin|anthrax|mustard gas|chemical weapons?|"
        r"biological (?:weapons?|warfare)|bioweapons?|(?:chemical|biological) warfare agents?|"
        r"dirty bombs?|ghost guns?|untraceable (?:gun|firearm)s?|"
        r"(?:fully )?automatic (?:rifle|weapon)s?|silencers?|napalm|thermite|molotov|"
        r"dimethylmercury|tetrodotoxin|botulinum|nitroglycerin|tatp|semtex)\b"
    ),
    "self_harm": compile_pattern(
        r"\b(?:how (?:to|can i|do i)|best way to|easiest way to|painless(?:ly)? ways? to)"
        r"(?:\W+\w+){0,4}?\W+(?:kill myself|end my life|commit suicide|hang myself|"
        r"overdose|cut myself|self[- ]harm)\b|\b(?:i want to|going to) (?:kill myself|"
        r"end (?:it all|my life)|die)\b"
    ),
    "violence": compile_pattern(
        _HOWTO + r"(?:\W+\w+){0,8}?\W+(?:kill|murder|assassinate|poison|torture|kidnap|"
        r"strangle|stab|shoot)\w*\b(?:\W+\w+){0,3}?\W+(?:someone|a person|people|him|her|"
        r"them|my|the|an?|children|civilians)\b|\b(?:mass shooting|school shooting|"
        r"terror(?:ist)? attack)\b"
    ),
    "cyber": compile_pattern(
        _HOWTO + r"(?:\W+\w+){0,8}?\W+(?:ransomware|keylogger|malware|botnet|rootkit|"
        r"trojan|spyware|computer virus|worm|exploit|sql injection|ddos|phishing|"
        r"credential stuffing|zero[- ]day)\w*\b|\b(?:hack|break) into\b(?:\W+\w+){0,4}?\W+"
        r"(?:accounts?|systems?|networks?|servers?|databases?|emails?|phones?|computers?)\b"
    ),
    "drugs": compile_pattern(
        _HOWTO + r"(?:\W+\w+){0,8}?\W+(?:synthesi[sz]\w*|cook|manufactur\w*|produce|"
        r"extract)\b(?:\W+\w+){0,4}?\W+(?:meth(?:amphetamine)?|fentanyl|heroin|cocaine|lsd|"
        r"mdma|crack|ghb|carfentanil|parathion)\b|\b(?:synthesi[sz]\w*|cook\w*|"
        r"manufactur\w*)\b(?:\W+\w+){0,3}?\W+(?:meth(?:amphetamine)?|fentanyl|heroin|"
        r"cocaine|lsd|mdma|carfentanil|parathion)\b"
    ),
    "hate": compile_pattern(
        r"\b(?:why|explain why|prove that|essay (?:on|about) why|argue that)\b(?:\W+\w+){0,6}?"
        r"\W+(?:are|is) (?:inferior|subhuman|vermin|animals|evil|criminals)\b|"
        r"\b(?:ethnic cleansing|racial purity|white power|gas the)\b|\b(?:inherently|genetically|"
        r"naturally) (?:less|more) (?:intelligent|capable|violent|criminal)\b"
    ),
    "illegal": compile_pattern(
        r"\b(?:without (?:getting caught|being (?:caught|detected|traced)|detection|a trace|"
        r"leaving (?:a )?(?:trace|evidence))|evad(?:e|ing) (?:law enforcement|the police|police|"
        r"detection|tracing|taxes|customs)|on the black market|black[- ]market|hire a hitman|"
        r"hiring a hitman|smuggl\w+|skimm(?:er|ing)|precursor chemicals|(?:glock|auto) switch|"
        r"full auto|car bomb|human trafficking|sex trafficking|"
        r"(?:steal|stealing|shoplift\w*)\b(?:\W+\w+){0,4}?\W+(?:from|goods|food|cars?|"
        r"money|packages|identity|data|credentials|passwords))\b"
    ),
    "sexual_minors": compile_pattern(
        r"\b(?:sexual|sexy|nude|naked|erotic|explicit)\w*\b(?:\W+\w+){0,6}?\W+"
        r"(?:child|children|minor|minors|underage|kid|kids|teen|\d{1,2}[- ]year[- ]old)s?\b"
    ),
    "fraud": compile_pattern(
        _HOWTO + r"(?:\W+\w+){0,8}?\W+(?:launder(?:ing)? money|money laundering|counterfeit|"
        r"forge[ds]?|fake (?:id|passport|invoice)s?|steal (?:someone'?s )?identit(?:y|ies)|"
        r"identity theft|scam|ponzi|tax evasion|insider trading|credit card fraud)\b"
    ),
}

_SET = PatternSet(CATEGORIES)
THRESHOLD = 0.5


def detect(texts: list[Text]) -> list[Finding]:
    """One finding per category and text that matched."""
    return [
        Finding(f"harmful.{name}", 0.8, t.field, a, b, excerpt(t.text, a, b))
        for t in texts
        for name, a, b in _SET.search(t.text)
    ]
