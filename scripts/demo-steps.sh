#!/usr/bin/env bash
# scripts/demo-steps.sh: the narrated steps of the sluice demo.  scripts/demo.sh
# runs it inside scripts/servers.sh (which provides REDIS_URL, DATABASE_URL
# and SLUICE_STATE_DIR); each part is a function demo_PART, so later parts
# (scheduler, approval gate) can be added beside `queue`.  It can also be
# sourced to reuse the helpers.
set -euo pipefail

demo_usage() {
    cat <<'EOF'
Usage: scripts/servers.sh scripts/demo-steps.sh [PART...]

Runs the demo's parts in order (default: queue pipeline) against the servers of
scripts/servers.sh, using the binaries in $SLUICE_BIN_DIR (default
<repo>/build).  Normally started by scripts/demo.sh.

Parts:
  queue     start a worker pool, enqueue jobs (ok, slow, failing twice, garbage),
            show their results and the dead letter, stop the pool gracefully
  pipeline  start the scheduler, the API server and a pool, make API tokens
            for carol, alice and bob, run pipelines/demo.yaml through its
            2-of-3 approval gate via the API (a refused self-approval, two
            approvals with an input), show the run and verify the audit trail
EOF
}

DEMO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${SLUICE_BIN_DIR:-$DEMO_ROOT/build}
SLUICE=$BIN/sluice
WORKER=$BIN/sluice-worker
SCHEDULER=$BIN/sluice-scheduler
export SLUICE_CONFIG=${SLUICE_CONFIG:-$DEMO_ROOT/etc/sluice.yaml}
# The demo's slow and failing jobs use the test kinds (sleep, fail), which a
# worker offers only when this is set: production workers never do.
export SLUICE_TEST_KINDS=1
WAIT_S=30       # how long to wait for a job's result
STEP=0
DEMO_FAILED=0
DEMO_DONE=0
WORKER_PID=""
TAIL_PID=""
SCHED_PID=""
API_PID=""
SCHED_TAIL_PID=""

if [[ -t 1 && -z ${NO_COLOR:-} ]]; then
    B=$'\e[1m' DIM=$'\e[2m' RED=$'\e[31m' GREEN=$'\e[32m' OFF=$'\e[0m'
else
    B="" DIM="" RED="" GREEN="" OFF=""
fi

# ---------------------------------------------------------------- helpers

# A banner line for the next step.
step() {
    STEP=$((STEP + 1))
    printf '\n%s==> [%d] %s%s\n' "$B" "$STEP" "$*" "$OFF"
}
say() { printf '    %s\n' "$*"; }
bad() {
    printf '    %sFAILED: %s%s\n' "$RED" "$*" "$OFF"
    DEMO_FAILED=1
}
# The arguments as a shell would need them typed (quoted where needed).
shell_words() {
    local a out=""
    for a in "$@"; do
        if [[ $a =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
            out+=" $a"
        else
            out+=" '${a//\'/\'\\\'\'}'"
        fi
    done
    printf '%s' "${out# }"
}
# Shows a command, then runs it.
run() {
    printf '    %s$ %s%s\n' "$DIM" "$(shell_words "$@")" "$OFF"
    "$@"
}
redis() { redis-cli -u "$REDIS_URL" "$@"; }

demo_require() {
    local v
    for v in REDIS_URL DATABASE_URL SLUICE_STATE_DIR; do
        if [[ -z ${!v:-} ]]; then
            echo "demo-steps.sh: $v is not set: run it through scripts/servers.sh (or scripts/demo.sh)" >&2
            exit 2
        fi
    done
    if [[ ! -x $SLUICE || ! -x $WORKER || ! -x $SCHEDULER ]]; then
        echo "demo-steps.sh: $SLUICE or $WORKER is missing: build first (scripts/demo.sh does)" >&2
        exit 2
    fi
}

# The value of a top-level string field of a one-line JSON object (enough
# for `sluice job --json`; no jq on a fresh machine).
json_field() {
    grep -o '"'"$1"'"[[:space:]]*:[[:space:]]*"[^"]*"' <<<"$2" | head -n 1 |
        sed 's/.*:[[:space:]]*"\([^"]*\)"$/\1/'
}

# Starts the worker pool in the background; its log (stderr) goes to
# $SLUICE_STATE_DIR/worker.log and is echoed here with a prefix.
worker_start() {
    local log=$SLUICE_STATE_DIR/worker.log
    : >"$log"
    printf '    %s$ %s 2>%s &%s\n' "$DIM" "$(shell_words "$WORKER" "$@")" "$log" "$OFF"
    "$WORKER" "$@" 2>"$log" &
    WORKER_PID=$!
    tail -n +1 -s 0.2 --pid="$WORKER_PID" -F "$log" 2>/dev/null | sed -u "s/^/    ${DIM}worker|${OFF} /" &
    TAIL_PID=$!
    say "worker pool pid $WORKER_PID, log $log"
}

# Stops the worker with SIGTERM (graceful) and waits up to 30 s; sets
# WORKER_STATUS to its exit status (KILLs it and returns 1 if it hangs).
worker_stop() {
    local deadline=$((SECONDS + 30))
    WORKER_STATUS=""
    [[ -n $WORKER_PID ]] || return 0
    kill -TERM "$WORKER_PID" 2>/dev/null || true
    while kill -0 "$WORKER_PID" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$WORKER_PID/status" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            bad "the worker did not exit within 30 s of SIGTERM; killing it"
            kill -KILL "$WORKER_PID" 2>/dev/null || true
            break
        fi
        sleep 0.1
    done
    WORKER_STATUS=0
    wait "$WORKER_PID" || WORKER_STATUS=$?
    WORKER_PID=""
    if [[ -n $TAIL_PID ]]; then
        wait "$TAIL_PID" 2>/dev/null || true # tail --pid ends with the worker
        TAIL_PID=""
    fi
}

# Starts sluice-scheduler in the background on the repository's pipelines;
# its log goes to $SLUICE_STATE_DIR/scheduler.log, echoed with a prefix.
scheduler_start() {
    local log=$SLUICE_STATE_DIR/scheduler.log
    : >"$log"
    printf '    %s$ %s 2>%s &%s\n' "$DIM" "$(shell_words "$SCHEDULER" "$@")" "$log" "$OFF"
    "$SCHEDULER" "$@" 2>"$log" &
    SCHED_PID=$!
    tail -n +1 -s 0.2 --pid="$SCHED_PID" -F "$log" 2>/dev/null | sed -u "s/^/    ${DIM}scheduler|${OFF} /" &
    SCHED_TAIL_PID=$!
    say "scheduler pid $SCHED_PID, log $log"
}

# Stops the scheduler with SIGTERM; sets SCHED_STATUS to its exit status.
scheduler_stop() {
    SCHED_STATUS=""
    [[ -n $SCHED_PID ]] || return 0
    kill -TERM "$SCHED_PID" 2>/dev/null || true
    SCHED_STATUS=0
    wait "$SCHED_PID" || SCHED_STATUS=$?
    SCHED_PID=""
    if [[ -n $SCHED_TAIL_PID ]]; then
        wait "$SCHED_TAIL_PID" 2>/dev/null || true
        SCHED_TAIL_PID=""
    fi
}

# Starts `sluice serve` (the API server) on a free port of 127.0.0.1, from
# the repository (scheduler.pipelines is relative), and exports
# SLUICE_API_URL; its log goes to $SLUICE_STATE_DIR/serve.log.
api_start() {
    local log=$SLUICE_STATE_DIR/serve.log port="" i
    : >"$log"
    printf '    %s$ %s 2>%s &%s\n' "$DIM" "$(shell_words "$SLUICE" serve --listen 127.0.0.1:0)" "$log" "$OFF"
    (cd "$DEMO_ROOT" && exec "$SLUICE" serve --listen 127.0.0.1:0 2>"$log") &
    API_PID=$!
    for ((i = 0; i < 100; i++)); do
        port=$(sed -n 's/.*event=serve.listening.* port=\([0-9]*\).*/\1/p' "$log" | head -n 1)
        [[ -n $port ]] && break
        kill -0 "$API_PID" 2>/dev/null || break
        sleep 0.1
    done
    [[ -n $port ]] || {
        bad "sluice serve did not start (log: $log)"
        return 1
    }
    export SLUICE_API_URL=http://127.0.0.1:$port
    say "API server pid $API_PID at $SLUICE_API_URL, log $log"
}

# Stops the API server with SIGTERM; sets API_STATUS to its exit status.
api_stop() {
    API_STATUS=""
    [[ -n $API_PID ]] || return 0
    kill -TERM "$API_PID" 2>/dev/null || true
    API_STATUS=0
    wait "$API_PID" || API_STATUS=$?
    API_PID=""
}

# `sluice token create` for USER with SCOPES; sets TOKEN_<USER> (the token
# is shown once by sluice and not echoed here).
make_token() {
    local user=$1 scopes=$2 tok
    printf '    %s$ %s%s\n' "$DIM" "$(shell_words "$SLUICE" token create --user "$user" --scopes "$scopes")" "$OFF"
    tok=$("$SLUICE" token create --user "$user" --scopes "$scopes" 2>/dev/null) || {
        bad "sluice token create for $user failed"
        return 1
    }
    printf -v "TOKEN_$user" '%s' "$tok"
    say "token for $user: ${tok:0:21}… (only its hash is stored)"
}

# Shows and runs a command with USER's API token in SLUICE_TOKEN.
as_user() {
    local user=$1 var="TOKEN_$1"
    shift
    printf '    %s(%s)$ %s%s\n' "$DIM" "$user" "$(shell_words "$@")" "$OFF"
    SLUICE_TOKEN=${!var} "$@"
}

# Waits (at most WAIT_S) until `sluice status RUN` shows LINE_RE.
wait_status() {
    local run=$1 re=$2 deadline=$((SECONDS + WAIT_S))
    while ((SECONDS < deadline)); do
        "$SLUICE" status "$run" 2>/dev/null | grep -Eq "$re" && return 0
        sleep 0.2
    done
    return 1
}

# Fails the demo if the worker died.
worker_alive() {
    if [[ -n $WORKER_PID ]] && ! kill -0 "$WORKER_PID" 2>/dev/null; then
        bad "the worker exited unexpectedly (log: $SLUICE_STATE_DIR/worker.log)"
        return 1
    fi
}

# Waits until the worker's consumer group exists on QUEUE's stream, so
# entries added from now on are read (a group created at `$` would skip
# earlier ones).
wait_for_group() {
    local key="sluice:{$1}:jobs" deadline=$((SECONDS + 15))
    until redis XINFO GROUPS "$key" 2>/dev/null | grep -qx sluice; do
        worker_alive || return 1
        if ((SECONDS >= deadline)); then
            bad "no consumer group 'sluice' on $key after 15 s"
            return 1
        fi
        sleep 0.1
    done
    say "consumer group 'sluice' is reading $key"
}

# Enqueues a job and prints its id (the narration goes to stderr).
enqueue() {
    local id
    printf '    %s$ %s%s\n' "$DIM" "$(shell_words "$SLUICE" enqueue "$@")" "$OFF" >&2
    id=$("$SLUICE" enqueue "$@")
    printf '    -> job %s\n' "$id" >&2
    printf '%s\n' "$id"
}

# Waits until job ID has a final result: `sluice job ID --json` exits 0
# (succeeded) or 5 (dead or cancelled) once the worker has recorded one, 4
# while it is not finished (see `sluice job --help`).  Prints the final
# status.
wait_job() {
    local id=$1 deadline=$((SECONDS + WAIT_S)) out status="" rc
    while ((SECONDS < deadline)); do
        rc=0
        out=$("$SLUICE" job "$id" --json 2>/dev/null) || rc=$?
        if ((rc == 0 || rc == 5)); then
            status=$(json_field status "$out")
            case $status in
            queued | running | retrying | "") ;;
            *)
                printf '%s\n' "$status"
                return 0
                ;;
            esac
        fi
        if [[ -n $WORKER_PID ]] && ! kill -0 "$WORKER_PID" 2>/dev/null; then
            printf 'no result: the worker exited\n'
            return 1
        fi
        sleep 0.2
    done
    printf 'no result within %s s%s\n' "$WAIT_S" "${status:+ (last status $status)}"
    return 1
}

# Polls until the length of stream KEY is at least N (at most 15 s).
wait_xlen() {
    local key=$1 n=$2 deadline=$((SECONDS + 15)) len=0
    while ((SECONDS < deadline)); do
        len=$(redis XLEN "$key" 2>/dev/null || echo 0)
        ((len >= n)) && return 0
        sleep 0.2
    done
    return 1
}

# EXIT trap: never leave a worker behind; say where a failure happened.
demo_finish() {
    local rc=$? i
    if [[ -n $SCHED_PID ]] && kill -0 "$SCHED_PID" 2>/dev/null; then
        kill -TERM "$SCHED_PID" 2>/dev/null || true
        sleep 0.5
        kill -KILL "$SCHED_PID" 2>/dev/null || true
    fi
    if [[ -n $SCHED_TAIL_PID ]]; then
        kill "$SCHED_TAIL_PID" 2>/dev/null || true
    fi
    if [[ -n $API_PID ]] && kill -0 "$API_PID" 2>/dev/null; then
        kill -TERM "$API_PID" 2>/dev/null || true
    fi
    if [[ -n $WORKER_PID ]] && kill -0 "$WORKER_PID" 2>/dev/null; then
        kill -TERM "$WORKER_PID" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$WORKER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$WORKER_PID" 2>/dev/null || true
    fi
    if [[ -n $TAIL_PID ]]; then
        kill "$TAIL_PID" 2>/dev/null || true
    fi
    if ((rc != 0 && !DEMO_DONE)); then
        printf '\n%sdemo: FAILED in step [%d] (exit %d); logs under %s%s\n' \
            "$RED" "$STEP" "$rc" "${SLUICE_STATE_DIR:-?}" "$OFF"
    fi
}

# ---------------------------------------------------------------- parts

demo_setup() {
    step "Apply the database migrations"
    run "$SLUICE" migrate
}

demo_queue() {
    local ok slow fail status id
    step "Start a worker pool: 2 processes consuming queue 'demo'"
    worker_start --processes 2 --queues demo
    wait_for_group demo || return 1

    step "Enqueue jobs: one that succeeds, one that sleeps 300 ms, one that fails twice (retried once, then dead)"
    ok=$(enqueue noop --queue demo)
    slow=$(enqueue sleep --queue demo --arg ms=300)
    fail=$(enqueue fail --queue demo --max-attempts 2 --arg message="disk full on build host")

    step "Add a garbage entry straight to the stream (not MessagePack): it must go to the dead letter"
    run redis-cli -u "$REDIS_URL" XADD 'sluice:{demo}:jobs' '*' job 'not msgpack'

    step "Wait for the results (sluice job ID --json until the worker has recorded one)"
    for id in "$ok" "$slow" "$fail"; do
        if status=$(wait_job "$id"); then
            say "job $id: $status"
        else
            bad "job $id: $status"
        fi
    done

    step "Show each job"
    for id in "$ok" "$slow" "$fail"; do
        # exit 0: succeeded; 5: dead or cancelled (the failing job); else a problem
        rc=0
        run "$SLUICE" job "$id" || rc=$?
        ((rc == 0 || rc == 5)) || bad "sluice job $id failed (exit $rc)"
        echo
    done

    step "Show the dead letter of queue 'demo': the garbage, and the job that failed all its attempts"
    wait_xlen 'sluice:{demo}:dead' 2 || bad "the dead letter sluice:{demo}:dead does not hold 2 entries after 15 s"
    run "$SLUICE" dead list --queue demo || bad "sluice dead list --queue demo failed"

    step "Stop the worker pool gracefully (SIGTERM) and check its exit status"
    say "kill -TERM $WORKER_PID"
    worker_stop
    if [[ $WORKER_STATUS == 0 ]]; then
        say "${GREEN}sluice-worker exited with status 0${OFF}"
    else
        bad "sluice-worker exited with status $WORKER_STATUS"
    fi
}

demo_pipeline() {
    local run rc
    step "Validate the pipelines: every error is reported as FILE:LINE:COLUMN"
    say "(pipelines whose kinds this build lacks are refused whole; demo.yaml loads)"
    run "$SLUICE" validate --pipelines "$DEMO_ROOT/pipelines" || true

    step "Start a worker pool on queue 'demo', the scheduler and the API server"
    worker_start --processes 2 --queues demo
    wait_for_group demo || return 1
    scheduler_start --pipelines "$DEMO_ROOT/pipelines"
    api_start || return 1

    step "API tokens: carol may trigger runs and approve, alice and bob may approve"
    make_token carol trigger,approve,read || return 1
    make_token alice approve,read || return 1
    make_token bob approve,read || return 1

    step "carol starts a run of pipeline 'demo' through the API and follows it to its approval gate"
    printf '    %s(carol)$ %s%s\n' "$DIM" "$(shell_words "$SLUICE" run demo --wait)" "$OFF"
    rc=0
    SLUICE_TOKEN=$TOKEN_carol "$SLUICE" run demo --wait >"$SLUICE_STATE_DIR/run.out" || rc=$?
    sed 's/^/    /' "$SLUICE_STATE_DIR/run.out"
    run=$(head -n 1 "$SLUICE_STATE_DIR/run.out")
    [[ $rc == 3 ]] || bad "sluice run --wait exited $rc, expected 3 (waiting at a gate)"

    step "The open gate: who may approve, the instructions, and the evidence"
    run "$SLUICE" gates || bad "sluice gates failed"

    step "alice's own list (through the API, with her token) and the address of the gate's web page"
    as_user alice "$SLUICE" gates --mine || bad "sluice gates --mine failed"
    run "$SLUICE" open "$run/go-live" || bad "sluice open failed"

    step "carol is an approver, but she triggered the run: her approval is refused (and audited)"
    if as_user carol "$SLUICE" approve "$run" go-live; then
        bad "self-approval was accepted"
    else
        say "refused as expected"
    fi

    step "alice approves with a canary percentage; bob approves: 2 of 3 releases the gate"
    as_user alice "$SLUICE" approve "$run" go-live --input percent=25 --comment "staging looks good" ||
        bad "alice's approval failed"
    as_user bob "$SLUICE" approve "$run" go-live --comment "ok" || bad "bob's approval failed"

    step "Wait for the run to finish, then show it"
    if wait_status "$run" '^status +succeeded'; then
        say "${GREEN}run $run succeeded${OFF}"
    else
        bad "run $run did not succeed within $WAIT_S s"
    fi
    run "$SLUICE" status "$run" || bad "sluice status failed"

    step "Verify the approval audit trail (a hash chain)"
    run "$SLUICE" audit verify || bad "the audit chain does not verify"
    run "$SLUICE" audit show "$run" || bad "sluice audit show failed"

    step "Stop the API server, the scheduler and the worker pool"
    api_stop
    [[ $API_STATUS == 0 ]] || bad "sluice serve exited with status $API_STATUS"
    scheduler_stop
    [[ $SCHED_STATUS == 0 ]] || bad "sluice-scheduler exited with status $SCHED_STATUS"
    worker_stop
    [[ $WORKER_STATUS == 0 ]] || bad "sluice-worker exited with status $WORKER_STATUS"
    say "scheduler exited $SCHED_STATUS, worker exited $WORKER_STATUS"
}

demo_main() {
    local part
    if [[ ${1:-} == -h || ${1:-} == --help ]]; then
        demo_usage
        return 0
    fi
    (($#)) || set -- queue pipeline
    for part in "$@"; do
        declare -F "demo_$part" >/dev/null || {
            echo "demo-steps.sh: unknown part '$part' (see --help)" >&2
            return 2
        }
    done
    demo_require
    trap demo_finish EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    # A step that fails outright stops the demo (set -e; demo_finish says
    # where); checks that fail mark it failed and let it go on.
    demo_setup
    for part in "$@"; do
        "demo_$part"
    done
    DEMO_DONE=1
    echo
    if ((DEMO_FAILED)); then
        printf '%sdemo: FAILED%s (logs under %s)\n' "$RED" "$OFF" "$SLUICE_STATE_DIR"
        return 1
    fi
    printf '%sdemo: OK%s\n' "$GREEN" "$OFF"
}

# Run unless sourced.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    demo_main "$@"
fi
