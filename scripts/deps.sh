#!/usr/bin/env bash
# scripts/deps.sh: installs the Debian packages sluice needs to build, test
# and run its demo -- only those that are missing (`apt-get update` runs once,
# and only then).  Services that the packages would start (the system
# PostgreSQL cluster, redis-server, prometheus) are kept from starting: sluice
# never uses them; scripts/servers.sh runs private servers instead.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: scripts/deps.sh [--check]

Installs the missing Debian packages that sluice needs (uses sudo when not
root).  Idempotent: when everything is installed it only says so.

  --check     only report missing packages (exit 1 if any)
  -h, --help  show this help

Packages: build-essential cmake pkg-config libhiredis-dev libpq-dev
libmsgpack-dev libyaml-dev libcurl4-openssl-dev libcriterion-dev
libmicrohttpd-dev libssl-dev openssl redis-server redis-tools postgresql
postgresql-contrib tmux systemd (systemd-analyze verifies the installed units)
binutils, clang libclang-rt-14-dev (libFuzzer, for scripts/fuzz.sh),
chromium (the browser tests drive Debian's headless Chromium), nodejs and
npm when no `node`/`npm` is on PATH, and prometheus (for promtool) when
the package archive has it.

Then the browser tests' npm packages (tests/browser/package-lock.json:
puppeteer-core, which drives /usr/bin/chromium and downloads no browser)
are installed with `npm ci` into tests/browser/node_modules when missing
or older than the lock file.
EOF
}

REQUIRED=(
    build-essential cmake pkg-config
    libhiredis-dev libpq-dev libmsgpack-dev libyaml-dev libcurl4-openssl-dev
    libcriterion-dev libmicrohttpd-dev libssl-dev openssl
    redis-server redis-tools postgresql postgresql-contrib
    tmux systemd binutils
    clang libclang-rt-14-dev # the fuzz step: libFuzzer (scripts/fuzz.sh)
    chromium                 # tests/test_browser.c: headless, driven over the DevTools protocol
)
# Node runs the browser scenarios (tests/browser).  A node from elsewhere
# (e.g. a newer one already installed) is fine: the Debian packages are
# needed only when there is none, and Debian's npm would conflict with it.
command -v node >/dev/null || REQUIRED+=(nodejs)
command -v npm >/dev/null || REQUIRED+=(npm)
OPTIONAL=(prometheus) # promtool: `promtool check metrics` in the tests

CHECK=0
case ${1:-} in
-h | --help)
    usage
    exit 0
    ;;
--check) CHECK=1 ;;
"") ;;
*)
    echo "deps.sh: unknown argument $1 (see --help)" >&2
    exit 2
    ;;
esac

log() { printf 'deps: %s\n' "$*"; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BROWSER_DIR=$ROOT/tests/browser

# True when tests/browser/node_modules matches the lock file (npm ci
# writes node_modules/.package-lock.json after a complete install).
npm_current() {
    local stamp=$BROWSER_DIR/node_modules/.package-lock.json
    [[ -f $stamp && ! $BROWSER_DIR/package-lock.json -nt $stamp ]]
}

# The browser tests' npm packages, exactly as locked.  --ignore-scripts:
# no install script runs (puppeteer-core has none; nothing downloads a
# browser).
npm_packages() {
    if npm_current; then
        log "npm packages of tests/browser already installed"
        return 0
    fi
    if ((CHECK)); then
        log "missing: npm packages of tests/browser (npm ci)"
        return 1
    fi
    log "installing the npm packages of tests/browser (npm ci)"
    (cd "$BROWSER_DIR" && npm ci --ignore-scripts --no-audit --no-fund)
}

installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]
}

missing=()
for p in "${REQUIRED[@]}" "${OPTIONAL[@]}"; do
    installed "$p" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
    log "all $((${#REQUIRED[@]} + ${#OPTIONAL[@]})) packages already installed"
    npm_packages
    exit $?
fi
if ((CHECK)); then
    log "missing: ${missing[*]}"
    npm_packages || true
    exit 1
fi

SUDO=()
if ((EUID != 0)); then
    command -v sudo >/dev/null || {
        log "error: not root and sudo is not installed; run as root: apt-get install ${missing[*]}"
        exit 1
    }
    SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
APT=("${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)

# Keep package scripts from starting services while we install: a
# policy-rc.d that exits 101 makes invoke-rc.d (and deb-systemd-invoke) skip
# them.  An existing policy-rc.d (e.g. a container's) is left alone.  The
# postgresql package still creates its default cluster `main` on port 5432,
# but does not start it; it does not matter to sluice either way.
POLICY=/usr/sbin/policy-rc.d
policy_installed=0
remove_policy() {
    if ((policy_installed)); then
        "${SUDO[@]}" rm -f "$POLICY"
    fi
}
trap remove_policy EXIT
if [[ ! -e $POLICY ]]; then
    printf '#!/bin/sh\n# Temporary, by sluice scripts/deps.sh: start no services.\nexit 101\n' |
        "${SUDO[@]}" tee "$POLICY" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY"
    policy_installed=1
fi

log "missing: ${missing[*]}"
log "running apt-get update"
"${APT[@]}" update

to_install=()
for p in "${missing[@]}"; do
    if [[ " ${OPTIONAL[*]} " == *" $p "* ]]; then
        candidate=$(apt-cache policy "$p" 2>/dev/null | sed -n 's/^ *Candidate: *//p')
        if [[ -z $candidate || $candidate == "(none)" ]]; then
            log "skipping $p: the package archive has no installable version (apt-cache policy $p: Candidate: ${candidate:-none}); promtool will not be available"
            continue
        fi
    fi
    to_install+=("$p")
done

log "installing: ${to_install[*]}"
"${APT[@]}" install -y --no-install-recommends "${to_install[@]}"
log "installed: ${to_install[*]}"
npm_packages
