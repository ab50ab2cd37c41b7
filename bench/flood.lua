-- wrk script for the flood benchmark (bench/flood.py): POST /api/leads as fast as wrk can,
-- every body a new visitor (as bench/unique.lua), sent through X-Forwarded-For as
--
--   limited  - one fixed client address (ADDRESS): all but its first 5 get 429;
--   honeypot - a new address per request (10.x.y.z), hidden `website` field filled in, so
--              every one is accepted (201) and stored flagged as spam.
--
--   wrk -t2 -c32 -d10s -s bench/flood.lua http://127.0.0.1:PORT -- BASE THREADS TAG MODE [ADDRESS]
--
-- done() prints one JSON line, prefixed "wrk-json ", with the count of each status.

local threads = {}

function setup(thread)
   thread:set("thread_index", #threads)
   table.insert(threads, thread)
end

function init(args)
   base = tonumber(args[1] or "0")
   stride = tonumber(args[2] or "1")
   tag = args[3] or "f"
   mode = args[4] or "limited"
   address = args[5] or "192.0.2.1"
   counter = 0
   statuses = {}
end

function request()
   local i = base + counter * stride + thread_index
   counter = counter + 1
   local phone = string.format("+1 212 %03d %04d", 200 + math.floor(i / 10000), i % 10000)
   local extra = ""
   local from = address
   if mode == "honeypot" then
      extra = ',"website":"http://cheap-pills.example"'
      from = string.format("10.%d.%d.%d", math.floor(i / 65536) % 256,
                           math.floor(i / 256) % 256, i % 256)
   end
   local body = string.format(
      '{"name":"Bench Visitor %d","email":"%s%d@example.com","phone":"%s",'
         .. '"consent":true,"message":"Is dry needling right for my lower back?"%s}',
      i, tag, i, phone, extra)
   return wrk.format("POST", "/api/leads",
                     {["Content-Type"] = "application/json", ["X-Forwarded-For"] = from}, body)
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
   local totals = {}
   for _, thread in ipairs(threads) do
      local counts = thread:get("statuses")
      for status, n in pairs(counts) do
         totals[status] = (totals[status] or 0) + n
      end
   end
   local parts = {}
   for status, n in pairs(totals) do
      table.insert(parts, string.format('"%d":%d', status, n))
   end
   local e = summary.errors
   io.write(string.format(
      'wrk-json {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d,'
         .. '"connect":%d,"read":%d,"write":%d,"timeout":%d,"statuses":{%s}}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
      latency.max, e.connect, e.read, e.write, e.timeout, table.concat(parts, ",")))
end
