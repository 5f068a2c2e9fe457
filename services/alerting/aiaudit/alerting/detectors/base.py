"""Shared types of the detectors: findings, the texts of an event, masking."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from aiaudit.common.v1 import event_pb2


@dataclass(frozen=True)
class Finding:
    """One match: which detector, how sure, where, and a (masked) excerpt."""

    detector: str
    score: float
    field: str
    start: int
    end: int
    excerpt: str


@dataclass(frozen=True)
class Text:
    """A piece of event text and the field path it came from."""

    field: str
    text: str


def input_texts(e: event_pb2.Event) -> Iterator[Text]:
    """Untrusted text that reaches the model: user and tool messages, RAG chunks, tool results.

    System instructions are the operator's own and are not scanned for injection.
    """
    for i, m in enumerate(e.input.messages):
        if m.role in (event_pb2.ROLE_SYSTEM,):
            continue
        for j, p in enumerate(m.parts):
            if p.text:
                yield Text(f"input.messages[{i}].parts[{j}].text", p.text)
    for i, c in enumerate(e.input.retrieved_context):
        if c.content:
            yield Text(f"input.retrieved_context[{i}].content", c.content)
    if e.tool_call.result:
        yield Text("tool_call.result", e.tool_call.result)


def output_texts(e: event_pb2.Event) -> Iterator[Text]:
    """What the model produced: messages, reasoning, tool-call arguments."""
    for i, m in enumerate(e.output.messages):
        for j, p in enumerate(m.parts):
            if p.text:
                yield Text(f"output.messages[{i}].parts[{j}].text", p.text)
    if e.output.reasoning:
        yield Text("output.reasoning", e.output.reasoning)
    for i, t in enumerate(e.output.tool_calls):
        if t.arguments:
            yield Text(f"output.tool_calls[{i}].arguments", t.arguments)
    if e.tool_call.arguments:
        yield Text("tool_call.arguments", e.tool_call.arguments)


def system_texts(e: event_pb2.Event) -> list[str]:
    """The system prompt (instructions and system-role messages)."""
    out = [p.text for p in e.input.system_instructions if p.text]
    for m in e.input.messages:
        if m.role == event_pb2.ROLE_SYSTEM:
            out.extend(p.text for p in m.parts if p.text)
    return out


class EventTexts:
    """The texts of one event, each kind listed once for every detector that scans it."""

    def __init__(self, event: event_pb2.Event) -> None:
        """Nothing is listed until a detector asks."""
        self.event = event

    @cached_property
    def inputs(self) -> list[Text]:
        """:func:`input_texts`."""
        return list(input_texts(self.event))

    @cached_property
    def outputs(self) -> list[Text]:
        """:func:`output_texts`."""
        return list(output_texts(self.event))

    @cached_property
    def system(self) -> list[str]:
        """:func:`system_texts`."""
        return system_texts(self.event)


def mask(text: str) -> str:
    """Keeps the first and last 2 characters of a secret or PII match."""
    if len(text) <= 6:
        return "*" * len(text)
    return text[:2] + "*" * (len(text) - 4) + text[-2:]


def excerpt(text: str, start: int, end: int, width: int = 120) -> str:
    """The matched span, cut to ``width`` characters, one line."""
    return " ".join(text[start:end][:width].split())
