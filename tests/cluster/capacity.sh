#!/usr/bin/env bash
# tests/cluster/capacity.sh — the per-request CPU cost of each tier, measured in the running lab
# (tests/cluster/lab.sh start), for docs/capacity.md.
#
# For each path (leaderboard read, registration, analytics ingest of one view) it runs wrk through
# HAProxy for ET_CAP_SECONDS (default 8; 16 connections; the wrk scripts of tests/load/), and reads
# the CPU time (utime + stime from /proc, every thread) that each tier spent meanwhile: the three
# replicas, HAProxy, PostgreSQL (the postmaster and every backend) and Redis. CPU-ms per request
# is the figure that transfers to another machine: a core gives 1000 / (CPU-ms per request)
# requests per second of that tier. Throughput on this machine is also printed, but it is bounded
# by the 2 shared cores that wrk, HAProxy, the replicas and both stores all compete for.
# Plain stores only (ET_LAB_STORES=plain): it finds PostgreSQL and Redis by their ports.
#
# capacity.sh --routing: instead, one organization's registrations (the ticket rush of issue #17)
# with the api backend balanced round-robin, then by a hash of the bearer key (HAProxy's
# `balance hdr(Authorization)`: one key, one replica), HAProxy restarted between the two; per
# run also PostgreSQL transactions per request and constraint A (active registrations = credits
# spent). ET_CAP_ROUNDS (default 2) pairs, alternating, because this machine's noise is large.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
eval "$(tests/cluster/lab.sh env)"
SECS=${ET_CAP_SECONDS:-8}
URL=$ET_LAB_URL
HZ=$(getconf CLK_TCK)
export ET_LOAD_DIR=$ROOT/tests/load
STAMP=$(date +%s)
ORG=$((8000000 + STAMP % 100000 * 10))
SESS0=$((ORG * 100))

die() { echo "capacity: error: $*" >&2; exit 1; }
api() { # METHOD PATH BODY -> status
    curl -sS -o /dev/null -w '%{http_code}' -X "$1" -H "Authorization: Bearer $ET_LAB_ADMIN_KEY" \
        -H 'Content-Type: application/json' --data "$3" "$URL$2"
}
listener_pid() { ss -ltnpH "sport = :$1" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2; }

# The pids of one tier; PostgreSQL is its postmaster and all its children (backends, walwriter...).
tier_pids() {
    case $1 in
        replicas) for n in svc1 svc2 svc3; do cat ".local/cluster/$n.pid"; done ;;
        haproxy) cat .local/cluster/haproxy.pid ;;
        postgres) local pm; pm=$(listener_pid "$PG_PORT"); echo "$pm"; pgrep -P "$pm" || true ;;
        redis) listener_pid "$REDIS_PORT" ;;
    esac
}
# Total CPU ticks of a tier now (children that exited meanwhile are lost: backends live as long
# as the replicas' pooled connections, so none exits during a run).
tier_ticks() {
    local t=0 pid f
    for pid in $(tier_pids "$1"); do
        f=$(cut -d' ' -f14,15 "/proc/$pid/stat" 2>/dev/null) || continue
        t=$((t + ${f% *} + ${f#* }))
    done
    echo "$t"
}

PG_PORT=$(sed -n 1p .local/cluster/store-urls | grep -o ':[0-9]*/' | tr -d ':/')
REDIS_PORT=$(sed -n 2p .local/cluster/store-urls | grep -o ':[0-9]*/' | tr -d ':/')
[[ -n $PG_PORT && -n $REDIS_PORT ]] || die "store ports not found (plain stores only)"

# ---- data: one organization with credits for every registration, an event with 10 sessions
# (10 speakers: a board of 10 rows), numeric ids as tests/load/*.lua expect.
[[ $(api POST /v1/organizations "{\"id\":\"$ORG\",\"name\":\"capacity\",\"credits\":100000000}") == 201 ]] ||
    die "cannot create the organization"
[[ $(api POST /v1/events "{\"id\":\"e$ORG\",\"organization_id\":\"$ORG\",\"name\":\"capacity\"}") == 201 ]] ||
    die "cannot create the event"
for j in $(seq 0 9); do
    [[ $(api POST /v1/sessions "{\"id\":\"$((SESS0 + j))\",\"event_id\":\"e$ORG\",\"title\":\"t\",\"speaker_id\":\"spk$j\"}") == 201 ]] ||
        die "cannot create a session"
done

LAST_WRK=$(mktemp)
trap 'rm -f "$LAST_WRK"' EXIT
measure() { # NAME wrk-args...
    local name=$1 before=() after=() out rps t
    shift
    local tiers=(replicas haproxy postgres redis)
    for t in "${tiers[@]}"; do before+=("$(tier_ticks "$t")"); done
    out=$(wrk -t1 -c16 -d"${SECS}s" "$@" | grep WRK_RESULT) || die "wrk failed for $name"
    echo "$out" >"$LAST_WRK"       # for --routing, which calls this in a command substitution
    for t in "${tiers[@]}"; do after+=("$(tier_ticks "$t")"); done
    local requests non2xx
    requests=$(grep -o 'requests=[0-9]*' <<<"$out" | cut -d= -f2)
    non2xx=$(grep -o 'non2xx=[0-9]*' <<<"$out" | cut -d= -f2)
    rps=$(grep -o ' rps=[0-9.]*' <<<"$out" | cut -d= -f2)
    printf '%-14s %8.0f req/s  non-2xx %-5s CPU-ms/request:' "$name" "$rps" "$non2xx"
    for i in "${!tiers[@]}"; do
        awk -v d=$((after[i] - before[i])) -v n="$requests" -v hz="$HZ" -v t="${tiers[i]}" \
            'BEGIN { printf "  %s %.3f", t, (n > 0 ? d * 1000 / hz / n : 0) }'
    done
    echo
}

# PostgreSQL's committed transactions in the lab's database so far.
xacts() {
    psql -qtAX "$ET_LAB_DATABASE_URL" -c "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
}

if [[ ${1:-} == --routing ]]; then
    CREDITS=100000000
    for ((round = 0; round < ${ET_CAP_ROUNDS:-2}; round++)); do
        for balance in roundrobin 'hdr(Authorization)'; do
            tests/cluster/lab.sh kill haproxy
            ET_LAB_API_BALANCE=$balance tests/cluster/lab.sh restart haproxy
            x0=$(xacts)
            line=$(measure "$balance" -s tests/load/registration.lua "$URL/v1/registrations" -- \
                key="$ET_LAB_ADMIN_KEY" org0="$ORG" norgs=1 sess0="$SESS0" spo=10 nonce="r$round${balance:0:1}$STAMP")
            requests=$(grep -o 'requests=[0-9]*' "$LAST_WRK" | cut -d= -f2)
            read -r active spent < <(psql -qtAX -F' ' "$ET_LAB_DATABASE_URL" -c \
                "SELECT (SELECT count(*) FROM registrations WHERE organization_id = '$ORG' AND cancelled_at IS NULL),
                        $CREDITS - (SELECT sum(credits) FROM credit_buckets WHERE organization_id = '$ORG')")
            awk -v x=$(($(xacts) - x0)) -v n="$requests" -v l="$line" -v a="$active" -v s="$spent" \
                'BEGIN { printf "%s  tx/request %.2f  constraint A: %s active, %s credits spent%s\n",
                         l, (n > 0 ? x / n : 0), a, s, (a == s ? "" : "  MISMATCH") }'
            [[ $active == "$spent" ]] || die "constraint A broken: $active active registrations, $spent credits spent"
        done
    done
    tests/cluster/lab.sh kill haproxy
    tests/cluster/lab.sh restart haproxy
    exit 0
fi

echo "capacity: $(nproc) cores shared by wrk, HAProxy, 3 replicas ($(sed -n 1p .local/cluster/store-urls | sed 's/.*@//')), PostgreSQL and Redis; ${SECS}s per path"
measure ingest -s tests/load/ingest.lua "$URL/v1/analytics/events" -- key="$ET_LAB_ADMIN_KEY" \
    sess0="$SESS0" nsess=10 nonce="c$STAMP"
measure leaderboard -s tests/load/get.lua "$URL/v1/events/e$ORG/leaderboard"
measure registration -s tests/load/registration.lua "$URL/v1/registrations" -- key="$ET_LAB_ADMIN_KEY" \
    org0="$ORG" norgs=1 sess0="$SESS0" spo=10 nonce="c$STAMP"
