"""Data keys wrapped ahead of use do not outlive a Transit rotation (a real OpenBao).

A service wraps keys for new subjects ahead (the keyring's spares, the store's keys
made ahead for a batch). Stored after a rotation and its rewrap, such a key was
still under the old version, and retiring that version lost its subject's content.
A key wrapped ahead is now stored at most ``SPARE_SECONDS`` after its wrap began,
or never; a wrap answered under a newer version drops the older spares at once.
The keyrings here read an injected clock: time passes by setting it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import pytest
import sqlalchemy as sa

from aiaudit.common.keys.kek import KekError, transit_version
from aiaudit.common.keys.keyring import SPARE_SECONDS, Keyring
from aiaudit.common.keys.rewrap import RewrapReport, rewrap_keys
from aiaudit.common.keys.transit import TransitKek
from aiaudit.common.store import open_store
from aiaudit.common.store.prepare import prepare_batch
from aiaudit.common.store.sql import KeysNotPreparedError, NewEvent, SqlEventStore
from tests.conftest import Postgres
from tests.contract.test_content_kek import bootstrapped, openbao  # noqa: F401
from tests.contract.test_content_rewrap import (
    SUBJECTS,
    readable,
    rewrap_token,
    sealed_events,
    stored_keys,
    urls,
)
from tests.helpers import interaction
from tests.integrity.conftest import Vault, vault  # noqa: F401  (the session's OpenBao)


class Clock:
    """A keyring's clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Services:
    """A bootstrapped content key and the services' side of it: their KEK and a keyring
    on a clock of the test's."""

    def __init__(self, v: Vault, sealed_store: Postgres | str) -> None:
        self.vault = v
        self.settings, self.token = bootstrapped(v)
        self.url, self.admin_url = urls(sealed_store)
        self.kek = TransitKek(v.client(self.token), self.settings.mount, self.settings.key)
        self.clock = Clock()
        self.keys = Keyring(self.kek, clock=self.clock)

    def rotate(self) -> None:
        self.vault.client().secrets.transit.rotate_key(
            name=self.settings.key, mount_point=self.settings.mount
        )

    def versions(self) -> dict[str, int | None]:
        """Subject -> the Transit version its stored key is under."""
        return {s: transit_version(w) for s, w in stored_keys(self.admin_url).items()}

    def rewrap_and_retire(self, version: int) -> RewrapReport:
        """The operator's procedure: rewrap, then retire (and trim) the versions below."""
        operator = TransitKek(
            self.vault.client(rewrap_token(self.vault, self.settings)),
            self.settings.mount,
            self.settings.key,
        )
        engine = sa.create_engine(self.admin_url)
        report = RewrapReport()
        rewrap_keys(engine, operator, report)
        engine.dispose()
        admin = self.vault.client().secrets.transit
        where = {"name": self.settings.key, "mount_point": self.settings.mount}
        admin.update_key_configuration(min_decryption_version=version, **where)
        admin.update_key_configuration(min_encryption_version=version, **where)
        admin.trim_key(min_version=version, **where)
        return report


def test_a_spare_wrapped_before_a_rotation_is_not_stored_past_the_bound(
    openbao: Vault,  # noqa: F811
    sealed_store: Postgres | str,
) -> None:
    """Spares a replica wrapped before the rotation: used within ``SPARE_SECONDS`` of their
    wrap (a rewrap started that long after the rotation finds them), dropped after. Until
    2026-12-07 a spare waited for its subject for ever, and was stored under version 1
    after the rewrap: retiring version 1 then lost that subject's content."""
    s = Services(openbao, sealed_store)
    s.keys.stock(3)  # wrapped ahead, under version 1
    s.rotate()
    s.clock.now += SPARE_SECONDS - 1
    texts = sealed_events(s.url, s.kek, ["alice"], keys=s.keys)
    assert s.versions() == {"alice": 1}  # within the bound: the rewrap below takes it
    s.clock.now += 2  # the spares are now SPARE_SECONDS + 1 old
    texts |= sealed_events(s.url, s.kek, ["bob"], keys=s.keys)
    assert s.versions() == {"alice": 1, "bob": 2}
    report = s.rewrap_and_retire(2)
    assert (report.rewrapped, report.current, report.behind) == (1, 1, 0)
    texts |= sealed_events(s.url, s.kek, ["carol"], keys=s.keys)
    assert s.versions() == {"alice": 2, "bob": 2, "carol": 2}
    assert readable(s.url, s.kek) == texts


def test_a_rotation_seen_in_a_new_wrap_drops_the_older_spares(
    openbao: Vault,  # noqa: F811
    sealed_store: Postgres | str,
) -> None:
    """No time passes: the wrap for the batch's two extra subjects comes back under
    version 2, and the three spares under version 1 go with it (until 2026-12-07 they
    were stored beside them)."""
    s = Services(openbao, sealed_store)
    s.keys.stock(3)
    s.rotate()
    texts = sealed_events(s.url, s.kek, SUBJECTS, keys=s.keys)
    assert s.versions() == dict.fromkeys(SUBJECTS, 2)
    report = s.rewrap_and_retire(2)
    assert (report.rewrapped, report.current) == (0, 5)
    assert readable(s.url, s.kek) == texts


def batch(subjects: Sequence[str], tag: str) -> list[NewEvent]:
    """One event per subject for log ``t``, ready to append."""
    events = [interaction("t", f"{s}-{tag}", text=f"secret of {s}", user=s) for s in subjects]
    return prepare_batch(events, dt.datetime.now(dt.UTC))


def test_keys_made_ahead_for_a_batch_are_made_again_past_the_bound(
    openbao: Vault,  # noqa: F811
    sealed_store: Postgres | str,
) -> None:
    """The ingest committer makes a batch's keys ahead (``prepare_keys``) and appends with
    ``prepared_only``; a batch that waited past the bound (a rotation may have come and
    gone) is told its keys are not ready, and prepared again under the latest version.
    Until 2026-12-07 the old keys were stored, whenever the batch came."""
    s = Services(openbao, sealed_store)
    store = open_store(s.url, keys=s.keys)
    assert isinstance(store, SqlEventStore)
    try:
        waiting = batch(["alice", "bob"], "1")
        store.prepare_keys([waiting])
        s.rotate()
        s.clock.now += SPARE_SECONDS + 1
        with pytest.raises(KeysNotPreparedError) as unready:
            store.append_group([waiting], prepared_only=True)
        assert unready.value.pairs == {("t", "alice"), ("t", "bob")}
        assert s.versions() == {}  # nothing written
        store.prepare_keys([waiting])
        store.append_group([waiting], prepared_only=True)
    finally:
        store.close()
    assert s.versions() == {"alice": 2, "bob": 2}


class SlowKek:
    """The real Transit KEK on a clock that moves ``seconds`` while each wrap is in flight
    (a Vault that answers that late)."""

    def __init__(self, kek: TransitKek, clock: Clock, seconds: float) -> None:
        self.kek, self.clock, self.seconds = kek, clock, seconds
        self.name = kek.name

    def wrap(self, keys: Sequence[bytes]) -> list[bytes]:
        out = self.kek.wrap(keys)
        self.clock.now += self.seconds
        return out

    def unwrap(self, wrapped: Sequence[bytes]) -> list[bytes | None]:
        return self.kek.unwrap(wrapped)


def test_a_wrap_answered_past_the_bound_is_an_error_not_a_loop(
    openbao: Vault,  # noqa: F811
) -> None:
    """Keys that come back already too old are never used: the take fails, named, rather
    than wrapping again, as slowly, for ever."""
    settings, token = bootstrapped(openbao)
    clock = Clock()
    kek = TransitKek(openbao.client(token), settings.mount, settings.key)
    slow = Keyring(SlowKek(kek, clock, SPARE_SECONDS + 1), clock=clock)
    with pytest.raises(KekError, match=r"took 61 s to wrap 2 data key\(s\).*none used"):
        slow.take(2)
    in_time = Keyring(SlowKek(kek, clock, SPARE_SECONDS), clock=clock)
    assert [transit_version(k.wrapped) for k in in_time.take(2)] == [1, 1]


class StraddlingKek:
    """The real Transit KEK whose first wrap is answered under version 1, then, before it
    returns, the key is rotated and another thread's wrap (run here, in its place) comes
    back under version 2 first: a wrap that straddles the rotation."""

    def __init__(self, kek: TransitKek, meanwhile: Callable[[], None]) -> None:
        self.kek, self.meanwhile, self.name = kek, meanwhile, kek.name
        self.first = True

    def wrap(self, keys: Sequence[bytes]) -> list[bytes]:
        out = self.kek.wrap(keys)
        if self.first:
            self.first = False
            self.meanwhile()
        return out

    def unwrap(self, wrapped: Sequence[bytes]) -> list[bytes | None]:
        return self.kek.unwrap(wrapped)


def test_a_wrap_straddling_a_rotation_adds_no_older_spares(
    openbao: Vault,  # noqa: F811
    sealed_store: Postgres | str,
) -> None:
    """A wrap answered under version 1 that returns after another's answered under
    version 2: its keys are not kept, and a key made ahead for a batch under version 1
    is made again. Until 2026-12-07 they were kept (stored within the bound, but not
    dropped at once as a newer version drops them)."""
    s = Services(openbao, sealed_store)
    store = open_store(s.url, keys=s.keys)
    assert isinstance(store, SqlEventStore)
    waiting = batch(["alice"], "1")

    def meanwhile() -> None:
        s.rotate()
        s.keys.stock(2)  # the other thread's wrap: version 2

    try:
        store.prepare_keys([waiting])  # version 1, before the rotation
        s.keys.kek = StraddlingKek(s.kek, meanwhile)
        s.keys.stock(4)  # answered under version 1, returned after the version 2 wrap
        assert [transit_version(k.wrapped) for k in s.keys.take(3)] == [2, 2, 2]
        with pytest.raises(KeysNotPreparedError):
            store.append_group([waiting], prepared_only=True)
        store.prepare_keys([waiting])
        store.append_group([waiting], prepared_only=True)
    finally:
        store.close()
    assert s.versions() == {"alice": 2}
