-- One wrk run, described by environment variables, summarised as one JSON line on stdout.
--   BENCH_AUTH   the Authorization header value
--   BENCH_METHOD GET (default) or POST; BENCH_BODY the request body (sent as JSON)
--   BENCH_PATHS  a file of request paths, one a line; each request takes one at random
--                (without it, every request goes to the URL's path)
-- No response() callback: defining one makes wrk hand every body to Lua, which would cost the
-- generator more than the 1 MB downloads it measures. Non-2xx answers count as status errors.

wrk.method = os.getenv("BENCH_METHOD") or "GET"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")
local body = os.getenv("BENCH_BODY")
if body then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

local paths_file = os.getenv("BENCH_PATHS")
if paths_file then
  local paths = {}
  for line in io.lines(paths_file) do
    paths[#paths + 1] = line
  end
  request = function()
    return wrk.format(nil, paths[math.random(#paths)])
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"errors":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.status + e.timeout))
end
