-- tests/load/registration.lua - POST /v1/registrations, one new attendee per
-- request, so that every request debits a credit (no 409 already-registered).
--
-- Organizations, events and sessions are prepared by scripts/bench through
-- the API with numeric ids: organization org0 + k (k < norgs) runs sessions
-- sess0 + k * spo + j (j < spo). Arguments (after `--`, key=value):
--   key=SECRET      bearer key for every request (the admin key), or
--   keys=FILE       lines "k SECRET": organization org0 + k uses its own key
--   org0=N norgs=N sess0=N spo=N   the prepared ids
--   nonce=WORD      makes user ids unique across runs against the same data
--   keyed=1         every request carries an Idempotency-Key of its own (a
--                   client that retries safely; the key's record commits
--                   with the registration)
package.path = (os.getenv("ET_LOAD_DIR") or "tests/load") .. "/?.lua;" .. package.path
local common = require("common")

setup = common.setup
done = common.done

local org0, norgs, sess0, spo, nonce, bearer, keys, keyed
local n = 0

function init(argv)
  local a = common.args(argv)
  org0 = tonumber(common.need(a, "org0"))
  norgs = tonumber(common.need(a, "norgs"))
  sess0 = tonumber(common.need(a, "sess0"))
  spo = tonumber(common.need(a, "spo"))
  nonce = common.need(a, "nonce") .. "-" .. tostring(thread_id or 1)
  keyed = a.keyed == "1"
  if a.keys then
    keys = {}
    for line in io.lines(a.keys) do
      local k, secret = line:match("^(%d+) (%S+)$")
      if k then keys[tonumber(k)] = "Bearer " .. secret end
    end
  else
    bearer = "Bearer " .. common.need(a, "key")
  end
  math.randomseed(os.time() * 1000 + (thread_id or 1))
end

local headers = {["Content-Type"] = "application/json"}

function request()
  local k = math.random(0, norgs - 1)
  local session = sess0 + k * spo + math.random(0, spo - 1)
  n = n + 1
  headers["Authorization"] = keys and keys[k] or bearer
  if keyed then headers["Idempotency-Key"] = "wrk-" .. nonce .. "-" .. n end
  return wrk.format("POST", "/v1/registrations", headers, string.format(
    '{"session_id":"%d","user_id":"w%s-%d","organization_id":"%d",' ..
    '"ticket_type":"standard","price_paid":"99.00"}', session, nonce, n, org0 + k))
end
