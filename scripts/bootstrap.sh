#!/usr/bin/env bash
# Creates .venv and installs aiaudit into it (editable, so the checkout is what
# runs), with its native core built from libs/native (Rust, through maturin).
# `--dev` adds the test and lint tools. Idempotent: reinstalls only what changed
# since the last install (pyproject.toml; the native crate's sources).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
venv="$repo/.venv"
stamp="$venv/.installed$extras"
native="$repo/libs/native"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ ! -f "$venv/.native" ] || [ -n "$(find "$native" -path "$native/target" -prune -o -newer "$venv/.native" -type f -print -quit)" ]; then
  # The machine's Rust comes from rustup, whose cargo a non-login shell may not have on PATH.
  command -v cargo >/dev/null 2>&1 || PATH="$HOME/.cargo/bin:$PATH"
  command -v cargo >/dev/null 2>&1 || { echo "bootstrap: cargo not found; the native core needs a Rust toolchain (rustup)" >&2; exit 1; }
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet "$native" >&2
  touch "$venv/.native"
fi
if [ ! -f "$stamp" ] || [ "$repo/pyproject.toml" -nt "$stamp" ]; then
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet -e "$repo$extras" >&2
  touch "$stamp"
fi
