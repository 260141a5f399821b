-- wrk script: authenticated JSON POSTs of a new message each.
local key = os.getenv("SB_BENCH_KEY")
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. key
wrk.headers["Content-Type"] = "application/json"

local counter = 0
function setup(thread)
  thread:set("id", math.random(1, 1e9))
end

function request()
  counter = counter + 1
  return wrk.format(nil, nil, nil, '{"content":"benchmark message ' .. counter .. '"}')
end

function done(summary, latency, requests)
  io.write(string.format("requests %d, errors (connect/read/write/timeout) %d/%d/%d/%d, non-2xx %d\n",
    summary.requests, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout, summary.errors.status))
  io.write(string.format("throughput %.0f req/s; latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
