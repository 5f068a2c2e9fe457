"""Builders of test events."""

from __future__ import annotations

import uuid

from aiaudit.common.v1 import event_pb2 as ev


def interaction(
    tenant: str,
    event_id: str | None = None,
    text: str = "hello",
    user: str = "alice",
    model: str = "gpt-4o",
) -> ev.Event:
    e = ev.Event(
        event_id=event_id or f"e-{uuid.uuid4().hex}",
        tenant_id=tenant,
        event_type=ev.EVENT_TYPE_INTERACTION,
        actor=ev.Actor(user_id=user, application="app"),
        model=ev.Model(provider="openai", name=model, temperature=0.5),
        input=ev.Input(messages=[ev.Message(role=ev.ROLE_USER, parts=[ev.Part(text=text)])]),
        output=ev.Output(
            messages=[ev.Message(role=ev.ROLE_ASSISTANT, parts=[ev.Part(text="answer " + text)])]
        ),
        usage=ev.Usage(input_tokens=10, output_tokens=20),
    )
    e.occurred_time.GetCurrentTime()
    return e


def sized_interaction(tenant: str, size: int) -> ev.Event:
    """An interaction of about `size` bytes serialised."""
    return interaction(tenant, text="x" * max(0, size - 200))
