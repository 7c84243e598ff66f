#!/usr/bin/env bash
# scripts/fuzz.sh: builds the libFuzzer harnesses of fuzz/ in build-fuzz
# (clang, -DSLUICE_FUZZ=ON) and runs each target for a while, then replays
# the saved reproducers of fuzz/found/<target>/.  Fails if any target
# crashes, leaks, runs out of memory or times out.  docs/fuzzing.md.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/fuzz.sh [--time SECONDS] [--rss MB] [--timeout SECONDS] [--no-build] [TARGET...]

Builds build-fuzz (clang, -DSLUICE_FUZZ=ON) and fuzzes each TARGET (default:
all of them) for SECONDS (default 20) with libFuzzer, starting from the seed
corpus fuzz/corpus/TARGET plus what earlier runs found (build-fuzz/corpus/
TARGET, kept between runs).  Then every file of fuzz/found/TARGET/ (inputs
that once crashed or hung, kept as regression cases) is replayed once.

  --time S      fuzzing time per target (libFuzzer -max_total_time), default 20
  --rss MB      memory limit per run (-rss_limit_mb), default 2048
  --timeout S   limit per input (-timeout), default 10
  --no-build    use the binaries already in build-fuzz
  --list        print the targets and exit
  -h, --help    show this help

Targets: envelope json pipeline config expr cron duration codegen redis_url.
A failing input is saved as build-fuzz/artifacts/TARGET/crash-* (or leak-,
timeout-, oom-); rerun it with build-fuzz/fuzz/fuzz_TARGET FILE.
Exits 0 only if every target ran clean.
USAGE
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
ALL=(envelope json pipeline config expr cron duration codegen redis_url)
TIME=20 RSS=2048 TIMEOUT=10 BUILD=1
TARGETS=()
while (($#)); do
    case $1 in
    -h | --help) usage; exit 0 ;;
    --list) printf '%s\n' "${ALL[@]}"; exit 0 ;;
    --time) TIME=${2:?--time needs seconds}; shift ;;
    --rss) RSS=${2:?--rss needs MB}; shift ;;
    --timeout) TIMEOUT=${2:?--timeout needs seconds}; shift ;;
    --no-build) BUILD=0 ;;
    -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *)
        [[ " ${ALL[*]} " == *" $1 "* ]] || { echo "fuzz.sh: unknown target $1 (--list)" >&2; exit 2; }
        TARGETS+=("$1")
        ;;
    esac
    shift
done
((${#TARGETS[@]})) || TARGETS=("${ALL[@]}")

if ((BUILD)); then
    cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DSLUICE_FUZZ=ON \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build build-fuzz -j"$(nproc)"
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
declare -A RESULT=()
failed=0
for t in "${TARGETS[@]}"; do
    bin=build-fuzz/fuzz/fuzz_$t
    work=build-fuzz/corpus/$t
    art=build-fuzz/artifacts/$t
    log=build-fuzz/fuzz-$t.log
    mkdir -p "$work" "$art"
    printf '\n==== fuzz %s (%s s)\n' "$t" "$TIME"
    rc=0
    "$bin" -max_total_time="$TIME" -rss_limit_mb="$RSS" -timeout="$TIMEOUT" \
        -artifact_prefix="$art/" -print_final_stats=1 "$work" "fuzz/corpus/$t" >"$log" 2>&1 || rc=$?
    tail -n 14 "$log" | grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|INFO: .*crash|artifact_prefix|Test unit written)' || true
    status="ok ($(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}') runs)"
    if ((rc != 0)); then
        status="FAILED (exit $rc; see $log and $art/)"
        failed=1
    fi
    found=(fuzz/found/"$t"/*)
    if [[ -e ${found[0]} ]]; then
        if "$bin" -rss_limit_mb="$RSS" -timeout="$TIMEOUT" "${found[@]}" >"$log.replay" 2>&1; then
            status+="; ${#found[@]} saved reproducer(s) pass"
        else
            status+="; saved reproducer(s) of fuzz/found/$t FAIL (see $log.replay)"
            failed=1
        fi
    fi
    RESULT[$t]=$status
done

printf '\n==== fuzz summary\n'
for t in "${TARGETS[@]}"; do
    printf '%-10s %s\n' "$t:" "${RESULT[$t]}"
done
exit "$failed"
