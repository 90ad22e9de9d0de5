-- prepare-users against an in-process simulator with injected faults, re-run as an admin would
-- (--only-failed) until the failures left are the ones the population plants:
--   build/t2t tests/e2e/users_faults.lua STATE.json FAULTS REPORT ARGS...
-- The state is saved at the end for tests/e2e/test_users.sh to compare with a clean run.
local state, faults, report = arg[1], arg[2], arg[3]
local args = {}
for i = 4, #arg do args[#args + 1] = arg[i] end
local rb = require "t2t.runbook"
local s = assert(require("t2t.sim").start { state = state, faults = faults })
local function run(extra)
  local decl = assert(rb.load("prepare-users"))
  local opts = { sim = state, sim_instance = s, yes = true, output = "json" }
  local a = { "--report", report }
  for _, x in ipairs(args) do a[#a + 1] = x end
  for _, x in ipairs(extra) do a[#a + 1] = x end
  local params = assert(rb.parse_args(decl, a, opts))
  return require("t2t.context").new(opts, decl):execute(decl, params)
end
local codes = { run {} }
for _ = 1, 3 do codes[#codes + 1] = run { "--only-failed" } end
assert(s:stop())
io.stderr:write("prepare-users under faults exited ", table.concat(codes, ", "), "\n")
