"""Files other users may change, and private keys they may read, stop ``serve`` at start-up.

Whoever may write the keys file or the JWKS signs themselves in as admin; whoever
may read the TLS key or the content KEK reads every connection or every sealed
content. Until 2026-12-07 a 0644 ``tls_key_file`` and a 0666 ``api_keys_file``
were served without a word. The group's bits are let be: Kubernetes mounts a
Secret as root and the pod's ``fsGroup`` (the chart's mode 0440).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aiaudit.cli.main import main
from aiaudit.common import config

PRIVATE = ("tls_key_file", "content_key_file")
"""Secrets: refused when other users may read them."""
GUARDED = ("tls_cert_file", "tls_client_ca_file", "api_keys_file", "oidc_jwks_file")
"""Not secret, but trusted: refused when other users may change them."""


def _settings(tmp_path: Path) -> dict[str, object]:
    """Every file setting given, each file 0600: the start-up checks pass them all."""
    files = {name: tmp_path / name for name in PRIVATE + GUARDED}
    for path in files.values():
        path.write_text("read later, not by the checks\n")
        path.chmod(0o600)
    return {
        **files,
        "oidc_issuer": "https://idp.example.com",
        "oidc_audience": "aiaudit",
        "data_dir": tmp_path,
    }


@pytest.mark.parametrize("name", PRIVATE + GUARDED)
@pytest.mark.parametrize("mode", [0o604, 0o602, 0o601])
def test_a_file_other_users_may_touch_is_refused_naming_the_setting(
    tmp_path: Path, name: str, mode: int
) -> None:
    given = _settings(tmp_path)
    config.load(env={}, overrides=given)  # all 0600: taken
    Path(str(given[name])).chmod(mode)
    writable = mode & 0o002
    if name in GUARDED and not writable:  # readable by others is no harm here
        config.load(env={}, overrides=given)
        return
    with pytest.raises(config.ConfigError) as err:
        config.load(env={}, overrides=given)
    assert str(err.value).startswith(f"setting {name!r}: {given[name]} has mode 0{mode:o}")


@pytest.mark.parametrize("mode", [0o640, 0o660, 0o440, 0o400])
def test_a_group_may_read_a_key_as_kubernetes_mounts_it(tmp_path: Path, mode: int) -> None:
    given = _settings(tmp_path)
    for name in PRIVATE + GUARDED:
        Path(str(given[name])).chmod(mode)
    config.load(env={}, overrides=given)


def test_serve_stops_with_exit_2_on_a_key_others_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key, cert = tmp_path / "tls.key", tmp_path / "tls.crt"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    cert.write_text("-----BEGIN CERTIFICATE-----\n")
    key.chmod(0o644)  # written under umask 022
    argv = ["serve", "--data-dir", str(tmp_path), "--address", "127.0.0.1:0"]
    env_file = tmp_path / "config.yaml"
    env_file.write_text(f"tls_cert_file: {cert}\ntls_key_file: {key}\n")
    assert main([*argv, "--config", str(env_file)]) == 2
    err = capsys.readouterr().err
    assert f"setting 'tls_key_file': {key} has mode 0644: other users may read" in err
    assert "Traceback" not in err


def test_the_address_pseudonym_key_others_read_is_refused(tmp_path: Path) -> None:
    """Whoever reads it turns every pseudonym back into its address (a guess per address)."""
    from aiaudit.ingest import settings as ingest_settings

    key = tmp_path / "ip.key"
    key.write_bytes(bytes(32))
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        f"ingest: {{ip_address: pseudonymise, ip_pseudonym_key_file: '{key}'}}\n"
    )
    for mode in (0o600, 0o640):
        key.chmod(mode)
        ingest_settings.load(config.load(config_file, env={}, overrides={"data_dir": tmp_path}))
    key.chmod(0o644)
    with pytest.raises(config.ConfigError) as err:
        ingest_settings.load(config.load(config_file, env={}, overrides={"data_dir": tmp_path}))
    assert str(err.value).startswith(f"setting 'ingest.ip_pseudonym_key_file': {key} has mode 0644")
