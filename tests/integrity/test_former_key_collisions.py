"""A former verifier key sharing its name and key ID with another trusted key, but not its
key bytes, stops ``aiaudit serve`` at start, naming the setting and the other key.

A signature line names its key by name and 4-byte ID only, so with two such keys trusted
every note was refused ("two verifier keys share name and ID"): VerifyEvent answered
TAMPERED for everything and the notary passed over its own exports (review, 2026-12-07).
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from aiaudit.integrity.note import VerifierKey, key_id
from tests.helpers import free_port
from tests.integrity.conftest import ORIGIN_PREFIX

SEED = bytes.fromhex("ddb23fa563e3d13f335ba31c4cf1af09ccf016fcce058e464ad2ef7f5c13a781")
"""A file key whose ID under ORIGIN_PREFIX is also that of the bytes ``TWIN``: found by
a birthday search, 150,000 keys generated against random bytes (9 s of CPU)."""
TWIN = bytes.fromhex("cb575e889ed08be51235ff3882eccca2ef50b7167acc45f0b5b52ad5835af7ee")


def _twins() -> tuple[VerifierKey, VerifierKey]:
    """Two keys of ORIGIN_PREFIX sharing one ID: the first repeat among counted byte strings
    (about 80,000 hashes)."""
    seen: dict[bytes, bytes] = {}
    for n in itertools.count():
        raw = n.to_bytes(32, "big")
        other = seen.setdefault(key_id(ORIGIN_PREFIX, raw), raw)
        if other != raw:
            return VerifierKey(ORIGIN_PREFIX, other), VerifierKey(ORIGIN_PREFIX, raw)
    raise AssertionError("unreachable")


def _serve(tmp_path: Path, former: list[VerifierKey]) -> tuple[int, list[str]]:
    """``aiaudit serve`` with these former keys: its exit code and what it said on stderr."""
    listed = ", ".join(f"'{k.encode()}'" for k in former)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"integrity:\n  origin_prefix: {ORIGIN_PREFIX}\n  former_verifier_keys: [{listed}]\n"
    )
    argv = [sys.executable, "-m", "aiaudit.cli.main", "serve", "--config", str(config)]
    argv += ["--data-dir", str(tmp_path / "data"), "--address", f"127.0.0.1:{free_port()}"]
    # The timeout only bounds a failure: before the fix it served on.
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    return done.returncode, [s for s in done.stderr.splitlines() if not s.startswith("{")]


def test_two_former_keys_sharing_name_and_id_stop_serve(tmp_path: Path) -> None:
    first, second = _twins()
    code, said = _serve(tmp_path, [first, second])
    assert code == 2, said
    assert any(
        f"setting 'integrity.former_verifier_keys[1]': shares its name and key ID "
        f"{ORIGIN_PREFIX}+{first.key_id.hex()} with 'integrity.former_verifier_keys[0]' "
        f"({first.encode()}) but not its key" in line
        for line in said
    ), said


def test_a_former_key_sharing_the_file_keys_name_and_id_stops_serve(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.from_private_bytes(SEED)
    own = VerifierKey(
        ORIGIN_PREFIX,
        key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
    )
    twin = VerifierKey(ORIGIN_PREFIX, TWIN)
    assert own.key_id == twin.key_id and own != twin
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    pem = data / "notary-ed25519.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pem.chmod(0o600)
    code, said = _serve(tmp_path, [twin])
    assert code == 2, said
    assert any(
        f"setting 'integrity.former_verifier_keys[0]': shares its name and key ID "
        f"{ORIGIN_PREFIX}+{own.key_id.hex()} with the current signing key ({own.encode()}) "
        "but not its key" in line
        for line in said
    ), said
