"""Command line of the integrity service: ``aiaudit verify`` and ``aiaudit integrity ...``."""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import io
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import sqlalchemy as sa

from aiaudit.common import (
    access,
    arguments,
    client,
    config,
    erasure,
    files,
    receipt_files,
    restore,
)
from aiaudit.common.auth import Caller
from aiaudit.common.config import ConfigError, Settings
from aiaudit.common.keys import configured, vault_admin
from aiaudit.common.store import SqlEventStore, entries, open_store
from aiaudit.integrity import accept_loss, bundle, receipts, storage, vault
from aiaudit.integrity import settings as integrity_settings
from aiaudit.integrity.component import key_source
from aiaudit.integrity.note import NoteError, VerifierKey, parse_verifier_key
from aiaudit.integrity.signers import SignerUnavailableError
from aiaudit.integrity.v1 import integrity_service_pb2 as pb
from aiaudit.integrity.v1 import integrity_service_pb2_grpc as pb_grpc
from aiaudit.integrity.verify import MODES, NoExportsError, verify_store

Common = Callable[[argparse.ArgumentParser], None]


class CommandFailedError(RuntimeError):
    """The command could not do its work (server down, file unwritable): one line, exit 1."""


def _keys(
    args: argparse.Namespace, settings: Settings, s: integrity_settings.IntegritySettings
) -> list[VerifierKey]:
    """Trusted keys: the ones given on the command line, else the configured key's versions.

    A missing key file is an error, not a new key: a key made up here would be
    trusted by nobody, and reading must leave no state behind.
    """
    if args.verifier_key:
        try:
            return [parse_verifier_key(k) for k in args.verifier_key]
        except NoteError as exc:
            raise ConfigError(f"--verifier-key: {exc}") from None
    path = integrity_settings.key_file(settings, s)
    if _offline(args) and _found_by_folder(args, settings, s):
        raise ConfigError(
            f"no --verifier-key: the key file {path} is found by the folder this runs in "
            "(the default data dir ./data), so a folder handed over with the file could hold "
            "the key it is signed with; pass the key the server publishes (aiaudit integrity "
            "verifier-key) with --verifier-key, or name the notary's data dir with --data-dir"
        )
    return _configured_keys(settings, s, "pass --verifier-key")


def _configured_keys(
    settings: Settings, s: integrity_settings.IntegritySettings, remedy: str
) -> list[VerifierKey]:
    """The configured signing key's verifier keys, read, never made; ``remedy`` ends a refusal."""
    path = integrity_settings.key_file(settings, s)
    if s.signer == "file" and not path.is_file():
        raise ConfigError(f"no key at {path}; {remedy}")
    try:
        return key_source(settings, s).verifier_keys()
    except SignerUnavailableError as exc:
        raise ConfigError(f"cannot read the verifier keys ({exc}); {remedy}") from None


def _offline(args: argparse.Namespace) -> bool:
    """Whether the command checks a file offline (``verify --bundle`` or ``--receipt``)."""
    return getattr(args, "bundle", None) is not None or getattr(args, "receipt", None) is not None


def _found_by_folder(
    args: argparse.Namespace, settings: Settings, s: integrity_settings.IntegritySettings
) -> bool:
    """Whether the configured key would be the key file of the default data dir, ``./data``.

    Nobody named it: it is whatever the folder the command runs in holds. An auditor
    running ``verify --bundle bundle.jsonl`` without ``--verifier-key`` inside a folder
    handed over with the bundle (``data/notary-ed25519.pem`` beside it) had the bundle
    checked with the key that folder held: exit 0, "0 problem(s)", the key's origin said
    only on stderr (review, 2026-12-06). A data dir or key file set by a flag, the
    environment or the config file, and a key in Vault, are configuration, as before.
    """
    default = config.Settings().data_dir
    return (
        s.signer == "file"
        and s.key_file is None
        and args.data_dir is None
        and settings.data_dir == default
    )


def _key_source(
    args: argparse.Namespace, settings: Settings, s: integrity_settings.IntegritySettings
) -> str:
    """Where :func:`_keys` found the trusted keys, as ``verify --bundle`` reports it.

    A key read from this machine's configuration is whatever key the data dir
    holds: a bundle of any server started in that directory verifies with it
    (review 2026-12-05), so it is no evidence of the published key.
    """
    if args.verifier_key:
        return "given with --verifier-key"
    if s.signer == "vault":
        where = f"Vault (transit key {s.vault_mount}/{s.vault_key} at {s.vault_addr})"
    else:
        where = os.path.abspath(integrity_settings.key_file(settings, s))
    return (
        f"read from {where}, this machine's configured signing key (no --verifier-key): "
        "a local key, not a published one; pass the key the server publishes with "
        "--verifier-key"
    )


def _store_url(
    args: argparse.Namespace, settings: Settings, s: integrity_settings.IntegritySettings
) -> str:
    """--database-url, else the notary's own login, else the suite's database."""
    if getattr(args, "database_url", None):
        return settings.store_url
    return s.database_url or settings.store_url


@contextlib.contextmanager
def _existing_store(
    url: str, settings: Settings, flag: str = "--database-url", content: bool = True
) -> Iterator[SqlEventStore]:
    """The store at ``url``, which must exist (SQLite would create an empty file).

    Sealed content opens with the keyring ``settings`` configure; a caller that
    reads and writes no ``content`` gets no keyring, so it needs no KEK (nor makes one).

    Database errors (no schema, server down) become one line, not a traceback.
    ``flag`` is the option that names this store, for the hint.
    """
    parsed = sa.make_url(url)
    where = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        raise ConfigError(f"no store at {parsed.database}; pass {flag} or --data-dir")
    store = open_store(url, keys=configured.keyring(settings, url) if content else None)
    try:
        yield store
    except sa.exc.DBAPIError as exc:
        raise CommandFailedError(f"store {where}: {exc.orig}") from None
    finally:
        store.close()


def _progress(log_id: str, done: int, size: int) -> None:
    print(f"verify: log {log_id}: {done}/{size} events", file=sys.stderr, flush=True)


_STORE_ONLY = (
    ("--database-url", "database_url"),
    ("--mode", "mode"),
    ("--workers", "workers"),
    ("--checkpoint-dir", "checkpoint_dir"),
    ("--classification-required-since", "classification_required_since"),
)
"""``aiaudit verify``'s options that only a verification of the store reads."""


def _not_offline(args: argparse.Namespace) -> str | None:
    """Why the options cannot go together: one of the store's with ``--bundle`` or ``--receipt``.

    Each was silently ignored there, so a command line could seem to check
    more, or other things, than it did (as ``--bundle`` beside ``--receipt``
    did, which argparse refuses now: only the receipt was read, and a
    tampered bundle passed). ``--log`` selects lines of a bundle or logs of
    the store; a receipt names its one log itself.
    """
    if args.bundle is None and args.receipt is None:
        return None
    offline = "--bundle" if args.bundle is not None else "--receipt"
    given = [flag for flag, dest in _STORE_ONLY if getattr(args, dest) is not None]
    if given:
        return (
            f"argument {given[0]}: not allowed with argument {offline} "
            f"({', '.join(f for f, _ in _STORE_ONLY)} are options of verifying the store)"
        )
    if args.receipt is not None and args.log:
        return "argument --log: not allowed with argument --receipt (a receipt names its log)"
    return None


NOTHING_VERIFIED = "the bundle holds no events: nothing verified"
"""Why a bundle without any event fails (exit 1): it exited 1 with no reason given. A
search export that matched no event, sealed (its scope and its seal only, the closing
record counting 0), verifies instead (``BundleReport.empty``)."""


def run_verify(args: argparse.Namespace, settings: Settings) -> int:
    """``aiaudit verify``: the whole store, an offline bundle or a receipt; non-zero if wrong.

    ``--bundle`` and ``--receipt`` exclude each other and the store's options
    (:func:`_not_offline`), so what is verified is exactly what was named.
    """
    s = integrity_settings.load(settings)
    keys = _keys(args, settings, s)
    origin_prefix = args.origin_prefix or s.origin_prefix
    if args.receipt is not None:
        return _verify_receipt(args.receipt, keys, origin_prefix)
    if args.bundle is not None:
        try:
            result = bundle.verify_bundle(args.bundle, keys, origin_prefix, args.log or ())
        except OSError as exc:
            raise CommandFailedError(f"bundle {args.bundle}: {exc.strerror or exc}") from None
        for p in result.problems:
            print(p)
        checked, problems = result.checked, result.problems
        # A sealed export that matched nothing proves so (result.empty); otherwise a bundle
        # without events is a failed or mistaken export, no evidence that all is well.
        nothing = checked == 0 and not result.empty
        if nothing:
            print(NOTHING_VERIFIED)
        sys.stdout.flush()  # printed before stderr says what was checked (a reader gone: quiet)
        if not nothing and not problems:  # what was proven, and against what (review 2026-12-05)
            source = _key_source(args, settings, s)
            for line in result.summary(args.log or ()):
                print(line, file=sys.stderr)
            for k in keys:
                print(f"verifier key {k.name}+{k.key_id.hex()}: {source}", file=sys.stderr)
        print(f"{checked} event(s) checked, {len(problems)} problem(s)", file=sys.stderr)
        return 1 if problems or nothing else 0
    since = s.classification_required_time
    if args.classification_required_since is not None:
        since = integrity_settings.required_since(
            args.classification_required_since, "--classification-required-since"
        )
    with _existing_store(_store_url(args, settings, s), settings) as store:
        try:
            report = verify_store(
                store.engine,
                keys,
                origin_prefix,
                args.checkpoint_dir or integrity_settings.checkpoint_dir(settings, s),
                args.log or (),
                _progress,
                args.mode or "full",
                args.workers or 1,
                store.keys,
                since,
            )
        except NoExportsError as exc:
            raise ConfigError(
                f"{exc}; pass the notary's directory (--checkpoint-dir, or "
                "integrity.checkpoint_dir)"
            ) from None
    for problem in report.problems:
        print(problem)
    for warning in report.warnings:
        print(f"warning: {warning}")
    if since is not None and args.mode == "leaves":  # said, not silently left out
        print(
            f"warning: classification_required_since ({since.isoformat()}) is not checked in "
            "--mode leaves, which reads no content row; run --mode full to check it"
        )
    sys.stdout.flush()  # printed before stderr says what was checked (a reader gone: quiet)
    if report.exported_only:
        print(
            f"{report.exported_only} exported checkpoint(s) the database lacks (a leader stopped "
            "before storing them): checked against the log like the others",
            file=sys.stderr,
        )
    print(
        f"{report.logs} log(s), {report.events} event(s), {report.checkpoints} checkpoint(s) "
        f"checked: {len(report.problems)} problem(s)"
        + (f", {len(report.warnings)} warning(s) (no damage)" if report.warnings else ""),
        file=sys.stderr,
    )
    return 0 if report.ok else 1


def _verify_receipt(path: Path, keys: list[VerifierKey], origin_prefix: str) -> int:
    """Checks a file of receipt notes offline and prints what they promise, one line per event.

    A file the gateway SDK appends to (``<log>.<day>.notes``, each note closed by
    a line ``.``) is read note by note: a note that does not verify is a
    problem (exit 1), the others still printed; bytes after the last ``.`` line
    are a write a crash cut short, never acknowledged, said on stderr and
    skipped. A file of one note (the earlier layout) reads as before. A file
    that vouches for no event at all exits 1.
    """
    notes = events = 0
    problems: list[str] = []
    torn = 0
    try:
        with path.open("rb") as stream:
            for record in receipt_files.read_records(stream):
                if not record.whole and notes + len(problems):
                    torn = len(record.data)  # after whole notes: a write cut short
                    continue
                try:
                    note = receipts.open_receipts(record.data, keys, origin_prefix)
                except NoteError as exc:
                    why = str(exc)
                    if not record.whole and path.name.endswith(receipt_files.SUFFIX):
                        why = (
                            f"no whole note, {len(record.data)} byte(s) of a write a crash "
                            f"cut short ({why})"
                        )
                    where = f" note at byte {record.offset}:" if record.whole else ""
                    problems.append(f"receipt {path}:{where} {why}")
                    print(problems[-1])
                    continue
                notes += 1
                events += len(note.receipts)
                for r in note.receipts:
                    leaf = base64.b64encode(r.leaf_hash).decode("ascii")
                    print(
                        f"log {note.log_id} sequence {r.sequence} leaf {leaf} "
                        f"received {receipts.format_time(r.receive_time)}"
                    )
    except BrokenPipeError:  # stdout's reader gone, not the file: main's quiet exit
        raise
    except OSError as exc:  # one line on stderr, as --bundle's (it printed [Errno 2] on stdout)
        raise CommandFailedError(f"receipt {path}: {exc.strerror or exc}") from None
    sys.stdout.flush()  # printed before stderr says what was checked (a reader gone: quiet)
    if torn:
        print(
            f"receipt {path}: {torn} byte(s) after the last note skipped: a write a crash "
            "cut short, never acknowledged",
            file=sys.stderr,
        )
    if notes == 0 and not problems:
        problems.append(f"receipt {path}: holds no note")
        print(problems[-1])
    if notes:
        signatures = "valid signature" if notes == 1 else f"{notes} notes, valid signatures"
        print(f"receipt {path}: {signatures}, {events} event(s)", file=sys.stderr)
    if problems:
        print(f"receipt {path}: {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


_CLIENT_OPTIONS = (
    ("--address", "address"),
    ("--ca-file", "ca_file"),
    ("--client-cert", "client_cert"),
    ("--client-key", "client_key"),
)


def _not_with_local(args: argparse.Namespace) -> str | None:
    """Why ``verifier-key --local`` refuses an option of the server it does not call.

    ``--local --address HOST`` printed this machine's key, as if the server's.
    ``--api-key`` counts when it is not ``$AIAUDIT_API_KEY`` (its default).
    """
    if not args.local:
        return None
    given = [flag for flag, dest in _CLIENT_OPTIONS if getattr(args, dest) is not None]
    if args.api_key is not None and args.api_key != os.environ.get("AIAUDIT_API_KEY"):
        given.append("--api-key")
    if given:
        return f"argument {given[0]}: not allowed with argument --local (no server is called)"
    return None


def run_verifier_key(args: argparse.Namespace, settings: Settings) -> int:
    """Prints the verifier keys: from the server, or with --local from the configured key."""
    if args.local:  # until 2026-12-07 it took --verifier-key too, and printed it back
        remedy = "name the notary's data dir with --data-dir (or its settings with --config)"
        configured = _configured_keys(settings, integrity_settings.load(settings), remedy)
        keys = [k.encode() for k in configured]
    else:
        config.client_tls(settings, args.ca_file)
        identity = (args.ca_file, args.client_cert, args.client_key)
        with client.for_command(settings.address, args.api_key, *identity) as ch:
            stub = pb_grpc.IntegrityServiceStub(ch)  # type: ignore[no-untyped-call]
            try:
                reply = stub.GetVerifierKey(pb.GetVerifierKeyRequest(), timeout=10)
            except grpc.RpcError as err:
                raise CommandFailedError(
                    f"{settings.address}: {err.code().name}: {err.details()}"
                ) from None
        keys = list(reply.verifier_keys)
    for k in keys:
        print(k)
    return 0


def run_bootstrap_vault(args: argparse.Namespace, settings: Settings) -> int:
    """Enables Transit, creates the ed25519 key and writes the notary policy (idempotent)."""
    s = integrity_settings.load(settings)
    addr, admin = vault_admin.admin_client(
        "bootstrap-vault",
        args.vault_addr,
        s.vault_addr,
        "integrity.vault_addr",
        settings.allow_insecure,  # the admin token goes there
    )
    target = vault.VaultSettings(
        mount=args.mount or s.vault_mount, key=args.key or s.vault_key, policy_name=args.policy
    )
    try:
        steps = vault.bootstrap(admin, target)
    except vault_admin.FAILURES as exc:
        raise CommandFailedError(vault_admin.unavailable(addr, exc)) from None
    for step in steps:
        print(step)
    print(f"\npolicy {target.policy_name!r} (give the notary a token with only this policy):")
    print(vault.policy(target.mount, target.key))
    return 0


EXPORT_ACTION = "integrity.export_bundle"
"""``access.action`` of the record an ``export-bundle`` leaves in the exported log."""


def run_accept_loss(args: argparse.Namespace, settings: Settings) -> int:
    """Signs a log's loss statement (:mod:`accept_loss`); exit 2 when there is nothing to accept.

    The statement is signed by the notary's key (Vault Transit in production),
    never a key made up here: a missing key file is a configuration error.
    """
    s = integrity_settings.load(settings)
    if s.signer == "file" and not integrity_settings.key_file(settings, s).is_file():
        raise ConfigError(f"no notary key at {integrity_settings.key_file(settings, s)}")
    keys = key_source(settings, s)
    directory = args.checkpoint_dir or Path(integrity_settings.checkpoint_dir(settings, s))
    if not directory.is_dir():
        raise ConfigError(
            f"checkpoint directory {directory} is not a directory; pass the "
            "notary's with --checkpoint-dir (or integrity.checkpoint_dir)"
        )
    with _existing_store(_store_url(args, settings, s), settings, content=False) as store:
        try:
            accepted = accept_loss.accept_loss(
                store.engine, keys, s.origin_prefix, directory, args.log, args.reason
            )
        except accept_loss.RefusedError as exc:
            print(f"aiaudit integrity accept-loss: {exc}", file=sys.stderr)
            return 2
        except SignerUnavailableError as exc:
            raise CommandFailedError(f"cannot sign the loss statement: {exc}") from None
    print(accept_loss.describe(accepted, args.log))
    return 0


def _requester(requested_by: str) -> str:
    """Who asked for the export: required (it is the record's actor) and storable."""
    if not requested_by.strip():
        raise ConfigError("--requested-by: required, who asked for the export ($USER is not set)")
    if bad := erasure.problems(requested_by, ""):
        raise ConfigError("; ".join(f"--requested-by {problem}" for _, problem in bad))
    return requested_by


def _record_export(
    url: str,
    settings: Settings,
    log_id: str,
    requested_by: str,
    details: dict[str, str | int | bool],
) -> str:
    """Commits the export's access record, or fails the command; the record's event id.

    Through :class:`access.AccessLog` as the services' reads are, so the record
    is an ordinary event of the log (sequenced, checkpointed), if ``url`` names
    the exported store: :func:`_check_recorded` sees that it does.
    """
    where = sa.make_url(url).render_as_string(hide_password=True)
    # The record has no content fields, so it is stored unsealed: no keyring, no KEK.
    with _existing_store(url, settings, "--record-database-url", content=False) as store:
        caller = Caller(requested_by, frozenset({log_id}), frozenset())
        try:
            return access.AccessLog(store).record(caller, log_id, EXPORT_ACTION, details)
        except Exception as exc:  # whatever refused it (no grant, server down): no bundle
            why = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
            raise CommandFailedError(
                f"the access record could not be written to {where} ({why}); nothing was "
                "exported (the record needs a login in aiaudit_writer: database_url or "
                "--record-database-url)"
            ) from None


def _check_recorded(store: SqlEventStore, log_id: str, event_id: str, url: str, flag: str) -> None:
    """Fails the command unless the export's record is an entry of the log read, in ``store``.

    The record is written through another login than the one reading (the
    notary's may not append), at a URL of its own: one naming another
    database (a scratch SQLite file) took the record while the bundle, content
    and salts, was read from the real store, and nothing in the exported log
    showed the read (review, 2026-12-05). Checked through the login that read,
    so any spelling of the same database passes, and no other does.
    """
    with store.engine.connect() as conn:
        if entries.entry_sequence(conn, log_id, event_id) is not None:
            return
    where = sa.make_url(url).render_as_string(hide_password=True)
    read = store.engine.url.render_as_string(hide_password=True)
    raise CommandFailedError(
        f"the access record went to another store than the one exported (record {event_id} "
        f"written to {where}, not an entry of log {log_id!r} in {read}): {flag} must name the "
        "same database as the exported store (as a login allowed to append); nothing was "
        "exported"
    )


def run_export_bundle(args: argparse.Namespace, settings: Settings) -> int:
    """Writes an offline bundle of a log's events, once the export is recorded.

    A bundle is a read of the whole log (content and salts unless
    ``--no-content``), so like every read it is recorded as an access event in
    the tenant's log first: no durable record, no bundle file. The log is read
    with ``--database-url``, else the notary's login, which may not append to
    the log by design (``aiaudit_notary`` has no INSERT on it); the record goes
    through the suite's store (``database_url``: the writer) or
    ``--record-database-url``, which must be the exported database: the
    record is then looked up through the login that read (:func:`_check_recorded`).

    The export runs to the log's end as it stands when the command starts (or
    ``--count`` events), and every event must be covered by a signed
    checkpoint: it waits up to ``--wait`` seconds for the notary to sign one,
    then fails naming the events not covered, unless ``--up-to-checkpoint``
    asks for what the latest checkpoint covers only (:func:`bundle.export_range`).
    """
    s = integrity_settings.load(settings)
    requested_by = _requester(args.requested_by)
    flags = {"--database-url": args.read_url, "--record-database-url": args.record_url}
    for flag, url in flags.items():
        if url:  # before either store is opened: the logins' passwords go there
            config.require_secure_database(url, flag, settings.allow_insecure)
    read_url = args.read_url or s.database_url or settings.store_url
    with _existing_store(read_url, settings, content=not args.no_content) as store:
        try:
            cp, start, end, size = _export_range(store, args)
        except (bundle.BundleError, *_DAMAGED) as exc:
            raise CommandFailedError(str(exc)) from None
        details: dict[str, str | int | bool] = {
            "requested_by": requested_by,
            "start": start,
            "end": end,  # exclusive
            "tree_size": cp.tree_size,
            "include_content": not args.no_content,
            "database_user": sa.make_url(read_url).username or "",
        }
        try:
            n = _write_recorded(store, cp, (start, end), args, settings, requested_by, details)
        except KeyboardInterrupt:
            print(f"{_PROG}: interrupted; {args.out} not written", file=sys.stderr)
            return 130  # 128 + SIGINT, as a shell reports a command Ctrl-C stopped
    root = base64.b64encode(cp.root_hash).decode()
    print(
        f"{n} event(s) written to {args.out}: sequences {start}..{end - 1} of {args.log} "
        f"against checkpoint size {cp.tree_size} (root {root})",
        file=sys.stderr,
    )
    if size > end and args.up_to_checkpoint and (args.count is None or start + args.count > end):
        print(
            f"{size - end} event(s) not yet covered by a signed checkpoint left out "
            f"(sequences {end}..{size - 1}; --up-to-checkpoint)",
            file=sys.stderr,
        )
    return 0


_CHECKPOINT_POLL = 0.2
"""Seconds between two looks for a checkpoint covering the export (``--wait``)."""


def _export_range(
    store: SqlEventStore, args: argparse.Namespace
) -> tuple[storage.StoredCheckpoint, int, int, int]:
    """The checkpoint, the range ``start .. end-1`` it covers, and the log's size.

    The size is read first, then the checkpoint: one signed meanwhile only
    covers more. Events asked for past the latest checkpoint are waited for
    (``--wait``), then refused with what fixes it; ``--up-to-checkpoint``
    neither waits nor refuses, it stops at the checkpoint.
    """
    size = bundle.log_size(store, args.log)
    deadline = time.monotonic() + (0 if args.up_to_checkpoint else args.wait)
    told = False
    while True:
        cp = bundle.covering_checkpoint(store, args.log)
        try:
            start, end = bundle.export_range(
                cp, size, args.start, args.count, args.up_to_checkpoint
            )
        except bundle.NotYetCheckpointedError as exc:
            left = deadline - time.monotonic()
            if left > 0:
                if not told:
                    print(f"{_PROG}: {exc}; waiting up to {args.wait}s", file=sys.stderr)
                    told = True
                time.sleep(min(_CHECKPOINT_POLL, left))
                continue
            raise bundle.BundleError(_not_covered(exc, args)) from None
        return cp, start, end, max(size, cp.tree_size)


def _not_covered(exc: bundle.NotYetCheckpointedError, args: argparse.Namespace) -> str:
    """Why nothing was exported, and the two ways out."""
    waited = "" if args.up_to_checkpoint else f", after waiting {args.wait}s"
    fix = "Wait for the notary to sign a checkpoint covering them and run again"
    if exc.covered:
        fix += (
            ", or export only what the latest checkpoint covers: --up-to-checkpoint, or "
            f"--start/--count within sequences 0..{exc.covered - 1}"
        )
    return f"{exc}{waited}; nothing was exported. {fix}"


_PROG = "aiaudit integrity export-bundle"

_DAMAGED = (restore.DamagedStoredEventError, storage.StoredAsTextError)
"""Stored rows an export cannot read (SQLite: a binary column rewritten as text), each
naming its row and column: one line, as the other failures (they stopped it with a traceback)."""


def _write_recorded(
    store: SqlEventStore,
    cp: storage.StoredCheckpoint,
    span: tuple[int, int],
    args: argparse.Namespace,
    settings: Settings,
    requested_by: str,
    details: dict[str, str | int | bool],
) -> int:
    """The bundle into ``args.out``: opened, the export recorded and checked, written, named.

    The destination is opened first, so that one that cannot be written (a
    directory, ``/dev/full``) fails the command before the record commits an
    export that never happened. The bundle takes its name only once complete
    (:func:`files.written_whole`: a private temporary file, renamed): an export
    stopped midway leaves no file that passes for the whole bundle, and none
    readable by others (it holds content and salts). What fails once the
    record is committed (a disk full midway; the record not an entry of the log
    read, found before anything is written) leaves the record of the attempt.
    """
    with contextlib.ExitStack() as stack:
        try:
            raw = stack.enter_context(files.written_whole(args.out))
        except OSError as exc:
            raise CommandFailedError(f"cannot write {args.out}: {exc.strerror or exc}") from None
        record_url = args.record_url or settings.store_url
        event_id = _record_export(record_url, settings, args.log, requested_by, details)
        flag = "--record-database-url" if args.record_url else "database_url"
        _check_recorded(store, args.log, event_id, record_url, flag)
        out = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
        try:
            out.write(_scope(cp, span, args, requested_by, event_id) + "\n")
            n = bundle.export(store, cp, out, *span, not args.no_content)
            out.flush()
        except OSError as exc:
            raise CommandFailedError(f"cannot write {args.out}: {exc.strerror or exc}") from None
        except (bundle.BundleError, *_DAMAGED) as exc:
            raise CommandFailedError(str(exc)) from None
        out.detach()  # the file is written_whole's to sync, close and name
    return n


def _scope(
    cp: storage.StoredCheckpoint,
    span: tuple[int, int],
    args: argparse.Namespace,
    requested_by: str,
    event_id: str,
) -> str:
    """The bundle's first line: what the export is, as its access record ``event_id`` says.

    The record is committed after the checkpoint was taken (its sequence is past
    ``cp``), so the bundle cannot prove it: the auditor matches it in the log.
    """
    start, end = span
    return bundle.scope_line(
        action=EXPORT_ACTION,
        log_id=args.log,
        tree_size=cp.tree_size,
        exported_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        requested_by=requested_by,
        access_record=event_id,
        content=bundle.CONTENT_LEFT_OUT if args.no_content else bundle.CONTENT_INCLUDED,
        start=start,
        end=end,
    )


VERIFY_OFFLINE = frozenset(
    {"data_dir", "allow_insecure"}
    | {
        f"integrity.{key}"
        for key in (
            "origin_prefix", "key_name", "signer", "key_file", "vault_addr",
            "vault_token_file", "vault_mount", "vault_key", "vault_timeout",
        )
    }
)  # fmt: skip
"""The settings ``verify --bundle``/``--receipt`` reads: the trusted keys and origins (and
``allow_insecure``, for a key in Vault). An auditor's machine needs no valid server
configuration to check a file (review)."""


def _reads(args: argparse.Namespace) -> frozenset[str] | None:
    """``verify``: only :data:`VERIFY_OFFLINE` for a bundle or a receipt; else every setting."""
    offline = args.bundle is not None or args.receipt is not None
    return VERIFY_OFFLINE if offline else None


def _settings(args: argparse.Namespace, only: frozenset[str] | None = None) -> Settings:
    """Settings of a command that serves nothing (flags over environment over file).

    Loaded as not serving: the OIDC checks guard a server alone. ``allow_insecure``
    keeps its configured value: forced on to skip those, it also waived the checks of
    the database and Vault, so ``verify --database-url`` sent the login's password in
    clear to any host. ``--database-url`` is checked as ``database_url`` is, by its name.
    """
    overrides: dict[str, object | None] = {
        "address": getattr(args, "address", None),  # verifier-key's alone
        "data_dir": args.data_dir,
    }
    flags = {}
    if getattr(args, "database_url", None):
        overrides["database_url"] = args.database_url
        flags["database_url"] = "--database-url"
    return config.load(args.config, overrides=overrides, only=only, serving=False, flags=flags)


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: Common, client: Common
) -> None:
    """Adds ``verify`` and ``integrity`` to the ``aiaudit`` command.

    ``common`` adds the options of every command, ``client`` a client command's: only
    ``integrity verifier-key`` calls the server (not with ``--local``).
    """

    def bind(
        parser: argparse.ArgumentParser,
        run: Callable[[argparse.Namespace, Settings], int],
        refused: Callable[[argparse.Namespace], str | None] = lambda _: None,
        reads: Callable[[argparse.Namespace], frozenset[str] | None] = lambda _: None,
    ) -> None:
        def func(args: argparse.Namespace) -> int:
            if why := refused(args):
                parser.error(why)  # exit 2 with the usage, as argparse's own refusals
            try:
                return run(args, _settings(args, reads(args)))
            except CommandFailedError as exc:
                print(f"{parser.prog}: {' '.join(str(exc).split())}", file=sys.stderr)
                return 1

        parser.set_defaults(func=func)

    def trusted(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--verifier-key",
            action="append",
            help="trusted note verifier key (repeatable; default: the configured key's versions)",
        )
        parser.add_argument("--origin-prefix", help="checkpoint origins must be <prefix>/<log id>")

    verify = sub.add_parser(
        "verify", help="verify the whole store (or --bundle FILE offline); non-zero exit if not"
    )
    common(verify)
    trusted(verify)
    verify.add_argument("--database-url", help="store to verify (a read-only login is enough)")
    verify.add_argument("--log", action="append", help="only this log (repeatable)")
    what = verify.add_mutually_exclusive_group()
    what.add_argument("--bundle", type=Path, help="verify an offline bundle, no server or store")
    what.add_argument(
        "--receipt",
        type=Path,
        help="verify a file of signed receipt notes offline and print their events",
    )
    verify.add_argument(
        "--mode",
        choices=MODES,
        help="full: every check (default); leaves: canonical bytes, leaves, tree and "
        "checkpoints only, near the hash rate",
    )
    verify.add_argument(
        "--workers",
        type=arguments.at_least(1),
        help="processes for the full mode's JSON checks (default 1)",
    )
    verify.add_argument(
        "--checkpoint-dir", type=Path, help="exported checkpoints to check too (default: config)"
    )
    verify.add_argument(
        "--classification-required-since",
        metavar="TIME",
        help="RFC 3339 time since which every replica writes event_content.data_classification: "
        "NULL on a classified event received then or later is a problem, not a warning "
        "(default: integrity.classification_required_since; '' for none)",
    )
    bind(verify, run_verify, refused=_not_offline, reads=_reads)

    integrity = sub.add_parser("integrity", help="notary keys, Vault bootstrap, bundles")
    isub = integrity.add_subparsers(dest="integrity_command", required=True)
    key = isub.add_parser("verifier-key", help="print the published note verifier keys")
    common(key)
    client(key)
    key.add_argument(
        "--local", action="store_true", help="read the configured key instead of the server"
    )
    bind(key, run_verifier_key, refused=_not_with_local)

    boot = isub.add_parser(
        "bootstrap-vault", help="enable Transit, create the ed25519 key, write the notary policy"
    )
    common(boot)
    boot.add_argument("--vault-addr", help="Vault / OpenBao address (default: config, VAULT_ADDR)")
    boot.add_argument("--mount", help="Transit mount (default: integrity.vault_mount)")
    boot.add_argument("--key", help="Transit key name (default: integrity.vault_key)")
    boot.add_argument("--policy", default="aiaudit-notary", help="policy name to write")
    bind(boot, run_bootstrap_vault)

    export = isub.add_parser("export-bundle", help="write an offline proof bundle of a log")
    common(export)
    export.add_argument(
        "--database-url",
        dest="read_url",
        help="the store to read (default: integrity.database_url, else the suite's database)",
    )
    export.add_argument(
        "--record-database-url",
        dest="record_url",
        help="where the export's access record is appended, a login in aiaudit_writer "
        "(default: the suite's database_url)",
    )
    export.add_argument(
        "--requested-by",
        default=os.environ.get("USER", ""),
        help="who asked for the export (recorded; default $USER)",
    )
    export.add_argument("--log", required=True, help="the log (tenant id)")
    export.add_argument("--start", type=arguments.at_least(0), default=0, help="first sequence")
    export.add_argument(
        "--count",
        type=arguments.at_least(1),
        help="number of events (default: to the log's end; each must be checkpointed)",
    )
    export.add_argument(
        "--up-to-checkpoint",
        action="store_true",
        help="stop at the latest signed checkpoint, leaving out later events (default: they "
        "are waited for, else the command fails)",
    )
    export.add_argument(
        "--wait",
        type=arguments.at_least(0),
        default=10,
        metavar="SECONDS",
        help="how long to wait for a checkpoint covering the events asked for (default 10)",
    )
    export.add_argument("--no-content", action="store_true", help="leave content and salt out")
    export.add_argument("out", type=Path, help="bundle file to write (.jsonl)")
    bind(export, run_export_bundle)

    accept = isub.add_parser(
        "accept-loss",
        help="after a restore older than an exported checkpoint (and no later backup holding "
        "the events): sign the log's loss statement so that it signs on in a new epoch",
    )
    common(accept)
    accept.add_argument(
        "--database-url",
        help="the store (default: integrity.database_url, else the suite's database)",
    )
    accept.add_argument("--log", required=True, help="the log (tenant id)")
    accept.add_argument(
        "--reason", required=True, help="why the loss is accepted (one line, 1-500 characters)"
    )
    accept.add_argument(
        "--checkpoint-dir", type=Path, help="the notary's checkpoint directory (default: config)"
    )
    bind(accept, run_accept_loss)
