-- bench: server_rps = requests/s the embedded server answers over HTTPS on loopback at
-- concurrency 32 with keep-alive (the median of 3 rounds of 20,000 requests), plus the server's
-- CPU time per request (the load generator's CPU is not in it: curl runs in its own process).
-- Load generator: `curl --parallel --parallel-max 32` (one multi handle, 32 kept-alive
-- connections); it is itself the bottleneck on 2 cores, so server_rps is a lower bound.
--   build/t2t tests/bench/bench_server.lua        (from the source tree root)
local server = require "t2t.core.server"

local N, C, ROUNDS = 20000, 32, 3

local env = require "tests.lua.handlers.http_env"     -- test CA and server certificate
local sh, readfile = env.sh, env.readfile

-- One round: N requests at concurrency C; returns requests/s and server CPU seconds used.
local function round(s, dir, scheme)
  local url = ("%s://127.0.0.1:%d/r?[1-%d]"):format(scheme, s:port(), N)
  local cpu0 = os.clock()
  local out = sh(("s=$(date +%%s%%N); curl -s --parallel --parallel-max %d --cacert %s/ca.pem " ..
    "-w '\\n%%{http_code}\\n' '%s' 2>%s/curl.err | grep -c '^200$'; e=$(date +%%s%%N); " ..
    "echo $(( (e - s) / 1000 ))"):format(C, dir, url, dir))
  local cpu = os.clock() - cpu0
  local ok, us = out:match("(%d+)%s+(%d+)")
  ok, us = tonumber(ok), tonumber(us)
  assert(ok == N, ("only %s of %d requests succeeded: %s"):format(ok, N, readfile(dir .. "/curl.err")))
  return N / (us / 1e6), cpu
end

local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

local tls = env.certs()
local dir, cert, key = tls.dir, tls.cert, tls.key

local function measure(opts, scheme)
  opts.handler_module = "tests.lua.handlers.server_hello"
  local s <close> = assert(server.start(opts))
  round(s, dir, scheme)                               -- warm-up (handshakes, allocator)
  local rps, cpu = {}, {}
  for i = 1, ROUNDS do
    rps[i], cpu[i] = round(s, dir, scheme)
  end
  assert(s:stats().requests == N * (ROUNDS + 1))
  return median(rps), median(cpu) / N * 1e6
end

local rps, us = measure({ cert_pem = cert, key_pem = key }, "https")
local rps2 = measure({ cert_pem = cert, key_pem = key, threads = 2 }, "https")
local plain = measure({}, "http")
env.cleanup()
print(("bench: server_rps = %.0f"):format(rps))
print(("bench: server_cpu_us_per_request = %.1f"):format(us))
print(("bench: server_rps_2threads = %.0f"):format(rps2))
print(("bench: server_rps_plain_http = %.0f"):format(plain))
