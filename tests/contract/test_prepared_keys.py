"""Data keys made ahead of the append (``prepare_keys``), so that ingest's writer never asks
the KEK: a hanging Vault held every tenant's group commit (review, 2026-12-05)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pytest

from aiaudit.common.store.prepare import prepare_batch
from aiaudit.common.store.sql import Conflict, KeysNotPreparedError
from tests.contract.test_content_keys import (  # noqa: F401  (fixtures)
    append,
    key_rows,
    keyed,
    store_url,
    tenant,
)
from tests.helpers import interaction


def test_keys_made_ahead_by_two_processes_store_one_key_per_subject(
    store_url: str,  # noqa: F811
    tmp_path: Path,
    tenant: str,  # noqa: F811
) -> None:
    """Each process makes a key ahead for the same new subject: the row is written once,
    under the log's lock, and the second process seals under it, not under its own."""
    kek = tmp_path / "kek"
    one, two = keyed(store_url, kek), keyed(store_url, kek)
    now = dt.datetime.now(dt.UTC)
    first = prepare_batch([interaction(tenant, "e-1", user="alice")], now)
    second = prepare_batch([interaction(tenant, "e-2", user="alice")], now)
    with pytest.raises(KeysNotPreparedError) as unready:
        one.append_group([first], prepared_only=True)
    assert unready.value.pairs == {(tenant, "alice")}
    assert one.read_log(tenant, 0, 10) == []
    one.prepare_keys([first])
    two.prepare_keys([second])
    one.append_group([first], prepared_only=True)
    with pytest.raises(KeysNotPreparedError):  # the stored key is not held by this process yet
        two.append_group([second], prepared_only=True)
    two.prepare_keys([second])
    (outcome,) = two.append_group([second], prepared_only=True)
    assert not isinstance(outcome, Conflict) and outcome[0].sequence == 1
    assert list(key_rows(store_url, tenant)) == ["alice"]
    reader = keyed(store_url, kek)
    assert [e.content is not None for e in reader.read_log(tenant, 0, 10)] == [True, True]
    for store in (one, two, reader):
        store.close()


def test_a_key_made_ahead_survives_an_attempt_that_rolled_back(
    store_url: str,  # noqa: F811
    tmp_path: Path,
    tenant: str,  # noqa: F811
) -> None:
    """A retried event beside a new subject: the first attempt rolls back on the stored id,
    the second, looking ids up, still has the new subject's key made ahead."""
    store = keyed(store_url, tmp_path / "kek")
    stored = interaction(tenant, "e-1", user="alice")
    append(store, stored)
    batch = prepare_batch(
        [stored, interaction(tenant, "e-2", user="carol")], dt.datetime.now(dt.UTC)
    )
    store.prepare_keys([batch])
    (outcome,) = store.append_group([batch], prepared_only=True)
    assert not isinstance(outcome, Conflict)
    assert [(r.sequence, r.duplicate) for r in outcome] == [(0, True), (1, False)]
    assert sorted(key_rows(store_url, tenant)) == ["alice", "carol"]
    store.close()


def test_a_key_another_process_stored_since_the_check_is_not_unwrapped_under_the_lock(
    store_url: str,  # noqa: F811
    tmp_path: Path,
    tenant: str,  # noqa: F811
) -> None:
    """Between the writer's check (its key made ahead, no row yet) and the head lock another
    replica stores the subject's key: the writer unwrapped that row under the lock, a KEK call
    holding every tenant's group while Vault hung (review of the session's diff, 2026-12-05).
    Now it is refused as not prepared, and the key made ahead is kept for the retry."""
    kek = tmp_path / "kek"
    one, two = keyed(store_url, kek), keyed(store_url, kek)
    now = dt.datetime.now(dt.UTC)
    one.append_group([prepare_batch([interaction(tenant, "e-0", user="zed")], now)])
    first = prepare_batch([interaction(tenant, "e-1", user="alice")], now)
    second = prepare_batch([interaction(tenant, "e-2", user="alice")], now)
    one.prepare_keys([first])
    two.prepare_keys([second])
    assert one.keys is not None
    calls: list[str] = []
    kek_of_one = one.keys.kek
    unwrap, wrap = kek_of_one.unwrap, kek_of_one.wrap

    def counted_unwrap(wrapped: Sequence[bytes]) -> list[bytes | None]:
        calls.append("unwrap")
        return unwrap(wrapped)

    def counted_wrap(keys: Sequence[bytes]) -> list[bytes]:
        calls.append("wrap")
        return wrap(keys)

    kek_of_one.unwrap = counted_unwrap  # type: ignore[method-assign]
    kek_of_one.wrap = counted_wrap  # type: ignore[method-assign]
    ready = one._ready_keys

    def then_the_other_commits(*args: object, **kwargs: object) -> None:
        ready(*args, **kwargs)  # type: ignore[arg-type]
        (out,) = two.append_group([second], prepared_only=True)
        assert not isinstance(out, Conflict)

    one._ready_keys = then_the_other_commits  # type: ignore[method-assign]
    with pytest.raises(KeysNotPreparedError) as unready:
        one.append_group([first], prepared_only=True)
    assert unready.value.pairs == {(tenant, "alice")} and calls == []
    del one._ready_keys
    one.prepare_keys([first])  # the preparer unwraps the stored key, outside any lock
    (outcome,) = one.append_group([first], prepared_only=True)
    assert not isinstance(outcome, Conflict) and outcome[0].sequence == 2
    assert list(key_rows(store_url, tenant)) == ["alice", "zed"]
    for store in (one, two):
        store.close()
