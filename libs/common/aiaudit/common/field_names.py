"""What a name an event gives its own values may be, where the name becomes a search field.

An attribute's key and a trust signal's name are the last part of a search field path
(``attributes.<key>``, ``trust_signals.<name>``). Search's filter language reads a field
path as one word, so no filter can name one holding a space, ``:``, a quote or a
non-ASCII letter, or longer than 128 characters: ingest refuses such a name (naming it,
as any bad field), and search's catalogue takes exactly the names this module allows.
Until 2026-12-06 ingest stored trust signals named ``fact check`` or ``vendor:score``
that no filter could name (``trust_signals.vendor:score`` read as
``trust_signals.vendor = "score"``; review).
"""

from __future__ import annotations

import re

NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
"""A name a filter can hold after ``trust_signals.`` or ``attributes.`` (case kept)."""
NAME_RULE = "1-128 characters of [A-Za-z0-9_.-]"

ATTRIBUTE_KEY = re.compile(r"[a-z0-9_.-]{1,128}")
"""An attribute's key: such a name in lower case, the rule keys have always had."""
ATTRIBUTE_KEY_RULE = "1-128 characters of [a-z0-9_.-]"


def valid_name(name: str) -> bool:
    """Whether ``name`` can follow ``trust_signals.`` or ``attributes.`` in a search field."""
    return NAME.fullmatch(name) is not None


def valid_attribute_key(key: str) -> bool:
    """Whether ``key`` is an attribute's key (every one is also a :func:`valid_name`)."""
    return ATTRIBUTE_KEY.fullmatch(key) is not None
