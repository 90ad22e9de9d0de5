-- What the batch e2e drivers share: run a bundled runbook against an in-process simulator (as
-- `t2t run NAME --sim` would), and write the simulator's whole state to a file (a simulator
-- started without a state file saves nothing on its own, which keeps a 200-user preparation
-- fast: no save after every write).
local M = {}

-- run(s, name, args, extra) -> exit code; prints "== NAME ... -> rc N" after the runbook's output.
function M.run(s, name, args, extra)
  local rb = require "t2t.runbook"
  local decl = assert(rb.load(name))
  local opts = { sim = true, sim_instance = s, yes = true }
  for k, v in pairs(extra or {}) do opts[k] = v end
  local params = assert(rb.parse_args(decl, args, opts))
  local code = rb.execute(decl, params, opts)
  io.write(string.format("== %s %s -> rc %d\n", name, table.concat(args, " "), code))
  io.flush()
  return code
end

-- capture(s, name, args, extra) -> exit code, what the runbook printed (stdout).
function M.capture(s, name, args, extra)
  local buf, write = {}, io.write
  io.write = function(...)                        -- luacheck: ignore 122
    for i = 1, select("#", ...) do buf[#buf + 1] = tostring((select(i, ...))) end
    return io.stdout
  end
  local ok, code = pcall(M.run, s, name, args, extra)
  io.write = write                                -- luacheck: ignore 122
  if not ok then error(code, 0) end
  return code, table.concat(buf)
end

-- tap(test): ok/not ok lines for a driver's checks, counted like lib.sh's.
function M.tap(test)
  return function(cond, name, detail)
    if cond then print("ok - " .. test .. ": " .. name)
    else
      print("not ok - " .. test .. ": " .. name)
      for l in tostring(detail or ""):gmatch("[^\n]+") do print("#   " .. l) end
    end
    return cond
  end
end

-- The population (docs in tests/e2e/test_batch.sh): 200 source mailboxes u001..u200 and the
-- source-side conditions of the documented exceptions (ms-setup-and-prep.md §8):
--   u005 a demoted archive            UserAlreadyHasDemotedArchiveException
--   u015 an internal move running     SourceMailboxAlreadyBeingMovedPermanentException
--   u025 maintenance mid-move         MailboxIsNotInExpectedDBException
--   u035 an aux archive appears       SourceAuxArchiveIsProvisionedDuringCrossTenantMovePermanentException
--   u055 aux archives (and out of scope, below: AuxArchiveNotFoundInTargetRecipientException)
--   u105 skipped items                needs approval (Data Consistency Score Investigate)
--   u115 a stall                      StalledDueToTarget_DiskLatency, then it goes on
-- and a delegate chain across the waves: u010 (wave1) has FullAccess on u150 (wave2), u151 is
-- u150's Send on Behalf delegate and u152's calendar delegate: planning moves u010 to wave2.
function M.scenario(n)
  n = n or 200
  local steps, MB = {}, 1048576
  for i = 1, n do
    local c = { tenant = "contoso", alias = string.format("u%03d", i), display_name = string.format("User %03d", i),
                TotalItemSize = (50 + (i * 37) % 3000) * MB, ItemCount = 1000 + (i * 53) % 20000 }
    if i % 7 == 0 then c.archive = true end
    steps[#steps + 1] = { create = c }
  end
  local function set(alias, props)
    if tonumber(alias:sub(2)) <= n then steps[#steps + 1] = { update = { tenant = "contoso", identity = alias, set = props } } end
  end
  set("u005", { demoted_archive = true })
  set("u015", { _InternalMoveSeconds = 3600 })
  set("u025", { _MaintenanceAfter = 300 })
  set("u035", { archive = true, aux_archives = 1, _AuxGrowthAfter = 300 })
  set("u055", { archive = true, aux_archives = 2 })
  set("u105", { _BadItems = 3, _LargeItems = 1 })
  set("u115", { _StallSeconds = 600 })
  set("u150", { full_access = { "u010" }, send_on_behalf = { "u151" } })
  set("u152", { _CalendarDelegates = { "u151" } })
  return { steps = steps }
end

-- write_csv(path, n): SourceUser,Batch -- u001..u100 in wave1, the rest in wave2.
function M.write_csv(path, n)
  local f = assert(io.open(path, "w"))
  f:write("SourceUser,Batch\n")
  for i = 1, n or 200 do f:write(string.format("u%03d@contoso.com,%s\n", i, i <= 100 and "wave1" or "wave2")) end
  f:close()
end

-- break_targets(s): after prepare-users, the target-side and scope conditions, as they happen:
--   u045, u055 taken out of the scope group   MailboxNotInCrossTenantMigrationScopeException
--   u065 the target's ExchangeGuid cleared    MissingExchangeGuidException
--   u075 a source-domain proxy on the target  NotAcceptedDomainException
--   u085 its cross-tenant licence removed     CrossTenantMigrationWithoutLicensePermanentException
--   u095 already in a batch made in the EAC   UserDuplicateInOtherBatchException
function M.break_targets(s)
  local connect = require "t2t.connect"
  local opts = { sim = true, sim_instance = s }
  local src, tgt = assert(connect.profile("contoso", opts)), assert(connect.profile("fabrikam", opts))
  for _, u in ipairs { "u045", "u055" } do
    assert(src.exo:invoke("Remove-DistributionGroupMember", { Identity = "T2T-Migration-Scope", Member = u .. "@contoso.com" }))
  end
  local function patch(who, body) assert(s:control("PATCH", "/_sim/recipients/fabrikam/" .. who .. "%40fabrikam.com", body)) end
  patch("u065", { ExchangeGuid = "00000000-0000-0000-0000-000000000000" })
  patch("u075", { add_addresses = { "smtp:u075@contoso.com" } })
  patch("u085", { licenses = {} })
  local endpoint = assert(tgt.exo:invoke("Get-MigrationEndpoint", {}))[1].Identity
  assert(tgt.exo:invoke("New-MigrationBatch", { Name = "eac-pilot", SourceEndpoint = endpoint,
    CSVData = "EmailAddress\r\nu095@fabrikam.com\r\n", TargetDeliveryDomain = "fabrikam.onmicrosoft.com" }))
end

-- save(s, path): GET /_sim/state?secrets=true, written as it came (mode 0600).
function M.save(s, path)
  local key = s:control_header():match(":%s*(.+)$")
  local r = assert(require("t2t.http").request { method = "GET", url = s.base_url .. "/_sim/state?secrets=true",
    headers = { ["x-t2t-sim-control"] = key }, ca_file = s.ca_file, timeout = 120 })
  assert(r.status == 200, "GET /_sim/state: " .. tostring(r.status))
  assert(require("t2t.core.fs").write_private(path, r.body))
end

return M
