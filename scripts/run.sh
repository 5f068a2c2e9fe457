#!/usr/bin/env bash
# The main job: installs aiaudit and runs the whole suite on its embedded
# defaults (SQLite in ./data, local signing key, loopback, no servers needed),
# sends the demo interactions once it is up, and keeps serving until Ctrl-C.
# Extra arguments go to `aiaudit serve` (e.g. --address, --data-dir, --config).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/bootstrap.sh"
aiaudit="$repo/.venv/bin/aiaudit"
fifo=$(mktemp -u)
mkfifo "$fifo"
"$aiaudit" serve "$@" > "$fifo" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server; rm -f "$fifo"' EXIT INT TERM
read -r banner < "$fifo"   # the server prints "aiaudit serving on HOST:PORT" once it listens
echo "$banner"
address=${banner##* }
"$aiaudit" demo --address "$address"
echo "aiaudit is running on $address; press Ctrl-C to stop"
cat "$fifo" >/dev/null &
wait $server
