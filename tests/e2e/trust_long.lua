-- A runbook that outlives its tokens (issue 9, "long runs"): setup-target, then setup-source,
-- each run once against an in-process simulator whose tokens last LIFETIME seconds and whose
-- every answer takes LATENCY ms, so that each run spans several token lifetimes:
--   build/t2t tests/e2e/trust_long.lua STATE HANDOFF [LATENCY_MS [LIFETIME]]
-- Besides, before every 2nd Graph or Exchange call the simulator's clock jumps LIFETIME + 1 s
-- ahead (a laptop that slept, a clock set by NTP): every token the client holds is then expired
-- although the client cannot know it.  The client renews a token when half its lifetime has
-- passed (its own clock), so a jump finds a token in hand younger than that -- refused -- unless
-- the client renewed it just then.
-- Prints one line per runbook, "long NAME: rc=N failed=N lifetimes=N tokens=N refused=N seen=N":
-- lifetimes = the run's span in real time (the simulator's log, less the jumps and the time the
-- jump requests themselves took) / LIFETIME, tokens = tokens the simulator issued during it,
-- refused = 401s it answered, seen = 401s that reached the runbook through the Graph or Exchange
-- client (each renews its token before it expires, and once on a 401).
local state, handoff = arg[1], arg[2]
local latency, lifetime = tonumber(arg[3]) or 150, tonumber(arg[4]) or 3
local mono = require("t2t.core.sched").now

local seen, calls, jumped, s = 0, 0, 0, nil
local function count_401(obj, method)
  local inner = obj[method]
  obj[method] = function(self, ...)
    calls = calls + 1
    if calls % 2 == 0 then
      local t0 = mono()
      assert(s:control("POST", "/_sim/clock", { advance = lifetime + 1 }))
      jumped = jumped + lifetime + 1 + (mono() - t0)
    end
    local r, err = inner(self, ...)
    if r == nil and type(err) == "table" and tonumber(err.status) == 401 then seen = seen + 1 end
    return r, err
  end
  return obj
end
for _, m in ipairs { { "t2t.graph", "request" }, { "t2t.exo", "invoke" } } do
  local mod = require(m[1])
  local new = mod.new
  mod.new = function(...) return count_401(new(...), m[2]) end
end

local sim = require "t2t.sim"
local rb = require "t2t.runbook"
s = assert(sim.start { state = state, users = 3, log = true, latency = tostring(latency),
                       faults = "token_lifetime=" .. lifetime .. "s", key_type = "ed25519" })
local since, worst = 0, 0

local function run(name, args)
  local decl = assert(rb.load(name))
  local opts = { sim = state, sim_instance = s, yes = true }
  local params = assert(rb.parse_args(decl, args, opts))
  seen, jumped = 0, 0
  local ctx = require("t2t.context").new(opts, decl)
  local rc = ctx:execute(decl, params)
  local log = assert(s:control("GET", "/_sim/log?since=" .. since))
  local first, last, tokens, refused = nil, nil, 0, 0
  for _, e in ipairs(log.value or {}) do
    since = math.max(since, e.seq or 0)
    if e.service ~= "control" then
      first, last = first or e.t, e.t
      if e.service == "login" and e.method == "POST" and e.status == 200 then tokens = tokens + 1 end
      if e.status == 401 then refused = refused + 1 end
    end
  end
  local lifetimes = first and math.floor((last - first - jumped) / lifetime) or 0
  print(string.format("long %s: rc=%d failed=%d lifetimes=%d tokens=%d refused=%d seen=%d", name, rc,
                      ctx.plan.failed, lifetimes, tokens, refused, seen))
  if rc ~= 0 or ctx.plan.failed > 0 or seen > 0 then worst = 1 end
end

run("setup-target", { "--handoff", handoff, "--skip-endpoint" })
run("setup-source", { "--handoff", handoff, "--consent", "--create-scope-group" })
assert(s:stop())
os.exit(worst)
