-- The same job through the Graph backend (--backend graph: the crossTenantMigrationJob API,
-- beta; ms-setup-and-prep.md §11.1) for 20 of the prepared users, two of them with problems the
-- job's validation reports (an incomplete identity mapping: CTM-101; no cross-tenant licence:
-- EXCH-08): validate, fix, validate again and migrate, complete on the date, check.
--   build/t2t tests/e2e/batch_graph.lua STATE.json DIR      (TAP lines on stdout)
local state, dir = arg[1], arg[2]
local lib = require "tests.e2e.batch_lib"
local check = lib.tap("batch graph")
local s = assert(require("t2t.sim").start { state = state, dns = false })
local f = assert(io.open(dir .. "/graph.csv", "w"))
f:write("SourceUser,Batch\nu065@contoso.com,job\nu085@contoso.com,job\n")
for i = 121, 138 do f:write(string.format("u%03d@contoso.com,job\n", i)) end
f:close()
local bf = { "--batches", dir .. "/graph-batches.json", "--backend", "graph" }
local function args(t) for _, x in ipairs(bf) do t[#t + 1] = x end return t end
local ok, err = pcall(function()
  local code, out = lib.capture(s, "migrate-batch", args { "--csv", dir .. "/graph.csv", "--domain-map", "contoso.com=fabrikam.com" })
  check(code == 0, "migrate-batch --backend graph: the job is made and validated", out)
  check(out:find("+ create Graph migration job 'job'", 1, true) and out:find("validate Graph migration job 'job'", 1, true),
        "the job is created, then validated (validate, then migrate)", out)
  code, out = lib.capture(s, "batch-status", args {})
  check(code == 3 and out:find("ValidationFailed", 1, true), "batch-status: the job failed validation", out)
  check(out:find("CTM-101", 1, true) and out:find("MissingExchangeGuidException --", 1, true),
        "batch-status: the incomplete identity mapping (CTM-101, MissingExchangeGuid) is explained", out)
  check(out:find("CrossTenantMigrationWithoutLicensePermanentException --", 1, true), "batch-status: the missing licence (EXCH-08) is explained", out)
  code, out = lib.capture(s, "batch-fix", args {})
  check(code == 0 and out:find("migrate Graph migration job 'job'", 1, true),
        "batch-fix: both fixed, the job validated again and migrated", out)
  require("t2t").sleep(1)
  code, out = lib.capture(s, "batch-status", args { "--watch", "--interval", "0.3", "--timeout", "60", "--rows", "0" })
  check(code == 0 and out:find("20 synced", 1, true), "batch-status --watch: the 20 users synced", out)
  code, out = lib.capture(s, "batch-complete", args { "--wait", "--interval", "0.3", "--timeout", "60" })
  check(code == 0 and out:find("completeAfterDateTime", 1, true), "batch-complete: the job's completeAfterDateTime moved to now", out)
  code, out = lib.capture(s, "post-migration", args { "--no-dkim" })
  check(code == 0 and out:find("users converted            20", 1, true), "post-migration: the 20 users converted on both sides", out)
end)
s:stop()
check(ok, "the Graph flow ran to its end", err)
