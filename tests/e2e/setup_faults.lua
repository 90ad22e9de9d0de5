-- Run setup-target (first half), setup-source and setup-target against an in-process simulator
-- with injected faults, each runbook re-run (as an admin would) up to twice when it gives up:
--   build/t2t tests/e2e/setup_faults.lua STATE.json HANDOFF FAULTS
-- The state is saved at the end for tests/e2e/test_setup.sh to compare with a clean run.
local state, handoff, faults = arg[1], arg[2], arg[3]
local sim = require "t2t.sim"
local rb = require "t2t.runbook"
local s = assert(sim.start { state = state, faults = faults })
local function run(name, args)
  for attempt = 1, 3 do
    local decl = assert(rb.load(name))
    local opts = { sim = state, sim_instance = s, yes = true }
    local params = assert(rb.parse_args(decl, args, opts))
    local code = require("t2t.context").new(opts, decl):execute(decl, params)
    if code == 0 then return true end
    io.stderr:write(string.format("%s: attempt %d exited %d\n", name, attempt, code))
  end
  return false
end
local ok = run("setup-target", { "--handoff", handoff, "--secret-file", handoff .. ".secret", "--skip-endpoint" })
  and run("setup-source", { "--handoff", handoff, "--consent", "--create-scope-group" })
  and run("setup-target", { "--handoff", handoff, "--secret-file", handoff .. ".secret" })
assert(s:stop())
os.exit(ok and 0 or 1)
