-- bench: one batch-status refresh of a 2,000-user batch against the simulator with 20 ms of
-- latency per call and its default limit of 3 Exchange Online requests in flight (issue 11):
--   batch_status_ms_2000 = wall time of `batch-status` on a batch of 2,000 users while the
--   endpoint's 100 slots sync and 1,900 wait (aim: < 2,000 ms: it must stay interactive).
-- The batch is made directly (a scenario for the target mail users, New-MigrationBatch for the
-- batch), not by the users runbooks: only the refresh is measured, after one warm-up refresh
-- (the token).  Also: batch_status_exo_calls, the calls one refresh makes.
local N = tonumber(os.getenv("T2T_BENCH_BATCH_USERS")) or 2000
local t2t = require "t2t"
local cjson = require "cjson"

local dir = os.tmpname()
os.remove(dir)
assert(require("t2t.core.fs").mkdir(dir, tonumber("700", 8)))

-- a bundled runbook as `t2t run NAME --sim` runs it, its output kept out of the bench's
local function run(s, name, args) return (require("tests.e2e.batch_lib").capture(s, name, args)) end

local s = assert(require("t2t.sim").start { users = N, seed = 1, speed = 1, dns = false })
local h = dir .. "/h.json"
run(s, "setup-target", { "--handoff", h, "--secret-file", h .. ".secret", "--skip-endpoint" })
assert(run(s, "setup-source", { "--handoff", h, "--consent", "--create-scope-group" }) == 0, "setup-source")
assert(run(s, "setup-target", { "--handoff", h, "--secret-file", h .. ".secret" }) == 0, "setup-target")

-- the target mail users (GUIDs, X500, a licence) and the sources in the scope group, straight
-- into the state: building them is not what is measured
local state = assert(s:control("GET", "/_sim/state?secrets=true"))
local src
for _, t in pairs(state.tenants) do
  if t.name == "contoso" then src = t end
end
local group
for id, o in pairs(src.dir.objects) do if o.displayName == "T2T-Migration-Scope" then group = id end end
local steps, addrs = {}, {}
for _, r in pairs(src.exo.recipients) do
  if tostring(r.RecipientTypeDetails):find("Mailbox$") and #addrs < N then
    local alias = string.format("m%05d", #addrs + 1)
    addrs[#addrs + 1] = alias .. "@fabrikam.com"
    steps[#steps + 1] = { create = { tenant = "fabrikam", kind = "MailUser", alias = alias, primary = addrs[#addrs],
      external = r.PrimarySmtpAddress, copy_guids_from = "contoso/" .. r.Guid, licenses = { "ctudm" },
      add_addresses = { "x500:" .. r.LegacyExchangeDN } } }
  end
end
assert(s:control("POST", "/_sim/scenario", { steps = steps }))
if group then
  state = assert(s:control("GET", "/_sim/state?secrets=true"))
  for _, t in pairs(state.tenants) do
    if t.name == "contoso" then
      t.dir.members[group] = t.dir.members[group] or {}
      for _, r in pairs(t.exo.recipients) do
        if tostring(r.RecipientTypeDetails):find("Mailbox$") then t.dir.members[group][r.ExternalDirectoryObjectId] = true end
      end
    end
  end
  assert(s:control("PUT", "/_sim/state", cjson.encode(state)))
end
local c = assert(require("t2t.connect").profile("fabrikam", { sim = true, sim_instance = s }))
local ep = assert(c.exo:invoke("Get-MigrationEndpoint", {}))[1].Identity
assert(c.exo:invoke("New-MigrationBatch", { Name = "bench", SourceEndpoint = ep, AutoStart = true,
  TargetDeliveryDomain = "fabrikam.onmicrosoft.com",
  CSVData = "EmailAddress\r\n" .. table.concat(addrs, "\r\n") .. "\r\n" }))

assert(s:control("POST", "/_sim/faults", { latency = "20" }))
local args = { "--target", "fabrikam", "--batch", "bench", "--batches", dir .. "/none.json", "--rows", "15" }
run(s, "batch-status", args)                              -- warm-up: the token, the first reads
local log0 = assert(s:control("GET", "/_sim/log?since=" .. math.maxinteger)).last
local t0 = t2t.now()
local code = run(s, "batch-status", args)
local wall = t2t.now() - t0
local exo_calls = 0                -- the refresh's Exchange Online requests, from the simulator's log
for _, e in ipairs(assert(s:control("GET", "/_sim/log?since=" .. log0)).value) do
  if tostring(e.host):find("outlook", 1, true) then exo_calls = exo_calls + 1 end
end
s:stop()
os.remove(dir .. "/h.json.secret")
os.remove(dir .. "/h.json")
os.remove(dir)
io.write(string.format("bench: batch_status_users = %d (batch-status exit %d)\n", #addrs, code))
io.write(string.format("bench: batch_status_exo_calls = %d\n", exo_calls))
io.write(string.format("bench: batch_status_ms_2000 = %d\n", math.floor(wall * 1000 + 0.5)))
