"""``ingest.content_retention_by_tenant``: each tenant's own content retention, read and checked.

Tenants of one deployment are different customers or business units, with
retention periods of their own. A tenant named here is swept by its policy
alone (``days`` and an optional ``by_classification``, as the global settings
say them; 0 keeps content forever) and the others by the global one.

File form::

    content_retention_by_tenant:
      acme: {days: 7, by_classification: {restricted: 1}}
      globex: {days: 0}

Environment form (``AIAUDIT_INGEST_CONTENT_RETENTION_BY_TENANT``), the
``name=number`` list of ``content_retention_days_by_classification`` per tenant,
tenants apart by ``;`` and classifications named beside ``days``:
``acme:days=7,restricted=1;globex:days=0``.

Every error names the exact key (``ingest.content_retention_by_tenant.acme.days``):
a policy that cannot be read must stop the start, not leave a tenant on the
global policy, which may erase what its regulator says to keep.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aiaudit.common import retention, tenants
from aiaudit.common.config import ConfigError, Settings

VARIABLE = "AIAUDIT_INGEST_CONTENT_RETENTION_BY_TENANT"
"""The setting's environment variable."""
KEYS = ("days", "by_classification")
"""What a tenant's policy may say."""
_WHOLE = re.compile(r"-?[0-9]+")


def parse(raw: object, setting: str) -> dict[str, retention.Policy]:
    """The policies of ``raw`` (the file's mapping or the variable's text), by tenant id."""
    if isinstance(raw, str):
        raw = _from_env(raw, setting)
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"setting {setting!r}: expected a mapping of tenant ids to "
            "{days: N, by_classification: {...}}"
        )
    policies: dict[str, retention.Policy] = {}
    for tenant, body in raw.items():
        if not isinstance(tenant, str) or not tenants.valid(tenant):
            quote = " (quote it in the file)" if not isinstance(tenant, str) else ""
            raise ConfigError(
                f"setting {setting!r}: {tenant!r} is not a tenant id ({tenants.RULE}){quote}"
            )
        policies[tenant] = _policy(body, f"{setting}.{tenant}")
    return policies


def one_source(settings: Settings) -> None:
    """Refuses the setting given both in the file and in the environment.

    The variable replaces the file's whole map, as for every setting: a tenant the
    file alone names (``globex: {days: 0}``) fell silently to the global policy,
    which may erase what its own says to keep; and an empty variable dropped every
    tenant's policy.
    """
    if settings.only is not None and "ingest.content_retention_by_tenant" not in settings.only:
        return
    if "content_retention_by_tenant" in settings.sections.get("ingest", {}) and (
        VARIABLE in settings.env
    ):
        raise ConfigError(
            "setting 'ingest.content_retention_by_tenant': given both in the config file and "
            f"as {VARIABLE}, which would replace the file's policies of every tenant; "
            "give the tenants' policies in one place"
        )


def _policy(body: object, where: str) -> retention.Policy:
    if not isinstance(body, Mapping):
        raise ConfigError(
            f"setting {where!r}: expected a mapping: days (required) and by_classification"
        )
    for key in body:
        if key not in KEYS:
            raise ConfigError(
                f"setting '{where}.{key}': unknown key; a tenant's policy says {KEYS}"
            )
    if "days" not in body:
        raise ConfigError(
            f"setting '{where}.days': required (0 keeps the tenant's content forever)"
        )
    by_classification = body.get("by_classification", {})
    if not isinstance(by_classification, Mapping):
        raise ConfigError(
            f"setting '{where}.by_classification': expected a mapping of classifications "
            f"{tuple(retention.CLASSES)} to days"
        )
    by_class: dict[int, int] = {}
    for name, days in by_classification.items():
        key = f"{where}.by_classification.{name}"
        if name not in retention.CLASSES:
            unspecified = " (unspecified is kept as internal)" if name == "unspecified" else ""
            raise ConfigError(
                f"setting {key!r}: {name!r} is not one of {tuple(retention.CLASSES)}{unspecified}"
            )
        by_class[retention.CLASSES[name]] = _days(days, key)
    return retention.Policy(_days(body["days"], f"{where}.days"), by_class)


def _days(raw: object, key: str) -> int:
    """A whole number of days, 0 (forever) to :data:`retention.MAX_DAYS`."""
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ConfigError(f"setting {key!r}: {raw!r} is invalid: must be a whole number of days")
    if isinstance(raw, str):
        if _WHOLE.fullmatch(raw.strip()) is None:
            raise ConfigError(
                f"setting {key!r}: {raw!r} is invalid: must be a whole number in the digits 0-9"
            )
        raw = int(raw.strip())
    if not 0 <= raw <= retention.MAX_DAYS:
        raise ConfigError(
            f"setting {key!r}: {raw} is invalid: 0 (keep forever) to {retention.MAX_DAYS}"
        )
    return raw


def _from_env(text: str, setting: str) -> dict[str, dict[str, object]]:
    """``acme:days=7,restricted=1;globex:days=0`` as the file's mapping (numbers still text)."""
    found: dict[str, dict[str, object]] = {}
    for item in (x.strip() for x in text.split(";")):
        if not item:
            continue
        tenant, colon, pairs = item.partition(":")
        tenant = tenant.strip()
        if not colon:
            raise ConfigError(
                f"setting {setting!r}: {item!r} is not tenant:days=N[,classification=N]"
            )
        if tenant in found:
            raise ConfigError(f"setting {setting!r}: tenant {tenant!r} is named twice")
        body: dict[str, object] = {}
        by_classification: dict[str, object] = {}
        for pair in (x.strip() for x in pairs.split(",")):
            name, equals, value = pair.partition("=")
            name = name.strip()
            if not equals:
                raise ConfigError(
                    f"setting '{setting}.{tenant}': {pair!r} is not name=number "
                    "(days=N or classification=N)"
                )
            into = body if name == "days" else by_classification
            if name in into:
                raise ConfigError(f"setting '{setting}.{tenant}': {name!r} is named twice")
            into[name] = value.strip()
        if by_classification:
            body["by_classification"] = by_classification
        found[tenant] = body
    return found
