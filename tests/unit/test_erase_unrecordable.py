"""``aiaudit erase`` refuses an argument no record can hold, naming it: nothing written.

An argument whose bytes are not UTF-8 reaches Python with a lone surrogate in place of
each such byte (surrogateescape). ``--requested-by``, ``--subject`` and ``--reason`` were
checked for length and U+0000 only, so such a one was taken, and the erasure record could
not be encoded: exit 2 with "'utf-8' codec can't encode character '\\udcff' in position 3",
no field named (review, 2026-12-07). They now say what the API's boundary says of such a
caller (``erasure.unstorable``, shared with ``auth.unrecordable``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aiaudit.common.store import open_store
from tests.contract.test_erasure import load_into
from tests.helpers import whole_log


def _erase(url: str, tenant: str, tmp_path: Path, **given: bytes) -> tuple[int, str]:
    """``aiaudit erase`` of alice's events as a process, arguments as bytes: code, stderr."""
    args = {"--subject": b"alice", "--reason": b"request #7", "--requested-by": b"dpo"}
    args.update({f"--{k.replace('_', '-')}": v for k, v in given.items()})
    argv: list[str | bytes] = [sys.executable, "-m", "aiaudit.cli.main", "erase"]
    argv += ["--database-url", url, "--tenant", tenant, "--data-dir", str(tmp_path)]
    for flag, value in args.items():
        argv += [flag, value]
    env = {**os.environ, "LC_ALL": "C.UTF-8"}  # arguments decoded as UTF-8, surrogateescape
    done = subprocess.run(argv, capture_output=True, env=env, timeout=120, check=False)
    return done.returncode, done.stderr.decode("utf-8", "backslashreplace")


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"requested_by": b"dpo\xff"}, "requested_by"),
        ({"subject": b"alice\xff"}, "subject_id"),
        ({"reason": b"request \xff7"}, "reason"),
    ],
)
def test_an_argument_that_is_not_utf8_is_refused_naming_it(
    store_url: str,
    privacy_url: str,
    tenant: str,
    tmp_path: Path,
    given: dict[str, bytes],
    field: str,
) -> None:
    load_into(store_url, tenant)
    code, err = _erase(privacy_url, tenant, tmp_path, **given)
    assert (code, err.splitlines()[-1:]) == (
        2,
        [f"aiaudit erase: {field} holds U+DCFF, which no record can store"],
    ), err
    assert "Traceback" not in err
    store = open_store(store_url)
    try:
        assert len(whole_log(store, tenant)) == 4  # alice's three and bob's: no record
    finally:
        store.close()
    code, err = _erase(privacy_url, tenant, tmp_path)  # the same erasure, in UTF-8
    assert code == 0, err
