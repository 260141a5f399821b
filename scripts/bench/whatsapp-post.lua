-- wrk script: WhatsApp webhook deliveries, each a new message (its own wamid), signed beforehand
-- (wrk's Lua has no HMAC): lines of "signature<TAB>body" from SB_BENCH_WA_BODIES, each thread
-- taking every n-th line so no two requests carry the same wamid until the file is used up.
local path = os.getenv("SB_BENCH_WA_BODIES")
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  signatures, bodies = {}, {}
  local index = 0
  for line in io.lines(path) do
    local tab = line:find("\t", 1, true)
    if index % 2 == tid then
      signatures[#signatures + 1] = line:sub(1, tab - 1)
      bodies[#bodies + 1] = line:sub(tab + 1)
    end
    index = index + 1
  end
  counter = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter % #bodies + 1
  wrk.headers["X-Hub-Signature-256"] = signatures[counter]
  return wrk.format(nil, nil, nil, bodies[counter])
end

function done(summary, latency, requests)
  io.write(string.format("requests %d, errors (connect/read/write/timeout) %d/%d/%d/%d, non-2xx %d\n",
    summary.requests, summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout, summary.errors.status))
  io.write(string.format("throughput %.0f req/s; latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
