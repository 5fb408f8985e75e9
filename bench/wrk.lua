-- wrk script: POST AdmissionReview bodies in a fixed cycle, count allowed/denied answers.
-- Usage: wrk -s bench/wrk.lua https://127.0.0.1:PORT/validate -- BODIES_DIR
-- BODIES_DIR/index.txt lists body files in order (written by bench.run).
-- Prints one line "WRKJSON {...}" with throughput, latency percentiles and answer counts.

local threads = {}
local requests = {}
local index = 0
allowed, denied, bad = 0, 0, 0

function setup(thread)
  thread:set("offset", #threads * 37)
  table.insert(threads, thread)
end

function init(args)
  local dir = args[1]
  for name in io.lines(dir .. "/index.txt") do
    local f = assert(io.open(dir .. "/" .. name, "rb"))
    local body = f:read("*a")
    f:close()
    table.insert(requests, wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body))
  end
  index = (offset or 0) % #requests
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
  elseif string.find(body, '"allowed": false', 1, true) or string.find(body, '"allowed":false', 1, true) then
    denied = denied + 1
  else
    allowed = allowed + 1
  end
end

function done(summary, latency, requests_)
  local a, d, b = 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("allowed"); d = d + t:get("denied"); b = b + t:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"allowed":%d,"denied":%d,"non200":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p99":%d,"p99_9":%d,"mean":%.1f,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes, a, d, b,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.mean, latency.max))
end
