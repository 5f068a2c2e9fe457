#!/usr/bin/env bash
# Throwaway PostgreSQL server on loopback for aiaudit's tests and CI.
#
# Why: the storage tests need a real PostgreSQL (not SQLite) and a fresh CI
# machine may not have a server installed. This script installs Debian's
# `postgresql` package if no server binaries are found, then runs a private
# cluster (initdb) under ${AIAUDIT_BACKENDS_DIR:-$REPO/.backends}/postgres that
# listens only on 127.0.0.1:${AIAUDIT_PG_PORT:-55432}, as the `postgres` system
# user (PostgreSQL refuses to run as root).
#
# Usage: scripts/backends/postgres.sh {start|stop|env|status}
#   start  install if needed, init on first run, start (idempotent), print env
#   stop   fast shutdown (data stays on disk; next start reuses it)
#   env    print the env lines for an initialised cluster
#   status exit 0 if the server is running, 1 otherwise
# stdout carries only these lines (logs go to stderr / the server log):
#   AIAUDIT_TEST_PG_URL=postgresql+psycopg://aiaudit_admin:PASSWORD@127.0.0.1:PORT/aiaudit
#   AIAUDIT_TEST_PG_DSN=postgresql://aiaudit_admin:PASSWORD@127.0.0.1:PORT/aiaudit
# Server log: $AIAUDIT_BACKENDS_DIR/postgres/postgres.log
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/backends/lib.sh
source "$SCRIPT_DIR/lib.sh"
REPO="$(cd "$SCRIPT_DIR/../.." && pwd)"
BACKENDS_DIR="${AIAUDIT_BACKENDS_DIR:-$REPO/.backends}"
PG_PORT="${AIAUDIT_PG_PORT:-55432}"
PG_HOST=127.0.0.1
PG_ROLE=aiaudit_admin
PG_DB=aiaudit
PG_OS_USER=postgres
START_TIMEOUT="${AIAUDIT_PG_START_TIMEOUT:-60}"

PG_BASE="$BACKENDS_DIR/postgres"
PG_DATA="$PG_BASE/data"
PG_LOG="$PG_BASE/postgres.log"
PW_FILE="$PG_BASE/admin-password"
LOCK_FILE="$BACKENDS_DIR/.postgres.lock"

log() { printf '[postgres.sh] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# Unix socket directory: inside the backends dir unless the socket path would
# exceed the kernel's sun_path limit (~107 bytes), then a short /tmp path.
socket_dir() {
    local sock="$PG_BASE/.s.PGSQL.$PG_PORT"
    if [ "${#sock}" -le 100 ]; then
        printf '%s\n' "$PG_BASE"
    else
        printf '/tmp/aiaudit-pg-%s\n' "$(printf '%s' "$PG_BASE" | cksum | cut -d' ' -f1)"
    fi
}

# Run a command as the postgres OS user (or as ourselves when not root).
as_pg() {
    if is_root; then
        (cd / && runuser -u "$PG_OS_USER" -- "$@")
    else
        (cd / && "$@")
    fi
}

# Directory holding initdb/pg_ctl/postgres/pg_isready/psql, or empty.
find_pg_bindir() {
    local d ver
    # An existing cluster must keep using its own major version.
    if [ -f "$PG_DATA/PG_VERSION" ]; then
        ver="$(cat "$PG_DATA/PG_VERSION")"
        if [ -x "/usr/lib/postgresql/$ver/bin/postgres" ]; then
            printf '%s\n' "/usr/lib/postgresql/$ver/bin"
            return 0
        fi
    fi
    d="$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' 2>/dev/null |
        sort -V | tail -n 1)"
    if [ -n "$d" ]; then
        dirname "$d"
        return 0
    fi
    if command -v pg_ctl >/dev/null 2>&1; then
        d="$(dirname "$(readlink -f "$(command -v pg_ctl)")")"
        if [ -x "$d/postgres" ] && [ -x "$d/initdb" ]; then
            printf '%s\n' "$d"
            return 0
        fi
    fi
    return 0
}

install_postgres() {
    is_root || die "PostgreSQL server binaries not found and not root: install the 'postgresql' package"
    log "PostgreSQL server not found; installing Debian package 'postgresql' (apt-get)"
    # Do not let the package create/start its own 'main' cluster on port 5432:
    # we only want the binaries. (postgresql-common reads this drop-in dir.)
    mkdir -p /etc/postgresql-common/createcluster.d
    printf '# written by aiaudit scripts/backends/postgres.sh\ncreate_main_cluster = false\n' \
        >/etc/postgresql-common/createcluster.d/aiaudit-no-main-cluster.conf
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2 </dev/null
    apt-get install -y -q --no-install-recommends postgresql postgresql-client >&2 </dev/null
}

ensure_os_user() {
    is_root || return 0
    if ! id -u "$PG_OS_USER" >/dev/null 2>&1; then
        log "creating system user '$PG_OS_USER'"
        useradd --system --user-group --home-dir /var/lib/postgresql \
            --shell /usr/sbin/nologin "$PG_OS_USER"
    fi
}

gen_password() {
    if command -v openssl >/dev/null 2>&1; then
        openssl rand -hex 24
    else
        od -An -N24 -tx1 /dev/urandom | tr -d ' \n'
        echo
    fi
}

print_env() {
    [ -s "$PW_FILE" ] || die "cluster not initialised (no $PW_FILE); run '$0 start'"
    local pw
    pw="$(cat "$PW_FILE")"
    printf 'AIAUDIT_TEST_PG_URL=postgresql+psycopg://%s:%s@%s:%s/%s\n' "$PG_ROLE" "$pw" "$PG_HOST" "$PG_PORT" "$PG_DB"
    printf 'AIAUDIT_TEST_PG_DSN=postgresql://%s:%s@%s:%s/%s\n' "$PG_ROLE" "$pw" "$PG_HOST" "$PG_PORT" "$PG_DB"
}

# True if PID is a live (not zombie) postgres process. A postmaster killed
# with SIGKILL can linger as a zombie, which kill -0 / pg_ctl status count.
pid_is_live_postgres() {
    local pid="$1" state
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    [ -r "/proc/$pid/stat" ] || return 1
    state="$(sed -e 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)"
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ] || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ]
}

# True if the postmaster named in postmaster.pid is alive.
is_running() {
    [ -f "$PG_DATA/postmaster.pid" ] || return 1
    pid_is_live_postgres "$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null || true)"
}

write_config() {
    local sockdir="$1"
    # Rewritten on every start so a changed AIAUDIT_PG_PORT takes effect.
    cat >"$PG_DATA/aiaudit.conf" <<EOF
# Managed by scripts/backends/postgres.sh -- rewritten at each start.
listen_addresses = '$PG_HOST'
port = $PG_PORT
unix_socket_directories = '$sockdir'
unix_socket_permissions = 0700
max_connections = 200
shared_buffers = 256MB
# Durability tests kill the server: keep crash safety on.
fsync = on
synchronous_commit = on
full_page_writes = on
# A write-heavy log: checkpoints by time, not every ~0.5 GB of WAL (the default
# 1 GB max_wal_size checkpointed about once a minute under the benchmarks, and
# each checkpoint's fsyncs stalled commits for up to a second).
max_wal_size = 8GB
checkpoint_timeout = 15min
ssl = off
password_encryption = 'scram-sha-256'
logging_collector = off
log_min_messages = warning
log_line_prefix = '%m [%p] %q%u@%d '
EOF
    cat >"$PG_DATA/pg_hba.conf" <<EOF
# Managed by scripts/backends/postgres.sh -- rewritten at each start.
# TYPE  DATABASE     USER  ADDRESS        METHOD
local   all          all                  peer
host    all          all   127.0.0.1/32   scram-sha-256
host    replication  all   127.0.0.1/32   scram-sha-256
EOF
    if is_root; then
        chown "$PG_OS_USER:" "$PG_DATA/aiaudit.conf" "$PG_DATA/pg_hba.conf"
    fi
    chmod 0600 "$PG_DATA/aiaudit.conf" "$PG_DATA/pg_hba.conf"
}

init_cluster() {
    local bindir="$1"
    log "initialising a new cluster in $PG_DATA"
    mkdir -p "$PG_DATA"
    if is_root; then chown "$PG_OS_USER:" "$PG_DATA"; fi
    chmod 0700 "$PG_DATA"
    as_pg "$bindir/initdb" -D "$PG_DATA" -U postgres -E UTF8 --no-locale \
        --auth-local=peer --auth-host=scram-sha-256 >&2
    printf "\ninclude_if_exists = 'aiaudit.conf'\n" >>"$PG_DATA/postgresql.conf"
}

# Poll pg_isready (bounded) until the server accepts TCP connections.
wait_ready() {
    local bindir="$1" deadline
    deadline=$((SECONDS + START_TIMEOUT))
    while ! "$bindir/pg_isready" -q -h "$PG_HOST" -p "$PG_PORT" -d postgres -t 2; do
        if ! is_running; then
            tail -n 20 "$PG_LOG" >&2 || true
            log "PostgreSQL is not running (log: $PG_LOG)"
            return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 20 "$PG_LOG" >&2 || true
            die "PostgreSQL not ready on $PG_HOST:$PG_PORT after ${START_TIMEOUT}s (log: $PG_LOG)"
        fi
        sleep 0.2
    done
}

# After a kill -9 of the postmaster its backends exit on their own shortly
# after; a new postmaster refuses to start while they still hold the old
# shared memory. Wait (bounded) until no process runs inside the data dir.
wait_old_processes_gone() {
    local deadline p busy
    deadline=$((SECONDS + 20))
    while :; do
        busy=""
        for p in /proc/[0-9]*; do
            if [ "$(readlink "$p/cwd" 2>/dev/null)" = "$PG_DATA" ]; then
                busy="${p#/proc/}"
                break
            fi
        done
        [ -n "$busy" ] || return 0
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "warning: process $busy still runs in $PG_DATA; starting anyway"
            return 0
        fi
        sleep 0.2
    done
}

# A postmaster killed with SIGKILL stays a zombie until init reaps it (which
# can take seconds in some sandboxes); PostgreSQL then sees its pid alive and
# refuses to start ("lock file ... already exists"). That process is dead, so
# its data-dir and socket lock files are stale: remove them.
remove_stale_lockfiles() {
    local sockdir="$1" f pid
    for f in "$PG_DATA/postmaster.pid" "$sockdir/.s.PGSQL.$PG_PORT.lock"; do
        [ -f "$f" ] || continue
        pid="$(head -n 1 "$f" 2>/dev/null || true)"
        pid_is_live_postgres "$pid" && continue
        log "removing stale $(basename "$f") (pid ${pid:-?} is gone or a zombie)"
        rm -f "$f"
    done
}

# Create/refresh the test superuser and database (idempotent, via the socket).
ensure_role_and_db() {
    local bindir="$1" sockdir="$2" pw
    pw="$(cat "$PW_FILE")"
    # Password is hex, so it needs no SQL quoting; fed on stdin to keep it
    # out of the process list.
    as_pg "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$sockdir" -p "$PG_PORT" -U postgres -d postgres >&2 <<EOF
SELECT format('CREATE ROLE %I LOGIN SUPERUSER', '$PG_ROLE')
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$PG_ROLE') \gexec
ALTER ROLE $PG_ROLE WITH LOGIN SUPERUSER PASSWORD '$pw';
SELECT format('CREATE DATABASE %I OWNER %I', '$PG_DB', '$PG_ROLE')
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$PG_DB') \gexec
EOF
}

cmd_start() {
    local bindir sockdir
    bindir="$(find_pg_bindir)"
    if [ -z "$bindir" ]; then
        install_postgres
        bindir="$(find_pg_bindir)"
        [ -n "$bindir" ] || die "PostgreSQL server binaries still not found after install"
    fi
    ensure_os_user
    sockdir="$(socket_dir)"

    mkdir -p "$PG_BASE" "$sockdir"
    if is_root; then chown "$PG_OS_USER:" "$PG_BASE" "$sockdir"; fi
    chmod 0700 "$PG_BASE" "$sockdir"
    if is_root && ! runuser -u "$PG_OS_USER" -- test -w "$PG_BASE"; then
        die "user '$PG_OS_USER' cannot reach $PG_BASE (a parent dir is not traversable); set AIAUDIT_BACKENDS_DIR elsewhere"
    fi

    if [ ! -s "$PW_FILE" ]; then
        (umask 077 && gen_password >"$PW_FILE")
    fi
    chmod 0600 "$PW_FILE"

    if is_running; then
        log "already running (data: $PG_DATA)"
        wait_ready "$bindir" || die "running PostgreSQL does not answer on $PG_HOST:$PG_PORT"
        print_env
        return 0
    fi

    [ -f "$PG_DATA/PG_VERSION" ] || init_cluster "$bindir"
    write_config "$sockdir"

    : >>"$PG_LOG"
    if is_root; then chown "$PG_OS_USER:" "$PG_LOG"; fi
    chmod 0600 "$PG_LOG"
    log "starting PostgreSQL ($("$bindir/postgres" --version)) on $PG_HOST:$PG_PORT, log: $PG_LOG"
    wait_old_processes_gone
    remove_stale_lockfiles "$sockdir"
    # pg_ctl -w notices at once if the postmaster dies during startup; the
    # pg_isready loop then confirms the TCP listener. 9>&-: the server must
    # not inherit our lock file descriptor. One retry covers a postmaster
    # killed so recently that its shared memory was still attached.
    local attempt
    for attempt in 1 2; do
        if as_pg "$bindir/pg_ctl" start -w -t "$START_TIMEOUT" -D "$PG_DATA" -l "$PG_LOG" 9>&- >&2 &&
            wait_ready "$bindir"; then
            break
        fi
        [ "$attempt" -lt 2 ] || die "PostgreSQL failed to start (log: $PG_LOG)"
        log "start failed; retrying once"
        sleep 1
        wait_old_processes_gone
        remove_stale_lockfiles "$sockdir"
    done
    ensure_role_and_db "$bindir" "$sockdir"
    log "ready"
    print_env
}

cmd_stop() {
    local bindir
    bindir="$(find_pg_bindir)"
    if [ -z "$bindir" ] || ! is_running; then
        log "not running"
        return 0
    fi
    log "stopping PostgreSQL (data kept in $PG_DATA)"
    as_pg "$bindir/pg_ctl" stop -D "$PG_DATA" -m fast -w -t 60 >&2
}

cmd_status() {
    local bindir
    bindir="$(find_pg_bindir)"
    if [ -n "$bindir" ] && is_running; then
        log "running on $PG_HOST:$PG_PORT"
        return 0
    fi
    log "not running"
    return 1
}

backend_main 300 "$@"
