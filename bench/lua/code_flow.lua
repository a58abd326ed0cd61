-- The code flow of a signed-in user: authorize (session cookie) -> token -> userinfo.
-- Each response says which step it ends, so any connection may carry any flow's next step:
-- a 302/303 with a code queues the token request, a token response queues userinfo, and a
-- userinfo response completes one flow. Every flow has its own state and nonce.
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local authorize = os.getenv("BENCH_AUTHORIZE")   -- path and query, without state and nonce
local token_path = os.getenv("BENCH_TOKEN_PATH")
local userinfo_path = os.getenv("BENCH_USERINFO_PATH")
local cookie = os.getenv("BENCH_COOKIE")
local basic = os.getenv("BENCH_AUTH")
local code_tail = "&redirect_uri=" .. os.getenv("BENCH_REDIRECT_URI") ..
                  "&code_verifier=" .. os.getenv("BENCH_VERIFIER")
local run_id = os.getenv("BENCH_RUN_ID")
local form = "application/x-www-form-urlencoded"

flows = 0
failures = 0
local queue = {}
local started = 0

setup = common.setup
done = common.done

function request()
  local step = table.remove(queue)
  if step then
    return step
  end
  started = started + 1
  local nonce = run_id .. "-" .. tid .. "-" .. started
  return wrk.format("GET", authorize .. "&state=" .. nonce .. "&nonce=" .. nonce,
                    { Cookie = cookie })
end

function response(status, headers, body)
  if status == 302 or status == 303 then
    local location = headers["Location"] or headers["location"] or ""
    local code = location:match("[?&]code=([^&]+)")
    if code then
      table.insert(queue, wrk.format("POST", token_path,
        { Authorization = basic, ["Content-Type"] = form },
        "grant_type=authorization_code&code=" .. code .. code_tail))
      return
    end
  elseif status == 200 then
    local access = body:match('"access_token"%s*:%s*"([^"]+)"')
    if access then
      table.insert(queue, wrk.format("GET", userinfo_path,
        { Authorization = "Bearer " .. access }))
      return
    end
    if body:find('"sub"', 1, true) then
      flows = flows + 1
      return
    end
  end
  failures = failures + 1
end
