"""Settings: precedence, validation messages, secure defaults."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from aiaudit.common import config, stream_slots
from aiaudit.common.auth import Authenticator
from aiaudit.integrity.cli import VERIFY_OFFLINE


def test_file_then_env_then_flags(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("max_batch_events: 10\nlog_level: DEBUG\naddress: 127.0.0.1:7000\n")
    s = config.load(
        f, env={"AIAUDIT_MAX_BATCH_EVENTS": "20"}, overrides={"address": "127.0.0.1:7001"}
    )
    assert (s.max_batch_events, s.log_level, s.address) == (20, "DEBUG", "127.0.0.1:7001")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AIAUDIT_MAX_BATCH_EVENTS": "lots"}, "'max_batch_events'"),
        ({"AIAUDIT_ADDRESS": "nowhere"}, "'address'"),
        ({"AIAUDIT_DATABASE_URL": "mysql://x"}, "'database_url'"),
        ({"AIAUDIT_TLS_CERT_FILE": "/nonexistent"}, "tls_"),
        ({"AIAUDIT_LOG_LEVEL": "verbose"}, "'log_level': 'verbose'; one of DEBUG"),
        (
            {
                "AIAUDIT_OIDC_ISSUER": "https://idp.example",
                "AIAUDIT_OIDC_AUDIENCE": "aiaudit",
                "AIAUDIT_OIDC_JWKS_URL": "http://idp.example/jwks.json",
            },
            "plain HTTP",
        ),
    ],
)
def test_bad_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(config.ConfigError, match=message):
        config.load(env=env)


def test_serving_outside_embedded_loopback_needs_api_keys(tmp_path: Path) -> None:
    s = config.load(env={"AIAUDIT_DATABASE_URL": "postgresql+psycopg://u@127.0.0.1/db"})
    with pytest.raises(config.ConfigError, match="'api_keys_file'"):
        config.require_authentication(s)
    config.require_authentication(config.load(env={}))  # embedded on loopback: dev mode
    keys = tmp_path / "keys.yaml"
    keys.write_text("keys: []\n")
    config.require_authentication(
        config.load(
            env={
                "AIAUDIT_DATABASE_URL": "postgresql+psycopg://u@127.0.0.1/db",
                "AIAUDIT_API_KEYS_FILE": str(keys),
            }
        )
    )


def test_plaintext_allowed_is_no_authentication_turned_off() -> None:
    """``allow_insecure`` (plaintext on a mesh-encrypted network) also let every caller in as
    admin on every tenant when no keys were set (review, 2026-12-05): that takes
    ``allow_unauthenticated``, and the refusal names both."""
    plain = {"address": "0.0.0.0:50051", "allow_insecure": True}
    for where in ({}, {"database_url": "postgresql+psycopg://h/db"}):
        settings = config.load(env={}, overrides={**plain, **where})
        config.require_tls(settings)  # plaintext: what allow_insecure says
        with pytest.raises(config.ConfigError) as err:
            config.require_authentication(settings)
        assert "allow_unauthenticated=true" in str(err.value)
        assert "allow_insecure=true only allows plaintext" in str(err.value)
    env = {"AIAUDIT_ALLOW_UNAUTHENTICATED": "true", "AIAUDIT_ADDRESS": "0.0.0.0:50051"}
    config.require_authentication(config.load(env=env))  # said explicitly, TLS or not


def test_workers_only_for_ingest() -> None:
    with pytest.raises(config.ConfigError, match="'workers'"):
        config.load(env={"AIAUDIT_WORKERS": "2"})
    s = config.load(env={"AIAUDIT_WORKERS": "2", "AIAUDIT_SERVICES": "ingest"})
    assert (s.workers, s.services) == (2, ("ingest",))


def test_workers_are_bounded() -> None:
    """Each worker is a process with database pools of its own: ``workers: 100`` forked 100
    of them, which could take every connection PostgreSQL allows."""
    most = config.MAX_WORKERS
    ingest = {"AIAUDIT_SERVICES": "ingest"}
    assert config.load(env={**ingest, "AIAUDIT_WORKERS": str(most)}).workers == most
    for env in ({**ingest, "AIAUDIT_WORKERS": str(most + 1)}, {"AIAUDIT_WORKERS": "100"}):
        with pytest.raises(config.ConfigError, match=rf"'workers': \d+; at most {most} \("):
            config.load(env=env)
    with pytest.raises(config.ConfigError, match=f"'workers': 1000; at most {most}"):
        config.load(env={}, overrides={"workers": 1000, "services": "ingest"})


def test_unknown_file_key_is_named(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("max_batch_event: 10\n")
    with pytest.raises(config.ConfigError, match="max_batch_event"):
        config.load(f, env={})


@dataclass(frozen=True)
class _Section:
    """Two keys of the integrity section (its variables are checked against the real one)."""

    checkpoint_interval: float = 1.0
    vault_addr: str = ""


def test_sections_read_file_and_env(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("integrity:\n  checkpoint_interval: 2.5\n")
    s = config.load(f, env={"AIAUDIT_INTEGRITY_VAULT_ADDR": "http://vault"})
    assert config.section(s, "integrity", _Section) == _Section(2.5, "http://vault")
    f.write_text("integrity:\n  intervall: 2.5\n")
    with pytest.raises(config.ConfigError, match=r"integrity\.intervall"):
        config.section(config.load(f, env={}), "integrity", _Section)


def test_cli_reports_config_errors_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    from aiaudit.cli.main import main

    assert main(["serve", "--address", "0.0.0.0:1"]) == 2
    assert "configuration error" in capsys.readouterr().err


def test_client_certificates_without_tls_are_refused(tmp_path: Path) -> None:
    """Otherwise the port serves plaintext and authenticates no client, silently."""
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked before the TLS settings")
    with pytest.raises(config.ConfigError, match="'tls_client_ca_file': client certificates"):
        config.load(env={"AIAUDIT_TLS_CLIENT_CA_FILE": str(ca)})


def test_a_jwks_on_the_loopback_may_be_plain_http() -> None:
    env = {
        "AIAUDIT_OIDC_ISSUER": "https://idp.example",
        "AIAUDIT_OIDC_AUDIENCE": "aiaudit",
        "AIAUDIT_OIDC_JWKS_URL": "http://127.0.0.1:8080/jwks.json",
    }
    assert config.load(env=env).oidc_jwks_url.startswith("http://127.0.0.1")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("tenants: acme\n    roles: [gateway]", "tenants must be a list"),
        ("tenants: [acme]\n    roles: gateway", "roles must be a list"),
    ],
)
def test_a_key_file_field_that_is_no_list_is_refused(
    tmp_path: Path, entry: str, message: str
) -> None:
    """``tenants: acme`` used to grant the tenants a, c, e and m."""
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"keys:\n  - sha256: {'ab' * 32}\n    {entry}\n")
    with pytest.raises(config.ConfigError, match=message):
        Authenticator.from_file(keys)


def test_serving_off_loopback_needs_tls_and_a_client_command_a_ca_file() -> None:
    """Serving on 0.0.0.0 without TLS is refused; a client command reaching another host must
    bring the server's CA, or its API key would travel in clear."""
    served = config.load(env={"AIAUDIT_ADDRESS": "0.0.0.0:50051"})
    with pytest.raises(config.ConfigError, match="reachable from other hosts but no TLS"):
        config.require_tls(served)
    remote = config.load(env={"AIAUDIT_ADDRESS": "10.1.2.3:50051"})
    with pytest.raises(config.ConfigError, match="give --ca-file"):
        config.client_tls(remote, None)
    config.client_tls(remote, Path("/etc/aiaudit/ca.pem"))  # over TLS: fine
    config.client_tls(config.load(env={}), None)  # loopback: fine


@pytest.mark.parametrize("document", ["keys: 5", "- a\n- b", "keys:\n  - just-a-string"])
def test_a_key_file_of_the_wrong_shape_is_a_configuration_error(
    tmp_path: Path, document: str
) -> None:
    keys = tmp_path / "keys.yaml"
    keys.write_text(document + "\n")
    with pytest.raises(config.ConfigError, match="'api_keys_file'"):
        Authenticator.from_file(keys)


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf"])
def test_numbers_must_be_finite(raw: str) -> None:
    """``nan`` passed the positive check (every comparison with nan is false): a notary with
    ``checkpoint_interval: nan`` started and never signed."""
    from aiaudit.integrity.settings import IntegritySettings

    settings = config.load(env={"AIAUDIT_INTEGRITY_CHECKPOINT_INTERVAL": raw})
    with pytest.raises(config.ConfigError, match=r"'integrity\.checkpoint_interval'.*finite"):
        config.section(settings, "integrity", IntegritySettings)


def test_zero_where_it_means_something() -> None:
    """``retention_days: 0`` (keep forever) and ``wake_linger: 0`` are documented values;
    zero elsewhere (an interval, a batch size) is refused."""
    from aiaudit.search.settings import SearchSettings

    env = {"AIAUDIT_SEARCH_RETENTION_DAYS": "0", "AIAUDIT_SEARCH_WAKE_LINGER": "0"}
    search = config.section(config.load(env=env), "search", SearchSettings)
    assert (search.retention_days, search.wake_linger) == (0, 0.0)
    for name in ("RETENTION_DAYS", "BATCH_SIZE"):
        settings = config.load(env={f"AIAUDIT_SEARCH_{name}": "-1"})
        with pytest.raises(config.ConfigError, match=f"'search.{name.lower()}'"):
            config.section(settings, "search", SearchSettings)
    with pytest.raises(config.ConfigError, match=r"'search\.batch_size'.*positive"):
        config.section(
            config.load(env={"AIAUDIT_SEARCH_BATCH_SIZE": "0"}), "search", SearchSettings
        )


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        (["", "k2"], r"keys\[0\]\.id is required"),
        (["k1", "k1"], r"keys\[1\]\.id 'k1' is already another key's"),
    ],
)
def test_every_key_has_an_id_of_its_own(tmp_path: Path, ids: list[str], message: str) -> None:
    """Access records name the key: two keys without one were both recorded as ``None``."""
    keys = tmp_path / "keys.yaml"
    entries = [
        {"id": key_id, "sha256": f"{i:02x}" * 32, "tenants": ["*"], "roles": ["auditor"]}
        for i, key_id in enumerate(ids)
    ]
    keys.write_text(yaml.safe_dump({"keys": entries}))
    with pytest.raises(config.ConfigError, match=message):
        Authenticator.from_file(keys)
    entries[-1]["id"] = "k3"
    keys.write_text(yaml.safe_dump({"keys": [e for e in entries if e["id"]]}))
    assert not Authenticator.from_file(keys).dev_mode


def test_the_opt_outs_say_at_every_start_what_they_turned_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With no keys file every caller was admin on every tenant, and nothing in the log said
    so (review, 2026-12-05). Plaintext and no authentication are two settings since: each
    says what it turned off."""
    settings = config.load(
        env={},
        overrides={
            "address": "0.0.0.0:50051",
            "database_url": "postgresql+psycopg://h/db",
            "allow_insecure": True,
            "allow_unauthenticated": True,
        },
    )
    with caplog.at_level(logging.WARNING, logger="aiaudit.common.config"):
        config.require_tls(settings)
        config.require_authentication(settings)
    assert [r.getMessage() for r in caplog.records] == [
        "serving in clear text to other hosts: no tls_cert_file, and allow_insecure=true",
        "every caller is admin on every tenant: no api_keys_file or oidc_issuer, "
        "and allow_unauthenticated=true",
    ]
    caplog.clear()
    loopback = config.load(env={}, overrides={"address": "127.0.0.1:0"})  # embedded dev mode
    with caplog.at_level(logging.WARNING, logger="aiaudit.common.config"):
        config.require_tls(loopback)
        config.require_authentication(loopback)
    assert caplog.records == []


def test_the_shutdown_grace_is_a_setting_checked_at_start() -> None:
    """It was 5 s in the code whatever the pod's terminationGracePeriodSeconds; the chart now
    sets it from that (see tests/charts)."""
    assert config.load(env={}).shutdown_grace_seconds == 5.0
    env = {"AIAUDIT_SHUTDOWN_GRACE_SECONDS": "50"}
    assert config.load(env=env).shutdown_grace_seconds == 50.0
    for bad in ("-1", "3601", "nan"):
        with pytest.raises(config.ConfigError, match="'shutdown_grace_seconds'"):
            config.load(env={"AIAUDIT_SHUTDOWN_GRACE_SECONDS": bad})


def test_a_shutdown_grace_of_zero_is_taken(tmp_path: Path) -> None:
    """0 (cancel calls in flight at once) is in the documented range 0-3600, but was refused
    "must be positive" from the file and the environment alike (review)."""
    assert config.load(env={"AIAUDIT_SHUTDOWN_GRACE_SECONDS": "0"}).shutdown_grace_seconds == 0
    f = tmp_path / "c.yaml"
    f.write_text("shutdown_grace_seconds: 0\n")
    assert config.load(f, env={}).shutdown_grace_seconds == 0


def test_the_message_size_fits_grpc_and_the_largest_event() -> None:
    """gRPC takes at most 2**31 - 1 (OverflowError above it); a message must hold an event of
    max_event_bytes and the request around it."""
    most = config.GRPC_MAX_MESSAGE_BYTES
    assert config.load(env={"AIAUDIT_MAX_MESSAGE_BYTES": str(most)}).max_message_bytes == most
    with pytest.raises(config.ConfigError, match=f"'max_message_bytes': {most + 1}; at most"):
        config.load(env={"AIAUDIT_MAX_MESSAGE_BYTES": str(most + 1)})
    event = {"AIAUDIT_MAX_EVENT_BYTES": "1048576"}
    least = 1048576 + config.MESSAGE_HEADROOM_BYTES
    env = {**event, "AIAUDIT_MAX_MESSAGE_BYTES": str(least)}
    assert config.load(env=env).max_message_bytes == least
    with pytest.raises(config.ConfigError, match=r"'max_message_bytes'.*max_event_bytes"):
        config.load(env={**event, "AIAUDIT_MAX_MESSAGE_BYTES": str(least - 1)})


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("oidc_roles_claim:\n", "oidc_roles_claim"),
        ("content_vault_mount:\n", "content_vault_mount"),
        ("tls_client_ca_file:\n", "tls_client_ca_file"),
        ("services:\n", "services"),
        ("integrity:\n  origin_prefix:\n", r"integrity\.origin_prefix"),
    ],
)
def test_a_key_left_empty_in_the_file_is_refused(tmp_path: Path, text: str, key: str) -> None:
    """YAML makes ``key:`` null, and a string setting took the text "None" (``str(None)``):
    OIDC roles were read from a claim named "None". It is refused for every setting, paths
    too (an ``api_keys_file:`` whose path was forgotten served without keys in the
    embedded mode): leave a key out for its default."""
    from aiaudit.integrity.settings import IntegritySettings

    f = tmp_path / "c.yaml"
    f.write_text(text)
    with pytest.raises(config.ConfigError, match=f"setting '{key}': no value"):
        config.section(config.load(f, env={}), "integrity", IntegritySettings)


def test_services_given_must_name_one(tmp_path: Path) -> None:
    """``services: ','`` (or ``[]``, ``--services ''``) read as no list at all, and the process
    hosted every service instead of the ones its operator meant to name."""
    for env in ({"AIAUDIT_SERVICES": ","}, {"AIAUDIT_SERVICES": " "}):
        with pytest.raises(config.ConfigError, match=r"'services'.*names none"):
            config.load(env=env)
    f = tmp_path / "c.yaml"
    f.write_text("services: []\n")
    with pytest.raises(config.ConfigError, match=r"'services'.*names none"):
        config.load(f, env={})
    with pytest.raises(config.ConfigError, match=r"'services'.*names none"):
        config.load(env={}, overrides={"services": ""})
    assert config.load(env={}).services == ()  # left out: every implemented service
    assert config.load(env={"AIAUDIT_SERVICES": "ingest, search"}).services == ("ingest", "search")


def test_a_misspelt_environment_variable_is_refused() -> None:
    """A misspelt ``AIAUDIT_*`` variable was ignored (the setting kept its default, say no
    TLS client CA) where an unknown key of the file is refused."""
    with pytest.raises(
        config.ConfigError,
        match=r"AIAUDIT_MAX_BATCH_EVENT: no such setting \(did you mean AIAUDIT_MAX_BATCH_EVENTS",
    ):
        config.load(env={"AIAUDIT_MAX_BATCH_EVENT": "10"})
    with pytest.raises(config.ConfigError, match="AIAUDIT_SECTIONS: no such setting"):
        config.load(env={"AIAUDIT_SECTIONS": "x"})  # internal fields are no settings
    # A section's variables are checked against its keys.
    with pytest.raises(
        config.ConfigError,
        match=r"AIAUDIT_INTEGRITY_CHECKPOINT_INTERVALL: no such setting \(did you mean "
        "AIAUDIT_INTEGRITY_CHECKPOINT_INTERVAL",
    ):
        config.load(env={"AIAUDIT_INTEGRITY_CHECKPOINT_INTERVALL": "2"})
    # What the commands and scripts read beside the settings passes.
    others = {
        "AIAUDIT_API_KEY": "k",
        "AIAUDIT_CONTENT_VAULT_TOKEN": "t",
        "AIAUDIT_TEST_PG_URL": "postgresql://",
        "AIAUDIT_PG_PORT": "55432",
        "AIAUDIT_MAX_BATCH_EVENTS": "10",
    }
    assert config.load(env=others).max_batch_events == 10


@pytest.mark.parametrize(
    ("variable", "meant"),
    [
        ("AIAUDIT_ALERTING_WEBHOOK_URLL", "AIAUDIT_ALERTING_WEBHOOK_URL"),
        ("AIAUDIT_SEARCH_OPENSEARCH_PASWORD", "AIAUDIT_SEARCH_OPENSEARCH_PASSWORD"),
        ("AIAUDIT_SERACH_BATCH_SIZE", "AIAUDIT_SEARCH_BATCH_SIZE"),  # the section misspelt
    ],
)
def test_a_misspelt_variable_of_a_service_not_hosted_is_refused(variable: str, meant: str) -> None:
    """A section's variables were checked only by a process hosting the service: an ingest
    pod passed ``AIAUDIT_ALERTING_WEBHOOK_URLL`` silently, and so did the alerting pod the
    same environment was meant for until it read its section. A misspelling is one whichever
    services run."""
    for hosted in ("ingest", "integrity"):
        env = {"AIAUDIT_SERVICES": hosted, variable: "x"}
        with pytest.raises(
            config.ConfigError, match=rf"{variable}: no such setting \(did you mean {meant}\?"
        ):
            config.load(env=env)
    # Every section's keys are taken, whichever services the process hosts.
    taken = {"AIAUDIT_SERVICES": "ingest", "AIAUDIT_ALERTING_WEBHOOK_URL": "https://hook"}
    assert config.load(env=taken).services == ("ingest",)


def test_every_section_names_the_class_its_service_reads() -> None:
    """load() checks each section's variables against these classes, by module name."""
    from aiaudit.alerting.settings import AlertingSettings
    from aiaudit.ingest.settings import IngestSettings
    from aiaudit.integrity.settings import IntegritySettings
    from aiaudit.search.settings import SearchSettings

    classes = (IngestSettings, IntegritySettings, SearchSettings, AlertingSettings)
    assert tuple(config.section_settings(name) for name in config.SECTIONS) == classes


def test_a_health_address_whose_host_does_not_resolve_is_refused() -> None:
    """gRPC resolved it only when it bound the port, after the store was migrated and the
    services started, and ``serve`` ended exit 1 (tests/e2e/test_cli_errors.py)."""
    bad = "no-such-host.invalid:8081"  # .invalid never resolves (RFC 6761)
    with pytest.raises(
        config.ConfigError, match=rf"setting 'health_address': '{bad}': the host does not resolve"
    ):
        config.load(env={"AIAUDIT_HEALTH_ADDRESS": bad})
    for good in ("[::]:8081", "0.0.0.0:8081", "127.0.0.1:8081", "localhost:8081"):
        assert config.load(env={"AIAUDIT_HEALTH_ADDRESS": good}).health_address == good


def test_tls_certificate_and_key_go_together(tmp_path: Path) -> None:
    """The check was lost (its ``if`` line deleted, the ``raise`` left in another branch):
    a certificate without its key served plaintext on 0.0.0.0 without ``allow_insecure``,
    as ``require_tls`` saw a certificate set."""
    pem = tmp_path / "tls.pem"
    pem.write_text("not read before the pair is checked")
    for name in ("CERT", "KEY"):
        env = {"AIAUDIT_ADDRESS": "0.0.0.0:50051", f"AIAUDIT_TLS_{name}_FILE": str(pem)}
        with pytest.raises(config.ConfigError, match="'tls_cert_file' and 'tls_key_file' must"):
            config.load(env=env)


def test_a_command_that_reads_some_settings_needs_no_valid_others(tmp_path: Path) -> None:
    """An offline ``verify --bundle`` exited 2 on a bad ``AIAUDIT_MAX_BATCH_EVENTS`` of the
    server beside it: a machine that checks a file needs no valid server configuration.
    With ``only`` the rest keep their defaults whatever the file, the environment and the
    flags say; what is read is checked as ever."""
    from aiaudit.integrity import settings as integrity_settings

    f = tmp_path / "c.yaml"
    f.write_text(
        "tls_cert_file: /nonexistent\nmax_message_bytes: 99999999999\nworkers: 4\n"
        "integrity:\n  checkpoint_interval: -1\n  origin_prefix: example.org/log\n"
    )
    env = {
        "AIAUDIT_MAX_BATCH_EVENTS": "abc",
        "AIAUDIT_MAX_BATCH_EVENT": "10",  # misspelt: not ours to judge here
        "AIAUDIT_DATA_DIR": str(tmp_path),
        "AIAUDIT_INTEGRITY_BATCH_SIZE": "0",
        "AIAUDIT_INTEGRITY_KEY_NAME": "auditor",
        "AIAUDIT_ALLOW_INSECURE": "true",  # read: it rules the Vault holding the keys
    }
    overrides = {"address": "nowhere", "workers": 4}
    settings = config.load(f, env=env, overrides=overrides, only=VERIFY_OFFLINE)
    assert settings.data_dir == tmp_path
    defaults = config.Settings()
    assert (settings.max_batch_events, settings.address) == (1000, defaults.address)
    assert (settings.tls_cert_file, settings.workers) == (None, 1)
    assert settings.allow_insecure
    s = integrity_settings.load(settings)
    assert (s.origin_prefix, s.key_name) == ("example.org/log", "auditor")
    assert (s.checkpoint_interval, s.batch_size) == (1.0, 5000)
    # What it reads is checked.
    signer = config.load(env={"AIAUDIT_INTEGRITY_SIGNER": "hsm"}, only=VERIFY_OFFLINE)
    with pytest.raises(config.ConfigError, match=r"'integrity\.signer'"):
        integrity_settings.load(signer)
    f.write_text("integrity:\n  origin_prefix:\n")
    with pytest.raises(config.ConfigError, match=r"'integrity\.origin_prefix': no value"):
        integrity_settings.load(config.load(f, env={}, only=VERIFY_OFFLINE))
    # A file that is no aiaudit configuration is still refused.
    f.write_text("max_batch_evnts: 10\n")
    with pytest.raises(config.ConfigError, match="unknown setting"):
        config.load(f, env={}, only=VERIFY_OFFLINE)
    # Without only, the same environment stops the command.
    with pytest.raises(config.ConfigError, match="AIAUDIT_MAX_BATCH_EVENT"):
        config.load(env=env)


REMOTE_PG = "postgresql+psycopg://svc:pw@db.example/aiaudit"


def _validate_sections(settings: config.Settings) -> None:
    """Each service's section, checked as the service checks it at start."""
    from aiaudit.alerting.settings import AlertingSettings
    from aiaudit.ingest import settings as ingest_settings
    from aiaudit.integrity import settings as integrity_settings
    from aiaudit.search.settings import SearchSettings

    ingest_settings.load(settings)
    integrity_settings.load(settings)
    config.section(settings, "search", SearchSettings).validate(settings.allow_insecure)
    config.section(settings, "alerting", AlertingSettings).validate(settings.allow_insecure)


@pytest.mark.parametrize(
    ("top", "section", "refused"),
    [
        ({"content_vault_addr": "http://vault.example:8200"}, {}, "content_vault_addr"),
        ({"database_url": REMOTE_PG}, {}, "database_url"),
        ({"database_url": REMOTE_PG + "?sslmode=require"}, {}, "database_url"),
        ({"database_url": REMOTE_PG + "?sslmode=prefer"}, {}, "database_url"),
        ({}, {"integrity": {"vault_addr": "http://vault.example:8200"}}, "integrity.vault_addr"),
        ({}, {"integrity": {"database_url": REMOTE_PG}}, "integrity.database_url"),
        ({}, {"ingest": {"privacy_database_url": REMOTE_PG}}, "ingest.privacy_database_url"),
        ({}, {"alerting": {"database_url": REMOTE_PG}}, "alerting.database_url"),
        ({}, {"search": {"database_url": REMOTE_PG}}, "search.database_url"),
        (
            {},
            {"search": {"opensearch_url": "https://127.0.0.1:9200,http://os.example:9200"}},
            "search.opensearch_url",
        ),
        (
            {},
            {"search": {"opensearch_url": "https://os.example", "opensearch_verify_certs": False}},
            "search.opensearch_verify_certs",
        ),
    ],
)
def test_plaintext_or_unchecked_tls_to_a_backend_on_another_host_is_refused(
    tmp_path: Path, top: dict[str, object], section: dict[str, object], refused: str
) -> None:
    """The review's repro (2026-12-05): a Vault token and the plaintext data keys, the
    notary's token, content and the OpenSearch password, a database login and every event
    went in clear, or to whoever answered, with ``allow_insecure`` false. Refused at start
    naming the setting, as the gRPC side is; ``allow_insecure`` still allows it."""
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({**top, **section}))

    def check(env: dict[str, str]) -> None:
        _validate_sections(config.load(f, env=env))

    with pytest.raises(config.ConfigError) as err:
        check({})
    message = str(err.value)
    assert message.startswith(f"setting '{refused}'") and "allow_insecure=true" in message
    assert "svc:pw" not in message  # the URL's credentials are not repeated
    check({"AIAUDIT_ALLOW_INSECURE": "true"})


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://u:p@127.0.0.1:5432/db",
        "postgresql+psycopg://u:p@localhost/db",
        "postgresql+psycopg://u:p@[::1]:5432/db",
        "postgresql+psycopg://u:p@/db?host=/var/run/postgresql",
        "postgresql+psycopg://u:p@/db",
        REMOTE_PG + "?sslmode=verify-full",
        REMOTE_PG + "?sslmode=verify-ca&sslrootcert=/etc/aiaudit/db-ca.pem",
    ],
)
def test_a_database_on_loopback_or_over_verified_tls_is_taken(url: str) -> None:
    assert config.load(env={"AIAUDIT_DATABASE_URL": url}).database_url == url


def test_a_loopback_backend_needs_no_tls() -> None:
    """The embedded mode and the tests use 127.0.0.1; only another host is refused."""
    env = {
        "AIAUDIT_CONTENT_VAULT_ADDR": "http://127.0.0.1:8200",
        "AIAUDIT_INTEGRITY_VAULT_ADDR": "http://localhost:8200",
        "AIAUDIT_SEARCH_OPENSEARCH_URL": "http://[::1]:9200",
        "AIAUDIT_SEARCH_OPENSEARCH_VERIFY_CERTS": "false",
    }
    _validate_sections(config.load(env=env))


def test_a_command_refuses_a_remote_database_without_verified_tls_with_exit_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``db migrate`` sends the administrator's login: libpq's default ``prefer`` fell back to
    plaintext without a word (and ``.invalid`` never resolves, so nothing is reached)."""
    from aiaudit.cli.main import main

    url = "postgresql+psycopg://admin:s3cret@db.invalid/aiaudit"
    assert main(["db", "migrate", "--database-url", url]) == 2
    err = capsys.readouterr().err
    assert "setting '--database-url'" in err and "sslmode=verify-full" in err  # the flag
    assert "s3cret" not in err


def test_a_command_that_serves_nothing_skips_the_oidc_checks_and_no_backend_check() -> None:
    """The offline commands forced ``allow_insecure`` to skip the JWKS check, only a server's
    concern, and that waived the database's and Vault's too; ``serving=False`` skips only it."""
    oidc = {
        "AIAUDIT_OIDC_ISSUER": "https://idp.example",
        "AIAUDIT_OIDC_AUDIENCE": "aiaudit",
        "AIAUDIT_OIDC_JWKS_URL": "http://idp.example/jwks",
    }
    with pytest.raises(config.ConfigError, match="'oidc_jwks_url'"):
        config.load(env=oidc)
    assert not config.load(env=oidc, serving=False).allow_insecure
    for variable, value, refused in [
        ("AIAUDIT_DATABASE_URL", REMOTE_PG, "'database_url'"),
        ("AIAUDIT_CONTENT_VAULT_ADDR", "http://vault.example:8200", "'content_vault_addr'"),
    ]:
        with pytest.raises(config.ConfigError, match=refused):
            config.load(env={**oidc, variable: value}, serving=False)
    flag = {"database_url": "--database-url"}
    with pytest.raises(config.ConfigError, match="'--database-url'"):
        config.load(env={}, overrides={"database_url": REMOTE_PG}, serving=False, flags=flag)


@pytest.mark.parametrize(
    ("url", "env"),
    [
        ("postgresql+psycopg://svc:pw@/aiaudit?service=prod", {}),
        ("postgresql+psycopg://svc:pw@localhost/aiaudit?service=prod", {}),
        ("postgresql+psycopg://svc:pw@/aiaudit", {"PGSERVICE": "prod"}),
        ("postgresql+psycopg://svc:pw@/aiaudit", {"PGSERVICE": "prod", "PGSSLMODE": "verify-full"}),
        ("postgresql+psycopg://svc:pw@localhost/aiaudit", {"PGHOSTADDR": "10.0.0.5"}),
        ("postgresql+psycopg://svc:pw@/aiaudit", {"PGHOSTADDR": "10.0.0.5"}),
    ],
)
def test_a_service_file_or_pghostaddr_does_not_take_the_database_elsewhere_in_clear(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str, env: dict[str, str]
) -> None:
    """The review's repro (2026-12-05): libpq fills what a URL leaves out from
    pg_service.conf (the URL's ``service`` or ``PGSERVICE``), ahead of ``PGHOST`` and
    ``PGSSLMODE``, and connects to ``PGHOSTADDR`` whatever the host; the check read
    neither, so these passed while libpq went to db.example (or 10.0.0.5) with
    ``sslmode=disable``. A service needs the URL's own verify-full, which it cannot
    override."""
    service_file = tmp_path / "pg_service.conf"
    service_file.write_text("[prod]\nhost=db.example\nsslmode=disable\n")
    for name in ("PGHOST", "PGHOSTADDR", "PGSSLMODE", "PGSERVICE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PGSERVICEFILE", str(service_file))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(config.ConfigError, match="setting 'database_url'") as err:
        config.load(env={"AIAUDIT_DATABASE_URL": url})
    assert "allow_insecure=true" in str(err.value) and "svc:pw" not in str(err.value)
    config.load(env={"AIAUDIT_DATABASE_URL": url, "AIAUDIT_ALLOW_INSECURE": "true"})
    verified = url + ("&" if "?" in url else "?") + "sslmode=verify-full"
    if "PGHOSTADDR" not in env:  # the URL's own mode beats the service's and PGSSLMODE
        assert config.load(env={"AIAUDIT_DATABASE_URL": verified}).database_url == verified


@pytest.mark.parametrize(
    "variable",
    ["AIAUDIT_CONTENT_VAULT_ADDR", "AIAUDIT_INTEGRITY_VAULT_ADDR", "AIAUDIT_SEARCH_OPENSEARCH_URL"],
)
def test_a_backend_url_that_only_urllib_reads_as_loopback_is_another_host(variable: str) -> None:
    """The review's repro (2026-12-05): in ``http://vault.example\\@127.0.0.1:8200`` urllib
    finds 127.0.0.1 after the user-info, while requests (hvac's client) ends the authority at
    the backslash and sends the Vault token in clear to vault.example."""
    import requests

    url = "http://vault.example\\@127.0.0.1:8200/"
    assert requests.Request("GET", url).prepare().url.startswith("http://vault.example/")
    with pytest.raises(config.ConfigError, match=r"vault\.example"):
        _validate_sections(config.load(env={variable: url}))


def test_the_servers_call_limit_and_threads_are_settings_with_the_old_values_by_default(
    tmp_path: Path,
) -> None:
    """``maximum_concurrent_rpcs`` (1024) and the RPC threads (64) were fixed in the server's
    builder (tests/contract/test_concurrent_rpcs.py: the server takes them)."""
    default = config.load(env={})
    assert (default.max_concurrent_rpcs, default.rpc_threads) == (1024, 64)
    f = tmp_path / "c.yaml"
    f.write_text("max_concurrent_rpcs: 200\nrpc_threads: 128\n")
    s = config.load(f, env={"AIAUDIT_MAX_CONCURRENT_RPCS": "100"})
    assert (s.max_concurrent_rpcs, s.rpc_threads) == (100, 128)  # the environment over the file
    assert config.load(env={"AIAUDIT_RPC_THREADS": "1024"}).rpc_threads == 1024


@pytest.mark.parametrize("key", ["max_concurrent_rpcs", "rpc_threads"])
@pytest.mark.parametrize("raw", ["0", "-1", "1.5", "many", ""])
def test_a_call_limit_or_thread_count_that_is_no_positive_integer_is_refused_naming_it(
    tmp_path: Path, key: str, raw: str
) -> None:
    with pytest.raises(config.ConfigError, match=f"^setting '{key}': '{raw}' is invalid: "):
        config.load(env={f"AIAUDIT_{key.upper()}": raw})
    f = tmp_path / "c.yaml"
    f.write_text(f"{key}: {raw or 'null'}\n")
    with pytest.raises(config.ConfigError, match=f"^setting '{key}': "):
        config.load(f, env={})


def test_the_rpc_threads_leave_room_for_the_streams_and_the_other_calls() -> None:
    """The capped streams of a process may hold 48 threads; 16 stay for the other calls."""
    assert config.MIN_RPC_THREADS == stream_slots.CEILING + 16
    for bad in (config.MIN_RPC_THREADS - 1, config.MAX_RPC_THREADS + 1):
        with pytest.raises(config.ConfigError, match=rf"^setting 'rpc_threads': {bad}; 64 to "):
            config.load(env={"AIAUDIT_RPC_THREADS": str(bad)})


def test_a_call_limit_the_open_streams_could_fill_is_refused_naming_it() -> None:
    """Open streams count against ``max_concurrent_rpcs``: below 48 + 16 the streams the limits
    allow refused every other call (tests/contract/test_concurrent_rpcs.py). 1 was taken."""
    for bad in (1, 48, 63):
        with pytest.raises(
            config.ConfigError, match=rf"^setting 'max_concurrent_rpcs': {bad}; at least 64 "
        ):
            config.load(env={"AIAUDIT_MAX_CONCURRENT_RPCS": str(bad)})
    assert config.load(env={"AIAUDIT_MAX_CONCURRENT_RPCS": "64"}).max_concurrent_rpcs == 64
    assert config.MIN_CONCURRENT_RPCS == stream_slots.CEILING + 16


def test_a_callers_share_of_the_threads_is_a_setting_between_0_and_1() -> None:
    """One principal's calls hold at most this share of ``rpc_threads`` (half by default;
    tests/contract/test_caller_share.py: the server takes it)."""
    assert config.load(env={}).caller_thread_share == 0.5
    assert config.load(env={"AIAUDIT_CALLER_THREAD_SHARE": "1"}).caller_thread_share == 1
    assert config.load(env={"AIAUDIT_CALLER_THREAD_SHARE": "0.25"}).caller_thread_share == 0.25
    for bad in ("0", "-0.5"):
        with pytest.raises(
            config.ConfigError, match=rf"^setting 'caller_thread_share': '{bad}' is invalid: "
        ):
            config.load(env={"AIAUDIT_CALLER_THREAD_SHARE": bad})
    with pytest.raises(
        config.ConfigError, match=r"^setting 'caller_thread_share': 1.5; above 0, at most 1 "
    ):
        config.load(env={"AIAUDIT_CALLER_THREAD_SHARE": "1.5"})


@pytest.mark.parametrize("variable", ["AIAUDIT_MAX_CONCURRENT_RPCS", "AIAUDIT_RPC_THREADS"])
def test_serve_refuses_a_bad_call_limit_at_start_with_exit_2(
    variable: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from aiaudit.cli.main import main

    monkeypatch.setenv(variable, "0")
    assert main(["serve", "--address", "127.0.0.1:0"]) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err
    assert f"setting '{variable.removeprefix('AIAUDIT_').lower()}': '0' is invalid" in err


@pytest.mark.parametrize("raw", ["1_024", "+64", "٦٤", "0x40", " 6 4 "])
def test_a_number_not_written_in_plain_digits_is_refused_naming_the_setting(
    tmp_path: Path, raw: str
) -> None:
    """Python's int() took ``1_024``, ``+64`` and digits of other scripts (``٦٤`` is 64):
    a setting read as a number the operator did not write (review, 2026-12-06)."""
    with pytest.raises(
        config.ConfigError, match=r"^setting 'rpc_threads': .* must be a whole number in the digits"
    ):
        config.load(env={"AIAUDIT_RPC_THREADS": raw})
    f = tmp_path / "c.yaml"
    f.write_text("rpc_threads: true\n")  # YAML's true is 1 to Python
    with pytest.raises(config.ConfigError, match=r"^setting 'rpc_threads': True is invalid: "):
        config.load(f, env={})


@pytest.mark.parametrize("raw", ["1_0", "infinity", "nan", "\u0661\u0660"])
def test_a_decimal_not_written_in_plain_digits_is_refused_naming_the_setting(raw: str) -> None:
    with pytest.raises(config.ConfigError, match=r"^setting 'shutdown_grace_seconds': .* in the"):
        config.load(env={"AIAUDIT_SHUTDOWN_GRACE_SECONDS": raw})


def test_numbers_in_plain_digits_are_read_as_before(tmp_path: Path) -> None:
    s = config.load(env={"AIAUDIT_RPC_THREADS": " 128 ", "AIAUDIT_SHUTDOWN_GRACE_SECONDS": "2.5"})
    assert (s.rpc_threads, s.shutdown_grace_seconds) == (128, 2.5)
    f = tmp_path / "c.yaml"
    f.write_text("shutdown_grace_seconds: 7\nrpc_threads: 96\n")
    s = config.load(f, env={})
    assert (s.rpc_threads, s.shutdown_grace_seconds) == (96, 7.0)
    assert isinstance(s.shutdown_grace_seconds, float)


def test_the_vault_timeout_leaves_a_wrapped_key_time_to_be_stored() -> None:
    """A data key is stored within SPARE_SECONDS of its wrap's start or never: a
    ``content_vault_timeout`` that let a wrap run past it made every new subject's
    append fail after the wait (until 2026-12-07 any positive timeout was taken)."""
    from aiaudit.common.keys.keyring import SPARE_SECONDS

    for value in ("20.5", "120"):
        with pytest.raises(
            config.ConfigError, match=rf"'content_vault_timeout': {value}; at most 20 s"
        ):
            config.load(env={"AIAUDIT_CONTENT_VAULT_TIMEOUT": value})
    assert config.load(env={"AIAUDIT_CONTENT_VAULT_TIMEOUT": "20"}).content_vault_timeout == 20
    assert 2 * config.MAX_VAULT_TIMEOUT < SPARE_SECONDS  # connection and answer, then a commit
