#!/usr/bin/env bash
# Creates .venv and installs aiaudit into it (editable, so the checkout is what
# runs). `--dev` adds the test and lint tools. Idempotent: reinstalls only when
# pyproject.toml changed since the last install.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
extras=""
[ "${1:-}" = "--dev" ] && extras="[dev]"
venv="$repo/.venv"
stamp="$venv/.installed$extras"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
if [ ! -f "$stamp" ] || [ "$repo/pyproject.toml" -nt "$stamp" ]; then
  "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
  "$venv/bin/python" -m pip install --quiet -e "$repo$extras" >&2
  touch "$stamp"
fi
