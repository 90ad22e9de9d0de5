-- HTTP benchmarks against the embedded HTTPS server on loopback (run: build/t2t tests/bench/bench_http.lua).
--   http_parallel_ratio  2,000 requests, 20 ms server latency, concurrency 50:
--                        wall time / ideal (2000 * 0.02 / 50 s).  Target <= 1.25.
--   throttled_share      the server takes at most 10 requests at once and answers 429 beyond;
--                        a client with adaptive per-host concurrency under demand 50: share of
--                        requests throttled once it has settled (after a warm-up).  Target < 5%.
package.path = "./?.lua;" .. package.path
local t2t = require "t2t"
local http = require "t2t.http"
local env = require "tests.lua.handlers.http_env"

local srv, base = env.start { threads = 2 }   -- the client is measured, not the server
local ca = env.certs().ca

local function range(n)
  local t = {}
  for i = 1, n do t[i] = i end
  return t
end

local function check(res, what)
  for i, r in ipairs(res) do
    if not (r.ok and r.value == 200) then
      error(("%s: item %d failed: %s"):format(what, i, tostring(r.err or r.value)))
    end
  end
end

-- (a) the scheduler and curl multi against pure server latency
do
  local n, latency, conc = 2000, 0.02, 50
  local url = base .. "/delay?s=" .. latency
  local t0 = t2t.now()
  local res = t2t.parallel(range(n), function()
    local r, err = http.request { url = url, ca_file = ca, timeout = 30 }
    return r and r.status or err
  end, { concurrency = conc })
  local wall = t2t.now() - t0
  check(res, "http_parallel_ratio")
  print(("bench: http_parallel_ratio = %.3f"):format(wall / (n * latency / conc)))
end

-- (c) adaptive concurrency against a concurrency limit of 10
do
  local c = http.client { service = "bench", ca_file = ca,
                          retry = { max_attempts = 20, max_time = 120, base_delay = 0.05 } }
  local url = base .. "/limit?max=10&s=0.02&after=0.05"
  local function run(n)
    local res = t2t.parallel(range(n), function()
      local r, err = c:request { url = url }
      return r and r.status or err
    end, { concurrency = 50 })
    check(res, "throttled_share")
  end
  run(300)                               -- warm-up: slow start, first cuts
  local s0 = c.stats.throttled
  local n = 1500
  run(n)
  print(("bench: throttled_share = %.4f"):format((c.stats.throttled - s0) / n))
end

srv:stop()
env.cleanup()
