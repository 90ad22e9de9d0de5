-- The simulator's migration engine (t2t.sim.exo.moves) through the migration cmdlets and the
-- Graph job API: every documented exception raised by the condition that causes it
-- (ms-setup-and-prep.md §7-8), stalls, skipped items and approval, the endpoint's concurrency
-- limit, timing from mailbox size and speed, and the conversions on completion.
local lu = require "luaunit"
local exo = require "t2t.exo"
local cjson = require "cjson"
local model = require "t2t.sim.model"
local E = require "t2t.sim.exo.moves"
local env = require "tests.lua.handlers.sim_exo_env"
local new_sim, call, ok = env.new_sim, env.call, env.ok

local SPEED = 1000
local GB = 1073741824

-- A fresh pair set up for cross-tenant moves, and n plain source mailboxes (no holds, no
-- archive), each 1 GB with 14,000 items.
local function world(n)
  local sim = new_sim()
  env.setup_cross_tenant(sim)
  sim.state.migration = { speed = SPEED }
  local list = {}
  for _, r in pairs(sim.src.exo.recipients) do
    if r.RecipientTypeDetails == "UserMailbox" and not r.IsDirSynced and not r.LitigationHoldEnabled
       and #(r.InPlaceHolds or {}) == 0 and not r.DelayHoldApplied and not r.DelayReleaseHoldApplied
       and not r.ComplianceTagHoldApplied and (r.ArchiveGuid or model.ZERO_GUID) == model.ZERO_GUID
       and not r._OrgHolds then
      list[#list + 1] = r
    end
  end
  table.sort(list, function(a, b) return a.Name < b.Name end)
  local out = {}
  for i = 1, n do
    local r = list[i]
    r.TotalItemSize, r.ItemCount = GB, 14000
    out[i] = r
  end
  return sim, out
end

-- The target mail user of source mailbox r, in scope and licensed; -> its address.
local function prepare(sim, r, o)
  o = o or {}
  if not o.out_of_scope then ok(sim, sim.src, "Add-DistributionGroupMember", { Identity = "MigScope", Member = r.Name }) end
  ok(sim, sim.tgt, "New-MailUser", { Name = r.Alias, ExternalEmailAddress = r.PrimarySmtpAddress,
    PrimarySmtpAddress = r.Alias .. "@fabrikam.com" })
  ok(sim, sim.tgt, "Set-MailUser", { Identity = r.Alias, ExchangeGuid = not o.no_guid and r.ExchangeGuid or nil,
    ArchiveGuid = (r.ArchiveGuid or model.ZERO_GUID) ~= model.ZERO_GUID and r.ArchiveGuid or nil,
    EmailAddresses = { add = { "x500:" .. r.LegacyExchangeDN, "smtp:" .. r.Alias .. "@fabrikam.onmicrosoft.com" } } })
  if not o.unlicensed then r.PersistedCapabilities[#r.PersistedCapabilities + 1] = "ExchangeT2TMbxMove" end
  return r.Alias .. "@fabrikam.com"
end

local function batch(sim, name, addrs, extra)
  local p = { Name = name, SourceEndpoint = "ep", AutoStart = true,
              TargetDeliveryDomain = "fabrikam.onmicrosoft.com",
              CSVData = { Data = exo.base64_encode("EmailAddress\n" .. table.concat(addrs, "\n") .. "\n") } }
  for k, v in pairs(extra or {}) do p[k] = v end
  return ok(sim, sim.tgt, "New-MigrationBatch", p)[1]
end

local function user(sim, addr) return ok(sim, sim.tgt, "Get-MigrationUser", { Identity = addr })[1] end
local function bstatus(sim, name) return ok(sim, sim.tgt, "Get-MigrationBatch", { Identity = name })[1].Status end
local function later(sim, secs) sim.clock = sim.clock + secs / SPEED end
-- One 1 GB sync: BASE + 1 h of service time.
local SYNC = E.BASE + 3600

TestSimMigration = {}

function TestSimMigration.test_lifecycle_timing_and_conversion()
  local sim, rs = world(1)
  local r = rs[1]
  r.GrantSendOnBehalfTo = nil
  local addr = prepare(sim, r)
  lu.assertEquals(batch(sim, "b1", { addr }).Status, "Syncing")
  local u = user(sim, addr)
  lu.assertEquals(u.Status, "Syncing")
  later(sim, SYNC / 2)
  local st = ok(sim, sim.tgt, "Get-MigrationUserStatistics", { Identity = addr })[1]
  lu.assertTrue(st.PercentageComplete > 40 and st.PercentageComplete < 55, "half way: " .. st.PercentageComplete)
  lu.assertStrContains(st.EstimatedTotalTransferSize, "1 GB")
  later(sim, SYNC / 2 + 1)
  lu.assertEquals(user(sim, addr).Status, "Synced")
  lu.assertEquals(bstatus(sim, "b1"), "Synced")
  local mr = ok(sim, sim.tgt, "Get-MoveRequestStatistics", { Identity = addr })[1]
  lu.assertEquals(mr.PercentComplete, 95)
  lu.assertNotNil(mr.InitialSeedingCompletedTimestamp)
  ok(sim, sim.tgt, "Complete-MigrationBatch", { Identity = "b1" })
  lu.assertEquals(bstatus(sim, "b1"), "Completing")
  later(sim, E.FINAL + 1)
  lu.assertEquals(bstatus(sim, "b1"), "Completed")
  lu.assertEquals(user(sim, addr).Status, "Completed")
  -- target mail user -> mailbox; source mailbox -> mail user forwarding to the delivery domain
  lu.assertEquals(ok(sim, sim.tgt, "Get-Mailbox", { Identity = addr })[1].RecipientTypeDetails, "UserMailbox")
  local s = ok(sim, sim.src, "Get-MailUser", { Identity = r.Guid })[1]
  lu.assertEquals(s.ExternalEmailAddress, "SMTP:" .. r.Alias .. "@fabrikam.onmicrosoft.com")
end

-- A conditions table: what to plant, and the exception it must end in.
local PLANTED = {
  { "no ExchangeGuid", { no_guid = true }, "MissingExchangeGuidException" },
  { "out of the scope group", { out_of_scope = true }, "MailboxNotInCrossTenantMigrationScopeException" },
  { "no CTUDM licence", { unlicensed = true }, "CrossTenantMigrationWithoutLicensePermanentException" },
  { "demoted archive", { set = { DisabledArchiveGuid = "11111111-2222-3333-4444-555555555555" } },
    "UserAlreadyHasDemotedArchiveException" },
  { "internal move", { set = { _InternalMoveSeconds = 3600 } }, "SourceMailboxAlreadyBeingMovedPermanentException" },
  { "litigation hold", { set = { LitigationHoldEnabled = true } }, "MigrationPermanentException" },
  { "foreign proxy", { foreign = true }, "NotAcceptedDomainException" },
}

function TestSimMigration.test_each_condition_raises_its_exception()
  local sim, rs = world(#PLANTED + 1)
  local addrs = {}
  for i, c in ipairs(PLANTED) do
    for k, v in pairs(c[2].set or {}) do rs[i][k] = v end
    addrs[i] = prepare(sim, rs[i], c[2])
    if c[2].foreign then
      sim.tgt.exo.recipients[model.find_recipient(sim.tgt, addrs[i]).Guid].EmailAddresses[#model.find_recipient(sim.tgt,
        addrs[i]).EmailAddresses + 1] = "smtp:" .. rs[i].Alias .. "@contoso.onmicrosoft.com"
    end
  end
  local clean = prepare(sim, rs[#rs])
  addrs[#addrs + 1] = clean
  batch(sim, "b1", addrs)
  for i, c in ipairs(PLANTED) do
    local u = user(sim, addrs[i])
    lu.assertEquals(u.Status, "Failed", c[1])
    lu.assertStrContains(u.ErrorSummary, c[3], false, c[1])
  end
  lu.assertEquals(user(sim, clean).Status, "Syncing")
  later(sim, SYNC + 1)
  lu.assertEquals(bstatus(sim, "b1"), "SyncedWithErrors")
  -- the documented fixes, then resume: the internal move has ended, the GUID is stamped ...
  ok(sim, sim.tgt, "Set-MailUser", { Identity = addrs[1], ExchangeGuid = rs[1].ExchangeGuid })
  ok(sim, sim.src, "Add-DistributionGroupMember", { Identity = "MigScope", Member = rs[2].Name })
  ok(sim, sim.src, "Set-Mailbox", { Identity = rs[4].Name, RemoveDisabledArchive = true })
  ok(sim, sim.tgt, "Set-MailUser", { Identity = addrs[7], EmailAddresses = { remove = { "smtp:" .. rs[7].Alias .. "@contoso.onmicrosoft.com" } } })
  ok(sim, sim.tgt, "Start-MigrationBatch", { Identity = "b1" })
  for _, i in ipairs { 1, 2, 4, 5, 7 } do lu.assertEquals(user(sim, addrs[i]).Status, "Syncing", PLANTED[i][1]) end
  for _, i in ipairs { 3, 6 } do lu.assertEquals(user(sim, addrs[i]).Status, "Failed", PLANTED[i][1]) end
end

function TestSimMigration.test_aux_archive_out_of_scope_then_resumed()
  local sim, rs = world(1)
  local r = rs[1]
  r.ArchiveGuid, r.ArchiveStatus, r.AuxArchiveCount = sim.rng:guid(), "Active", 2
  local addr = prepare(sim, r, { out_of_scope = true })
  batch(sim, "b1", { addr })
  lu.assertStrContains(user(sim, addr).ErrorSummary, "MailboxNotInCrossTenantMigrationScopeException")
  ok(sim, sim.src, "Add-DistributionGroupMember", { Identity = "MigScope", Member = r.Name })
  ok(sim, sim.tgt, "Start-MigrationBatch", { Identity = "b1" })
  lu.assertStrContains(user(sim, addr).ErrorSummary, "AuxArchiveNotFoundInTargetRecipientException")
  -- the documented remedy: remove the user, a new batch
  ok(sim, sim.tgt, "Remove-MigrationUser", { Identity = addr })
  batch(sim, "b2", { addr })
  lu.assertEquals(user(sim, addr).Status, "Syncing")
end

function TestSimMigration.test_mid_sync_conditions()
  local sim, rs = world(2)
  rs[1]._MaintenanceAfter = 600
  rs[2].ArchiveGuid, rs[2].ArchiveStatus, rs[2].AuxArchiveCount, rs[2]._AuxGrowthAfter = sim.rng:guid(), "Active", 1, 900
  local a1, a2 = prepare(sim, rs[1]), prepare(sim, rs[2])
  local db = rs[1].Database
  batch(sim, "b1", { a1, a2 })
  later(sim, 500)
  lu.assertEquals(user(sim, a1).Status, "Syncing")
  later(sim, 500)
  lu.assertStrContains(user(sim, a1).ErrorSummary, "MailboxIsNotInExpectedDBException")
  lu.assertNotEquals(rs[1].Database, db, "maintenance moved the source mailbox")
  lu.assertStrContains(user(sim, a2).ErrorSummary, "SourceAuxArchiveIsProvisionedDuringCrossTenantMovePermanentException")
  lu.assertEquals(rs[2].AuxArchiveCount, 2)
  -- a new batch after removal moves them (the conditions were one-off)
  for _, a in ipairs { a1, a2 } do ok(sim, sim.tgt, "Remove-MigrationUser", { Identity = a }) end
  batch(sim, "b2", { a1, a2 })
  later(sim, SYNC + 1)
  lu.assertEquals(bstatus(sim, "b2"), "Synced")
end

function TestSimMigration.test_duplicate_in_other_batch()
  local sim, rs = world(1)
  local addr = prepare(sim, rs[1])
  batch(sim, "stale", { addr }, { AutoStart = false })
  batch(sim, "b1", { addr })
  local dup = ok(sim, sim.tgt, "Get-MigrationUser", { BatchId = "b1" })[1]
  lu.assertStrContains(dup.ErrorSummary, "UserDuplicateInOtherBatchException")
  lu.assertEquals(user(sim, addr).BatchId, "stale")
  -- remove it from the stale batch and the failed entry; a new batch takes it
  ok(sim, sim.tgt, "Remove-MigrationUser", { Identity = user(sim, addr).Guid })
  ok(sim, sim.tgt, "Remove-MigrationUser", { Identity = dup.Guid })
  lu.assertEquals(#ok(sim, sim.tgt, "Get-MigrationUser", { BatchId = "b1" }), 0)
  batch(sim, "b2", { addr })
  lu.assertEquals(user(sim, addr).Status, "Syncing")
end

function TestSimMigration.test_stall_and_skipped_items_need_approval()
  local sim, rs = world(2)
  rs[1]._StallSeconds, rs[1]._StallReason = 1800, "StalledDueToSource_MdbAvailability"
  rs[2]._BadItems, rs[2]._LargeItems = 3, 2
  local a1, a2 = prepare(sim, rs[1]), prepare(sim, rs[2])
  batch(sim, "b1", { a1, a2 }, { AutoComplete = true })
  later(sim, (SYNC * 0.4) + 600)
  local mr = ok(sim, sim.tgt, "Get-MoveRequestStatistics", { Identity = a1 })[1]
  lu.assertEquals(mr.StatusDetail, "StalledDueToSource_MdbAvailability")
  local p1 = mr.PercentComplete
  later(sim, 600)
  lu.assertEquals(ok(sim, sim.tgt, "Get-MoveRequestStatistics", { Identity = a1 })[1].PercentComplete, p1,
    "no progress while stalled")
  later(sim, SYNC + 1800)
  lu.assertEquals(user(sim, a1).Status, "Completed", "the stall only delayed it")
  local u2 = user(sim, a2)
  lu.assertEquals(u2.Status, "Synced")
  lu.assertEquals(u2.DataConsistencyScore, "Investigate")
  lu.assertTrue(u2.HasUnapprovedSkippedItems)
  lu.assertEquals(u2.SkippedItemCount, 5)
  local st = ok(sim, sim.tgt, "Get-MigrationUserStatistics", { Identity = a2, IncludeSkippedItems = true })[1]
  lu.assertEquals(#st.SkippedItems, 5)
  later(sim, E.FINAL + 1)
  lu.assertEquals(bstatus(sim, "b1"), "CompletedWithErrors", "one user waits for approval")
  ok(sim, sim.tgt, "Set-MigrationUser", { Identity = a2, ApproveSkippedItems = true })
  later(sim, E.FINAL + 1)
  lu.assertEquals(user(sim, a2).Status, "CompletedWithWarnings")
  lu.assertEquals(bstatus(sim, "b1"), "Completed")
end

function TestSimMigration.test_endpoint_concurrency_queues_users()
  local sim, rs = world(3)
  sim.tgt.exo.migration_endpoints.ep.MaxConcurrentMigrations = 2
  local addrs = {}
  for i = 1, 3 do addrs[i] = prepare(sim, rs[i]) end
  batch(sim, "b1", addrs)
  local states = {}
  for i = 1, 3 do states[i] = user(sim, addrs[i]).Status end
  table.sort(states)
  lu.assertEquals(states, { "Queued", "Syncing", "Syncing" })
  later(sim, SYNC + 1)
  local n = 0
  for i = 1, 3 do if user(sim, addrs[i]).Status == "Synced" then n = n + 1 end end
  lu.assertEquals(n, 2, "two synced, the third started when a slot freed")
  later(sim, SYNC)
  lu.assertEquals(bstatus(sim, "b1"), "Synced")
end

function TestSimMigration.test_size_and_speed_set_the_duration()
  local sim, rs = world(2)
  rs[2].TotalItemSize = 4 * GB
  local a1, a2 = prepare(sim, rs[1]), prepare(sim, rs[2])
  batch(sim, "b1", { a1, a2 })
  later(sim, SYNC + 1)
  lu.assertEquals(user(sim, a1).Status, "Synced")
  lu.assertEquals(user(sim, a2).Status, "Syncing", "four times the data takes longer")
  sim.clock = sim.clock + (E.BASE + 4 * 3600) / SPEED
  lu.assertEquals(user(sim, a2).Status, "Synced")
end

function TestSimMigration.test_graph_job_validate_migrate_complete()
  local sim, rs = world(2)
  local a1 = prepare(sim, rs[1])
  prepare(sim, rs[2], { no_guid = true })
  local graph = require "t2t.sim.graph"
  local function g(method, path, body)
    local req = { method = method, path = "/beta/solutions/migrations/crossTenantMigrationJobs" .. path,
                  host = "graph.microsoft.com", headers = { ["content-type"] = "application/json" },
                  body = body and cjson.encode(body) or nil, query = "", claims = true }
    local exo_auth = sim.auth
    sim.auth = function() return { tid = sim.tgt.id, roles = { "CrossTenantContentMigration.ReadWrite.All" } } end
    local r = graph.handle(sim, req)
    sim.auth = exo_auth
    return r.status, type(r.body) == "string" and r.body ~= "" and cjson.decode(r.body) or r.body
  end
  local when = os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(sim.clock + 7200 / SPEED))
  local body = { displayName = "job1", completeAfterDateTime = when, sourceTenantId = sim.src.id,
    exchangeSettings = { sourceEndpoint = "ep", targetDeliveryDomain = "fabrikam.onmicrosoft.com" },
    resourceType = "Users", resources = { rs[1].ExternalDirectoryObjectId, rs[2].ExternalDirectoryObjectId } }
  local st, job = g("POST", "", body)
  lu.assertEquals(st, 201, cjson.encode(job))
  lu.assertEquals(job.status, "submitted")
  lu.assertEquals((g("POST", "", body)), 422, "duplicateDisplayNameJob")
  st = g("POST", "/" .. job.id .. "/migrate")
  lu.assertEquals(st, 409, "not validated")
  st, job = g("POST", "/validate", body)
  lu.assertEquals(job.status, "validateSubmitted")
  later(sim, 61)
  st, job = g("GET", "/" .. job.id)
  lu.assertEquals(job.status, "validateFailed")
  local _, tasks = g("GET", "/" .. job.id .. "/users")
  local codes = {}
  for _, tk in ipairs(tasks.value) do codes[#codes + 1] = tk.currentStatus[1].errors[1] and tk.currentStatus[1].errors[1].code or "ok" end
  table.sort(codes)
  lu.assertEquals(codes, { "CTM-101", "ok" }, "the second user's identity mapping is incomplete (no ExchangeGuid)")
  -- fixed (GUID stamped) and validated again: it passes; migrate, then it completes on its date
  ok(sim, sim.tgt, "Set-MailUser", { Identity = rs[2].Alias, ExchangeGuid = rs[2].ExchangeGuid })
  g("POST", "/validate", body)
  later(sim, 61)
  st, job = g("GET", "/" .. job.id)
  lu.assertEquals(job.status, "validatePassed")
  st, job = g("POST", "/" .. job.id .. "/migrate")
  lu.assertEquals(st, 200)
  lu.assertEquals(job.status, "processing")
  later(sim, 10)
  lu.assertEquals(select(2, g("GET", "/" .. job.id)).status, "inProgress")
  lu.assertEquals((g("DELETE", "/" .. job.id)), 409, "not terminal")
  later(sim, SYNC + E.FINAL + 7200)
  lu.assertEquals(select(2, g("GET", "/" .. job.id)).status, "completed")
  lu.assertEquals(ok(sim, sim.tgt, "Get-Mailbox", { Identity = a1 })[1].RecipientTypeDetails, "UserMailbox")
  lu.assertEquals(#ok(sim, sim.tgt, "Get-MigrationBatch"), 0, "the job's batch is not listed")
  lu.assertEquals((g("DELETE", "/" .. job.id)), 204)
end
