#!/usr/bin/env bash
# scripts/test.sh: the project's test command (README, .ci/run).  Installs
# missing packages (scripts/deps.sh), builds two trees -- `build`
# (RelWithDebInfo) and `build-asan` (Debug, AddressSanitizer +
# UndefinedBehaviorSanitizer) -- and runs ctest in each against its own
# private Redis and PostgreSQL (scripts/servers.sh), then fuzzes each
# parser of untrusted input for a short while (scripts/fuzz.sh, tree
# `build-fuzz`), and checks that Release builds with GCC and clang are
# warning-clean under -Werror (`build-release-gcc`, `build-release-clang`:
# built, not tested).  Works from any cwd.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/test.sh [--no-asan | --only-asan | --only-fuzz] [--no-fuzz] [-R REGEX] [--no-deps] [-- CTEST_ARGS...]

Builds and tests sluice: the `build` tree (RelWithDebInfo) and the
`build-asan` tree (Debug, -DSLUICE_SANITIZE=ON), each tested with
`ctest --output-on-failure -j2` inside scripts/servers.sh (one private
Redis + PostgreSQL per tree, PostgreSQL with fsync off: SLUICE_PG_FAST=1).
Then the fuzz step: scripts/fuzz.sh builds `build-fuzz` (clang,
-DSLUICE_FUZZ=ON) and runs every libFuzzer target for SLUICE_FUZZ_TIME
seconds (default 15) and replays fuzz/found/; a crash, leak or timeout
fails the run (docs/fuzzing.md).  With the fuzz step also: Release builds
with GCC and with clang under -Werror (trees `build-release-gcc`,
`build-release-clang`), built but not tested: every build type must stay
warning-clean with both compilers.

  --no-asan     only the `build` tree (no fuzz step)
  --only-asan   only the `build-asan` tree (no fuzz step)
  --only-fuzz   only the fuzz step
  --no-fuzz     no fuzz step (also skipped with -R or --no-asan)
  -R REGEX      run only the tests matching REGEX (passed to ctest)
  --no-deps     do not run scripts/deps.sh first
  -- ARGS       further arguments for ctest
  -h, --help    show this help

Prints a summary line per tree and the total wall time; exits non-zero if a
build or a test failed.  SLUICE_KEEP_ON_FAILURE=1 keeps the servers' logs of
a failing tree (see scripts/servers.sh --help).
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

TREES=(build build-asan)
CTEST_EXTRA=()
DEPS=1
FUZZ=1
while (($#)); do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --no-asan) TREES=(build) FUZZ=0 ;;
    --only-asan) TREES=(build-asan) FUZZ=0 ;;
    --only-fuzz) TREES=() FUZZ=2 ;;
    --no-fuzz) FUZZ=0 ;;
    --no-deps) DEPS=0 ;;
    -R)
        [[ $# -ge 2 ]] || {
            echo "test.sh: -R needs a regex" >&2
            exit 2
        }
        CTEST_EXTRA+=(-R "$2")
        ((FUZZ == 2)) || FUZZ=0
        shift
        ;;
    --)
        shift
        CTEST_EXTRA+=("$@")
        break
        ;;
    *)
        echo "test.sh: unknown argument $1 (see --help)" >&2
        exit 2
        ;;
    esac
    shift
done

T0=$SECONDS
# Ctrl-C / TERM: scripts/servers.sh tears its servers down first; then stop
# here instead of going on with the next tree.
trap 'echo "test.sh: interrupted" >&2; exit 130' INT
trap 'echo "test.sh: terminated" >&2; exit 143' TERM
trap 'exit 129' HUP
banner() { printf '\n==== %s\n' "$*"; }

if ((DEPS)); then
    banner "dependencies (scripts/deps.sh)"
    "$ROOT/scripts/deps.sh"
fi

declare -A SUMMARY=()
total_passed=0
total_failed=0
failed_any=0

# ctest prints "N% tests passed, F tests failed out of T": sets RESULT to
# that line and adds the counts to the totals.
count_results() {
    local line re='^[0-9]+% tests passed, ([0-9]+) tests? failed out of ([0-9]+)'
    RESULT="no ctest summary"
    line=$(grep -E "$re" "$1" | tail -n 1 || true)
    [[ $line =~ $re ]] || return 0
    RESULT=$line
    total_failed=$((total_failed + BASH_REMATCH[1]))
    total_passed=$((total_passed + BASH_REMATCH[2] - BASH_REMATCH[1]))
}

run_tree() {
    local tree=$1 t_start=$SECONDS t_build cfg=() env=() rc=0 log
    case $tree in
    build) cfg=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_WERROR=ON) ;;
    build-asan)
        cfg=(-DCMAKE_BUILD_TYPE=Debug -DSLUICE_SANITIZE=ON -DSLUICE_WERROR=ON)
        env=(ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
            UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)
        ;;
    esac

    banner "$tree: configure and build (${cfg[*]})"
    if ! { cmake -S . -B "$tree" "${cfg[@]}" && cmake --build "$tree" -j"$(nproc)"; }; then
        SUMMARY[$tree]="FAILED to build ($((SECONDS - t_start)) s)"
        failed_any=1
        return 0
    fi
    t_build=$((SECONDS - t_start))

    banner "$tree: ctest (private Redis + PostgreSQL via scripts/servers.sh)"
    log=$tree/ctest-output.log
    env "${env[@]}" SLUICE_PG_FAST=1 "$ROOT/scripts/servers.sh" \
        ctest --test-dir "$tree" --output-on-failure --no-tests=error -j2 "${CTEST_EXTRA[@]}" \
        2>&1 | tee -i "$log" || rc=$?
    count_results "$log"
    if ((rc == 0)); then
        SUMMARY[$tree]="ok: $RESULT (build ${t_build} s, tests $((SECONDS - t_start - t_build)) s)"
    else
        SUMMARY[$tree]="FAILED (exit $rc): $RESULT (build ${t_build} s, tests $((SECONDS - t_start - t_build)) s)"
        failed_any=1
    fi
}

for tree in "${TREES[@]}"; do
    run_tree "$tree"
done

# Release with each compiler: optimisation brings warnings (-Wmaybe-
# uninitialized at -O3) that the Debug and RelWithDebInfo trees never see.
build_only() {
    local tree=$1 cc=$2 t_start=$SECONDS
    banner "$tree: configure and build (CC=$cc -DCMAKE_BUILD_TYPE=Release -DSLUICE_WERROR=ON)"
    if CC=$cc cmake -S . -B "$tree" -DCMAKE_BUILD_TYPE=Release -DSLUICE_WERROR=ON &&
        cmake --build "$tree" -j"$(nproc)"; then
        SUMMARY[$tree]="ok: built warning-clean ($((SECONDS - t_start)) s)"
    else
        SUMMARY[$tree]="FAILED to build ($((SECONDS - t_start)) s)"
        failed_any=1
    fi
    TREES+=("$tree")
}
if ((FUZZ == 1)); then
    build_only build-release-gcc gcc
    build_only build-release-clang clang
fi

if ((FUZZ)); then
    banner "build-fuzz: libFuzzer targets, ${SLUICE_FUZZ_TIME:-15} s each (scripts/fuzz.sh)"
    t_start=$SECONDS
    if "$ROOT/scripts/fuzz.sh" --time "${SLUICE_FUZZ_TIME:-15}"; then
        SUMMARY[build-fuzz]="ok: every target ran clean ($((SECONDS - t_start)) s)"
    else
        SUMMARY[build-fuzz]="FAILED: a target crashed, leaked or timed out, see above ($((SECONDS - t_start)) s)"
        failed_any=1
    fi
    TREES+=(build-fuzz)
fi

banner "summary"
for tree in "${TREES[@]}"; do
    printf '%-11s %s\n' "$tree:" "${SUMMARY[$tree]}"
done
elapsed=$((SECONDS - T0))
printf 'total wall time: %dm%02ds\n' $((elapsed / 60)) $((elapsed % 60))
if ((failed_any)); then
    echo "RESULT: FAILED"
else
    echo "RESULT: OK"
fi
# The plain closing line (tests of all trees added up).
printf 'total: %d passed, %d failed\n' "$total_passed" "$total_failed"
exit "$failed_any"
