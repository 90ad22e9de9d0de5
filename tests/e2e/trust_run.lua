-- The setup sequence (setup-target first half, setup-source, setup-target with the endpoint)
-- against an in-process simulator on a state file, as tests/e2e/test_trust.sh and
-- tests/bench/bench_trust.sh need it:
--   build/t2t tests/e2e/trust_run.lua STATE HANDOFF [FAULTS [SEED [AUDIT]]]
-- Each runbook is re-run (as an admin would) up to three times while it fails.  Waits are made
-- short for tests (tenant settle 2 s, EXO backoff base 0.2 s); nothing else is changed.
-- Prints "trust: rc=N attempts=N resent=N" where `resent` counts non-idempotent requests that
-- reached the simulator more often than t2t attempted them (from the simulator's request log,
-- by client-request-id): libcurl's silent re-send shows there.  Exits 0 when every runbook
-- succeeded and nothing was re-sent.
local state, handoff, faults, seed, audit = arg[1], arg[2], arg[3], tonumber(arg[4]), arg[5]
if faults == "" then faults = nil end
if audit == "" then audit = nil end

-- Count every attempt t2t decides on for a request that may not repeat (resend = false).
local http = require "t2t.http"
local attempts, total = {}, 0
local request = http.request
http.request = function(req)
  if req.resend == false then
    local id = req.headers and req.headers["client-request-id"]
    if id then attempts[id] = (attempts[id] or 0) + 1 total = total + 1 end
  end
  return request(req)
end
local tenant = require "t2t.tenant"
local tenant_new = tenant.new
tenant.new = function(o) o.settle = o.settle or 2 o.poll = o.poll or 0.2 return tenant_new(o) end
local exo = require "t2t.exo"
local exo_new = exo.new
exo.new = function(o) o.retry_base = o.retry_base or 0.2 return exo_new(o) end

local sim = require "t2t.sim"
local rb = require "t2t.runbook"
local s = assert(sim.start { state = state, faults = faults, seed = seed, users = 3, log = true })
local function run(name, args)
  local code
  for _ = 1, 3 do
    local decl = assert(rb.load(name))
    local opts = { sim = state, sim_instance = s, yes = true, audit = audit }
    local params = assert(rb.parse_args(decl, args, opts))
    code = require("t2t.context").new(opts, decl):execute(decl, params)
    if code == 0 then return 0 end
  end
  return code
end
local secret = handoff .. ".secret"
local rc = run("setup-target", { "--handoff", handoff, "--secret-file", secret, "--skip-endpoint" })
if rc == 0 then rc = run("setup-source", { "--handoff", handoff, "--consent", "--create-scope-group" }) end
if rc == 0 then rc = run("setup-target", { "--handoff", handoff, "--secret-file", secret }) end

local log = assert(s:control("GET", "/_sim/log?since=0"))
local seen = {}
for _, e in ipairs(log.value or {}) do
  if e.crid and attempts[e.crid] then seen[e.crid] = (seen[e.crid] or 0) + 1 end
end
local resent = 0
for id, n in pairs(seen) do
  if n > attempts[id] then
    resent = resent + 1
    io.stderr:write(string.format("re-sent: client-request-id %s reached the simulator %d times for %d attempts\n",
                                  id, n, attempts[id]))
  end
end
assert(s:stop())
print(string.format("trust: rc=%d attempts=%d resent=%d", rc, total, resent))
os.exit((rc == 0 and resent == 0) and 0 or 1)
