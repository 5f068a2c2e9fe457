"""Accepting a loss after an older restore: a signed statement, and the log signs on in a new epoch.

A store taken back behind a checkpoint it signed and exported (a restore from
an older backup, a PITR that lost the last WAL) is held by the notary: new
events at the lost sequences under the same origin would fork the exported
history. ``aiaudit integrity accept-loss`` signs the statement of epoch n+1
(``<prefix>/<log>/epoch-<n+1>``), which continues the store's own tree at
its size M and names the lost checkpoint of size N; the running notary picks
it up, signs the new events under the new origin into ``epoch-<n+1>/``, and
``verify`` reports the lost sequences as a warning, while every statement or
checkpoint that does not fit the chain is damage.

The store is taken back as a restore leaves it (:func:`take_back`): every
row of the log at or past M deleted, the nodes, checkpoints and cursors past
M with them; ``test_backup_restore.py`` does the same with ``pg_dump`` and
``pg_restore`` and ends with this command too. Each test has a database of
its own (``postgres`` below): a log held behind its exports would make every
later test's notary on the session's database report NOT_SERVING.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import logging
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
import yaml

from aiaudit.cli.main import main
from aiaudit.common import leader
from aiaudit.common.store import SqlEventStore, open_store
from aiaudit.common.v1 import proof_pb2
from aiaudit.integrity import loss, merkle, note, storage, worm
from aiaudit.integrity.notary import Notary
from aiaudit.integrity.signers import ActiveKey, FileKeys, KeySource, SignerUnavailableError
from aiaudit.integrity.v1 import integrity_service_pb2 as pb
from aiaudit.integrity.verify import Report, verify_store
from aiaudit.search.integrity_client import IntegrityClient
from tests import go_verifier as go
from tests.conftest import Postgres, Running
from tests.helpers import error_info, field_violations, wait_until
from tests.integrity.conftest import ORIGIN_PREFIX, Notaries, append, leaf_hashes, notary_config
from tests.integrity.test_service import integrity

REASON = "PITR lost the last WAL segment; no later backup holds the events (ticket OPS-1)"


@pytest.fixture
def postgres(own_postgres: Postgres) -> Postgres:
    """Each test a database of its own: a log held behind its exports stays held."""
    return own_postgres


@dataclasses.dataclass
class Site:
    """A store, its notary's key and checkpoint directory, and the commands an operator runs."""

    store: SqlEventStore
    notary_url: str
    admin_url: str
    tenant: str
    tmp_path: Path
    keys: FileKeys

    @property
    def checkpoints(self) -> Path:
        return self.tmp_path / "checkpoints"

    def sign(self) -> list[bool]:
        """One notary round on the store, then the notary stops; the health it reported."""
        with self.stepped() as (one, health):
            one.step()
            return health

    @contextlib.contextmanager
    def stepped(self, keys: KeySource | None = None) -> Iterator[tuple[Notary, list[bool]]]:
        """A notary on the store that the test steps, each round integrating then signing;
        the health it reports. Stopped at the end."""
        store = open_store(self.notary_url)
        config = dataclasses.replace(notary_config(self.tmp_path, interval=0.0), poll_interval=0.0)
        health: list[bool] = []
        one = Notary(
            store.engine, keys or self.keys, leader.for_engine(store.engine, leader.NOTARY),
            config, health.append,
        )  # fmt: skip
        try:
            yield one, health
        finally:
            one.stop()
            store.close()

    def take_back(self, size: int) -> None:
        """The store as a restore of a backup taken at ``size`` leaves it (all integrated)."""
        engine = sa.create_engine(self.admin_url)
        params = {"t": self.tenant, "m": size}
        try:
            with engine.begin() as conn:
                for table in ("event_content", "events", "log_entries"):
                    conn.execute(
                        sa.text(f"DELETE FROM {table} WHERE log_id = :t AND seq >= :m"), params
                    )
                for level in range(40):
                    conn.execute(
                        sa.text(
                            "DELETE FROM integrity_nodes WHERE log_id = :t AND level = :l "
                            "AND (idx + 1) * :w > :m"
                        ),
                        {**params, "l": level, "w": 2**level},
                    )
                conn.execute(
                    sa.text(
                        "DELETE FROM integrity_checkpoints WHERE log_id = :t AND tree_size > :m"
                    ),
                    params,
                )
                conn.execute(
                    sa.text(
                        "UPDATE consumer_cursors SET position = :m WHERE log_id = :t "
                        "AND position > :m"
                    ),
                    params,
                )
                if conn.dialect.name == "postgresql":  # the head only grows (a trigger)
                    conn.execute(sa.text("ALTER TABLE logs DISABLE TRIGGER logs_head_grows"))
                conn.execute(sa.text("UPDATE logs SET size = :m WHERE log_id = :t"), params)
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.text("ALTER TABLE logs ENABLE TRIGGER logs_head_grows"))
        finally:
            engine.dispose()

    def accept_loss(self, reason: str = REASON) -> int:
        config = self.tmp_path / "accept.yaml"
        config.write_text(yaml.safe_dump({"integrity": {"origin_prefix": ORIGIN_PREFIX}}))
        return main(
            [
                "integrity", "accept-loss", "--config", str(config),
                "--data-dir", str(self.tmp_path), "--database-url", self.notary_url,
                "--log", self.tenant, "--reason", reason,
            ]
        )  # fmt: skip

    def verify(self) -> Report:
        engine = sa.create_engine(self.admin_url)
        try:
            return verify_store(
                engine, self.keys.verifier_keys(), ORIGIN_PREFIX, self.checkpoints, [self.tenant]
            )
        finally:
            engine.dispose()

    def verify_argv(self) -> list[str]:
        """``aiaudit verify`` of the log against the notary's directory, as an operator runs it."""
        key = self.keys.verifier_keys()[0].encode()
        argv = ["verify", "--database-url", self.admin_url, "--log", self.tenant]
        argv += ["--verifier-key", key, "--origin-prefix", ORIGIN_PREFIX]
        return [*argv, "--checkpoint-dir", str(self.checkpoints)]

    def exported(self, epoch: int = 0) -> list[int]:
        return [size for size, _ in worm.read_all(self.checkpoints, self.tenant, epoch)]

    def signed_to(self, sizes: list[int], epoch: int = 0) -> None:
        """Waits for a running notary to export ``sizes`` of ``epoch`` and store the last.

        It stores a checkpoint after exporting it: a store taken back before
        then got the row back past its new end, which accept-loss names as damage.
        """
        wait_until(lambda: self.exported(epoch) == sizes)
        engine = sa.create_engine(self.admin_url)
        try:

            def stored() -> bool:
                with engine.connect() as conn:
                    cp = storage.latest_checkpoint(conn, self.tenant)
                    return cp is not None and cp.tree_size == sizes[-1]

            wait_until(stored)
        finally:
            engine.dispose()

    def statement(self, epoch: int) -> Path:
        return worm.statement_path(self.checkpoints, self.tenant, epoch)


@pytest.fixture
def site(
    store: SqlEventStore, notary_url: str, admin_url: str, tenant: str, tmp_path: Path
) -> Site:
    return Site(
        store, notary_url, admin_url, tenant, tmp_path,
        FileKeys(ORIGIN_PREFIX, tmp_path / "notary-ed25519.pem"),
    )  # fmt: skip


def lost_at(site: Site, kept: int, exported: int) -> None:
    """``kept`` more events signed, then the log signed and exported to size ``exported``, and
    the store taken back to the first checkpoint."""
    append(site.store, site.tenant, kept)
    assert site.sign()[-1] is True
    back = site.exported()[-1]
    append(site.store, site.tenant, exported - back)
    assert site.sign()[-1] is True
    site.take_back(back)


def test_an_accepted_loss_lets_the_running_notary_sign_on_in_epoch_1(
    site: Site,
    notaries: Notaries,
    store_url: str,
    go_verifier: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    lost_at(site, 10, 26)
    append(site.store, site.tenant, 5)  # new events at the lost sequences 10..14
    health: list[bool] = []
    notaries.start(site.keys, on_health=health.append)
    wait_until(lambda: health and health[-1] is False)
    assert site.exported() == [10, 26]

    capsys.readouterr()
    assert site.accept_loss() == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"log {site.tenant}: loss statement of epoch 1 written to {site.statement(1)}"
    assert f"epoch 1 ({ORIGIN_PREFIX}/{site.tenant}/epoch-1) continues " in out[1]
    assert out[1].endswith("; sequences 10..25 of its checkpoint of size 26 are lost")
    statement = loss.open_statement(site.statement(1).read_bytes(), site.keys.verifier_keys())
    assert (statement.size, statement.lost_size, statement.reason) == (10, 26, REASON)
    assert oct(site.statement(1).stat().st_mode & 0o777) == "0o444"

    # The running notary, not restarted, signs the new events in epoch 1.
    wait_until(lambda: site.exported(1) == [15] and health[-1] is True)
    assert site.exported() == [10, 26]
    append(site.store, site.tenant, 2)
    wait_until(lambda: site.exported(1) == [15, 17])

    report = site.verify()
    assert [str(p) for p in report.problems] == []
    assert [str(w) for w in report.warnings] == [
        f"log {site.tenant}: epoch 1 began at size 10 after a loss accepted at "
        f"{statement.time} (reason: {REASON}): sequences 10..25 of epoch 0 (its checkpoint of "
        "size 26) are lost"
    ]

    # A new event's inclusion proof verifies against the epoch-1 checkpoint.
    engine = sa.create_engine(site.admin_url)
    try:
        with engine.connect() as conn:
            cp = storage.latest_checkpoint(conn, site.tenant)
            assert cp is not None and cp.tree_size == 17
            proof = merkle.inclusion_proof(12, 17, storage.NodeTable(conn, site.tenant))
    finally:
        engine.dispose()
    opened = note.open_checkpoint(
        cp.signed_note, site.keys.verifier_keys(), f"{ORIGIN_PREFIX}/{site.tenant}/epoch-1"
    )
    merkle.verify_inclusion(
        12, 17, leaf_hashes(site.admin_url, site.tenant)[12], proof, opened.root_hash
    )

    # aiaudit verify: exit 0, the loss a warning.
    capsys.readouterr()
    assert main([*site.verify_argv()]) == 0
    out = capsys.readouterr()
    assert out.out.splitlines() == [f"warning: {w}" for w in report.warnings]
    assert out.err.splitlines()[-1].endswith(": 0 problem(s), 1 warning(s) (no damage)")

    # An export bundle verifies with both verifiers, which name epoch 1.
    bundle = site.tmp_path / "bundle.jsonl"
    export = ["integrity", "export-bundle", "--database-url", site.notary_url, "--log"]
    export += [site.tenant, "--record-database-url", store_url, "--requested-by", "auditor"]
    assert main([*export, "--count", "17", str(bundle)]) == 0
    key = site.keys.verifier_keys()[0].encode()
    check = ["--verifier-key", key, "--origin-prefix", ORIGIN_PREFIX]
    capsys.readouterr()
    assert main(["verify", "--bundle", str(bundle), *check]) == 0
    ours = [line for line in capsys.readouterr().err.splitlines() if line.startswith("log ")]
    assert any(
        f"checkpoint {ORIGIN_PREFIX}/{site.tenant}/epoch-1 size 17 root" in line for line in ours
    ), ours
    theirs = go.run(go_verifier, "bundle", *(a.replace("--", "-", 1) for a in check), bundle)
    assert theirs.returncode == 0, theirs.stdout + theirs.stderr
    assert [line for line in theirs.stdout.splitlines() if line.startswith("log ")] == ours


def test_nothing_is_accepted_where_nothing_was_lost_nor_twice(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not behind its exports: exit 2, nothing written. Once accepted and signed on, a second
    run finds epoch 1 there and the log no longer behind: no second epoch."""
    append(site.store, site.tenant, 4)
    assert site.sign()[-1] is True
    capsys.readouterr()
    assert site.accept_loss() == 2
    assert capsys.readouterr().err == (
        f"aiaudit integrity accept-loss: log {site.tenant}: nothing to accept: its store holds "
        f"4 integrated leaves, and the largest exported checkpoint of {ORIGIN_PREFIX}/"
        f"{site.tenant} has size 4\n"
    )
    assert worm.epochs(site.checkpoints, site.tenant) == []

    append(site.store, site.tenant, 6)
    assert site.sign()[-1] is True
    site.take_back(4)
    append(site.store, site.tenant, 2)
    assert site.accept_loss() == 0
    written = site.statement(1).read_bytes()
    capsys.readouterr()
    assert site.accept_loss() == 2  # before the notary signed epoch 1
    assert "nothing to accept: its store holds 4 integrated leaves" in capsys.readouterr().err
    assert site.sign()[-1] is True
    assert site.exported(1) == [6]
    assert site.accept_loss() == 2  # and after
    assert (
        f"the largest exported checkpoint of {ORIGIN_PREFIX}/{site.tenant}/epoch-1 has size 6"
        in (capsys.readouterr().err)
    )
    assert worm.epochs(site.checkpoints, site.tenant) == [1]
    assert site.statement(1).read_bytes() == written


def test_a_store_whose_tree_is_not_its_exported_checkpoint_s_is_damage_not_loss(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    """The store's tree at an exported size it still holds differs from that checkpoint
    (here its own row deleted and a node rewritten, so the store agrees with itself):
    no statement covers that, exit 2, nothing written. The first such size is named."""
    append(site.store, site.tenant, 4)
    assert site.sign()[-1] is True  # checkpoint 4, below the M of the loss
    lost_at(site, 6, 26)  # checkpoints 10 and 26, then back to 10
    engine = sa.create_engine(site.admin_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text("DELETE FROM integrity_checkpoints WHERE log_id = :t"), {"t": site.tenant}
            )
            conn.execute(
                sa.text(
                    "UPDATE integrity_nodes SET hash = :h "
                    "WHERE log_id = :t AND level = 2 AND idx = 0"
                ),
                {"t": site.tenant, "h": bytes(32)},
            )
    finally:
        engine.dispose()
    capsys.readouterr()
    assert site.accept_loss() == 2
    assert capsys.readouterr().err == (
        f"aiaudit integrity accept-loss: log {site.tenant}: the store's tree at size 4 is not "
        f"the one its exported checkpoint of {ORIGIN_PREFIX}/{site.tenant} signed: that is "
        "damage, not a loss; run aiaudit verify\n"
    )
    assert worm.epochs(site.checkpoints, site.tenant) == []


def accepted(site: Site) -> None:
    """Lost 10..25, accepted, and epoch 1 signed to size 15."""
    lost_at(site, 10, 26)
    append(site.store, site.tenant, 5)
    assert site.accept_loss() == 0
    assert site.sign()[-1] is True
    assert site.exported(1) == [15]


def problems(site: Site) -> list[str]:
    return [p.what for p in site.verify().problems]


def sign_text(site: Site, text: str) -> str:
    return note.sign_note(text, [site.keys.active().signer])


def test_a_statement_altered_by_one_byte_is_damage(site: Site) -> None:
    accepted(site)
    path = site.statement(1)
    data = path.read_bytes().replace(b"ticket OPS-1", b"ticket OPS-7")
    path.chmod(0o644)
    path.write_bytes(data)
    found = problems(site)
    assert f"loss statement {path}: invalid signature for key {ORIGIN_PREFIX}+" in found[0]
    assert (
        f"exported checkpoint of epoch 1 at size 15 is of {ORIGIN_PREFIX}/{site.tenant}/epoch-1,"
        " which no valid loss statement begins (signed without one, or copied in?)"
    ) in found
    assert any(
        p.startswith("exported checkpoint at size 26 covers sequences 15..25") for p in found
    ), found


def test_a_statement_continuing_another_tree_is_damage_and_holds_the_log(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """Signed with the real key, but its ``continues`` root is not the store's at M: verify
    names it by its path; the notary ignores it (one error) and the log stays held."""
    lost_at(site, 10, 26)
    append(site.store, site.tenant, 5)
    lost = dict(
        (cp.size, cp.root_hash)
        for cp in (
            note.open_checkpoint(text, site.keys.verifier_keys())
            for _, text in worm.read_all(site.checkpoints, site.tenant)
        )
    )
    statement = loss.LossStatement(
        f"{ORIGIN_PREFIX}/{site.tenant}/epoch-1",
        f"{ORIGIN_PREFIX}/{site.tenant}",
        10,
        bytes(32),
        26,
        lost[26],
        loss.now(),
        REASON,
    )
    path = worm.write_statement(
        site.checkpoints, site.tenant, 1, sign_text(site, loss.format_statement(statement))
    )
    assert f"loss statement {path} at size 10: the tree rebuilt from the stored events has" in (
        " ".join(problems(site))
    )
    with caplog.at_level(logging.ERROR, "aiaudit.integrity.notary"):
        assert site.sign()[-1] is False
    ignored = [r.getMessage() for r in caplog.records if "is ignored" in r.getMessage()]
    assert ignored == [
        f"log {site.tenant}: loss statement {path}: it continues at size 10 with root "
        f"{'A' * 43}=, and the store's tree has root "
        f"{base64.b64encode(site_root(site, 10)).decode()} there; the statement is ignored"
    ]
    assert site.exported(1) == []


def site_root(site: Site, size: int) -> bytes:
    engine = sa.create_engine(site.admin_url)
    try:
        with engine.connect() as conn:
            return merkle.root_at(size, storage.NodeTable(conn, site.tenant))
    finally:
        engine.dispose()


def test_an_epoch_checkpoint_without_its_statement_is_damage(site: Site) -> None:
    """A checkpoint of epoch 1 signed with the real key and copied into ``epoch-1/`` while no
    statement begins that epoch."""
    lost_at(site, 10, 26)
    origin = f"{ORIGIN_PREFIX}/{site.tenant}/epoch-1"
    text = sign_text(site, note.format_checkpoint(note.Checkpoint(origin, 12, bytes(32))))
    key_id = site.keys.verifier_keys()[0].key_id
    worm.export(site.checkpoints, site.tenant, 12, key_id, text, epoch=1)
    assert (
        f"exported checkpoint of epoch 1 at size 12 is of {origin}, which no valid loss "
        "statement begins (signed without one, or copied in?)"
    ) in problems(site)


def test_an_epoch_0_checkpoint_past_the_statement_is_damage_and_holds_the_log(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """Signed under the old origin after the loss was accepted, past what the statement
    says was lost: no statement covers it."""
    accepted(site)
    origin = f"{ORIGIN_PREFIX}/{site.tenant}"
    text = sign_text(site, note.format_checkpoint(note.Checkpoint(origin, 30, bytes(32))))
    worm.export(site.checkpoints, site.tenant, 30, site.keys.verifier_keys()[0].key_id, text)
    assert problems(site) == [
        f"loss statement {site.statement(1)}: lost size 26 is not the largest exported "
        f"checkpoint of {origin} (30)",
        f"exported checkpoint at size 30 of {origin} is past the loss statement of {origin}/"
        "epoch-1, which covers sizes up to 26 only (signed after the loss was accepted, or "
        "copied in?)",
    ]
    append(site.store, site.tenant, 1)
    with caplog.at_level(logging.ERROR, "aiaudit.integrity.notary"):
        assert site.sign()[-1] is False
    assert site.exported(1) == [15]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        f"log {site.tenant} not integrated nor signed: its exported checkpoint of size 30 is "
        f"past the loss statement of {origin}/epoch-1, which covers sizes up to 26 only; run "
        "aiaudit verify"
    ]


def test_a_second_older_restore_begins_epoch_2(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    """Epoch 1 signed to 20, then a restore older than epoch 1's beginning (M=8 < 10): the
    log is held again; a second statement continues epoch 1 at 8, and epoch 2 signs on."""
    accepted(site)
    append(site.store, site.tenant, 5)
    assert site.sign()[-1] is True
    assert site.exported(1) == [15, 20]
    site.take_back(8)
    append(site.store, site.tenant, 3)
    assert site.sign()[-1] is False  # behind epoch 0's checkpoint 10 and epoch 1's 20
    assert site.accept_loss() == 0
    second = loss.open_statement(site.statement(2).read_bytes(), site.keys.verifier_keys())
    assert (second.previous, second.size, second.lost_size) == (
        f"{ORIGIN_PREFIX}/{site.tenant}/epoch-1",
        8,
        20,
    )
    assert site.sign()[-1] is True
    assert site.exported(2) == [11]
    report = site.verify()
    assert report.problems == []
    assert [w.what.split(": sequences ")[1] for w in report.warnings] == [
        "10..25 of epoch 0 (its checkpoint of size 26) are lost",
        "8..19 of epoch 1 (its checkpoint of size 20) are lost",
    ]
    capsys.readouterr()
    assert site.accept_loss() == 2
    assert "nothing to accept" in capsys.readouterr().err


class OperatorAtSigning:
    """The site's keys, running a command of the operator's when the notary next asks for its
    signing key: after that round's integration pass, before it picks what to sign."""

    def __init__(self, keys: FileKeys) -> None:
        self.keys = keys
        self.command: Callable[[], None] | None = None

    def active(self) -> ActiveKey:
        command, self.command = self.command, None
        if command is not None:
            command()
        return self.keys.active()

    def verifier_keys(self) -> list[note.VerifierKey]:
        return self.keys.verifier_keys()


def test_a_statement_written_while_a_round_holds_the_log_signs_the_events_past_it(
    site: Site,
) -> None:
    """accept-loss ran after the running notary's integration pass had held the log (no
    statement yet) and before its signing, which read the statement, took the log into
    epoch 2 and signed its cursor: epoch 2's first checkpoint was 8, its statement's size,
    without the 3 events waiting past it (signed a round later), about one run in ten with
    the suite's notary running. The round leaves a held log to the next integration pass,
    which integrates them first. That pass tries every held log: one with nothing new past
    its cursor (held at a takeover, below epoch 2's checkpoint of 15) signs epoch 3 at its
    statement's size once accepted, and is not left held."""
    accepted(site)
    append(site.store, site.tenant, 5)
    assert site.sign()[-1] is True
    site.take_back(8)
    append(site.store, site.tenant, 3)
    keys = OperatorAtSigning(site.keys)
    with site.stepped(keys) as (notary, health):
        notary.step()
        assert (health[-1], site.exported(2)) == (False, [])  # behind epoch 1's statement

        def accept() -> None:
            assert site.accept_loss() == 0

        keys.command = accept
        notary.step()
        assert keys.command is None and site.statement(2).is_file()
        assert site.exported(2) == []
        notary.step()
        assert (health[-1], site.exported(2)) == (True, [11])

    append(site.store, site.tenant, 4)
    assert site.sign()[-1] is True
    site.take_back(12)
    with site.stepped() as (notary, health):
        notary.step()
        assert (health[-1], site.exported(3)) == (False, [])  # behind epoch 2's 15
        assert site.accept_loss() == 0
        notary.step()
        assert (health[-1], site.exported(2), site.exported(3)) == (True, [11, 15], [12])


def test_a_log_held_for_a_round_by_an_unreadable_statement_is_signed_once_it_reads(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """A notary taking the lead with a log integrated past its checkpoint and nothing new
    (the last leader's signing failed) could not read the log's loss statement (an I/O
    error): the round held the log, then dropped it from the logs to sign and reported
    SERVING, and with no new event its checkpoint was not signed until the next event or
    takeover. It stays held, NOT_SERVING, with one warning (not one every round, as each
    round tries it again), and the next round that reads it signs it."""
    accepted(site)
    append(site.store, site.tenant, 3)
    keys = OperatorAtSigning(site.keys)

    def vault_sealed() -> None:
        raise SignerUnavailableError("Vault is sealed")

    keys.command = vault_sealed
    with site.stepped(keys) as (notary, health):
        notary.step()
        assert (health[-1], site.exported(1)) == (False, [15])  # 18 integrated, not signed
    statement = site.statement(1)
    aside = site.tmp_path / "statement-aside"
    statement.rename(aside)
    statement.symlink_to("/proc/self/mem")  # a regular file whose reads fail with EIO
    with site.stepped() as (notary, health), caplog.at_level(logging.WARNING):
        notary.step()
        notary.step()
        assert (health[-1], site.exported(1)) == (False, [15])
        assert caplog.text.count("loss statements cannot be read or checked") == 1
        statement.unlink()
        aside.rename(statement)
        notary.step()
        assert (health[-1], site.exported(1)) == (True, [15, 18])


def test_a_consistency_proof_across_the_loss_is_refused_and_within_the_prefix_served(
    site: Site, suite: Running
) -> None:
    """The suite's own notary: from size 10 (within the prefix epoch 1 shares) to epoch 1's
    checkpoint the proof verifies against the epoch-0 checkpoint of 10; from a lost size
    (11..26) it would verify against no checkpoint of epoch 0, so the answer says why, naming
    both origins. VerifyEvent accepts the epoch-1 checkpoint."""
    append(site.store, site.tenant, 10)
    site.signed_to([10])
    append(site.store, site.tenant, 16)
    site.signed_to([10, 26])
    site.take_back(10)
    receipts = append(site.store, site.tenant, 5)
    assert site.accept_loss() == 0
    site.signed_to([15], 1)
    old = note.open_checkpoint(
        dict(worm.read_all(site.checkpoints, site.tenant))[10], site.keys.verifier_keys()
    )
    stub = integrity(suite)
    request = pb.GetConsistencyProofRequest(log_id=site.tenant, from_size=10, to_size=15)
    proof = stub.GetConsistencyProof(request).proof
    new = stub.GetCheckpoint(pb.GetCheckpointRequest(log_id=site.tenant, tree_size=15))
    opened = note.open_checkpoint(
        new.checkpoint.signed_note,
        site.keys.verifier_keys(),
        f"{ORIGIN_PREFIX}/{site.tenant}/epoch-1",
    )
    merkle.verify_consistency(10, 15, old.root_hash, opened.root_hash, proof.hashes)

    with pytest.raises(grpc.RpcError) as refused:
        stub.GetConsistencyProof(
            pb.GetConsistencyProofRequest(log_id=site.tenant, from_size=12, to_size=15)
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    origin = f"{ORIGIN_PREFIX}/{site.tenant}"
    assert error_info(refused.value) == (
        "ACROSS_A_LOSS",
        {"from_origin": origin, "to_origin": f"{origin}/epoch-1"},
    )
    assert "the loss statement of epoch 1 continues epoch 0 at size 10" in str(
        refused.value.details()
    )

    verdict = stub.VerifyEvent(
        pb.VerifyEventRequest(log_id=site.tenant, event_id=receipts[2].event_id)
    )
    assert verdict.status == pb.VERIFY_STATUS_VERIFIED, verdict.problems


def signed(site: Site, size: int, epoch: int = 0) -> note.Checkpoint:
    """The exported checkpoint of ``epoch`` at ``size``, opened."""
    text = dict(worm.read_all(site.checkpoints, site.tenant, epoch))[size]
    origin = f"{ORIGIN_PREFIX}/{site.tenant}" + (f"/epoch-{epoch}" if epoch else "")
    return note.open_checkpoint(text, site.keys.verifier_keys(), origin)


def refusal(call: Callable[[], object]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        call()
    return refused.value


def test_a_consistency_proof_from_a_size_both_epochs_signed_goes_by_the_caller_s_origin(
    site: Site, request: pytest.FixtureRequest
) -> None:
    """Epoch 1 signs size 26 again, the size of epoch 0's lost checkpoint: the two histories
    have different trees there. Without ``from_origin`` the answer is as before: the proof
    from epoch 1's checkpoint of 26, which fails against epoch 0's, unexplained. With it, the
    caller holding epoch 0's checkpoint is told why (ACROSS_A_LOSS), the one holding epoch 1's
    gets the proof, and so does epoch 0's caller from a size both epochs share. The history
    is signed by a notary the test steps; the suite serves it once it is there."""
    accepted(site)
    append(site.store, site.tenant, 11)
    assert site.sign()[-1] is True
    append(site.store, site.tenant, 4)
    assert site.sign()[-1] is True
    assert site.exported(1) == [15, 26, 30]
    suite: Running = request.getfixturevalue("suite")
    stub = integrity(suite)
    origin = f"{ORIGIN_PREFIX}/{site.tenant}"
    latest = signed(site, 30, 1)

    def proof(from_size: int, from_origin: str = "") -> list[bytes]:
        request = pb.GetConsistencyProofRequest(
            log_id=site.tenant, from_size=from_size, to_size=30, from_origin=from_origin
        )
        return list(stub.GetConsistencyProof(request).proof.hashes)

    with pytest.raises(merkle.ProofError):  # as before the field: epoch 1's proof
        merkle.verify_consistency(26, 30, signed(site, 26).root_hash, latest.root_hash, proof(26))
    refused = refusal(lambda: proof(26, origin))
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(refused) == (
        "ACROSS_A_LOSS",
        {"from_origin": origin, "to_origin": f"{origin}/epoch-1"},
    )
    assert refused.details() == (
        f"log {site.tenant!r}: a checkpoint of {origin} at size 26 is no prefix of "
        f"{origin}/epoch-1's tree: the loss statement of epoch 1 continues epoch 0 at size 10, "
        f"and sizes 11..26 of epoch 0 were lost (ask from a size of at most 10, or of "
        f"{origin}/epoch-1's own checkpoints)"
    )
    # Search's client (the seal of an export) sends the origin of the checkpoint it holds.
    search = IntegrityClient(suite.address, None, 10.0)
    try:
        text = dict(worm.read_all(site.checkpoints, site.tenant))[26]
        held = proof_pb2.Checkpoint(log_id=site.tenant, tree_size=26, signed_note=text)
        bearer = (("authorization", f"Bearer {suite.keys['admin']}"),)
        refused = refusal(lambda: search.consistency(bearer, site.tenant, held, 30))
        assert error_info(refused)[0] == "ACROSS_A_LOSS"
    finally:
        search.close()
    ours = signed(site, 26, 1).root_hash
    merkle.verify_consistency(26, 30, ours, latest.root_hash, proof(26, f"{origin}/epoch-1"))
    ten = signed(site, 10).root_hash
    merkle.verify_consistency(10, 30, ten, latest.root_hash, proof(10, origin))

    for other, why in [
        (f"{ORIGIN_PREFIX}/t-other", "is no origin of log"),
        (f"{origin}/epoch-01", "is no origin of log"),
        (f"{origin}/epoch-2", f"log {site.tenant!r} has no epoch 2"),
    ]:
        refused = refusal(lambda other=other: proof(26, other))
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT, other
        assert why in field_violations(refused)["from_origin"], other


def test_a_consistency_proof_refused_in_epoch_2_names_the_statement_that_parts_the_histories(
    site: Site, request: pytest.FixtureRequest
) -> None:
    """Epoch 1 (10, losing 11..26) signed 15 and 20; restored to 8, epoch 2 (8, losing 9..20)
    signed 11 and 30. Every refusal named epoch 1's statement, and said that epoch 2
    continued epoch 0 at 10: a caller from 12 (which both statements lost) is most likely
    holding epoch 1's checkpoint, which epoch 2's statement parts from epoch 2's tree at 8;
    from 22 only epoch 0 signed (epoch 1's statement); epoch 0's tree at 9 is epoch 1's, which
    epoch 2 leaves at 8."""
    accepted(site)
    append(site.store, site.tenant, 5)
    assert site.sign()[-1] is True
    site.take_back(8)
    append(site.store, site.tenant, 3)
    assert site.accept_loss() == 0
    assert site.sign()[-1] is True
    append(site.store, site.tenant, 19)
    assert site.sign()[-1] is True
    assert (site.exported(1), site.exported(2)) == ([15, 20], [11, 30])
    suite: Running = request.getfixturevalue("suite")
    stub = integrity(suite)
    origin = f"{ORIGIN_PREFIX}/{site.tenant}"
    first, second = f"{origin}/epoch-1", f"{origin}/epoch-2"

    def refused(from_size: int, from_origin: str = "") -> grpc.RpcError:
        request = pb.GetConsistencyProofRequest(
            log_id=site.tenant, from_size=from_size, to_size=30, from_origin=from_origin
        )
        error = refusal(lambda: stub.GetConsistencyProof(request))
        assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
        return error

    def why(epoch: int, from_origin: str, from_size: int) -> str:
        begins = {
            1: "epoch 1 continues epoch 0 at size 10, and sizes 11..26 of epoch 0",
            2: "epoch 2 continues epoch 1 at size 8, and sizes 9..20 of epoch 1",
        }[epoch]
        return (
            f"log {site.tenant!r}: a checkpoint of {from_origin} at size {from_size} is no "
            f"prefix of {second}'s tree: the loss statement of {begins} were lost (ask from a "
            f"size of at most 8, or of {second}'s own checkpoints)"
        )

    for from_size, from_origin, statement, named in [
        (12, "", 2, first),
        (22, "", 1, origin),
        (12, first, 2, first),
        (12, origin, 1, origin),
        (9, origin, 2, origin),
    ]:
        error = refused(from_size, from_origin)
        assert error_info(error) == (
            "ACROSS_A_LOSS",
            {"from_origin": named, "to_origin": second},
        ), (from_size, from_origin)
        assert error.details() == why(statement, named, from_size)
    request = pb.GetConsistencyProofRequest(
        log_id=site.tenant, from_size=8, to_size=30, from_origin=origin
    )
    assert stub.GetConsistencyProof(request).proof.hashes  # the prefix all three share


ROOT = base64.b64encode(bytes(range(32))).decode()
STATEMENT = (
    f"{loss.FORMAT}\nP/acme/epoch-1\ncontinues P/acme 10 {ROOT}\nlost 26 {ROOT}\n"
    "time 2026-12-07T06:22:32Z\nreason no later backup holds them\n"
)


@pytest.mark.parametrize(
    ("spelt", "why"),
    [
        (("continues P/acme 10", "continues P/acme 010"), "without leading zeroes"),
        (("lost 26", "lost  26"), "separated by single spaces"),
        ((ROOT + "\nlost", ROOT.rstrip("=") + "\nlost"), "continues root is not base64"),
        (("lost 26", "lost 10"), "nothing lost"),
        (("06:22:32Z", "06:22:32.5Z"), "time <RFC 3339 UTC, seconds>"),
        (("2026-12-07", "2026-02-30"), "is no date"),
        (("reason no", "reason  no"), "must not begin or end with white space"),
        (("reason no later", "reason no\u2028later"), "one line without control characters"),
        (("reason no later backup holds them", "reason " + "x" * 501), "1-500 characters"),
        ((loss.FORMAT, "aiaudit.loss/v2"), "not a aiaudit.loss/v1 statement"),
        (("them\n", "them\nextra\n"), "not a aiaudit.loss/v1 statement"),
    ],
)
def test_a_statement_is_read_in_its_one_spelling(spelt: tuple[str, str], why: str) -> None:
    """Read strictly, as checkpoints and receipts are: what a person or another parser could
    read otherwise is refused, and what is written reads back as written."""
    read = loss.parse_statement(STATEMENT)
    assert loss.format_statement(read) == STATEMENT
    with pytest.raises(note.NoteError, match=re.escape(why)):
        loss.parse_statement(STATEMENT.replace(*spelt, 1))
    with pytest.raises(note.NoteError):  # never read as a checkpoint
        note.parse_checkpoint(STATEMENT)


def test_a_store_taken_back_below_the_statement_s_size_is_held(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """The statement signs epoch 1's tree at M=12: a store below M (restored older still
    before epoch 1 signed anything, or the statement signed on another copy of the database)
    held no checkpoint of epoch 0 in 11..12 and none of epoch 1, and the notary signed new
    events at 11.. under epoch 1: a checkpoint of epoch 1 that is not the tree its statement
    signed at 12 (review, 2026-12-07)."""
    append(site.store, site.tenant, 10)
    assert site.sign()[-1] is True
    append(site.store, site.tenant, 16)
    assert site.sign()[-1] is True
    assert site.exported() == [10, 26]
    site.take_back(12)
    assert site.accept_loss() == 0
    site.take_back(11)
    append(site.store, site.tenant, 3)
    with caplog.at_level(logging.ERROR, "aiaudit.integrity.notary"):
        assert site.sign()[-1] is False
    assert site.exported(1) == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        f"log {site.tenant} not integrated nor signed: its 11 integrated leaves are behind "
        f"the loss statement of {ORIGIN_PREFIX}/{site.tenant}/epoch-1, which continues "
        f"{ORIGIN_PREFIX}/{site.tenant} at size 12 (the store restored from a backup older "
        "still, or the statement signed on another copy of the database?); run aiaudit verify"
    ]


@pytest.mark.parametrize("kept", [10, 0], ids=["at its stored checkpoint", "before any event"])
def test_a_quiet_log_restored_behind_its_exports_is_held_when_the_notary_takes_the_lead(
    site: Site, caplog: pytest.LogCaptureFixture, kept: int
) -> None:
    """A store taken back to where its own latest checkpoint equals its leaf count (or to
    before the log's first event), with no event since: nothing to integrate, nothing to
    sign, so a notary taking the lead loaded no such log and reported nothing, SERVING
    until the log's next event (2026-12-07). Its first round now compares every log with
    its exported folder: held, NOT_SERVING, named once, with no event appended. Once the
    loss is accepted the same notary serves again, and signs the next events in epoch 1."""
    append(site.store, site.tenant, 10)
    assert site.sign()[-1] is True
    append(site.store, site.tenant, 16)
    assert site.sign()[-1] is True
    assert site.exported() == [10, 26]
    site.take_back(kept)
    with site.stepped() as (notary, health), caplog.at_level(logging.ERROR):
        notary.step()
        notary.step()
        assert health == [False, False]
        assert site.accept_loss() == 0
        notary.step()
        assert (health[-1], site.exported(1)) == (True, [])
        append(site.store, site.tenant, 2)
        notary.step()
        assert (health[-1], site.exported(1)) == (True, [kept + 2])
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        f"log {site.tenant} not integrated nor signed: its {kept} integrated leaves are behind "
        f"its checkpoint of size 26, signed and exported to {site.checkpoints} (the store "
        f"restored from an older backup? sequences {kept}..25 are missing, and signing new "
        "events at them would fork the exported history); run aiaudit verify, and once no "
        f"later backup holds them, aiaudit integrity accept-loss --log {site.tenant}"
    ]
    assert site.exported() == [10, 26]


def test_a_lost_checkpoint_stored_in_the_database_is_damage(site: Site) -> None:
    """The store holds epoch 1's tree past M, so a row of epoch 0's lost checkpoint of 26
    (its exported copy inserted by whoever may write rows) is of a history the store does not
    hold: the notary is held behind it ("do not extend its checkpoint of 26"), and verify,
    which took every lost checkpoint for the statement's warning, found nothing wrong (review,
    2026-12-07)."""
    accepted(site)
    text = dict(worm.read_all(site.checkpoints, site.tenant))[26]
    cp = note.open_checkpoint(text, site.keys.verifier_keys())
    now = dt.datetime.now(dt.UTC)
    engine = sa.create_engine(site.admin_url)
    try:
        with engine.begin() as conn:
            storage.insert_checkpoints(
                conn,
                [storage.StoredCheckpoint(site.tenant, 26, cp.root_hash, text, now, "v1")],
            )
    finally:
        engine.dispose()
    origin = f"{ORIGIN_PREFIX}/{site.tenant}"
    assert (
        f"stored checkpoint at size 26 of {origin} is lost (the loss statement of "
        f"{origin}/epoch-1 says so): the store holds no such history (a row inserted, or the "
        "store restored from a backup newer than the statement?)"
    ) in problems(site)
    append(site.store, site.tenant, 1)
    assert site.sign()[-1] is False  # what verify must name


def test_a_statement_signed_on_an_older_copy_of_the_database_does_not_count(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """A restore drill: accept-loss run on an older copy of the database (here the store
    taken back to 12, and its rows put back after) while the notary's store holds the whole
    history. The statement continues the same tree at 12, so it looked valid there: a notary
    (re)started on the live store took the log into epoch 1, and signed on under the new
    origin events it never lost, which the statement names as lost (review, 2026-12-07).
    The store holds the tree of the lost checkpoint: the statement is not about it."""
    with caplog.at_level(logging.ERROR, "aiaudit.integrity.notary"):
        drilled(site)
    ignored = [r.getMessage() for r in caplog.records if "is ignored" in r.getMessage()]
    assert ignored == [
        f"log {site.tenant}: loss statement {site.statement(1)}: it names as lost the "
        "checkpoint of size 26, and the store holds its tree (signed on another copy of the "
        "database?); the statement is ignored"
    ]


def drilled(site: Site) -> None:
    """Signed to 26, a statement of epoch 1 signed on an older copy of the store (taken back
    to 12, its rows put back after), and the notary signed on in epoch 0 to 28."""
    append(site.store, site.tenant, 10)
    assert site.sign()[-1] is True
    append(site.store, site.tenant, 16)
    assert site.sign()[-1] is True
    kept = rows_of(site)
    site.take_back(12)
    assert site.accept_loss() == 0
    put_back(site, kept)
    append(site.store, site.tenant, 2)
    assert site.sign()[-1] is True
    assert (site.exported(), site.exported(1)) == ([10, 26, 28], [])


def test_verify_names_a_statement_that_does_not_count_for_what_it_is(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    """verify counted the restore drill's statement: it warned that sequences 12..25 were
    lost, and named as damage what followed from that (epoch 0's lost checkpoint of 26
    stored, its checkpoint of 28 past the statement, 26 not its largest). The store holds
    that history, and the notary signs on in epoch 0: verify says so, and exits 0."""
    drilled(site)
    path = site.statement(1)
    report = site.verify()
    assert [p.what for p in report.problems] == []
    assert [w.what for w in report.warnings] == [
        f"loss statement {path} does not count: it names as lost the checkpoint of size 26, "
        "and the store holds its tree (signed on another copy of the database?): nothing was "
        "lost, and the log goes on in epoch 0; epoch 1 stays taken, so a later loss of this "
        "log cannot be accepted"
    ]
    capsys.readouterr()
    assert main(site.verify_argv()) == 0
    out = capsys.readouterr()
    assert out.out.splitlines() == [f"warning: log {site.tenant}: {report.warnings[0].what}"]


LOG_TABLES = ("log_entries", "events", "event_content", "integrity_nodes", "integrity_checkpoints")


def rows_of(site: Site) -> dict[str, list[dict[str, object]]]:
    """Every row of the log in the tables a restore takes back."""
    engine = sa.create_engine(site.admin_url)
    try:
        with engine.connect() as conn:
            out = {}
            for name in LOG_TABLES:
                table = sa.Table(name, sa.MetaData(), autoload_with=conn)
                query = sa.select(table).where(table.c.log_id == site.tenant)
                out[name] = [dict(row) for row in conn.execute(query).mappings()]
            return out
    finally:
        engine.dispose()


def put_back(site: Site, kept: dict[str, list[dict[str, object]]]) -> None:
    """The log's rows as :func:`rows_of` read them: the later copy of the store."""
    engine = sa.create_engine(site.admin_url)
    try:
        with engine.begin() as conn:
            for name in reversed(LOG_TABLES):
                conn.execute(sa.text(f"DELETE FROM {name} WHERE log_id = :t"), {"t": site.tenant})
            for name in LOG_TABLES:
                table = sa.Table(name, sa.MetaData(), autoload_with=conn)
                conn.execute(sa.insert(table), kept[name])
            size = len(kept["log_entries"])
            params = {"t": site.tenant, "m": size}
            conn.execute(sa.text("UPDATE logs SET size = :m WHERE log_id = :t"), params)
            conn.execute(
                sa.text("UPDATE consumer_cursors SET position = :m WHERE log_id = :t"), params
            )
    finally:
        engine.dispose()


def test_a_tail_truncated_in_epoch_1_is_named_as_in_epoch_0(site: Site) -> None:
    """Rows, nodes, checkpoints and cursor cut back past epoch 1's exported checkpoint of 20:
    named as a log behind a checkpoint it exported, as in epoch 0, and that copy is not
    counted among those a stopped leader left (it was "tail truncated?" only, and counted)."""
    accepted(site)
    append(site.store, site.tenant, 5)
    assert site.sign()[-1] is True
    assert site.exported(1) == [15, 20]
    site.take_back(15)
    report = site.verify()
    assert [p.what for p in report.problems] == [
        "exported checkpoint of epoch 1 at size 20 covers sequences 15..19, which are missing: "
        "the log is behind a checkpoint that was signed and exported (tail truncated, or the "
        "store restored from a backup older than the checkpoint?)"
    ]
    assert report.exported_only == 0


def test_an_epoch_folder_of_a_huge_number_is_read_alone(site: Site) -> None:
    """verify read every epoch from 0 to the largest folder's number: one folder named
    ``epoch-1000000000000`` (anyone who may add to the directory can make it) kept it at
    work for days. The folders there are read, and a copy in that one is named."""
    accepted(site)
    text = dict(worm.read_all(site.checkpoints, site.tenant, 1))[15]
    far = worm.folder(site.checkpoints, site.tenant, 10**12)
    far.mkdir()
    (far / worm.path_for(site.checkpoints, site.tenant, 15, b"k").name).write_text(text)
    assert problems(site) == [
        f"exported checkpoint of epoch {10**12} at size 15: checkpoint origin "
        f"'{ORIGIN_PREFIX}/{site.tenant}/epoch-1' is not "
        f"'{ORIGIN_PREFIX}/{site.tenant}/epoch-{10**12}'"
    ]


def test_a_restore_of_the_lost_history_after_epoch_1_signed_is_held(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """Epoch 1 signed 15 over new events at 10..14; then a backup found later, of epoch 0's
    history at 20, restored ("recovering them is always better"). No exported checkpoint of
    either epoch is past 20, so the notary signed on in epoch 1 from 20 over epoch 0's
    events: a fork of its own checkpoint of epoch 1 at 15 (review, 2026-12-07)."""
    append(site.store, site.tenant, 10)
    assert site.sign()[-1] is True
    append(site.store, site.tenant, 10)
    assert site.sign()[-1] is True
    append(site.store, site.tenant, 6)
    assert site.sign()[-1] is True
    site.take_back(20)
    later_backup = rows_of(site)
    site.take_back(10)
    append(site.store, site.tenant, 5)
    assert site.accept_loss() == 0
    assert site.sign()[-1] is True
    assert site.exported(1) == [15]
    put_back(site, later_backup)
    append(site.store, site.tenant, 2)
    with caplog.at_level(logging.ERROR, "aiaudit.integrity.notary"):
        assert site.sign()[-1] is False
    assert site.exported(1) == [15]
    origin = f"{ORIGIN_PREFIX}/{site.tenant}/epoch-1"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        f"log {site.tenant} not integrated nor signed: its tree at size 15 is not the one its "
        f"exported checkpoint of {origin} signed there (the store restored from a backup of "
        "another epoch's history?); run aiaudit verify"
    ]


def test_a_from_origin_of_an_epoch_number_past_any_chain_is_a_bad_argument(
    site: Site, request: pytest.FixtureRequest
) -> None:
    """An epoch of 5,000 digits, past what Python turns into a number (4,300): the call
    ended UNKNOWN ("Exception calling application"), the service's own error. Epochs are
    counted by statements, so one of more than 18 digits is no origin of the log, refused
    before anything is read or recorded, as any other origin that is not the log's."""
    append(site.store, site.tenant, 3)
    assert site.sign()[-1] is True
    suite: Running = request.getfixturevalue("suite")
    stub = integrity(suite)
    origin = f"{ORIGIN_PREFIX}/{site.tenant}"
    for number in ("9" * 5000, "1" + "0" * 18):
        ask = pb.GetConsistencyProofRequest(
            log_id=site.tenant, from_size=1, to_size=3, from_origin=f"{origin}/epoch-{number}"
        )
        refused = refusal(lambda ask=ask: stub.GetConsistencyProof(ask))
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.details()
        assert "is no origin of log" in field_violations(refused)["from_origin"], number[:20]
        assert len(refused.details().encode()) <= 400


def forged(site: Site, epoch: int, size: int, root: bytes, lost: tuple[int, bytes]) -> Path:
    """A statement of ``epoch`` signed with the real key (as on another copy of the store)."""
    origin = f"{ORIGIN_PREFIX}/{site.tenant}"
    statement = loss.LossStatement(
        f"{origin}/epoch-{epoch}",
        origin if epoch == 1 else f"{origin}/epoch-{epoch - 1}",
        size,
        root,
        *lost,
        loss.now(),
        REASON,
    )
    text = sign_text(site, loss.format_statement(statement))
    return worm.write_statement(site.checkpoints, site.tenant, epoch, text)


def whole(site: Site) -> None:
    """Signed to 10, 26 and 28: the store holds the whole history."""
    append(site.store, site.tenant, 10)
    assert site.sign()[-1] is True
    append(site.store, site.tenant, 16)
    assert site.sign()[-1] is True
    append(site.store, site.tenant, 2)
    assert site.sign()[-1] is True
    assert site.exported() == [10, 26, 28]


def test_verify_drops_every_statement_that_does_not_count_as_the_notary_does(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """Two drills' statements: epoch 1 at 12 (losing 26), epoch 2 at 8 (losing epoch 1's 12,
    a tree the store holds). Epoch 1's is compared only once epoch 2's is dropped (its M is
    below 12): the notary drops both and signs on in epoch 0, verify dropped epoch 2's only,
    counted epoch 1's and named as damage the history the store holds (26 lost, 28 past the
    statement)."""
    whole(site)
    first = forged(site, 1, 12, site_root(site, 12), (26, signed(site, 26).root_hash))
    second = forged(site, 2, 8, site_root(site, 8), (12, site_root(site, 12)))
    append(site.store, site.tenant, 1)
    with caplog.at_level(logging.ERROR, "aiaudit.integrity.notary"):
        assert site.sign()[-1] is True
    ignored = [r.getMessage() for r in caplog.records if "is ignored" in r.getMessage()]
    assert [m.split(": ")[1] for m in ignored] == [
        f"loss statement {second}",
        f"loss statement {first}",
    ]
    report = site.verify()
    assert [p.what for p in report.problems] == []
    assert [w.what.split(" does not count: ")[0] for w in report.warnings] == [
        f"loss statement {first}",
        f"loss statement {second}",
    ]


def test_a_statement_continuing_another_tree_is_damage_though_the_store_holds_its_lost_tree(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """Its ``continues`` root is no tree of the store's, its lost checkpoint the store's:
    the notary ignores it for its ``continues`` root, verify took it for a drill's that does
    not count, a warning, and exited 0. A statement continuing another tree is damage."""
    whole(site)
    path = forged(site, 1, 12, bytes(32), (26, signed(site, 26).root_hash))
    append(site.store, site.tenant, 1)
    with caplog.at_level(logging.ERROR, "aiaudit.integrity.notary"):
        assert site.sign()[-1] is True
    ignored = [r.getMessage() for r in caplog.records if "is ignored" in r.getMessage()]
    assert [m.split(": ")[2].split(",")[0] for m in ignored] == [
        f"it continues at size 12 with root {'A' * 43}="
    ]
    report = site.verify()
    assert f"loss statement {path} at size 12: the tree rebuilt from the stored events has" in (
        " ".join(p.what for p in report.problems)
    )
    assert not any("does not count" in w.what for w in report.warnings)


def test_node_rows_of_the_lost_history_do_not_make_a_real_loss_a_drill_s(site: Site) -> None:
    """Lost 10..25 and accepted, epoch 1 signed to 15; then node rows of the lost tree over
    leaves 0..15, 16..23 and 24..25 put back (raw SQL, no key), past what the notary
    integrated. verify read the store's root at 26 from them, past the notary's cursor
    (which reads none there): the statement "does not count ... nothing was lost", and the
    loss was no longer named. Read as the notary reads it, the loss is named, and the rows."""
    append(site.store, site.tenant, 10)
    assert site.sign()[-1] is True
    append(site.store, site.tenant, 16)
    assert site.sign()[-1] is True
    lost = [
        row
        for row in rows_of(site)["integrity_nodes"]
        if (row["level"], row["idx"]) in ((4, 0), (3, 2), (1, 12))
    ]
    site.take_back(10)
    append(site.store, site.tenant, 5)
    assert site.accept_loss() == 0
    assert site.sign()[-1] is True
    assert site.exported(1) == [15]
    engine = sa.create_engine(site.admin_url)
    try:
        with engine.begin() as conn:
            table = sa.Table("integrity_nodes", sa.MetaData(), autoload_with=conn)
            conn.execute(sa.insert(table), lost)
    finally:
        engine.dispose()
    report = site.verify()
    assert not [w.what for w in report.warnings if "does not count" in w.what]
    assert [w.what.split(": sequences ")[1] for w in report.warnings] == [
        "10..25 of epoch 0 (its checkpoint of size 26) are lost"
    ]
    assert [p.what for p in report.problems] == [
        f"node level {level} index {index} lies beyond the log head (size 15): inserted, or "
        "the log truncated?"
        for level, index in ((1, 12), (3, 2), (4, 0))
    ]


def spoilt(site: Site, how: str) -> None:
    """Epoch 1's statement altered by one byte, or signed again continuing another tree."""
    path = site.statement(1)
    if how == "altered":
        data = path.read_bytes().replace(b"ticket OPS-1", b"ticket OPS-7")
    else:
        real = loss.open_statement(path.read_bytes(), site.keys.verifier_keys())
        other = dataclasses.replace(real, root=bytes(32))
        data = sign_text(site, loss.format_statement(other)).encode()
    path.chmod(0o644)
    path.write_bytes(data)


@pytest.mark.parametrize("how", ["altered", "another tree"])
def test_the_notary_names_each_statement_after_one_it_ignores_once(
    site: Site, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    """Epoch 2's statement (a second older restore) is valid, but follows epoch 1's, which
    does not count: the notary named epoch 1's and dropped epoch 2's without a word, while
    verify names it. Each is named once, however many rounds try the held log again."""
    accepted(site)
    site.take_back(12)
    assert site.accept_loss() == 0
    first, second = site.statement(1), site.statement(2)
    spoilt(site, how)
    with site.stepped() as (notary, health), caplog.at_level(logging.ERROR):
        for _ in range(3):
            notary.step()
        assert (health[-1], site.exported(1), site.exported(2)) == (False, [15], [])
    ignored = [r.getMessage() for r in caplog.records if "is ignored" in r.getMessage()]
    assert [m.split(": ")[1] for m in ignored] == [
        f"loss statement {first}",
        f"loss statement {second}",
    ]
    follows = f"loss statement {second}: it follows {first}, which does not count"
    assert ignored[1] == f"log {site.tenant}: {follows}; the statement is ignored"
    if how == "altered":  # verify counts one continuing another tree, and names the damage
        assert follows in problems(site)


def test_a_consistency_proof_from_a_drill_s_epoch_is_no_proof_across_a_loss(
    site: Site, request: pytest.FixtureRequest
) -> None:
    """The restore drill's statement of epoch 1 does not count (the store holds the tree of
    26 it names lost; the notary signs on in epoch 0): the service counted it, and refused a
    caller from its epoch with ACROSS_A_LOSS, "sizes 13..26 of epoch 0 were lost", and
    served one from within its M. The log has no epoch 1: INVALID_ARGUMENT, as for any
    epoch no valid statement begins. Epoch 0's own callers are served."""
    drilled(site)
    suite: Running = request.getfixturevalue("suite")
    stub = integrity(suite)
    origin = f"{ORIGIN_PREFIX}/{site.tenant}"

    def proof(from_size: int, from_origin: str) -> pb.GetConsistencyProofResponse:
        return stub.GetConsistencyProof(
            pb.GetConsistencyProofRequest(
                log_id=site.tenant, from_size=from_size, to_size=28, from_origin=from_origin
            )
        )

    for from_size in (20, 10):
        refused = refusal(lambda from_size=from_size: proof(from_size, f"{origin}/epoch-1"))
        assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.details()
        assert field_violations(refused)["from_origin"] == (
            f"'{origin}/epoch-1': log {site.tenant!r} has no epoch 1 (no valid loss statement "
            "begins it; its epochs are 0..0)"
        )
    latest = signed(site, 28).root_hash
    merkle.verify_consistency(20, 28, site_root(site, 20), latest, proof(20, origin).proof.hashes)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # PostgreSQL's reads lock nothing
def test_the_takeover_s_look_at_a_quiet_log_s_folder_leaves_sqlite_writable(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The leader's connection begins each transaction holding SQLite's write lock, and the
    takeover looked at every log's folder in one transaction: with 5,000 log folders ingest
    could not commit for 3.4 s (past 15,000, its 10 s busy timeout: "database is locked").
    The names are now listed outside any transaction, and only a log with a name past its
    position (or an accepted loss) is read and checked, in a transaction of its own."""
    append(site.store, site.tenant, 10)
    assert site.sign()[-1] is True
    database = site.store.engine.url.database
    assert database is not None
    folder = site.checkpoints / site.tenant
    listed = worm.os.scandir
    writable: list[bool] = []

    def scandir(path: object) -> object:
        if Path(str(path)) == folder:
            writer = sqlite3.connect(database, timeout=0, isolation_level=None)
            try:
                writer.execute("BEGIN IMMEDIATE")
                writer.execute("ROLLBACK")
                writable.append(True)
            except sqlite3.OperationalError:  # database is locked
                writable.append(False)
            finally:
                writer.close()
        return listed(path)  # type: ignore[call-overload]

    monkeypatch.setattr(worm.os, "scandir", scandir)
    with site.stepped() as (notary, health):
        notary.step()
    assert writable and all(writable)
    assert health == []  # nothing held, nothing to sign
