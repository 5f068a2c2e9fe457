"""The `aiaudit` command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import grpc
from sqlalchemy import exc as sa_exc

from aiaudit.alerting import cli as alerting_cli
from aiaudit.common import client, config, logs
from aiaudit.common.keys.kek import KekError
from aiaudit.common.keys.seal import SealError
from aiaudit.integrity import cli as integrity_cli
from aiaudit.search import cli as search_cli


def _common(parser: argparse.ArgumentParser) -> None:
    """The options of every command that reads the settings."""
    parser.add_argument(
        "--data-dir", type=Path, help="directory of the embedded store (default ./data)"
    )
    parser.add_argument("--config", type=Path, help="YAML config file (keys: see README)")


def _client(parser: argparse.ArgumentParser) -> None:
    """The options of a client command, one that calls the running server.

    Only theirs: every command took them until 2026-12-07, and ``db``, ``erase``,
    ``verify``, ``content-keys`` and ``alerting redeliver`` ignored them, so
    ``verify --address HOST`` seemed to verify that server's store.
    """
    parser.add_argument("--address", help="HOST:PORT of the server (default 127.0.0.1:50051)")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("AIAUDIT_API_KEY"),
        help="API key sent to the server (default: $AIAUDIT_API_KEY)",
    )
    parser.add_argument("--ca-file", type=Path, help="the server's CA (TLS; needed off loopback)")
    parser.add_argument("--client-cert", type=Path, help="certificate (mTLS)")
    parser.add_argument("--client-key", type=Path, help="its key (mTLS)")


def _settings(args: argparse.Namespace) -> config.Settings:
    """Flags over environment over file; a refused ``--database-url`` is named as the flag."""
    overrides = {
        "address": getattr(args, "address", None),  # serve's and the client commands'
        "data_dir": args.data_dir,
        "services": getattr(args, "services", None),
        "workers": getattr(args, "workers", None),
    }
    flags = {}
    if getattr(args, "database_url", None):
        overrides["database_url"] = args.database_url
        flags["database_url"] = "--database-url"
    return config.load(args.config, overrides=overrides, flags=flags)


def _serve(args: argparse.Namespace) -> int:
    from aiaudit.cli.server import start

    settings = _settings(args)
    logs.configure(settings.log_level)
    helpers = _start_workers(settings, sys.argv[1:]) if settings.workers > 1 else []
    suite = start(settings, shared_port=settings.workers > 1 or args.shared_port)
    _wait_for_stop_signal(f"{settings.address.rpartition(':')[0]}:{suite.port}")
    for proc in helpers:
        proc.terminate()
    suite.stop(settings.shutdown_grace_seconds)
    for proc in helpers:
        proc.wait()
    return 0


def _wait_for_stop_signal(address: str) -> None:
    """Announces the address, then returns once SIGINT or SIGTERM arrives.

    The kernel may hand the signal to any thread (gRPC's, a worker's). Its
    handler only runs when this thread next runs Python, so this thread
    sleeps on the wake-up pipe that the signal writes to, whichever thread
    takes it. The handler takes no lock: an ``Event.set`` there deadlocked
    when the signal interrupted this thread inside the same event's wait.
    """
    received: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: received.append(signum))
    wake, woken = os.pipe()
    os.set_blocking(woken, False)
    signal.set_wakeup_fd(woken)
    print(f"aiaudit serving on {address}", flush=True)
    while not received:
        select.select([wake], [], [])
        os.read(wake, 64)


def _port_is_free(address: str) -> None:
    """Raises OSError if another process serves ``address``.

    The workers bind with SO_REUSEPORT, which would let them join another
    server's port (and split its connections with another store); a plain bind
    first finds the port taken.
    """
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, int(port)))
        except OSError as exc:
            raise OSError(f"cannot bind {address}: {exc.strerror or exc}") from None


def _start_workers(settings: config.Settings, argv: list[str]) -> list[subprocess.Popen[bytes]]:
    """Extra ingest processes on the same port (SO_REUSEPORT): Python ingest is CPU-bound."""
    _port_is_free(settings.address)
    procs: list[subprocess.Popen[bytes]] = []
    for _ in range(settings.workers - 1):
        proc = subprocess.Popen(
            [sys.executable, "-m", "aiaudit.cli.main", *argv, "--workers", "1", "--shared-port"],
            stdout=subprocess.PIPE,
        )
        procs.append(proc)
        assert proc.stdout is not None
        if b"serving on" not in proc.stdout.readline():
            for started in procs:  # none left serving half a suite
                started.terminate()
                started.wait()
            raise OSError("an ingest worker process did not start; see its log")
    return procs


def _demo(args: argparse.Namespace) -> int:
    from aiaudit.cli.demo import run

    settings = _settings(args)
    config.client_tls(settings, args.ca_file)
    channel = client.for_command(
        settings.address, args.api_key, args.ca_file, args.client_cert, args.client_key
    )
    return run(channel)


def _rules(args: argparse.Namespace) -> int:
    from aiaudit.alerting import cli as rules_cli

    if args.rules_command == "check":
        return rules_cli.check(args.rules_file)
    return rules_cli.test(args.rules_file, args.events_file)


_ADMIN_ROLE = (
    "the role lacks the rights: run it as the database's administrator, the role `aiaudit db "
    "migrate` runs as (one that may create tables and roles, owner of the schema's tables)"
)


def _lacks_rights(exc: sa_exc.ProgrammingError) -> bool:
    """Whether PostgreSQL refused the statement for the role's rights (not a missing table)."""
    import psycopg

    return isinstance(exc.orig, psycopg.errors.InsufficientPrivilege)


def _migrate(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from aiaudit.common.store import open_store

    settings = _settings(args)
    shown = sa.make_url(settings.store_url).render_as_string(hide_password=True)
    try:
        store = open_store(settings.store_url, run_migrations=True)
    except sa_exc.ProgrammingError as exc:
        if not _lacks_rights(exc):
            raise
        # A traceback until 2026-12-06 (review): the refusal, and which role to use instead.
        print(f"aiaudit db migrate: {shown}: {exc.orig}; {_ADMIN_ROLE}", file=sys.stderr)
        return 1
    store.close()
    print(f"schema is current: {shown}")
    return 0


def _partitions(args: argparse.Namespace) -> int:
    from aiaudit.common.store import open_store
    from aiaudit.common.store.migrate import top_up_partitions

    settings = _settings(args)
    store = open_store(settings.store_url, keys=None)
    try:
        shown = store.engine.url.render_as_string(hide_password=True)
        if store.engine.dialect.name != "postgresql":
            print(f"nothing to do: a SQLite store has no partitions ({shown})")
            return 0
        try:
            top_up_partitions(store.engine)
        except sa_exc.ProgrammingError as exc:
            # A role without the rights (CREATE on the schema, owner of the tables) is not
            # a schema to make: `db migrate` as that role fails the same way (review).
            advice = (
                _ADMIN_ROLE
                if _lacks_rights(exc)
                else "run `aiaudit db migrate` first"  # no tables: the schema was never made
            )
            print(f"aiaudit db partitions: {shown}: {exc.orig}; {advice}", file=sys.stderr)
            return 1
    finally:
        store.close()
    print(f"partitions are twelve months ahead: {shown}")
    return 0


_REINDEX_ROLE = (
    "run it as the privacy login (a member of aiaudit_privacy, as `aiaudit erase`) or the "
    "database's administrator: only they may add to erasure_names"
)


def _reindex_erasures(args: argparse.Namespace) -> int:
    from aiaudit.common.store import open_store
    from aiaudit.integrity.reindex import UnknownLogError, reindex_erasures

    settings = _settings(args)
    store = open_store(settings.store_url, keys=None)
    shown = store.engine.url.render_as_string(hide_password=True)
    try:
        done = reindex_erasures(store.engine, args.log)
    except UnknownLogError as exc:
        for log_id in exc.args[0]:
            print(f"aiaudit db reindex-erasures: --log {log_id!r}: no such log", file=sys.stderr)
        print("aiaudit db reindex-erasures: nothing was written", file=sys.stderr)
        return 2
    except sa_exc.ProgrammingError as exc:
        advice = _REINDEX_ROLE if _lacks_rights(exc) else "run `aiaudit db migrate` first"
        print(f"aiaudit db reindex-erasures: {shown}: {exc.orig}; {advice}", file=sys.stderr)
        return 1
    finally:
        store.close()
    for log in done:
        print(
            f"log {log.log_id}: {log.written} row(s) of erasure_names written "
            f"({log.records} intact record(s) read)"
        )
    return 0


def _erase(args: argparse.Namespace) -> int:
    from aiaudit.common.access import AccessLog
    from aiaudit.common.auth import Caller
    from aiaudit.common.erasure import LISTED_IDS, erase
    from aiaudit.common.keys import configured
    from aiaudit.common.store import open_store
    from aiaudit.common.store.sql import NothingToEraseError

    if refused := _erase_usage(args):  # as EraseEvents refuses them: nothing written
        for problem in refused:
            print(f"aiaudit erase: {problem}", file=sys.stderr)
        print("aiaudit erase: nothing was erased or recorded", file=sys.stderr)
        return 2
    settings = _settings(args)
    store = open_store(settings.store_url, keys=configured.keyring(settings))
    try:
        done = erase(
            store,
            args.tenant,
            reason=args.reason,
            requested_by=args.requested_by,
            event_ids=args.event_id,
            subject_id=args.subject or "",
        )
    except NothingToEraseError as exc:
        # That the subject has no events is a read, recorded as EraseEvents records it.
        details = {"subject_id": args.subject or "", "reason": args.reason}
        caller = Caller(args.requested_by, frozenset({args.tenant}), frozenset())
        try:
            AccessLog(store).record(caller, args.tenant, "erasure.nothing_to_erase", details)
        except Exception as failed:  # unrecorded, the answer is not given
            print(f"aiaudit erase: the answer could not be recorded ({failed})", file=sys.stderr)
            return 1
        print(f"aiaudit erase: {exc} (recorded)", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"aiaudit erase: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    most = LISTED_IDS  # every id of a heavy subject made tens of MB: the records hold them
    print(
        json.dumps(
            {
                "record": done.record_id,
                "records": done.record_ids,
                "erased_count": len(done.erased),
                "named_count": len(done.named),
                "erased": done.erased[:most],
                "named": done.named[:most],
                "truncated": len(done.named) > most,
            }
        )
    )
    if len(done.named) > most:
        print(
            f"aiaudit erase: {len(done.erased)} erased, {len(done.named)} named; the lists "
            f"hold the first {most}, every id is in privacy_action.event_ids of the events "
            "listed as records",
            file=sys.stderr,
        )
    return 0


def _erase_usage(args: argparse.Namespace) -> list[str]:
    """What of the command line EraseEvents would refuse (INVALID_ARGUMENT), in its flags.

    Checked before the store is opened. A command naming neither a subject nor an id
    was taken as a subject without events, and recorded as that read; an id no event
    can have was named in an erasure record (review, 2026-12-06).
    """
    from aiaudit.common import event_ids, tenants

    out = []
    if not tenants.valid(args.tenant):
        out.append(f"--tenant {args.tenant!r}: not a tenant id ({tenants.RULE})")
    if not args.event_id and not args.subject:
        out.append(
            "name the events to erase: --subject USER_ID, --event-id ID (once per id), or both"
        )
    out += [
        f"--event-id {event_id!r}: not an event id ({event_ids.RULE})"
        for event_id in args.event_id
        if not event_ids.valid(event_id)
    ]
    if not args.reason.strip():
        out.append("--reason: required, the legal basis or reason (recorded in the log)")
    if not args.requested_by.strip():
        unset = "" if os.environ.get("USER", "").strip() else " ($USER is not set)"
        out.append(f"--requested-by: required, who asked for the erasure{unset}")
    return out


def _bootstrap_content_key(args: argparse.Namespace) -> int:
    """Makes the Transit content key and its policy exist (idempotent)."""
    from aiaudit.common.keys import transit, vault_admin

    settings = _settings(args)
    addr, admin = vault_admin.admin_client(
        "content-keys bootstrap-vault",
        args.vault_addr,
        settings.content_vault_addr,
        "content_vault_addr",
        settings.allow_insecure,  # the admin token goes there
    )
    target = transit.ContentKeySettings(
        mount=args.mount or settings.content_vault_mount,
        key=args.key or settings.content_vault_key,
        policy_name=args.policy,
    )
    try:
        steps = transit.bootstrap_content_key(admin, target)
    except vault_admin.FAILURES as exc:
        print(
            f"aiaudit content-keys bootstrap-vault: {vault_admin.unavailable(addr, exc)}",
            file=sys.stderr,
        )
        return 1
    for step in steps:
        print(step)
    print(f"\npolicy {target.policy_name!r} (give every service a token with it):")
    print(transit.content_policy(target.mount, target.key))
    print(f"policy {target.rewrap_policy_name!r} (for `aiaudit content-keys rewrap` only):")
    print(transit.rewrap_policy(target.mount, target.key))
    return 0


def _rewrap_content_keys(args: argparse.Namespace) -> int:
    """Rewraps the stored data keys under the Transit key's latest version (after a rotation)."""
    import hvac

    from aiaudit.common.keys import keyring, rewrap, transit
    from aiaudit.common.store import open_store

    settings = _settings(args)
    if settings.content_keys != "vault":
        raise config.ConfigError(
            f"setting 'content_keys' is {settings.content_keys or 'unset'!r}, not 'vault': "
            "content-keys rewrap moves data keys to a Transit KEK's latest version"
        )
    mount, key = settings.content_vault_mount, settings.content_vault_key
    token = os.environ.get("VAULT_TOKEN", "")
    if not token:
        raise config.ConfigError(
            f"content-keys rewrap needs VAULT_TOKEN: a token with `update` on {mount}/rewrap/"
            f"{key} (policy '<policy>-rewrap', which content-keys bootstrap-vault writes)"
        )
    addr = args.vault_addr or settings.content_vault_addr
    given = "--vault-addr" if args.vault_addr else "content_vault_addr"
    config.require_secure_url(addr, given, settings.allow_insecure)  # the token goes there
    if not 1 <= args.page_size <= rewrap.MAX_PAGE_SIZE:
        raise config.ConfigError(
            f"--page-size {args.page_size}: from 1 to {rewrap.MAX_PAGE_SIZE} (a page is one "
            "transaction, held in memory)"
        )
    client = hvac.Client(url=addr, token=token, timeout=settings.content_vault_timeout)
    kek = transit.TransitKek(client, mount, key)
    store = open_store(settings.store_url, keys=None)
    shown = store.engine.url.render_as_string(hide_password=True)
    report = rewrap.RewrapReport()
    try:
        rewrap.rewrap_keys(store.engine, kek, report, args.page_size)
    except (KekError, sa_exc.ProgrammingError, rewrap.WritersBusyError) as exc:
        if isinstance(exc, sa_exc.ProgrammingError):
            advice = _ADMIN_ROLE if _lacks_rights(exc) else "run `aiaudit db migrate` first"
            problem = f"{shown}: {exc.orig}; {advice}"
        elif isinstance(exc, rewrap.WritersBusyError):
            problem = f"{shown}: {exc}"
        else:
            problem = f"Vault at {addr}: {exc}"
        print(
            f"aiaudit content-keys rewrap: {problem}; {report.rewrapped} key(s) were rewrapped "
            "before it (committed, and readable); nothing else was written: run it again",
            file=sys.stderr,
        )
        return 1
    finally:
        store.close()
    print(
        json.dumps(
            {
                "kek": kek.name,
                "version": report.version,
                "rewrapped": report.rewrapped,
                "current": report.current,
                "changed": report.changed,
                "damaged": report.damaged,
                "damaged_key_ids": report.damaged_ids,
                "behind": report.behind,
            }
        )
    )
    code = 0
    if report.behind:
        print(
            f"aiaudit content-keys rewrap: {report.behind} data key(s) of {kek.name} are still "
            f"under a version older than {report.version} (stored during this run): run it "
            'again; retire no version before a run reports "behind": 0',
            file=sys.stderr,
        )
        code = 1
    if report.damaged:
        print(
            f"aiaudit content-keys rewrap: {report.damaged} data key(s) of {kek.name} did not "
            "rewrap (altered, or wrapped under a version already retired); their subjects' "
            "content does not open, `aiaudit verify` names the events. Do not trim the key's "
            "versions before looking: a key under a retired version opens again if "
            "min_decryption_version is lowered, not once trimmed",
            file=sys.stderr,
        )
        code = 1
    if report.version is not None and not code:
        print(
            f"aiaudit content-keys rewrap: every data key of {kek.name} is under version "
            f"{report.version}. Services store keys they wrapped ahead up to "
            f"{keyring.SPARE_SECONDS:g} s after wrapping them: retire older versions only "
            f"after a run that started at least {keyring.SPARE_SECONDS:g} s after the rotation "
            "(run it again then if this one did not)",
            file=sys.stderr,
        )
    return code


class _VersionAskedError(Exception):
    """``--version`` was given: the parse ends there, no subcommand needed."""


class _Version(argparse.Action):
    """``--version``: :func:`main` prints it as a command's output (see :func:`_version`).

    argparse's own ``version`` action printed it and exited 0 even when the write
    failed (it drops an OSError): ``aiaudit --version > /dev/full`` wrote nothing
    and succeeded, and a reader gone was not exit 1 as for every other command
    (review, 2026-12-07). It also looked the version up at every command's parse.
    """

    def __init__(self, option_strings: list[str], dest: str, help: str | None = None) -> None:
        super().__init__(
            option_strings, argparse.SUPPRESS, nargs=0, default=argparse.SUPPRESS, help=help
        )

    def __call__(self, *_: object) -> None:
        raise _VersionAskedError


def _version(_: argparse.Namespace) -> int:
    """Prints ``aiaudit X.Y.Z``: the installed distribution's version (pyproject.toml's).

    The services report none of their own. Flushed here, so that a failed write is
    the command's error (one line, exit 1) or a reader gone (exit 1, quietly).
    """
    print(f"aiaudit {metadata.version('aiaudit')}")
    sys.stdout.flush()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="aiaudit", description="Tamper-evident audit log for AI interactions."
    )
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="host every implemented service on one port")
    _common(serve)
    serve.add_argument("--address", help="HOST:PORT to serve on (default 127.0.0.1:50051)")
    serve.add_argument(
        "--services", help="comma-separated services to host (default: every implemented one)"
    )
    serve.add_argument(
        "--workers", type=int, help="processes serving the port (only with --services ingest)"
    )
    # Set on the extra processes --workers starts: they share the first one's port.
    serve.add_argument("--shared-port", action="store_true", help=argparse.SUPPRESS)
    serve.set_defaults(func=_serve)
    demo = sub.add_parser("demo", help="send sample interactions and print their receipts")
    _common(demo)
    _client(demo)
    demo.set_defaults(func=_demo)
    rules = sub.add_parser("rules", help="validate and try alert rules offline")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True)
    rules_check = rules_sub.add_parser(
        "check", help="validate a rule file (errors name line and field)"
    )
    rules_check.add_argument("rules_file", type=Path, metavar="RULES.yaml")
    rules_check.set_defaults(func=_rules)
    rules_test = rules_sub.add_parser("test", help="print which rules fire on each event")
    rules_test.add_argument("rules_file", type=Path, metavar="RULES.yaml")
    rules_test.add_argument("events_file", type=Path, metavar="EVENTS.jsonl")
    rules_test.set_defaults(func=_rules)
    db = sub.add_parser("db", help="database administration")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    migrate = db_sub.add_parser(
        "migrate", help="create or upgrade the schema, roles and partitions"
    )
    _common(migrate)
    migrate.add_argument("--database-url", help="admin URL (postgresql+psycopg://...)")
    migrate.set_defaults(func=_migrate)
    partitions = db_sub.add_parser(
        "partitions",
        help="create the monthly partitions twelve months ahead, schema untouched (a schedule's)",
    )
    _common(partitions)
    partitions.add_argument("--database-url", help="admin URL (postgresql+psycopg://...)")
    partitions.set_defaults(func=_partitions)
    reindex = db_sub.add_parser(
        "reindex-erasures",
        help="write the rows of erasure_names the intact erasure and retention records name "
        "and it lacks (a replica older than 0014 wrote none); never deletes one",
    )
    _common(reindex)
    reindex.add_argument(
        "--database-url",
        help="a login in role aiaudit_privacy, or the admin URL (postgresql+psycopg://...)",
    )
    reindex.add_argument(
        "--log", action="append", default=[], help="a log (tenant) to reindex; default: every log"
    )
    reindex.set_defaults(func=_reindex_erasures)
    erase = sub.add_parser(
        "erase",
        help="erase events' content (a data subject's, or named ones); leaves and proofs stay "
        "valid; recorded in the log",
    )
    _common(erase)
    erase.add_argument(
        "--database-url", help="a login in role aiaudit_privacy (postgresql+psycopg://...)"
    )
    erase.add_argument("--tenant", required=True, help="the tenant (log) of the events")
    erase.add_argument("--event-id", action="append", default=[], help="an event to erase")
    erase.add_argument("--subject", help="erase every event whose actor.user_id is this")
    erase.add_argument("--reason", required=True, help="legal basis or reason (recorded)")
    erase.add_argument(
        "--requested-by",
        default=os.environ.get("USER", ""),
        help="who asked for it (recorded; default $USER)",
    )
    erase.set_defaults(func=_erase)
    keys = sub.add_parser("content-keys", help="the KEK that wraps the subjects' data keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    boot = keys_sub.add_parser(
        "bootstrap-vault", help="enable Transit, create the content key, write its policy"
    )
    _common(boot)
    boot.add_argument("--vault-addr", help="Vault / OpenBao address (default: config, VAULT_ADDR)")
    boot.add_argument("--mount", help="Transit mount (default: content_vault_mount)")
    boot.add_argument("--key", help="Transit key name (default: content_vault_key)")
    boot.add_argument(
        "--policy",
        default="aiaudit-content",
        help="services' policy name to write; the rewrap policy is named POLICY-rewrap",
    )
    boot.set_defaults(func=_bootstrap_content_key)
    rewrap = keys_sub.add_parser(
        "rewrap",
        help="rewrap the stored data keys under the Transit key's latest version (after a "
        "rotation); VAULT_TOKEN needs the POLICY-rewrap policy bootstrap-vault writes",
    )
    _common(rewrap)
    rewrap.add_argument(
        "--database-url", help="the administrator's URL (UPDATE on content_keys), as db migrate"
    )
    rewrap.add_argument("--vault-addr", help="Vault / OpenBao address (default: config)")
    rewrap.add_argument(
        "--page-size",
        type=int,
        default=500,
        help="keys per transaction (1 to 10000; at most 249 a Transit request)",
    )
    rewrap.set_defaults(func=_rewrap_content_keys)
    integrity_cli.register(sub, _common, _client)
    search_cli.register(sub, _common, _client)
    alerting_cli.register(sub, _common)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, taken where a command takes Ctrl-C (see :func:`_sigterm_as_ctrl_c`)."""


@contextlib.contextmanager
def _sigterm_as_ctrl_c() -> Iterator[list[int]]:
    """While the block runs, SIGTERM raises :class:`Terminated`, a ``KeyboardInterrupt``.

    A command so stops as Ctrl-C stops it: ``written_whole`` removes its
    temporary file, the export's call is cancelled, the transaction rolled
    back. Killed by SIGTERM, as until 2026-12-05 (``timeout``, systemd, a CI
    job cancelled), ``aiaudit export --output F`` left ``.F.<random>.partial``,
    content readable by its owner, behind. The list yielded holds the signal
    once received; a second SIGTERM does not cut the clean-up short (SIGKILL
    does). The previous handler is back once the block ends.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received  # only the main thread may set a handler, and it runs them
        return

    def stop(signum: int, _frame: object) -> None:
        if not received:
            received.append(signum)
            raise Terminated

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `aiaudit` script.

    But for ``serve``, which stops gracefully on SIGTERM, a command that
    SIGTERM stopped exits 143 (128 + 15, as a shell reports it), whatever its
    Ctrl-C path returned (130).
    """
    try:
        args = build_parser().parse_args(argv)
    except _VersionAskedError:
        args = argparse.Namespace(func=_version)
    if args.func is _serve:
        return _run(args)
    with _sigterm_as_ctrl_c() as received:
        try:
            code = _run(args)
            sys.stdout.flush()  # a reader gone is found here, not in the interpreter's exit
        except Terminated:  # a command with no Ctrl-C path of its own
            code = 128 + signal.SIGTERM
        except BrokenPipeError:
            code = _reader_gone()
    return 128 + signal.SIGTERM if received else code


def _reader_gone() -> int:
    """Exit 1, quietly: the reader of stdout closed it (``aiaudit search | head``).

    The way Python's documentation gives (``signal``, "Note on SIGPIPE"): stdout
    is pointed at ``/dev/null`` so that the interpreter's own flush at exit does
    not fail again. Not an error to report: the reader chose to stop. Not 0
    either: the command did not finish (``verify | head`` never printed its
    summary), so a pipeline under ``set -o pipefail`` does not take it for a
    success. Until 2026-12-07 it printed ``aiaudit: [Errno 32] Broken pipe``.
    """
    with contextlib.suppress(OSError, ValueError):  # a stdout with no descriptor (a test's)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 1


def _run(args: argparse.Namespace) -> int:
    """The command's exit code; what the user's environment causes is one line."""
    try:
        return int(args.func(args))
    except config.ConfigError as exc:
        print(f"aiaudit: configuration error: {exc}", file=sys.stderr)
        return 2
    # What the user's environment causes (a server down, a path that does not exist, a
    # database out of reach): one line, not a traceback.
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
        print(
            f"aiaudit: the server answered {getattr(code, 'name', code)}: {details}",
            file=sys.stderr,
        )
        return 1
    except BrokenPipeError:  # stdout's reader closed it: main's, quietly
        raise
    except (OSError, KekError, SealError) as exc:  # SealError: damaged sealed content
        print(f"aiaudit: {exc}", file=sys.stderr)
        return 1
    except sa_exc.OperationalError as exc:
        print(f"aiaudit: cannot use the database: {exc.orig}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
