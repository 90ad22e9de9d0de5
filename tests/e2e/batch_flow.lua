-- The whole batch flow against an in-process simulator, as an admin runs it: migrate-batch,
-- watch, batch-fix, watch, batch-fix with the flags the remaining fixes need, watch,
-- batch-complete --wait.  With FAULTS (the users test's spec) every call may meet 429s, 503s,
-- resets, lost answers and replication lag; the final state must be the clean run's.  FRESH
-- (aliases, comma-separated) makes those users' target mail users new, as if prepare-users had
-- just made them: under lag= they are not listed yet when migrate-batch reads the target.
--   build/t2t tests/e2e/batch_flow.lua STATE.json DIR [FAULTS [FRESH]]
local state, dir, faults, fresh = arg[1], arg[2], arg[3], arg[4]
local lib = require "tests.e2e.batch_lib"
-- made "12 s from now": still hidden (lag 2 s) when migrate-batch lists the target, however slow
-- the machine (a sanitizer build) is to get there, and visible well within its 20 s settle window
if fresh and fresh ~= "" then lib.freshen(state, "fabrikam", fresh, os.time() + 12) end
local s = assert(require("t2t.sim").start { state = state, faults = faults, dns = false })
local bf = { "--batches", dir .. "/t2t-batches.json" }
local function with(args)
  local out = {}
  for _, x in ipairs(args) do out[#out + 1] = x end
  for _, x in ipairs(bf) do out[#out + 1] = x end
  return out
end
local watch = with { "--watch", "--interval", "0.3", "--timeout", "60", "--rows", "0" }
local codes = {}
local ok, err = pcall(function()
  codes[#codes + 1] = lib.run(s, "migrate-batch", with { "--from", dir .. "/coll.jsonl", "--domain-map", "contoso.com=fabrikam.com" })
  require("t2t").sleep(2.5)                    -- past the replication lag of the new batches
  lib.run(s, "batch-status", watch)
  codes[#codes + 1] = lib.run(s, "batch-fix", with {})
  lib.run(s, "batch-status", watch)
  codes[#codes + 1] = lib.run(s, "batch-fix", with { "--enable-archive", "--approve-skipped" })
  require("t2t").sleep(2.5)
  lib.run(s, "batch-status", watch)
  codes[#codes + 1] = lib.run(s, "batch-complete", with { "--wait", "--interval", "0.3", "--timeout", "60" })
end)
assert(s:stop())
io.stderr:write("batch flow exited ", table.concat(codes, ", "), "\n")
if not ok then io.stderr:write("batch_flow: ", tostring(err), "\n") os.exit(1) end
