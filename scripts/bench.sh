#!/usr/bin/env bash
# Runs a benchmark from bench/ against real backends started here; all figures
# of one benchmark come from the same run. Usage: scripts/bench.sh ingest [args]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
scripts/bootstrap.sh --dev
name=${1:?usage: scripts/bench.sh ingest [args]}
shift
set -a
eval "$(scripts/backends/postgres.sh start)"
case "$name" in search*) eval "$(scripts/backends/opensearch.sh start)" ;; esac
set +a
exec .venv/bin/python -m "bench.${name}_bench" "$@"
