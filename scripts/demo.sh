#!/usr/bin/env bash
# scripts/demo.sh: the project's run command (README).  Installs missing
# packages, builds sluice (`build`, RelWithDebInfo) and runs the narrated demo
# (scripts/demo-steps.sh) against a private Redis and PostgreSQL started by
# scripts/servers.sh, which are removed afterwards.  Works from any cwd.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/demo.sh [--no-deps] [--no-build] [--keep] [PART...]

Builds sluice and runs the demo: a worker pool takes jobs from a Redis Stream
(one succeeds, one sleeps, one fails, one is garbage), records the results in
PostgreSQL, the failures land in the dead letter, and the pool stops
gracefully; then the scheduler runs pipelines/demo.yaml through its 2-of-3
approval gate, decided through the API server with API tokens.  Each step is announced with a banner line; the worker's log is
shown prefixed with "worker|".

  --no-deps    do not run scripts/deps.sh first
  --no-build   use the existing build/ binaries
  --keep       keep the servers' state directory (logs, worker.log) afterwards
  PART...      demo parts to run (default: queue pipeline; see scripts/demo-steps.sh --help)
  -h, --help   show this help

Exits non-zero if a step failed; the state directory (server logs,
worker.log) of a failed demo is kept unless SLUICE_KEEP_ON_FAILURE=0.
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

DEPS=1
BUILD=1
SERVERS_OPTS=()
while (($#)); do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --no-deps) DEPS=0 ;;
    --no-build) BUILD=0 ;;
    --keep) SERVERS_OPTS+=(--keep) ;;
    -*)
        echo "demo.sh: unknown option $1 (see --help)" >&2
        exit 2
        ;;
    *) break ;;
    esac
    shift
done

banner() { printf '\n==== %s\n' "$*"; }

if ((DEPS)); then
    banner "dependencies (scripts/deps.sh)"
    scripts/deps.sh
fi
if ((BUILD)); then
    banner "build (RelWithDebInfo, build/)"
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
    cmake --build build -j"$(nproc)" --target sluice sluice-worker sluice-scheduler
fi

banner "demo (private Redis + PostgreSQL via scripts/servers.sh)"
# A failed demo keeps its servers' logs and worker.log (path printed).
export SLUICE_KEEP_ON_FAILURE=${SLUICE_KEEP_ON_FAILURE:-1}
SLUICE_BIN_DIR="$ROOT/build" exec scripts/servers.sh "${SERVERS_OPTS[@]}" scripts/demo-steps.sh "$@"
