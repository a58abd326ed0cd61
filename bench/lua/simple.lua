-- One fixed request, repeated: discovery, JWKS, client_credentials, introspection.
-- BENCH_METHOD, BENCH_PATH, and for POST: BENCH_BODY and BENCH_AUTH (an Authorization value).
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")

wrk.method = os.getenv("BENCH_METHOD") or "GET"
wrk.path = os.getenv("BENCH_PATH")
if wrk.method == "POST" then
  wrk.body = os.getenv("BENCH_BODY")
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
end

setup = common.setup
done = common.done
