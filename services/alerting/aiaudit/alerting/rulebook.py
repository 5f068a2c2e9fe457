"""The effective rules of a tenant: the default pack, rule files, then the tenant's own rows."""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import sqlalchemy as sa

from aiaudit.alerting.model import StoredRule
from aiaudit.alerting.rules import Rule, compile_file, compile_rule
from aiaudit.alerting.store import AlertStore

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def default_pack() -> list[Rule]:
    """The rule pack shipped with the service (``default_rules.yaml``)."""
    text = resources.files("aiaudit.alerting").joinpath("default_rules.yaml").read_text()
    return compile_file(text)


@functools.lru_cache(maxsize=4096)
def compile_stored(source: str) -> Rule:
    """A stored rule's source compiled, cached: the engine and every rule read need it.

    Compiled as stored (``compile_rule(stored=True)``): it may predate a check it
    would now fail.
    """
    return compile_rule(source, stored=True)


@dataclass(frozen=True)
class RuleSet:
    """A tenant's compiled enabled rules and the version of its stored rows."""

    rules: list[Rule]
    version: tuple[tuple[str, dt.datetime, str, bool], ...]
    """Each own row's id, update time, source and flag: every create, update or delete
    changes it, so state kept per rule (the engine's cached windows) can tell it is stale."""


class RuleBook:
    """Built-in rules (pack and files) overlaid by each tenant's stored rules."""

    def __init__(self, store: AlertStore, pack: bool = True, files: tuple[Path, ...] = ()) -> None:
        """Compiles the pack and the rule files once (a bad file fails start-up)."""
        self.store = store
        builtin: dict[str, Rule] = {r.id: r for r in default_pack()} if pack else {}
        for path in files:
            for r in compile_file(path.read_text()):
                builtin[r.id] = r
        self.builtin = builtin

    def stored(self, conn: sa.Connection, tenant: str) -> list[StoredRule]:
        """Every rule the tenant sees, built-in ones first unless overridden."""
        return self._overlay(tenant, self.store.tenant_rules(conn, tenant))

    def _overlay(self, tenant: str, rows: list[StoredRule]) -> list[StoredRule]:
        own = {r.rule_id: r for r in rows}
        out = []
        for rid, rule in self.builtin.items():
            if rid in own:
                out.append(dataclasses_replace_builtin(own.pop(rid)))
            else:
                flag = rule.initially_enabled  # a rule file's enabled: until the tenant sets one
                out.append(StoredRule(tenant, rid, rule.source, flag, rule.severity, _EPOCH, True))
        return out + sorted(own.values(), key=lambda r: r.rule_id)

    def rules(self, conn: sa.Connection, tenant: str) -> list[Rule]:
        """Compiled enabled rules of a tenant."""
        return self.snapshot(conn, tenant).rules

    def version(
        self, conn: sa.Connection, tenant: str
    ) -> tuple[tuple[str, dt.datetime, str, bool], ...]:
        """The version of the tenant's rule rows as :meth:`snapshot` gives it."""
        return _version(self.store.tenant_rules(conn, tenant))

    def snapshot(self, conn: sa.Connection, tenant: str) -> RuleSet:
        """Compiled enabled rules of a tenant and the version of its rows (one query)."""
        rows = self.store.tenant_rules(conn, tenant)
        version = _version(rows)
        out = []
        for s in self._overlay(tenant, rows):
            if not s.enabled:
                continue
            rule = self.builtin[s.rule_id] if s.builtin and s.rule_id in self.builtin else None
            out.append(
                rule if rule is not None and rule.source == s.source else compile_stored(s.source)
            )
        return RuleSet(out, version)


def _version(rows: list[StoredRule]) -> tuple[tuple[str, dt.datetime, str, bool], ...]:
    return tuple((r.rule_id, r.update_time, r.source, r.enabled) for r in rows)


def dataclasses_replace_builtin(r: StoredRule) -> StoredRule:
    """A tenant row that overrides a built-in rule is still marked built-in."""
    return StoredRule(r.tenant, r.rule_id, r.source, r.enabled, r.severity, r.update_time, True)
