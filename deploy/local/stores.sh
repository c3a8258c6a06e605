#!/usr/bin/env bash
# deploy/local/stores.sh — a private PostgreSQL 15 cluster and Redis 7 server
# for EventTrack, kept under <repo>/.local/ (git-ignored) or, for root in a
# private checkout, under /var/lib/eventtrack/ (see STATE below).
#
# Why private: the service and its tests must never depend on whatever the
# machine already runs (Debian's default cluster on 5432, a system Redis on
# 6379), and several checkouts can run side by side on other ports.
#
#   stores.sh start    initialise on first use, start both, wait until they
#                      answer, create the eventtrack and eventtrack_test dbs
#   stores.sh stop     stop both cleanly (no-op when already stopped)
#   stores.sh status   print their state; exit 0 only when both are running
#   stores.sh psql [ARGS]  psql as eventtrack (default db eventtrack)
#   stores.sh env      print export lines for EVENTTRACK_DATABASE_URL/REDIS_URL
#   stores.sh --ha CMD the same, plus the Redis Sentinel lab of deploy/local/ha/redis.sh
#                      and a pg_auto_failover formation (deploy/local/ha/postgres.sh),
#                      ports from ET_HA_PORT_BASE (ADR 0014): start/stop/status act on
#                      them too, and env prints their redis-sentinel:// and multi-host URLs
#   stores.sh pg-restart fast|immediate
#                      pg_ctl restart in that mode, waiting until it answers
#                      (the fault tests of tests/integration/test_pg_failover.c)
#
# Ports: ET_PG_PORT (default 25432), ET_REDIS_PORT (default 26379), both on
# 127.0.0.1 only, and below Linux's ephemeral range (32768-60999): a client
# socket (the flood tests open thousands) can never be holding them when the
# stores start. PostgreSQL binaries: ET_PG_BIN (default
# /usr/lib/postgresql/15/bin). Layout, under the state directory STATE:
#   STATE/postgres  data directory      STATE/redis  Redis dir (AOF + RDB)
#   STATE/run       sockets, pid files  STATE/log    postgres.log, redis.log
# initdb and postgres refuse to run as root, so as root they run as the
# `postgres` system user created by Debian's postgresql package.
#
# STATE is <repo>/.local, except when root runs this in a checkout that the
# postgres user cannot reach: root's home is mode 0700 on Debian, the usual
# place for root's clone. Then STATE is /var/lib/eventtrack/<12 hex digits of
# the SHA-256 of the checkout's path>, one per checkout, and .local/stores
# links to it. Nothing is chmod-ed: opening a private home to every user to
# suit a database would be the wrong trade. A user other than root runs the
# cluster as themself, so .local always works for them. ET_STATE_DIR
# overrides the choice; `stores.sh status` prints where the data is. Once
# data exists in one place it is used from there, so a later chmod never
# makes the stores look empty.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PROG="stores.sh"

PG_PORT=${ET_PG_PORT:-25432}
REDIS_PORT=${ET_REDIS_PORT:-26379}
PG_BIN=${ET_PG_BIN:-/usr/lib/postgresql/15/bin}
PG_USER=eventtrack
DATABASES=(eventtrack eventtrack_test)
WAIT_SECONDS=60

# LOCAL holds this checkout's lock (and scripts/serve's admin key); STATE
# the stores' data, set by resolve_state once the tools are known present.
LOCAL="$ROOT/.local"
STATE=""
PGDATA_DIR="" REDIS_DIR="" RUN_DIR="" LOG_DIR="" PG_LOG="" REDIS_LOG="" REDIS_PID=""
REDIS_CONF="$ROOT/config/redis.conf"

die() { echo "$PROG: error: $*" >&2; exit 1; }
say() { echo "$PROG: $*"; }

# The reason a server gave for failing, for the one error line: the last
# FATAL/ERROR/PANIC line of a PostgreSQL log, or the last "#" line of a Redis
# one (its warnings), else the last line. Prints "" when the log is unreadable.
log_reason() {
    local line=""
    if [[ -r $1 ]]; then
        line=$(grep -a -E '(FATAL|ERROR|PANIC|# )' "$1" | tail -n 1 || true)
        [[ -n $line ]] || line=$(tail -n 1 "$1" || true)
    fi
    printf '%s' "${line:+: \"$line\"}"
}

check_port() {
    if ! [[ $2 =~ ^[0-9]{1,5}$ ]] || ((10#$2 < 1 || 10#$2 > 65535)); then
        die "$1='$2' is not a TCP port"
    fi
}

# Run a PostgreSQL server-side command (initdb, pg_ctl) as the cluster owner:
# the postgres system user when we are root, else ourselves. From / so that a
# current directory the postgres user cannot enter does not matter.
as_pg() {
    if ((EUID == 0)); then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

# Client tools connect over TCP with trust auth, so any OS user may run them.
pg_client() {
    local tool=$1; shift
    "$PG_BIN/$tool" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" "$@"
}

rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

need_tools() {
    [[ -x $PG_BIN/pg_ctl ]] || die "$PG_BIN/pg_ctl not found: install postgresql-15 (deploy/local/packages.sh) or set ET_PG_BIN"
    command -v redis-server >/dev/null || die "redis-server not found: install redis-server (deploy/local/packages.sh)"
    command -v redis-cli >/dev/null || die "redis-cli not found: install redis-tools (deploy/local/packages.sh)"
    if ((EUID == 0)); then
        id -u postgres >/dev/null 2>&1 || die "no 'postgres' system user: install postgresql-15 (deploy/local/packages.sh)"
        command -v runuser >/dev/null || die "runuser not found (util-linux)"
    fi
}

# Choose STATE (see the header) and derive every path from it.
resolve_state() {
    local alt
    alt="/var/lib/eventtrack/$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"
    if [[ -n ${ET_STATE_DIR:-} ]]; then
        [[ $ET_STATE_DIR == /* ]] || die "ET_STATE_DIR='$ET_STATE_DIR' must be an absolute path"
        STATE=$ET_STATE_DIR
    elif ((EUID != 0)) || [[ -f $LOCAL/postgres/PG_VERSION ]]; then
        STATE=$LOCAL
    elif [[ -d $alt ]] || ! runuser -u postgres -- test -x "$ROOT" 2>/dev/null; then
        STATE=$alt
    else
        STATE=$LOCAL
    fi
    PGDATA_DIR="$STATE/postgres"
    REDIS_DIR="$STATE/redis"
    RUN_DIR="$STATE/run"
    LOG_DIR="$STATE/log"
    PG_LOG="$LOG_DIR/postgres.log"
    REDIS_LOG="$LOG_DIR/redis.log"
    REDIS_PID="$RUN_DIR/redis.pid"
}

# ---------------------------------------------------------------- PostgreSQL

pg_running() {
    [[ -f $PGDATA_DIR/PG_VERSION ]] || return 1
    as_pg "$PG_BIN/pg_ctl" status -D "$PGDATA_DIR" >/dev/null 2>&1
}

pg_pid() { head -n 1 "$PGDATA_DIR/postmaster.pid" 2>/dev/null || echo "?"; }

# The port this cluster was started on (line 4 of postmaster.pid), so status
# and stop report the truth even when ET_PG_PORT differs from that start.
pg_running_port() { sed -n 4p "$PGDATA_DIR/postmaster.pid" 2>/dev/null || true; }

pg_prepare_dirs() {
    # Every directory down to STATE must let the postgres user through.
    [[ $STATE == "$LOCAL" ]] || mkdir -p -m 0755 "$(dirname "$STATE")"
    mkdir -p "$STATE" "$RUN_DIR" "$LOG_DIR"
    chmod 0755 "$STATE"
    # ET_STATE_DIR is a choice the caller knows (the fault tests' scratch
    # clusters): only the automatic one is linked.
    if [[ -z ${ET_STATE_DIR:-} && $STATE != "$LOCAL" && $(readlink "$LOCAL/stores" 2>/dev/null) != "$STATE" ]]; then
        ln -sfn "$STATE" "$LOCAL/stores"
        say "the stores' data lives in $STATE (linked from .local/stores): see README.md, 'Where the data lives'"
    fi
    if ((EUID == 0)); then
        chown postgres:postgres "$RUN_DIR" "$LOG_DIR"
        # Only reachable when ET_STATE_DIR names a private place: the default
        # moves out of a private checkout by itself.
        runuser -u postgres -- test -w "$RUN_DIR" ||
            die "the postgres user cannot write $RUN_DIR: unset ET_STATE_DIR, or choose one every user may enter"
    elif [[ -e $PGDATA_DIR && ! -O $PGDATA_DIR ]]; then
        die "$PGDATA_DIR belongs to $(stat -c %U "$PGDATA_DIR"), not to you: run as that user or as root"
    fi
    # pg_ctl hands the -o options to /bin/sh, inside single quotes.
    [[ $ROOT != *[\'\"]* ]] || die "the checkout path $ROOT contains a quote: move it"
    # The socket path must fit in sun_path (107 bytes with the file name).
    local sock="$RUN_DIR/.s.PGSQL.$PG_PORT.lock"
    ((${#sock} <= 107)) || die "socket path $RUN_DIR is too long for a Unix socket: move the checkout to a shorter path"
}

pg_init() {
    [[ -f $PGDATA_DIR/PG_VERSION ]] && return 0
    if [[ -e $PGDATA_DIR ]]; then
        die "$PGDATA_DIR exists but is not a PostgreSQL data directory: remove it to start over"
    fi
    say "initialising PostgreSQL cluster in $PGDATA_DIR"
    # initdb into a scratch directory and rename it, so an interrupted initdb
    # never leaves a half-made data directory behind.
    local tmp="$STATE/postgres.initdb"
    rm -rf "$tmp"
    mkdir -m 0700 "$tmp"
    ((EUID == 0)) && chown postgres:postgres "$tmp"
    if ! as_pg "$PG_BIN/initdb" -D "$tmp" --auth=trust --username="$PG_USER" \
        -E UTF8 --locale=C.UTF-8 >"$LOG_DIR/initdb.log" 2>&1; then
        rm -rf "$tmp"
        die "initdb failed$(log_reason "$LOG_DIR/initdb.log"); fix that and run start again (full output: $LOG_DIR/initdb.log)"
    fi
    mv "$tmp" "$PGDATA_DIR"
}

pg_start() {
    if pg_running; then
        [[ $(pg_running_port) == "$PG_PORT" ]] ||
            die "this checkout's postgres already runs on port $(pg_running_port): use ET_PG_PORT=$(pg_running_port), or run stop first"
        say "postgres already running (pid $(pg_pid), port $(pg_running_port))"
        return 0
    fi
    # pg_isready: 0 accepting, 1 rejecting (starting up), 2 nobody there.
    local rc=0
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2 >/dev/null 2>&1 || rc=$?
    if ((rc != 2 && rc != 3)); then
        die "another PostgreSQL already answers on 127.0.0.1:$PG_PORT: stop it or set ET_PG_PORT"
    fi
    pg_init
    # Small dev/test cluster. fsync and synchronous_commit stay ON on purpose:
    # the credit rule (one credit per registration, never below zero) is
    # measured with durable commits, as in production.
    local opts="-c listen_addresses=127.0.0.1 -c port=$PG_PORT"
    opts+=" -c unix_socket_directories='$RUN_DIR'"
    opts+=" -c max_connections=200 -c shared_buffers=128MB"
    opts+=" -c fsync=on -c synchronous_commit=on"
    say "starting postgres on 127.0.0.1:$PG_PORT (log: $PG_LOG)"
    # 9>&-: the server must not inherit the lock taken by lock().
    # pg_ctl's own words ("Examine the log output") are replaced by the log's reason.
    if ! as_pg "$PG_BIN/pg_ctl" start -D "$PGDATA_DIR" -l "$PG_LOG" -w -t "$WAIT_SECONDS" \
        -o "$opts" >/dev/null 2>&1 9>&-; then
        grep -q 'could not bind.*Address already in use' "$PG_LOG" 2>/dev/null &&
            die "another program listens on 127.0.0.1:$PG_PORT: stop it or set ET_PG_PORT to a free port"
        die "postgres failed to start on 127.0.0.1:$PG_PORT$(log_reason "$PG_LOG"); fix that and run start again (log: $PG_LOG)"
    fi
    local i
    for ((i = 0; i < WAIT_SECONDS * 2; i++)); do
        "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 1 && return 0
        sleep 0.5
    done
    die "postgres started but does not answer on 127.0.0.1:$PG_PORT$(log_reason "$PG_LOG") (log: $PG_LOG)"
}

pg_create_databases() {
    local db exists
    for db in "${DATABASES[@]}"; do
        exists=$(pg_client psql -d postgres -XAtq -v ON_ERROR_STOP=1 \
            -c "SELECT 1 FROM pg_database WHERE datname = '$db'") ||
            die "cannot query databases on 127.0.0.1:$PG_PORT as $PG_USER"
        if [[ $exists != 1 ]]; then
            say "creating database $db"
            pg_client createdb "$db" || die "createdb $db failed"
        fi
    done
}

pg_stop() {
    if ! pg_running; then
        say "postgres not running"
        return 0
    fi
    say "stopping postgres (pid $(pg_pid))"
    as_pg "$PG_BIN/pg_ctl" stop -D "$PGDATA_DIR" -m fast -w -t "$WAIT_SECONDS" >/dev/null ||
        die "postgres did not stop within ${WAIT_SECONDS}s$(log_reason "$PG_LOG"); run stop again (log: $PG_LOG)"
}

# --------------------------------------------------------------------- Redis

redis_pid() { cat "$REDIS_PID" 2>/dev/null || true; }

# Ours and alive: the pid file names a live redis-server process.
redis_running() {
    local pid
    pid=$(redis_pid)
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null &&
        grep -q redis-server "/proc/$pid/cmdline" 2>/dev/null
}

redis_answers() { [[ $(rcli ping 2>/dev/null) == PONG ]]; }

redis_start() {
    if redis_running; then
        say "redis already running (pid $(redis_pid))"
    else
        if rcli ping >/dev/null 2>&1; then
            die "another Redis already answers on 127.0.0.1:$REDIS_PORT: stop it or set ET_REDIS_PORT"
        fi
        [[ -r $REDIS_CONF ]] || die "missing $REDIS_CONF"
        mkdir -p "$REDIS_DIR" "$RUN_DIR" "$LOG_DIR"
        rm -f "$REDIS_PID"
        say "starting redis on 127.0.0.1:$REDIS_PORT (log: $REDIS_LOG)"
        # Settings after the file override it: the file carries persistence,
        # the command line carries everything that depends on this checkout.
        if ! redis-server "$REDIS_CONF" --port "$REDIS_PORT" --bind 127.0.0.1 \
            --dir "$REDIS_DIR" --pidfile "$REDIS_PID" --logfile "$REDIS_LOG" \
            --daemonize yes >"$LOG_DIR/redis-start.out" 2>&1 9>&-; then
            die "redis-server refused to start$(log_reason "$LOG_DIR/redis-start.out"); fix that and run start again"
        fi
    fi
    # Wait for PONG: while it replays the AOF, Redis answers LOADING. A server
    # that died after daemonizing (a port taken meanwhile, a bad AOF) is
    # reported at once, not after the whole wait.
    local i
    for ((i = 0; i < WAIT_SECONDS * 2; i++)); do
        redis_answers && return 0
        if ((i >= 4)) && ! redis_running; then
            die "redis-server exited while starting$(log_reason "$REDIS_LOG"); fix that and run start again (log: $REDIS_LOG)"
        fi
        sleep 0.5
    done
    die "redis does not answer PING on 127.0.0.1:$REDIS_PORT after ${WAIT_SECONDS}s$(log_reason "$REDIS_LOG") (log: $REDIS_LOG)"
}

redis_stop() {
    if ! redis_running; then
        say "redis not running"
        rm -f "$REDIS_PID"
        return 0
    fi
    local pid i port
    pid=$(redis_pid)
    # The port it really listens on (it may have been started with another
    # ET_REDIS_PORT); fall back to ours.
    # Redis sets its process title to "redis-server 127.0.0.1:PORT".
    port=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' || true)
    [[ $port =~ ^[0-9]+$ ]] || port=$REDIS_PORT
    say "stopping redis (pid $pid)"
    # SHUTDOWN fsyncs the AOF and writes a final snapshot before exiting.
    redis-cli -h 127.0.0.1 -p "$port" shutdown >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < WAIT_SECONDS * 2; i++)); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$REDIS_PID"; return 0; }
        sleep 0.5
    done
    die "redis (pid $pid) did not stop within ${WAIT_SECONDS}s$(log_reason "$REDIS_LOG"); run stop again (log: $REDIS_LOG)"
}

# ------------------------------------------------------------------ commands

# One start/stop at a time per checkout (scripts/test and a developer may race).
lock() {
    mkdir -p "$LOCAL"
    # Daemons started under the lock close fd 9 (9>&-), or they would hold it.
    exec 9>"$LOCAL/stores.lock"
    flock -w 120 9 || die "another stores.sh holds $LOCAL/stores.lock"
}

cmd_start() {
    need_tools
    resolve_state
    lock
    pg_prepare_dirs
    pg_start
    redis_start
    pg_create_databases
    say "ready: postgres 127.0.0.1:$PG_PORT, redis 127.0.0.1:$REDIS_PORT"
}

cmd_stop() {
    need_tools
    resolve_state
    lock
    local rc=0
    (pg_stop) || rc=1
    (redis_stop) || rc=1
    return "$rc"
}

cmd_status() {
    need_tools
    resolve_state
    local rc=0
    if pg_running; then
        echo "postgres: running (pid $(pg_pid), 127.0.0.1:$(pg_running_port), data $PGDATA_DIR)"
    elif [[ -f $PGDATA_DIR/PG_VERSION ]]; then
        echo "postgres: stopped (data $PGDATA_DIR)"; rc=3
    else
        echo "postgres: not initialised (run: $0 start)"; rc=3
    fi
    if redis_running; then
        echo "redis: running (pid $(redis_pid), dir $REDIS_DIR)"
    else
        echo "redis: stopped"; rc=3
    fi
    return "$rc"
}

cmd_pg_restart() {
    need_tools
    resolve_state
    lock
    pg_running || die "postgres is not running: run start first"
    say "restarting postgres (-m $1)"
    as_pg "$PG_BIN/pg_ctl" restart -D "$PGDATA_DIR" -m "$1" -l "$PG_LOG" -w -t "$WAIT_SECONDS" \
        >/dev/null 2>&1 9>&- || die "postgres did not restart$(log_reason "$PG_LOG") (log: $PG_LOG)"
}

cmd_psql() {
    [[ -x $PG_BIN/psql ]] || die "$PG_BIN/psql not found: install postgresql-client-15"
    export PGHOST=127.0.0.1 PGPORT=$PG_PORT PGUSER=$PG_USER PGDATABASE=${PGDATABASE:-eventtrack}
    exec "$PG_BIN/psql" "$@"
}

cmd_env() {
    echo "export EVENTTRACK_DATABASE_URL=postgresql://$PG_USER@127.0.0.1:$PG_PORT/eventtrack"
    echo "export EVENTTRACK_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
}

usage() {
    echo "usage: $PROG [--ha] start|stop|status|psql [PSQL ARGS]|env|pg-restart fast|immediate" >&2
    exit 2
}

check_port ET_PG_PORT "$PG_PORT"
check_port ET_REDIS_PORT "$REDIS_PORT"

# --ha: start|stop|status|env also drive the Redis Sentinel lab and a
# pg_auto_failover formation (deploy/local/ha/, ports from ET_HA_PORT_BASE),
# and env points the service at both (docs/adr/0014).
HA=0
# Both labs take ten ports from a base: one base given for both keeps them
# apart (Redis base+0..9, PostgreSQL base+10..19); unset, each uses its own.
ha_redis() { "$ROOT/deploy/local/ha/redis.sh" "$@"; }
ha_pg() {
    if [[ -n ${ET_HA_PORT_BASE:-} ]]; then
        ET_HA_PORT_BASE=$((ET_HA_PORT_BASE + 10)) "$ROOT/deploy/local/ha/postgres.sh" "$@"
    else
        "$ROOT/deploy/local/ha/postgres.sh" "$@"
    fi
}
if [[ ${1:-} == --ha ]]; then HA=1; shift; fi
(($# >= 1)) || usage
cmd=$1; shift
case $cmd in
    start)  (($# == 0)) || usage; cmd_start; if ((HA)); then ha_redis start; ha_pg start; fi ;;
    stop)   (($# == 0)) || usage; if ((HA)); then ha_pg stop; ha_redis stop; fi; cmd_stop ;;
    status) (($# == 0)) || usage; if ((HA)); then ha_redis status; ha_pg status; fi; cmd_status ;;
    psql)   cmd_psql "$@" ;;
    env)    (($# == 0)) || usage; cmd_env
            if ((HA)); then
                echo "export EVENTTRACK_REDIS_URL=$(ha_redis url)/0"
                echo "export EVENTTRACK_DATABASE_URL='$(ha_pg url)'"
            fi ;;
    pg-restart) [[ $# == 1 && ( $1 == fast || $1 == immediate ) ]] || usage; cmd_pg_restart "$1" ;;
    -h|--help|help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) usage ;;
esac
