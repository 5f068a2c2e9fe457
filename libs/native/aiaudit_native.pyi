"""Native core of aiaudit (Rust, ``libs/native``): the canonical form of events."""

from collections.abc import Callable

FieldSpec = tuple[
    int, tuple[str, str], int, bool, bool, bool, int, tuple[str, dict[int, str]] | None, int, bool
]
"""(number, (name, JSON name), FieldDescriptor.TYPE_*, repeated, explicit
presence, sensitive content, message type index or -1, enum (type name, value
names by number), oneof index or -1, map field), in declaration order."""

class Schema:
    """The message types of an event, built once from their descriptors."""

    def __init__(self, messages: list[tuple[str, list[FieldSpec]]], root: int) -> None: ...
    def commit(self, event: bytes, salt: bytes) -> tuple[bytes, bytes, dict[str, str], bytes]:
        """(canonical, leaf hash, content by path, content as JSON) of a serialised event."""
    def json(self, event: bytes) -> bytes:
        """The proto3 JSON mapping of a serialised event, content included (RFC 8785 text)."""
    def content_texts(self, event: bytes) -> tuple[list[tuple[str, str]], list[str]]:
        """(JSON path, text) of each content string; the paths of the content bytes (media)."""
    def maybe_unknown_fields(self, event: bytes) -> bool:
        """False when a serialised event surely has no unknown field; True: maybe."""
    def restore(self, canonical: bytes, content: dict[str, str] | None) -> bytes:
        """The serialised event of a canonical form and its content; ValueError if unusual."""
    def restore_many(self, stored: list[tuple[bytes, dict[str, str] | None]]) -> list[bytes | None]:
        """``restore`` of each (canonical, content); None where the fast path does not apply."""

class EventChecks:
    """Ingest's validation of one event: the rules of the event as a whole, the field checks."""

    def __init__(
        self,
        schema: Schema,
        event_id_pattern: str,
        tenant_id_pattern: str,
        server_written: dict[int, str],
        required: list[tuple[int, str, str]],
        stored: list[tuple[str, int]],
        max_text: int,
        ahead: str,
        counted: list[tuple[str, int]],
    ) -> None: ...
    def check(
        self, event: bytes, horizon: float, is_ip: Callable[[str], bool]
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(rules, field checks): (path relative to the event, problem) pairs, in order."""

def merkle_levels(leaves: bytes) -> list[bytes]:
    """RFC 6962 subtree levels over concatenated 32-byte leaf hashes, each level concatenated."""

Finding = tuple[str, float, str, int, int, str]
"""(detector, score, field path, start, end, excerpt); offsets in characters."""

def detect(
    family: str,
    inputs: list[tuple[str, str]],
    outputs: list[tuple[str, str]],
    system: list[str],
) -> list[Finding]:
    """One detector family's findings on an event's (field path, text) inputs and outputs."""

def load_injection_model(bias: float, signals: dict[str, float], words: dict[bytes, float]) -> None:
    """Sets the injection detector's logistic model weights."""

def load_harmful_model(bias: float, signals: dict[str, float], words: dict[bytes, float]) -> None:
    """Sets the harmful-content detector's logistic model weights."""

def load_harmful_answer_model(
    bias: float, signals: dict[str, float], words: dict[bytes, float]
) -> None:
    """Sets the harmful-content detector's answer model weights (it scores outputs only)."""

def linear_words(text: str) -> list[bytes]:
    """The detector models' word features of a text: distinct words and adjacent pairs."""

def check_regex(pattern: str, stored: bool = False) -> None:
    """ValueError (with the reason) unless the RE2 pattern compiles for the rule engine.

    To at most 2 MiB for a new rule, 32 MiB for one ``stored`` before that check.
    """

def media_text(mime_type: str, data: bytes) -> tuple[str, int, str] | None:
    """A textual inline media's bytes as text; None for a binary type.

    (Python codec to encode it back, byte order mark length, text).
    """

def pack_samples(samples: list[tuple[float, float]]) -> bytes:
    """Window samples as stored: version byte 1, then per sample varints of its differences.

    The time's and value's bit patterns against the previous sample's: exact for every double.
    """

def unpack_samples(data: bytes) -> list[tuple[float, float]]:
    """Samples from ``pack_samples``; ValueError for bytes it did not make."""

class WindowState:
    """Window samples per (rule id, group), and which slots changed since last taken."""

    start: float
    """Receive time from which every event of the log was seen (default -inf: all of them)."""

    def __init__(self) -> None: ...
    def put(self, rule_id: str, group: str, samples: list[tuple[float, float]]) -> None:
        """Sets a slot's samples (as loaded from the store), not marked changed."""
    def samples(self, rule_id: str, group: str) -> list[tuple[float, float]] | None:
        """A slot's samples, oldest first."""
    def take_changed(self) -> list[tuple[str, str, bytes]]:
        """(rule id, group, ``pack_samples`` of its samples) of slots changed since last taken."""
    def journal(self, rule_ids: list[str]) -> None:
        """Records the samples added from now on to these rules' windows (empty: none)."""
    def take_journal(self) -> list[tuple[int, str, str, float, float]]:
        """(event index, rule id, group, time, value) recorded since the last call."""
    def __len__(self) -> int: ...

Plan = tuple[object, ...]

class RuleProgram:
    """Compiled rules over events of one schema."""

    def __init__(self, schema: Schema, rules: list[tuple[str, bool, Plan, Plan | None]]) -> None:
        """(id, enabled, condition, window or None) per rule; ValueError if one cannot compile."""
    def evaluate(
        self,
        events: list[bytes],
        times: list[float],
        windows: WindowState,
        since: list[float] | None = None,
    ) -> list[tuple[int, int, str, list[Finding], float | None, list[int]]]:
        """(event index, rule index, group, evidence, window aggregate, elements) per firing.

        ``elements``: those its ``("each", field, c)`` condition held on, by position.
        ``since``: per rule, the receive time from which a windowed rule counts events.
        """
    def add_samples(
        self, samples: list[tuple[str, str, float, float]], windows: WindowState
    ) -> None:
        """Adds recorded (rule id, group, time, value) samples to the windowed rules' windows."""

def field_values(schema: Schema, event: bytes, path: str) -> list[str | int | float | bool]:
    """Every value of a field path (proto names, dotted) in a serialised event, as rules see it."""

def injection_signals(text: str) -> list[tuple[str, int, int]]:
    """The injection signal families that matched a text: (name, start, end) in characters."""

def injection_score(text: str) -> tuple[float, list[tuple[str, int, int]]]:
    """A text's injection score (4 places) and evidence spans; ValueError before a model."""

def harmful_signals(text: str) -> list[tuple[str, int, int]]:
    """The harmful-content categories that matched a text: (name, start, end) in characters."""

def harmful_score(text: str) -> tuple[float, list[tuple[str, int, int]]]:
    """A text's harmful-content score (4 places) and evidence spans; ValueError before a model."""

def harmful_answer_signals(text: str) -> list[tuple[str, int, int]]:
    """The harmful answer model's signals (categories, compliance, refusal) in characters."""

def harmful_answer_score(text: str) -> tuple[float, list[tuple[str, int, int]]]:
    """A text's harmful answer-model score (4 places) and signal spans; ValueError before one."""
