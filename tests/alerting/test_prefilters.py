"""The one-pass PII and secret prefilters never skip a text that a pattern would match."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aiaudit.alerting.detectors import pii

_PII = (pii._EMAIL, pii._CARD, pii._IBAN, pii._SSN, pii._NINO, pii._DNI, pii._PHONE)
_SECRETS = (*(p for _, p in pii._SECRETS), pii._PRIVATE_KEY, pii._JWT)

# Texts dense in the characters the patterns are made of, so that matches are common.
_texts = st.text(alphabet="0123456789 -+.()@_=:ABCDEGHKXYZabeijkyJ", max_size=60)
_tokens = st.sampled_from(
    ["AKIA", "ghp_", "xoxb-", "sk_live_", "sk-", "AIza", "eyJ", "api_key=", "token: ", "."]
)


@settings(max_examples=400)
@given(_texts)
def test_pii_prefilter_is_a_superset(text: str) -> None:
    if any(p.search(text) for p in _PII):
        assert pii._MAYBE_PII.Match(text) is not None


@settings(max_examples=400)
@given(st.lists(st.one_of(_tokens, _texts), max_size=6).map("".join))
def test_secret_prefilter_is_a_superset(text: str) -> None:
    if any(p.search(text) for p in _SECRETS):
        assert pii._MAYBE_SECRET.Match(text) is not None


def test_prefilters_let_real_values_through() -> None:
    assert pii._MAYBE_PII.Match("card 4111 1111 1111 1111, mail a.b@example.org") is not None
    assert pii._MAYBE_SECRET.Match("key AKIAIOSFODNN7EXAMPLE here") is not None
    assert pii._MAYBE_PII.Match("see you at noon") is None
    assert pii._MAYBE_SECRET.Match("see you at noon") is None
