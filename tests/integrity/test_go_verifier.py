"""Our evidence verified with other people's code: ``interop/go-verifier``.

The README says an auditor needs nothing of ours: the published verifier key,
a checkpoint and an exported event with its proof verify with any RFC 6962 /
C2SP implementation, and the content commitments recompute from the README's
construction. Here the checking is done by a Go program on public libraries
(golang.org/x/mod/sumdb/note, transparency-dev/formats and merkle), against
a real server on each store, with the checkpoints signed by the local key and,
in the Vault test, by a real OpenBao's Transit engine.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from aiaudit.cli.main import main
from aiaudit.common import go_content
from aiaudit.common.v1 import event_pb2 as ev
from aiaudit.ingest.v1 import ingest_service_pb2 as ingest_pb
from aiaudit.ingest.v1 import ingest_service_pb2_grpc as ingest_grpc
from aiaudit.integrity import note
from aiaudit.integrity.bundle import CANONICAL_UNREAD, NO_SCOPE
from aiaudit.integrity.cli import NOTHING_VERIFIED
from aiaudit.integrity.note import file_signer
from aiaudit.integrity.signers import TransitKeys
from aiaudit.integrity.v1 import integrity_service_pb2 as pb
from tests import go_verifier as go
from tests.conftest import Running
from tests.helpers import interaction, wait_until
from tests.integrity.conftest import ORIGIN_PREFIX, Vault
from tests.integrity.test_cli import (
    TENANT,
    event_lines,
    key_of,
    make_bundle,
    proved_lines,
    scope_line,
    write,
)
from tests.integrity.test_service import checkpoint_covers, integrity
from tests.integrity.test_vault import bootstrapped

IMAGE = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def with_image(tenant: str, event_id: str) -> ev.Event:
    """An interaction whose prompt carries an inline PNG: a bytes content field."""
    e = interaction(tenant, event_id, text="what is in this picture?")
    e.input.messages[0].parts.add(
        media=ev.Media(
            mime_type="image/png",
            size_bytes=len(IMAGE),
            sha256=hashlib.sha256(IMAGE).hexdigest(),
            data=IMAGE,
        )
    )
    return e


def exported(
    suite: Running, store_url: str, notary_url: str, tenant: str, path: Path
) -> list[dict[str, Any]]:
    """Four events (one with an image) appended, checkpointed and exported as a bundle."""
    events = [interaction(tenant, f"g-{i}", text=f"question {i}") for i in range(3)]
    events.append(with_image(tenant, "g-3"))
    ingest_grpc.IngestServiceStub(suite.channel).Append(ingest_pb.AppendRequest(events=events))
    wait_until(lambda: checkpoint_covers(suite, tenant, 4))
    export = ["integrity", "export-bundle", "--database-url", notary_url, "--log", tenant]
    export += ["--record-database-url", store_url, "--requested-by", "auditor"]
    assert main([*export, "--count", "4", str(path)]) == 0
    return event_lines(path)


def verified(result: subprocess.CompletedProcess[str], n: int) -> bool:
    """Whether the Go verifier passed ``n`` events: exit 0, no problem, the summary (each
    line of it says what it is of) and the count last."""
    *summary, last = result.stdout.splitlines()
    return (
        result.returncode == 0
        and last == f"{n} event(s) checked, 0 problem(s)"
        and bool(summary)
        and all(
            line.startswith(("log ", "scope", "warning: ", "verifier key ")) for line in summary
        )
    )


def key_name(key: str) -> str:
    """``name+keyid`` of a verifier key ``name+keyid+base64`` (whose base64 may hold a +)."""
    return "+".join(key.split("+")[:2])


def rewrite(path: Path, lines: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


@pytest.mark.parametrize("text", ["", "\n \n\t\n"])
def test_an_empty_bundle_fails_with_its_reason_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path, text: str
) -> None:
    """An export that matched nothing, or failed, verified as "0 event(s) checked,
    0 problem(s)": aiaudit exited 1 without a reason, the Go verifier exited 0."""
    key = file_signer(ORIGIN_PREFIX, tmp_path / "key.pem").verifier_key.encode()
    empty = tmp_path / "empty.jsonl"
    empty.write_text(text)
    assert main(["verify", "--bundle", str(empty), "--verifier-key", key]) == 1
    out = capsys.readouterr()
    assert out.out == "the bundle holds no events: nothing verified\n"
    assert "0 event(s) checked, 0 problem(s)" in out.err
    check = ["bundle", "-verifier-key", key, "-origin-prefix", ORIGIN_PREFIX, empty]
    independent = go.run(go_verifier, *check)
    assert (independent.returncode, independent.stdout) == (
        1,
        "the bundle holds no events: nothing verified\n0 event(s) checked, 0 problem(s)\n",
    ), independent.stderr


def test_a_bundle_verifies_with_public_go_libraries_and_each_tampering_is_named(
    suite: Running,
    store_url: str,
    notary_url: str,
    tenant: str,
    tmp_path: Path,
    go_verifier: Path,
) -> None:
    bundle = tmp_path / "bundle.jsonl"
    lines = exported(suite, store_url, notary_url, tenant, bundle)
    assert "input.messages[0].parts[1].media.data" in lines[3]["content"]
    key = integrity(suite).GetVerifierKey(pb.GetVerifierKeyRequest()).verifier_keys[0]
    check = ["bundle", "-verifier-key", key, "-origin-prefix", ORIGIN_PREFIX, bundle]

    ok = go.run(go_verifier, *check)
    assert verified(ok, 4), ok.stdout + ok.stderr

    original = [dict(line) for line in lines]
    untouched = json.loads(json.dumps(lines))
    lines[0]["content"] = {**lines[0]["content"], "input.messages[0].parts[0].text": "edited"}
    image = bytearray(IMAGE)
    image[-1] ^= 1
    lines[3]["content"] = {
        **lines[3]["content"],
        "input.messages[0].parts[1].media.data": base64.b64encode(bytes(image)).decode(),
    }
    committed = base64.b64decode(lines[1]["canonical"]).replace(b'"gpt-4o"', b'"gpt-4x"')
    lines[1]["canonical"] = base64.b64encode(committed).decode()
    proof_lines = lines[2]["tlog_proof"].split("\n")
    proof_lines[2] = base64.b64encode(bytes(32)).decode()  # the first proof hash
    lines[2]["tlog_proof"] = "\n".join(proof_lines)
    rewrite(bundle, lines)
    bad = go.run(go_verifier, *check)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    mismatch = "inclusion proof: the proof leads to root "
    expected = [
        "line 1 event g-0: input.messages[0].parts[0].text: content does not match its commitment",
        "line 2 event g-1: " + mismatch,
        "line 3 event g-2: " + mismatch,
        "line 4 event g-3: input.messages[0].parts[1].media.data: content does not match its"
        " commitment",
        "4 event(s) checked, 4 problem(s)",
    ]
    got = bad.stdout.splitlines()
    assert len(got) == len(expected), bad.stdout
    assert all(g.startswith(e) for g, e in zip(got, expected, strict=True)), bad.stdout

    # A forged signature, another key, another log's origin: the checkpoint is refused.
    signed = original[0]["tlog_proof"].rstrip("\n")
    body, sig_line = signed.rsplit("\n", 1)
    name, sig = sig_line.rsplit(" ", 1)
    raw = bytearray(base64.b64decode(sig))
    raw[-1] ^= 1
    original[0]["tlog_proof"] = f"{body}\n{name} {base64.b64encode(bytes(raw)).decode()}\n"
    rewrite(bundle, original[:1])
    refused = go.run(go_verifier, *check)
    assert refused.returncode == 1
    assert refused.stdout.startswith("line 1 event g-0: checkpoint: "), refused.stdout
    rewrite(bundle, original[1:2])
    other = file_signer("someone-else", tmp_path / "other.key").verifier_key.encode()
    origin = f"checkpoint origin '{ORIGIN_PREFIX}/{tenant}' is not another.example/log/{tenant}"
    for args, reason in (
        (["-verifier-key", other, "-origin-prefix", ORIGIN_PREFIX], "checkpoint: "),
        (["-verifier-key", key, "-origin-prefix", "another.example/log"], origin + "\n"),
    ):
        wrong = go.run(go_verifier, "bundle", *args, bundle)
        assert wrong.returncode == 1
        assert wrong.stdout.startswith(f"line 1 event g-1: {reason}"), wrong.stdout

    # Content without the salt that shows it was committed to (a forged prompt), and an
    # event listed twice: both refused, as `aiaudit verify --bundle` refuses them.
    forged = dict(untouched[0])
    forged["content"] = {**forged["content"], "input.messages[0].parts[0].text": "FORGED"}
    del forged["salt"]
    rewrite(bundle, [forged, untouched[1], untouched[1]])
    refused = go.run(go_verifier, *check)
    assert refused.returncode == 1
    assert refused.stdout.splitlines() == [
        "line 1 event g-0: malformed line: content without salt: a line has both or neither",
        "line 3 event g-1: duplicate: line 2 has the same log and sequence",
        "3 event(s) checked, 2 problem(s)",
    ], refused.stdout

    # The salt spelt a second way (a padding bit set: the same bytes), as Python refuses it.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    respelt = dict(untouched[0])
    salt = respelt["salt"]
    respelt["salt"] = salt[:-2] + alphabet[alphabet.index(salt[-2]) ^ 1] + salt[-1]
    assert base64.b64decode(respelt["salt"]) == base64.b64decode(salt)
    rewrite(bundle, [respelt])
    refused = go.run(go_verifier, *check)
    assert refused.returncode == 1
    assert refused.stdout.startswith("line 1 event g-0: salt is not base64"), refused.stdout


ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def padding_bit_set(encoded: str) -> str:
    """``encoded`` (one ``=`` of padding) with a padding bit set: the same bytes to a lenient
    decoder."""
    respelt = encoded[:-2] + ALPHABET[ALPHABET.index(encoded[-2]) ^ 1] + encoded[-1]
    assert respelt != encoded and base64.b64decode(respelt) == base64.b64decode(encoded)
    return respelt


def in_proof(line: dict[str, Any], at: int, respell: Any) -> None:
    """Line ``at`` of the line's tlog-proof respelt by ``respell``."""
    proof = line["tlog_proof"].split("\n")
    proof[at] = respell(proof[at])
    line["tlog_proof"] = "\n".join(proof)


def signature_respelt(line: dict[str, Any]) -> None:
    body, sig_line, end = line["tlog_proof"].rsplit("\n", 2)
    name, sig = sig_line.rsplit(" ", 1)
    line["tlog_proof"] = f"{body}\n{name} {padding_bit_set(sig)}\n{end}"


DATA = "input.messages[0].parts[1].media.data"
RESPELLINGS: dict[str, tuple[Any, str]] = {
    # tlog-proof lines: header, index, two hashes, blank, the signed checkpoint
    "proof hash padding bit": (
        lambda line: in_proof(line, 2, padding_bit_set),
        "tlog-proof: hash 1: line 3 ",
    ),
    "proof hash CR": (lambda line: in_proof(line, 3, lambda h: h + "\r"), "tlog-proof: hash 2: "),
    "index leading zero": (
        lambda line: in_proof(line, 1, lambda i: "index 00"),
        'tlog-proof: index: line 2 "index 00\\n" is not in its canonical form "index 0\\n"',
    ),
    "extra data padding bit": (
        lambda line: in_proof(line, 0, lambda h: h + "\nextra " + padding_bit_set("abc=")),
        "tlog-proof: extra data: line 2 ",
    ),
    "checkpoint CR": (
        lambda line: in_proof(line, 5, lambda origin: origin + "\r"),
        "tlog-proof: checkpoint: line 6 ",
    ),
    "signature padding bit": (signature_respelt, "checkpoint: signature 1 is not in canonical"),
    "canonical LF": (
        lambda line: line.update(canonical=line["canonical"][:8] + "\n" + line["canonical"][8:]),
        "canonical is not base64: not in canonical base64",
    ),
    "salt CR": (
        lambda line: line.update(salt=line["salt"][:8] + "\r" + line["salt"][8:]),
        "salt is not base64: not in canonical base64",
    ),
    "content bytes LF": (
        lambda line: line["content"].update({DATA: line["content"][DATA][:4] + "\n"}),
        f"{DATA}: bytes not in canonical base64",
    ),
}


@pytest.mark.parametrize("respelling", RESPELLINGS)
def test_base64_and_proof_lines_have_one_spelling_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path, respelling: str
) -> None:
    """The Go verifier read the proof hashes and extra data leniently (its tlog library),
    and a CR before each of the proof's LFs, an index with leading zeros, signature lines
    with padding bits set, and CR or LF inside `canonical`, the salt and bytes content (Go's
    strict base64 still skips them): the same values, so it passed lines aiaudit refuses."""
    lines = make_bundle(tmp_path, n=3, media=b"ok")
    assert lines[0]["content"][DATA] == "b2s="
    key = key_of(tmp_path)
    check = ["bundle", "-verifier-key", key, "-origin-prefix", ORIGIN_PREFIX]
    intact = go.run(go_verifier, *check, write(tmp_path / "intact.jsonl", lines))
    assert verified(intact, 3), intact.stdout

    edit, reason = RESPELLINGS[respelling]
    edit(lines[0])
    path = write(tmp_path / "respelt.jsonl", lines[:1])
    refused = go.run(go_verifier, *check, path)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stdout.startswith(f"line 1 event e-0: {reason}"), refused.stdout
    assert refused.stdout.endswith("1 event(s) checked, 1 problem(s)\n"), refused.stdout
    assert main(["verify", "--bundle", str(path), "--verifier-key", key]) == 1
    assert "line 1 event e-0: " in capsys.readouterr().out


@pytest.mark.parametrize("forger", ["the other trusted key", "the key that signed"])
def test_a_bad_signature_of_a_trusted_key_fails_its_checkpoint_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path, forger: str
) -> None:
    """aiaudit refuses a checkpoint any of whose trusted keys' signatures does not verify.
    The Go verifier opened it with one trusted key at a time, so after a rotation (both
    versions given) a forged line of the other version was an unknown key's and ignored;
    and its note library skips a second line of a key that signed already: the bundle
    passed there, exit 0, and failed in aiaudit (review, 2026-12-06)."""
    lines = make_bundle(tmp_path, 2)
    signed = note.file_signer(ORIGIN_PREFIX, tmp_path / "key.pem").verifier_key
    rotated = note.file_signer(ORIGIN_PREFIX, tmp_path / "rotated.pem").verifier_key
    keys = [signed.encode(), rotated.encode()]
    forging = rotated if forger == "the other trusted key" else signed
    line = f"\u2014 {ORIGIN_PREFIX} {base64.b64encode(forging.key_id + bytes(64)).decode()}\n"
    path = tmp_path / "b.jsonl"

    def verdicts() -> tuple[tuple[int, list[str]], tuple[int, list[str]]]:
        python = ["verify", "--bundle", str(path), "--origin-prefix", ORIGIN_PREFIX]
        status = main([*python, "--verifier-key", keys[0], "--verifier-key", keys[1]])
        problems = capsys.readouterr().out.splitlines()
        check = ["bundle", "-verifier-key", keys[0], "-verifier-key", keys[1]]
        independent = go.run(go_verifier, *check, "-origin-prefix", ORIGIN_PREFIX, path)
        return (status, problems), (independent.returncode, independent.stdout.splitlines())

    write(path, lines)
    python, independent = verdicts()
    assert python == (0, []) and independent[0] == 0, independent
    write(path, [{**each, "tlog_proof": each["tlog_proof"] + line} for each in lines])
    named = f"checkpoint: invalid signature for key {ORIGIN_PREFIX}+{forging.key_id.hex()}"
    problems = [f"line {i + 1} event e-{i}: {named}" for i in range(2)]
    python, independent = verdicts()
    assert python == (1, problems)
    assert independent == (1, [*problems, "2 event(s) checked, 2 problem(s)"])


def test_checkpoints_are_consistent_by_public_go_libraries(
    suite: Running, tenant: str, tmp_path: Path, go_verifier: Path
) -> None:
    stub = integrity(suite)
    ingest = ingest_grpc.IngestServiceStub(suite.channel)
    ingest.Append(ingest_pb.AppendRequest(events=[interaction(tenant) for _ in range(3)]))
    wait_until(lambda: checkpoint_covers(suite, tenant, 3))
    old = stub.GetCheckpoint(pb.GetCheckpointRequest(log_id=tenant)).checkpoint
    ingest.Append(ingest_pb.AppendRequest(events=[interaction(tenant) for _ in range(5)]))
    wait_until(lambda: checkpoint_covers(suite, tenant, old.tree_size + 5))
    new = stub.GetCheckpoint(pb.GetCheckpointRequest(log_id=tenant)).checkpoint
    request = pb.GetConsistencyProofRequest(
        log_id=tenant, from_size=old.tree_size, to_size=new.tree_size
    )
    hashes = list(stub.GetConsistencyProof(request).proof.hashes)
    assert hashes
    key = stub.GetVerifierKey(pb.GetVerifierKeyRequest()).verifier_keys[0]
    (tmp_path / "old").write_text(old.signed_note)
    (tmp_path / "new").write_text(new.signed_note)
    proof = tmp_path / "proof"
    origin = f"{ORIGIN_PREFIX}/{tenant}"
    args = ["consistency", "-verifier-key", key, "-origin", origin]
    args += ["-old", tmp_path / "old", "-new", tmp_path / "new", "-proof", proof]

    proof.write_text("".join(base64.b64encode(h).decode() + "\n" for h in hashes))
    ok = go.run(go_verifier, *args)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout == f"{origin}: tree {new.tree_size} is consistent with tree {old.tree_size}\n"

    proof.write_text("".join(base64.b64encode(h[::-1]).decode() + "\n" for h in hashes))
    bad = go.run(go_verifier, *args)
    assert bad.returncode == 1
    assert bad.stdout.startswith(f"consistency {old.tree_size} -> {new.tree_size}: "), bad.stdout


def test_transit_signed_checkpoints_open_with_public_go_libraries_across_rotation(
    vault: Vault, tmp_path: Path, go_verifier: Path
) -> None:
    """Transit's Ed25519 signature (after ``vault:vN:``) is a plain note signature."""
    settings, token = bootstrapped(vault)
    keys = TransitKeys(vault.client(token), settings.mount, settings.key, "test.aiaudit/log")
    first = tmp_path / "v1"
    first.write_text(
        note.sign_checkpoint(note.Checkpoint("o/x", 3, b"\x07" * 32), [keys.active().signer])
    )
    v1 = keys.verifier_keys()[0].encode()
    vault.client().secrets.transit.rotate_key(name=settings.key, mount_point=settings.mount)
    second = tmp_path / "v2"
    second.write_text(
        note.sign_checkpoint(note.Checkpoint("o/x", 4, b"\x08" * 32), [keys.active().signer])
    )
    published = [k.encode() for k in keys.verifier_keys()]
    assert len(published) == 2 and v1 in published
    v2 = next(k for k in published if k != v1)

    opened = go.run(go_verifier, "checkpoint", "-verifier-key", v1, "-origin", "o/x", first)
    root = base64.b64encode(b"\x07" * 32).decode()
    assert (opened.returncode, opened.stdout) == (0, f"o/x size 3 root {root}\n"), opened.stderr
    both = ["-verifier-key", v1, "-verifier-key", v2]
    assert go.run(go_verifier, "checkpoint", *both, "-origin", "o/x", second).returncode == 0
    old_key_only = go.run(go_verifier, "checkpoint", "-verifier-key", v1, "-origin", "o/x", second)
    assert old_key_only.returncode == 1
    assert old_key_only.stdout.startswith("checkpoint: ")


def _with(text: str, member: str) -> str:
    """``text`` (a line's object) with ``member`` added as its last member."""
    return text[:-1] + ", " + member + "}"


TEXT = "input.messages[0].parts[0].text"
LINE_SPELLINGS: dict[str, tuple[Any, str, str]] = {
    # (edit of the line's JSON text, the Go verifier's line, aiaudit's), each refused
    "name in another case": (
        lambda text: text.replace('"canonical"', '"Canonical"'),
        'event e-0: malformed line: unknown field "Canonical": a line holds canonical, ',
        "event e-0: malformed line: unknown field 'Canonical': a line holds canonical, ",
    ),
    "long s for s": (
        lambda text: text.replace('"sequence"', '"\\u017fequence"'),
        'event e-0: malformed line: unknown field "\\u017fequence": a line holds',
        "event e-0: malformed line: unknown field '\u017fequence': a line holds",
    ),
    "unknown field": (
        lambda text: _with(text, '"note": "unsigned"'),
        'event e-0: malformed line: unknown field "note": a line holds',
        "event e-0: malformed line: unknown field 'note': a line holds",
    ),
    "event_id twice": (
        lambda text: '{"event_id": "forged", ' + text[1:],
        'event ?: malformed line: key "event_id" appears twice in one object',
        "event ?: malformed line: key 'event_id' appears twice in one object",
    ),
    "content path twice": (
        lambda text: text.replace('"content": {', f'"content": {{"{TEXT}": "forged", '),
        f'event e-0: malformed line: field "content": key "{TEXT}" appears twice in one object',
        f"event ?: malformed line: key '{TEXT}' appears twice in one object",
    ),
    "salt and content null": (
        lambda text: json.dumps({**json.loads(text), "salt": None, "content": None}),
        'event e-0: malformed line: field "content" must be an object, not null',
        "event e-0: malformed line: field 'salt' must be a string, not null",
    ),
    "form feed before the object": (
        lambda text: "\f" + text,
        "event ?: malformed line: invalid character '\\f' looking for beginning of value",
        "event ?: malformed line: Expecting value: line 1 column 1",
    ),
    "no-break space after the object": (
        lambda text: text + "\u00a0",
        "event ?: malformed line: data follows the JSON object",
        "event ?: malformed line: Extra data",
    ),
    "an object after the object": (
        lambda text: text + " {}",
        "event ?: malformed line: data follows the JSON object",
        "event ?: malformed line: Extra data",
    ),
    "bytes not UTF-8": (
        lambda text: _with(text, '"note": "\udcff"'),  # written as the byte 0xff
        "event ?: malformed line: the line is not UTF-8",
        "event ?: malformed line: 'utf-8' codec can't decode byte 0xff",
    ),
    "unknown field after a value of the wrong type": (
        lambda text: _with(text.replace('"sequence": 0,', '"sequence": "0",'), '"note": 1'),
        'event e-0: malformed line: unknown field "note": a line holds',
        "event e-0: malformed line: unknown field 'note': a line holds",
    ),
    "lone surrogate": (
        lambda text: _with(text, '"note": "\\ud800"'),
        'event ?: malformed line: the value of "note" escapes a lone surrogate',
        'event ?: malformed line: the value of "note" escapes a lone surrogate',
    ),
}


@pytest.mark.parametrize("respelling", LINE_SPELLINGS)
def test_a_line_is_one_json_object_spelt_one_way_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path, respelling: str
) -> None:
    """Go's encoding/json matched names case-insensitively (`Canonical`, or `sequence`
    with a long s, U+017F), ignored unknown names, kept the last of a name given twice (an
    `event_id` or a content path: the first one a reader sees was forged), read a null salt
    and content as absent, trimmed a form feed or a no-break space around the object, and
    read bytes that are not UTF-8 and escaped lone surrogates as U+FFFD: it passed lines
    aiaudit calls malformed. It named a value of the wrong type before an unknown name,
    which aiaudit names first."""
    lines = make_bundle(tmp_path, n=2)
    key = key_of(tmp_path)
    check = ["bundle", "-verifier-key", key, "-origin-prefix", ORIGIN_PREFIX]
    intact = write(tmp_path / "intact.jsonl", lines)
    accepted = go.run(go_verifier, *check, intact)
    assert verified(accepted, 2), accepted.stdout
    python = ["verify", "--verifier-key", key, "--origin-prefix", ORIGIN_PREFIX, "--bundle"]
    assert main([*python, str(intact)]) == 0
    capsys.readouterr()

    edit, go_reason, reason = LINE_SPELLINGS[respelling]
    text = json.dumps(lines[0])
    path = tmp_path / "respelt.jsonl"
    path.write_bytes(edit(text).encode("utf-8", "surrogateescape") + b"\n")
    refused = go.run(go_verifier, *check, path)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert refused.stdout.startswith(f"line 1 {go_reason}"), refused.stdout
    assert refused.stdout.endswith("\n1 event(s) checked, 1 problem(s)\n"), refused.stdout
    assert main([*python, str(path)]) == 1
    assert f"line 1 {reason}" in capsys.readouterr().out


def bundle_of(
    tmp_path: Path, tenant: str, n: int, bare: frozenset[int] = frozenset()
) -> list[dict[str, Any]]:
    """``n`` events of ``tenant`` with proofs to one checkpoint signed by ``tmp_path/key.pem``
    (as ``make_bundle``, whose log is always TENANT); those at ``bare`` without any content
    field (no input, no output)."""
    events = [interaction(tenant, f"{tenant}-{i}") for i in range(n)]
    for i in bare:
        events[i].ClearField("input")
        events[i].ClearField("output")
    return proved_lines(tmp_path, events)


def both(
    go_verifier: Path, capsys: pytest.CaptureFixture[str], path: Path, *options: str
) -> tuple[int, list[str]]:
    """Both verifiers on one bundle with the same options (``--log`` as ``-log``): the exit
    status and problem lines they agree on (each fails the test if the other differs), and
    for a bundle that verifies the same summary (Python's on its stderr, Go's before its
    count)."""
    key = key_of(path.parent)
    python = ["verify", "--bundle", str(path), "--verifier-key", key]
    status = main([*python, "--origin-prefix", ORIGIN_PREFIX, *options])
    out = capsys.readouterr()
    problems = out.out.splitlines()
    said = [line for line in out.err.splitlines() if not line.startswith("{")][:-1]
    check = ["bundle", "-verifier-key", key, "-origin-prefix", ORIGIN_PREFIX]
    independent = go.run(go_verifier, *check, *(o.replace("--", "-", 1) for o in options), path)
    assert independent.returncode == status, independent.stdout + independent.stderr
    *go_lines, count = independent.stdout.splitlines()
    n = sum(1 for line in path.read_text().splitlines() if line.strip() and not scope_line(line))
    counted = len(problems) - problems.count(NOTHING_VERIFIED)  # the reason is no problem
    assert count == f"{n} event(s) checked, {counted} problem(s)"
    if status:
        assert go_lines == problems, independent.stdout
    else:
        assert verified(independent, n), independent.stdout
        assert said and go_lines == said, independent.stdout
    return status, problems


def test_log_restricts_a_bundle_to_its_logs_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """The Go verifier had no -log: a bundle that spliced another tenant's lines (each
    with a valid proof) into this tenant's export passed, and no option could refuse it,
    while `aiaudit verify --bundle --log` names each line of another log."""
    mixed = write(tmp_path / "mixed.jsonl", make_bundle(tmp_path) + bundle_of(tmp_path, "t2", 2))
    assert both(go_verifier, capsys, mixed) == (0, [])
    assert both(go_verifier, capsys, mixed, "--log", "t2", "--log", TENANT) == (0, [])
    assert both(go_verifier, capsys, mixed, "--log", TENANT) == (
        1,
        [
            f"line 4 event t2-0: log 't2' is not one of the logs to verify ({TENANT})",
            f"line 5 event t2-1: log 't2' is not one of the logs to verify ({TENANT})",
        ],
    )
    status, problems = both(go_verifier, capsys, mixed, "--log", "zz", "--log", "t2")
    assert status == 1 and len(problems) == 3
    asked = "is not one of the logs to verify (t2, zz)"  # sorted, as Python sorts them
    assert problems[0] == f"line 1 event e-0: log '{TENANT}' {asked}"


def test_two_roots_for_one_checkpoint_size_are_a_forked_log_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """Two checkpoints of one log and size with different roots, both signed (an
    equivocating notary, a stolen key), each line with a valid proof to its own: the Go
    verifier passed (exit 0), `aiaudit verify --bundle` names the forked log."""
    one, other, third = make_bundle(tmp_path), make_bundle(tmp_path), make_bundle(tmp_path)
    assert both(go_verifier, capsys, write(tmp_path / "other.jsonl", other)) == (0, [])
    forked = write(tmp_path / "forked.jsonl", [one[0], other[1], one[2]])
    fork = f"checkpoint {ORIGIN_PREFIX}/{TENANT} size 3 has another root than line 1's"
    assert both(go_verifier, capsys, forked) == (1, [f"line 2 event e-1: {fork}: a forked log"])
    forked = write(tmp_path / "forked.jsonl", [one[0], other[1], third[2]])
    assert both(go_verifier, capsys, forked) == (
        1,
        [f"line 2 event e-1: {fork}: a forked log", f"line 3 event e-2: {fork}: a forked log"],
    )
    # A checkpoint that verified counts even on a line of another log (a problem of its
    # own): the root it shows for its log and size is still signed.
    misplaced = {**bundle_of(tmp_path, "t2", 1)[0], "tlog_proof": one[0]["tlog_proof"]}
    spliced = write(tmp_path / "spliced.jsonl", [misplaced, other[1]])
    assert both(go_verifier, capsys, spliced) == (
        1,
        [
            f"line 1 event t2-0: checkpoint origin '{ORIGIN_PREFIX}/{TENANT}' is not"
            f" {ORIGIN_PREFIX}/t2",
            f"line 2 event e-1: {fork}: a forked log",
        ],
    )


def checkpoint_of(line: dict[str, Any]) -> tuple[str, str, str]:
    """The origin, size and root of the checkpoint a line's proof leads to."""
    origin, size, root = line["tlog_proof"].split("\n\n", 1)[1].split("\n")[:3]
    return origin, size, root


def withheld(line: dict[str, Any]) -> dict[str, Any]:
    """The line without its salt and content (erased, or exported with --no-content)."""
    return {k: v for k, v in line.items() if k not in ("salt", "content")}


def test_a_bundle_that_verifies_is_summarized_per_log_in_aiaudits_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """The Go verifier said only "N event(s) checked, 0 problem(s)": not which checkpoint
    and key the events were proven against, which sequences of the log the bundle holds
    and which it leaves out, nor whose content was proven. It now prints the summary
    `aiaudit verify --bundle` prints (/tmp/h/fix-export/SUMMARY_FORMAT.md), in its words."""
    t1 = make_bundle(tmp_path, n=4)
    t2 = bundle_of(tmp_path, "t2", 5, bare=frozenset({3}))
    lines = [t1[2], t1[0], t1[1], t2[0], withheld(t2[1]), withheld(t2[3]), t2[4]]
    key = key_of(tmp_path)
    named = key_name(key)
    other = file_signer("someone-else", tmp_path / "other.key").verifier_key.encode()
    check = ["bundle", "-verifier-key", key, "-verifier-key", other]
    check += ["-origin-prefix", ORIGIN_PREFIX, write(tmp_path / "b.jsonl", lines)]
    ok = go.run(go_verifier, *check)
    (o1, _, r1), (o2, _, r2) = checkpoint_of(t1[0]), checkpoint_of(t2[0])
    summary = [
        f"log {TENANT}: checkpoint {o1} size 4 root {r1} signed by {named}",
        f"log {TENANT}: 3 event(s) at sequences 0..2; 1 of the checkpoint's 4 not in the"
        " bundle; lines not in sequence order",
        f"log {TENANT}: content verified for 3 event(s)",
        f"log t2: checkpoint {o2} size 5 root {r2} signed by {named}",
        "log t2: 4 event(s) at sequences 0..1, 3..4; 1 of the checkpoint's 5 not in the bundle",
        "log t2: content verified for 2 event(s); 1 without content (erased or withheld):"
        " their content is not proven; 1 with no content fields",
        NO_SCOPE,
    ]
    keys = [
        f"verifier key {named}: given with --verifier-key",
        f"verifier key {key_name(other)}: given with --verifier-key",
    ]
    warning = (
        f"warning: the bundle holds 2 logs ({TENANT}, t2): an export is of one log; pass --log"
        " with the one you expect"
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.splitlines() == [*summary, warning, *keys, "7 event(s) checked, 0 problem(s)"]
    asked = go.run(go_verifier, *check[:-1], "-log", "t2", "-log", TENANT, check[-1])
    assert asked.stdout.splitlines() == [*summary, *keys, "7 event(s) checked, 0 problem(s)"]
    assert both(go_verifier, capsys, check[-1]) == (0, [])  # one key: the same summary
    assert both(go_verifier, capsys, check[-1], "--log", "t2") == (
        1,
        [
            f"line {i} event e-{j}: log '{TENANT}' is not one of the logs to verify (t2)"
            for i, j in ((1, 2), (2, 0), (3, 1))
        ],
    )

    # At most 20 ranges, then how many more; the whole checkpoint.
    evens = make_bundle(tmp_path, n=45)[::2]
    ok = go.run(go_verifier, *check[:-1], write(tmp_path / "evens.jsonl", evens))
    shown = ", ".join(str(2 * i) for i in range(20))
    assert ok.stdout.splitlines()[1] == (
        f"log {TENANT}: 23 event(s) at sequences {shown}, ... and 3 more range(s);"
        " 22 of the checkpoint's 45 not in the bundle"
    ), ok.stdout
    whole = make_bundle(tmp_path, n=2)
    ok = go.run(go_verifier, *check[:-1], write(tmp_path / "whole.jsonl", whole))
    assert ok.stdout.splitlines()[1] == (
        f"log {TENANT}: 2 event(s) at sequences 0..1; all 2 of the checkpoint"
    ), ok.stdout

    # A problem, and no summary: nothing of it is vouched for.
    bad = go.run(go_verifier, *check[:-1], write(tmp_path / "bad.jsonl", [t1[0], t1[0]]))
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[-2:] == [
        "line 2 event e-0: duplicate: line 1 has the same log and sequence",
        "2 event(s) checked, 1 problem(s)",
    ]


def test_lines_of_two_exports_of_one_log_are_a_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """Each line proven against another checkpoint of its log (two exports joined) passed:
    an export proves all its lines against one checkpoint. Named once per extra checkpoint,
    as aiaudit names it; the same size with another root is a fork, not this."""
    older, newer = make_bundle(tmp_path, n=3), make_bundle(tmp_path, n=4)
    joined = [older[0], newer[1], newer[3], older[2]]
    check = ["bundle", "-verifier-key", key_of(tmp_path), "-origin-prefix", ORIGIN_PREFIX]
    bad = go.run(go_verifier, *check, write(tmp_path / "joined.jsonl", joined))
    (_, _, r3), (_, _, r4) = checkpoint_of(older[0]), checkpoint_of(newer[0])
    assert bad.returncode == 1
    assert bad.stdout.splitlines() == [
        f"line 2 event e-1: log '{TENANT}' has a second checkpoint (size 4 root {r4}) besides"
        f" line 1's (size 3 root {r3}): an export proves all its lines against one checkpoint,"
        " so lines of different exports were joined",
        "4 event(s) checked, 1 problem(s)",
    ]
    forked = [older[0], make_bundle(tmp_path, n=3)[1]]
    bad = go.run(go_verifier, *check, write(tmp_path / "forked.jsonl", forked))
    assert bad.stdout.splitlines()[0].endswith("a forked log"), bad.stdout
    assert len(bad.stdout.splitlines()) == 2, bad.stdout

    # Only lines of the logs asked for count: checkpoints of another log (here opened by
    # lines of the log asked for, which carry them: each a problem) are no second one.
    a, b, t1 = bundle_of(tmp_path, "t2", 2), bundle_of(tmp_path, "t2", 3), make_bundle(tmp_path)
    carried = [
        {**t1[0], "tlog_proof": a[0]["tlog_proof"]},
        {**t1[1], "tlog_proof": b[1]["tlog_proof"]},
    ]
    path = write(tmp_path / "carried.jsonl", [*carried, a[0], b[1]])
    status, problems = both(go_verifier, capsys, path, "--log", TENANT)
    assert status == 1 and len(problems) == 4, problems


def test_an_event_twice_is_named_alike_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """The Go verifier said "duplicate: line N holds the same event", aiaudit which of the
    log's sequence or event id the lines share."""
    lines = make_bundle(tmp_path)
    renumbered = {**lines[1], "sequence": 2}
    twice = write(tmp_path / "twice.jsonl", [*lines[:2], lines[1], renumbered])
    assert both(go_verifier, capsys, twice) == (
        1,
        [
            "line 3 event e-1: duplicate: line 2 has the same log and sequence",
            "line 4 event e-1: duplicate: line 2 has the same log and event_id",
            "line 4 event e-1: proof index 1 is not the event's sequence 2",
        ],
    )


@pytest.mark.parametrize("size", [0, 16, 33, 64])
def test_a_salt_that_is_not_32_bytes_is_malformed_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path, size: int
) -> None:
    """HMAC takes a key of any length: the Go verifier passed a line whose salt was not 32
    bytes, of an event without content fields or committed with that salt by its writer,
    where `aiaudit verify --bundle` calls the line malformed. With content it named each
    value's commitment instead of the salt."""
    salt = base64.b64encode(bytes(range(size))).decode()
    bare = {**bundle_of(tmp_path, "t2", 1, bare=frozenset({0}))[0], "salt": salt}
    assert bare["content"] == {}
    malformed = f"malformed line: salt has {size} bytes, not 32"
    path = write(tmp_path / "bare.jsonl", [bare])
    assert both(go_verifier, capsys, path) == (1, [f"line 1 event t2-0: {malformed}"])
    lines = make_bundle(tmp_path, n=2)
    path = write(tmp_path / "content.jsonl", [lines[0], {**lines[1], "salt": salt}])
    assert both(go_verifier, capsys, path) == (1, [f"line 2 event e-1: {malformed}"])


OUT = "output.messages[0].parts[0].text"
COMMITMENT_EDITS: dict[str, tuple[Any, list[str]]] = {
    # (edit of a line's content, the problems both verifiers name)
    "every commitment left out": (
        lambda content: content.clear(),
        [f"{path}: commitment without content" for path in (TEXT, DATA, OUT)],
    ),
    "one commitment left out": (
        lambda content: content.pop(TEXT),
        [f"{TEXT}: commitment without content"],
    ),
    "content of a field not in the event": (
        lambda content: content.update({"output.reasoning": "never said"}),
        ["output.reasoning: content without a commitment"],
    ),
    "content of a field in clear": (
        lambda content: content.update({"model.name": "gpt-4o"}),
        ["model.name: content without a commitment"],
    ),
    "a path spelt another way": (
        lambda content: content.update({TEXT.replace("[0]", "[00]", 1): content.pop(TEXT)}),
        [
            "input.messages[00].parts[0].text: content without a commitment",
            f"{TEXT}: commitment without content",
        ],
    ),
}


@pytest.mark.parametrize("edit", COMMITMENT_EDITS)
def test_content_answers_every_commitment_and_only_them_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path, edit: str
) -> None:
    """The Go verifier checked only the content a line gave: a line with its salt whose
    content left out some (or all) of the event's commitments passed, that content
    unproven, where `aiaudit verify --bundle` names each commitment without content. It
    named content of a field that is no commitment in its own words ("no such field",
    "does not match"). A line without salt and content (erased or withheld) still passes."""
    lines = make_bundle(tmp_path, n=2, media=b"ok")
    assert list(lines[0]["content"]) == [TEXT, DATA, OUT]
    intact = write(tmp_path / "intact.jsonl", [lines[0], withheld(lines[1])])
    assert both(go_verifier, capsys, intact) == (0, [])
    change, named = COMMITMENT_EDITS[edit]
    change(lines[0]["content"])
    path = write(tmp_path / "edited.jsonl", lines)
    assert both(go_verifier, capsys, path) == (1, [f"line 1 event e-0: {what}" for what in named])


def unsalted(line: dict[str, Any]) -> dict[str, Any]:
    """The line without its salt."""
    del line["salt"]
    return line


APART = "malformed line: {} without {}: a line has both or neither"
WORDINGS: dict[str, tuple[Any, list[str]]] = {
    # (edit of a line with an inline media part of b"ok", the problems both verifiers name)
    "salt without content": (lambda line: line.pop("content"), [APART.format("salt", "content")]),
    "content without salt": (lambda line: line.pop("salt"), [APART.format("content", "salt")]),
    "content without salt and a sequence in quotes": (
        lambda line: unsalted(line).update(sequence=str(line["sequence"])),
        [APART.format("content", "salt")],
    ),
    "a text edited": (
        lambda line: line["content"].update({TEXT: "edited"}),
        [f"{TEXT}: content does not match its commitment"],
    ),
    "bytes edited": (
        lambda line: line["content"].update({DATA: base64.b64encode(b"no").decode()}),
        [f"{DATA}: content does not match its commitment"],
    ),
    "bytes with a padding bit set": (
        lambda line: line["content"].update({DATA: padding_bit_set("b2s=")}),
        [f"{DATA}: bytes not in canonical base64"],
    ),
    "bytes with a LF": (
        lambda line: line["content"].update({DATA: "b2s=\n"}),
        [f"{DATA}: bytes not in canonical base64"],
    ),
    "bytes not base64": (
        lambda line: line["content"].update({DATA: "b2s"}),
        [f"{DATA}: bytes not in canonical base64"],
    ),
}


@pytest.mark.parametrize("edit", WORDINGS)
def test_salt_and_content_apart_and_content_problems_are_worded_alike_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path, edit: str
) -> None:
    """The Go verifier said "salt and content come together: this line has only one",
    "content P does not match its commitment" and "content P: bytes value is not base64"
    where aiaudit says "malformed line: content without salt: a line has both or
    neither" (or salt without content), "P: content does not match its commitment" and
    "P: bytes not in canonical base64"; and it named a sequence in quotes before the salt
    and content apart, which aiaudit checks first."""
    lines = make_bundle(tmp_path, n=2, media=b"ok")
    assert lines[0]["content"][DATA] == "b2s="
    change, named = WORDINGS[edit]
    change(lines[0])
    path = write(tmp_path / "edited.jsonl", lines)
    assert both(go_verifier, capsys, path) == (1, [f"line 1 event e-0: {what}" for what in named])


def blank_line_cr(line: dict[str, Any]) -> None:
    """A CR in the blank line between the proof's hashes and its checkpoint."""
    head, _, checkpoint = line["tlog_proof"].partition("\n\n")
    line["tlog_proof"] = f"{head}\n\r\n{checkpoint}"


MALFORMED_FIRST_COPIES: dict[str, tuple[Any, str]] = {
    # (an edit of an event's first line, why both verifiers call that line malformed)
    "salt without content": (lambda line: line.pop("content"), APART.format("salt", "content")),
    "content without salt": (lambda line: line.pop("salt"), APART.format("content", "salt")),
    "a salt of 16 bytes": (
        lambda line: line.update(salt=base64.b64encode(bytes(16)).decode()),
        "malformed line: salt has 16 bytes, not 32",
    ),
}


@pytest.mark.parametrize("edit", MALFORMED_FIRST_COPIES)
def test_an_intact_copy_of_a_malformed_line_is_no_duplicate_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path, edit: str
) -> None:
    """aiaudit counts only a line it reads whole for duplicates; the Go verifier counted a
    line before it checked its salt and content, and named a later intact copy of the
    malformed line a duplicate of it."""
    lines = make_bundle(tmp_path)
    first = json.loads(json.dumps(lines[0]))
    change, malformed = MALFORMED_FIRST_COPIES[edit]
    change(first)
    path = write(tmp_path / "copies.jsonl", [first, *lines])
    assert both(go_verifier, capsys, path) == (1, [f"line 1 event e-0: {malformed}"])


OTHERWISE_WORDED: dict[str, tuple[Any, bool]] = {
    # (an edit of an event's first line, whether its intact copy is a duplicate), the
    # first line named by each verifier in its own words
    "a salt with a CR": (
        lambda line: line.update(salt=line["salt"][:8] + "\r" + line["salt"][8:]),
        False,
    ),
    "canonical with a LF": (
        lambda line: line.update(canonical=line["canonical"][:8] + "\n" + line["canonical"][8:]),
        False,
    ),
    "index with a leading zero": (lambda line: in_proof(line, 1, lambda i: "index 00"), False),
    "blank line with a CR": (blank_line_cr, False),
    # aiaudit reads the checkpoint only to open it: the line is read whole, and counts
    "checkpoint with a CR": (lambda line: in_proof(line, 5, lambda origin: origin + "\r"), True),
}


@pytest.mark.parametrize("edit", OTHERWISE_WORDED)
def test_only_a_line_read_whole_counts_for_duplicates_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path, edit: str
) -> None:
    """As above for lines aiaudit calls malformed for a value the Go verifier names in its
    own words (base64 and tlog-proof spelling): neither verifier names the intact copy a
    duplicate. A checkpoint spelt another way is no malformed line: both name the copy."""
    lines = make_bundle(tmp_path)
    first = json.loads(json.dumps(lines[0]))
    change, counted = OTHERWISE_WORDED[edit]
    change(first)
    path = write(tmp_path / "copies.jsonl", [first, *lines])
    key = key_of(tmp_path)
    python = ["verify", "--bundle", str(path), "--verifier-key", key]
    assert main([*python, "--origin-prefix", ORIGIN_PREFIX]) == 1
    problems = capsys.readouterr().out.splitlines()
    check = ["bundle", "-verifier-key", key, "-origin-prefix", ORIGIN_PREFIX, path]
    independent = go.run(go_verifier, *check)
    assert independent.returncode == 1, independent.stdout + independent.stderr
    *go_lines, count = independent.stdout.splitlines()
    duplicate = ["line 2 event e-0: duplicate: line 1 has the same log and sequence"]
    assert problems[1:] == go_lines[1:] == (duplicate if counted else []), independent.stdout
    assert problems[0].startswith("line 1 event e-0: ") and go_lines[0].startswith(
        "line 1 event e-0: "
    )
    assert count == f"4 event(s) checked, {len(problems)} problem(s)"


def test_a_line_with_two_faults_is_named_for_the_one_aiaudit_checks_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """The Go verifier checked `canonical` before the salt, and a proof's checkpoint's
    spelling before the line's log: aiaudit checks the salt first, and reads a
    checkpoint only after it has found the line's log is one asked for."""
    lines = make_bundle(tmp_path, n=2)
    lines[0]["salt"] = base64.b64encode(bytes(16)).decode()
    lines[0]["canonical"] = lines[0]["canonical"][:8] + "\n" + lines[0]["canonical"][8:]
    path = write(tmp_path / "salt.jsonl", lines)
    malformed = "line 1 event e-0: malformed line: salt has 16 bytes, not 32"
    assert both(go_verifier, capsys, path) == (1, [malformed])
    other = bundle_of(tmp_path, "t2", 1)[0]
    in_proof(other, 3, lambda origin: origin + "\r")  # no hashes: a log of one event
    path = write(tmp_path / "other.jsonl", [*make_bundle(tmp_path, n=1), other])
    assert both(go_verifier, capsys, path, "--log", TENANT) == (
        1,
        [f"line 2 event t2-0: log 't2' is not one of the logs to verify ({TENANT})"],
    )


@pytest.mark.parametrize(
    ("chosen", "escaped"),
    [
        ("\x1b[2J", "\\x1b[2J"),  # ESC: a terminal control sequence (clear the screen)
        ("\x9b2J", "\\x9b2J"),  # CSI as one C1 control, raw in JSON text
        ("\u202e", "\\u202e"),  # a bidi override: what follows prints reversed
        ("\u2028", "\\u2028"),  # a line separator: a reader splits the problem line
        ("\ufeff", "\\ufeff"),  # invisible
        ("\U000e0001", "\\U000e0001"),  # a tag character, invisible
        ("\t", "\\t"),
        ("\n", "\\n"),  # a line feed: a forged problem or summary line after it
        ("\r\n", "\\r\\n"),
    ],
)
def test_what_the_file_names_is_printed_escaped_in_both_verifiers(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    go_verifier: Path,
    chosen: str,
    escaped: str,
) -> None:
    """aiaudit escapes every unprintable character of an id or a content path it prints;
    the Go verifier printed them raw: an event id holding a terminal control sequence
    could print a fake summary over the real one, and the two verifiers' problem lines
    differed."""
    lines = make_bundle(tmp_path, n=3)
    lines[1]["event_id"] = f"e{chosen}1"
    lines[2]["content"][f"x{chosen}y"] = "v"
    path = write(tmp_path / "named.jsonl", lines)
    assert both(go_verifier, capsys, path) == (
        1,
        [
            f"line 2 event e{escaped}1: canonical eventId/tenantId are not the line's "
            "event_id/log_id",
            f"line 3 event e-2: x{escaped}y: content without a commitment",
        ],
    )


def test_a_line_past_64_mib_verifies_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """An event stored under a raised `max_event_bytes` makes a line past 64 MiB: the Go
    verifier's line scanner stopped there, `bufio.Scanner: token too long`, exit 2 and no
    line named, where aiaudit verified the bundle."""
    events = [interaction(TENANT, "e-0"), interaction(TENANT, "e-1", text="a" * (33 << 20))]
    path = write(tmp_path / "long.jsonl", proved_lines(tmp_path, events))
    assert path.stat().st_size > 64 << 20
    assert both(go_verifier, capsys, path) == (0, [])


def _committed(line: dict[str, Any], edit: Any) -> None:
    """``line``'s canonical bytes edited by ``edit`` (its proof left as it was)."""
    line["canonical"] = base64.b64encode(edit(base64.b64decode(line["canonical"]))).decode()


def _byte_at(committed: bytes, at: int, byte: int) -> bytes:
    return committed[:at] + bytes([byte]) + committed[at + 1 :]


CANONICAL_EDITS: dict[str, Any] = {
    "a byte that is not UTF-8": lambda c: _byte_at(c, 40, 0xA2),
    "a control character in a string": lambda c: _byte_at(c, c.index(b'"alice"') + 2, 0x02),
    "data after the object": lambda c: c + b" {}",
    "a name twice": lambda c: b'{"eventId":"forged",' + c[1:],
    "a lone surrogate": lambda c: b'{"note":"\\ud800",' + c[1:],
    "NaN": lambda c: b'{"note":NaN,' + c[1:],
    # Python's parser stopped near its recursion limit, Go's at 10,000: both refuse past 500
    "nesting 501 deep": lambda c: b'{"note":' + b"[" * 500 + b"]" * 500 + b"," + c[1:],
    "nesting 2,000 deep": lambda c: b'{"note":' + b"[" * 2000 + b"]" * 2000 + b"," + c[1:],
}


@pytest.mark.parametrize("edit", CANONICAL_EDITS)
def test_canonical_bytes_are_read_one_way_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path, edit: str
) -> None:
    """aiaudit read a line's canonical bytes with `json.loads`: bytes edited to no UTF-8
    or no JSON were one problem, `malformed line: 'utf-8' codec can't decode ...` (the line
    was well formed), the inclusion proof's failure unsaid; the Go verifier read them
    leniently (U+FFFD for bad bytes, the first object of several) and named the proof and
    then `content without a commitment`, or nothing more. Both now read them as strictly
    as a line and name the proof and the bytes alike."""
    lines = make_bundle(tmp_path, n=2)
    _committed(lines[0], CANONICAL_EDITS[edit])
    path = write(tmp_path / "edited.jsonl", lines)
    status, problems = both(go_verifier, capsys, path)
    assert status == 1
    assert len(problems) == 2, problems
    assert problems[0].startswith("line 1 event e-0: inclusion proof: "), problems
    assert problems[1] == f"line 1 event e-0: {CANONICAL_UNREAD}"


COMMITMENT = re.compile(rb'"hmac-sha256:[0-9a-f]{64}"')
EDIT_BYTES = b'0fFgz:-_ "\\/\x00\x1f\x7f\x80\xff'
"""Bytes a commitment's characters are edited to: a hex digit, a letter, a colon or a
hyphen (the prefix), JSON's quote and escape, a control character, a byte not UTF-8."""


def commitment_edits(committed: bytes) -> list[tuple[int, int]]:
    """One-byte edits (offset, byte) of every character of each commitment in ``committed``,
    each to the bytes of EDIT_BYTES in turn, from a different one at each character."""
    offsets = [
        at for m in COMMITMENT.finditer(committed) for at in range(m.start() + 1, m.end() - 1)
    ]
    edits = []
    for i, at in enumerate(offsets):
        turn = [EDIT_BYTES[(i + k) % len(EDIT_BYTES)] for k in range(3)]
        edits += [(at, byte) for byte in turn if byte != committed[at]][:2]
    return edits


def test_every_one_byte_edit_of_a_commitment_is_named_alike_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path
) -> None:
    """The Go verifier found commitments by their form (hmac-sha256: and 64 hex digits),
    aiaudit by the event's schema (sensitive_content): a commitment edited to another
    form was `content without a commitment` in Go and `content does not match its
    commitment` in aiaudit. Go now finds them by a table generated from the schema
    (content_schema.go), and every one-byte edit of a commitment's characters is named
    alike: exit status, problem count and problem lines."""
    lines = make_bundle(tmp_path, n=2, media=b"ok")
    committed = base64.b64decode(lines[0]["canonical"])
    edits = commitment_edits(committed)
    assert len(COMMITMENT.findall(committed)) == 3 and len(edits) == 3 * 76 * 2
    mismatched = 0
    for at, byte in edits:
        edited = [dict(lines[0]), lines[1]]
        _committed(edited[0], lambda c, at=at, byte=byte: _byte_at(c, at, byte))
        status, problems = both(go_verifier, capsys, write(tmp_path / "edited.jsonl", edited))
        assert status == 1 and problems[0].startswith("line 1 event e-0: inclusion proof: ")
        mismatched += problems[1:] != [f"line 1 event e-0: {CANONICAL_UNREAD}"]
    assert mismatched > 0  # edits the line still reads as JSON after: those Go named otherwise


def test_the_go_verifier_finds_content_by_a_table_generated_from_the_schema() -> None:
    """content_schema.go is what `scripts/gen-protos.sh` writes from the fields marked
    sensitive_content (its --check fails when the file is stale, and so does this)."""
    assert (go.SOURCE / "content_schema.go").read_text() == go_content.source()
    assert "//\tinput.messages[].parts[].media.data\n" in go_content.source()


@pytest.mark.parametrize(
    ("committed", "kind"),
    [(b"[1]", "an array"), (b'["\\ud800"]', "an array"), (b'"\\ud800"', "a string")],
)
def test_canonical_bytes_of_another_json_type_are_named_alike_in_both_verifiers(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    go_verifier: Path,
    committed: bytes,
    kind: str,
) -> None:
    """Go said `canonical is not a JSON object: json: cannot unmarshal array into Go value
    of type map[string]interface {}` where aiaudit says `canonical is an array, ...`; and
    of an array or a string escaping a lone surrogate, that it is not JSON every reader
    reads alike, where aiaudit names its type first."""
    lines = make_bundle(tmp_path, n=2)
    _committed(lines[0], lambda c: committed)
    path = write(tmp_path / "array.jsonl", lines)
    status, problems = both(go_verifier, capsys, path)
    assert status == 1
    assert problems[1:] == [f"line 1 event e-0: canonical is {kind}, not a JSON object"]


def _proof_hashes(line: dict[str, Any], edit: Any) -> None:
    """``line``'s tlog-proof with its hash lines (after header and index) edited."""
    head, blank, checkpoint = line["tlog_proof"].partition("\n\n")
    header, index, *hashes = head.split("\n")
    line["tlog_proof"] = "\n".join([header, index, *edit(hashes)]) + blank + checkpoint


def _beyond(line: dict[str, Any]) -> None:
    line["sequence"] = 7
    in_proof(line, 1, lambda index: "index 7")


PROOF_EDITS: dict[str, tuple[Any, str]] = {
    "a hash replaced": (
        lambda line: _proof_hashes(line, lambda h: [base64.b64encode(bytes(32)).decode(), *h[1:]]),
        "inclusion proof: the proof leads to root ",
    ),
    "a hash removed": (
        lambda line: _proof_hashes(line, lambda h: h[1:]),
        "inclusion proof: proof is shorter than the path to the root",
    ),
    "a hash added": (
        lambda line: _proof_hashes(line, lambda h: [*h, h[0]]),
        "inclusion proof: proof is longer than the path to the root",
    ),
    "an index past the tree": (
        _beyond,
        "inclusion proof: leaf index 7 is outside a tree of size 3",
    ),
}


@pytest.mark.parametrize("edit", PROOF_EDITS)
def test_a_failed_inclusion_proof_is_named_alike_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path, edit: str
) -> None:
    """aiaudit said `proof does not lead to the root hash` where the Go verifier named the
    two roots, and Go's library named a proof of the wrong length or an index past the tree
    in its own words (`wrong proof size 1, want 2`): the problem lines differed."""
    lines = make_bundle(tmp_path, n=3)
    forge, what = PROOF_EDITS[edit]
    forge(lines[0])
    path = write(tmp_path / "proof.jsonl", lines)
    status, problems = both(go_verifier, capsys, path)
    assert status == 1
    assert [p.split(": ", 1)[0] for p in problems] == ["line 1 event e-0"], problems
    assert problems[0].startswith(f"line 1 event e-0: {what}"), problems


@pytest.mark.parametrize("depth", [501, 2000])
def test_a_line_nested_too_deep_is_named_alike_in_both_verifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], go_verifier: Path, depth: int
) -> None:
    """A line nested 2,000 deep was `malformed line: maximum recursion depth exceeded ...`
    in aiaudit (its parser's limit, which depends on the caller's frames) and `unknown
    field "note"` of event e-1 in Go (whose parser reads 10,000 levels); at 501 both read
    it. Both refuse nesting past 500 now, before anything else, in the same words."""
    lines = make_bundle(tmp_path, n=3)
    path = write(tmp_path / "deep.jsonl", lines)
    text = path.read_text().splitlines()
    nested = "[" * (depth - 1) + "]" * (depth - 1)
    text[1] = text[1][:-1] + f', "note": {nested}}}'
    path.write_text("\n".join(text) + "\n")
    assert both(go_verifier, capsys, path) == (
        1,
        ["line 2 event ?: malformed line: arrays and objects nested more than 500 deep"],
    )
