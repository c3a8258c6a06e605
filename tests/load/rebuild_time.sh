#!/usr/bin/env bash
# tests/load/rebuild_time.sh — how long `eventtrack rebuild-leaderboards` takes
# per million logged session views (issue 4, item 2; ADR 0003, section 3).
#
# Against this checkout's local stores (deploy/local/stores.sh start), never the
# test or development data:
#   1. creates a scratch database (eventtrack_bench; dropped again at exit) and
#      migrates it with the built binary;
#   2. inserts one organization, one conference, 50 sessions (one speaker each)
#      and N analytics events (default 1,000,000) directly with SQL
#      (generate_series, no HTTP), with leaderboard_event_id and
#      leaderboard_speaker_id set as the ingest statement sets them, speakers
#      unevenly popular; then VACUUM ANALYZE, as a table in steady state is;
#   3. times `eventtrack rebuild-leaderboards <conference>` into a scratch
#      Redis db (default 9; flushed before every run and at exit), RUNS times,
#      each into an empty db (the case after Redis lost its data);
#   4. checks after every run that the board has the 50 speakers and that each
#      score equals PostgreSQL's count (so the scores add up to N).
#
# The views are historic: received during the 30 days before the run, none in
# the outbox. A rebuild also re-adds to the dedup set, and replays, the views
# received in the minute before it (ADR 0003, section 3); ET_BENCH_RECENT=K
# puts the last K views in that minute to measure that part too.
#
# Settings (environment): ET_BENCH_EVENTS (1000000), ET_BENCH_RECENT (0),
# ET_BENCH_RUNS (3), ET_PG_PORT (25432), ET_REDIS_PORT (26379), ET_REDIS_DB (9),
# ET_BIN (build/eventtrack), ET_BENCH_DB (eventtrack_bench).
# The last line is "rebuild: N events in S s (X s per million)", S the median run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

EVENTS=${ET_BENCH_EVENTS:-1000000}
RECENT=${ET_BENCH_RECENT:-0}
RUNS=${ET_BENCH_RUNS:-3}
PG_PORT=${ET_PG_PORT:-25432}
REDIS_PORT=${ET_REDIS_PORT:-26379}
REDIS_DB=${ET_REDIS_DB:-9}
BIN=${ET_BIN:-build/eventtrack}
DB=${ET_BENCH_DB:-eventtrack_bench}
SPEAKERS=50
CONFERENCE=bench_evt

note() { echo "rebuild_time: $*" >&2; }
die() { note "$*"; exit 1; }

[[ $DB =~ ^[a-z_][a-z0-9_]*$ ]] || die "ET_BENCH_DB must be a plain lower-case name, got '$DB'"
[[ $DB != eventtrack_test && $DB != eventtrack ]] || die "ET_BENCH_DB must be a scratch database, not $DB"
[[ $EVENTS =~ ^[0-9]+$ && $EVENTS -gt 0 ]] || die "ET_BENCH_EVENTS must be a positive integer"
[[ $RECENT =~ ^[0-9]+$ && $RECENT -le $EVENTS ]] || die "ET_BENCH_RECENT must be an integer from 0 to $EVENTS"
[[ $RUNS =~ ^[0-9]+$ && $RUNS -gt 0 ]] || die "ET_BENCH_RUNS must be a positive integer"
[[ -x $BIN ]] || die "$BIN not found: build first (cmake -S . -B build && cmake --build build)"
command -v psql >/dev/null || die "psql not found (postgresql-client)"
command -v redis-cli >/dev/null || die "redis-cli not found (redis-tools)"

ADMIN_URL="postgresql://eventtrack@127.0.0.1:$PG_PORT/postgres"
export EVENTTRACK_DATABASE_URL="postgresql://eventtrack@127.0.0.1:$PG_PORT/$DB"
export EVENTTRACK_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/$REDIS_DB"
rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" -n "$REDIS_DB" "$@"; }
psql_admin() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 "$ADMIN_URL" "$@"; }
psql_bench() { psql -X -q -v ON_ERROR_STOP=1 "$EVENTTRACK_DATABASE_URL" "$@"; }

psql_admin -Atc 'SELECT 1' >/dev/null ||
    die "PostgreSQL is not reachable on port $PG_PORT (deploy/local/stores.sh start)"
[[ $(rcli PING) == PONG ]] || die "Redis is not reachable on port $REDIS_PORT (deploy/local/stores.sh start)"

cleanup() {
    psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || note "could not drop $DB"
    rcli FLUSHDB >/dev/null 2>&1 || note "could not flush Redis db $REDIS_DB"
}
trap cleanup EXIT

note "scratch database $DB, Redis db $REDIS_DB on port $REDIS_PORT"
psql_admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
psql_admin -c "CREATE DATABASE $DB" >/dev/null
"$BIN" migrate >/dev/null

note "inserting $EVENTS session views over $SPEAKERS speakers ($RECENT in the last minute)"
t0=$(date +%s.%N)
psql_bench -v events="$EVENTS" -v recent="$RECENT" -v speakers="$SPEAKERS" -v conference="$CONFERENCE" <<'SQL'
SET synchronous_commit = off;
INSERT INTO organizations (id, name, credits) VALUES ('bench_org', 'Rebuild benchmark', 0);
INSERT INTO events (id, organization_id, name) VALUES (:'conference', 'bench_org', 'Rebuild benchmark');
INSERT INTO sessions (id, event_id, organization_id, title, speaker_id)
SELECT 'bench_ses_' || s, :'conference', 'bench_org', 'Talk ' || s, 'bench_spk_' || s
  FROM generate_series(1, :speakers) s;
-- Speaker k (0-based) gets a share proportional to 2k+1: floor(sqrt(u)) of a
-- uniform u in [0, speakers^2). Deterministic, so runs are comparable.
CREATE TEMP VIEW bench_views AS
SELECT g, 'bv_' || g AS event_id, 'att_' || (g % 50000) AS user_id,
       jsonb_build_object('session_id', 'bench_ses_' || sp, 'duration_seconds', 60) AS payload,
       'bench_spk_' || sp AS speaker_id
  FROM generate_series(1, :events) g,
       LATERAL (SELECT 1 + floor(sqrt(((g::bigint * 7919) % (:speakers * :speakers))::float8))::int AS sp) s;
-- The historic views: received over the 30 days before the last two minutes.
INSERT INTO analytics_events (event_id, event_type, user_id, organization_id, occurred_at, received_at,
                              payload, leaderboard_event_id, leaderboard_speaker_id)
SELECT event_id, 'session_view', user_id, 'bench_org', t, t, payload, :'conference', speaker_id
  FROM bench_views,
       LATERAL (SELECT now() - interval '2 minutes' - interval '30 days' * ((:events - g)::float8 / :events) AS t) r
 WHERE g <= :events - :recent;
VACUUM ANALYZE analytics_events;
-- The recent ones, last: received in the 10 seconds before this statement.
INSERT INTO analytics_events (event_id, event_type, user_id, organization_id, occurred_at, received_at,
                              payload, leaderboard_event_id, leaderboard_speaker_id)
SELECT event_id, 'session_view', user_id, 'bench_org', t, t, payload, :'conference', speaker_id
  FROM bench_views,
       LATERAL (SELECT clock_timestamp()
                       - interval '10 seconds' * ((:events - g + 1)::float8 / greatest(:recent, 1)) AS t) r
 WHERE g > :events - :recent;
SQL
t1=$(date +%s.%N)
logged=$(psql_bench -Atc "SELECT count(*) FROM analytics_events WHERE leaderboard_event_id = '$CONFERENCE'")
[[ $logged == "$EVENTS" ]] || die "expected $EVENTS logged views, found $logged"
note "inserted in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"

# PostgreSQL's counts, "speaker score" sorted, to compare every run's board with.
want=$(psql_bench -At -F ' ' -c "SELECT leaderboard_speaker_id, count(*) FROM analytics_events
                                  WHERE leaderboard_event_id = '$CONFERENCE' GROUP BY 1 ORDER BY 1")
key="eventtrack:lb:{$CONFERENCE}"

times=()
for run in $(seq 1 "$RUNS"); do
    rcli FLUSHDB >/dev/null
    live=$(psql_bench -Atc "SELECT count(*) FROM analytics_events WHERE received_at >= now() - interval '1 minute'")
    t0=$(date +%s.%N)
    out=$("$BIN" rebuild-leaderboards "$CONFERENCE")
    t1=$(date +%s.%N)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    times+=("$secs")
    got=$(rcli ZRANGE "$key" 0 -1 WITHSCORES | paste -d ' ' - - | sort)
    [[ $got == "$want" ]] || die "run $run: the board differs from PostgreSQL's counts:
$(diff <(echo "$want") <(echo "$got") | head -20)"
    total=$(echo "$got" | awk '{ s += $2 } END { print s }')
    [[ $total == "$EVENTS" ]] || die "run $run: the board's scores add up to $total, expected $EVENTS"
    note "run $run: ${secs} s ($out); $live view(s) in the last minute; $SPEAKERS speakers," \
         "scores add up to $total, dedup set $(rcli SCARD "$key:applied") ids"
done

median=$(printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
per_million=$(awk -v s="$median" -v n="$EVENTS" 'BEGIN { printf "%.3f", s * 1000000 / n }')
echo "rebuild: $EVENTS events in $median s ($per_million s per million)"
