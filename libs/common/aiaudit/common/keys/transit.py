"""The production KEK: data keys wrapped by a Vault / OpenBao Transit key.

The Transit key never leaves Vault (it is created non-exportable), so a copy of
the database, or of the service's disk, opens no content. Wrapping or
unwrapping a batch of data keys takes one request per :data:`BATCH_ITEMS` keys.
:func:`bootstrap_content_key` is what an operator runs once, with an
administrator's token, to make the mount, the key, the service's least-privilege
policy and the operators' rewrap policy exist.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import hvac
import hvac.exceptions

from aiaudit.common.keys.kek import KekError

VAULT_ERRORS = (hvac.exceptions.VaultError, OSError)
"""What hvac raises when Vault refuses or cannot be reached (requests' errors are OSErrors):
every command and component that talks to Vault catches these."""

_KEY_TYPE = "aes256-gcm96"

BATCH_ITEMS = 249
"""Data keys per Transit request at most; a larger batch is sent as several, in order.

An item is four JSON strings (``plaintext`` or ``ciphertext``, ``reference``, and
their values), the body two more (object keys count: ``batch_input``, and the
top-level ``plaintext`` or ``ciphertext`` hvac always sends, as null): 249 items
are 998 strings, 250 are 1,002. OpenBao (since 2.4.1, CVE-2025-59043) refuses a
body of more than 1,000 strings by default (listener ``max_request_json_strings``):
250 items or more were refused whole, ``refused JSON input due to high
complexity: exceeded maximum number of strings`` (measured on OpenBao 2.7.2,
encrypt, decrypt and rewrap alike). Vault's listeners refuse an array of more
than 10,000 items (``max_json_array_element_count``).
"""

CONTENT_POLICY = """\
# aiaudit content keys: wrap and unwrap data keys with one Transit key.
# No read, create, rotate, export, backup, delete or config rights: those stay with operators.
path "{mount}/encrypt/{key}" {{
  capabilities = ["update"]
}}
path "{mount}/decrypt/{key}" {{
  capabilities = ["update"]
}}
"""


REWRAP_POLICY = """\
# aiaudit content keys: rewrap stored data keys under the Transit key's latest version
# (`aiaudit content-keys rewrap`, an operator's task after a rotation). Rewrapping happens
# inside Vault: no encrypt or decrypt (the data keys stay in Vault), no read, rotate or config.
path "{mount}/rewrap/{key}" {{
  capabilities = ["update"]
}}
"""


def content_policy(mount: str, key: str) -> str:
    """The content service's least-privilege policy for the key at ``mount``."""
    return CONTENT_POLICY.format(mount=mount, key=key)


def rewrap_policy(mount: str, key: str) -> str:
    """The policy ``aiaudit content-keys rewrap`` needs: kept apart from the services'."""
    return REWRAP_POLICY.format(mount=mount, key=key)


@dataclass(frozen=True)
class ContentKeySettings:
    """Where the content KEK is, and the name of the policy that may use it."""

    mount: str = "transit"
    key: str = "aiaudit-content"
    policy_name: str = "aiaudit-content"

    @property
    def rewrap_policy_name(self) -> str:
        """The operators' rewrap policy: named after the services' (one flag names both)."""
        return f"{self.policy_name}-rewrap"


class TransitKek:
    """A :class:`~aiaudit.common.keys.kek.Kek` whose wrapping is Transit encrypt / decrypt."""

    def __init__(
        self, client: hvac.Client, mount: str = "transit", key: str = "aiaudit-content"
    ) -> None:
        """Uses ``client`` (its token needs only :func:`content_policy`); makes no request."""
        self._client = client
        self._mount = mount
        self._key = key
        self.name = f"vault:{mount}/{key}"

    def wrap(self, keys: Sequence[bytes]) -> list[bytes]:
        """Each key encrypted by Transit (``vault:vN:...``, as ASCII), in order."""
        if not keys:
            return []
        results = self._batch(
            "encrypt",
            [{"plaintext": base64.b64encode(k).decode("ascii")} for k in keys],
            lambda batch: self._client.secrets.transit.encrypt_data(
                name=self._key, batch_input=batch, mount_point=self._mount
            ),
        )
        try:
            return [str(r["ciphertext"]).encode("ascii") for r in results]
        except (KeyError, UnicodeEncodeError):
            raise KekError(f"Transit key {self.name} encrypt: malformed answer") from None

    def unwrap(self, wrapped: Sequence[bytes]) -> list[bytes | None]:
        """Each wrapped key decrypted by Transit, in order.

        None for a key Transit refuses on its own (altered, not Transit's, a
        version since retired); :class:`KekError` when a request fails as a whole.
        """
        return self._each(
            "decrypt",
            wrapped,
            lambda batch: self._client.secrets.transit.decrypt_data(
                name=self._key, batch_input=batch, mount_point=self._mount
            ),
            lambda r: base64.b64decode(r["plaintext"], validate=True),
        )

    def rewrap(self, wrapped: Sequence[bytes]) -> list[bytes | None]:
        """Each wrapped key rewrapped under the Transit key's latest version, in order.

        The data keys never leave Vault (the token needs only :func:`rewrap_policy`).
        None for a key Transit refuses on its own, as :meth:`unwrap`.
        """
        return self._each(
            "rewrap",
            wrapped,
            lambda batch: self._client.secrets.transit.rewrap_data(
                name=self._key, ciphertext=None, batch_input=batch, mount_point=self._mount
            ),
            lambda r: str(r["ciphertext"]).encode("ascii"),
        )

    def _each(
        self,
        op: str,
        wrapped: Sequence[bytes],
        request: Callable[[list[dict[str, str]]], dict[str, Any]],
        read: Callable[[dict[str, Any]], bytes],
    ) -> list[bytes | None]:
        """``read`` of each item's answer to ``op`` on these ciphertexts; None where refused."""
        out: list[bytes | None] = [None] * len(wrapped)
        asked = [(i, w.decode("ascii")) for i, w in enumerate(wrapped) if w.isascii()]
        if not asked:
            return out
        items = [{"ciphertext": text} for _, text in asked]
        results = self._batch(op, items, request, items_may_fail=True)
        try:
            for (i, _), r in zip(asked, results, strict=True):
                if not r.get("error"):
                    out[i] = read(r)
        except (KeyError, TypeError, ValueError):  # binascii.Error, UnicodeEncodeError
            raise KekError(f"Transit key {self.name} {op}: malformed answer") from None
        return out

    def _batch(
        self,
        op: str,
        items: Sequence[dict[str, str]],
        request: Callable[[list[dict[str, str]]], dict[str, Any]],
        items_may_fail: bool = False,
    ) -> list[dict[str, Any]]:
        """The ``batch_results`` of every answer, one per item in order, none failed.

        Sent as requests of at most :data:`BATCH_ITEMS` items, one after the
        other: a request that fails fails the call with :class:`KekError`, as one
        request for all would (the answers already received go unused). Until 2026-12-07 a batch was
        one request whatever its size, and OpenBao refused one of 250 keys or
        more: a group of that many new subjects, or a read page of that many
        subjects' keys, failed for good (``KEYS_UNAVAILABLE``, retried).
        """
        results: list[dict[str, Any]] = []
        for start in range(0, len(items), BATCH_ITEMS):
            part = items[start : start + BATCH_ITEMS]
            results += self._request(op, len(items), start, part, request, items_may_fail)
        return results

    def _request(
        self,
        op: str,
        count: int,
        start: int,
        part: Sequence[dict[str, str]],
        request: Callable[[list[dict[str, str]]], dict[str, Any]],
        items_may_fail: bool,
    ) -> list[dict[str, Any]]:
        """One request of :meth:`_batch`: items ``start`` onwards of the call's ``count``.

        With ``items_may_fail`` failed items come back too, carrying ``error``.
        Each item carries its index in the call as ``reference``, which Transit
        echoes: an answer for another item (out of order) is refused, as taken in
        order it would wrap a data key under another subject's row, or open one
        as another's (a Vault that echoes none is taken in order).

        The error raised never carries hvac's exception, not even as its cause:
        when one item fails Transit answers 400 with the whole batch, and hvac
        puts that body, the other items' plaintext data keys included, in its
        message.
        """
        batch = [{**item, "reference": str(start + j)} for j, item in enumerate(part)]
        what = f"Transit key {self.name} {op} of {count} data key(s)"
        if len(part) < count:
            what += f", items {start}-{start + len(part) - 1}"
        try:
            answer: Any = request(batch)
            problem = ""
        except VAULT_ERRORS as exc:
            answer = getattr(exc, "json", None)
            problem = _reason(exc)
        results = _batch_results(answer)
        complete = results is not None and len(results) == len(part)
        if results is not None and complete:
            misplaced = next(
                (
                    start + i
                    for i, r in enumerate(results)
                    if r.get("reference", str(start + i)) != str(start + i)
                ),
                None,
            )
            if misplaced is not None:
                raise KekError(
                    f"{what}: answers out of order (answer {misplaced} is for item "
                    f"{str(results[misplaced - start].get('reference'))[:20]!r}): none used"
                )
            if items_may_fail:
                return results  # Transit answers 400 when an item fails, with every item's result
        failed = [
            f"item {start + i}: {r['error']}" for i, r in enumerate(results or []) if r.get("error")
        ]
        if failed:
            problem = "; ".join(failed)
        elif not problem and not complete:
            problem = f"expected {len(part)} batch results, got {len(results or [])}"
        if problem or results is None:
            raise KekError(f"{what}: {problem}")
        return results


def _batch_results(answer: Any) -> list[dict[str, Any]] | None:
    """``data.batch_results`` of a Transit answer, if it has a list of objects there."""
    data = answer.get("data") if isinstance(answer, dict) else None
    results = data.get("batch_results") if isinstance(data, dict) else None
    if isinstance(results, list) and all(isinstance(r, dict) for r in results):
        return results
    return None


def _reason(exc: Exception) -> str:
    """What failed, without the response body (which may hold data keys)."""
    if isinstance(exc, hvac.exceptions.VaultError):
        errors = exc.errors if isinstance(exc.errors, list) else []
        said = "; ".join(" ".join(str(e).split()) for e in errors) or "no error message"
        return f"{type(exc).__name__} ({said})"
    return f"Vault unreachable: {type(exc).__name__}: {exc}"


def _ensure_transit_mount(client: hvac.Client, mount: str) -> str:
    """Enables Transit at ``mount`` unless it is there; refuses another engine at that path."""
    mounts = client.sys.list_mounted_secrets_engines()
    mounted = mounts.get("data", mounts)
    if f"{mount}/" not in mounted:
        client.sys.enable_secrets_engine("transit", path=mount)
        return f"enabled transit at {mount}/"
    kind = mounted[f"{mount}/"].get("type")
    if kind != "transit":
        raise ValueError(f"{mount}/ is a {kind!r} engine, not transit")
    return f"transit already enabled at {mount}/"


def leaving_vault(key: Mapping[str, Any]) -> str:
    """What lets a Transit key (as ``read_key`` answers it) leave Vault; empty if nothing."""
    flags = ("exportable", "allow_plaintext_backup")
    return " and ".join(f"{flag} is true" for flag in flags if key.get(flag))


def bootstrap_key(
    client: hvac.Client, mount: str, key: str, key_type: str, policy_name: str, policy: str
) -> list[str]:
    """Makes a Transit mount, a key of ``key_type`` and a policy exist; one line per step.

    ``client`` needs an administrator's token. The key is neither exportable
    nor backed up in plaintext; an existing key of another type, or one that
    can leave Vault (``exportable`` or ``allow_plaintext_backup``, which Vault
    never turns off again), is refused rather than used. Running it again
    changes nothing. Shared by the content key and the notary's signing key.
    """
    done = [_ensure_transit_mount(client, mount)]
    where = f"{mount}/keys/{key}"
    try:
        found = client.secrets.transit.read_key(name=key, mount_point=mount)
    except hvac.exceptions.InvalidPath:
        client.secrets.transit.create_key(
            name=key,
            key_type=key_type,
            exportable=False,
            allow_plaintext_backup=False,
            mount_point=mount,
        )
        done.append(f"created {key_type} key {where}")
    else:
        kind = found["data"]["type"]
        if kind != key_type:
            raise ValueError(f"key {where} exists with type {kind!r}, not {key_type}")
        leaves = leaving_vault(found["data"])
        if leaves:
            raise ValueError(
                f"key {where} exists but {leaves}: its private key can leave Vault, and Vault "
                "cannot undo that; create a new key under another name"
            )
        done.append(f"key {where} exists (latest version {found['data']['latest_version']})")
    client.sys.create_or_update_policy(name=policy_name, policy=policy)
    done.append(f"wrote policy {policy_name!r}")
    return done


def bootstrap_content_key(client: hvac.Client, settings: ContentKeySettings) -> list[str]:
    """Makes the mount, the ``aes256-gcm96`` content key and both policies exist (idempotent).

    The rewrap policy is written here, apart from the services' (which stays
    encrypt / decrypt): the administrator who runs this can then give an
    operator a token for ``aiaudit content-keys rewrap`` and nothing else.
    """
    done = bootstrap_key(
        client,
        settings.mount,
        settings.key,
        _KEY_TYPE,
        settings.policy_name,
        content_policy(settings.mount, settings.key),
    )
    rewrap = rewrap_policy(settings.mount, settings.key)
    client.sys.create_or_update_policy(name=settings.rewrap_policy_name, policy=rewrap)
    done.append(f"wrote policy {settings.rewrap_policy_name!r}")
    return done
