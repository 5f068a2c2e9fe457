"""TLS and mTLS on the wire: the server's certificate checked, client certificates required.

A test CA issues the server's certificate (for 127.0.0.1) and a gateway's;
the whole suite serves with ``tls_cert_file``/``tls_key_file`` and
``tls_client_ca_file``, as outside the embedded mode (the Helm chart's default).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aiaudit.common import client
from aiaudit.ingest.v1 import ingest_service_pb2 as pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as pb_grpc
from aiaudit.integrity.v1 import integrity_service_pb2 as ipb
from aiaudit.integrity.v1 import integrity_service_pb2_grpc as ipb_grpc
from aiaudit.sdk import AuditLogger
from aiaudit.search.v1 import search_service_pb2 as spb
from aiaudit.search.v1 import search_service_pb2_grpc as spb_grpc
from tests.conftest import serve_suite
from tests.helpers import interaction, wait_until


@dataclass(frozen=True)
class Pki:
    ca: Path
    server: tuple[Path, Path]
    gateway: tuple[Path, Path]


def _issue(
    directory: Path,
    name: str,
    usage: list[x509.ObjectIdentifier],
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    names: tuple[str, ...] = (),
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A key and certificate ``name``.pem/.key in ``directory``; ``names``: more DNS SANs."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.DNSName("localhost"),
                    *(x509.DNSName(n) for n in names),
                ]
            ),
            critical=False,
        )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (directory / f"{name}.key").chmod(0o600)  # a key other users may read is refused
    return cert, key


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = _issue(tmp_path, "ca", [], None)
    both = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    _issue(tmp_path, "server", both, ca)
    _issue(tmp_path, "gateway", [ExtendedKeyUsageOID.CLIENT_AUTH], ca)
    pair = lambda n: (tmp_path / f"{n}.pem", tmp_path / f"{n}.key")  # noqa: E731
    return Pki(tmp_path / "ca.pem", pair("server"), pair("gateway"))


@dataclass
class Served:
    address: str
    keys: dict[str, str]


@pytest.fixture
def mtls_suite(pki: Pki, tmp_path: Path) -> Iterator[Served]:
    suite, keys = serve_suite(
        tmp_path,
        data_dir=tmp_path / "data",
        tls_cert_file=pki.server[0],
        tls_key_file=pki.server[1],
        tls_client_ca_file=pki.ca,
    )
    yield Served(f"127.0.0.1:{suite.port}", keys)
    suite.stop()


def test_mtls_admits_a_client_with_a_certificate_and_no_other(
    mtls_suite: Served, pki: Pki, tenant: str
) -> None:
    key = mtls_suite.keys["gateway"]
    with client.channel(mtls_suite.address, key, pki.ca, identity=pki.gateway) as ch:
        (receipt,) = (
            pb_grpc.IngestServiceStub(ch)
            .Append(pb.AppendRequest(events=[interaction(tenant)]))
            .receipts
        )
        assert receipt.sequence == 0
    refused = [
        client.channel(mtls_suite.address, key, pki.ca),  # TLS, no client certificate
        client.channel(mtls_suite.address, key),  # plaintext
    ]
    for ch in refused:
        with ch, pytest.raises(grpc.RpcError) as err:
            pb_grpc.IngestServiceStub(ch).Append(
                pb.AppendRequest(events=[interaction(tenant)]), timeout=30
            )  # refused at the handshake: UNAVAILABLE at once, not at the deadline
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_gateway_sdk_logs_over_mtls(
    mtls_suite: Served, pki: Pki, tenant: str, tmp_path: Path
) -> None:
    logger = AuditLogger(
        mtls_suite.address,
        tmp_path / "spool",
        api_key=mtls_suite.keys["gateway"],
        ca_file=pki.ca,
        client_cert=pki.gateway,
    )
    try:
        ids = [logger.log(interaction(tenant, text=f"m{i}")) for i in range(5)]
        assert logger.flush(timeout=30)
    finally:
        logger.close()
    assert not list((tmp_path / "spool").glob("*.batch"))
    key = mtls_suite.keys["admin"]
    with client.channel(mtls_suite.address, key, pki.ca, identity=pki.gateway) as ch:
        search = spb_grpc.SearchServiceStub(ch)
        request = spb.SearchEventsRequest(tenant_id=tenant, filter="event_type = interaction")
        wait_until(lambda: search.SearchEvents(request).total_size == 5)
        found = {r.event.event_id for r in search.SearchEvents(request).results}
        assert found == set(ids)


def _search_verifies_an_event(
    served: Served, pki: Pki, identity: tuple[Path, Path], tenant: str
) -> None:
    """An event appended over mTLS comes back from search VERIFIED: search reached integrity."""
    with client.channel(served.address, served.keys["admin"], pki.ca, identity=identity) as ch:
        pb_grpc.IngestServiceStub(ch).Append(pb.AppendRequest(events=[interaction(tenant, "v")]))
        search = spb_grpc.SearchServiceStub(ch)
        request = spb.GetEventRequest(tenant_id=tenant, event_id="v")
        verified = ipb.VERIFY_STATUS_VERIFIED
        wait_until(lambda: search.GetEvent(request).integrity_status == verified)


def test_search_reaches_the_integrity_service_over_mtls(
    mtls_suite: Served, pki: Pki, tenant: str
) -> None:
    """Search calls IntegrityService at the suite's own address, presenting its certificate."""
    _search_verifies_an_event(mtls_suite, pki, pki.gateway, tenant)


def test_client_commands_speak_mtls(
    mtls_suite: Served, pki: Pki, tenant: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``aiaudit demo`` and ``aiaudit search`` with --ca-file, --client-cert and --client-key."""
    from aiaudit.cli.main import main

    tls = ["--address", mtls_suite.address, "--ca-file", str(pki.ca)]
    tls += ["--client-cert", str(pki.gateway[0]), "--client-key", str(pki.gateway[1])]
    assert main(["demo", *tls, f"--api-key={mtls_suite.keys['admin']}"]) == 0
    receipts = [line for line in capsys.readouterr().out.splitlines() if " seq=" in line]
    assert len(receipts) >= 5
    search = ["search", *tls, f"--api-key={mtls_suite.keys['admin']}", "--tenant", "demo"]
    wait_until(lambda: main([*search, "--filter", 'actor.user_id = "mallory"']) == 0)
    assert "mallory" in capsys.readouterr().out
    assert main(["search", "--address", mtls_suite.address, "--tenant", "demo"]) != 0  # no TLS


_CLIENT_COMMANDS = [
    ["demo"],
    ["search", "--tenant", "demo"],
    ["aggregate", "--tenant", "demo"],
    ["export", "--tenant", "demo"],
    ["integrity", "verifier-key"],
]


def test_client_commands_refuse_unusable_tls_options_naming_them(
    mtls_suite: Served, pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each client command checks its TLS options before it connects: exit 2, one line
    naming the option. Until 2026-12-07 a certificate without its key (or without --ca-file)
    ended in a traceback, and a CA file or pair gRPC could not use in ``UNAVAILABLE``
    ("Failed to create security handshaker"), as if the server were down."""
    from aiaudit.cli.main import main

    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cert, key = (str(p) for p in pki.gateway)
    ca = ["--ca-file", str(pki.ca)]
    cases = [
        ([*ca, "--client-cert", cert], "--client-cert without its pair"),
        ([*ca, "--client-key", key], "--client-key without its pair"),
        (["--client-cert", cert, "--client-key", key], "--client-cert needs --ca-file"),
        (["--ca-file", str(garbage)], f"setting '--ca-file': {garbage} is not a PEM"),
        (
            [*ca, "--client-cert", cert, "--client-key", str(pki.server[1])],
            "--client-cert/--client-key: ",
        ),
    ]
    address = ["--address", mtls_suite.address, f"--api-key={mtls_suite.keys['admin']}"]
    for command in _CLIENT_COMMANDS:
        for options, named in cases:
            assert main([*command, *address, *options]) == 2, (command, options)
            err = capsys.readouterr().err
            assert err.startswith(f"aiaudit: configuration error: {named}"), err
            assert err.count("\n") == 1, err


def _presented(address: str, pki: Pki) -> int:
    """Serial number of the certificate the server presents in a fresh TLS handshake."""
    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(*pki.gateway)
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def _install(source: Path, target: Path) -> None:
    """Replaces a file at once, as a Kubernetes Secret volume does."""
    staged = target.with_suffix(".staged")
    staged.write_bytes(source.read_bytes())
    os.replace(staged, target)


def test_a_renewed_certificate_is_served_without_a_restart(
    mtls_suite: Served, pki: Pki, tenant: str, tmp_path: Path
) -> None:
    """cert-manager renews the certificate in place before it expires; the running server
    presents the new one from the next handshake, and never a certificate without its key."""
    ca_cert = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    ca_key = serialization.load_pem_private_key((tmp_path / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    usage = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    first = x509.load_pem_x509_certificate(pki.server[0].read_bytes()).serial_number
    assert _presented(mtls_suite.address, pki) == first

    def append_over_a_new_channel(event_id: str) -> None:
        key = mtls_suite.keys["gateway"]
        with client.channel(mtls_suite.address, key, pki.ca, identity=pki.gateway) as ch:
            stub = pb_grpc.IngestServiceStub(ch)
            stub.Append(pb.AppendRequest(events=[interaction(tenant, event_id)]), timeout=10)

    renewed_dir = tmp_path / "renewed"
    renewed_dir.mkdir()
    renewed, _ = _issue(renewed_dir, "server", usage, (ca_cert, ca_key))
    _install(renewed_dir / "server.key", pki.server[1])
    _install(renewed_dir / "server.pem", pki.server[0])
    assert _presented(mtls_suite.address, pki) == renewed.serial_number
    append_over_a_new_channel("after-renewal")

    # Written one file at a time: between the two writes the certificate has no key.
    third_dir = tmp_path / "third"
    third_dir.mkdir()
    third, _ = _issue(third_dir, "server", usage, (ca_cert, ca_key))
    _install(third_dir / "server.pem", pki.server[0])
    assert _presented(mtls_suite.address, pki) == renewed.serial_number
    append_over_a_new_channel("between-writes")
    _install(third_dir / "server.key", pki.server[1])
    assert _presented(mtls_suite.address, pki) == third.serial_number
    append_over_a_new_channel("after-both")


def test_a_client_ca_added_to_the_bundle_is_trusted_without_a_restart(
    mtls_suite: Served, pki: Pki, tenant: str, tmp_path: Path
) -> None:
    """CA rotation: the new CA joins the bundle, and its clients get in at once."""
    other = tmp_path / "other"
    other.mkdir()
    new_ca = _issue(other, "next-ca", [], None)
    _issue(other, "gateway", [ExtendedKeyUsageOID.CLIENT_AUTH], new_ca)
    identity = (other / "gateway.pem", other / "gateway.key")
    key = mtls_suite.keys["gateway"]
    request = pb.AppendRequest(events=[interaction(tenant)])
    with client.channel(mtls_suite.address, key, pki.ca, identity=identity) as ch:
        with pytest.raises(grpc.RpcError) as err:
            pb_grpc.IngestServiceStub(ch).Append(request, timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pki.ca.read_bytes() + (other / "next-ca.pem").read_bytes())
    _install(bundle, pki.ca)
    with client.channel(mtls_suite.address, key, pki.ca, identity=identity) as ch:
        (receipt,) = pb_grpc.IngestServiceStub(ch).Append(request, timeout=10).receipts
    assert receipt.sequence == 0


def test_a_certificate_without_its_key_stops_the_server_at_start(pki: Pki) -> None:
    from aiaudit.common.tls import ServerCertificates, TlsFilesError

    with pytest.raises(TlsFilesError, match="not a pair"):
        ServerCertificates(pki.server[0], pki.gateway[1], pki.ca)


@pytest.mark.parametrize("given", ["tls_cert_file", "tls_key_file"])
def test_the_server_refuses_a_certificate_or_key_alone_whatever_built_its_settings(
    pki: Pki, tmp_path: Path, given: str
) -> None:
    """``_certificates`` took one file without the other for "no TLS" and served plaintext;
    only the loader's pair check stood in the way, and it was lost once (review,
    2026-12-05). Settings built directly, past ``config.load``, are refused by the server."""
    from aiaudit.cli.server import start
    from aiaudit.common.config import ConfigError, Settings

    files = {"tls_cert_file": pki.server[0], "tls_key_file": pki.server[1]}
    settings = Settings(address="127.0.0.1:0", data_dir=tmp_path / "data", **{given: files[given]})
    try:
        suite = start(settings)
    except ConfigError as exc:
        assert "'tls_cert_file' and 'tls_key_file' must be set together" in str(exc)
        assert f"{given} is set" in str(exc)
    else:
        suite.stop(0)
        pytest.fail(f"served with {given} alone (plaintext)")
    assert not (tmp_path / "data").exists()  # refused before the store was opened


def test_search_follows_a_ca_rotation_to_the_integrity_service(
    mtls_suite: Served, pki: Pki, tenant: str, tmp_path: Path
) -> None:
    """The whole PKI replaced in place (a new CA, the server's certificate from it): search's
    own client to the integrity service presents the new certificate and trusts the new CA."""
    rotated = tmp_path / "rotated"
    rotated.mkdir()
    new_ca = _issue(rotated, "next-ca", [], None)
    usage = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    _issue(rotated, "server", usage, new_ca)
    _issue(rotated, "gateway", [ExtendedKeyUsageOID.CLIENT_AUTH], new_ca)
    _install(rotated / "server.key", pki.server[1])
    _install(rotated / "server.pem", pki.server[0])
    _install(rotated / "next-ca.pem", pki.ca)
    identity = (rotated / "gateway.pem", rotated / "gateway.key")
    _search_verifies_an_event(mtls_suite, pki, identity, tenant)


def test_a_channel_replaced_by_renewed_files_stays_open_for_its_calls(
    mtls_suite: Served, pki: Pki, tmp_path: Path
) -> None:
    """Files written one at a time make two channels milliseconds apart; the first was closed
    at the second, cancelling the calls still running on it."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    key = mtls_suite.keys["gateway"]  # health on the main port needs one (credential gate)
    renewing = client.RenewingChannel(mtls_suite.address, key, pki.ca, pki.gateway)
    first = renewing.current()
    ca = x509.load_pem_x509_certificate(pki.ca.read_bytes())
    ca_key = serialization.load_pem_private_key((tmp_path / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    seen = [first]
    for step in ("one", "two"):
        (tmp_path / step).mkdir()
        _issue(tmp_path / step, "gateway", [ExtendedKeyUsageOID.CLIENT_AUTH], (ca, ca_key))
        _install(tmp_path / step / "gateway.key", pki.gateway[1])
        _install(tmp_path / step / "gateway.pem", pki.gateway[0])
        seen.append(renewing.current())
    assert len({id(ch) for ch in seen}) == 3  # a new channel at each renewal
    try:
        for ch in seen:  # the replaced ones still carry calls
            reply = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        renewing.close()


@pytest.mark.parametrize("content", [b"", b"not a certificate\n", b"-----BEGIN CERTIFICATE-----\n"])
def test_a_client_ca_file_that_is_no_certificate_stops_the_server_at_start(
    pki: Pki, tmp_path: Path, content: bytes
) -> None:
    """gRPC took any bytes as the CA bundle and then could not open the port: the server said
    "cannot bind ... (in use, or not an address of this host)" (review, 2026-12-05)."""
    from aiaudit.common.config import ConfigError

    client_ca = tmp_path / "client-ca.pem"
    client_ca.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        suite, _ = serve_suite(
            tmp_path,
            data_dir=tmp_path / "data",
            tls_cert_file=pki.server[0],
            tls_key_file=pki.server[1],
            tls_client_ca_file=client_ca,
        )
        suite.stop()
    message = str(err.value)
    assert "setting 'tls_client_ca_file'" in message and str(client_ca) in message
    assert "bind" not in message


def test_a_renewed_client_ca_file_that_is_no_certificate_is_not_taken(
    pki: Pki, tenant: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A client CA file renewed as an empty file (or garbage) was served: from then on every
    client certificate failed the handshake. Now the previous bundle keeps serving, the
    refusal is logged, and the next good bundle is taken."""
    client_ca = tmp_path / "client-ca.pem"
    client_ca.write_bytes(pki.ca.read_bytes())
    suite, keys = serve_suite(
        tmp_path,
        data_dir=tmp_path / "data",
        tls_cert_file=pki.server[0],
        tls_key_file=pki.server[1],
        tls_client_ca_file=client_ca,
    )
    address = f"127.0.0.1:{suite.port}"
    other = tmp_path / "other"
    other.mkdir()
    other_ca = _issue(other, "other-ca", [], None)
    _issue(other, "intruder", [ExtendedKeyUsageOID.CLIENT_AUTH], other_ca)
    intruder = (other / "intruder.pem", other / "intruder.key")

    def append(identity: tuple[Path, Path] | None) -> grpc.StatusCode:
        with client.channel(address, keys["gateway"], pki.ca, identity=identity) as ch:
            try:
                pb_grpc.IngestServiceStub(ch).Append(
                    pb.AppendRequest(events=[interaction(tenant)]), timeout=10
                )
            except grpc.RpcError as err:
                return err.code()
            return grpc.StatusCode.OK

    try:
        assert append(pki.gateway) == grpc.StatusCode.OK
        for n, content in enumerate([b"", b"garbage\n", b"-----BEGIN CERTIFICATE-----\nAA\n"]):
            bad = tmp_path / f"bad-{n}.pem"
            bad.write_bytes(content)
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="aiaudit.common.tls"):
                _install(bad, client_ca)
                assert append(pki.gateway) == grpc.StatusCode.OK, content
            assert append(intruder) == grpc.StatusCode.UNAVAILABLE
            assert append(None) == grpc.StatusCode.UNAVAILABLE
            refusals = [r.getMessage() for r in caplog.records if "previous" in r.getMessage()]
            assert refusals, content
            assert "setting 'tls_client_ca_file'" in refusals[0]
            assert str(client_ca) in refusals[0]
        # A good bundle is taken again at once: here one that also trusts the other CA.
        bundle = tmp_path / "bundle.pem"
        bundle.write_bytes(pki.ca.read_bytes() + (other / "other-ca.pem").read_bytes())
        _install(bundle, client_ca)
        assert append(intruder) == grpc.StatusCode.OK
        assert append(pki.gateway) == grpc.StatusCode.OK
    finally:
        suite.stop()


SEARCH_NAMES = ("audit-aiaudit-search", "audit-aiaudit-search.audit.svc")
"""DNS SANs of search's own certificate, as the chart's ``integrity.client_names`` lists them."""


def test_integrity_serves_only_the_client_certificates_its_names_admit(
    pki: Pki, tmp_path: Path, tenant: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Under mTLS the handshake admits every certificate the CA signed, so any component's
    could call integrity (README, known gap). With ``integrity.client_names`` only a
    certificate naming one of them is served; another of the same CA, with ``client auth``,
    is answered PERMISSION_DENIED naming its names, credentials or not, before any handler.
    The other services of the process, and health, are not integrity's to restrict."""
    ca_key = serialization.load_pem_private_key((tmp_path / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca = (x509.load_pem_x509_certificate(pki.ca.read_bytes()), ca_key)
    client_auth = [ExtendedKeyUsageOID.CLIENT_AUTH]  # each could call any server of the CA
    _issue(tmp_path, "search", client_auth, ca, ("AUDIT-aiaudit-search.audit.svc",))
    _issue(tmp_path, "alerting", client_auth, ca, ("audit-aiaudit-alerting",))
    config_file = tmp_path / "config.yaml"
    config_file.write_text(f"integrity: {{client_names: {list(SEARCH_NAMES)}}}\n")
    suite, keys = serve_suite(
        tmp_path,
        config_file,
        data_dir=tmp_path / "data",
        services=("ingest", "integrity"),
        tls_cert_file=pki.server[0],
        tls_key_file=pki.server[1],
        tls_client_ca_file=pki.ca,
    )
    address = f"127.0.0.1:{suite.port}"
    search = (tmp_path / "search.pem", tmp_path / "search.key")
    alerting = (tmp_path / "alerting.pem", tmp_path / "alerting.key")
    request = ipb.GetCheckpointRequest(log_id=tenant)
    try:
        with client.channel(address, keys["admin"], pki.ca, identity=search) as ch:
            with pytest.raises(grpc.RpcError) as none_yet:  # answered by the handler
                ipb_grpc.IntegrityServiceStub(ch).GetCheckpoint(request, timeout=10)
            assert none_yet.value.code() == grpc.StatusCode.NOT_FOUND  # no log yet
        for identity, key, named in (
            (alerting, keys["admin"], "(127.0.0.1, localhost, audit-aiaudit-alerting)"),
            (alerting, None, "(127.0.0.1, localhost, audit-aiaudit-alerting)"),  # before the key
            (pki.gateway, keys["admin"], "(127.0.0.1, localhost)"),
        ):
            ch = client.channel(address, key, pki.ca, identity=identity)
            with ch, pytest.raises(grpc.RpcError) as refused:
                ipb_grpc.IntegrityServiceStub(ch).GetCheckpoint(request, timeout=10)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert named in refused.value.details()
            assert "'integrity.client_names'" in refused.value.details()
        assert "client certificate refused" in caplog.text
        with client.channel(address, keys["gateway"], pki.ca, identity=alerting) as ch:
            health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            append = pb_grpc.IngestServiceStub(ch).Append(
                pb.AppendRequest(events=[interaction(tenant)])
            )
            assert len(append.receipts) == 1
    finally:
        suite.stop()


def test_client_names_without_client_certificates_stop_the_server_at_start(
    pki: Pki, tmp_path: Path
) -> None:
    """Names no caller is asked to prove (no ``tls_client_ca_file``) would refuse every call
    to integrity, or admit every one: ``serve`` stops at start, naming the setting."""
    from aiaudit.common.config import ConfigError

    config_file = tmp_path / "config.yaml"
    config_file.write_text(f"integrity: {{client_names: {list(SEARCH_NAMES)}}}\n")
    for tls in ({}, {"tls_cert_file": pki.server[0], "tls_key_file": pki.server[1]}):
        with pytest.raises(ConfigError, match=r"'integrity.client_names'.*tls_client_ca_file"):
            serve_suite(tmp_path, config_file, services=("integrity",), **tls)
