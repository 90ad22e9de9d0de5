-- The simulator's mailbox / mail-user population (t2t.sim.population) and the cmdlets user
-- preparation reads: holds, archives, dumpster, delegates, previous mailboxes, contacts
-- (ms-setup-and-prep.md §3.2, §5); the control API and scenarios that build any of it.
local lu = require "luaunit"
local cjson = require "cjson"
local model = require "t2t.sim.model"
local seed = require "t2t.sim.seed"
local pop = require "t2t.sim.population"
local control = require "t2t.sim.control"

local env = require "tests.lua.handlers.sim_exo_env"
local new_sim, call, detail, ok = env.new_sim, env.call, env.detail, env.ok

TestSimPopulation = {}

local function find(list, key, value)
  for _, x in ipairs(list) do if x[key] == value then return x end end
end

function TestSimPopulation.test_mailbox_with_every_blocker()
  local sim = new_sim(10)
  local del = pop.create(sim, sim.src, { alias = "ada", display_name = "Ada Lovelace" })
  local r = pop.create(sim, sim.src, {
    alias = "zoe", display_name = "Zoë \"Z\" O'Brien", archive = true, aux_archives = 14,
    LitigationHoldEnabled = true, InPlaceHolds = { "UniH" .. sim.rng:guid() }, org_hold = true,
    substrate_hold_items = 7, TotalDeletedItemSize = "35 GB", licenses = { "e3", "ctudm" },
    full_access = { "ada" }, send_as = { "ada@contoso.com" }, send_on_behalf = { "ada" },
    add_addresses = { "X500:/o=Old/ou=First/cn=Recipients/cn=zoe", "smtp:zoe@contoso-eu.com" } })
  lu.assertEquals(r.DisplayName, "Zoë \"Z\" O'Brien")
  local mbx = ok(sim, sim.src, "Get-Mailbox", { Identity = "zoe" })[1]
  local aux = 0
  for _, l in ipairs(mbx.MailboxLocations) do if l:find(";AuxArchive;", 1, true) then aux = aux + 1 end end
  lu.assertEquals(aux, 14)
  lu.assertTrue(mbx.LitigationHoldEnabled)
  lu.assertNotEquals(mbx.ArchiveGuid, model.ZERO_GUID)
  lu.assertItemsEquals(mbx.GrantSendOnBehalfTo, { "ada" })
  lu.assertNotNil(find(mbx.PersistedCapabilities and (function()
    local l = {} for i, c in ipairs(mbx.PersistedCapabilities) do l[i] = { c = c } end return l end)() or {},
    "c", "ExchangeT2TMbxMove"))
  lu.assertNil(mbx._OrgHolds)                                  -- sim-only keys never rendered
  local stats = ok(sim, sim.src, "Get-MailboxStatistics", { Identity = "zoe" })[1]
  lu.assertStrContains(stats.TotalDeletedItemSize, "35 GB (37,580,963,840 bytes)")
  local log = ok(sim, sim.src, "Export-MailboxDiagnosticLogs", { Identity = "zoe", ComponentName = "HoldTracking" })[1]
  lu.assertStrMatches(log.MailboxLog, '^%[{"hid":"mbx%x+:1","ht":4,.*')
  local plain = ok(sim, sim.src, "Export-MailboxDiagnosticLogs", { Identity = "ada", ComponentName = "HoldTracking" })[1]
  lu.assertEquals(plain.MailboxLog, "")
  local folders = ok(sim, sim.src, "Get-MailboxFolderStatistics",
    { Identity = "zoe", Archive = true, FolderScope = "RecoverableItems" })
  lu.assertEquals(find(folders, "Name", "SubstrateHolds").ItemsInFolder, 7)
  -- CSS-val passes the archive GUID as the identity
  folders = ok(sim, sim.src, "Get-MailboxFolderStatistics", { Identity = r.ArchiveGuid, FolderScope = "RecoverableItems" })
  lu.assertEquals(find(folders, "Name", "SubstrateHolds").ItemsInFolder, 7)
  local st, doc = call(sim, sim.src, "Get-MailboxFolderStatistics", { Identity = "ada", Archive = true })
  lu.assertEquals(st, 400)
  lu.assertStrContains(select(2, detail(doc)), "archive mailbox for 'ada' isn't enabled")
  local locs = ok(sim, sim.src, "Get-MailboxLocation", { User = "zoe", MailboxLocationType = "AuxArchive" })
  lu.assertEquals(#locs, 14)
  local fa = ok(sim, sim.src, "Get-MailboxPermission", { Identity = "zoe" })
  lu.assertNotNil(find(fa, "User", "NT AUTHORITY\\SELF"))
  lu.assertItemsEquals(find(fa, "User", del.UserPrincipalName).AccessRights, { "FullAccess" })
  local sa = ok(sim, sim.src, "Get-RecipientPermission", { Identity = "zoe" })
  lu.assertNotNil(find(sa, "Trustee", del.UserPrincipalName))
  -- the trustee filter works across the tenant
  sa = ok(sim, sim.src, "Get-RecipientPermission", { Trustee = "ada", AccessRights = "SendAs" })
  lu.assertEquals(#sa, 1)
  lu.assertEquals(sa[1].Identity, "zoe")
end

function TestSimPopulation.test_previous_mailbox_and_clearing_it()
  local sim = new_sim(5)
  local mu = pop.create(sim, sim.tgt, { kind = "MailUser", alias = "lara", primary = "lara@fabrikam.com",
                                        external = "lara@contoso.onmicrosoft.com", previous_mailbox = true })
  local old = mu.ExchangeGuid
  lu.assertNotEquals(old, model.ZERO_GUID)
  local u = ok(sim, sim.tgt, "Get-User", { Identity = "lara" })[1]
  lu.assertEquals(u.PreviousRecipientTypeDetails, "UserMailbox")
  local new = sim.rng:guid()
  local st, doc = call(sim, sim.tgt, "Set-MailUser", { Identity = "lara", ExchangeGuid = new })
  lu.assertEquals(st, 400)
  lu.assertStrContains(select(2, detail(doc)), "PermanentlyClearPreviousMailboxInfo")
  ok(sim, sim.tgt, "Set-User", { Identity = "lara", PermanentlyClearPreviousMailboxInfo = true })
  u = ok(sim, sim.tgt, "Get-User", { Identity = "lara" })[1]
  lu.assertEquals(u.PreviousRecipientTypeDetails, "None")
  lu.assertEquals(ok(sim, sim.tgt, "Get-MailUser", { Identity = "lara" })[1].ExchangeGuid, model.ZERO_GUID)
  ok(sim, sim.tgt, "Set-MailUser", { Identity = "lara", ExchangeGuid = new })
  lu.assertEquals(ok(sim, sim.tgt, "Get-MailUser", { Identity = "lara" })[1].ExchangeGuid, new)
  -- Set-User refuses an object with a mailbox
  local mbx = next(sim.tgt.exo.recipients) and pop.create(sim, sim.tgt, { alias = "own" })
  st = call(sim, sim.tgt, "Set-User", { Identity = mbx.Name, PermanentlyClearPreviousMailboxInfo = true })
  lu.assertEquals(st, 400)
end

function TestSimPopulation.test_mail_user_upn_and_disabled_account()
  local sim = new_sim(5)
  ok(sim, sim.tgt, "New-MailUser", { Name = "lara", ExternalEmailAddress = "lara@contoso.onmicrosoft.com",
                                     PrimarySmtpAddress = "lara@fabrikam.com", Alias = "lara" })
  local mu = ok(sim, sim.tgt, "Get-MailUser", { Identity = "lara" })[1]
  lu.assertEquals(mu.UserPrincipalName, "lara@fabrikam.onmicrosoft.com")
  local user = sim.tgt.dir.objects[mu.ExternalDirectoryObjectId]
  lu.assertFalse(user.accountEnabled)                         -- no -Password: DisabledUser set
  ok(sim, sim.tgt, "Set-MailUser", { Identity = "lara", MicrosoftOnlineServicesID = "lara@fabrikam.com" })
  lu.assertEquals(ok(sim, sim.tgt, "Get-MailUser", { Identity = "lara" })[1].UserPrincipalName, "lara@fabrikam.com")
  lu.assertEquals(user.userPrincipalName, "lara@fabrikam.com")
  lu.assertEquals(model.user_by_upn(sim.tgt, "lara@fabrikam.com"), user)
  local st, doc = call(sim, sim.tgt, "Set-MailUser", { Identity = "lara", MicrosoftOnlineServicesID = "lara@contoso.com" })
  lu.assertEquals(st, 400)
  lu.assertStrContains(select(2, detail(doc)), "isn't an accepted domain")
end

function TestSimPopulation.test_contacts_collide_and_can_be_removed()
  local sim = new_sim(5)
  ok(sim, sim.tgt, "New-MailContact", { Name = "Lara (Contoso)", ExternalEmailAddress = "lara@contoso.com" })
  local c = ok(sim, sim.tgt, "Get-MailContact", { Identity = "lara@contoso.com" })[1]
  lu.assertEquals(c.RecipientTypeDetails, "MailContact")
  lu.assertEquals(c.ExternalEmailAddress, "SMTP:lara@contoso.com")
  local st, doc = call(sim, sim.tgt, "New-MailUser", { Name = "lara", ExternalEmailAddress = "lara@contoso.com",
                                                       PrimarySmtpAddress = "lara@contoso.com" })
  lu.assertEquals(st, 400)
  lu.assertEquals(detail(doc), "Microsoft.Exchange.Data.DataValidationException")
  ok(sim, sim.tgt, "Remove-MailContact", { Identity = "Lara (Contoso)" })
  st = call(sim, sim.tgt, "Get-MailContact", { Identity = "lara@contoso.com" })
  lu.assertEquals(st, 404)
end

local KEY = "population-test-key"

local function ctl(sim, method, path, body)
  sim.options = { control_key = KEY }
  local r = control.handle(sim, { method = method, path = path, json = body,
                                  headers = { ["x-t2t-sim-control"] = KEY } })
  return r.status, r.body
end

function TestSimPopulation.test_control_api_and_scenario()
  local sim = new_sim(5)
  local st, body = ctl(sim, "POST", "/_sim/scenario", { steps = {
    { create = { tenant = "contoso", alias = "sync1", dirsynced = true, demoted_archive = true } },
    { create = { tenant = "fabrikam", kind = "MailContact", name = "Sync One", external = "sync1@contoso.com" } },
    { update = { tenant = "contoso", identity = "sync1", set = { DelayHoldApplied = true,
                                                                   TotalDeletedItemSize = 5 * 1073741824 } } },
  } })
  lu.assertEquals(st, 200)
  lu.assertEquals(body.applied, 3)
  st, body = ctl(sim, "GET", "/_sim/recipients/contoso/sync1")
  lu.assertEquals(st, 200)
  lu.assertTrue(body.IsDirSynced and body.DelayHoldApplied)
  lu.assertEquals(body.TotalDeletedItemSize, 5 * 1073741824)
  lu.assertNotNil(body.DisabledArchiveGuid)
  st, body = ctl(sim, "PATCH", "/_sim/recipients/contoso/sync1%40contoso.com", { org_hold = true })
  lu.assertEquals(st, 200)
  lu.assertEquals(#body._OrgHolds, 1)
  -- a bad step is named, the ones before it stay applied
  st, body = ctl(sim, "POST", "/_sim/scenario", { { create = { tenant = "contoso", alias = "x1" } },
                                                  { create = { tenant = "contoso", bogus_key = 1 } } })
  lu.assertEquals(st, 400)
  lu.assertStrContains(body.error.message, "step 2: unknown key 'bogus_key'")
  lu.assertNotNil(model.find_recipient(sim.src, "x1"))
  st, body = ctl(sim, "POST", "/_sim/recipients", { tenant = "nowhere" })
  lu.assertEquals(st, 400)
  lu.assertStrContains(body.error.message, "no tenant 'nowhere'")
  st = ctl(sim, "DELETE", "/_sim/recipients/fabrikam/Sync One")
  lu.assertEquals(st, 204)
  lu.assertNil(model.find_recipient(sim.tgt, "sync1@contoso.com"))
end

function TestSimPopulation.test_seeded_extras_are_deterministic_and_varied()
  local a = seed.pair { users = 400, seed = 3 }
  local b = seed.pair { users = 400, seed = 3 }
  local function summary(state)
    local t = state.tenants[state.pair.source]
    local n = { fa = 0, sa = 0, sob = 0, org = 0, sub = 0, shared_fa = 0, shared = 0 }
    local keys = {}
    for g, r in pairs(t.exo.recipients) do
      if r._FullAccess then n.fa = n.fa + 1 end
      if r._SendAs then n.sa = n.sa + 1 end
      if r.GrantSendOnBehalfTo then n.sob = n.sob + 1 end
      if r._OrgHolds then n.org = n.org + 1 end
      if r._SubstrateHoldsItems then n.sub = n.sub + 1 end
      if r.RecipientTypeDetails == "SharedMailbox" then
        n.shared = n.shared + 1
        if r._FullAccess then n.shared_fa = n.shared_fa + 1 end
      end
      keys[#keys + 1] = g .. cjson.encode(r._FullAccess or {}) .. tostring(r._SubstrateHoldsItems)
    end
    table.sort(keys)
    return n, table.concat(keys)
  end
  local na, ka = summary(a)
  local _, kb = summary(b)
  lu.assertEquals(ka, kb)
  lu.assertTrue(na.fa > 0 and na.sa > 0 and na.sob > 0 and na.sub > 0)
  lu.assertTrue(na.shared_fa >= na.shared / 2, "most shared mailboxes have FullAccess delegates")
  -- delegates name real recipients
  local t = a.tenants[a.pair.source]
  for _, r in pairs(t.exo.recipients) do
    for _, d in ipairs(r._FullAccess or {}) do lu.assertNotNil(model.find_recipient(t, d)) end
  end
end
