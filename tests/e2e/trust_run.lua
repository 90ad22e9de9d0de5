-- The setup sequence (setup-target first half, setup-source, setup-target with the endpoint)
-- against an in-process simulator on a state file, as tests/e2e/test_trust.sh and
-- tests/bench/bench_trust.sh need it:
--   build/t2t tests/e2e/trust_run.lua STATE HANDOFF [--faults SPEC] [--seed N] [--audit FILE]
--                                     [--kill K:MS] [--check]
-- Each runbook is re-run (as an admin would) up to three times while it fails.  Waits are made
-- short for tests (tenant settle 2 s, EXO backoff base 0.2 s); nothing else is changed.  The
-- simulator's keys are Ed25519 (made at once; only t2t talks to it).
--   --kill K:MS   kill -9 this process MS ms after the K-th audit line is written (K = 0: after
--                 start-up), wherever it then is: a request in flight, the simulator saving its
--                 state, between two changes.  Kill points chosen by what the run has done, not
--                 by the clock, land alike on a loaded machine.
--   --check       before the run: the audit file holds whole JSON lines (it may lack the last
--                 change, never end with half a line) and the state file is complete JSON;
--                 after it: no temporary file of a killed save is left beside the state.
-- Prints "trust: rc=N attempts=N resent=N torn=N temps=N" where `resent` counts non-idempotent
-- requests that reached the simulator more often than t2t attempted them (from the simulator's
-- request log, by client-request-id): libcurl's silent re-send shows there; `torn` and `temps`
-- are what --check found (0 without it).  Exits 0 when every runbook succeeded and all is 0.
local state, handoff = arg[1], arg[2]
local o = {}
do
  local i = 3
  while arg[i] do
    local k = arg[i]:match("^%-%-(%w+)$")
    if k == "check" then o.check = true i = i + 1
    elseif k and arg[i + 1] then o[k] = arg[i + 1] i = i + 2
    else error("trust_run.lua: unexpected argument " .. arg[i]) end
  end
end
-- --audit is one of t2t's global options: the host takes it from the command line, wherever it
-- stands, and keeps it for library code (t2t.options).
o.audit = o.audit or require("t2t.options").current().audit
local seed = tonumber(o.seed)
local fs = require "t2t.core.fs"

-- What a kill may have left: half an audit line, a state that does not load.  -> list of findings
local function torn_files()
  local out = {}
  local text = o.audit and fs.read_file(o.audit, 64 * 1024 * 1024)
  if text and #text > 0 and text:sub(-1) ~= "\n" then out[#out + 1] = "the audit ends with half a line" end
  for line in (text or ""):gmatch("[^\n]+") do
    if not pcall(require("cjson").decode, line) then out[#out + 1] = "an audit line is not JSON: " .. line:sub(1, 60) end
  end
  if fs.mode(state) then
    local ok, err = require("t2t.sim.model").load(state)
    if not ok then out[#out + 1] = "the state: " .. tostring(err) end
  end
  return out
end

-- The temporary files of a save (STATE.t2tXXXXXX) beside the state.
local function temps()
  local dir, base = state:match("^(.*)/([^/]+)$")
  local n = 0
  for _, name in ipairs(fs.list(dir or ".") or {}) do
    if name:sub(1, #(base or state) + 4) == (base or state) .. ".t2t" then n = n + 1 end
  end
  return n
end

local torn = {}
if o.check then
  torn = torn_files()
  for _, t in ipairs(torn) do io.stderr:write("torn: ", t, "\n") end
end

-- kill -9 of this very process, MS ms from now, by a shell left running in the background.
local function kill_later(ms)
  local f = assert(io.open("/proc/self/stat"))
  local pid = assert(tonumber(f:read("a"):match("^(%d+)")))
  f:close()
  os.execute(string.format("(sleep %.3f; kill -9 %d) >/dev/null 2>&1 &", ms / 1000, pid))
end
if o.kill then
  local k, ms = o.kill:match("^(%d+):(%d+)$")
  k, ms = assert(tonumber(k), "--kill K:MS"), tonumber(ms)
  if k == 0 then kill_later(ms) end
  local plan = require "t2t.plan"
  local audit, lines = plan.audit, 0
  plan.audit = function(self, entry)
    local ok, err = audit(self, entry)
    if ok and self.audit_path then
      lines = lines + 1
      if lines == k then kill_later(ms) end
    end
    return ok, err
  end
end

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
tenant.new = function(t) t.settle = t.settle or 2 t.poll = t.poll or 0.2 return tenant_new(t) end
local exo = require "t2t.exo"
local exo_new = exo.new
exo.new = function(x) x.retry_base = x.retry_base or 0.2 return exo_new(x) end

local sim = require "t2t.sim"
local rb = require "t2t.runbook"
local s = assert(sim.start { state = state, faults = o.faults ~= "" and o.faults or nil, seed = seed, users = 3,
                             log = true, key_type = "ed25519" })
local function run(name, args)
  local code
  for _ = 1, 3 do
    local decl = assert(rb.load(name))
    local opts = { sim = state, sim_instance = s, yes = true, audit = o.audit }
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
local left = o.check and temps() or 0
print(string.format("trust: rc=%d attempts=%d resent=%d torn=%d temps=%d", rc, total, resent, #torn, left))
os.exit((rc == 0 and resent == 0 and #torn == 0 and left == 0) and 0 or 1)
