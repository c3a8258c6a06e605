#!/usr/bin/env bash
# deploy/local/packages.sh — install the Debian 12 packages EventTrack needs,
# but only those that are missing.
#
#   packages.sh           build and serve: compiler, libraries, PostgreSQL, Redis
#                         (scripts/serve; about 150 packages on a fresh minbase)
#   packages.sh --test    the same plus TEST_PACKAGES: Criterion, libcurl's -dev,
#                         clang, Node.js, Chromium, Graphviz... (scripts/test)
#   packages.sh --bench   the serve set plus BENCH_PACKAGES (scripts/bench)
#   packages.sh --ha      the serve set plus HA_PACKAGES (deploy/local/ha/)
#   packages.sh --cluster the test set, HA_PACKAGES and CLUSTER_PACKAGES (HAProxy):
#                         tests/cluster/lab.sh, scripts/test --cluster
#
# Why a script: scripts/serve and scripts/test call it first, so a fresh
# machine needs no setup steps, while a ready one pays one dpkg-query and
# prints nothing (no apt-get update unless something is missing).
# Why the split: serving must not cost a browser and a JavaScript runtime
# (about 1.8 GB); the test toolchain comes with the first scripts/test.
# Installing needs root: as another user, sudo is used (and asks its
# password); without sudo the one error line names the packages to install.
#
# Notes on names (checked with apt-cache on Debian 12):
#   - postgresql-15 already contains pgbench and the contrib modules
#     (it Provides postgresql-contrib-15, a virtual package).
#   - libFuzzer and clang's sanitizer runtimes are in libclang-rt-14-dev,
#     which clang-14 only recommends; llvm-14 has llvm-symbolizer.
#   - Installing postgresql-15 makes Debian create and start a default cluster
#     on port 5432. That is harmless: deploy/local/stores.sh runs its own
#     cluster under .local/ on ET_PG_PORT and never uses the default one.
#   - Node.js and npm run the docs and browser checks (package.json). The
#     machines this project runs on come with Node.js 20 from NodeSource's
#     `nodejs` package, npm included, and no `npm` package; installing Debian's
#     `npm` beside it would drag in Debian's older nodejs. So they are added
#     only when the commands are missing, and then Debian's nodejs (18.20) and
#     npm (9.2) are installed; the tools package.json pins install and run on
#     both without an engine warning (the reasons are in its description).
#   - chromium is Debian's build (/usr/bin/chromium), driven by playwright-core;
#     no browser is ever downloaded. It and graphviz draw text with DejaVu
#     (fonts-dejavu-core), named so that screenshots and the rendered diagram
#     do not depend on which other fonts a machine has.
set -euo pipefail

PROG="packages.sh"
die() { echo "$PROG: error: $*" >&2; exit 1; }

# Building and serving (scripts/serve): nothing else.
PACKAGES=(
    # build
    build-essential cmake pkg-config
    libmicrohttpd-dev libpq-dev libhiredis-dev libcjson-dev
    # stores (deploy/local/stores.sh): server, psql/createdb, redis-cli
    postgresql-15 postgresql-client-15 redis-server redis-tools
)

# Testing (scripts/test), on top of PACKAGES.
TEST_PACKAGES=(
    # the Criterion suites (tests/unit, tests/integration; libcurl drives HTTP)
    libcriterion-dev libcurl4-openssl-dev
    # test tooling: `docker-compose config` check, HTTP pokes, JSON in scripts
    docker-compose curl jq
    # scripts/check-sql (a C tokenizer; docker-compose pulls python3 in too)
    python3
    # fuzzing (tests/fuzz): clang, its runtimes (libFuzzer, ASan, UBSan: only
    # recommended by clang, so named here), and llvm-symbolizer for stacks
    clang libclang-rt-14-dev llvm-14
    # docs and browser checks: headless Chromium for tests/e2e, Graphviz for
    # docs/diagrams (scripts/render-diagrams), one font for both
    chromium graphviz fonts-dejavu-core
)
# The failover lab (`packages.sh --ha`, deploy/local/ha/postgres.sh): Debian's
# pg_auto_failover, the pg_autoctl command and the monitor's extension for
# PostgreSQL 15.
HA_PACKAGES=(pg-auto-failover-cli postgresql-15-auto-failover)

# Node.js and npm only when missing (see the notes above).
command -v node >/dev/null || TEST_PACKAGES+=(nodejs)
command -v npm >/dev/null || TEST_PACKAGES+=(npm)

# Benchmark tooling, installed only by scripts/bench (`packages.sh --bench`),
# so that CI and scripts/test never pull in load generators and plotters.
# pgbench comes with postgresql-15 (above), redis-benchmark with redis-tools.
BENCH_PACKAGES=(
    wrk             # HTTP load generator with Lua scripts (tests/load/*.lua)
    gnuplot-nox     # PNG plots of the results, no X11
    valgrind        # --tool=callgrind: instructions per request (tests/load/callgrind.sh)
    procps          # free(1), for the machine line of the results
)

# The cluster lab (tests/cluster/lab.sh, `scripts/test --cluster`), on top of
# TEST_PACKAGES. Sentinel is `redis-server --sentinel` from redis-server: the
# redis-sentinel package would only add a system service on the default port.
# Installing haproxy starts Debian's own instance on its packaged config (no
# listener on our ports); the lab runs private processes with its own config.
CLUSTER_PACKAGES=(
    haproxy                                         # the load balancer in front of the replicas
)

case ${1:-} in
    "") ;;
    --test) PACKAGES+=("${TEST_PACKAGES[@]}" "${HA_PACKAGES[@]}") ;;
    --bench) PACKAGES+=("${BENCH_PACKAGES[@]}") ;;
    --ha) PACKAGES+=("${HA_PACKAGES[@]}") ;;
    --cluster) PACKAGES+=("${TEST_PACKAGES[@]}" "${HA_PACKAGES[@]}" "${CLUSTER_PACKAGES[@]}") ;;
    *) die "usage: $PROG [--test | --bench | --ha | --cluster]" ;;
esac

command -v dpkg-query >/dev/null || die "dpkg-query not found: this script supports Debian 12 only"

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [[ $status == installed ]] || missing+=("$pkg")
done
((${#missing[@]} == 0)) && exit 0

SUDO=()
if ((EUID != 0)); then
    command -v sudo >/dev/null ||
        die "installing packages needs root and there is no sudo: have root run 'apt-get install ${missing[*]}', then run this again"
    # Ask sudo first (it may prompt for the password), so that a refusal is
    # not reported later as a failed apt-get update.
    sudo -v ||
        die "installing packages needs root, and sudo refused: have root run 'apt-get install ${missing[*]}', then run this again"
    SUDO=(sudo)
fi

echo "$PROG: installing ${missing[*]}"
# env: sudo resets the environment, so pass the frontend on its command line.
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null ||
    die "apt-get update failed (see above): check the network and /etc/apt/sources.list, then run this again"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}" ||
    die "apt-get install failed (see above); fix that, then run this again"
