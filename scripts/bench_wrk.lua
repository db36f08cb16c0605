-- wrk script for scripts/bench.py: one kind of request per run, chosen by BENCH_MODE.
--
--   live        GET  /health/live                      (the framework's ceiling: no I/O)
--   status      GET  /api/payments/{id}/status          (bearer token, round-robin over BENCH_TARGETS)
--   issue       POST /api/payments/issue                (bearer token, no Idempotency-Key)
--   issue_idem  POST /api/payments/issue                (bearer token, a fresh Idempotency-Key each time)
--
-- BENCH_TARGETS is a file of "token transactionId" lines written by scripts/bench.py.
-- done() prints one line "BENCH_RESULT {json}" that scripts/bench.py parses.

local mode = os.getenv("BENCH_MODE") or "live"
local targets_path = os.getenv("BENCH_TARGETS")
local run_id = os.getenv("BENCH_RUN_ID") or "run"
local issue_body = '{"productType":"STUDY","productId":"study_123","amount":50000}'

local next_thread_id = 0
function setup(thread)
   thread:set("thread_id", next_thread_id)
   next_thread_id = next_thread_id + 1
end

local targets = {}
local counter = 0

function init(args)
   if mode ~= "live" then
      for line in io.lines(targets_path) do
         local token, tid = line:match("^(%S+)%s+(%S+)$")
         if token then
            targets[#targets + 1] = { token = token, tid = tid }
         end
      end
      if #targets == 0 then
         error("no targets in " .. tostring(targets_path))
      end
   end
   -- threads start at different targets
   counter = (thread_id or 0) * 7919
end

function request()
   counter = counter + 1
   if mode == "live" then
      return wrk.format("GET", "/health/live")
   end
   local t = targets[(counter % #targets) + 1]
   if mode == "status" then
      return wrk.format("GET", "/api/payments/" .. t.tid .. "/status", { ["Authorization"] = "Bearer " .. t.token })
   end
   local headers = { ["Authorization"] = "Bearer " .. t.token, ["Content-Type"] = "application/json" }
   if mode == "issue_idem" then
      headers["Idempotency-Key"] = string.format("bench-%s-%d-%d", run_id, thread_id or 0, counter)
   end
   return wrk.format("POST", "/api/payments/issue", headers, issue_body)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"mean_us":%.1f,"p50_us":%d,"p90_us":%d,' ..
      '"p99_us":%d,"max_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"status_errors":%d,' ..
      '"timeouts":%d}\n',
      summary.requests, summary.duration, summary.bytes, latency.mean,
      latency:percentile(50.0), latency:percentile(90.0), latency:percentile(99.0), latency.max,
      e.connect, e.read, e.write, e.status, e.timeout))
end
