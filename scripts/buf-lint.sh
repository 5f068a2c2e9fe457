#!/usr/bin/env bash
# Lints protos/ with buf (Buf style guide). google/rpc/status.proto comes from the
# googleapis-common-protos wheel instead of the Buf registry, which CI cannot reach,
# so the lint runs in a scratch workspace that holds both and ignores google/.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
buf=${BUF:-$repo/.tools/bin/buf}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$repo/protos/aiaudit" "$work/"
gapi=$("$python" -c 'import google.rpc.status_pb2 as m, os; print(os.path.dirname(m.__file__))')
mkdir -p "$work/google/rpc"
cp "$gapi/status.proto" "$work/google/rpc/"
cat > "$work/buf.yaml" <<'YAML'
version: v2
lint:
  use: [STANDARD]
  ignore: [google]
YAML
(cd "$work" && "$buf" lint)
