# shellcheck shell=bash
# Shared by the backend scripts (sourced, not run). The sourcing script defines
# log, die, server_pid, is_running, cmd_start, cmd_stop, cmd_status, print_env,
# PID_FILE, BACKENDS_DIR and LOCK_FILE.

# stop_by_pid LABEL GRACE_SECONDS: SIGTERM, wait up to GRACE_SECONDS, then SIGKILL.
stop_by_pid() {
    local pid deadline
    if ! pid="$(server_pid)"; then
        log "not running"
        rm -f "$PID_FILE"
        return 0
    fi
    log "stopping $1 (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + $2))
    while is_running; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "still running after $2s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    rm -f "$PID_FILE"
}

# status_by_pid WHERE: exit 0 if the server runs.
status_by_pid() {
    if is_running; then
        log "running (pid $(server_pid)) at $1"
        return 0
    fi
    log "not running"
    return 1
}

# backend_main LOCK_WAIT_SECONDS COMMAND: one invocation at a time (parallel
# test workers call start concurrently), then the command.
backend_main() {
    local cmd="${2:-}"
    case "$cmd" in
    start | stop | env | status) ;;
    *)
        echo "usage: $0 {start|stop|env|status}" >&2
        exit 2
        ;;
    esac
    mkdir -p "$BACKENDS_DIR"
    exec 9>"$LOCK_FILE"
    flock -w "$1" 9 || die "could not acquire $LOCK_FILE"
    case "$cmd" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    env) print_env ;;
    status) cmd_status ;;
    esac
}
