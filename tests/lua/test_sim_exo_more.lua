-- The simulated InvokeCommand service: Remove-MigrationUser, Get-MigrationStatistics and
-- Set-Mailbox (ms-setup-and-prep.md §5.4, §5.6, §8), called directly like test_sim_exo.lua.
local lu = require "luaunit"
local exo = require "t2t.exo"
local model = require "t2t.sim.model"
local mig = require "t2t.sim.exo.migration"


local env = require "tests.lua.handlers.sim_exo_env"
local new_sim, call, detail, ok = env.new_sim, env.call, env.detail, env.ok

local function clean_mailboxes(t, n)
  local list = {}
  for _, r in pairs(t.exo.recipients) do
    if r.RecipientTypeDetails == "UserMailbox" and not r.IsDirSynced and not r.LitigationHoldEnabled
       and #(r.InPlaceHolds or {}) == 0 and not r.DelayHoldApplied and not r.DelayReleaseHoldApplied
       and not r.ComplianceTagHoldApplied and (r.AuxArchiveCount or 0) == 0 then
      list[#list + 1] = r
    end
  end
  table.sort(list, function(a, b) return a.Name < b.Name end)
  return table.unpack(list, 1, n)
end

local setup = env.setup_cross_tenant

-- Source mailbox r in scope, licensed, with its prepared target MailUser; -> target address.
local function prepare(sim, r, no_guid)
  ok(sim, sim.src, "Add-DistributionGroupMember", { Identity = "MigScope", Member = r.Name })
  ok(sim, sim.tgt, "New-MailUser", { Name = r.Alias, ExternalEmailAddress = r.PrimarySmtpAddress,
    PrimarySmtpAddress = r.Alias .. "@fabrikam.com" })
  ok(sim, sim.tgt, "Set-MailUser", { Identity = r.Alias, ExchangeGuid = not no_guid and
    r.ExchangeGuid or nil, EmailAddresses = { add = { "x500:" .. r.LegacyExchangeDN } } })
  r.PersistedCapabilities[#r.PersistedCapabilities + 1] = "ExchangeT2TMbxMove"
  return r.Alias .. "@fabrikam.com"
end

local function batch(sim, name, addrs, start)
  return ok(sim, sim.tgt, "New-MigrationBatch", { Name = name, SourceEndpoint = "ep",
    AutoStart = start, CSVData = { Data = exo.base64_encode("EmailAddress\n" ..
    table.concat(addrs, "\n") .. "\n") } })
end

local function muser(sim, addr)
  return ok(sim, sim.tgt, "Get-MigrationUser", { Identity = addr })[1]
end

local function mailbox(sim, r)
  return ok(sim, sim.src, "Get-Mailbox", { Identity = r.Guid })[1]
end

TestSimExoMoreMigration = {}

function TestSimExoMoreMigration.test_remove_user_then_new_batch()
  local sim = new_sim()
  setup(sim)
  local r = clean_mailboxes(sim.src, 1)
  local addr = prepare(sim, r)
  sim.state.migration = { speed = 1000 }
  batch(sim, "b1", { addr }, true)
  lu.assertEquals(muser(sim, addr).Status, "Syncing")
  lu.assertEquals(#ok(sim, sim.tgt, "Get-MoveRequest"), 1)
  -- in a second batch the user fails there, with the documented exception (§8)
  batch(sim, "b0", { addr }, true)
  local dup = ok(sim, sim.tgt, "Get-MigrationUser", { BatchId = "b0" })[1]
  lu.assertStrContains(dup.ErrorSummary, "UserDuplicateInOtherBatchException")
  ok(sim, sim.tgt, "Remove-MigrationBatch", { Identity = "b0" })
  -- an unknown user: the 404 of the other Get/Remove cmdlets
  local st, doc = call(sim, sim.tgt, "Remove-MigrationUser", { Identity = "nobody@fabrikam.com" })
  lu.assertEquals(st, 404)
  local typ, text = detail(doc)
  lu.assertStrContains(typ, "ManagementObjectNotFoundException")
  lu.assertStrContains(text, "'nobody@fabrikam.com' couldn't be found")
  -- removed: the user, its move request, its place in the batch (which stays)
  ok(sim, sim.tgt, "Remove-MigrationUser", { Identity = addr:upper(), Confirm = false })
  lu.assertEquals((call(sim, sim.tgt, "Get-MigrationUser", { Identity = addr })), 404)
  lu.assertEquals(#ok(sim, sim.tgt, "Get-MoveRequest"), 0)
  lu.assertEquals(ok(sim, sim.tgt, "Get-MigrationBatch", { Identity = "b1" })[1].TotalCount, 0)
  -- the documented remedy: the same user in a new batch, and it moves
  lu.assertEquals(batch(sim, "b2", { addr }, true)[1].Status, "Syncing")
  lu.assertEquals(muser(sim, addr).BatchId, "b2")
  sim.clock = sim.clock + 3600
  lu.assertEquals(muser(sim, addr).Status, "Synced")
  lu.assertEquals(#ok(sim, sim.tgt, "Get-MoveRequest", { BatchName = "b2" }), 1)
end

function TestSimExoMoreMigration.test_statistics_follow_the_batches()
  local sim = new_sim()
  setup(sim)
  sim.state.migration = { speed = 1000 }
  local r1, r2 = clean_mailboxes(sim.src, 2)
  local a1, a2 = prepare(sim, r1), prepare(sim, r2, true)    -- a2 lacks its ExchangeGuid
  local function stats()
    local v = ok(sim, sim.tgt, "Get-MigrationStatistics")
    lu.assertEquals(#v, 1)
    lu.assertEquals(v[1].MigrationType, "ExchangeRemoteMove")
    return v[1]
  end
  local s = stats()
  lu.assertEquals({ s.TotalCount, s.PendingCount, s.ActiveCount }, { 0, 0, 0 })
  batch(sim, "b1", { a1, a2 }, false)
  s = stats()                                 -- created, not started: its users are stopped
  lu.assertEquals({ s.TotalCount, s.StoppedCount, s.ActiveCount }, { 2, 2, 0 })
  ok(sim, sim.tgt, "Start-MigrationBatch", { Identity = "b1" })
  s = stats()
  lu.assertEquals({ s.ActiveCount, s.FailedCount, s.PendingCount }, { 1, 1, 0 })
  sim.clock = sim.clock + 3600
  s = stats()
  lu.assertEquals({ s.ActiveCount, s.SyncedCount, s.FailedCount }, { 0, 1, 1 })
  ok(sim, sim.tgt, "Complete-MigrationBatch", { Identity = "b1" })
  sim.clock = sim.clock + mig.engine.FINAL / 1000 + 1
  s = stats()
  lu.assertEquals({ s.TotalCount, s.SyncedCount, s.FinalizedCount, s.FailedCount }, { 2, 0, 1, 1 })
  ok(sim, sim.tgt, "Remove-MigrationUser", { Identity = a2 })
  lu.assertEquals({ stats().TotalCount, stats().FailedCount }, { 1, 0 })
  -- a parameter the simulator does not model is refused, not ignored
  local st, doc = call(sim, sim.tgt, "Get-MigrationStatistics", { DiagnosticInfo = "verbose" })
  lu.assertEquals(st, 501)
  lu.assertStrContains(select(2, detail(doc)), "-DiagnosticInfo")
end

TestSimExoMoreSetMailbox = {}

function TestSimExoMoreSetMailbox.test_clearing_holds_lets_the_user_migrate()
  local sim = new_sim()
  setup(sim)
  local r = clean_mailboxes(sim.src, 1)
  local addr = prepare(sim, r)
  ok(sim, sim.src, "Set-Mailbox", { Identity = r.PrimarySmtpAddress, LitigationHoldEnabled = true })
  lu.assertTrue(mailbox(sim, r).LitigationHoldEnabled)
  batch(sim, "b1", { addr }, true)
  lu.assertEquals(muser(sim, addr).Status, "Failed")
  lu.assertStrContains(muser(sim, addr).ErrorSummary, "on hold")
  -- removing the litigation hold leaves a delay hold, which still blocks the move
  ok(sim, sim.src, "Set-Mailbox", { Identity = r.Name, LitigationHoldEnabled = false })
  local m = mailbox(sim, r)
  lu.assertFalse(m.LitigationHoldEnabled)
  lu.assertTrue(m.DelayHoldApplied)
  ok(sim, sim.tgt, "Start-MigrationBatch", { Identity = "b1" })
  lu.assertEquals(muser(sim, addr).Status, "Failed")
  ok(sim, sim.src, "Set-Mailbox", { Identity = r.Name, RemoveDelayHoldApplied = true })
  lu.assertFalse(mailbox(sim, r).DelayHoldApplied)
  -- the other delay hold blocks too, and its switch clears it
  r.DelayReleaseHoldApplied = true
  ok(sim, sim.tgt, "Start-MigrationBatch", { Identity = "b1" })
  lu.assertEquals(muser(sim, addr).Status, "Failed")
  ok(sim, sim.src, "Set-Mailbox", { Identity = r.Name, RemoveDelayReleaseHoldApplied = true })
  lu.assertFalse(mailbox(sim, r).DelayReleaseHoldApplied)
  ok(sim, sim.tgt, "Start-MigrationBatch", { Identity = "b1" })
  lu.assertEquals(muser(sim, addr).Status, "Syncing")
  sim.clock = sim.clock + 3600
  lu.assertEquals(ok(sim, sim.tgt, "Get-MigrationBatch", { Identity = "b1" })[1].Status, "Synced")
end

function TestSimExoMoreSetMailbox.test_remove_disabled_archive()
  local sim = new_sim()
  setup(sim)
  local r = clean_mailboxes(sim.src, 1)
  lu.assertEquals(r.ArchiveGuid, model.ZERO_GUID)
  local addr = prepare(sim, r)
  r.DisabledArchiveGuid = sim.rng:guid()                  -- an archive disabled long ago
  batch(sim, "b1", { addr }, true)
  lu.assertStrContains(muser(sim, addr).ErrorSummary, "UserAlreadyHasDemotedArchiveException")
  local _, doc = ok(sim, sim.src, "Set-Mailbox", { Identity = r.Alias, RemoveDisabledArchive = true })
  lu.assertEquals(doc["@adminapi.warnings"], {})
  lu.assertEquals(mailbox(sim, r).DisabledArchiveGuid, model.ZERO_GUID)
  ok(sim, sim.tgt, "Start-MigrationBatch", { Identity = "b1" })
  lu.assertEquals(muser(sim, addr).Status, "Syncing")
  -- nothing left to remove: the service's "no settings modified" warning
  _, doc = ok(sim, sim.src, "Set-Mailbox", { Identity = r.Alias, RemoveDisabledArchive = true })
  lu.assertStrContains(doc["@adminapi.warnings"][1], "no settings of '" .. r.Name .. "'")
end

function TestSimExoMoreSetMailbox.test_send_on_behalf_and_attributes_visible()
  local sim = new_sim()
  local r, d1, d2 = clean_mailboxes(sim.src, 3)
  ok(sim, sim.src, "Set-Mailbox", { Identity = r.Name, GrantSendOnBehalfTo = { d1.PrimarySmtpAddress },
    CustomAttribute7 = "wave-2", HiddenFromAddressListsEnabled = true, DisplayName = "Moved Soon" })
  local m = mailbox(sim, r)
  lu.assertEquals(m.GrantSendOnBehalfTo, { d1.Name })
  lu.assertEquals(m["GrantSendOnBehalfTo@odata.type"], "#Collection(String)")
  lu.assertEquals({ m.CustomAttribute7, m.HiddenFromAddressListsEnabled, m.DisplayName },
                  { "wave-2", true, "Moved Soon" })
  lu.assertEquals(sim.src.dir.objects[r.ExternalDirectoryObjectId].displayName, "Moved Soon")
  ok(sim, sim.src, "Set-Mailbox", { Identity = r.Name,
    GrantSendOnBehalfTo = { add = { d2.Alias }, remove = { d1.Name } } })
  lu.assertEquals(mailbox(sim, r).GrantSendOnBehalfTo, { d2.Name })
  local st, doc = call(sim, sim.src, "Set-Mailbox", { Identity = r.Name,
    GrantSendOnBehalfTo = { "nobody@contoso.com" } })
  lu.assertEquals(st, 404)
  lu.assertStrContains(detail(doc), "ManagementObjectNotFoundException")
  -- proxies: unique, in accepted domains; an added SMTP: becomes primary
  ok(sim, sim.src, "Set-Mailbox", { Identity = r.Name,
    EmailAddresses = { add = { "SMTP:moved." .. r.Alias .. "@contoso.com" } } })
  lu.assertEquals(mailbox(sim, r).PrimarySmtpAddress, "moved." .. r.Alias .. "@contoso.com")
  st, doc = call(sim, sim.src, "Set-Mailbox", { Identity = r.Name,
    EmailAddresses = { add = { "smtp:x@not-ours.example" } } })
  lu.assertEquals(st, 400)
  lu.assertStrContains(select(2, detail(doc)), "accepted domain")
  st, doc = call(sim, sim.src, "Set-Mailbox", { Identity = r.Name,
    EmailAddresses = { add = { "smtp:" .. d1.PrimarySmtpAddress } } })
  lu.assertEquals(st, 400)
  lu.assertStrContains(detail(doc), "ProxyAddressExistsException")
end

function TestSimExoMoreSetMailbox.test_wrong_recipients_and_parameters_refused()
  local sim = new_sim()
  local r = clean_mailboxes(sim.src, 1)
  -- a MailUser is not a mailbox: the -Identity 404, as EXO answers
  ok(sim, sim.tgt, "New-MailUser", { Name = "mu1", ExternalEmailAddress = "mu1@example.org",
    PrimarySmtpAddress = "mu1@fabrikam.com" })
  local st, doc = call(sim, sim.tgt, "Set-Mailbox", { Identity = "mu1", LitigationHoldEnabled = true })
  lu.assertEquals(st, 404)
  lu.assertStrContains(detail(doc), "ManagementObjectNotFoundException")
  lu.assertFalse(ok(sim, sim.tgt, "Get-MailUser", { Identity = "mu1" })[1].LitigationHoldEnabled)
  -- a valid parameter the simulator does not model: 501, naming it, and nothing changes
  st, doc = call(sim, sim.src, "Set-Mailbox", { Identity = r.Name, DisplayName = "X",
    ForwardingSmtpAddress = "smtp:a@example.org" })
  lu.assertEquals(st, 501)
  local typ, text = detail(doc)
  lu.assertEquals(typ, "System.NotImplementedException")
  lu.assertStrContains(text, "Set-Mailbox -ForwardingSmtpAddress")
  lu.assertEquals(doc.error.code, "NotImplemented")
  lu.assertNotEquals(mailbox(sim, r).DisplayName, "X")
  -- ExcludeFromAllOrgHolds is for inactive mailboxes only (Set-Mailbox docs)
  st, doc = call(sim, sim.src, "Set-Mailbox", { Identity = r.Name, ExcludeFromAllOrgHolds = true })
  lu.assertEquals(st, 400)
  lu.assertStrContains(select(2, detail(doc)), "inactive mailboxes")
  -- on-premises-mastered properties of a dir-synced mailbox are refused; holds are not
  local synced
  for _, x in pairs(sim.src.exo.recipients) do
    if x.IsDirSynced and x.RecipientTypeDetails == "UserMailbox" then synced = x; break end
  end
  st, doc = call(sim, sim.src, "Set-Mailbox", { Identity = synced.Guid, CustomAttribute1 = "x" })
  lu.assertEquals(st, 400)
  lu.assertStrContains(select(2, detail(doc)), "synchronized from your on-premises organization")
  ok(sim, sim.src, "Set-Mailbox", { Identity = synced.Guid, RetentionHoldEnabled = true })
  lu.assertTrue(ok(sim, sim.src, "Get-Mailbox", { Identity = synced.Guid })[1].RetentionHoldEnabled)
end

TestSimExoMoreSecureString = {}

-- A SecureString must arrive encrypted with the simulated module's key (wire.md §2.4): plaintext
-- or a value sealed with another key is refused before the cmdlet runs; the right one passes.
function TestSimExoMoreSecureString.test_password_must_be_sealed()
  local crypto = require "t2t.crypto"
  local sim = new_sim()
  local function new(name, password)
    return call(sim, sim.tgt, "New-MailUser", { Name = name, ExternalEmailAddress = name .. "@contoso.com",
      MicrosoftOnlineServicesID = name .. "@" .. sim.tgt.initial_domain, Password = password })
  end
  local st, doc = new("plain1", "Pa55word!")
  lu.assertEquals(st, 400)
  local typ, text = detail(doc)
  lu.assertEquals(typ, "System.Management.Automation.ParameterBindingException")
  lu.assertStrContains(text, "parameter 'Password'")
  lu.assertNil(model.find_recipient(sim.tgt, "plain1"))
  local sealed = env.seal(sim, "Pa55word!")
  local other = assert(crypto.generate_key("rsa", 2048))
  lu.assertEquals((new("other1", crypto.base64_encode(other:public_key():encrypt("Pa55word!")))), 400)
  st = new("sealed1", sealed)
  lu.assertEquals(st, 200)
  lu.assertNotNil(model.find_recipient(sim.tgt, "sealed1"))
  -- the key lives in the state, so a saved state keeps it
  lu.assertStrContains(sim.state.exo_securestring_pem, "PRIVATE KEY")
  lu.assertNotNil(model.securestring_key(sim.state, false))
end
