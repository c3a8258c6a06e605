#!/usr/bin/env bash
# tests/cluster/run.sh — `scripts/test --cluster`: start the lab (tests/cluster/lab.sh), run the
# fault scenarios (tests/cluster/scenarios.py, names as arguments to run only some), stop the lab.
# The last line is scenarios.py's "N passed, M failed"; the exit status is non-zero when a scenario
# failed or the lab did not start. Not part of the default run (scripts/test without --cluster
# never starts it): it needs haproxy (deploy/local/packages.sh --cluster) and takes minutes on 2
# cores -- about 2 min in plain mode (7 scenarios) and 5.5 min with ET_LAB_STORES=ha (13) on a quiet
# machine; the HA scenarios took 25-35 min at load average 25-35 (docs/adr/0013-replicas.md).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
LAB=tests/cluster/lab.sh

deploy/local/packages.sh --cluster
# The lab is stopped at exit whatever happens, so no replica or HAProxy outlives the run.
trap '"$LAB" stop >&2 || true' EXIT
trap 'exit 130' INT TERM
if ! "$LAB" start; then
    echo "cluster: the lab did not start (logs: .local/cluster/)" >&2
    echo "0 passed, 1 failed"
    exit 1
fi
eval "$("$LAB" env)"
start=$SECONDS
rc=0
timeout -k 15 "${ET_CLUSTER_TIMEOUT:-3600}" python3 tests/cluster/scenarios.py "$@" || rc=$?
echo "cluster: scenarios took $((SECONDS - start))s" >&2
exit "$rc"
