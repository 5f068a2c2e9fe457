"""What ingest keeps of PII and secrets in content: masked before the event is hashed.

Content (message text, RAG chunks, tool arguments and results, reasoning) is
sealed under its subject's data key and can be erased, but some of it should
never be stored at all: a card number a user pasted, an API key a tool echoed
back. ``ingest.redact_content`` names detector families, ``pii`` (e-mail,
phone, card, IBAN, national ids, with their checksums) and ``secrets``
(provider keys, private keys, JWTs): the alerting detectors, in the native
core. Each finding in a content text is replaced by ``[REDACTED:<kind>]``
before the canonical form is made, so the leaf, the store, the index and alert
evidence only ever hold the marker. A private key is masked from its ``BEGIN``
line to its ``END`` line; a key with no ``END`` in its part goes on in the
next parts of its message (or system instructions): a streamed answer logged
in chunks. It is masked up to the ``END`` line, or to the end of the message.

Inline media of a textual type (``text/*``, ``message/*``, JSON, XML, YAML,
TOML, CSV, PEM files and the like, ``+json`` / ``+xml`` / ``+yaml``) are
content too: UTF-16 and UTF-32 are decoded, any other bytes read one byte a
character, masked like a text and written back (every byte outside a marker
as sent), with ``size_bytes`` and ``sha256`` made those of the bytes kept
(the hash of what was sent would let anyone holding the original confirm
it). Binary media (images, audio, PDF, ``application/octet-stream``) are kept
as sent: no detector reads them.

An event masking found something in is also raised to
``DATA_CLASSIFICATION_RESTRICTED`` (``ingest.classify_content``, on by
default), in the same place, so the leaf commits to the classification
retention then applies; masking's findings are read, no detector runs again.

Off by default: an audit log keeps what was said unless a policy says
otherwise. A retry is masked the same way, so it stays a retry; changing the
policy makes a retry of an earlier event differ from it (``ALREADY_EXISTS``).

The detectors read each text as it would be seen (:class:`_View`): invisible
format characters (zero-width spaces and joiners, soft hyphens, bidi controls)
and combining marks left out, fullwidth and tag characters as their ASCII. A
card number with a zero-width space between its groups, an e-mail address
with a fullwidth at sign (U+FF20) or a key hidden in tag characters is masked whole.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import itertools
import re
import string
from collections.abc import Collection
from dataclasses import dataclass

import aiaudit_native
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import Message

from aiaudit.common import canonical
from aiaudit.common.config import ConfigError
from aiaudit.common.v1 import event_pb2

FAMILIES = ("pii", "secrets")
_PEM_END = re.compile(r"-----END [A-Z ]*PRIVATE KEY(?: BLOCK)?-----")
_NOT_SECRET = frozenset(string.whitespace + "\"'`,;()[]{}<>")
"""What ends a secret's token: a password may hold any other character (``!``, ``$``, ``%``)."""
_MAX_PASSES = 4
_KEY = "secret.private_key"
_WHOLE = "[REDACTED]"


class ContentRedaction:
    """One policy; :meth:`apply` masks what it finds in a batch, in place."""

    def __init__(self, families: tuple[str, ...] = (), classify: bool = True) -> None:
        """``families``: some of :data:`FAMILIES` (none: content is kept as sent).

        ``classify``: an event with findings is raised to RESTRICTED (never lowered).
        """
        unknown = [f for f in families if f not in FAMILIES]
        if unknown:
            raise ConfigError(
                f"setting 'ingest.redact_content': {', '.join(map(repr, unknown))} "
                f"is not one of {FAMILIES}"
            )
        self.families = tuple(dict.fromkeys(families))
        self.classify = classify

    def apply(self, events: list[event_pb2.Event], wires: list[bytes]) -> list[int]:
        """Masks each validated event's findings, and its serialised form beside it.

        Returns the indexes of the events it changed (a marker can be longer
        than what it replaces: the caller checks their size again).
        """
        if not self.families:
            return []
        changed = []
        for i, event in enumerate(events):
            if self._redact(event, wires[i]):
                wires[i] = event.SerializeToString()
                changed.append(i)
        return changed

    def redact(self, event: event_pb2.Event) -> bool:
        """Masks one event in place; whether anything was found."""
        return self._redact(event, event.SerializeToString())

    def _redact(self, event: event_pb2.Event, wire: bytes) -> bool:
        """:meth:`redact`, ``wire`` being the event serialised (the paths address both).

        Detection runs again on what masking left until it finds nothing: a
        mask changes the boundaries around it, and a match the detectors had
        passed over (consumed by an overlapping candidate, or glued to the
        value before, as in ``+15551234567+15551234568``) can show only then,
        one more a pass. After :data:`_MAX_PASSES` passes a finding's whole run
        of non-blank characters is masked; a text yielding findings even then
        (none is known) is masked whole.
        """
        found_texts, media_paths = canonical.native_schema().content_texts(wire)
        sent = dict(found_texts)
        media = _text_media(event, media_paths) if media_paths else {}
        sent.update((path, view.text) for path, view in media.items())
        texts = dict(sent)
        bytewise = {path for path, view in media.items() if view.codec == "latin-1"}
        for n in range(_MAX_PASSES + 2):
            spans = self._spans(list(texts.items()), bytewise)
            if n == 0 and any(k == _KEY for found in spans.values() for _, _, k in found):
                _continue_keys(texts, spans)
            if not spans:
                break
            for path, found in spans.items():
                if n < _MAX_PASSES:
                    texts[path] = masked(texts[path], found)
                elif n == _MAX_PASSES:  # a chain of glued values: their whole run
                    texts[path] = masked(texts[path], _runs(texts[path], found, path in bytewise))
                else:
                    texts[path] = _WHOLE
        changed = {path: text for path, text in texts.items() if text != sent[path]}
        for path, text in changed.items():
            if path in media:
                _set_media(media[path], text)
            else:
                _set(event, path, text)
        if changed and self.classify:  # RESTRICTED is the highest: raising never lowers
            event.data_classification = event_pb2.DATA_CLASSIFICATION_RESTRICTED
        return bool(changed)

    def _spans(
        self, texts: list[tuple[str, str]], bytewise: Collection[str] = ()
    ) -> dict[str, list[tuple[int, int, str]]]:
        """Each text's findings, at offsets of the text itself: read as sent and through its view.

        The view reads a value an invisible character hides inside; as sent,
        values such a character stands between are read apart (the view glues
        them into one run, read as neither). ``bytewise``: the paths of media
        read one byte a character.
        """
        views = {path: v for path, text in texts if (v := _View.of(text, path in bytewise))}
        seen = [(path, view.text) for path, view in views.items()]
        readings = ((texts, False), (seen, True)) if seen else ((texts, False),)
        spans: dict[str, list[tuple[int, int, str]]] = {}
        for family in self.families:
            for reading, through_view in readings:
                for kind, _score, path, start, end, _excerpt in aiaudit_native.detect(
                    family, [], reading, []
                ):
                    if through_view:
                        start, end = views[path].span(start, end)
                    spans.setdefault(path, []).append((start, end, kind))
        return spans


_FOLD = {
    **{c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)},  # fullwidth ASCII
    0x3000: ord(" "),  # ideographic space
    **{c: c - 0xE0000 for c in range(0xE0020, 0xE007F)},  # tags: invisible ASCII
}
"""Characters read as the ASCII character they stand for (one for one: offsets hold)."""
_MARKS = [
    *range(0x0300, 0x0370),
    *range(0x1AB0, 0x1B00),
    *range(0x1DC0, 0x1E00),
    *range(0x20D0, 0x2100),
    *range(0xFE00, 0xFE10),
    *range(0xFE20, 0xFE30),
    *range(0xE0100, 0xE01F0),
]
"""Combining marks a Latin value can carry unseen, and variation selectors (scripts that
need their marks keep them: the detectors read ASCII values)."""


_FORMAT = [
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE007F, 0xE007F),
]
"""The format characters (Cf) of Unicode 15.1, but the tags :data:`_FOLD` reads, as ranges.

Written out, not read from ``unicodedata``: Python 3.11 knows Unicode 14 (no
U+13439-U+1343F), 3.12 Unicode 15; replicas on either must store an event alike.
"""


def _class(points: list[int]) -> str:
    """A regex character class of these code points, as ranges (a long class is slow)."""
    ranges: list[list[int]] = []
    for c in sorted(points):
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return "[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges) + "]"


@functools.cache
def _patterns() -> tuple[re.Pattern[str], ...]:
    """What the view leaves out and what it changes, as regexes.

    Runs of what it leaves out (format characters, :data:`_MARKS`); a character
    it folds; any character it changes in the BMP, and beyond it. Separate
    classes of ranges: a long class, or one mixing the planes, is searched
    several times slower.
    """
    hidden = [c for first, last in _FORMAT for c in range(first, last + 1)]
    changed = sorted({*hidden, *_MARKS, *_FOLD})
    return (
        re.compile(_class([*hidden, *_MARKS]) + "+"),
        re.compile(_class(list(_FOLD))),
        re.compile(_class([c for c in changed if c <= 0xFFFF])),
        re.compile(_class([c for c in changed if c > 0xFFFF])),
    )


_BEYOND_BMP = re.compile("[\U00010000-\U0010ffff]")


class _View:
    """A text as the detectors read it, and where each of its characters came from.

    A zero-width space between a card's groups, or a fullwidth at sign, hid the
    value from the detectors, which read ASCII values: it was stored as sent.
    The view is made at C speed; where its characters came from is worked out
    only for a text with findings, one step per run left out. A textual media
    read one byte a character whose bytes are UTF-8 is viewed as decoded (its
    zero-width spaces and non-ASCII digits were bytes the detectors could not
    read), and its findings mapped back to bytes.
    """

    def __init__(self, folded: str, hidden: re.Pattern[str], sent: str | None = None) -> None:
        """``sent``: the media's bytes as read (one a character) when ``folded`` is decoded."""
        self._folded = folded
        self._hidden = hidden
        self._sent = sent
        self.text = hidden.sub("", folded)

    @classmethod
    def of(cls, text: str, bytewise: bool = False) -> _View | None:
        """The text's view, or None when it holds nothing the view changes (the usual case).

        ``bytewise``: the text is a media's bytes read one a character.
        """
        if text.isascii():
            return None
        sent = None
        if bytewise:
            try:
                sent, text = text, text.encode("latin-1").decode("utf-8")
            except UnicodeDecodeError:  # not UTF-8: the detectors read it as it is
                sent = None
        hidden, folds, bmp, astral = _patterns()
        if (
            sent is None
            and bmp.search(text) is None
            and (_BEYOND_BMP.search(text) is None or astral.search(text) is None)
        ):
            return None
        return cls(text.translate(_FOLD) if folds.search(text) else text, hidden, sent)

    @functools.cached_property
    def _runs(self) -> tuple[list[int], list[int]]:
        """For each run left out: where the view goes on after it, and how much is left out.

        Counted up to the end of that run, in characters of the original text.
        """
        gaps = [m.span() for m in self._hidden.finditer(self._folded)]
        left_out = list(itertools.accumulate(end - start for start, end in gaps))
        return [end - n for (_, end), n in zip(gaps, left_out, strict=True)], left_out

    @functools.cached_property
    def _bytes_at(self) -> list[int]:
        """Where each decoded character starts in the bytes, and their end."""
        assert self._sent is not None
        return [m.start() for m in _UTF8_START.finditer(self._sent)] + [len(self._sent)]

    def _origin(self, at: int) -> int:
        """The offset in the (decoded) text of the view's character ``at``."""
        after, left_out = self._runs
        runs = bisect.bisect_right(after, at)
        return at + (left_out[runs - 1] if runs else 0)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The view's characters ``start:end`` as offsets of the text as sent.

        Runs left out inside are in it, those around it are not.
        """
        first, past = self._origin(start), self._origin(end - 1) + 1
        if self._sent is None:
            return first, past
        return self._bytes_at[first], self._bytes_at[past]


_UTF8_START = re.compile("[^\x80-\xbf]")
"""A byte that starts a UTF-8 character (read one byte a character)."""


def masked(text: str, found: list[tuple[int, int, str]]) -> str:
    """``text`` with each span (character offsets) replaced by its marker; overlaps merge.

    A secret's span runs on over the rest of its token (up to a blank, a quote
    or a bracket): some detectors take a bounded run of characters (a generic
    key's first 128, a JWT signature's first 1,024), and the rest must not
    stay behind. A private key's runs from its ``BEGIN`` line to its ``END``
    line, or to the end of the text. A secret found inside another span (a
    Slack token in an e-mail address) runs on from where that one ends. Each
    character is looked at once.
    """
    out: list[str] = []
    at = 0
    for start, end, kind in sorted(found):
        if kind == _KEY:  # the header is found; the key follows it
            if end <= at and start < at:  # inside what is masked already (a key's token)
                continue
            closing = _PEM_END.search(text, end)
            end = closing.end() if closing else len(text)
        elif kind.startswith("secret."):
            end = max(end, at)  # what is masked already is not read again
            while end < len(text) and text[end] not in _NOT_SECRET:
                end += 1
        if start < at:  # overlaps the previous span: it is masked already, up to ``at``
            if end > at:
                out.append(f"[REDACTED:{kind}]")
                at = end
            continue
        out.append(text[at:start])
        out.append(f"[REDACTED:{kind}]")
        at = end
    out.append(text[at:])
    return "".join(out)


_PART = re.compile(r"(.*)\[(\d+)\]\.text")
"""A message's part, or a system instruction: texts a longer one may be cut into."""


def _continue_keys(texts: dict[str, str], spans: dict[str, list[tuple[int, int, str]]]) -> None:
    """Carries a private key left open at the end of a part into the next parts of its list.

    Each next text part (an empty or a media part between passes it by), up
    to the one holding the ``END`` line, gets a span at its start that
    :func:`masked` runs on to that line (or to the part's end). One walk of
    each list, in order: linear in the number of parts.
    """
    lists: dict[str, list[tuple[int, str]]] = {}
    for path in texts:
        part = _PART.fullmatch(path)
        if part is not None:
            lists.setdefault(part.group(1), []).append((int(part.group(2)), path))
    for parts in lists.values():
        still_open = False
        for _, path in sorted(parts):
            text = texts[path]
            if still_open:
                spans.setdefault(path, []).append((0, 0, _KEY))
                still_open = _last_end(text) < 0
            own = [end for _, end, kind in spans.get(path, []) if kind == _KEY]
            if own and max(own) > _last_end(text):  # its last header has no END after it
                still_open = True


def _last_end(text: str) -> int:
    """Where the text's last ``END`` line starts (-1 if none): one scan, however many keys."""
    last = -1
    for m in _PEM_END.finditer(text):
        last = m.start()
    return last


def _runs(
    text: str, found: list[tuple[int, int, str]], bytewise: bool = False
) -> list[tuple[int, int, str]]:
    """The spans widened to the runs of non-blank characters around them, one per run.

    ``bytewise``: a media's bytes read one a character, whose blanks are ASCII
    ones: bytes 0x85 and 0xA0 read as blanks, yet end a UTF-8 sequence ("à").
    """
    blank = _is_ascii_blank if bytewise else str.isspace
    runs: list[tuple[int, int, str]] = []
    reach = 0
    for start, end, kind in sorted(found):
        if start < reach:  # in the run already widened
            continue
        while start > 0 and not blank(text[start - 1]):
            start -= 1
        reach = end
        while reach < len(text) and not blank(text[reach]):
            reach += 1
        runs.append((start, reach, kind))
    return runs


def _is_ascii_blank(c: str) -> bool:
    return c < "\x80" and c.isspace()


@dataclass(frozen=True)
class _MediaText:
    """A textual media's bytes as a text: ``bom`` + ``text.encode(codec)`` gives them back."""

    media: event_pb2.Media
    codec: str
    bom: bytes
    text: str


def _text_media(event: event_pb2.Event, paths: list[str]) -> dict[str, _MediaText]:
    """The inline media at these paths (``...media.data``) of a textual type, as texts."""
    found = {}
    for path in paths:
        media = _node(event, _STEP.findall(path)[:-1])
        assert isinstance(media, event_pb2.Media), path  # the only content bytes field
        view = _as_text(media)
        if view is not None:
            found[path] = view
    return found


def _as_text(media: event_pb2.Media) -> _MediaText | None:
    """The media's bytes as a text, or None for a binary type.

    Read by the native core as the alerting detectors read them
    (``aiaudit_native.media_text``): UTF-16 and UTF-32 decoded, any other
    bytes one byte a character (Latin-1), so encoding back gives every byte
    outside a marker exactly as sent, whatever the declared charset.
    """
    found = aiaudit_native.media_text(media.mime_type, media.data)
    if found is None:
        return None
    codec, bom, text = found
    return _MediaText(media, codec, media.data[:bom], text)


def _set_media(view: _MediaText, text: str) -> None:
    """Replaces the bytes by the masked text's, and their size and hash with them."""
    data = view.bom + text.encode(view.codec)  # markers are ASCII; the rest came from there
    view.media.data = data
    view.media.size_bytes = len(data)
    view.media.sha256 = hashlib.sha256(data).hexdigest()


def _set(event: event_pb2.Event, path: str, text: str) -> None:
    """Sets the content string at a JSON path (``input.messages[0].parts[1].text``)."""
    *through, last = _STEP.findall(path)
    node = _node(event, through)
    name, index = last
    if index:
        getattr(node, _field_name(node, name))[int(index)] = text
    else:
        setattr(node, _field_name(node, name), text)


_STEP = re.compile(r"(\w+)(?:\[(\d+)\])?")


def _node(event: event_pb2.Event, steps: list[tuple[str, str]]) -> Message:
    """The message the steps of a JSON path (name, index or '') lead to."""
    node: Message = event
    for name, index in steps:
        node = getattr(node, _field_name(node, name))
        if index:
            node = node[int(index)]  # type: ignore[index]
    return node


def _field_name(message: Message, json_name: str) -> str:
    return _names(message.DESCRIPTOR)[json_name]


@functools.cache
def _names(desc: Descriptor) -> dict[str, str]:
    """Field names by JSON name (the paths' names) of a message type."""
    return {f.json_name: f.name for f in desc.fields}
