#!/usr/bin/env bash
# tests/build/configure-without-test-deps.sh — the service configures and builds
# on a machine without the test suites' dependencies (Criterion, libcurl's -dev
# package), as `cmake -S . -B build && cmake --build build` promises a newcomer
# who only ran scripts/serve; and scripts/test's ET_REQUIRE_TESTS=ON still
# turns their absence into a loud configure error.
#
# Why hidden with CMAKE_DISABLE_FIND_PACKAGE_<Name>: that is CMake's own switch
# for "configure as if this package were not installed", and the top-level
# CMakeLists.txt finds both only through find_package(), so a scratch build
# tree sees exactly what a machine without them would, without uninstalling
# anything. A find_library(... REQUIRED) slipped in beside them would not be
# hidden by this; the fresh-root check in README.md covers that case.
#
# Usage: tests/build/configure-without-test-deps.sh [SCRATCH_DIR]
# (default build-test/no-test-deps; it is removed and made afresh). Exit 0 when
# every expectation holds; each failure is one line naming it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
PROG="configure-without-test-deps"
OUT=${1:-build-test/no-test-deps}
HIDE=(-DCMAKE_DISABLE_FIND_PACKAGE_Criterion=ON -DCMAKE_DISABLE_FIND_PACKAGE_CURL=ON)
fails=0
bad() { echo "$PROG: FAILED: $*" >&2; fails=$((fails + 1)); }

rm -rf "$OUT"
mkdir -p "$OUT"

# 1. Configure as the README says, with the test dependencies hidden.
if ! cmake -S . -B "$OUT/build" -DCMAKE_BUILD_TYPE=Debug "${HIDE[@]}" >"$OUT/configure.log" 2>&1; then
    bad "cmake configure failed without Criterion and libcurl (see $OUT/configure.log)"
else
    grep -q 'Tests skipped: Criterion (libcriterion-dev), libcurl headers (libcurl4-openssl-dev) not found' \
        "$OUT/configure.log" || bad "configure did not print the one 'Tests skipped: ...' line"
    # 2. No test target, and eventtrack builds and runs.
    if cmake --build "$OUT/build" --target help 2>/dev/null | grep -qE 'unit_tests|integration_tests'; then
        bad "test targets were generated although Criterion and libcurl were hidden"
    fi
    if ! cmake --build "$OUT/build" --target eventtrack -j"${ET_BUILD_JOBS:-2}" >"$OUT/build.log" 2>&1; then
        bad "eventtrack did not build without Criterion and libcurl (see $OUT/build.log)"
    elif ! "$OUT/build/eventtrack" --version >/dev/null; then
        bad "the eventtrack built without the test dependencies does not run"
    fi
fi

# 3. scripts/test's mode: the same absence must stop the configure step, with one line to act on.
if cmake -S . -B "$OUT/required" -DET_REQUIRE_TESTS=ON "${HIDE[@]}" >"$OUT/required.log" 2>&1; then
    bad "ET_REQUIRE_TESTS=ON configured although Criterion and libcurl were hidden"
elif ! grep -q 'run deploy/local/packages.sh --test' "$OUT/required.log"; then
    bad "ET_REQUIRE_TESTS=ON failed without saying to run deploy/local/packages.sh --test (see $OUT/required.log)"
fi

((fails == 0)) || exit 1
echo "$PROG: configures and builds eventtrack without Criterion and libcurl; tests skipped with one line"
