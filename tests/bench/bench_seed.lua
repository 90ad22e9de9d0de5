-- bench: seeding the simulator's tenant pair with 100,000 source mailboxes (issue 5 target:
-- <= 10 s) and the memory it takes.  Runs in a child t2t so its peak RSS (VmHWM) is the seed's.
local N = tonumber(os.getenv("T2T_BENCH_SEED_USERS")) or 100000
local t2t = os.getenv("T2T") or "build/t2t"
local code = ([[
local function kb(k) for l in io.lines("/proc/self/status") do
  local v = l:match("^" .. k .. ":%s*(%d+)") if v then return tonumber(v) end end end
local rss0 = kb("VmRSS")
local clock = os.clock()
local state = require("t2t.sim.seed").pair { users = USERS, seed = 1 }
local secs = os.clock() - clock
io.write(string.format("%.3f %d %d\n", secs, kb("VmHWM") - rss0, kb("VmRSS") - rss0))
]]):gsub("USERS", tostring(N))
local p = assert(io.popen(t2t .. " -e '" .. code:gsub("'", "'\\''") .. "'"))
local out = p:read("a")
p:close()
local secs, hwm = out:match("^(%S+) (%d+) (%d+)")
if not secs then
  io.write("bench: seed_100k_seconds = error (", out, ")\n")
  return
end
io.write(string.format("bench: seed_100k_seconds = %.2f\n", tonumber(secs)))
io.write(string.format("bench: seed_100k_rss_mb = %.0f\n", tonumber(hwm) / 1024))
