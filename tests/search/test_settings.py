"""``search.opensearch_url``: a malformed node URL is a ConfigError naming the setting.

Until 2026-12-05 only the scheme was checked: a port that is no number or out of
range was Python's ValueError from the security check (or, with
``allow_insecure``, from the client at start-up), and a URL with no host was the
client's TypeError, or, without ``allow_insecure``, "plain HTTP to another host".
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aiaudit.common.config import ConfigError
from aiaudit.search.settings import SearchSettings
from tests.conftest import serve_suite

MALFORMED = {
    "http://127.0.0.1:notaport": "has port 'notaport': a port is a number from 1 to 65535",
    "http://127.0.0.1:99999": "has port '99999': a port is a number from 1 to 65535",
    "https://127.0.0.1:0": "has port '0': a port is a number from 1 to 65535",
    "http://": "names no host",
    "http://:9200": "names no host",
    "http://[::1:9200": "is not a URL",
}


@pytest.mark.parametrize("allow_insecure", [False, True], ids=["secure", "allow_insecure"])
@pytest.mark.parametrize("url", list(MALFORMED))
def test_a_malformed_opensearch_url_is_a_config_error_naming_the_setting(
    url: str, allow_insecure: bool
) -> None:
    settings = SearchSettings(backend="opensearch", opensearch_url=f"http://127.0.0.1:9200,{url}")
    with pytest.raises(ConfigError) as refused:
        settings.validate(allow_insecure)
    assert str(refused.value).startswith(
        f"setting 'search.opensearch_url': {url!r} {MALFORMED[url]}"
    )


def test_well_formed_urls_pass_and_a_password_is_not_shown() -> None:
    good = "http://127.0.0.1:9200, https://[::1]:9200/prefix,http://localhost"
    SearchSettings(backend="opensearch", opensearch_url=good).validate()
    bad = SearchSettings(backend="opensearch", opensearch_url="https://admin:s3cret@[::1]:none")
    with pytest.raises(ConfigError) as refused:
        bad.validate()
    assert "s3cret" not in str(refused.value)
    assert "'https://admin:***@[::1]:none' has port 'none'" in str(refused.value)


def test_the_server_refuses_to_start_with_a_malformed_opensearch_url(tmp_path: Path) -> None:
    """Through the real start-up: the error names the setting, nothing is started."""
    cfg = tmp_path / "config.yaml"
    search = {"backend": "opensearch", "opensearch_url": "http://127.0.0.1:99999"}
    cfg.write_text(yaml.safe_dump({"search": search, "allow_insecure": True}))
    with pytest.raises(ConfigError, match=r"'search\.opensearch_url'.*has port '99999'"):
        serve_suite(tmp_path, cfg, services=("ingest", "search"))
