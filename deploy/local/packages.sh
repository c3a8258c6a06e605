#!/usr/bin/env bash
# deploy/local/packages.sh — install the Debian 12 packages EventTrack needs to
# build, test and run locally, but only those that are missing.
#
#   packages.sh           build, stores and test tooling (scripts/serve, scripts/test)
#   packages.sh --bench   the same plus BENCH_PACKAGES (scripts/bench only)
#
# Why a script: scripts/serve and scripts/test call it first, so a fresh
# machine needs no setup steps, while a ready one pays one dpkg-query and
# prints nothing (no apt-get update unless something is missing).
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
#     only when the commands are missing, and then Debian's nodejs (18) and
#     npm (9) are installed, which the pinned tools run on (see package.json).
#   - chromium is Debian's build (/usr/bin/chromium), driven by playwright-core;
#     no browser is ever downloaded. It and graphviz draw text with DejaVu
#     (fonts-dejavu-core), named so that screenshots and the rendered diagram
#     do not depend on which other fonts a machine has.
set -euo pipefail

PROG="packages.sh"
die() { echo "$PROG: error: $*" >&2; exit 1; }

PACKAGES=(
    # build
    build-essential cmake pkg-config
    libmicrohttpd-dev libpq-dev libhiredis-dev libcjson-dev
    libcriterion-dev libcurl4-openssl-dev
    # stores (deploy/local/stores.sh): server, psql/createdb, redis-cli
    postgresql-15 postgresql-client-15 redis-server redis-tools
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
# Node.js and npm only when missing (see the notes above).
command -v node >/dev/null || PACKAGES+=(nodejs)
command -v npm >/dev/null || PACKAGES+=(npm)

# Benchmark tooling, installed only by scripts/bench (`packages.sh --bench`),
# so that CI and scripts/test never pull in load generators and plotters.
# pgbench comes with postgresql-15 (above), redis-benchmark with redis-tools.
BENCH_PACKAGES=(
    wrk             # HTTP load generator with Lua scripts (tests/load/*.lua)
    gnuplot-nox     # PNG plots of the results, no X11
    valgrind        # --tool=callgrind: instructions per request (tests/load/callgrind.sh)
    procps          # free(1), for the machine line of the results
)

case ${1:-} in
    "") ;;
    --bench) PACKAGES+=("${BENCH_PACKAGES[@]}") ;;
    *) die "usage: $PROG [--bench]" ;;
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
    command -v sudo >/dev/null || die "missing packages (${missing[*]}) and no sudo: install them as root"
    SUDO=(sudo)
fi

echo "$PROG: installing ${missing[*]}"
# env: sudo resets the environment, so pass the frontend on its command line.
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null ||
    die "apt-get update failed"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}" ||
    die "apt-get install failed for: ${missing[*]}"
