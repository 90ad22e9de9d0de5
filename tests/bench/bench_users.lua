-- bench: prepare-users on 2,000 users against the simulator with 20 ms latency and its default
-- Exchange Online limit of 3 requests in flight per tenant (issue 10):
--   prep_ratio = wall time of prepare-users / (EXO calls x 0.020 s / 3)      (<= 1.2 wanted)
-- EXO calls are counted in the client: every InvokeCommand POST t2t.exo sends (pages and
-- retries included).
-- Then, in a child t2t against a standalone `t2t sim --users 100000` (so the simulator's memory
-- is not counted): prep_rss_mb_100k = peak RSS of exporting and mapping 100k users (<= 200): the
-- source read page by page into a spool file, collisions from the names, every target mapped --
-- prepare-users' work before its first change.
local N = tonumber(os.getenv("T2T_BENCH_PREP_USERS")) or 2000
local BIG = tonumber(os.getenv("T2T_BENCH_RSS_USERS")) or 100000
local T2T = os.getenv("T2T") or "build/t2t"
local t2t = require "t2t"
local rb = require "t2t.runbook"
local cjson = require "cjson"

local dir = os.tmpname()
os.remove(dir)
assert(require("t2t.core.fs").mkdir(dir, tonumber("700", 8)))
local MAP = "contoso.com=fabrikam.com,contoso.net=fabrikam.com,contoso-eu.com=fabrikam.com"

-- Count the POSTs of every Exchange Online client made from here on.
local exo_calls = 0
local exo = require "t2t.exo"
local new = exo.new
exo.new = function(o)
  local c = new(o)
  local post = c.post
  c.post = function(...) exo_calls = exo_calls + 1 return post(...) end
  return c
end

local function run(s, name, args)
  local decl = assert(rb.load(name))
  local opts = { sim = true, sim_instance = s, yes = true }
  local params = assert(rb.parse_args(decl, args, opts))
  local out = io.output()
  io.output("/dev/null")
  local code = require("t2t.context").new(opts, decl):execute(decl, params)
  io.output(out)
  return code
end

local s = assert(require("t2t.sim").start { users = N, seed = 1, latency = 20 })
local h = dir .. "/h.json"
run(s, "setup-target", { "--handoff", h, "--secret-file", h .. ".secret", "--skip-endpoint" })
assert(run(s, "setup-source", { "--handoff", h, "--consent", "--create-scope-group" }) == 0, "setup-source")
local exo0 = exo_calls
local t0, c0 = t2t.now(), os.clock()
local code = run(s, "prepare-users", { "--all", "--domain-map", MAP, "--report", dir .. "/r.csv" })
local wall, cpu = t2t.now() - t0, os.clock() - c0
s:stop()
local calls = exo_calls - exo0
local ideal = calls * 0.020 / 3
io.write(string.format("bench: prep_users = %d (prepare-users exit %d)\n", N, code))
io.write(string.format("bench: prep_exo_calls = %d\n", calls))
io.write(string.format("bench: prep_wall_s = %.1f\n", wall))
io.write(string.format("bench: prep_ratio = %.2f\n", wall / ideal))
-- CPU of this process (t2t and the in-process simulator's thread) during the run: read with
-- prep_wall_s, it says whether the run waited on the simulated latency or on a busy machine
io.write(string.format("bench: prep_cpu_s = %.1f\n", cpu))

---------------------------------------------------------------------------------------------
-- Memory: a standalone simulator with BIG users, and a child t2t that exports and maps them.
local cfg = dir .. "/cfg.lua"
local simout = dir .. "/sim.out"
local sh = string.format("%s sim --users %d --seed 1 --write-config %s > %s 2>&1 & echo $!", T2T, BIG, cfg, simout)
local p = assert(io.popen(sh))
local pid = p:read("l")
p:close()
local deadline = t2t.now() + 120
while t2t.now() < deadline do
  local f = io.open(cfg, "r")
  if f then f:close() break end
  t2t.sleep(0.25)
end
local code2 = ([[
-- what prepare-users does before its first change, at 100k: the source's users read page by
-- page into a spool file, the collisions found from their names, each target mapped
local function kb(k) for l in io.lines("/proc/self/status") do
  local v = l:match("^" .. k .. ":%s*(%d+)") if v then return tonumber(v) end end end
local session = require "t2t.tenant.session"
local mailuser = require "t2t.mailuser"
local map = require "t2t.mailuser.map"
local function open(name)
  local ctx = { opts = { config = CFG, profile = name }, say = function() end, log = require "t2t.log",
                plan = require("t2t.plan").new { dry_run = true, out = function() end }, fail = error }
  return assert(session.open(ctx, name == "contoso" and "source" or "target", name))
end
local src, tgt = open("contoso"), open("fabrikam")
local t0 = require("t2t").now()
local domains = {}
for pair in (MAP):gmatch("[^,]+") do domains[#domains + 1] = pair end
local rules = assert(mailuser.rules(tgt, { domains = domains }, { domain = src.domain }))
local spool = SPOOL
local w = assert(mailuser.collection_writer(spool, { depth = "identity" }))
local _, failures = assert(mailuser.export(src, { all = true }, { depth = "identity", scope = false,
                                                                  each = function(u) assert(w:add(u)) end }))
assert(w:close())
local users = mailuser.file_users(spool)
local col, n = map.collider(rules), 0
assert(users.each(function(u, i) col:add(u, i); n = n + 1 end))
local clash, ok = col:problems(), 0
assert(users.each(function(u, i)
  local m = map.map(u, rules)
  if #m.problems == 0 and not clash[i] then ok = ok + 1 end
end))
io.write(string.format("%d %d %d %.1f\n", n, ok, kb("VmHWM"), require("t2t").now() - t0))
]]):gsub("CFG", string.format("%q", cfg)):gsub("MAP", string.format("%q", MAP))
  :gsub("SPOOL", string.format("%q", dir .. "/spool.jsonl"))
local script = dir .. "/rss.lua"
local f = assert(io.open(script, "w"))
f:write(code2)
f:close()
local c = assert(io.popen(T2T .. " " .. script .. " 2>&1"))
local res = c:read("a")
c:close()
if pid then os.execute("kill -INT " .. pid .. " 2>/dev/null") end
local n, okn, hwm, secs = res:match("^(%d+) (%d+) (%d+) (%S+)")
if n then
  io.write(string.format("bench: prep_rss_users = %s (%s mapped, %.1f s)\n", n, okn, tonumber(secs)))
  io.write(string.format("bench: prep_rss_mb_100k = %.0f\n", tonumber(hwm) / 1024))
else
  io.write("bench: prep_rss_mb_100k = error (", res:gsub("\n", " "):sub(1, 300), ")\n")
end
os.execute("rm -rf '" .. dir .. "'")
