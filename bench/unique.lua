-- wrk script: POST /api/leads where every body is a new visitor, with its own email address
-- and its own phone number, so the service never merges two submissions into one lead.
--
--   wrk -t2 -c64 -d10s --latency -s bench/unique.lua http://127.0.0.1:PORT -- BASE THREADS TAG
--
-- Request i (BASE + n * THREADS + thread index) gets email TAG<i>@example.com and phone
-- +1 212 XXX XXXX with exchange 200 + i // 10000 and line i % 10000: eight million numbers
-- (i < 8,000,000) that phonenumbers accepts as valid (bench/intake.py checks a sample).
-- done() prints one JSON line, prefixed "wrk-json ", that bench/intake.py reads.

local threads = {}

function setup(thread)
   thread:set("thread_index", #threads)
   table.insert(threads, thread)
end

function init(args)
   base = tonumber(args[1] or "0")
   stride = tonumber(args[2] or "1")
   tag = args[3] or "w"
   counter = 0
end

function request()
   local i = base + counter * stride + thread_index
   counter = counter + 1
   local phone = string.format("+1 212 %03d %04d", 200 + math.floor(i / 10000), i % 10000)
   local body = string.format(
      '{"name":"Bench Visitor %d","email":"%s%d@example.com","phone":"%s",'
         .. '"consent":true,"message":"Is dry needling right for my lower back?"}',
      i, tag, i, phone)
   return wrk.format("POST", "/api/leads", {["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      'wrk-json {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,'
         .. '"p99_us":%d,"max_us":%d,"mean_us":%.1f,"connect":%d,"read":%d,"write":%d,'
         .. '"status":%d,"timeout":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
      latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
