-- tests/load/get.lua - a plain keep-alive GET of the URL given to wrk
-- (/healthz, the leaderboard); only adds the WRK_RESULT line (common.lua).
package.path = (os.getenv("ET_LOAD_DIR") or "tests/load") .. "/?.lua;" .. package.path
local common = require("common")

setup = common.setup
done = common.done
