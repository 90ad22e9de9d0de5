-- The batch e2e test's starting point, made once: a simulator seeded with the population of
-- batch_lib.scenario, the tenant setup, export-users (with the users CSV and its Batch column)
-- and prepare-users as the two admins run them, then the target-side conditions planted
-- (batch_lib.break_targets); the state is written to DIR/prepared.json beside DIR/users.csv,
-- DIR/coll.jsonl (the collection file migrate-batch reads) and the hand-off files.
--   build/t2t tests/e2e/batch_prep.lua DIR [USERS] [SPEED]
local dir, n, speed = arg[1], tonumber(arg[2]) or 200, tonumber(arg[3]) or 50000
local lib = require "tests.e2e.batch_lib"
local sim = require "t2t.sim"
-- seeded mailboxes beside ours give the tenants licences enough for 200 more users
local s = assert(sim.start { users = 120, seed = 11, speed = speed, scenario = lib.scenario(n), dns = false })
local ok, err = pcall(function()
  lib.write_csv(dir .. "/users.csv", n)
  local h, sec = dir .. "/h.json", dir .. "/h.secret"
  assert(lib.run(s, "setup-target", { "--handoff", h, "--secret-file", sec, "--skip-endpoint" }) == 0)
  assert(lib.run(s, "setup-source", { "--handoff", h, "--consent", "--create-scope-group" }) == 0)
  assert(lib.run(s, "setup-target", { "--handoff", h, "--secret-file", sec }) == 0)
  assert(lib.run(s, "export-users", { "--csv", dir .. "/users.csv", "--add-to-scope", "--out", dir .. "/coll.jsonl" }) == 0)
  assert(lib.run(s, "prepare-users", { "--from", dir .. "/coll.jsonl", "--domain-map", "contoso.com=fabrikam.com",
                                       "--license", "ctudm" }) == 0)
  lib.break_targets(s)
  lib.save(s, dir .. "/prepared.json")
end)
s:stop()
if not ok then io.stderr:write("batch_prep: ", tostring(err), "\n") os.exit(1) end
