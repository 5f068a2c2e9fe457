"""The data keys a store process holds: per (log, subject), and by key id.

The store looks keys up and creates them under the log's head lock (so an
erasure, which takes the same lock, never races a writer); this class keeps
what it learnt. A log's ``key_epoch`` (``logs`` column, raised by every
subject erasure) says whether what it learnt of that log still holds. Keys
for new subjects are wrapped ahead, outside any lock: one KEK call (one Vault
round trip) for several, and a subject's stored key is unwrapped before the
lock is taken too, so a slow KEK holds no log's appends.

A key wrapped ahead is inserted at most :data:`SPARE_SECONDS` after its wrap
began (:meth:`Keyring.usable`, checked when taken and again after the insert,
in its transaction), or never. Its commit may come later (a synchronous
standby, a slow fsync): a rewrap's final count waits for every transaction
writing ``content_keys`` to end, so a run started that long after a rotation
of the Transit KEK counts every key wrapped under the old version.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from aiaudit.common.keys.kek import KEY_BYTES, Kek, KekError, transit_version
from aiaudit.common.keys.seal import DataKey, SealError

SubjectKey = tuple[int, DataKey]
"""(key id, the key) of a subject."""

SPARE_SECONDS = 60.0
"""How long after its wrap began a key wrapped ahead may still be stored.

An operator retiring old Transit versions starts ``content-keys rewrap`` at
least this long after the rotation: no key wrapped before it is inserted later
(its count waits for the commits of those inserted before).
Short enough to wait for, long enough that a key wrapped for a batch is
stored with it (the batch's KEK call and its commit take milliseconds).
"""


@dataclass(frozen=True)
class NewKey:
    """A data key not yet stored: id, the key, and the key as the KEK wrapped it."""

    key_id: int
    key: bytes = field(repr=False)
    wrapped: bytes
    made: float = 0.0
    """The keyring's clock when the KEK call that wrapped it began."""


@dataclass(frozen=True)
class StoredKey:
    """A row of ``content_keys`` as read."""

    key_id: int
    subject: str
    kek: str
    wrapped: bytes


class Keyring:
    """Data keys under one KEK, cached; thread-safe."""

    def __init__(
        self,
        kek: Kek,
        capacity: int = 100_000,
        clock: Callable[[], float] | None = None,
        spare_seconds: float = SPARE_SECONDS,
    ) -> None:
        """``capacity``: keys kept by id (each ~100 bytes plus the cipher object).

        ``clock`` (seconds) dates the keys wrapped ahead, which are stored at
        most ``spare_seconds`` after (:meth:`usable`); by default :class:`Elapsed`,
        which misses no time the host was suspended or paused.
        """
        self.kek = kek
        self._capacity = capacity
        self._clock = clock or Elapsed()
        self._spare_seconds = spare_seconds
        self._lock = threading.Lock()
        self._by_id: OrderedDict[int, DataKey] = OrderedDict()
        self._logs: dict[str, tuple[int, dict[str, int]]] = {}
        self._spare: list[NewKey] = []
        self._version = 0
        """The highest KEK version a wrap answered (Transit's ``vault:vN:``; 0: none)."""

    def known(
        self, log_id: str, subjects: Iterable[str]
    ) -> tuple[int, dict[str, SubjectKey]] | None:
        """(epoch, keys) if every subject's key of the log is known, else None."""
        with self._lock:
            entry = self._logs.get(log_id)
        if entry is None:
            return None
        found, missing = self.lookup(log_id, entry[0], subjects)
        return None if missing else (entry[0], found)

    def lookup(
        self, log_id: str, epoch: int, subjects: Iterable[str]
    ) -> tuple[dict[str, SubjectKey], list[str]]:
        """(keys known at ``epoch``, subjects whose key is not): all unknown if the epoch moved."""
        with self._lock:
            entry = self._logs.get(log_id)
            ids = entry[1] if entry is not None and entry[0] == epoch else {}
            found: dict[str, SubjectKey] = {}
            missing = []
            for s in subjects:
                key_id = ids.get(s)
                key = self._by_id.get(key_id) if key_id is not None else None
                if key_id is None or key is None:
                    missing.append(s)
                else:
                    found[s] = (key_id, key)
            return found, missing

    def learn(self, log_id: str, epoch: int, keys: dict[str, SubjectKey]) -> None:
        """Records subjects' keys as valid at ``epoch`` (forgetting the log's older epoch)."""
        with self._lock:
            entry = self._logs.get(log_id)
            ids = entry[1] if entry is not None and entry[0] == epoch else {}
            for subject, (key_id, key) in keys.items():
                ids[subject] = key_id
                self._keep(key_id, key)
            self._logs[log_id] = (epoch, ids)

    def forget(self, log_id: str) -> None:
        """Drops what is known of a log's subjects (its epoch moved)."""
        with self._lock:
            self._logs.pop(log_id, None)

    def _keep(self, key_id: int, key: DataKey) -> None:
        self._by_id[key_id] = key
        self._by_id.move_to_end(key_id)
        while len(self._by_id) > self._capacity:
            self._by_id.popitem(last=False)

    def unknown(self, pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """These (log, subject) pairs whose key is not held (unseen, evicted), once each."""
        with self._lock:
            return [
                (log_id, subject)
                for log_id, subject in dict.fromkeys(pairs)
                if self._logs.get(log_id, (0, {}))[1].get(subject) not in self._by_id
            ]

    def usable(self, key: NewKey, now: float | None = None) -> bool:
        """Whether a key wrapped ahead may still be stored (a clock read: no KEK call).

        At most :data:`SPARE_SECONDS` after its wrap began, and not under a KEK
        version older than one a wrap has answered since (the Transit key was
        rotated: a key made ahead for a batch goes with the spares).
        """
        if _version(key) < self._version:
            return False
        return (self._clock() if now is None else now) - key.made <= self._spare_seconds

    def stock(self, n: int) -> None:
        """Makes sure ``n`` new keys are wrapped and ready (one KEK call if short).

        Spares past :meth:`usable` are dropped first, and a wrap answered under
        a newer KEK version than the spares' (the Transit key was rotated)
        drops the older ones: stored, they would hold content under a version
        the operator is about to retire.
        """
        with self._lock:
            self._drop_stale()
            short = n - len(self._spare)
        if short <= 0:
            return
        made = self._clock()
        keys = [secrets.token_bytes(KEY_BYTES) for _ in range(short)]
        wrapped = self.kek.wrap(keys)
        fresh = [
            NewKey(secrets.randbits(63), k, w, made) for k, w in zip(keys, wrapped, strict=True)
        ]
        took = self._clock() - made
        if took > self._spare_seconds:  # else take() would wrap again, as slowly, for ever
            raise KekError(
                f"KEK {self.kek.name} took {took:.0f} s to wrap {short} data "
                f"key(s): keys wrapped ahead are stored within {self._spare_seconds:g} s of "
                "their wrap or not at all (rotations); none used"
            )
        version = max((transit_version(w) or 0 for w in wrapped), default=0)
        with self._lock:
            if version > self._version:
                self._version = version
                self._spare = [k for k in self._spare if _version(k) >= version]
            if version >= self._version:  # else a wrap that straddled a rotation another
                self._spare.extend(fresh)  # thread's wrap saw first: its keys are older

    def take(self, n: int) -> list[NewKey]:
        """``n`` new keys (wrapping more if the stock ran short)."""
        self.stock(n)
        with self._lock:
            self._drop_stale()
            taken, self._spare = self._spare[:n], self._spare[n:]
        if len(taken) < n:  # another thread took some meanwhile
            taken += self.take(n - len(taken))
        return taken

    def _drop_stale(self) -> None:
        """Drops the spares past :meth:`usable` (under the lock; there are few)."""
        if self._spare:
            now = self._clock()
            self._spare = [k for k in self._spare if self.usable(k, now)]

    def held(self, key_ids: Iterable[int]) -> dict[int, DataKey | None]:
        """The keys with these ids this process holds: no read, no KEK call."""
        wanted = set(key_ids)
        with self._lock:
            return {k: self._by_id[k] for k in wanted if k in self._by_id}

    def stored(
        self, key_ids: Iterable[int], fetch: Callable[[list[int]], Sequence[StoredKey]]
    ) -> dict[int, DataKey | None]:
        """The keys with these ids as stored now, for reading: every row read with ``fetch``.

        A held key opens content only while its row is there with the bytes it
        was opened from (no KEK call then); one absent from the answer was
        destroyed (its subject erased) and is dropped. A reader that held a
        subject's key went on opening its content after the erasure (put back
        from a backup, say), which no other process could.
        """
        wanted = sorted(set(key_ids))
        rows = fetch(wanted) if wanted else []
        gone = set(wanted).difference(r.key_id for r in rows)
        with self._lock:
            for key_id in gone:
                self._by_id.pop(key_id, None)
        return dict(zip([r.key_id for r in rows], self.open_rows(rows), strict=True))

    def open_rows(self, rows: Sequence[StoredKey]) -> list[DataKey | None]:
        """Stored keys opened: held ones as held, the rest unwrapped (one KEK call) and kept.

        None for one that does not open to a key. Decided row by row, whatever
        KEK a row names, so that one altered row is damage of its subject alone;
        only when no row opens and every one names another KEK is it this
        process's configuration (:class:`KekError`).
        """
        with self._lock:
            held = {
                r.key_id: key
                for r in rows
                if (key := self._by_id.get(r.key_id)) is not None and key.wrapped == r.wrapped
            }
        fresh = [r for r in rows if r.key_id not in held]
        if fresh:
            opened = self.kek.unwrap([r.wrapped for r in fresh])
            keys = [
                DataKey(k, r.wrapped) if k is not None and len(k) == KEY_BYTES else None
                for k, r in zip(opened, fresh, strict=True)
            ]
            if (
                not held
                and all(k is None for k in keys)
                and all(r.kek != self.kek.name for r in rows)
            ):
                foreign = sorted({r.kek for r in fresh})
                raise KekError(
                    f"data keys wrapped by KEK {', '.join(foreign)}; this process holds "
                    f"{self.kek.name} (content_keys settings differ between processes?)"
                )
            with self._lock:
                for r, key in zip(fresh, keys, strict=True):
                    if key is not None:
                        self._keep(r.key_id, key)
            held.update((r.key_id, k) for r, k in zip(fresh, keys, strict=True) if k is not None)
        return [held.get(r.key_id) for r in rows]


_BOOTTIME: int = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)
"""Linux's clock that goes on while the host is suspended (elsewhere the monotonic one)."""


class Elapsed:
    """Seconds on a clock that never goes back and misses no time this host was away.

    ``time.monotonic`` stops while the host is suspended, and a paused VM's
    kernel may not count the pause either: a replica that slept through a
    rotation and its rewrap would have stored its spares as fresh. This one
    runs on ``boot`` (``CLOCK_BOOTTIME``: suspended time counted) and also
    moves forward when ``wall`` (the system time, which NTP sets after a
    pause) steps ahead of it; a wall clock set back changes nothing.
    """

    def __init__(
        self,
        boot: Callable[[], float] = lambda: time.clock_gettime(_BOOTTIME),
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._boot, self._wall = boot, wall
        self._lock = threading.Lock()
        self._base = wall() - boot()
        self._ahead = 0.0

    def __call__(self) -> float:
        """The clock's reading."""
        boot = self._boot()
        stepped = self._wall() - boot - self._base
        with self._lock:
            self._ahead = max(self._ahead, stepped)
            return boot + self._ahead


def _version(key: NewKey) -> int:
    """The KEK version that wrapped ``key`` (0 for a KEK without versions)."""
    return transit_version(key.wrapped) or 0


class DamagedKeyError(SealError):
    """A stored data key that does not open under the KEK: altered (or its KEK version retired)."""
