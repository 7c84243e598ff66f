#!/usr/bin/env bash
# bench/compare.sh: sluice against BullMQ on the same private Redis, side by
# side in one run, and the ratio of their median throughputs.
#
# Starts its own Redis (AOF everysec) and PostgreSQL (fsync on) through
# scripts/servers.sh, installs BullMQ 5 into bench/peers/node_modules on
# first use (npm), then alternates rounds -- one sluice round
# (bench_throughput: N noop jobs pre-enqueued, P worker processes, every
# result committed in PostgreSQL, shipped defaults) and one BullMQ round (N
# jobs pre-enqueued, one Node process, concurrency 100) -- so machine noise
# falls on both alike.  Prints each side's median and sluice/BullMQ.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=100000 ROUNDS=3 PROCESSES=2 CONCURRENCY=100 BUILD=$ROOT/build
usage() {
    echo "Usage: bench/compare.sh [--jobs N] [--rounds R] [--processes P] [--concurrency C] [--build DIR] [-- bench_throughput args]"
    echo "Defaults: N $JOBS, R $ROUNDS, P $PROCESSES (sluice worker processes), C $CONCURRENCY (BullMQ), DIR build/."
}
EXTRA=()
while (($#)); do
    case $1 in
    --jobs) JOBS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --processes) PROCESSES=$2; shift ;;
    --concurrency) CONCURRENCY=$2; shift ;;
    --build) BUILD=$2; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) usage >&2; exit 2 ;;
    esac
    shift
done

if [[ -z ${REDIS_URL:-} ]]; then   # not yet under servers.sh: start them
    exec "$ROOT/scripts/servers.sh" "$0" --jobs "$JOBS" --rounds "$ROUNDS" --processes "$PROCESSES" \
        --concurrency "$CONCURRENCY" --build "$BUILD" -- "${EXTRA[@]}"
fi
[[ -x $BUILD/bench_throughput ]] || { echo "compare.sh: build $BUILD/bench_throughput first" >&2; exit 1; }
"$BUILD/sluice" migrate >/dev/null
PEERS=$ROOT/bench/peers
if [[ ! -d $PEERS/node_modules/bullmq ]]; then
    (cd "$PEERS" && npm install --no-audit --no-fund --silent)
fi

sluice=() bull=()
for ((r = 1; r <= ROUNDS; r++)); do
    s=$("$BUILD/bench_throughput" --jobs "$JOBS" --rounds 1 --processes "$PROCESSES" \
        --worker "$BUILD/sluice-worker" "${EXTRA[@]}" | sed -n 's/.*median \([0-9]*\) jobs\/s.*/\1/p')
    b=$(node "$PEERS/bullmq_throughput.mjs" --jobs "$JOBS" --rounds 1 --concurrency "$CONCURRENCY" |
        sed -n 's/^median \([0-9]*\) jobs\/s/\1/p')
    echo "round $r: sluice $s jobs/s, BullMQ $b jobs/s"
    sluice+=("$s") bull+=("$b")
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }
ms=$(median "${sluice[@]}") mb=$(median "${bull[@]}")
awk -v s="$ms" -v b="$mb" -v n="$JOBS" -v p="$PROCESSES" -v c="$CONCURRENCY" 'BEGIN {
    printf "compare: %d noop jobs; sluice (%d processes, results in PostgreSQL) median %d jobs/s; BullMQ (concurrency %d) median %d jobs/s; sluice/BullMQ = %.2f\n", n, p, s, c, b, s / b }'
