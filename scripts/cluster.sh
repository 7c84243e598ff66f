#!/usr/bin/env bash
# scripts/cluster.sh: starts a throwaway Redis Cluster (3 masters + 3
# replicas) or a Sentinel setup (1 master + 1 replica + 3 sentinels) on
# 127.0.0.1, free random ports, state in a fresh directory; used by
# tests/test_redis_cluster.c.  A watchdog stops the servers when the owner
# process given at start exits, so a crashed test leaves nothing running.
set -euo pipefail

usage() {
    cat <<'EOF_USAGE'
Usage: scripts/cluster.sh start cluster|sentinel DIR [OWNER_PID]
       scripts/cluster.sh stop DIR
       scripts/cluster.sh kill DIR PORT

start  creates DIR (which must not exist), starts the servers, waits until
       they are ready and writes DIR/env: shell assignments of
         CLUSTER_URL    redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3
         CLUSTER_PORTS  the six node ports, masters first
       or
         SENTINEL_URL   redis+sentinel://127.0.0.1:S1,…/sluice
         MASTER_PORT, REPLICA_PORT, SENTINEL_PORTS
       The servers are stopped when OWNER_PID (default: the caller) exits.
stop   stops every server of DIR and removes it.
kill   SIGKILLs the server of DIR listening on PORT (fault injection).
EOF_USAGE
}

log() { printf 'cluster.sh: %s\n' "$*" >&2; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Sets PORT to a free port in 20000-31999 (below Linux's ephemeral range,
# where outgoing connections would take ports from under us) that this run
# has not taken yet.  Cluster bus ports are chosen the same way and set
# with cluster-port, rather than left at port + 10000.
TAKEN=" "
PORT=
free_port() {
    local p i
    for ((i = 0; i < 500; i++)); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
        [[ $TAKEN != *" $p "* ]] || continue
        if ! port_in_use "$p"; then
            TAKEN+="$p "
            PORT=$p
            return 0
        fi
    done
    log "no free port"
    return 1
}

# Closes every file descriptor above 2, so that neither the servers nor
# the watchdog hold a caller's pipes open after this script exits.
close_fds() {
    local fd n
    for fd in /proc/"$BASHPID"/fd/*; do
        n=${fd##*/}
        if [[ $n =~ ^[0-9]+$ ]] && ((n > 2)); then
            eval "exec $n>&-" 2>/dev/null || true
        fi
    done
}

cli() { redis-cli -h 127.0.0.1 -p "$1" "${@:2}"; }

# Waits up to $2 s for `$1` (a command) to succeed.
wait_for() {
    local deadline=$((SECONDS + $2))
    until eval "$1" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

start_node() { # DIR PORT [extra config lines...]
    local d=$1/node-$2
    mkdir -p "$d"
    {
        printf 'port %s\nbind 127.0.0.1\ndir %s\ndaemonize yes\n' "$2" "$d"
        printf 'pidfile %s/redis.pid\nlogfile %s/redis.log\n' "$d" "$d"
        printf 'save ""\nappendonly no\nmaxmemory-policy noeviction\n'
        local l
        for l in "${@:3}"; do printf '%s\n' "$l"; done
    } >"$d/redis.conf"
    redis-server "$d/redis.conf" >/dev/null
    wait_for "cli $2 PING" 20 || {
        log "redis-server on port $2 did not start; its log:"
        tail -5 "$d/redis.log" >&2 || true
        return 1
    }
}

start_sentinel() { # DIR PORT MASTER_PORT
    local d=$1/sentinel-$2
    mkdir -p "$d"
    cat >"$d/sentinel.conf" <<EOF_CONF
port $2
bind 127.0.0.1
dir $d
daemonize yes
pidfile $d/redis.pid
logfile $d/redis.log
sentinel monitor sluice 127.0.0.1 $3 2
sentinel down-after-milliseconds sluice 1000
sentinel failover-timeout sluice 10000
sentinel parallel-syncs sluice 1
EOF_CONF
    redis-server "$d/sentinel.conf" --sentinel >/dev/null
    wait_for "cli $2 PING" 20 || {
        log "sentinel on port $2 did not start; its log:"
        tail -5 "$d/redis.log" >&2 || true
        return 1
    }
}

pids_of() { # DIR: every pid file's pid
    local f
    for f in "$1"/*/redis.pid; do
        [[ -s $f ]] && cat "$f"
    done
    return 0
}

stop_dir() {
    local dir=$1 pid
    [[ -d $dir ]] || return 0
    for pid in $(pids_of "$dir"); do
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf -- "$dir"
}

start_cluster() {
    local dir=$1 ports=() i
    for i in 1 2 3 4 5 6; do
        free_port
        ports+=("$PORT")
    done
    for i in "${ports[@]}"; do
        free_port
        start_node "$dir" "$i" "cluster-enabled yes" "cluster-config-file nodes.conf" \
            "cluster-port $PORT" \
            "cluster-node-timeout 1500" "cluster-replica-validity-factor 0" || return 1
    done
    local addrs=()
    for i in "${ports[@]}"; do addrs+=("127.0.0.1:$i"); done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
        >"$dir/create.log" 2>&1 || {
        log "redis-cli --cluster create failed:"
        tail -5 "$dir/create.log" >&2 || true
        return 1
    }
    for i in "${ports[@]}"; do
        wait_for "cli $i CLUSTER INFO | grep -q 'cluster_state:ok'" 30 || {
            log "node $i: cluster_state is not ok"
            return 1
        }
    done
    # Every node must know every other before tests rely on redirections.
    wait_for "redis-cli --cluster check 127.0.0.1:${ports[0]} | grep -q 'All 16384 slots covered'" 30 ||
        return 1
    # Masters first (the order redis-cli gave the ports is masters first).
    local masters=() replicas=()
    for i in "${ports[@]}"; do
        if cli "$i" ROLE | head -1 | grep -q master; then masters+=("$i"); else replicas+=("$i"); fi
    done
    {
        printf "CLUSTER_URL='redis+cluster://127.0.0.1:%s,127.0.0.1:%s,127.0.0.1:%s'\n" \
            "${masters[0]}" "${masters[1]}" "${masters[2]}"
        printf "CLUSTER_PORTS='%s'\n" "${masters[*]} ${replicas[*]}"
    } >"$dir/env"
}

start_sentinels() {
    local dir=$1 master replica s=() i
    free_port
    master=$PORT
    free_port
    replica=$PORT
    start_node "$dir" "$master" || return 1
    start_node "$dir" "$replica" "replicaof 127.0.0.1 $master" || return 1
    wait_for "cli $replica INFO replication | grep -q 'master_link_status:up'" 30 || {
        log "the replica did not sync"
        return 1
    }
    for i in 1 2 3; do
        free_port
        s+=("$PORT")
    done
    for i in "${s[@]}"; do start_sentinel "$dir" "$i" "$master" || return 1; done
    for i in "${s[@]}"; do
        wait_for "cli $i SENTINEL replicas sluice | grep -q $replica" 30 || {
            log "sentinel $i does not see the replica"
            return 1
        }
        wait_for "[ \$(cli $i SENTINEL sentinels sluice | grep -c '^name\$') -ge 2 ]" 30 || {
            log "sentinel $i does not see the other sentinels"
            return 1
        }
    done
    {
        printf "SENTINEL_URL='redis+sentinel://127.0.0.1:%s,127.0.0.1:%s,127.0.0.1:%s/sluice'\n" \
            "${s[0]}" "${s[1]}" "${s[2]}"
        printf "MASTER_PORT=%s\nREPLICA_PORT=%s\nSENTINEL_PORTS='%s'\n" "$master" "$replica" "${s[*]}"
    } >"$dir/env"
}

watchdog() { # DIR OWNER
    while kill -0 "$2" 2>/dev/null && [[ -d $1 ]]; do sleep 1; done
    stop_dir "$1"
}

close_fds
case "${1:-}" in
start)
    [[ $# -ge 3 ]] || { usage >&2; exit 2; }
    kind=$2 dir=$3 owner=${4:-$PPID}
    [[ ! -e $dir ]] || { log "$dir exists"; exit 2; }
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    # The watchdog first, so that a failed start is cleaned up too; in a
    # session of its own, so that killing the caller's process group does
    # not take it along before it has cleaned up.
    setsid "${BASH_SOURCE[0]}" watchdog "$dir" "$owner" </dev/null >/dev/null 2>&1 &
    disown
    case $kind in
    cluster) start_cluster "$dir" || { stop_dir "$dir"; exit 1; } ;;
    sentinel) start_sentinels "$dir" || { stop_dir "$dir"; exit 1; } ;;
    *) usage >&2; stop_dir "$dir"; exit 2 ;;
    esac
    cat "$dir/env"
    ;;
stop)
    [[ $# -eq 2 ]] || { usage >&2; exit 2; }
    stop_dir "$2"
    ;;
kill)
    [[ $# -eq 3 ]] || { usage >&2; exit 2; }
    f=$2/node-$3/redis.pid
    [[ -s $f ]] || { log "no server on port $3 in $2"; exit 1; }
    kill -KILL "$(cat "$f")"
    ;;
watchdog) # internal: DIR OWNER
    trap '' HUP INT
    watchdog "$2" "$3"
    ;;
-h | --help) usage ;;
*) usage >&2; exit 2 ;;
esac
