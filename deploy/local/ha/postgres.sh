#!/usr/bin/env bash
# deploy/local/ha/postgres.sh — a private pg_auto_failover formation for the
# failover tests and the cluster lab: one monitor and ET_HA_PG_NODES (2) data
# nodes, all PostgreSQL 15 on 127.0.0.1, synchronous replication.
#
#   postgres.sh start          create on first use, run every node, wait until
#                              a primary and its standbys are in sync
#   postgres.sh stop           stop every node (pg_autoctl stop, then SIGKILL)
#   postgres.sh status         pg_autoctl show state (exit 3 when not running)
#   postgres.sh url            the service's EVENTTRACK_DATABASE_URL: every
#                              node, target_session_attrs=read-write
#   postgres.sh nodes          "NAME ROLE PGID PORT" per data node; ROLE is
#                              primary, standby or down
#   postgres.sh kill NODE      kill -KILL the node's process group and its
#                              postmaster's children (a crashed machine)
#   postgres.sh pause NODE     SIGSTOP the same set (a hung machine)
#   postgres.sh resume NODE    SIGCONT it
#   postgres.sh restart NODE   run a killed node again (it rejoins as told by
#                              the monitor, usually as a standby)
#   postgres.sh switchover     pg_autoctl perform switchover (waits for it)
#
# NODE is node1, node2 ... or monitor. Ports: ET_HA_PORT_BASE (default 25600)
# is the monitor's, node K listens on base + K; the ten ports from the base
# are this script's. Data: $ROOT/.local/ha/postgres/ (ET_HA_PG_DIR; for root
# in a checkout the postgres user cannot enter, /var/lib/eventtrack/; the
# last two parts, ha/postgres, are ET_HA_PG_NAME, so that another formation of
# the same checkout, such as the cluster lab's, can live beside it), one
# directory per node, with pg_autoctl's XDG config and state inside it, and
# each node's log in <node>.log beside it.
#
# Why each node in its own process group: the lab kills or freezes "a
# machine" with one signal to the group. PostgreSQL backends call setsid(),
# so the postmaster's children are signalled one by one as well.
#
# Why pg_auto_failover (Debian's pg-auto-failover-cli and
# postgresql-15-auto-failover): a real monitor-driven failover with
# synchronous replication (number_sync_standbys 0 with replication-quorum
# true: one standby acknowledges each commit while one is healthy; the
# monitor switches sync rep off when none is), no consensus store to run.
# The monitor's health checks are shortened (1 s period, 3 s unhealthy
# timeout, 5 s demote timeout; keepers' network_partition_timeout 3 s) so a
# failover takes seconds, not the 20-50 s of the defaults: see
# docs/adr/0014-store-failover-postgres.md for the measured outage.
# Auth is trust on loopback only; no SSL (loopback).
#
# Why every node's unix socket is in $DIR/sock and it listens on 127.0.0.1
# only: Debian's PostgreSQL puts sockets in /var/run/postgresql, which only
# the postgres user may write, so a plain user's formation could not start
# there; and pg_autoctl's monitor listens on '*' unless told otherwise, while
# the tests stay on loopback. pg_autoctl starts each postgres with
# "-k $PG_REGRESS_SOCK_DIR" when that is set and connects to its own node
# through PGHOST (saved as postgresql.host in the node's config), so both
# name the formation's directory.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
PROG="ha/postgres.sh"
BASE=${ET_HA_PORT_BASE:-25600}
NODES=${ET_HA_PG_NODES:-2}
# The formation's directory: in the checkout, unless root runs it from a
# checkout the postgres user cannot enter (root's own home), where pg_autoctl,
# which refuses root, could not reach it: then beside deploy/local/stores.sh's
# state for that checkout, under /var/lib/eventtrack/. ET_HA_PG_DIR overrides.
default_dir() {
    if ((EUID == 0)) && ! runuser -u postgres -- test -x "$ROOT" 2>/dev/null; then
        echo "/var/lib/eventtrack/$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)/$NAME"
    else
        echo "$ROOT/.local/$NAME"
    fi
}
NAME=${ET_HA_PG_NAME:-ha/postgres}
[[ $NAME =~ ^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$ ]] || { echo "$PROG: error: ET_HA_PG_NAME=$NAME: want a relative path" >&2; exit 1; }
DIR=${ET_HA_PG_DIR:-$(default_dir)}
PG_BIN=${ET_PG_BIN:-/usr/lib/postgresql/15/bin}
WAIT_SECONDS=${ET_HA_WAIT_SECONDS:-90}

die() { echo "$PROG: error: $*" >&2; exit 1; }
say() { echo "$PROG: $*" >&2; }

command -v pg_autoctl >/dev/null ||
    die "pg_autoctl not found: run deploy/local/packages.sh --ha (pg-auto-failover-cli, postgresql-15-auto-failover)"
((BASE > 1024 && BASE + 9 < 32768)) || die "ET_HA_PORT_BASE=$BASE: choose ten ports below 32768"
((NODES >= 2 && NODES <= 8)) || die "ET_HA_PG_NODES=$NODES: between 2 and 8"

node_port() { [[ $1 == monitor ]] && echo "$BASE" || echo $((BASE + ${1#node})); }
node_names() { local k; for ((k = 1; k <= NODES; k++)); do echo "node$k"; done; }
valid_node() {
    [[ $1 == monitor ]] && return 0
    [[ $1 =~ ^node([0-9]+)$ ]] && ((BASH_REMATCH[1] >= 1 && BASH_REMATCH[1] <= NODES))
}
monitor_url() { echo "postgres://autoctl_node@127.0.0.1:$BASE/pg_auto_failover?sslmode=disable"; }

# pg_autoctl and PostgreSQL refuse root: run them as the postgres user then.
as_pg() {
    local env=(env "XDG_CONFIG_HOME=$DIR/xdg/config" "XDG_DATA_HOME=$DIR/xdg/data"
        "XDG_RUNTIME_DIR=$DIR/xdg/run" "PG_CONFIG=$PG_BIN/pg_config" "PATH=$PG_BIN:$PATH"
        "PG_REGRESS_SOCK_DIR=$DIR/sock" "PGHOST=$DIR/sock")
    if ((EUID == 0)); then
        (cd / && runuser -u postgres -- "${env[@]}" "$@")
    else
        "${env[@]}" "$@"
    fi
}

# The nodes' superuser: initdb names it after the user it runs as, and
# pg_autoctl offers no way to choose another.
if ((EUID == 0)); then SUPER=postgres; else SUPER=$(id -un); fi
# Bounded: a node a test froze (SIGSTOP) accepts the TCP connection and never answers. Not
# tighter: at load average 35 a healthy node's connect took over 3 s and `start` gave up.
psql_at() {
    PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10} "$PG_BIN/psql" -X -q -At -h 127.0.0.1 -p "$1" -U "${3:-$SUPER}" \
        -d "${2:-postgres}" -c "$4"
}

pgid_file() { echo "$DIR/$1.pgid"; }
node_pgid() { cat "$(pgid_file "$1")" 2>/dev/null || echo 0; }
group_alive() { local g; g=$(node_pgid "$1"); ((g > 0)) && kill -0 -- "-$g" 2>/dev/null; }

# A formation created before its sockets moved to $DIR/sock still names
# the old directory (and, for the monitor, '*') in its config: point it here
# before the node runs again, or pg_autoctl could not reach its postgres.
adopt_node() {
    as_pg pg_autoctl config set --pgdata "$DIR/$1" postgresql.host "$DIR/sock" >>"$DIR/$1.log" 2>&1 &&
        as_pg pg_autoctl config set --pgdata "$DIR/$1" postgresql.listen_addresses 127.0.0.1 >>"$DIR/$1.log" 2>&1
}

# Runs `pg_autoctl run` for a node as the leader of a new process group.
run_node() {
    local node=$1 g
    group_alive "$node" && return 0
    adopt_node "$node" || die "could not set $node's socket directory and listen address in its config"
    # setsid execs in place (a background job of a script is no group
    # leader), so $! is the group's id.
    setsid bash -c "$(declare -f as_pg); DIR='$DIR' PG_BIN='$PG_BIN'; as_pg pg_autoctl run --pgdata '$DIR/$node'" \
        >>"$DIR/$node.log" 2>&1 </dev/null &
    g=$!
    echo "$g" >"$(pgid_file "$node")"
}

# The node's postmaster and every child of it (backends setsid themselves).
node_pids() {
    local pm pid
    pm=$(head -n 1 "$DIR/$1/postmaster.pid" 2>/dev/null || true)
    [[ -n $pm ]] || return 0
    echo "$pm"
    for pid in $(ps -eo pid=,ppid= | awk -v p="$pm" '$2 == p { print $1 }'); do echo "$pid"; done
}

signal_node() {
    local sig=$1 node=$2 g pids
    g=$(node_pgid "$node")
    pids=$(node_pids "$node")
    ((g > 0)) && kill "-$sig" -- "-$g" 2>/dev/null || true
    [[ -n $pids ]] && kill "-$sig" $pids 2>/dev/null || true
}

wait_for() {
    local what=$1 i
    shift
    for ((i = 0; i < WAIT_SECONDS * 2; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    die "timed out after ${WAIT_SECONDS}s waiting for $what (logs: $DIR/*.log)"
}

# The monitor's word alone is not enough when a stopped formation starts
# again: it still holds the states reported before the stop, so the primary
# must also be up and stream to every standby as a synchronous one.
in_sync() {
    local n p
    n=$(psql_at "$BASE" pg_auto_failover autoctl_node \
        "SELECT count(*) FROM pgautofailover.node WHERE reportedstate = goalstate
            AND goalstate IN ('primary', 'secondary')")
    [[ $n == "$NODES" ]] || return 1
    p=$(primary_port) || return 1
    n=$(psql_at "$p" postgres "$SUPER" "SELECT count(*) FROM pg_stat_replication
        WHERE state = 'streaming' AND sync_state IN ('sync', 'quorum')")
    [[ $n == $((NODES - 1)) ]]
}
primary_ready() {
    psql_at "$BASE" pg_auto_failover autoctl_node \
        "SELECT 1 FROM pgautofailover.node WHERE reportedstate IN ('single', 'primary', 'wait_primary')" | grep -q 1
}

create_monitor() {
    [[ -f $DIR/monitor/PG_VERSION ]] && return 0
    say "creating the monitor on 127.0.0.1:$BASE"
    as_pg pg_autoctl create monitor --pgdata "$DIR/monitor" --pgport "$BASE" --hostname 127.0.0.1 \
        --listen 127.0.0.1 --auth trust --no-ssl >>"$DIR/monitor.log" 2>&1 ||
        die "creating the monitor failed (log: $DIR/monitor.log)"
}

tune_monitor() {
    local setting
    for setting in health_check_period=1000 health_check_timeout=1000 health_check_max_retries=1 \
        health_check_retry_delay=500 node_considered_unhealthy_timeout=3000 primary_demote_timeout=5000; do
        psql_at "$BASE" pg_auto_failover "$SUPER" "ALTER SYSTEM SET pgautofailover.${setting%%=*} = ${setting#*=}"
    done
    psql_at "$BASE" pg_auto_failover "$SUPER" "SELECT pg_reload_conf()" >/dev/null
}

create_node() {
    local node=$1
    [[ -f $DIR/$node/PG_VERSION ]] && return 0
    say "creating $node on 127.0.0.1:$(node_port "$node")"
    as_pg pg_autoctl create postgres --pgdata "$DIR/$node" --pgport "$(node_port "$node")" \
        --pghost "$DIR/sock" --hostname 127.0.0.1 --listen 127.0.0.1 --name "$node" --dbname eventtrack \
        --auth trust --no-ssl --monitor "$(monitor_url)" >>"$DIR/$node.log" 2>&1 ||
        die "creating $node failed (log: $DIR/$node.log)"
    # A primary cut off from the monitor and its standbys demotes itself after
    # this many seconds: less than the monitor's primary_demote_timeout (5 s),
    # so a partitioned old primary stops taking writes before another node
    # is promoted (no two primaries).
    as_pg pg_autoctl config set --pgdata "$DIR/$node" timeout.network_partition_timeout 3 >/dev/null
}

# The service's role and database; created on the first primary, replicated.
create_role() {
    local p=$1
    psql_at "$p" eventtrack "$SUPER" "SELECT 1 FROM pg_roles WHERE rolname = 'eventtrack'" | grep -q 1 && return 0
    psql_at "$p" eventtrack "$SUPER" "CREATE ROLE eventtrack LOGIN CREATEDB;
        ALTER DATABASE eventtrack OWNER TO eventtrack; ALTER SCHEMA public OWNER TO eventtrack;" >/dev/null
}

cmd_start() {
    local node
    mkdir -p "$DIR/xdg/config" "$DIR/xdg/data" "$DIR/xdg/run"
    mkdir -p "$DIR/sock"
    chmod 0700 "$DIR/xdg/run" "$DIR/sock"
    # The socket's path must fit in sun_path (107 bytes with its file name).
    ((${#DIR} + 20 <= 107)) || die "$DIR is too long a path for a unix socket: set ET_HA_PG_DIR to a shorter one"
    ((EUID == 0)) && chown -R postgres:postgres "$DIR"
    create_monitor
    run_node monitor
    wait_for "the monitor" "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$BASE"
    tune_monitor
    create_node node1
    run_node node1
    wait_for "node1 to be a primary" primary_ready
    wait_for "node1 to accept connections" psql_at "$BASE" postgres "$SUPER" "SELECT 1"
    create_role "$(node_port node1)" 2>/dev/null || true
    for node in $(node_names); do
        [[ $node == node1 ]] && continue
        create_node "$node"
        run_node "$node"
    done
    wait_for "every node in sync" in_sync
    local p
    p=$(primary_port) || die "no node takes writes (logs: $DIR/*.log)"
    create_role "$p"
    say "ready: $(cmd_url)"
}

primary_port() {
    local node p
    for node in $(node_names); do
        p=$(node_port "$node")
        [[ $(psql_at "$p" postgres "$SUPER" "SELECT NOT pg_is_in_recovery()" 2>/dev/null) == t ]] && {
            echo "$p"
            return 0
        }
    done
    return 1
}

cmd_stop() {
    local node
    for node in $(node_names) monitor; do
        group_alive "$node" || continue
        as_pg pg_autoctl stop --pgdata "$DIR/$node" >/dev/null 2>&1 || true
    done
    for node in $(node_names) monitor; do
        local i
        for ((i = 0; i < 20 && $(group_alive "$node" && echo 1 || echo 0) == 1; i++)); do sleep 0.5; done
        group_alive "$node" && signal_node KILL "$node"
        rm -f "$(pgid_file "$node")"
    done
    return 0
}

cmd_url() {
    local hosts="" node
    for node in $(node_names); do hosts+="${hosts:+,}127.0.0.1:$(node_port "$node")"; done
    echo "postgresql://eventtrack@$hosts/eventtrack?target_session_attrs=read-write&connect_timeout=3"
}

cmd_nodes() {
    local node p role
    for node in $(node_names); do
        p=$(node_port "$node")
        case $(psql_at "$p" postgres "$SUPER" "SELECT pg_is_in_recovery()" 2>/dev/null || true) in
            f) role=primary ;;
            t) role=standby ;;
            *) role=down ;;
        esac
        echo "$node $role $(node_pgid "$node") $p"
    done
}

cmd_status() {
    group_alive monitor || { echo "monitor: not running"; return 3; }
    as_pg pg_autoctl show state --pgdata "$DIR/monitor"
}

usage() {
    echo "usage: $PROG start|stop|status|url|nodes|kill NODE|pause NODE|resume NODE|restart NODE|switchover" >&2
    exit 2
}

(($# >= 1)) || usage
cmd=$1
shift
case $cmd in
    start | stop | status | url | nodes | switchover) (($# == 0)) || usage ;;
    kill | pause | resume | restart) (($# == 1)) && valid_node "$1" || usage ;;
    *) usage ;;
esac
mkdir -p "$DIR"
case $cmd in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    url) cmd_url ;;
    nodes) cmd_nodes ;;
    kill) signal_node KILL "$1" ;;
    pause) signal_node STOP "$1" ;;
    resume) signal_node CONT "$1" ;;
    restart) run_node "$1" ;;
    switchover) as_pg pg_autoctl perform switchover --pgdata "$DIR/monitor" ;;
esac
