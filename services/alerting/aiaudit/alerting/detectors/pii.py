"""PII and secrets in model output, with checksums where the format has one.

Candidates are found by pattern, then confirmed: card numbers by Luhn and a
known issuer prefix, IBANs by ISO 13616 mod-97 and the country's length, US
SSNs by the issuing rules, UK NINOs by their prefix rules, Spanish DNI/NIE by
their check letter. Secrets by provider prefixes (AWS, GitHub, Slack, Stripe,
OpenAI, Google), PEM private key headers, and JWTs whose header decodes to
JSON with ``alg``. Excerpts are masked: evidence must not leak what it reports.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Iterable

import re2

from aiaudit.alerting.detectors.base import Finding, Text, mask

Check = Callable[[str], bool]

_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}\b")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])\d{3,4}[\s.-]\d{3,4}\b"
    r"|(?<![\w+])\+\d{8,14}\b"
)
_CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_SSN = re.compile(r"(?<!\d)(\d{3})-(\d{2})-(\d{4})(?!\d)")
_NINO = re.compile(r"\b([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]) ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
_DNI = re.compile(r"\b([XYZ]?)(\d{7,8})-?([A-Z])\b")

_IBAN_LENGTHS = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21,
    "HU": 28, "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SE": 24,
    "SI": 19, "SK": 24, "SM": 27, "TR": 26, "AE": 23, "SA": 24, "IL": 23, "BR": 29,
}  # fmt: skip

_SECRETS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("aws_access_key", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}\b")),
    ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})\b")),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,72}\b")),
    ("stripe_key", re.compile(r"\b(?:sk|rk)_live_[A-Za-z0-9]{20,99}\b")),
    ("openai_key", re.compile(r"\bsk-(?:proj-|svcacct-|ant-)?[A-Za-z0-9_-]{32,164}\b")),
    ("google_api_key", re.compile(r"\bAIza[A-Za-z0-9_-]{35}\b")),
    (
        "generic_api_key",
        re.compile(
            r"\b(?:api[_-]?key|secret|token|password|passwd)\b\s*[:=]\s*['\"]?"
            r"([A-Za-z0-9_\-/+=]{20,128})"
        ),
    ),
)
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----"
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,2048}\.eyJ[A-Za-z0-9_-]{8,8192}\.[A-Za-z0-9_-]{0,1024}")


def luhn(digits: str) -> bool:
    """The Luhn (mod 10) check of a card number."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_issuer(digits: str) -> bool:
    if digits[0] == "4":
        return len(digits) in (13, 16, 19)
    two, four, six = int(digits[:2]), int(digits[:4]), int(digits[:6])
    if 51 <= two <= 55 or 222100 <= six <= 272099:
        return len(digits) == 16
    if two in (34, 37):
        return len(digits) == 15
    if four == 6011 or two == 65 or 644 <= int(digits[:3]) <= 649 or two == 62:
        return 16 <= len(digits) <= 19
    if 3528 <= four <= 3589:
        return 16 <= len(digits) <= 19
    return two in (36, 38, 39) or 300 <= int(digits[:3]) <= 305


def valid_card(candidate: str) -> bool:
    """Luhn plus a known issuer prefix and length; rejects repeated digits."""
    digits = re.sub(r"[ -]", "", candidate)
    return (
        13 <= len(digits) <= 19 and len(set(digits)) > 1 and _card_issuer(digits) and luhn(digits)
    )


def valid_iban(candidate: str) -> bool:
    """ISO 13616: length of the country, then mod-97 of the rearranged number equals 1."""
    iban = candidate.replace(" ", "")
    if _IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def valid_ssn(m: re.Match[str]) -> bool:
    """US SSN issuing rules: no area 000, 666 or 9xx, no group 00, no serial 0000."""
    area, group, serial = m.group(1), m.group(2), m.group(3)
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def valid_dni(m: re.Match[str]) -> bool:
    """Spanish DNI/NIE: the letter is ``TRWAGMYFPDXBNJZSQVHLCKE[number % 23]``."""
    prefix, number, letter = m.group(1), m.group(2), m.group(3)
    if prefix:
        if len(number) != 7:
            return False
        number = str("XYZ".index(prefix)) + number
    elif len(number) != 8:
        return False
    return "TRWAGMYFPDXBNJZSQVHLCKE"[int(number) % 23] == letter


def valid_jwt(token: str) -> bool:
    """The header decodes to a JSON object naming ``alg``."""
    head = token.split(".", 1)[0]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


def _valid_phone(candidate: str) -> bool:
    digits = re.sub(r"\D", "", candidate)
    return 8 <= len(digits) <= 15 and len(set(digits)) > 2


def _finding(name: str, score: float, t: Text, m: re.Match[str], group: int = 0) -> Finding:
    return Finding(name, score, t.field, m.start(group), m.end(group), mask(m.group(group)))


_LOOKAROUND = re.compile(r"\(\?<?[!=][^()]*\)")
_LONG_REPEAT = re.compile(r"\{(\d+),(\d{4,})\}")


def _prefilter(patterns: Iterable[re.Pattern[str]]) -> re2.Set:
    """One RE2 set matching a superset of the patterns' matches, in one linear scan.

    Lookarounds are dropped and repeat bounds above 1000 (RE2's cap) opened.
    Most texts hold no candidate at all; they skip the per-pattern passes.
    """
    options = re2.Options()
    options.log_errors = False
    found = re2.Set.SearchSet(options)
    for p in patterns:
        found.Add(_LONG_REPEAT.sub(r"{\1,}", _LOOKAROUND.sub("", p.pattern)))
    found.Compile()
    return found


_MAYBE_PII = _prefilter((_EMAIL, _CARD, _IBAN, _SSN, _NINO, _DNI, _PHONE))
_MAYBE_SECRET = _prefilter((*(p for _, p in _SECRETS), _PRIVATE_KEY, _JWT))


def _pii(t: Text) -> Iterable[Finding]:
    if _MAYBE_PII.Match(t.text) is None:
        return []
    found: list[Finding] = [_finding("pii.email", 0.9, t, m) for m in _EMAIL.finditer(t.text)]
    found += [
        _finding("pii.credit_card", 0.99, t, m)
        for m in _CARD.finditer(t.text)
        if valid_card(m.group())
    ]
    found += [
        _finding("pii.iban", 0.99, t, m) for m in _IBAN.finditer(t.text) if valid_iban(m.group())
    ]
    found += [_finding("pii.national_id", 0.8, t, m) for m in _SSN.finditer(t.text) if valid_ssn(m)]
    found += [_finding("pii.national_id", 0.8, t, m) for m in _NINO.finditer(t.text)]
    found += [
        _finding("pii.national_id", 0.95, t, m) for m in _DNI.finditer(t.text) if valid_dni(m)
    ]
    taken = [(f.start, f.end) for f in found]
    for m in _PHONE.finditer(t.text):
        # A digit run inside a card, IBAN or id already reported is not also a phone.
        if _valid_phone(m.group()) and not any(s < m.end() and m.start() < e for s, e in taken):
            found.append(_finding("pii.phone", 0.7, t, m))
    return found


def _secrets(t: Text) -> Iterable[Finding]:
    if _MAYBE_SECRET.Match(t.text) is None:
        return
    for name, pattern in _SECRETS:
        for m in pattern.finditer(t.text):
            group = 1 if pattern.groups else 0
            if name == "generic_api_key" and not _looks_random(m.group(1)):
                continue
            yield _finding(f"secret.{name}", 0.95 if group == 0 else 0.7, t, m, group)
    for m in _PRIVATE_KEY.finditer(t.text):
        yield _finding("secret.private_key", 1.0, t, m)
    for m in _JWT.finditer(t.text):
        if valid_jwt(m.group()):
            yield _finding("secret.jwt", 0.95, t, m)


def _looks_random(value: str) -> bool:
    """Mixed letters and digits: a value, not a word such as ``placeholder_value``."""
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


def detect_pii(texts: Iterable[Text]) -> list[Finding]:
    """PII findings in the given texts."""
    return [f for t in texts for f in _pii(t)]


def detect_secrets(texts: Iterable[Text]) -> list[Finding]:
    """Secret findings in the given texts."""
    return [f for t in texts for f in _secrets(t)]
