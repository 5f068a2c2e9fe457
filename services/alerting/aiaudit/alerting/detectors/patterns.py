"""Named RE2 patterns searched in one pass: the shared engine of the lexicon detectors.

RE2 runs in time linear in the text whatever the pattern (no backtracking), so
a crafted prompt cannot stall the engine. An ``RE2::Set`` tells in one scan
which patterns match; only those are searched again for their span. Texts are
encoded to UTF-8 once, and spans are returned as character offsets.
"""

from __future__ import annotations

import re2


def options() -> re2.Options:
    """Case-insensitive, ``.`` matches newlines, bounded memory, errors raised not logged."""
    o = re2.Options()
    o.case_sensitive = False
    o.dot_nl = True
    o.max_mem = 32 << 20
    o.log_errors = False
    return o


OPTIONS = options()


def compile_pattern(pattern: str) -> re2._Regexp:
    """One pattern, compiled for UTF-8 bytes with :data:`OPTIONS`."""
    return re2.compile(pattern.encode(), OPTIONS)


class PatternSet:
    """Named patterns; ``search`` gives the first span of each one that matches."""

    def __init__(self, named: dict[str, re2._Regexp]) -> None:
        """Compiles the set once (at import time of the detector)."""
        self.names = list(named)
        self.patterns = list(named.values())
        self._set = re2.Set.SearchSet(OPTIONS)
        for p in self.patterns:
            self._set.Add(p.pattern)
        self._set.Compile()

    def search(self, text: str) -> list[tuple[str, int, int]]:
        """``(name, start, end)`` for every matching pattern, in definition order."""
        data = encode(text)
        out = []
        for i in sorted(self._set.Match(data) or ()):
            m = self.patterns[i].search(data)
            if m is not None:
                a, b = m.span()
                out.append((self.names[i], chars(data, a), chars(data, b)))
        return out


def encode(text: str) -> bytes:
    """UTF-8 bytes of a text (lone surrogates kept, never an error)."""
    return text.encode("utf-8", "surrogatepass")


def chars(data: bytes, offset: int) -> int:
    """A UTF-8 byte offset as a character offset."""
    return len(data[:offset].decode("utf-8", "ignore"))
