"""Where ``ingest.content_retention_by_tenant`` comes from: one place, each tenant once.

A review (2026-12-07) found two ways a tenant's own policy was dropped without a word,
leaving its log to the global policy, which erased the content the tenant's policy kept:
a tenant named twice in the file (YAML keeps the last; the environment's form refused
it), and the variable given beside the file (it replaced the file's whole map, so the
tenants the file alone named went to the global policy). Both now stop the start.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aiaudit.common import config
from aiaudit.common.config import ConfigError
from aiaudit.common.store import open_store
from aiaudit.ingest import settings as ingest_settings
from tests.conftest import write_keys
from tests.contract.test_retention_by_tenant import erased, load
from tests.helpers import wait_until

VARIABLE = "AIAUDIT_INGEST_CONTENT_RETENTION_BY_TENANT"


def start_embedded(tmp_path: Path, cfg: Path, env: dict[str, str]) -> object:
    """The embedded suite as ``aiaudit serve`` starts it, with this file and environment."""
    from aiaudit.cli.server import start

    write_keys(tmp_path / "keys.yaml")
    overrides = {
        "api_keys_file": tmp_path / "keys.yaml",
        "address": "127.0.0.1:0",
        "data_dir": tmp_path,
    }
    return start(config.load(cfg, env=env, overrides=overrides))


def loaded_store(tmp_path: Path, *tenants: str) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'aiaudit.db'}", run_migrations=True)
    try:
        for t in tenants:
            load(store, t)
    finally:
        store.close()


def erased_now(tmp_path: Path, tenant: str) -> set[str]:
    store = open_store(f"sqlite:///{tmp_path / 'aiaudit.db'}")
    try:
        return erased(store, tenant)
    finally:
        store.close()


def test_a_tenant_named_twice_in_the_file_stops_the_start(tmp_path: Path, tenant: str) -> None:
    """The first entry kept the tenant's content forever; the last, far below, 7 days."""
    kept, other = f"{tenant}-kept", f"{tenant}-oth"
    loaded_store(tmp_path, kept, other)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "ingest:\n"
        "  content_retention_days: 30\n"
        "  content_retention_by_tenant:\n"
        f"    {kept}: {{days: 0}}\n"
        f"    {other}: {{days: 30}}\n"
        f"    {kept}: {{days: 7}}\n"
    )
    with pytest.raises(ConfigError, match=f"key '{kept}' given twice .*first at line 4"):
        suite = start_embedded(tmp_path, cfg, {})
        suite.stop()  # type: ignore[attr-defined]
    assert erased_now(tmp_path, kept) == set()


def test_any_key_given_twice_in_the_file_is_refused(tmp_path: Path) -> None:
    """The same silent last-wins held for every setting (``content_retention_days``)."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text("ingest:\n  content_retention_days: 3650\n  content_retention_days: 1\n")
    with pytest.raises(ConfigError, match="key 'content_retention_days' given twice"):
        config.load(cfg, env={}, overrides={"data_dir": tmp_path})
    cfg.write_text("base: &b {data_dir: x}\nsettings:\n  <<: *b\n  data_dir: y\n")
    with pytest.raises(ConfigError, match="unknown setting"):  # a merge key is no duplicate
        config.load(cfg, env={}, overrides={"data_dir": tmp_path})


@pytest.mark.parametrize("variable", ["{short}:days=7", "", " ;; "])
def test_the_file_and_the_environment_together_stop_the_start(
    tmp_path: Path, tenant: str, variable: str
) -> None:
    """The file keeps one tenant forever; the variable, naming another or none, replaced it."""
    kept, short, other = f"{tenant}-kept", f"{tenant}-short", f"{tenant}-oth"
    loaded_store(tmp_path, kept, short, other)
    cfg = tmp_path / "config.yaml"
    policy = {"content_retention_days": 30, "content_retention_by_tenant": {kept: {"days": 0}}}
    cfg.write_text(yaml.safe_dump({"ingest": policy}))
    env = {VARIABLE: variable.format(short=short)}
    with pytest.raises(
        ConfigError,
        match="'ingest.content_retention_by_tenant': given both in the config file and as "
        f"{VARIABLE}",
    ):
        suite = start_embedded(tmp_path, cfg, env)
        suite.stop()  # type: ignore[attr-defined]
    assert erased_now(tmp_path, kept) == set()


def test_either_source_alone_is_taken(tmp_path: Path, tenant: str) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        yaml.safe_dump({"ingest": {"content_retention_by_tenant": {tenant: {"days": 0}}}})
    )
    s = ingest_settings.load(config.load(cfg, env={}, overrides={"data_dir": tmp_path}))
    assert list(s.content_retention_by_tenant) == [tenant]
    env = {VARIABLE: f"{tenant}:days=7"}
    s = ingest_settings.load(config.load(None, env=env, overrides={"data_dir": tmp_path}))
    assert s.content_retention_by_tenant[tenant].days == 7
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"ingest": {"content_retention_days": 30}}))
    s = ingest_settings.load(config.load(other, env=env, overrides={"data_dir": tmp_path}))
    assert (s.content_retention_days, s.content_retention_by_tenant[tenant].days) == (30, 7)


def test_days_in_the_file_read_as_the_environment_reads_them(tmp_path: Path, tenant: str) -> None:
    """YAML 1.1 read ``days: 030`` as octal, 24 days: content went 6 days before the 30 the
    operator wrote (the variable's ``030`` is 30). A zero-padded number is now decimal."""
    kept, other = f"{tenant}-kept", f"{tenant}-oth"
    loaded_store(tmp_path, kept, other)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        "ingest:\n"
        "  content_retention_days: 030\n"  # the global policy too: 30 days, not 24
        "  content_retention_by_tenant:\n"
        f"    {kept}: {{days: 011}}\n"  # 11 days, not octal 9: the 10-day-old events stay
    )
    s = ingest_settings.load(config.load(cfg, env={}, overrides={"data_dir": tmp_path}))
    assert s.content_retention_days == 30
    assert s.content_retention_by_tenant[kept].days == 11
    suite = start_embedded(tmp_path, cfg, {})
    try:
        sweeper = suite.components["ingest"].retention  # type: ignore[attr-defined]
        wait_until(lambda: sweeper.sweeps >= 1)
    finally:
        suite.stop()  # type: ignore[attr-defined]
    assert erased_now(tmp_path, kept) == {"i-40", "r-40"}
    assert erased_now(tmp_path, other) == {"i-40", "r-40"}


@pytest.mark.parametrize(
    ("days", "message"),
    [
        ("1:30", "'1:30' is invalid: must be a whole number in the digits 0-9"),  # was 90
        ("0x1e", "'0x1e' is invalid: must be a whole number"),  # was 30
        ("1_0", "'1_0' is invalid: must be a whole number"),  # was 10
        ("+7", "'\\+7' is invalid: must be a whole number"),  # the variable's +7 was refused
    ],
)
def test_other_number_forms_in_the_file_are_refused_naming_the_key(
    tmp_path: Path, days: str, message: str
) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"ingest:\n  content_retention_by_tenant:\n    acme: {{days: {days}}}\n")
    with pytest.raises(
        ConfigError, match=f"'ingest.content_retention_by_tenant.acme.days': {message}"
    ):
        ingest_settings.load(config.load(cfg, env={}, overrides={"data_dir": tmp_path}))
    cfg.write_text(f"ingest:\n  content_retention_days: {days}\n")
    with pytest.raises(ConfigError, match=r"setting 'ingest\.content_retention_days': "):
        ingest_settings.load(config.load(cfg, env={}, overrides={"data_dir": tmp_path}))
