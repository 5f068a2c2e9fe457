"""The TLS of the syslog sink's ``tls://`` addresses (RFC 5425): whom it trusts, what it presents.

The context is built again for each attempt (about 30 ms, next to a handshake's
round trips), so a renewed CA bundle or client certificate is used from the next
attempt on, without a restart; start-up builds one too, so a file that cannot
work is refused there, naming its setting.
"""

from __future__ import annotations

import datetime as dt
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

SETTINGS = ("syslog_ca_file", "syslog_client_cert_file", "syslog_client_key_file")
"""The ``alerting.`` settings of the syslog sink's TLS, as :class:`SyslogTls` names its fields."""


class SyslogTlsError(ValueError):
    """A file of the syslog sink's TLS that cannot be used; ``setting`` names it."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"setting alerting.{setting}: {message}")
        self.setting = setting


def _encrypted() -> bytes:
    """The key's password callback: without one, OpenSSL asks for it on the terminal."""
    raise ValueError("the key is encrypted; give an unencrypted PEM key")


def _reason(exc: Exception) -> str:
    return exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)


@dataclass(frozen=True)
class SyslogTls:
    """The files of a ``tls://`` syslog sink; unset, the system's CAs and no client certificate.

    The system's CAs are OpenSSL's defaults, which ``SSL_CERT_FILE`` replaces (as for the
    webhook's ``https://`` receivers).
    """

    syslog_ca_file: Path | None = None
    """PEM bundle of the CAs the receiver's certificate must chain to."""
    syslog_client_cert_file: Path | None = None
    """PEM certificate (chain) presented to a receiver that asks for one (mutual TLS)."""
    syslog_client_key_file: Path | None = None
    """Its unencrypted PEM private key."""

    def check_pair(self) -> None:
        """Raises SyslogTlsError unless the client certificate and key are both set or neither."""
        cert, key = self.syslog_client_cert_file, self.syslog_client_key_file
        if (cert is None) != (key is None):
            missing, given = SETTINGS[1:] if cert is None else reversed(SETTINGS[1:])
            raise SyslogTlsError(missing, f"required with {given} (give both or neither)")

    def context(self) -> ssl.SSLContext:
        """A client context: TLS 1.2 at least, the receiver's certificate and host name checked."""
        self.check_pair()
        ca = self.syslog_ca_file
        if ca is not None and not ca.is_file():  # a FIFO would hold the read, and the attempt
            raise SyslogTlsError(SETTINGS[0], f"{ca} is not a readable file")
        try:
            ctx = ssl.create_default_context(cafile=None if ca is None else str(ca))
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise SyslogTlsError(
                SETTINGS[0], f"{ca} is not a readable PEM CA bundle ({_reason(exc)})"
            ) from None
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        cert, key = self.syslog_client_cert_file, self.syslog_client_key_file
        if cert is not None and key is not None:
            for setting, path in zip(SETTINGS[1:], (cert, key), strict=True):
                if not path.is_file():
                    raise SyslogTlsError(setting, f"{path} is not a readable file")
            try:
                ctx.load_cert_chain(cert, key, password=_encrypted)
            except (OSError, ValueError) as exc:
                raise SyslogTlsError(
                    f"{SETTINGS[1]}/{SETTINGS[2]}",
                    f"{cert} and {key} are not a usable certificate and key ({_reason(exc)})",
                ) from None
        return ctx

    def attempt_context(self) -> ssl.SSLContext:
        """:meth:`context`, refused outside the client certificate's validity period.

        A receiver refuses such a certificate, and rsyslog's gtls driver does it with a
        bare close after the handshake, which the sink cannot tell from a delivery: the
        attempt fails here instead, naming the date. Start-up takes the certificate (a
        restart after it expired would stop all of alerting, not the syslog sink alone).
        """
        ctx = self.context()
        if (path := self.syslog_client_cert_file) is None:
            return ctx
        try:
            cert = x509.load_pem_x509_certificate(path.read_bytes())
        except (OSError, ValueError) as exc:  # replaced since context() read it
            raise SyslogTlsError(SETTINGS[1], f"{path}: {_reason(exc)}") from None
        now = dt.datetime.now(dt.UTC)
        if now > cert.not_valid_after_utc:
            when = f"expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        elif now < cert.not_valid_before_utc:
            when = f"is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        else:
            return ctx
        raise SyslogTlsError(SETTINGS[1], f"{path} {when}; a receiver would refuse it")


SYSTEM_CAS = SyslogTls()
"""The default: the system's CAs, no client certificate."""
