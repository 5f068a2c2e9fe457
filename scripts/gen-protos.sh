#!/usr/bin/env bash
# Regenerates the Python code of protos/ into the package that owns each proto
# package (aiaudit.common.v1 -> libs/common, aiaudit.ingest.v1 -> services/ingest,
# ...), and from the event's schema the Go verifier's table of content fields
# (interop/go-verifier/content_schema.go, by python -m aiaudit.common.go_content).
# Generated code is committed; `scripts/gen-protos.sh --check` fails when it is
# stale (CI runs it).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
check=false
[ "${1:-}" = "--check" ] && check=true

owner_root() {
  case "$1" in
    common) echo libs/common ;;
    *) echo "services/$1" ;;
  esac
}

out=$repo
if $check; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
wkt=$("$python" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')
gapi=$("$python" -c 'import google.rpc.status_pb2 as m, os; print(os.path.dirname(os.path.dirname(os.path.dirname(m.__file__))))')
for dir in "$repo"/protos/aiaudit/*/v1; do
  pkg=$(basename "$(dirname "$dir")")
  dest="$out/$(owner_root "$pkg")"
  mkdir -p "$dest/aiaudit/$pkg/v1"
  rm -f "$dest/aiaudit/$pkg/v1/"*_pb2*.py "$dest/aiaudit/$pkg/v1/"*_pb2*.pyi
  (cd "$repo/protos" && "$python" -m grpc_tools.protoc -I . -I "$wkt" -I "$gapi" \
    --python_out="$dest" --pyi_out="$dest" --grpc_python_out="$dest" \
    "aiaudit/$pkg/v1/"*.proto)
  : > "$dest/aiaudit/$pkg/v1/__init__.py"
done
# From the Python code in the repo (just written; with --check the committed code, which
# is compared with the protos above).
go_content=interop/go-verifier/content_schema.go
mkdir -p "$out/$(dirname "$go_content")"
"$python" -m aiaudit.common.go_content > "$out/$go_content.tmp"
mv "$out/$go_content.tmp" "$out/$go_content"
if $check; then
  stale=0
  for dir in "$repo"/protos/aiaudit/*/v1; do
    pkg=$(basename "$(dirname "$dir")")
    rel="$(owner_root "$pkg")/aiaudit/$pkg/v1"
    if ! diff -r -x __pycache__ "$out/$rel" "$repo/$rel" >/dev/null; then
      echo "generated code in $rel is stale: run scripts/gen-protos.sh" >&2
      stale=1
    fi
  done
  if ! diff "$out/$go_content" "$repo/$go_content" >/dev/null; then
    echo "generated code $go_content is stale: run scripts/gen-protos.sh" >&2
    stale=1
  fi
  exit $stale
fi
