"""The plaintext health port and the server's port are two ports, checked at start-up."""

from __future__ import annotations

import pytest

from aiaudit.common import config


@pytest.mark.parametrize("health", ["127.0.0.1:50077", "[::]:50077", "0.0.0.0:50077"])
def test_the_health_port_on_the_servers_port_is_refused_naming_both(health: str) -> None:
    """gRPC bound one of them and ``serve`` stopped, exit 1, after migrating the store."""
    env = {"AIAUDIT_ADDRESS": "127.0.0.1:50077", "AIAUDIT_HEALTH_ADDRESS": health}
    with pytest.raises(config.ConfigError, match="'health_address' and 'address': both on port"):
        config.load(env=env)
