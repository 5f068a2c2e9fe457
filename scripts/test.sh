#!/usr/bin/env bash
# The test command: installs everything the tests need from the project's own
# files (Python packages, buf and helm via Go, PostgreSQL from Debian's packages),
# starts the real backends on loopback, runs the linters and the whole pytest
# suite, and stops the backends. Extra arguments go to pytest.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
scripts/bootstrap.sh --dev
scripts/install-tools.sh >/dev/null
py=.venv/bin/python

started=()
cleanup() { for b in "${started[@]}"; do "scripts/backends/$b.sh" stop >/dev/null 2>&1 || true; done; }
trap cleanup EXIT
for b in postgres openbao opensearch; do
  scripts/backends/$b.sh start >/dev/null
  started+=("$b")
done

echo "== lint" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check . >/dev/null
.venv/bin/mypy
scripts/gen-protos.sh --check
scripts/buf-lint.sh
command -v cargo >/dev/null 2>&1 || PATH="$HOME/.cargo/bin:$PATH"
(cd libs/native && cargo fmt --check && cargo clippy --quiet --release -- -D warnings)
command -v go >/dev/null 2>&1 || PATH="/usr/local/go/bin:$PATH"
# The Go programs: the benchmarks' load generator (tests/bench) and the
# independent auditor's verifier (tests/integrity/test_go_verifier.py).
for dir in bench/loadgen interop/go-verifier; do
  unformatted=$(gofmt -l "$dir")
  [ -z "$unformatted" ] || { echo "gofmt would reformat: $unformatted" >&2; exit 1; }
  (cd "$dir" && GOTOOLCHAIN=local go vet .)
done

echo "== tests" >&2
# pytest exits 5 when it collected nothing: with `set -e` that fails the run too.
"$py" -m pytest "$@"
