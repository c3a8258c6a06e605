-- tests/load/common.lua - shared by the wrk scripts of scripts/bench.
--
-- Why no response() callback anywhere: wrk runs on the same two cores as the
-- service, and a Lua call per response would slow the load generator, not the
-- service. Status codes are counted by the service itself (/metrics, diffed
-- by scripts/bench around each run); wrk still reports non-2xx answers and
-- socket errors, which done() prints on one machine-readable line.
local M = {}

-- One line scripts/bench greps: "WRK_RESULT key=value ...". Latencies in us.
function M.done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_RESULT requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d" ..
    " non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.status, e.connect, e.read, e.write, e.timeout))
end

-- Threads number themselves, so that generated ids never collide across threads.
local counter = 0
function M.setup(thread)
  counter = counter + 1
  thread:set("thread_id", counter)
end

-- Arguments after `--` on the wrk command line, as key=value words.
function M.args(argv)
  local a = {}
  for _, word in ipairs(argv or {}) do
    local k, v = word:match("^([%w_]+)=(.*)$")
    if k then a[k] = v end
  end
  return a
end

function M.need(a, key)
  local v = a[key]
  if v == nil or v == "" then error("wrk script: missing argument " .. key .. "=...") end
  return v
end

return M
