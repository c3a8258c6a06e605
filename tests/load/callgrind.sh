#!/usr/bin/env bash
# tests/load/callgrind.sh — instructions per leaderboard request, counted by
# valgrind --tool=callgrind (issue 5, item 4).
#
# Why instructions: on a shared 2-core machine req/s and latencies move with
# whatever else runs, while the instruction count of a request hardly moves,
# so it is the figure that shows whether a change to the hot path removed
# work (an allocation, a copy, a syscall) and by how much.
#
# What it does, against this checkout's local stores (deploy/local/stores.sh):
#   1. starts the Release binary (build-bench/eventtrack, built if missing)
#      under callgrind with ONE HTTP worker thread (--threads 1), the
#      outbox worker slowed to one pass a minute, and the rate limit off;
#   2. sends WARMUP requests (connections, first-use paths), then zeroes the
#      counters and sends exactly N leaderboard GETs (top_n=10) over one
#      keep-alive connection (curl), and dumps the counters: the "requests"
#      part;
#   3. zeroes again, waits as long as step 2 took with no request, and dumps:
#      the "idle" part (timers, the worker), the baseline that is subtracted;
#   4. prints "leaderboard: X instructions/request", X = (Ir requests - Ir
#      idle) / N, and the top 15 functions by inclusive cost of the requests
#      part (callgrind_annotate; a function inlined into another file shows
#      twice there, once without its [object]: only the [object] lines are
#      kept). The parts stay in the output directory for callgrind_annotate
#      --tree=caller and friends: callgrind.out.<pid>.1 (requests), .2 (idle).
#
# The leaderboard is read from Redis only, so the database needs no data: a
# scratch database (created and migrated if missing) lets the service start,
# and the board is prepared in a scratch Redis db if it does not exist yet
# (100 speakers). scripts/bench runs this script after its own measurements,
# with its scratch stores and its prepared board.
#
# Usage: tests/load/callgrind.sh [N]   (N default 2000)
# Settings (environment): ET_BENCH_BIN (build-bench/eventtrack),
# ET_BENCH_DB (eventtrack_bench), ET_BENCH_REDIS_DB (8), ET_PG_PORT (25432),
# ET_REDIS_PORT (26379), ET_CALLGRIND_EVENT (the conference id; default
# callgrind-board), ET_CALLGRIND_OUT (directory for the callgrind files and
# the report; default a new bench-results/callgrind-<UTC time>).
# The last line of the report is "leaderboard: X instructions/request".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
PROG=callgrind.sh

N=${1:-2000}
WARMUP=200
PG_PORT=${ET_PG_PORT:-25432}
REDIS_PORT=${ET_REDIS_PORT:-26379}
PG_BIN=${ET_PG_BIN:-/usr/lib/postgresql/15/bin}
BIN=${ET_BENCH_BIN:-$ROOT/build-bench/eventtrack}
DB=${ET_BENCH_DB:-eventtrack_bench}
REDIS_DB=${ET_BENCH_REDIS_DB:-8}
EVENT=${ET_CALLGRIND_EVENT:-callgrind-board}
OUT=${ET_CALLGRIND_OUT:-$ROOT/bench-results/callgrind-$(date -u +%Y%m%dT%H%M%SZ)}

die() { echo "$PROG: error: $*" >&2; exit 1; }
note() { echo "$PROG: $*" >&2; }

[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$N'"
[[ $DB =~ ^[a-z_][a-z0-9_]*$ && $DB != eventtrack && $DB != eventtrack_test ]] ||
    die "ET_BENCH_DB must name a scratch database, got '$DB'"
[[ $REDIS_DB =~ ^[0-9]+$ ]] && ((REDIS_DB >= 2)) ||
    die "ET_BENCH_REDIS_DB must be a scratch Redis db (2 or more; 0 and 1 are the service's and the tests'), got '$REDIS_DB'"
for tool in valgrind callgrind_control callgrind_annotate curl redis-cli; do
    command -v "$tool" >/dev/null || die "$tool not found: run deploy/local/packages.sh --bench"
done

rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" -n "$REDIS_DB" "$@"; }
psql_admin() { "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U eventtrack -d postgres "$@"; }
DB_URL="postgresql://eventtrack@127.0.0.1:$PG_PORT/$DB"
REDIS_URL="redis://127.0.0.1:$REDIS_PORT/$REDIS_DB"

[[ $(rcli PING 2>/dev/null) == PONG ]] || die "Redis does not answer on port $REDIS_PORT (deploy/local/stores.sh start)"
if [[ ! -x $BIN ]]; then
    note "building $BIN (Release)"
    cmake -S . -B "$(dirname "$BIN")" -DCMAKE_BUILD_TYPE=Release -DET_BUILD_TESTS=OFF \
        -DCMAKE_C_FLAGS=-g >/dev/null
    cmake --build "$(dirname "$BIN")" -j2 >/dev/null
fi
if [[ $(psql_admin -Atc "SELECT 1 FROM pg_database WHERE datname = '$DB'") != 1 ]]; then
    note "creating scratch database $DB"
    psql_admin -c "CREATE DATABASE $DB" >/dev/null
fi
"$BIN" migrate --database-url "$DB_URL" >/dev/null 2>&1 || die "migrate failed on $DB_URL"

BOARD="eventtrack:lb:{$EVENT}"
if [[ $(rcli EXISTS "$BOARD") != 1 ]]; then
    note "preparing a 100-speaker board $BOARD in Redis db $REDIS_DB"
    args=()
    for ((i = 0; i < 100; i++)); do args+=("$(((i * 37) % 1000))" "$(printf 'spk-%02d' "$i")"); done
    rcli ZADD "$BOARD" "${args[@]}" >/dev/null
fi

mkdir -p "$OUT"
WORK=$(mktemp -d)
SVC_PID=
cleanup() {
    if [[ -n $SVC_PID ]] && kill -0 "$SVC_PID" 2>/dev/null; then
        kill -TERM "$SVC_PID" 2>/dev/null || true
        wait "$SVC_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- 1. the service under callgrind -------------------------------------------
note "starting the service under callgrind (one HTTP worker thread)"
: >"$OUT/service.out"
EVENTTRACK_ADMIN_KEY=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n') \
    valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.out.%p" \
    "$BIN" serve --port 0 --threads 1 --rate-limit-requests 0 --leaderboard-sync-ms 60000 \
    --database-url "$DB_URL" --redis-url "$REDIS_URL" \
    >"$OUT/service.out" 2>"$OUT/service.err" &
SVC_PID=$!
port=
for ((i = 0; i < 600; i++)); do
    port=$(sed -n 's/^eventtrack: listening on http:\/\/[^:]*:\([0-9]*\)$/\1/p' "$OUT/service.out")
    [[ -n $port ]] && break
    kill -0 "$SVC_PID" 2>/dev/null || { tail -n 20 "$OUT/service.err" >&2; die "the service exited"; }
    sleep 0.1
done
[[ -n $port ]] || die "the service did not start within 60 s under valgrind"
URL="http://127.0.0.1:$port/v1/events/$EVENT/leaderboard?top_n=10"

# N GETs of URL over one keep-alive connection; fails unless all N answer 200.
requests() {
    local n=$1 cfg="$WORK/curl-$1.cfg" i
    if [[ ! -f $cfg ]]; then
        for ((i = 0; i < n; i++)); do printf 'url = "%s"\noutput = "/dev/null"\n' "$URL"; done >"$cfg"
    fi
    local ok
    ok=$(curl -s -K "$cfg" -w '%{http_code}\n' | grep -c '^200$' || true)
    ((ok == n)) || die "$((n - ok)) of $n leaderboard requests did not answer 200"
}

# Total instructions (Ir) of one callgrind dump file.
ir_total() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }

dump() {    # dump NAME: writes the counters since the last zero, returns the file
    callgrind_control --dump="$1" "$SVC_PID" >/dev/null 2>&1 || die "callgrind_control --dump failed"
    # The newest dump file of this pid (callgrind numbers them .1, .2 ...).
    ls -t "$OUT"/callgrind.out."$SVC_PID".* 2>/dev/null | head -n 1
}

# --- 2. warm-up, then exactly N requests ----------------------------------------
requests "$WARMUP"
callgrind_control --zero "$SVC_PID" >/dev/null 2>&1 || die "callgrind_control --zero failed"
start=$(date +%s%N)
requests "$N"
took=$(awk -v ns=$(($(date +%s%N) - start)) 'BEGIN { printf "%.3f", ns / 1e9 }')
requests_file=$(dump "requests")

# --- 3. the same time with no request: the idle baseline -------------------------
callgrind_control --zero "$SVC_PID" >/dev/null 2>&1 || die "callgrind_control --zero failed"
sleep "$took"
idle_file=$(dump "idle")

kill -TERM "$SVC_PID"
wait "$SVC_PID" 2>/dev/null || true
SVC_PID=

# --- 4. the figures ---------------------------------------------------------------
ir_requests=$(ir_total "$requests_file")
ir_idle=$(ir_total "$idle_file")
[[ $ir_requests =~ ^[0-9]+$ && $ir_idle =~ ^[0-9]+$ ]] || die "no totals in $requests_file / $idle_file"
per_request=$(((ir_requests - ir_idle) / N))
callgrind_annotate --inclusive=yes "$requests_file" 2>/dev/null |
    awk '/^ *[0-9][0-9,]* \(/ && / \[/' | head -n 15 >"$OUT/top15.txt" || true
{
    echo "callgrind: $N leaderboard GETs (top_n=10) over one keep-alive connection, 1 HTTP worker thread"
    echo "requests part: $ir_requests Ir in ${took}s; idle part (same time, no request): $ir_idle Ir"
    echo "top 15 functions by inclusive cost (requests part, Ir):"
    sed 's/^/  /' "$OUT/top15.txt"
    echo "leaderboard: $per_request instructions/request"
} | tee "$OUT/report.txt"
