#!/usr/bin/env bash
# scripts/check-layers.sh: fails if a lower layer includes a higher one.
#
# Layers, lowest first (CONTRIBUTING.md, docs/architecture.md):
#   include/  the public client API
#   lib/      the core                 may include: include lib
#   jobs/     the job kinds            may include: include lib jobs
#   scheduler/ pipelines, runs, gates  may include: include lib jobs scheduler
#   server/   the HTTP API server      may include: include lib jobs scheduler server
#   worker/   sluice-worker            may include: include lib jobs worker
#   cli/      sluice                   may include anything above
# A quoted #include is resolved to the directory that holds the header;
# system headers (<...>) are not checked.  It also fails on an include
# cycle between modules (a module is a .c/.h pair: x.c and x.h are one
# node; a cycle such as a.c -> b.h, b.c -> a.h means neither is below the
# other), found with tsort.  Run by ctest (test "layers").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

declare -A allowed=(
    [include]="include"
    [lib]="include lib"
    [jobs]="include lib jobs"
    [scheduler]="include lib jobs scheduler"
    [server]="include lib jobs scheduler server"
    [worker]="include lib jobs worker"
    [cli]="include lib jobs scheduler server worker cli"
)
# header name -> directory holding it
declare -A home=()
for dir in "${!allowed[@]}"; do
    [[ -d $dir ]] || continue
    for h in "$dir"/*.h; do
        [[ -e $h ]] && home[${h##*/}]=$dir
    done
done

bad=0
edges=()     # "from to" pairs of modules (dir/name), for the cycle check
for dir in "${!allowed[@]}"; do
    [[ -d $dir ]] || continue
    # one grep per directory (not per file): "FILE:#include ..." lines
    while IFS= read -r line; do
        f=${line%%:*}
        hdr=${line#*\"}
        hdr=${hdr%%\"*}
        base=${hdr##*/}             # parameter expansion, not basename: no process per line
        h=${home[$base]:-}
        [[ -n $h ]] || continue     # generated or external header
        from=${f%.*}
        to=$h/${base%.h}
        [[ $from == "$to" ]] || edges+=("$from $to")
        if [[ " ${allowed[$dir]} " != *" $h "* ]]; then
            echo "layer violation: $f includes $h/$base ($dir/ may include: ${allowed[$dir]})"
            bad=1
        fi
    done < <(grep -HE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$dir"/*.[ch] 2>/dev/null || true)
done
# tsort reports a loop on stderr ("input contains a loop:" and its members).
if ((${#edges[@]})) && ! loops=$(printf '%s\n' "${edges[@]}" | tsort 2>&1 >/dev/null); then
    echo "include cycle between modules:"
    printf '%s\n' "$loops" | sed -n 's/^tsort: //p' | grep -v 'input contains a loop' | sed 's/^/  /'
    bad=1
fi
if ((bad)); then
    exit 1
fi
echo "layers: ok"
