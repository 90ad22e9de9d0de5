-- Re-run setup-target and setup-source against a finished setup and list, from the simulator's
-- request log, every request that could change something (anything but reads and tokens):
--   build/t2t tests/e2e/setup_rerun_log.lua STATE.json HANDOFF SECRET_FILE
-- Prints "changing requests: N" and each one; exits 1 when N > 0 or a runbook fails.
local state, handoff, secret_file = arg[1], arg[2], arg[3]
local sim = require "t2t.sim"
local rb = require "t2t.runbook"
local s = assert(sim.start { state = state, log = true })
local function run(name, args)
  local decl = assert(rb.load(name))
  local opts = { sim = state, sim_instance = s, yes = true, output = "json" }
  local params = assert(rb.parse_args(decl, args, opts))
  return require("t2t.context").new(opts, decl):execute(decl, params)
end
local rc = run("setup-target", { "--handoff", handoff, "--secret-file", secret_file })
rc = math.max(rc, run("setup-source", { "--handoff", handoff, "--consent", "--create-scope-group" }))
local log = assert(s:control("GET", "/_sim/log?since=0"))
local entries = log.value or log.entries or log
local READ = { GET = true, HEAD = true }
local bad, unnamed, n = {}, 0, 0
for _, e in ipairs(entries) do
  n = n + 1
  local cmdlet = e.cmdlet or e.CmdletName
  local changing
  if e.service == "login" or e.service == "control" then changing = false
  elseif e.service == "exo" and not cmdlet then
    changing = false; unnamed = unnamed + 1
    print(string.format("  exo request without a cmdlet: %s %s -> %s", e.method, e.path, tostring(e.status)))
  elseif e.service == "exo" then changing = not (cmdlet:match("^Get%-") or cmdlet:match("^Test%-"))
  else changing = not READ[e.method] end
  if changing then bad[#bad + 1] = string.format("%s %s %s %s", e.method, e.service, e.path, cmdlet or "") end
end
s:stop { save = false }
print("requests: " .. n)
print("changing requests: " .. #bad)
print("exo requests without a cmdlet name in the log: " .. unnamed)
for _, b in ipairs(bad) do print("  " .. b) end
os.exit((rc == 0 and #bad == 0) and 0 or 1)
