-- Shared by every workload: thread numbering and one machine-readable summary line.
local M = {}
local threads = {}

function M.setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function M.done(summary, latency, requests)
  local flows, failures = 0, 0
  for _, thread in ipairs(threads) do
    flows = flows + (thread:get("flows") or 0)
    failures = failures + (thread:get("failures") or 0)
  end
  local errors = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"status_errors":%d,"socket_errors":%d,"flows":%d,"failures":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.status, errors.connect + errors.read + errors.write + errors.timeout,
    flows, failures))
end

return M
