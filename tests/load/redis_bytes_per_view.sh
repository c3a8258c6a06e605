#!/usr/bin/env bash
# tests/load/redis_bytes_per_view.sh — what one logged session_view costs Redis
# (docs/adr/0011-ingest-quota-and-admission.md, config/redis.conf "Memory").
#
# Starts an empty redis-server of its own (free port, no persistence) and the
# service built in ${BUILD:-build-test} against it and EVENTTRACK_DATABASE_URL
# (a database of yours: it gains one organization, one conference of 10
# sessions and VIEWS analytics events), logs VIEWS (default 100000) session
# views in batches of 1000 with an organization key, with event ids as the
# server generates them (UUIDs), and prints used_memory before and after,
# MEMORY USAGE of the board and of its applied set, and the bytes per view.
#
#   EVENTTRACK_DATABASE_URL=postgresql://eventtrack@127.0.0.1:55505/eventtrack \
#     tests/load/redis_bytes_per_view.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

BIN=${BUILD:-build-test}/eventtrack
VIEWS=${VIEWS:-100000}
BATCH=1000
: "${EVENTTRACK_DATABASE_URL:?set EVENTTRACK_DATABASE_URL to a database of yours}"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

TMP=$(mktemp -d)
RPORT=$(free_port)
HPORT=$(free_port)
ADMIN=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
cleanup() {
    [[ -n ${SVC:-} ]] && kill "$SVC" 2>/dev/null && wait "$SVC" 2>/dev/null
    redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT

redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" \
    --maxmemory-policy noeviction --daemonize yes --logfile "$TMP/redis.log"
until redis-cli -p "$RPORT" ping >/dev/null 2>&1; do sleep 0.1; done
"$BIN" migrate >/dev/null
EVENTTRACK_ADMIN_KEY=$ADMIN "$BIN" serve --port "$HPORT" --redis-url "redis://127.0.0.1:$RPORT/0" \
    --rate-limit-requests 0 --ingest-quota-per-day 0 >/dev/null 2>"$TMP/service.err" &
SVC=$!
BASE=http://127.0.0.1:$HPORT
until curl -sf "$BASE/healthz" >/dev/null; do sleep 0.1; done

api() { curl -sf -X POST -H "Authorization: Bearer $1" -H 'Content-Type: application/json' -d "$3" "$BASE$2"; }
ORG=org_bytes_$$_$RANDOM
KEY=$(api "$ADMIN" /v1/organizations "{\"id\":\"$ORG\",\"name\":\"Bytes per view\"}" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')
EVT=evt_$ORG
api "$ADMIN" /v1/events "{\"id\":\"$EVT\",\"organization_id\":\"$ORG\",\"name\":\"Conference\"}" >/dev/null
for s in $(seq 0 9); do
    api "$ADMIN" /v1/sessions "{\"id\":\"ses_${ORG}_$s\",\"event_id\":\"$EVT\",\"title\":\"Talk $s\",\"speaker_id\":\"spk_$s\"}" >/dev/null
done

# One batch first, so that the board, its applied set and the epoch exist.
batch() {
    python3 -c 'import sys
org, n, first = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print("{\"batch\":[" + ",".join(
    "{\"event_type\":\"session_view\",\"user_id\":\"att_%d\",\"payload\":{\"session_id\":\"ses_%s_%d\"}}"
    % (first + i, org, (first + i) % 10) for i in range(n)) + "]}")' "$ORG" "$BATCH" "$1" >"$TMP/batch.json"
    curl -sf -X POST -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
        --data-binary @"$TMP/batch.json" "$BASE/v1/analytics/events" >/dev/null
}
batch 0
mem() { redis-cli -p "$RPORT" info memory | sed -n 's/^used_memory:\([0-9]*\).*/\1/p'; }
BEFORE=$(mem)
for ((i = 1; i <= VIEWS / BATCH; i++)); do batch $((i * BATCH)); done
sleep 1
AFTER=$(mem)
BOARD="eventtrack:lb:{$EVT}"
SET_BYTES=$(redis-cli -p "$RPORT" memory usage "$BOARD:applied" samples 0)
BOARD_BYTES=$(redis-cli -p "$RPORT" memory usage "$BOARD" samples 0)
MEMBERS=$(redis-cli -p "$RPORT" scard "$BOARD:applied")
echo "views logged after the first batch: $VIEWS (applied set: $MEMBERS members)"
echo "used_memory: $BEFORE -> $AFTER bytes: $(((AFTER - BEFORE) / VIEWS)) bytes per view"
echo "MEMORY USAGE: applied set $SET_BYTES bytes ($((SET_BYTES / MEMBERS)) per member), board $BOARD_BYTES bytes"
echo "Redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), sample member: $(redis-cli -p "$RPORT" srandmember "$BOARD:applied")"
