-- wrk script for benchmarks/webhook_ingest.py: POSTs ~1 KB canonical alerts, each with its own
-- event id (run id from BENCH_RUN, thread number, counter), to the path given as BENCH_PATH, and
-- prints one JSON line with the round's figures when done.

local counter = 0
local thread_number = 0
local threads = {}
local run = os.getenv("BENCH_RUN") or "run"
local path = os.getenv("BENCH_PATH") or "/"
local filler = string.rep("Trojan.Win32.Generic detected and quarantined. ", 30)

function setup(thread)
  thread_number = thread_number + 1
  thread:set("thread_number", thread_number)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  statuses = {}
end

local template = '{"event_id": "%s", "client_id": "client-%d", "endpoint_id": "endpoint-%d", '
  .. '"hostname": "WS-%05d", "problem": "threat_detected", "state": "active", '
  .. '"occurred_at": "2026-11-20T10:00:00Z", "message": "%s"}'

function request()
  counter = counter + 1
  local n = counter
  local head = string.format(template, run .. "-" .. thread_number .. "-" .. n, n % 40, n % 2500, n % 2500, "")
  local body = string.format(template, run .. "-" .. thread_number .. "-" .. n, n % 40, n % 2500, n % 2500,
    string.sub(filler, 1, math.max(1024 - #head, 0)))
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    local seen = thread:get("statuses")
    for status, count in pairs(seen) do
      counts[status] = (counts[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(counts) do
    table.insert(parts, string.format('"%d": %d', status, count))
  end
  io.write(string.format(
    'BENCH {"requests": %d, "seconds": %.6f, "p50_ms": %.3f, "p99_ms": %.3f, "mean_ms": %.3f, '
      .. '"socket_errors": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    latency.mean / 1e3,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    table.concat(parts, ", ")))
end
