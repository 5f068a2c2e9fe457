"""OIDC bearer tokens: what is accepted, everything that is refused, and key rotation."""

from __future__ import annotations

import contextlib
import errno
import http.server
import json
import logging
import os
import re
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from aiaudit.common import oidc
from aiaudit.common.config import ConfigError
from aiaudit.common.oidc import Jwks, TokenError, Verifier
from tests.helpers import wait_until

ISSUER = "https://idp.example.test/realms/audit"
AUDIENCE = "aiaudit"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwk(private: Any, kid: str) -> dict[str, Any]:
    """The public JWK of a private key, as an IdP publishes it."""
    algorithm = jwt.algorithms.get_default_algorithms()[_alg(private)]
    out: dict[str, Any] = json.loads(algorithm.to_jwk(private.public_key()))
    out.update({"kid": kid, "use": "sig"})
    return out


def _alg(private: Any) -> str:
    if isinstance(private, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(private, ec.EllipticCurvePrivateKey):
        return "ES256"
    return "EdDSA"


def token(private: Any, kid: str, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "alice@example.test",
        "exp": now + 600,
        "iat": now,
        "roles": ["auditor", "idp-admin"],
        "tenants": ["acme"],
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, private, algorithm=_alg(private), headers={"kid": kid})


def write_jwks(path: Path, keys: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps({"keys": keys}))
    return path


@pytest.fixture
def signer() -> rsa.RSAPrivateKey:
    return rsa_key()


@pytest.fixture
def verifier(tmp_path: Path, signer: rsa.RSAPrivateKey) -> Verifier:
    keys = Jwks.from_file(write_jwks(tmp_path / "jwks.json", [jwk(signer, "k1")]))
    keys.load()
    return Verifier(ISSUER, AUDIENCE, keys)


def test_a_valid_token_names_its_subject_roles_and_tenants(
    verifier: Verifier, signer: rsa.RSAPrivateKey
) -> None:
    claims = verifier.verify(token(signer, "k1"))
    assert claims.subject == "alice@example.test"
    assert claims.roles == {"auditor", "idp-admin"}  # the authenticator keeps the known ones
    assert claims.tenants == {"acme"}
    assert claims.key_id == "oidc:k1"


@pytest.mark.parametrize("make", ["ec", "ed25519"])
def test_ec_and_eddsa_keys_are_accepted(tmp_path: Path, make: str) -> None:
    private = (
        ec.generate_private_key(ec.SECP256R1())
        if make == "ec"
        else (ed25519.Ed25519PrivateKey.generate())
    )
    keys = Jwks.from_file(write_jwks(tmp_path / "jwks.json", [jwk(private, "k")]))
    keys.load()
    assert Verifier(ISSUER, AUDIENCE, keys).verify(token(private, "k")).subject


@pytest.mark.parametrize("algorithm", ["RS256", "RS384", "RS512"])
def test_an_rsa_key_without_alg_verifies_every_rsa_algorithm(
    verifier: Verifier, signer: rsa.RSAPrivateKey, algorithm: str
) -> None:
    """The JWK names no ``alg`` (many IdPs omit it): RS384 and RS512 tokens were refused."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bob", "exp": now + 600}
    signed = jwt.encode(claims, signer, algorithm=algorithm, headers={"kid": "k1"})
    assert verifier.verify(signed).subject == "bob"


def test_a_key_whose_alg_is_named_verifies_only_that_one(
    tmp_path: Path, signer: rsa.RSAPrivateKey
) -> None:
    keys = Jwks.from_file(
        write_jwks(tmp_path / "jwks.json", [{**jwk(signer, "k1"), "alg": "RS512"}])
    )
    keys.load()
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "bob", "exp": now + 600}
    check = Verifier(ISSUER, AUDIENCE, keys)
    assert check.verify(jwt.encode(claims, signer, "RS512", headers={"kid": "k1"})).subject
    with pytest.raises(TokenError):
        check.verify(jwt.encode(claims, signer, "RS256", headers={"kid": "k1"}))


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"exp": int(time.time()) - 120}, "expired"),
        ({"aud": "another-app"}, r"[Aa]udience"),
        ({"iss": "https://evil.example.test"}, "issuer"),
        ({"sub": None}, "sub"),
        ({"sub": "  "}, "names no subject"),  # access records would name nobody
        ({"exp": None}, "exp"),
    ],
)
def test_claims_that_do_not_fit_are_refused(
    verifier: Verifier, signer: rsa.RSAPrivateKey, overrides: dict[str, Any], why: str
) -> None:
    with pytest.raises(TokenError, match=why):
        verifier.verify(token(signer, "k1", **overrides))


def test_a_token_signed_by_another_key_under_a_known_id_is_refused(verifier: Verifier) -> None:
    with pytest.raises(TokenError, match=r"[Ss]ignature"):
        verifier.verify(token(rsa_key(), "k1"))


def test_unsigned_and_hmac_tokens_are_refused(
    verifier: Verifier, signer: rsa.RSAPrivateKey, tmp_path: Path
) -> None:
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 60}
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "k1"})
    with pytest.raises(TokenError, match="not accepted"):
        verifier.verify(unsigned)
    # The classic confusion: HMAC keyed with the public key's bytes.
    forged = jwt.encode(claims, b"k" * 32, algorithm="HS256", headers={"kid": "k1"})
    with pytest.raises(TokenError, match="not accepted"):
        verifier.verify(forged)
    with pytest.raises(TokenError, match="not a JWT"):
        verifier.verify("a.b.c")


def test_an_unknown_key_id_is_refused_and_rereads_are_rate_limited(
    tmp_path: Path, signer: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = []
    path = write_jwks(tmp_path / "jwks.json", [jwk(signer, "k1")])
    keys = Jwks(lambda: reads.append(1) or path.read_bytes(), "test")
    keys.load()
    verifier = Verifier(ISSUER, AUDIENCE, keys)
    monkeypatch.setattr(oidc, "REFRESH_GAP", 3600.0)
    for _ in range(5):
        with pytest.raises(TokenError, match="no signing key 'forged'"):
            verifier.verify(token(signer, "forged"))
    assert len(reads) == 1  # forged ids cannot make it fetch again and again


def test_while_the_issuer_is_down_forged_ids_wait_for_no_fetch_and_learn_nothing(
    tmp_path: Path, signer: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed read counts against the refresh gap like a good one, and the caller is
    not told where the keys live or why they could not be read."""
    reads = []
    path = write_jwks(tmp_path / "jwks.json", [jwk(signer, "k1")])
    keys = Jwks(lambda: reads.append(1) or path.read_bytes(), "https://user:secret@idp/jwks")
    keys.load()
    verifier = Verifier(ISSUER, AUDIENCE, keys)
    path.write_text("the issuer is down")
    monkeypatch.setattr(oidc, "REFRESH_GAP", 0.0)
    with pytest.raises(TokenError) as refused:
        verifier.verify(token(signer, "forged-1"))
    assert str(refused.value) == "no signing key 'forged-1' yet: the issuer's keys are being read"
    wait_until(lambda: not keys.reading)
    monkeypatch.setattr(oidc, "REFRESH_GAP", 3600.0)
    for n in range(5):
        with pytest.raises(TokenError, match="no signing key"):
            verifier.verify(token(signer, f"forged-{n + 2}"))
    assert len(reads) == 2  # the first load, the one failed refresh: no more
    assert verifier.verify(token(signer, "k1")).subject  # known keys still work


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, dict[str, Any]]]:
    """A real HTTP server on loopback publishing a JWKS the test may change."""
    published: dict[str, Any] = {"keys": []}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(published).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/certs", published
    server.shutdown()
    server.server_close()


def test_a_rotated_key_is_fetched_from_the_issuer_when_a_token_names_it(
    jwks_server: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, published = jwks_server
    old, new = rsa_key(), rsa_key()
    published["keys"] = [jwk(old, "2026-11")]
    keys = Jwks.from_url(url)
    keys.load()
    verifier = Verifier(ISSUER, AUDIENCE, keys)
    assert verifier.verify(token(old, "2026-11")).subject
    published["keys"] = [jwk(old, "2026-11"), jwk(new, "2026-12")]  # the IdP rotates
    monkeypatch.setattr(oidc, "REFRESH_GAP", 0.0)
    with pytest.raises(TokenError, match="being read"):  # refused at once, read meanwhile
        verifier.verify(token(new, "2026-12", sub="bob"))
    wait_until(lambda: not keys.reading)
    assert verifier.verify(token(new, "2026-12", sub="bob")).subject == "bob"


def test_a_token_naming_a_new_key_never_waits_for_the_issuer(
    tmp_path: Path, signer: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tokens are checked on the server's dispatching thread: a read of a slow issuer
    there would hold every call of the process."""
    path = write_jwks(tmp_path / "jwks.json", [jwk(signer, "k1"), jwk(signer, "k2")])
    answer = threading.Event()

    def slow_issuer() -> bytes:
        answer.wait()
        return path.read_bytes()

    keys = Jwks(slow_issuer, "test")
    verifier = Verifier(ISSUER, AUDIENCE, keys)
    monkeypatch.setattr(oidc, "REFRESH_GAP", 0.0)
    for _ in range(3):  # refused at once while the one read waits
        with pytest.raises(TokenError, match="being read"):
            verifier.verify(token(signer, "k2"))
    assert keys.reading
    answer.set()
    wait_until(lambda: not keys.reading)
    assert verifier.verify(token(signer, "k2")).subject


@pytest.mark.parametrize(
    "reply",
    [b'{"keys": ["x"]}', b'{"keys": [{"kty": "RSA"', b"[1]"],
    ids=["strings", "cut", "list"],
)
def test_any_unreadable_reply_counts_against_the_refresh_gap(
    tmp_path: Path, signer: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch, reply: bytes
) -> None:
    """A list of strings or a cut reply raised past the handler (AttributeError,
    IncompleteRead): each forged token read the JWKS again, and the caller heard why."""
    reads: list[int] = []
    keys = Jwks(lambda: reads.append(1) or reply, "test")
    verifier = Verifier(ISSUER, AUDIENCE, keys)
    monkeypatch.setattr(oidc, "REFRESH_GAP", 0.0)
    with pytest.raises(TokenError, match="being read"):
        verifier.verify(token(signer, "forged-0"))
    wait_until(lambda: not keys.reading)
    monkeypatch.setattr(oidc, "REFRESH_GAP", 3600.0)
    for n in range(1, 20):
        with pytest.raises(TokenError, match=r"^no signing key 'forged-\d+' at the issuer$"):
            verifier.verify(token(signer, f"forged-{n}"))
    assert len(reads) == 1
    with pytest.raises(ConfigError, match="OIDC JWKS test"):
        keys.load()


def test_an_unreachable_or_malformed_jwks_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("OIDC JWKS http://127.0.0.1:1/certs")):
        Jwks.from_url("http://127.0.0.1:1/certs", timeout=2).load()
    (tmp_path / "bad.json").write_text('{"keys": [{"kty": "RSA", "kid": "x"}]}')
    with pytest.raises(ConfigError, match=re.escape("bad.json")):
        Jwks.from_file(tmp_path / "bad.json").load()


def _serve(reply: Callable[[http.server.BaseHTTPRequestHandler], None]) -> http.server.HTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            reply(self)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _json(body: dict[str, Any]) -> Callable[[http.server.BaseHTTPRequestHandler], None]:
    def reply(h: http.server.BaseHTTPRequestHandler) -> None:
        data = json.dumps(body).encode()
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    return reply


def test_keys_come_from_the_url_itself_never_a_redirect_or_a_proxy(
    signer: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain-http JWKS is allowed on the loopback only, but a redirect or an
    ``http_proxy`` took the keys from another host in clear text (review, 2026-12-05)."""
    attacker = rsa_key()
    elsewhere = _serve(_json({"keys": [jwk(attacker, "k1")]}))
    genuine = _serve(_json({"keys": [jwk(signer, "k1")]}))

    def redirect(h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(302)
        h.send_header("Location", f"http://127.0.0.1:{elsewhere.server_port}/certs")
        h.send_header("Content-Length", "0")
        h.end_headers()

    redirecting = _serve(redirect)
    try:
        with pytest.raises(ConfigError, match="302"):
            Jwks.from_url(f"http://127.0.0.1:{redirecting.server_port}/certs").load()
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{elsewhere.server_port}")
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        keys = Jwks.from_url(f"http://127.0.0.1:{genuine.server_port}/certs")
        keys.load()
        verifier = Verifier(ISSUER, AUDIENCE, keys)
        assert verifier.verify(token(signer, "k1")).subject
        with pytest.raises(TokenError):
            verifier.verify(token(attacker, "k1"))
    finally:
        for server in (elsewhere, genuine, redirecting):
            server.shutdown()
            server.server_close()


def test_keys_are_read_on_a_schedule_so_a_published_key_verifies_at_its_first_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Read only when a token named an unknown key, a rotated key's first token was refused
    (the read runs beside it); providers publish a key before they sign with it."""
    old, new = rsa_key(), rsa_key()
    published: dict[str, Any] = {"keys": [jwk(old, "2026-11")]}
    reads: list[int] = []
    keys = Jwks(lambda: reads.append(1) or json.dumps(published).encode(), "test")
    keys.load()
    verifier = Verifier(ISSUER, AUDIENCE, keys)
    monkeypatch.setattr(oidc, "REFRESH_GAP", 3600.0)  # no read started by a token
    published["keys"].append(jwk(new, "2026-12"))  # the provider publishes the next key
    keys.keep_fresh(every=0.05)
    try:
        wait_until(lambda: len(reads) >= 2 and not keys.reading)
        assert verifier.verify(token(new, "2026-12", sub="bob")).subject == "bob"
    finally:
        keys.stop()


def test_a_remembered_token_is_refused_once_its_key_is_withdrawn(
    tmp_path: Path, signer: rsa.RSAPrivateKey
) -> None:
    """A key leaves the JWKS because it is compromised or retired: every token it signed is
    refused from the read that lacks it. A verified token was remembered, and accepted from
    memory, until it expired (review). A read that keeps the key keeps it remembered."""
    other = rsa_key()
    path = write_jwks(tmp_path / "jwks.json", [jwk(signer, "k1")])
    keys = Jwks.from_file(path)
    keys.load()
    verifier = Verifier(ISSUER, AUDIENCE, keys)
    seen = token(signer, "k1", sub="seen")
    first = verifier.verify(seen)
    write_jwks(path, [jwk(signer, "k1"), jwk(other, "k2")])  # the issuer publishes its next key
    keys.load()
    assert verifier.verify(seen) is first  # still remembered: no second signature check
    write_jwks(path, [jwk(other, "k2")])  # and withdraws k1
    keys.load()
    for signed in (token(signer, "k1", sub="unseen"), seen):
        with pytest.raises(TokenError, match="no signing key 'k1'"):
            verifier.verify(signed)
    assert first.withdrawn()  # what an open stream's caller checks
    assert verifier.verify(token(other, "k2", sub="next")).subject == "next"


def test_a_remembered_token_is_refused_once_its_key_id_names_another_key(
    tmp_path: Path, signer: rsa.RSAPrivateKey
) -> None:
    """The issuer replaces the key material under the same id: the id alone must not keep
    the old key's tokens remembered."""
    replacement = rsa_key()
    path = write_jwks(tmp_path / "jwks.json", [jwk(signer, "k1")])
    keys = Jwks.from_file(path)
    keys.load()
    verifier = Verifier(ISSUER, AUDIENCE, keys)
    seen = token(signer, "k1")
    claims = verifier.verify(seen)
    write_jwks(path, [jwk(replacement, "k1")])
    keys.load()
    with pytest.raises(TokenError, match=r"[Ss]ignature"):
        verifier.verify(seen)
    assert claims.withdrawn()
    assert verifier.verify(token(replacement, "k1", sub="bob")).subject == "bob"


def test_a_remembered_token_is_refused_once_the_issuer_withdraws_its_key_from_the_url(
    jwks_server: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same over HTTP: the JWKS read again (here prompted by the next key's first token)
    no longer holds the key, and the token it signed, remembered, is refused."""
    url, published = jwks_server
    old, new = rsa_key(), rsa_key()
    published["keys"] = [jwk(old, "2026-11")]
    keys = Jwks.from_url(url)
    keys.load()
    verifier = Verifier(ISSUER, AUDIENCE, keys)
    seen = token(old, "2026-11")
    assert verifier.verify(seen).subject
    published["keys"] = [jwk(new, "2026-12")]  # rotated, the old key withdrawn
    monkeypatch.setattr(oidc, "REFRESH_GAP", 0.0)
    with pytest.raises(TokenError, match="being read"):
        verifier.verify(token(new, "2026-12", sub="bob"))
    wait_until(lambda: not keys.reading)
    assert verifier.verify(token(new, "2026-12", sub="bob")).subject == "bob"
    monkeypatch.setattr(oidc, "REFRESH_GAP", 3600.0)
    with pytest.raises(TokenError, match="no signing key '2026-11' at the issuer"):
        verifier.verify(seen)


def swap_jwks(path: Path, text: str) -> None:
    """Replaces the file whole, as kubelet swaps a mounted ConfigMap's (a new inode)."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_text(text)
    os.replace(fresh, path)


def test_a_key_withdrawn_from_the_jwks_file_is_refused_at_the_next_call(
    tmp_path: Path, signer: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file was read again only on the 5-minute schedule or for an unknown key id: a key
    withdrawn from it (compromised) kept verifying its tokens, remembered or new, till then."""
    monkeypatch.setattr(oidc, "REFRESH_GAP", 3600.0)  # no read prompted by a key id
    nxt = rsa_key()
    path = write_jwks(tmp_path / "jwks.json", [jwk(signer, "k1")])
    keys = Jwks.from_file(path)
    keys.load()
    verifier = Verifier(ISSUER, AUDIENCE, keys)
    seen = token(signer, "k1", sub="seen")
    claims = verifier.verify(seen)
    swap_jwks(path, json.dumps({"keys": [jwk(nxt, "k2")]}))  # k1 withdrawn, k2 published
    for signed in (seen, token(signer, "k1", sub="unseen")):
        with pytest.raises(TokenError, match="no signing key 'k1' at the issuer"):
            verifier.verify(signed)
    assert claims.withdrawn()  # what an open stream's next request checks
    assert verifier.verify(token(nxt, "k2", sub="next")).subject == "next"  # at its first token
    assert not keys.reading


def test_a_jwks_file_that_becomes_garbage_or_goes_missing_keeps_the_keys_with_a_warning(
    tmp_path: Path, signer: rsa.RSAPrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    """A half-written or removed file must not lock every OIDC caller out; the WARNING names
    the setting and the file, once for each problem, not at every call."""
    caplog.set_level(logging.INFO, logger="aiaudit.common.oidc")
    path = write_jwks(tmp_path / "jwks.json", [jwk(signer, "k1")])
    keys = Jwks.from_file(path)
    keys.load()
    verifier = Verifier(ISSUER, AUDIENCE, keys)

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    swap_jwks(path, '{"keys": [{"kty": "RSA", "ki')
    for n in range(3):  # new tokens each time: none remembered
        assert verifier.verify(token(signer, "k1", sub=f"during-{n}")).subject == f"during-{n}"
    assert len(warnings()) == 1, warnings()
    assert warnings()[0].startswith(f"setting 'oidc_jwks_file': {path} changed but cannot be read")
    assert "keys last read stay in force" in warnings()[0] and "JSONDecodeError" in warnings()[0]
    path.unlink()
    for n in range(3):
        assert verifier.verify(token(signer, "k1", sub=f"gone-{n}")).subject == f"gone-{n}"
    assert len(warnings()) == 2, warnings()
    assert warnings()[1].startswith(f"setting 'oidc_jwks_file': {path} changed")
    assert "No such file or directory" in warnings()[1]
    other = rsa_key()
    swap_jwks(path, json.dumps({"keys": [jwk(other, "k2")]}))  # back, without k1
    with pytest.raises(TokenError, match="no signing key 'k1'"):
        verifier.verify(token(signer, "k1"))
    assert verifier.verify(token(other, "k2", sub="after")).subject == "after"
    assert len(warnings()) == 2
    assert any("read again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


def test_a_call_while_the_jwks_file_is_read_again_never_takes_a_withdrawn_key(
    tmp_path: Path, signer: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file's new stamp was recorded before its keys were parsed: a call arriving while
    another call parsed a large file found the stamp current and answered from the keys the
    file had just withdrawn (a stream's request went on, a new token verified; review)."""
    monkeypatch.setattr(oidc, "REFRESH_GAP", 3600.0)
    path = write_jwks(tmp_path / "jwks.json", [jwk(signer, "k1")])
    keys = Jwks.from_file(path)
    keys.load()
    claims = Verifier(ISSUER, AUDIENCE, keys).verify(token(signer, "k1"))
    other = jwk(rsa_key(), "k2")
    # k1 withdrawn; some thousands of keys (3 MB) take a parse long enough to call during
    swap_jwks(path, json.dumps({"keys": [dict(other, kid=f"n{i}") for i in range(7000)]}))
    stamp = keys._tried
    done = threading.Event()
    during: list[bool] = []

    def call_during_the_read() -> None:
        while keys._tried == stamp and not done.is_set():  # the reload took the new stamp
            pass
        during.append(claims.withdrawn())

    concurrent = threading.Thread(target=call_during_the_read)
    concurrent.start()
    try:
        assert claims.withdrawn()  # this call reads the file again
    finally:
        done.set()
        concurrent.join()
    assert during == [True]


@contextlib.contextmanager
def no_file_descriptors() -> Iterator[None]:
    """Every descriptor this process may open is taken, as on a server at its limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 8, hard))
    held: list[int] = []
    try:
        while True:
            try:
                held.append(os.open(os.devnull, os.O_RDONLY))
            except OSError as exc:
                assert exc.errno == errno.EMFILE
                break
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_changed_jwks_file_that_could_not_be_opened_is_read_at_the_next_call(
    tmp_path: Path,
) -> None:
    """Out of file descriptors for a moment, the changed file was taken as tried: the key
    withdrawn from it stayed accepted until the file changed again or the 5-minute read.

    In a process of its own: while its descriptors are exhausted, any other thread of the
    test process (a server, a client pool) would meet EMFILE too.
    """
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from tests.unit.test_oidc import unopened; unopened({str(tmp_path)!r})",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "refused once read", run.stdout


def unopened(directory: str) -> None:
    """The scenario of the test above, in the child process it starts."""
    oidc.REFRESH_GAP = 3600.0
    caught: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: caught.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("aiaudit.common.oidc").addHandler(handler)
    signer = rsa_key()
    path = write_jwks(Path(directory) / "jwks.json", [jwk(signer, "k1")])
    keys = Jwks.from_file(path)
    keys.load()
    verifier = Verifier(ISSUER, AUDIENCE, keys)
    claims = verifier.verify(token(signer, "k1"))
    swap_jwks(path, json.dumps({"keys": [jwk(rsa_key(), "k2")]}))  # k1 withdrawn
    with no_file_descriptors():
        for _ in range(3):
            assert not claims.withdrawn()  # the keys last read stay in force meanwhile
    (warning,) = caught  # once, not at every call
    assert "Too many open files" in warning, warning
    assert claims.withdrawn()
    with pytest.raises(TokenError, match="no signing key 'k1' at the issuer"):
        verifier.verify(token(signer, "k1", sub="new"))
    print("refused once read")


def test_keys_of_algorithms_not_accepted_are_ignored_not_fatal(
    tmp_path: Path, signer: rsa.RSAPrivateKey
) -> None:
    """RFC 7517 (section 5): a JWK not understood is ignored. A provider's encryption key
    published without ``use``, or a key of a newer type (ML-DSA's ``AKP``), made the whole
    JWKS unreadable: ``serve`` refused to start, and a rotation beside such a key was never
    read, every token of the new key refused."""
    other = jwk(rsa_key(), "enc-1")
    del other["use"]
    other["alg"] = "RSA-OAEP"
    strangers = [
        other,
        {"kty": "AKP", "kid": "pq-1", "alg": "ML-DSA-44", "pub": "AAAA", "use": "sig"},
        {"kty": "oct", "kid": "sym-1", "k": "c2VjcmV0"},  # HMAC: never accepted
    ]
    path = write_jwks(tmp_path / "jwks.json", [*strangers, jwk(signer, "k1")])
    keys = Jwks.from_file(path)
    keys.load()  # ConfigError on the old code: "Unable to find an algorithm for key"
    verifier = Verifier(ISSUER, AUDIENCE, keys)
    assert verifier.verify(token(signer, "k1")).subject == "alice@example.test"
    # A rotation published beside them is read: the new key verifies at its first token.
    rotated = rsa_key()
    swap_jwks(path, json.dumps({"keys": [*strangers, jwk(signer, "k1"), jwk(rotated, "k2")]}))
    assert verifier.verify(token(rotated, "k2")).subject == "alice@example.test"
    for stranger in ("enc-1", "pq-1", "sym-1"):
        with pytest.raises(TokenError, match="no signing key"):
            keys.key(stranger)
