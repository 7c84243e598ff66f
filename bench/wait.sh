#!/usr/bin/env bash
# bench/wait.sh: the cost of wait_replicas to a producer.  Starts a Redis
# master with one replica (scripts/cluster.sh sentinel), then runs
# bench_wait through the master with and without ?wait_replicas=1.
# Usage: bench/wait.sh [BUILD_DIR] [bench_wait options]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true
dir=$(mktemp -d /tmp/sluice-wait.XXXXXX)
rmdir "$dir"
"$root/scripts/cluster.sh" start sentinel "$dir" $$ >/dev/null
trap '"$root/scripts/cluster.sh" stop "$dir"' EXIT
# shellcheck disable=SC1091
. "$dir/env"
until redis-cli -p "$MASTER_PORT" info replication | grep -q 'state=online'; do sleep 0.2; done
"$build/bench_wait" --plain "redis://127.0.0.1:$MASTER_PORT" \
    --wait "redis://127.0.0.1:$MASTER_PORT?wait_replicas=1&wait_timeout=5s" "$@"
