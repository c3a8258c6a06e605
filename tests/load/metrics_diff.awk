# tests/load/metrics_diff.awk - what one measured run did, seen by the service
# itself: the difference of two /metrics scrapes (before and after the run)
# for one route.
#
#   awk -v method=GET -v route='/v1/events/{event_id}/leaderboard' \
#       -f metrics_diff.awk BEFORE AFTER
#
# prints one line: count=N statuses=200:N,... p50_s=LE p99_s=LE, where LE is the
# upper bound of the histogram bucket (eventtrack_http_request_duration_seconds)
# in which the cumulative count crosses 50% / 99% of the run's requests: the
# quantile is at most that ("+Inf" when beyond the last finite bound).
function label(line, name,    m) {
    if (match(line, name "=\"[^\"]*\""))
        return substr(line, RSTART + length(name) + 2, RLENGTH - length(name) - 3)
    return ""
}

FILENAME == ARGV[1] { side = "b" }
FILENAME == ARGV[2] { side = "a" }

/^eventtrack_http_requests_total\{/ {
    if (label($0, "method") != method || label($0, "route") != route) next
    st = label($0, "status")
    req[side, st] = $NF
    statuses[st] = 1
    next
}
/^eventtrack_http_request_duration_seconds_bucket\{/ {
    if (label($0, "method") != method || label($0, "route") != route) next
    le = label($0, "le")
    bucket[side, le] = $NF
    if (side == "a" && !(le in seen)) { seen[le] = 1; order[++nle] = le }
    next
}

END {
    out = ""
    total = 0
    for (st in statuses) {
        d = req["a", st] - req["b", st]
        if (d > 0) { out = out (out == "" ? "" : ",") st ":" d; total += d }
    }
    n = bucket["a", "+Inf"] - bucket["b", "+Inf"]
    p50 = p99 = "none"
    for (i = 1; i <= nle; i++) {
        cum = bucket["a", order[i]] - bucket["b", order[i]]
        if (p50 == "none" && n > 0 && cum >= 0.50 * n) p50 = order[i]
        if (p99 == "none" && n > 0 && cum >= 0.99 * n) p99 = order[i]
    }
    printf "count=%d statuses=%s p50_s=%s p99_s=%s\n", total, (out == "" ? "none" : out), p50, p99
}
