#!/usr/bin/env bash
# scripts/servers.sh: runs a command against a private, throwaway Redis and
# PostgreSQL bound to 127.0.0.1 on free random ports, then always tears both
# down (also when the command fails or this script is interrupted) and exits
# with the command's status.  Used by scripts/test.sh and scripts/demo.sh;
# see --help for the environment it exports.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/servers.sh [--keep] COMMAND [ARGS...]
       scripts/servers.sh --print-env
       scripts/servers.sh --stop DIR

Starts a private redis-server and PostgreSQL on 127.0.0.1 (random free ports,
state in a fresh directory under $SLUICE_RUN_DIR, default <repo>/.sluice-run),
runs COMMAND with the variables below exported, stops both servers and
removes the state directory, and exits with COMMAND's exit status.  If the
servers cannot be started it exits 125.

Options:
  --keep         keep the state directory (configs, logs, data) afterwards
  --print-env    start the servers, print `export` lines and leave them
                 running (for debugging); stop them with --stop DIR
  --stop DIR     stop the servers of state directory DIR and remove it
  -h, --help     show this help

Exported to COMMAND:
  REDIS_URL, SLUICE_REDIS_URL        redis://127.0.0.1:PORT/0
  DATABASE_URL, SLUICE_DATABASE_URL  postgresql://sluice@127.0.0.1:PORT/sluice
  SLUICE_REDIS_PORT, SLUICE_PG_PORT  the ports
  SLUICE_REDIS_CONF                  the redis config file
  SLUICE_REDIS_LOG, SLUICE_PG_LOG    the server logs
  SLUICE_PG_BIN                      PostgreSQL's bin directory (pg_ctl, psql...)
  SLUICE_PG_DATA                     the PostgreSQL data directory
  SLUICE_PG_USER                     the OS user PostgreSQL runs as
  SLUICE_STATE_DIR                   the state directory of this run
  SLUICE_REDIS_CTL, SLUICE_PG_CTL    control scripts for fault injection:
                                     `$SLUICE_REDIS_CTL start|stop|restart|kill|status`
                                     `$SLUICE_PG_CTL start|stop|restart|kill|status`
                                     (stop/restart are graceful and keep data:
                                     Redis writes its AOF, PostgreSQL stops with
                                     -m fast; kill simulates a crash: SIGKILL for
                                     Redis, -m immediate for PostgreSQL)
Environment read:
  SLUICE_RUN_DIR           where state directories go (default <repo>/.sluice-run)
  SLUICE_PG_FAST=1         fsync=off, synchronous_commit=off (tests only: not
                           crash safe); default is fsync on
  SLUICE_KEEP_ON_FAILURE=1 keep the state directory if COMMAND fails
  SLUICE_STOP_GRACE=N      seconds COMMAND gets to exit after a forwarded
                           TERM/HUP (or INT when stdin is not a terminal)
                           before it and its children are killed (default 10)

Signals: INT, TERM and HUP are forwarded to COMMAND; the servers are stopped
once it has exited.  A watchdog in its own session stops the servers if this
script itself is killed with SIGKILL.  Interactive use: `scripts/servers.sh
bash` gives a shell with the servers up; they stop when the shell exits.
EOF
}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
SELF="$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")"
RUN_DIR=${SLUICE_RUN_DIR:-$REPO_ROOT/.sluice-run}
STARTUP_TIMEOUT=30

# Messages go to a copy of the original stderr: a trap may run while a
# command's output is redirected to a log file.
exec {LOG_FD}>&2
log() { printf 'servers: %s\n' "$*" 1>&"$LOG_FD" 2>/dev/null || true; }

# ---------------------------------------------------------------- processes

# True if pid exists and is not a zombie.
alive() {
    local line state
    [[ -n ${1:-} ]] || return 1
    { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
    state=${line##*) }
    state=${state%% *}
    [[ $state != Z && $state != X ]]
}

# The start time of pid (field 22 of /proc/PID/stat; "" if gone): with the
# pid, it names one process even if the pid is reused later.
start_time_of() {
    local line f
    { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 0
    read -r -a f <<<"${line##*) }"
    printf '%s' "${f[19]:-}"
}

# The command name of pid ("" if gone).
comm_of() {
    local c=""
    { read -r c <"/proc/$1/comm"; } 2>/dev/null || true
    printf '%s' "$c"
}

# Prints every descendant pid of $1 (read from /proc; procps may be absent).
descendants() {
    local -A kids=()
    local f line pid rest ppid
    for f in /proc/[0-9]*/stat; do
        { read -r line <"$f"; } 2>/dev/null || continue
        pid=${line%% *}
        rest=${line##*) } # "STATE PPID PGRP ..."
        ppid=${rest#* }
        ppid=${ppid%% *}
        kids[$ppid]+="$pid "
    done
    local queue=("$1") p c
    while ((${#queue[@]})); do
        p=${queue[0]}
        queue=("${queue[@]:1}")
        for c in ${kids[$p]:-}; do
            printf '%s\n' "$c"
            queue+=("$c")
        done
    done
}

# Sends signal $2 to pid $1 and all its descendants.
kill_tree() {
    local pid=$1 sig=$2 all
    mapfile -t all < <(descendants "$pid")
    kill -s "$sig" "$pid" "${all[@]}" 2>/dev/null || true
}

# Waits up to $2 seconds for pid $1 to go away; true if it did.
wait_gone() {
    local pid=$1 deadline=$((SECONDS + $2))
    while alive "$pid"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
}

# Closes every file descriptor above 2 (so servers started in the background
# never hold a caller's pipes open).
close_fds() {
    local fd n
    for fd in /proc/"$BASHPID"/fd/*; do
        n=${fd##*/}
        if [[ $n =~ ^[0-9]+$ ]] && ((n > 2)); then
            eval "exec $n>&-"
        fi
    done
}

# ---------------------------------------------------------------- ports

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Prints a random port in 20000-31999 (below Linux's ephemeral range) that
# nothing listens on; $1: a port not to return.
free_port() {
    local p i
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
        [[ $p != "${1:-}" ]] || continue
        if ! port_in_use "$p"; then
            printf '%s\n' "$p"
            return 0
        fi
    done
    return 1
}

# ---------------------------------------------------------------- state

STATE_VARS=(STATE PG_ROOT PG_EXTERNAL PG_BIN PG_DATA PG_LOG PG_USER PG_PORT
    REDIS_CONF REDIS_LOG REDIS_PIDFILE REDIS_PORT OWNER_PID MODE KEEP CMD_PID CMD_START)

save_state() {
    local v
    for v in "${STATE_VARS[@]}"; do
        printf '%s=%q\n' "$v" "${!v:-}"
    done >"$STATE/servers.state.tmp"
    mv -f "$STATE/servers.state.tmp" "$STATE/servers.state"
}

load_state() {
    local f=$1/servers.state line
    [[ -f $f ]] || return 1
    # Only assignments of the known names are accepted.
    while IFS= read -r line; do
        [[ $line =~ ^([A-Z_]+)=(.*)$ ]] || continue
        case " ${STATE_VARS[*]} " in *" ${BASH_REMATCH[1]} "*) ;; *) continue ;; esac
        eval "${BASH_REMATCH[1]}=${BASH_REMATCH[2]}"
    done <"$f"
}

# Runs a command as the user PostgreSQL runs as (from / so that an
# unreadable cwd such as /root does not matter).
as_pg() {
    if [[ $PG_USER != "$(id -un)" ]]; then
        (cd / && exec runuser -u "$PG_USER" -- "$@")
    else
        "$@"
    fi
}

# ---------------------------------------------------------------- stopping

redis_pid() {
    local pid=""
    if [[ -n ${REDIS_PIDFILE:-} && -s $REDIS_PIDFILE ]]; then
        { read -r pid <"$REDIS_PIDFILE"; } 2>/dev/null || true
    fi
    if alive "$pid" && [[ $(comm_of "$pid") == redis-server* ]]; then
        printf '%s\n' "$pid"
    fi
}

stop_redis() {
    local pid
    for pid in $(redis_pid) ${REDIS_LAUNCH_PID:-}; do
        alive "$pid" || continue
        [[ $(comm_of "$pid") == redis-server* ]] || continue
        kill -TERM "$pid" 2>/dev/null || true # graceful: AOF is flushed
        if ! wait_gone "$pid" 10; then
            log "redis-server $pid ignored SIGTERM; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            wait_gone "$pid" 5 || log "redis-server $pid survived SIGKILL"
        fi
    done
}

postmaster_pid() {
    local pid=""
    if [[ -n ${PG_DATA:-} && -s $PG_DATA/postmaster.pid ]]; then
        { read -r pid <"$PG_DATA/postmaster.pid"; } 2>/dev/null || true
    fi
    if alive "$pid" && [[ $(comm_of "$pid") == postgres* ]]; then
        printf '%s\n' "$pid"
    fi
}

stop_pg() {
    local pid
    pid=$(postmaster_pid)
    [[ -n $pid ]] || return 0
    if as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 20 stop >/dev/null 2>&1 &&
        wait_gone "$pid" 5; then
        return 0
    fi
    log "postgres $pid did not stop with pg_ctl -m fast; killing it"
    kill_tree "$pid" KILL
    wait_gone "$pid" 5 || log "postgres $pid survived SIGKILL"
}

remove_dirs() {
    if [[ ${PG_EXTERNAL:-0} == 1 && -n ${PG_ROOT:-} && -d $PG_ROOT ]]; then
        rm -rf -- "$PG_ROOT"
    fi
    if [[ -n ${STATE:-} && -d $STATE ]]; then
        rm -rf -- "$STATE"
    fi
}

# shellcheck disable=SC2317 # called from the EXIT trap
stop_watchdog() {
    if [[ -n ${WATCHDOG_PID:-} ]] && alive "$WATCHDOG_PID"; then
        kill -TERM "$WATCHDOG_PID" 2>/dev/null || true
        wait_gone "$WATCHDOG_PID" 5 || kill -KILL "$WATCHDOG_PID" 2>/dev/null || true
    fi
    WATCHDOG_PID=
}

# EXIT trap of a normal run.
# shellcheck disable=SC2317 # invoked by the trap
teardown() {
    local rc=$?
    # Finish cleaning up whatever arrives now (also when whoever read our
    # output, e.g. a `| tee`, is gone).
    trap '' INT TERM HUP PIPE
    trap - EXIT
    local t0
    t0=$(date +%s%N)
    stop_watchdog
    if [[ -n ${CMD_PID:-} ]] && alive "$CMD_PID"; then
        kill_tree "$CMD_PID" KILL
    fi
    stop_redis
    stop_pg
    if [[ -n ${STATE:-} && -d $STATE ]]; then
        if ((KEEP)) || { ((rc != 0)) && [[ ${SLUICE_KEEP_ON_FAILURE:-0} == 1 ]]; }; then
            : >"$STATE/kept"
            log "kept state directory $STATE"
            log "  logs: ${REDIS_LOG:-}"
            log "        ${PG_LOG:-}"
        else
            remove_dirs
        fi
    fi
    [[ -z ${T_STARTED:-} ]] || log "servers stopped in $((($(date +%s%N) - t0) / 1000000)) ms"
    exit "$rc"
}

# Stops and removes the run in directory $1 (used by --stop, the watchdog and
# the sweep of stale runs), with that run's state loaded into locals.  With
# $2 = keep-if-marked, a directory marked `kept` is only stopped.
stop_run_dir() {
    # Locals shadow this script's own globals for the functions called below.
    local STATE="" PG_ROOT="" PG_EXTERNAL=0 PG_BIN="" PG_DATA="" PG_LOG="" PG_USER=""
    local PG_PORT="" REDIS_CONF="" REDIS_LOG="" REDIS_PIDFILE="" REDIS_PORT=""
    local OWNER_PID="" MODE="" KEEP=0 REDIS_LAUNCH_PID="" CMD_PID="" CMD_START=""
    load_state "$1" || {
        log "$1: no servers.state here"
        return 1
    }
    STATE=$(cd "$1" && pwd)
    stop_redis
    stop_pg
    if [[ ${2:-} == keep-if-marked && -e $STATE/kept ]]; then
        return 0
    fi
    remove_dirs
}

# Stops the servers of runs whose owner process is gone (e.g. after a
# SIGKILL of both this script and its watchdog, or a reboot).
sweep_stale_runs() {
    local d owner mode
    for d in "$RUN_DIR"/run.*; do
        [[ -f $d/servers.state && ! -e $d/kept ]] || continue
        owner=$(sed -n 's/^OWNER_PID=//p' "$d/servers.state")
        mode=$(sed -n 's/^MODE=//p' "$d/servers.state")
        [[ $mode == run ]] || continue
        alive "$owner" && continue
        log "cleaning up stale run $d (owner $owner is gone)"
        stop_run_dir "$d" || true
    done
}

# ---------------------------------------------------------------- watchdog

# Hidden mode: `servers.sh --watchdog PID DIR`, started in its own session.
# When PID dies without having stopped the servers, stop them.
watchdog_main() {
    local main=$1 dir=$2 sleeper=""
    trap '' INT HUP
    trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
    while alive "$main"; do
        sleep 1 &
        sleeper=$!
        wait "$sleeper" || true
    done
    [[ -f $dir/servers.state ]] || exit 0
    # The owner died without tearing down: end its command (if still the
    # same process), then stop the servers.  That is a failure.
    local CMD_PID="" CMD_START=""
    eval "$(grep -E '^CMD_(PID|START)=[0-9]*$' "$dir/servers.state")"
    if alive "$CMD_PID" && [[ -n $CMD_START && $(start_time_of "$CMD_PID") == "$CMD_START" ]]; then
        kill_tree "$CMD_PID" TERM
        wait_gone "$CMD_PID" 5 || kill_tree "$CMD_PID" KILL
    fi
    if [[ ${SLUICE_KEEP_ON_FAILURE:-0} == 1 ]] || grep -qx 'KEEP=1' "$dir/servers.state"; then
        : >"$dir/kept"
    fi
    stop_run_dir "$dir" keep-if-marked || true
}

start_watchdog() {
    (
        close_fds
        exec setsid "$SELF" --watchdog "$$" "$STATE" </dev/null >/dev/null 2>&1
    ) &
    WATCHDOG_PID=$!
}

# ---------------------------------------------------------------- starting

die_start() {
    log "error: $*"
    exit 125
}

# Prints the last lines of a log file, indented, to stderr.
log_tail() {
    [[ -f $1 ]] || return 0
    log "last lines of $1:"
    tail -n "${2:-25}" "$1" | sed 's/^/    /' 1>&"$LOG_FD" 2>/dev/null || true
}

find_pg_bin() {
    local d best=""
    if [[ -n ${SLUICE_PG_BIN:-} && -x $SLUICE_PG_BIN/pg_ctl ]]; then
        printf '%s\n' "$SLUICE_PG_BIN"
        return 0
    fi
    for d in /usr/lib/postgresql/*/bin; do
        [[ -x $d/pg_ctl && -x $d/initdb && -x $d/postgres ]] || continue
        best=$(printf '%s\n%s\n' "$best" "$d" | sed '/^$/d' | sort -V | tail -n 1)
    done
    if [[ -z $best ]] && command -v pg_config >/dev/null; then
        d=$(pg_config --bindir)
        [[ -x $d/pg_ctl && -x $d/initdb ]] && best=$d
    fi
    [[ -n $best ]] || return 1
    printf '%s\n' "$best"
}

write_redis_conf() {
    cat >"$REDIS_CONF" <<EOF
# Generated by scripts/servers.sh: private Redis for one run.
bind 127.0.0.1
port $REDIS_PORT
protected-mode yes
daemonize no
pidfile $REDIS_PIDFILE
dir $STATE/redis
logfile $REDIS_LOG
appendonly yes
appendfsync everysec
maxmemory-policy noeviction
# Largest value a client may send: bounds any one job entry (worker.max_payload
# is checked below it; see docs/operations.md).
proto-max-bulk-len 64mb
save ""
EOF
}

# Waits for our redis-server (pid $1) to answer PONG on REDIS_PORT.
# Returns 0 when up, 2 if the process died, 1 on timeout.
wait_redis() {
    local pid=$1 deadline=$((SECONDS + STARTUP_TIMEOUT)) reply owner
    while ((SECONDS < deadline)); do
        alive "$pid" || return 2
        # (timeout: whatever else listens on the port may never answer)
        reply=$(timeout 2 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null || true)
        if [[ $reply == PONG ]]; then
            owner=$(timeout 2 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" info server 2>/dev/null |
                sed -n 's/^process_id:\([0-9]*\).*/\1/p')
            [[ $owner == "$pid" ]] || return 2 # someone else's server
            return 0
        fi
        sleep 0.05
    done
    return 1
}

start_redis() {
    local attempt rc
    mkdir -p "$STATE/redis"
    REDIS_CONF=$STATE/redis/redis.conf
    REDIS_LOG=$STATE/redis/redis.log
    REDIS_PIDFILE=$STATE/redis/redis.pid
    for attempt in 1 2 3 4 5; do
        REDIS_PORT=$(free_port "${PG_PORT:-}") || die_start "no free port for redis"
        write_redis_conf
        save_state
        (
            close_fds
            exec setsid redis-server "$REDIS_CONF" </dev/null >/dev/null 2>&1
        ) &
        REDIS_LAUNCH_PID=$!
        rc=0
        wait_redis "$REDIS_LAUNCH_PID" || rc=$?
        ((rc == 0)) && return 0
        if ((rc == 1)); then
            log_tail "$REDIS_LOG"
            die_start "redis-server did not answer PONG on port $REDIS_PORT within ${STARTUP_TIMEOUT}s"
        fi
        stop_redis
        if grep -q 'Address already in use' "$REDIS_LOG" 2>/dev/null || port_in_use "$REDIS_PORT"; then
            log "redis port $REDIS_PORT was taken (attempt $attempt); retrying on another"
            : >"$REDIS_LOG"
            continue
        fi
        log_tail "$REDIS_LOG"
        die_start "redis-server exited during startup"
    done
    die_start "redis-server: could not bind a free port in 5 attempts"
}

# Chooses the directory for PostgreSQL's data, log and socket, owned by the
# user it runs as.  As root that is the `postgres` system user, which must be
# able to reach the directory: if it cannot (e.g. a repo under /root) or the
# socket path would be too long, a directory under /tmp is used instead.
prepare_pg_root() {
    PG_EXTERNAL=0
    if ((EUID == 0)); then
        PG_USER=postgres
        id -u "$PG_USER" >/dev/null 2>&1 ||
            die_start "running as root needs the 'postgres' system user (installed by the postgresql package: run scripts/deps.sh)"
        PG_ROOT=$STATE/pg
        mkdir -m 700 "$PG_ROOT"
        chown "$PG_USER:" "$PG_ROOT"
        if ((${#PG_ROOT} > 80)) || ! runuser -u "$PG_USER" -- test -w "$PG_ROOT" 2>/dev/null; then
            rmdir "$PG_ROOT"
            PG_ROOT=$(mktemp -d /tmp/sluice-pg.XXXXXX)
            chown "$PG_USER:" "$PG_ROOT"
            PG_EXTERNAL=1
        fi
    else
        PG_USER=$(id -un)
        PG_ROOT=$STATE/pg
        if ((${#PG_ROOT} > 80)); then
            PG_ROOT=$(mktemp -d /tmp/sluice-pg.XXXXXX)
            PG_EXTERNAL=1
        else
            mkdir -m 700 "$PG_ROOT"
        fi
    fi
    PG_DATA=$PG_ROOT/data
    PG_LOG=$PG_ROOT/postgres.log
    if ((PG_EXTERNAL)); then
        ln -s "$PG_LOG" "$STATE/postgres.log"
    else
        ln -s pg/postgres.log "$STATE/postgres.log"
    fi
}

write_pg_conf() {
    local fast=${SLUICE_PG_FAST:-0}
    {
        echo "# Generated by scripts/servers.sh: private PostgreSQL for one run."
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $PG_PORT"
        echo "unix_socket_directories = '$PG_ROOT'"
        echo "max_connections = 200"
        if [[ $fast == 1 ]]; then
            echo "# SLUICE_PG_FAST=1: TESTS ONLY -- not crash safe"
            echo "fsync = off"
            echo "synchronous_commit = off"
            echo "full_page_writes = off"
        else
            echo "fsync = on"
        fi
    } >"$PG_DATA/sluice.conf"
    if [[ $PG_USER != "$(id -un)" ]]; then
        chown "$PG_USER:" "$PG_DATA/sluice.conf"
    fi
}

start_pg() {
    local attempt size rc deadline
    PG_BIN=$(find_pg_bin) ||
        die_start "no PostgreSQL server binaries found (/usr/lib/postgresql/*/bin): run scripts/deps.sh"
    prepare_pg_root
    save_state
    if ! as_pg "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U sluice --no-sync -E UTF8 --locale=C \
        >"$PG_ROOT/initdb.log" 2>&1; then
        log_tail "$PG_ROOT/initdb.log"
        die_start "initdb failed"
    fi
    printf "\ninclude 'sluice.conf'\n" >>"$PG_DATA/postgresql.conf"
    for attempt in 1 2 3 4 5; do
        PG_PORT=$(free_port "$REDIS_PORT") || die_start "no free port for postgres"
        write_pg_conf
        save_state
        size=$(stat -c %s "$PG_LOG" 2>/dev/null || echo 0)
        rc=0
        # pg_ctl starts the postmaster in its own session (Ctrl-C does not
        # reach it) with stdin from /dev/null and output to the log.
        (close_fds && as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$STARTUP_TIMEOUT" start) \
            >"$PG_ROOT/pg_ctl.log" 2>&1 || rc=$?
        if ((rc == 0)); then
            break
        fi
        stop_pg
        if tail -c "+$((size + 1))" "$PG_LOG" 2>/dev/null | grep -q 'could not bind\|Address already in use'; then
            log "postgres port $PG_PORT was taken (attempt $attempt); retrying on another"
            continue
        fi
        log_tail "$PG_ROOT/pg_ctl.log" 10
        log_tail "$PG_LOG"
        die_start "postgres did not start"
    done
    ((rc == 0)) || die_start "postgres: could not bind a free port in 5 attempts"
    deadline=$((SECONDS + STARTUP_TIMEOUT))
    until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 1; do
        if ((SECONDS >= deadline)); then
            log_tail "$PG_LOG"
            die_start "pg_isready: postgres on port $PG_PORT not ready within ${STARTUP_TIMEOUT}s"
        fi
        sleep 0.1
    done
    if ! "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U sluice sluice >"$PG_ROOT/createdb.log" 2>&1; then
        log_tail "$PG_ROOT/createdb.log"
        die_start "createdb sluice failed"
    fi
}

write_pg_ctl() {
    {
        echo '#!/usr/bin/env bash'
        echo '# Generated by scripts/servers.sh: controls the private PostgreSQL of one'
        echo '# run (fault injection in tests).  Usage: pg-ctl start|stop|restart|kill|status'
        echo '#   stop/restart: pg_ctl -m fast; kill: pg_ctl -m immediate (a crash:'
        echo '#   no shutdown checkpoint, recovery on the next start).'
        echo 'set -euo pipefail'
        printf 'PG_BIN=%q\nPG_DATA=%q\nPG_LOG=%q\nPG_USER=%q\n' "$PG_BIN" "$PG_DATA" "$PG_LOG" "$PG_USER"
        cat <<'EOF'
# Closes inherited descriptors above 2 (in a subshell about to exec: a
# caller's pipes must not be held open by the server).
close_fds() {
    local fd n
    for fd in /proc/"$BASHPID"/fd/*; do
        n=${fd##*/}
        if [[ $n =~ ^[0-9]+$ ]] && ((n > 2)); then eval "exec $n>&-"; fi
    done
}
ctl() {
    (
        close_fds
        if [[ $PG_USER != "$(id -un)" ]]; then
            cd /
            exec runuser -u "$PG_USER" -- "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 "$@"
        fi
        exec "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 "$@"
    )
}
case ${1:-} in
start) ctl start ;;
stop) ctl -m fast stop ;;
restart) ctl -m fast restart ;;
kill) ctl -m immediate stop ;;
status) ctl status ;;
*)
    echo "usage: $0 start|stop|restart|kill|status" >&2
    exit 2
    ;;
esac
EOF
    } >"$STATE/pg-ctl"
    chmod 755 "$STATE/pg-ctl"
}

write_redis_ctl() {
    {
        echo '#!/usr/bin/env bash'
        echo '# Generated by scripts/servers.sh: controls the private Redis of one run'
        echo '# (fault injection in tests).  Usage: redis-ctl start|stop|restart|kill|status'
        echo '#   stop/restart: SHUTDOWN (the AOF is written, data survives);'
        echo '#   kill: SIGKILL (a crash: up to 1 s of writes may be lost).'
        echo 'set -euo pipefail'
        printf 'REDIS_CONF=%q\nREDIS_PORT=%q\nREDIS_PIDFILE=%q\nREDIS_LOG=%q\n' \
            "$REDIS_CONF" "$REDIS_PORT" "$REDIS_PIDFILE" "$REDIS_LOG"
        cat <<'EOF'
close_fds() {
    local fd n
    for fd in /proc/"$BASHPID"/fd/*; do
        n=${fd##*/}
        if [[ $n =~ ^[0-9]+$ ]] && ((n > 2)); then eval "exec $n>&-"; fi
    done
}
alive() {
    local line state
    [[ -n ${1:-} ]] || return 1
    { read -r line <"/proc/$1/stat"; } 2>/dev/null || return 1
    state=${line##*) }
    state=${state%% *}
    [[ $state != Z && $state != X ]]
}
pid_of() {
    local pid=""
    [[ -s $REDIS_PIDFILE ]] && { read -r pid <"$REDIS_PIDFILE"; } 2>/dev/null
    if alive "$pid"; then printf '%s\n' "$pid"; fi
}
cli() { timeout 5 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
wait_gone() {
    local deadline=$((SECONDS + 30))
    while alive "$1"; do
        if ((SECONDS >= deadline)); then
            echo "redis-ctl: redis-server $1 did not exit; killing it" >&2
            kill -KILL "$1" 2>/dev/null || true
            sleep 0.2
            return 0
        fi
        sleep 0.05
    done
}
do_start() {
    local pid deadline
    if pid=$(pid_of) && [[ -n $pid ]]; then
        echo "redis-ctl: already running (pid $pid)"
        return 0
    fi
    rm -f "$REDIS_PIDFILE"
    (
        close_fds
        exec setsid redis-server "$REDIS_CONF" </dev/null >/dev/null 2>&1
    ) &
    pid=$!
    deadline=$((SECONDS + 30))
    until [[ $(cli ping 2>/dev/null || true) == PONG ]]; do
        if ! alive "$pid" || ((SECONDS >= deadline)); then
            echo "redis-ctl: redis-server did not start; last lines of $REDIS_LOG:" >&2
            tail -n 20 "$REDIS_LOG" >&2 || true
            kill -KILL "$pid" 2>/dev/null || true
            return 1
        fi
        sleep 0.05
    done
    echo "redis-ctl: started (pid $pid, port $REDIS_PORT)"
}
do_stop() {
    local pid
    pid=$(pid_of) || true
    if [[ -z $pid ]]; then
        echo "redis-ctl: not running"
        return 0
    fi
    # SHUTDOWN writes the AOF; the connection then drops, so ignore its status.
    cli shutdown >/dev/null 2>&1 || true
    if alive "$pid"; then kill -TERM "$pid" 2>/dev/null || true; fi
    wait_gone "$pid"
    echo "redis-ctl: stopped (pid $pid)"
}
do_kill() {
    local pid
    pid=$(pid_of) || true
    [[ -n $pid ]] || { echo "redis-ctl: not running"; return 0; }
    kill -KILL "$pid"
    while alive "$pid"; do sleep 0.02; done
    echo "redis-ctl: killed (pid $pid)"
}
case ${1:-} in
start) do_start ;;
stop) do_stop ;;
restart) do_stop && do_start ;;
kill) do_kill ;;
status)
    if pid=$(pid_of) && [[ -n $pid ]]; then echo "redis-ctl: running (pid $pid, port $REDIS_PORT)"; else
        echo "redis-ctl: not running"
        exit 3
    fi
    ;;
*)
    echo "usage: $0 start|stop|restart|kill|status" >&2
    exit 2
    ;;
esac
EOF
    } >"$STATE/redis-ctl"
    chmod 755 "$STATE/redis-ctl"
}

export_env() {
    export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
    export DATABASE_URL="postgresql://sluice@127.0.0.1:$PG_PORT/sluice"
    export SLUICE_REDIS_URL=$REDIS_URL
    export SLUICE_DATABASE_URL=$DATABASE_URL
    export SLUICE_REDIS_PORT=$REDIS_PORT
    export SLUICE_PG_PORT=$PG_PORT
    export SLUICE_REDIS_CONF=$REDIS_CONF
    export SLUICE_REDIS_LOG=$REDIS_LOG
    export SLUICE_PG_LOG=$PG_LOG
    export SLUICE_PG_BIN=$PG_BIN
    export SLUICE_PG_DATA=$PG_DATA
    export SLUICE_PG_USER=$PG_USER
    export SLUICE_STATE_DIR=$STATE
    export SLUICE_PG_CTL=$STATE/pg-ctl
    export SLUICE_REDIS_CTL=$STATE/redis-ctl
    local v
    for v in REDIS_URL DATABASE_URL SLUICE_REDIS_URL SLUICE_DATABASE_URL SLUICE_REDIS_PORT \
        SLUICE_PG_PORT SLUICE_REDIS_CONF SLUICE_REDIS_LOG SLUICE_PG_LOG SLUICE_PG_BIN \
        SLUICE_PG_DATA SLUICE_PG_USER SLUICE_STATE_DIR SLUICE_PG_CTL SLUICE_REDIS_CTL; do
        printf 'export %s=%q\n' "$v" "${!v}"
    done >"$STATE/env.sh"
}

# ---------------------------------------------------------------- main

KEEP=0
PRINT_ENV=0
while (($#)); do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --keep)
        KEEP=1
        shift
        ;;
    --print-env)
        PRINT_ENV=1
        shift
        ;;
    --stop)
        [[ -n ${2:-} ]] || {
            echo "servers.sh: --stop needs the state directory" >&2
            exit 2
        }
        stop_run_dir "$2"
        log "stopped and removed $2"
        exit 0
        ;;
    --watchdog)
        watchdog_main "$2" "$3"
        exit 0
        ;;
    --)
        shift
        break
        ;;
    -*)
        echo "servers.sh: unknown option $1 (see --help)" >&2
        exit 2
        ;;
    *) break ;;
    esac
done
if ((PRINT_ENV)); then
    (($# == 0)) || {
        echo "servers.sh: --print-env takes no command" >&2
        exit 2
    }
elif (($# == 0)); then
    usage >&2
    exit 2
fi

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    log "error: redis-server/redis-cli not found: run scripts/deps.sh"
    exit 125
fi

CMD_PID=""
CMD_START=""
SIGNALED=""
ESCALATE_AT=""
GRACE=${SLUICE_STOP_GRACE:-10}
WATCHDOG_PID=""
REDIS_LAUNCH_PID=""
STATE=""
T_STARTED=""

signum() { case $1 in INT) echo 2 ;; TERM) echo 15 ;; HUP) echo 1 ;; esac }
# shellcheck disable=SC2317 # invoked by the traps
on_signal() {
    SIGNALED=$1
    if [[ -z $CMD_PID ]]; then
        log "interrupted by SIG$1 during startup"
        exit $((128 + $(signum "$1")))
    fi
    kill -s "$1" "$CMD_PID" 2>/dev/null || true
    # INT from a terminal reached the command too and is its to handle (an
    # interactive shell ignores it); any other signal gives the command GRACE
    # seconds to exit before it is killed.
    if [[ -z $ESCALATE_AT ]] && { [[ $1 != INT ]] || [[ ! -t 0 ]]; }; then
        ESCALATE_AT=$((SECONDS + GRACE))
    fi
}
trap teardown EXIT
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap 'on_signal HUP' HUP

T0_NS=$(date +%s%N)
mkdir -p "$RUN_DIR"
sweep_stale_runs
STATE=$(mktemp -d "$RUN_DIR/run.XXXXXX")
chmod 755 "$STATE" # the postgres user must be able to reach $STATE/pg
# shellcheck disable=SC2034 # OWNER_PID and MODE are saved by save_state
OWNER_PID=$$ MODE=run
# shellcheck disable=SC2034
((PRINT_ENV == 0)) || MODE=detached
save_state
((PRINT_ENV)) || start_watchdog

start_redis
start_pg
save_state
write_pg_ctl
write_redis_ctl
export_env
T_STARTED=1
ms=$((($(date +%s%N) - T0_NS) / 1000000))
fsync_note="fsync on"
[[ ${SLUICE_PG_FAST:-0} != 1 ]] || fsync_note="fsync OFF (SLUICE_PG_FAST=1, tests only)"
log "redis 127.0.0.1:$REDIS_PORT, postgres 127.0.0.1:$PG_PORT ($fsync_note), state $STATE; up in ${ms} ms"

if ((PRINT_ENV)); then
    trap - EXIT INT TERM HUP
    cat "$STATE/env.sh"
    echo "# stop with: $SELF --stop $STATE"
    exit 0
fi

# Run the command in the background so that signals reach this script at
# once.  It keeps our stdin (a background job would get /dev/null) and the
# default SIGINT/SIGQUIT handling (a background job would ignore them, and
# Ctrl-C would not interrupt it).
{ exec 3<&0; } 2>/dev/null || exec 3</dev/null # (stdin may be closed)
(
    trap - INT QUIT
    exec "$@" <&3 3<&-
) &
CMD_PID=$!
exec 3<&-
CMD_START=$(start_time_of "$CMD_PID")
save_state

rc=0
wait "$CMD_PID" || rc=$?
if [[ -n $SIGNALED ]]; then
    # The wait was interrupted by a signal (which on_signal forwarded).  Poll
    # from here on: after a trapped signal bash's `wait` can block for a
    # child that has already been reaped.  The command is killed with its
    # children once ESCALATE_AT has passed.
    killed=0
    while alive "$CMD_PID"; do
        if [[ -n $ESCALATE_AT ]] && ((SECONDS >= ESCALATE_AT && !killed)); then
            log "command did not exit ${GRACE}s after SIG$SIGNALED; killing it and its children"
            kill_tree "$CMD_PID" KILL
            killed=1
        fi
        sleep 0.2
    done
    rc=$((128 + $(signum "$SIGNALED")))
fi
exit "$rc"
