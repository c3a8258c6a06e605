#!/usr/bin/env bash
# tests/cluster/lab.sh — EventTrack as N stateless replicas behind HAProxy, on one machine,
# loopback only, private processes (no containers): the lab of issue #17 that
# `scripts/test --cluster` (tests/cluster/run.sh) runs its fault scenarios against.
#
#   lab.sh start          start the stores, migrate, 3 replicas, HAProxy; wait until HAProxy
#                         sees every replica up in both backends
#   lab.sh stop           stop everything this lab started (a paused process is resumed first)
#   lab.sh status         "NAME ROLE PGID PORT" per process (stores included); exit 0 when all run
#   lab.sh url            the HAProxy URL clients use
#   lab.sh env            export lines: ET_LAB_URL, ET_LAB_ADMIN_KEY, the store URLs
#   lab.sh kill NODE      SIGKILL the node's process group (svcN, haproxy, or a store node)
#   lab.sh pause|resume NODE   SIGSTOP / SIGCONT it
#   lab.sh restart NODE   start a killed svcN (or store node) again at its old address
#   lab.sh term NODE      SIGTERM svcN (a graceful stop) and wait for it to exit
#   lab.sh switchover postgres   a planned PostgreSQL switchover (ha stores; waits for it to end)
#
# Stores (ET_LAB_STORES; their state under .local/cluster/, apart from stores.sh's HA stores):
#   ha     Redis primary + replica + 3 Sentinels (deploy/local/ha/redis.sh) and PostgreSQL under
#          pg_auto_failover (deploy/local/ha/postgres.sh), each with its own ten ports from
#          ET_LAB_PORT_BASE+20 and +30; the replicas get the `url` each script prints. Needs a
#          service that follows a failover (issue #14). The default when both scripts exist.
#   plain  this checkout's private stores (deploy/local/stores.sh on ET_PG_PORT/ET_REDIS_PORT),
#          database eventtrack_lab, Redis db 3: enough for the replica-level scenarios.
#
# Ports: ET_LAB_PORT_BASE (default 22010): HAProxy +0, its stats page +1, svc1..3 +2..+4;
# keep it below Linux's ephemeral range (32768+) as stores.sh explains.
# HAProxy: config/haproxy.cfg, with ET_LAB_API_BALANCE (if set) as the api backend's algorithm.
# Replicas: ET_LAB_BINARY (default build-test/eventtrack), ET_LAB_THREADS worker threads each
# (default 4: 3 x (4 + 1) PostgreSQL connections, docs/capacity.md), extra flags in
# ET_LAB_SVC_ARGS (default --rate-limit-requests 0 --group-commit-lanes 1: the scenarios load one
# organization far past the per-organization limit, and replicas run one lane each, ADR 0013).
# State, logs, pid files: $ROOT/.local/cluster/.
#
# Why each process runs in its own session and process group (setsid): a scenario kills or
# freezes exactly one node with `kill -- -PGID`, never a neighbour and never its own shell.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PROG="lab.sh"
BASE=${ET_LAB_PORT_BASE:-22010}
LAB="$ROOT/.local/cluster"
BINARY=${ET_LAB_BINARY:-$ROOT/build-test/eventtrack}
THREADS=${ET_LAB_THREADS:-4}
REPLICAS=(svc1 svc2 svc3)
REDIS_HA="$ROOT/deploy/local/ha/redis.sh"
PG_HA="$ROOT/deploy/local/ha/postgres.sh"
WAIT_SECONDS=60

die() { echo "$PROG: error: $*" >&2; exit 1; }
say() { echo "$PROG: $*" >&2; }
usage() {
    echo "usage: $PROG start|stop|status|url|env|kill NODE|pause NODE|resume NODE|restart NODE|term NODE|switchover postgres" >&2
    exit 2
}

[[ $BASE =~ ^[0-9]+$ ]] && ((BASE >= 1024 && BASE + 39 <= 32767)) ||
    die "ET_LAB_PORT_BASE=$BASE: want 1024..32728 (forty ports below the ephemeral range)"

if [[ -z ${ET_LAB_STORES:-} ]]; then
    if [[ -x $REDIS_HA && -x $PG_HA ]]; then ET_LAB_STORES=ha; else ET_LAB_STORES=plain; fi
fi
[[ $ET_LAB_STORES == ha || $ET_LAB_STORES == plain ]] || die "ET_LAB_STORES=$ET_LAB_STORES: want ha or plain"

front_port() { echo "$BASE"; }
stats_port() { echo $((BASE + 1)); }
svc_port() {
    case $1 in
        svc1) echo $((BASE + 2)) ;; svc2) echo $((BASE + 3)) ;; svc3) echo $((BASE + 4)) ;;
        *) return 1 ;;
    esac
}
# The lab's stores keep their state apart from the HA stores of deploy/local/stores.sh
# (ET_HA_PORT_BASE), which would otherwise share .local/ha/ with them: both can run at once.
ha_redis() { ET_HA_PORT_BASE=$((BASE + 20)) ET_HA_DIR="$LAB/redis" "$REDIS_HA" "$@"; }
ha_pg() { ET_HA_PORT_BASE=$((BASE + 30)) ET_HA_PG_NAME=cluster/postgres "$PG_HA" "$@"; }

pidfile() { echo "$LAB/$1.pid"; }
node_pgid() { cat "$(pidfile "$1")" 2>/dev/null || true; }
node_running() {
    local pid
    pid=$(node_pgid "$1")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}
node_state() {
    local pid
    node_running "$1" || { echo down; return; }
    pid=$(node_pgid "$1")
    if grep -q '^State:.*T' "/proc/$pid/status" 2>/dev/null; then echo paused; else echo up; fi
}

# The store URLs the replicas use, decided once at start and kept in the lab dir, so that a
# replica restarted later joins the same stores.
store_urls() {
    if [[ $ET_LAB_STORES == ha ]]; then
        echo "$(ha_pg url)"
        echo "$(ha_redis url)/3"
    else
        echo "postgresql://eventtrack@127.0.0.1:${ET_PG_PORT:-25432}/eventtrack_lab"
        echo "redis://127.0.0.1:${ET_REDIS_PORT:-26379}/3"
    fi
}

start_stores() {
    if [[ $ET_LAB_STORES == ha ]]; then
        ha_pg start
        ha_redis start
    else
        "$ROOT/deploy/local/stores.sh" start >&2
        # A database of its own: the scenarios compare whole tables with Redis.
        if ! "$ROOT/deploy/local/stores.sh" psql -d eventtrack -tAc \
            "SELECT 1 FROM pg_database WHERE datname = 'eventtrack_lab'" | grep -q 1; then
            "$ROOT/deploy/local/stores.sh" psql -d eventtrack -qc "CREATE DATABASE eventtrack_lab" >&2
        fi
    fi
    store_urls >"$LAB/store-urls"
    [[ -s $LAB/admin-key ]] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$LAB/admin-key"
}

svc_env() {
    local db redis
    db=$(sed -n 1p "$LAB/store-urls")
    redis=$(sed -n 2p "$LAB/store-urls")
    echo "EVENTTRACK_DATABASE_URL=$db" "EVENTTRACK_REDIS_URL=$redis" "EVENTTRACK_ADMIN_KEY=$(cat "$LAB/admin-key")"
}

migrate() {
    # shellcheck disable=SC2046 # svc_env prints NAME=value words without spaces
    env $(svc_env) "$BINARY" migrate >&2 || die "migrate failed"
}

# Start one replica in its own session; its pid (= its PGID) goes to the pid file.
svc_start() {
    local name=$1 port
    port=$(svc_port "$name") || die "unknown replica \"$name\""
    node_running "$name" && return 0
    # shellcheck disable=SC2046,SC2086 # word splitting wanted: NAME=value words and flags
    setsid env $(svc_env) bash -c 'echo $$ >"$0"; exec "$@"' "$(pidfile "$name")" \
        "$BINARY" serve --bind 127.0.0.1 --port "$port" --threads "$THREADS" \
        --shutdown-grace-seconds "${ET_LAB_GRACE:-3}" ${ET_LAB_SVC_ARGS---rate-limit-requests 0 --group-commit-lanes 1} \
        </dev/null >>"$LAB/$name.log" 2>&1 &
    local i
    for ((i = 0; i < WAIT_SECONDS * 10; i++)); do
        if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$port/healthz" 2>/dev/null; then return 0; fi
        ((i < 20)) || node_running "$name" || die "$name exited while starting (log: $LAB/$name.log)"
        sleep 0.1
    done
    die "$name does not answer on 127.0.0.1:$port after ${WAIT_SECONDS}s (log: $LAB/$name.log)"
}

haproxy_start() {
    node_running haproxy && return 0
    sed -e "s/@BIND@/127.0.0.1/g" -e "s/@FRONT_PORT@/$(front_port)/g" -e "s/@STATS_PORT@/$(stats_port)/g" \
        -e "s/@SVC1@/127.0.0.1:$(svc_port svc1)/g" -e "s/@SVC2@/127.0.0.1:$(svc_port svc2)/g" \
        -e "s/@SVC3@/127.0.0.1:$(svc_port svc3)/g" "$ROOT/config/haproxy.cfg" >"$LAB/haproxy.cfg"
    if [[ -n ${ET_LAB_API_BALANCE:-} ]]; then   # tests/cluster/capacity.sh --routing compares two
        sed -i "/^backend api/,/^\$/ s/^    balance .*/    balance $ET_LAB_API_BALANCE/" "$LAB/haproxy.cfg"
    fi
    haproxy -c -q -f "$LAB/haproxy.cfg" || die "HAProxy refuses $LAB/haproxy.cfg"
    # -db: stay in the foreground, so the pid written is HAProxy's and leads its group.
    setsid bash -c 'echo $$ >"$0"; exec haproxy -db -f "$1"' "$(pidfile haproxy)" "$LAB/haproxy.cfg" \
        </dev/null >>"$LAB/haproxy.log" 2>&1 &
}

# "backend server status" lines from HAProxy's CSV stats.
haproxy_servers() {
    curl -fsS --max-time 2 "http://127.0.0.1:$(stats_port)/;csv" 2>/dev/null |
        awk -F, '$1 == "board" || $1 == "api" { if ($2 != "BACKEND" && $2 != "FRONTEND") print $1, $2, $18 }'
}

# Until HAProxy sees every replica UP in both backends.
wait_balanced() {
    local i
    for ((i = 0; i < WAIT_SECONDS * 10; i++)); do
        if [[ $(haproxy_servers | grep -c ' UP$') -eq $((2 * ${#REPLICAS[@]})) ]]; then return 0; fi
        sleep 0.1
    done
    die "HAProxy does not see every replica up after ${WAIT_SECONDS}s: $(haproxy_servers | tr '\n' ';')"
}

node_stop() {
    local name=$1 pid i
    node_running "$name" || { rm -f "$(pidfile "$name")"; return 0; }
    pid=$(node_pgid "$name")
    kill -CONT -- "-$pid" 2>/dev/null || true
    kill -TERM -- "-$pid" 2>/dev/null || true
    for ((i = 0; i < WAIT_SECONDS * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$(pidfile "$name")"; return 0; }
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$(pidfile "$name")"
}

is_lab_node() { [[ $1 == haproxy ]] || svc_port "$1" >/dev/null; }

# A store node's name goes to the HA script that knows it, by name alone: asking the nodes
# (`nodes`) would wait on the very node a scenario paused, and `resume` could never run.
store_cmd() {
    local verb=$1 name=$2
    [[ $ET_LAB_STORES == ha ]] || die "\"$name\": not a lab node (haproxy ${REPLICAS[*]}); store nodes need ET_LAB_STORES=ha"
    case $name in
        redis[0-9] | sentinel[0-9]) ha_redis "$verb" "$name" ;;
        node[0-9] | monitor) ha_pg "$verb" "$name" ;;
        *) die "unknown node \"$name\"" ;;
    esac
}

cmd_status() {
    local n all=0
    echo "haproxy $(node_state haproxy) $(node_pgid haproxy | grep . || echo -) $(front_port)"
    for n in "${REPLICAS[@]}"; do
        echo "$n $(node_state "$n") $(node_pgid "$n" | grep . || echo -) $(svc_port "$n")"
    done
    for n in haproxy "${REPLICAS[@]}"; do node_running "$n" || all=1; done
    if [[ $ET_LAB_STORES == ha ]]; then
        ha_pg nodes || all=1
        ha_redis nodes || all=1
    fi
    haproxy_servers | sed 's/^/# backend /'
    return "$all"
}

cmd=${1:-}
case $cmd in
    start)
        (($# == 1)) || usage
        command -v haproxy >/dev/null || die "haproxy not found: deploy/local/packages.sh --cluster"
        [[ -x $BINARY ]] || die "$BINARY not built (cmake --build build-test), or set ET_LAB_BINARY"
        mkdir -p "$LAB"
        start_stores
        migrate
        for n in "${REPLICAS[@]}"; do svc_start "$n"; done
        haproxy_start
        wait_balanced
        say "ready ($ET_LAB_STORES stores): $(cmd_status | grep -v '^#' | tr '\n' ';')"
        ;;
    stop)
        (($# == 1)) || usage
        for n in haproxy "${REPLICAS[@]}"; do node_stop "$n"; done
        if [[ $ET_LAB_STORES == ha ]]; then
            ha_redis stop || true
            ha_pg stop || true
        fi
        ;;
    status) (($# == 1)) || usage; cmd_status ;;
    url) (($# == 1)) || usage; echo "http://127.0.0.1:$(front_port)" ;;
    env)
        (($# == 1)) || usage
        echo "export ET_LAB_URL=http://127.0.0.1:$(front_port)"
        echo "export ET_LAB_ADMIN_KEY=$(cat "$LAB/admin-key")"
        echo "export ET_LAB_DATABASE_URL='$(sed -n 1p "$LAB/store-urls")'"
        echo "export ET_LAB_REDIS_URL='$(sed -n 2p "$LAB/store-urls")'"
        echo "export ET_LAB_STORES=$ET_LAB_STORES"
        ;;
    kill | pause | resume)
        (($# == 2)) || usage
        if is_lab_node "$2"; then
            node_running "$2" || die "$2 is not running"
            case $cmd in kill) sig=KILL ;; pause) sig=STOP ;; resume) sig=CONT ;; esac
            kill "-$sig" -- "-$(node_pgid "$2")"
            [[ $cmd == kill ]] && rm -f "$(pidfile "$2")"
        else
            store_cmd "$cmd" "$2"
        fi
        ;;
    term)
        (($# == 2)) || usage
        svc_port "$2" >/dev/null || die "term: only a replica (${REPLICAS[*]})"
        node_stop "$2"
        ;;
    switchover)
        (($# == 2)) && [[ $2 == postgres ]] || usage
        [[ $ET_LAB_STORES == ha ]] || die "switchover needs ET_LAB_STORES=ha"
        ha_pg switchover
        ;;
    restart)
        (($# == 2)) || usage
        if [[ $2 == haproxy ]]; then haproxy_start && wait_balanced
        elif svc_port "$2" >/dev/null; then svc_start "$2"
        else store_cmd restart "$2"; fi
        ;;
    *) usage ;;
esac
