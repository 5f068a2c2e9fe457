"""A keys file's tenants, ids and principals are the text written, never YAML 1.1's reading.

The file was read with ``yaml.safe_load`` (YAML 1.1): ``tenants: [0042]`` was the octal
34 and granted the tenant ``34``, another customer's; ``1_000`` was ``1000``, ``0x1f``
``31``; ``tenants: [no]`` (Norway) was ``False``, and ``id: 0123`` named
records ``83`` (review, 2026-12-07). Every scalar is now kept as written.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from aiaudit.common import auth
from aiaudit.common.config import ConfigError

DIGEST = hashlib.sha256(b"gateway").hexdigest()


def _caller(tmp_path: Path, entry: str) -> auth.Caller:
    path = tmp_path / "keys.yaml"
    path.write_text(f"keys:\n  - sha256: {DIGEST}\n    roles: [gateway]\n{entry}")
    return auth.KeysFile(path).current()[DIGEST]


@pytest.mark.parametrize("tenant", ["0042", "1_000", "0x1f", "no", "on", "007"])
def test_a_tenant_is_the_text_written(tmp_path: Path, tenant: str) -> None:
    caller = _caller(tmp_path, f"    id: gw\n    tenants: [{tenant}]\n")
    assert caller.tenants == frozenset({tenant})


def test_an_id_and_principal_are_the_text_written(tmp_path: Path) -> None:
    caller = _caller(tmp_path, "    id: 0123\n    principal: 1.10\n    tenants: [acme]\n")
    assert (caller.key_id, caller.principal) == ("0123", "1.10")


def test_a_key_whose_digest_is_all_digits_keeps_its_leading_zeros(tmp_path: Path) -> None:
    digest = "0" + "1" * 63  # hex that YAML 1.1 read as a whole number, zeros dropped
    path = tmp_path / "keys.yaml"
    path.write_text(
        f"keys:\n  - id: gw\n    sha256: {digest}\n    tenants: [a]\n    roles: [admin]\n"
    )
    assert digest in auth.KeysFile(path).current()


def test_a_null_principal_is_still_the_id_and_a_null_id_still_refused(tmp_path: Path) -> None:
    caller = _caller(tmp_path, "    id: gw\n    principal: ~\n    tenants: [acme]\n")
    assert caller.principal == "gw"
    with pytest.raises(ConfigError, match=r"keys\[0\]\.id is required"):
        _caller(tmp_path, "    id: null\n    tenants: [acme]\n")
