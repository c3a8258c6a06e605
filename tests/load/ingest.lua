-- tests/load/ingest.lua - POST /v1/analytics/events: one session_view per
-- request, or a batch of them, every event id new (no duplicates).
--
-- Each view names one of the prepared sessions sess0 .. sess0 + nsess - 1,
-- so the ingest also resolves its leaderboard effect, writes the outbox row
-- and updates Redis, as a real view does. Arguments (after `--`, key=value):
--   key=SECRET  bearer key      batch=N  envelopes per request (1: a single envelope)
--   sess0=N nsess=N             the prepared sessions
--   nonce=WORD                  makes event ids unique across runs
package.path = (os.getenv("ET_LOAD_DIR") or "tests/load") .. "/?.lua;" .. package.path
local common = require("common")

setup = common.setup
done = common.done

local headers = {["Content-Type"] = "application/json"}
local batch, sess0, nsess, nonce
local n = 0

function init(argv)
  local a = common.args(argv)
  headers["Authorization"] = "Bearer " .. common.need(a, "key")
  batch = tonumber(a.batch or "1")
  sess0 = tonumber(common.need(a, "sess0"))
  nsess = tonumber(common.need(a, "nsess"))
  nonce = common.need(a, "nonce") .. "-" .. tostring(thread_id or 1)
  math.randomseed(os.time() * 1000 + (thread_id or 1))
end

local function envelope()
  n = n + 1
  return string.format(
    '{"event_id":"w%s-%d","event_type":"session_view","user_id":"u%d",' ..
    '"payload":{"session_id":"%d"}}', nonce, n, n % 100000, sess0 + math.random(0, nsess - 1))
end

local parts = {}

function request()
  local body
  if batch <= 1 then
    body = envelope()
  else
    for i = 1, batch do parts[i] = envelope() end
    body = '{"batch":[' .. table.concat(parts, ",", 1, batch) .. ']}'
  end
  return wrk.format("POST", "/v1/analytics/events", headers, body)
end
