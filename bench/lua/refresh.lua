-- Refresh with rotation: every request spends a refresh token and keeps the one it gets back,
-- so each chain uses each token exactly once (a reuse would revoke the whole chain).
-- BENCH_REFRESH_FILE holds one seeded token per line; thread t takes lines t, t+T, ...
package.path = os.getenv("BENCH_LUA_DIR") .. "/?.lua;" .. package.path
local common = require("common")

local token_path = os.getenv("BENCH_TOKEN_PATH")
local headers = { Authorization = os.getenv("BENCH_AUTH"),
                  ["Content-Type"] = "application/x-www-form-urlencoded" }

flows = 0
failures = 0
local tokens = {}
local verified = false

setup = common.setup
done = common.done

function init(args)
  local nthreads = tonumber(os.getenv("BENCH_THREADS"))
  local i = 0
  for line in io.lines(os.getenv("BENCH_REFRESH_FILE")) do
    if i % nthreads == tid - 1 and #line > 0 then
      table.insert(tokens, line)
    end
    i = i + 1
  end
end

function request()
  -- wrk calls request() once on its first thread to check it, before any connection:
  -- that request is never sent, so it must not spend a token.
  local token
  if not verified and tid == 1 then
    verified = true
    token = tokens[#tokens]
  else
    verified = true
    token = table.remove(tokens)
  end
  return wrk.format("POST", token_path, headers,
                    "grant_type=refresh_token&refresh_token=" .. (token or "none"))
end

function response(status, headers, body)
  local token = status == 200 and body:match('"refresh_token"%s*:%s*"([^"]+)"')
  if token then
    table.insert(tokens, token)
    flows = flows + 1
  else
    failures = failures + 1
  end
end
