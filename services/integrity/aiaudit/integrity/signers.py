"""Where the checkpoint key lives: a local key file (embedded) or Vault / OpenBao Transit.

The notary asks a ``KeySource`` for the key version to sign with now and for
the verifier keys of every version, so that after a rotation new checkpoints
carry the new key while old ones still verify.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import hvac

from aiaudit.common.keys import transit
from aiaudit.integrity.note import (
    Checkpoint,
    NoteError,
    NoteSigner,
    VerifierKey,
    file_signer,
    open_checkpoint,
)


class SignerUnavailableError(RuntimeError):
    """The key store cannot sign right now (Vault down, sealed, denied); retry later."""


@dataclass(frozen=True)
class ActiveKey:
    """The signer of new checkpoints and the label stored with each (``file``, ``v3``)."""

    signer: NoteSigner
    version: str


class KeySource(Protocol):
    """A checkpoint signing key with its history of versions."""

    def active(self) -> ActiveKey:
        """The newest key version; raises ``SignerUnavailableError`` if it cannot sign."""
        ...

    def verifier_keys(self) -> list[VerifierKey]:
        """Verifier keys of every version, newest first."""
        ...


def open_signed(keys: KeySource, signed_note: str, origin: str | None = None) -> Checkpoint:
    """A signed checkpoint opened with ``keys``, read again from the key store if need be.

    Keys served from memory (Vault failed a moment ago) may lack a version
    rotated in since: before a note is called untrusted, every version is
    read from the key store again (unreachable then: ``SignerUnavailableError``).
    """
    try:
        return open_checkpoint(signed_note, keys.verifier_keys(), origin)
    except NoteError:
        keys.active()  # reads every version from the key store
        return open_checkpoint(signed_note, keys.verifier_keys(), origin)


class FileKeys:
    """One Ed25519 key in a 0600 file under the data directory (no rotation)."""

    def __init__(self, name: str, path: Path) -> None:
        """Loads the key, creating it on first use."""
        self._signer = file_signer(name, path)

    def active(self) -> ActiveKey:
        """The file key."""
        return ActiveKey(self._signer, "file")

    def verifier_keys(self) -> list[VerifierKey]:
        """The file key's verifier key."""
        return [self._signer.verifier_key]


class WithFormer:
    """``keys``, also trusting the verifier keys of the signing keys it replaced.

    Switching the signing key (the embedded file key to Vault, or to a new Transit key
    when Vault's was refused as able to leave it) left everything the old key signed
    untrusted here: ``VerifyEvent`` called a genuine checkpoint TAMPERED,
    ``GetVerifierKey`` no longer published the key, and the notary passed over its own
    exported checkpoints and loss statements as not its own, so a store restored from an
    older backup was signed over, forking the exported history (review, 2026-12-07).
    """

    def __init__(self, keys: KeySource, former: Sequence[VerifierKey]) -> None:
        """``former``: the replaced keys' verifier keys (``integrity.former_verifier_keys``)."""
        self._keys = keys
        self._former = list(dict.fromkeys(former))

    def active(self) -> ActiveKey:
        """The current key's newest version: former keys never sign."""
        return self._keys.active()

    def verifier_keys(self) -> list[VerifierKey]:
        """The current key's versions, newest first, then the former keys, each key once.

        Once: a key listed twice was published twice, and a client that trusts every
        published key (Go's ``note.VerifierList``) refuses each note it signed as
        signed by an "ambiguous key" (review, 2026-12-07).
        """
        current = self._keys.verifier_keys()
        return current + [k for k in self._former if k not in current]


RETRY_AFTER = 5.0
"""Seconds the verifier keys are served from memory after Vault failed to answer."""


SIGN_BATCH = 400
"""Notes signed in one Transit request. OpenBao (since 2.4.1) refuses a request body of
more than 1,000 JSON strings by default (listener ``max_request_json_strings``), and a
sign item is two (``input`` and its value): 2.7.2 signs 498 in one request and refuses
499. Until 2026-12-07 a round signed all its logs in one request, and a notary with 499
logs due in a round signed none of them, round after round."""


def _signature(answer: str, version: int) -> bytes:
    """The Ed25519 signature in Transit's ``vault:vN:<base64>``, which must be of ``version``."""
    prefix, _, encoded = answer.rpartition(":")
    if prefix != f"vault:v{version}":
        raise SignerUnavailableError(f"Vault signed with {prefix!r}, not v{version}")
    return base64.b64decode(encoded)


class TransitKeys:
    """An ``ed25519`` Transit key: Vault signs, the private key never leaves it.

    Transit signs Ed25519 messages as they are (no pre-hash), so the bytes
    after ``vault:vN:`` are a plain Ed25519 signature of the note text, which
    ``sign_note`` checks against the version's public key before using it.
    """

    def __init__(self, client: hvac.Client, mount: str, key: str, name: str) -> None:
        """``key`` is the Transit key, ``name`` the note key name in signatures."""
        self._client = client
        self._mount = mount
        self._key = key
        self._name = name
        self._lock = threading.Lock()
        self._public: dict[int, bytes] = {}
        self._leaves = ""
        """What lets the key leave Vault, as last read (:func:`transit.leaving_vault`)."""
        self._failed_at = float("-inf")
        """When reading the key last failed (monotonic seconds)."""

    def _refresh(self) -> int:
        """Reads every version's public key; returns the latest version."""
        try:
            data = self._client.secrets.transit.read_key(name=self._key, mount_point=self._mount)
        except transit.VAULT_ERRORS as exc:
            raise SignerUnavailableError(f"Vault transit key {self._key!r}: {exc}") from exc
        body: dict[str, Any] = data["data"]
        if body.get("type") != "ed25519":
            raise SignerUnavailableError(
                f"Vault transit key {self._key!r} is {body.get('type')!r}, not ed25519"
            )
        public = {int(v): base64.b64decode(k["public_key"]) for v, k in body["keys"].items()}
        with self._lock:
            self._public = public
            self._leaves = transit.leaving_vault(body)
        self._failed_at = float("-inf")  # answered: the next read asks again
        return int(body["latest_version"])

    def _signer(self, version: int) -> NoteSigner:
        def sign(message: bytes) -> bytes:
            try:
                out = self._client.secrets.transit.sign_data(
                    name=self._key,
                    hash_input=base64.b64encode(message).decode("ascii"),
                    key_version=version,
                    mount_point=self._mount,
                )
            except transit.VAULT_ERRORS as exc:
                raise SignerUnavailableError(f"Vault transit sign: {exc}") from exc
            return _signature(str(out["data"]["signature"]), version)

        def sign_many(messages: Sequence[bytes]) -> list[bytes]:
            signatures: list[bytes] = []
            for at in range(0, len(messages), SIGN_BATCH):
                signatures += sign_batch(messages[at : at + SIGN_BATCH], at, len(messages))
            return signatures

        def sign_batch(messages: Sequence[bytes], at: int, total: int) -> list[bytes]:
            batch = [{"input": base64.b64encode(m).decode("ascii")} for m in messages]
            try:
                out = self._client.secrets.transit.sign_data(
                    name=self._key, batch_input=batch, key_version=version, mount_point=self._mount
                )
            except transit.VAULT_ERRORS as exc:
                raise SignerUnavailableError(
                    f"Vault transit sign of {total} notes, items {at}-{at + len(messages) - 1}: "
                    f"{exc}"
                ) from exc
            results = out["data"]["batch_results"]
            if len(results) != len(messages):
                raise SignerUnavailableError(
                    f"Vault transit sign answered {len(results)} results for {len(messages)} notes"
                )
            failed = [r["error"] for r in results if r.get("error")]
            if failed:
                raise SignerUnavailableError(f"Vault transit sign: {failed[0]}")
            return [_signature(str(r["signature"]), version) for r in results]

        return NoteSigner(self._name, self._public[version], sign, sign_many)

    def active(self) -> ActiveKey:
        """The latest version, read from Vault each time so a rotation takes effect at once."""
        version = self._refresh()
        if self._leaves:  # a signature by a key that may exist elsewhere proves nothing
            raise SignerUnavailableError(
                f"Vault transit key {self._key!r} will not sign: {self._leaves}, so its "
                "private key can leave Vault (Vault cannot undo that); bootstrap a new key "
                "and point integrity.vault_key at it (what it signed before still verifies)"
            )
        return ActiveKey(self._signer(version), f"v{version}")

    def verifier_keys(self) -> list[VerifierKey]:
        """Every version's verifier key, newest first (read from Vault, or the last copy read).

        While Vault is failing, the copy is served without asking again for
        ``RETRY_AFTER`` seconds: a Vault that accepts connections and never
        answers cost every VerifyEvent and GetVerifierKey the whole timeout.
        (``active`` always asks: a checkpoint signed by a version not in the
        copy is checked again after it, see the handlers' VerifyEvent.)
        """
        recent_failure = time.monotonic() - self._failed_at < RETRY_AFTER
        if not (recent_failure and self._public):
            try:
                self._refresh()
            except SignerUnavailableError:
                self._failed_at = time.monotonic()
                if not self._public:
                    raise
        with self._lock:
            public = dict(self._public)
        return [VerifierKey(self._name, public[v]) for v in sorted(public, reverse=True)]
