"""The health port is compared with the server's as a number, not as the text written.

``address: 127.0.0.1:50077`` with ``health_address: "[::]:050077"`` passed the check
(``'050077' != '50077'``) and one of them failed to bind after the store was migrated
(review, 2026-12-07).
"""

from __future__ import annotations

import pytest

from aiaudit.common import config


@pytest.mark.parametrize(
    ("address", "health"), [("127.0.0.1:50077", "[::]:050077"), ("127.0.0.1:050077", "[::]:50077")]
)
def test_the_same_port_written_otherwise_is_refused(address: str, health: str) -> None:
    env = {"AIAUDIT_ADDRESS": address, "AIAUDIT_HEALTH_ADDRESS": health}
    with pytest.raises(config.ConfigError, match="'health_address' and 'address': both on port"):
        config.load(env=env)
