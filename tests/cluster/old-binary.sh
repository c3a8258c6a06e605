#!/usr/bin/env bash
# tests/cluster/old-binary.sh — build the eventtrack binary of the release before the newest
# migration, for the rolling-upgrade scenario (an older binary keeps working on the expanded
# schema while the rollout runs; ADR 0013, expand/contract). Prints the binary's path.
#
# "Older" is the parent of the commit that added the newest file under schema/ (override with
# ET_LAB_OLD_REF). The source comes from `git archive` into .local/cluster/old/<commit>/, built once
# (Release, no tests); a later run reuses it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
ref=${ET_LAB_OLD_REF:-$(git log -1 --format=%H --diff-filter=A -- schema/)^}
commit=$(git rev-parse --verify "$ref^{commit}")
dir=.local/cluster/old/$commit
if [[ ! -x $dir/build/eventtrack ]]; then
    rm -rf "$dir" && mkdir -p "$dir/src"
    git archive "$commit" | tar -x -C "$dir/src"
    cmake -S "$dir/src" -B "$dir/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >&2
    cmake --build "$dir/build" --target eventtrack -j"${ET_BUILD_JOBS:-2}" >&2
fi
echo "$ROOT/$dir/build/eventtrack"
