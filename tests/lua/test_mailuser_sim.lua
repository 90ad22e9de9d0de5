-- t2t.mailuser against the simulator through the production clients: each §5 situation of a
-- target (new, to fix, dir-synced, previous mailbox, already a mailbox, a GAL contact, the GUID
-- elsewhere) and the licence-before-GUID guard.  tests/e2e/test_users.sh runs the runbooks.
local lu = require "luaunit"
local sim = require "t2t.sim"
local tenant = require "t2t.tenant"
local plan = require "t2t.plan"
local mailuser = require "t2t.mailuser"
local C = require "t2t.mailuser.common"

local S, lines

local SCENARIO = { steps = {
  { create = { tenant = "contoso", alias = "ann", display_name = "Ann Ávila" } },
  { create = { tenant = "contoso", alias = "pia" } },
  { create = { tenant = "contoso", alias = "hal" } },
  { create = { tenant = "fabrikam", kind = "MailContact", name = "hal", alias = "hal.partner", external = "hal@partner.org" } },
  { create = { tenant = "contoso", alias = "ben", archive = true } },
  { create = { tenant = "fabrikam", kind = "MailUser", alias = "ben", primary = "ben@fabrikam.com",
               external = "ben@elsewhere.org", add_addresses = { "smtp:ben@contoso.com" } } },
  { create = { tenant = "contoso", alias = "cal" } },
  { create = { tenant = "fabrikam", kind = "MailUser", alias = "cal", primary = "cal@fabrikam.com", dirsynced = true,
               external = "cal@contoso.onmicrosoft.com" } },
  { create = { tenant = "contoso", alias = "dan" } },
  { create = { tenant = "fabrikam", kind = "MailUser", alias = "dan", primary = "dan@fabrikam.com",
               external = "dan@contoso.onmicrosoft.com", previous_mailbox = true } },
  { create = { tenant = "contoso", alias = "eve" } },
  { create = { tenant = "fabrikam", alias = "eve", primary = "eve@fabrikam.com" } },
  { create = { tenant = "contoso", alias = "fay" } },
  { create = { tenant = "fabrikam", kind = "MailContact", name = "Fay (Contoso)", external = "fay@contoso.com" } },
  { create = { tenant = "contoso", alias = "gus" } },
  { create = { tenant = "fabrikam", kind = "MailUser", alias = "gus.other", primary = "gus.other@fabrikam.com",
               external = "gus@contoso.com" } },
} }

local function start()
  if S then return S end
  S = assert(sim.start { users = 4, seed = 11, scenario = SCENARIO })
  -- gus's target elsewhere carries his ExchangeGuid already
  local gus = assert(S:control("GET", "/_sim/recipients/contoso/gus"))
  assert(S:control("PATCH", "/_sim/recipients/fabrikam/gus.other", { ExchangeGuid = gus.ExchangeGuid }))
  return S
end

local function open(name, pl)
  local session = require "t2t.tenant.session"
  local p = S.profile.tenants[name]
  local c = assert(session.clients(p, { ca_file = S.ca_file, connect_to = S.connect_to }, S))
  c.exo.retry_base = 0.05
  return tenant.new { name = name, id = p.tenant_id, domain = p.initial_domain, plan = pl, exo = c.exo,
                      graph = c.graph, say = function(l) lines[#lines + 1] = l end, settle = 5, poll = 0.2 }
end

local function world(dry)
  start()
  lines = {}
  local pl = plan.new { dry_run = dry, out = function(l) lines[#lines + 1] = l end }
  local src, tgt = open("contoso", pl), open("fabrikam", pl)
  local rules = assert(mailuser.rules(tgt, { domains = { "contoso.com=fabrikam.com" } }, { domain = src.domain }))
  return src, tgt, rules, pl
end

local function users(src, names)
  local entries = {}
  for i, n in ipairs(names) do entries[i] = { source = n .. "@contoso.com", line = i + 1 } end
  local list, failures = mailuser.export(src, { entries = entries }, { depth = "identity", scope = false })
  assert(list, failures)
  return list
end

local function row(rows, who)
  for _, r in ipairs(rows) do if r.source == who .. "@contoso.com" then return r end end
end

local function mailuser_of(addr)
  local ok, r = pcall(S.control, S, "GET", "/_sim/recipients/fabrikam/" .. addr)
  return ok and r or nil
end

TestMailuserSim = {}

function TestMailuserSim.test_plan_changes_nothing()
  local src, tgt, rules, pl = world(true)
  local rows = mailuser.prepare { target = tgt, users = users(src, { "pia" }), rules = rules, plan_mode = true }
  lu.assertEquals(row(rows, "pia").status, "planned")
  lu.assertEquals(pl.planned, 2)                                     -- create, then stamp
  lu.assertEquals(pl.applied, 0)
  lu.assertNil(mailuser_of("pia@fabrikam.com"))
  lu.assertStrContains(table.concat(lines, "\n"), "would + create mail user 'pia' (pia@fabrikam.com)")
  lu.assertStrContains(table.concat(lines, "\n"), "would ~ update mail user 'pia'")
end

function TestMailuserSim.test_new_and_fixed_targets_then_nothing_to_do()
  local src, tgt, rules, pl = world(false)
  local u = users(src, { "ann", "ben" })
  local rows = mailuser.prepare { target = tgt, users = u, rules = rules }
  lu.assertEquals(row(rows, "ann").status, "ok")
  lu.assertEquals(row(rows, "ann").changes[1], "created")
  lu.assertEquals(row(rows, "ben").status, "ok")
  local ann = assert(mailuser_of("ann@fabrikam.com"))
  lu.assertEquals(ann.ExchangeGuid, u[1].ExchangeGuid)
  lu.assertEquals(ann.ArchiveGuid, C.ZERO)                          -- no archive on the source: none here
  lu.assertTrue(C.has(ann.EmailAddresses, "x500:" .. u[1].LegacyExchangeDN))
  lu.assertEquals(ann.ExternalEmailAddress, "SMTP:ann@contoso.onmicrosoft.com")
  lu.assertEquals(ann.PrimarySmtpAddress, "ann@fabrikam.com")
  local ben = assert(mailuser_of("ben@fabrikam.com"))
  lu.assertEquals(ben.ExchangeGuid, u[2].ExchangeGuid)
  lu.assertEquals(ben.ArchiveGuid, u[2].ArchiveGuid)
  lu.assertFalse(C.has(ben.EmailAddresses, "smtp:ben@contoso.com"))  -- the foreign proxy is gone
  lu.assertEquals(ben.ExternalEmailAddress, "SMTP:ben@contoso.onmicrosoft.com")
  lu.assertEquals(ben.PrimarySmtpAddress, "ben@fabrikam.com")        -- kept while the external changed
  -- again: nothing to change
  local applied = pl.applied
  rows = mailuser.prepare { target = tgt, users = users(src, { "ann", "ben" }), rules = rules }
  lu.assertEquals(row(rows, "ann").changes, { "unchanged" })
  lu.assertEquals(row(rows, "ben").changes, { "unchanged" })
  lu.assertEquals(pl.applied, applied)
end

function TestMailuserSim.test_targets_that_are_not_ours_to_change()
  local src, tgt, rules = world(false)
  local before_cal = mailuser_of("cal@fabrikam.com")
  local rows = mailuser.prepare { target = tgt, users = users(src, { "cal", "dan", "eve", "fay", "gus" }), rules = rules }
  local cal = row(rows, "cal")
  lu.assertEquals(cal.status, "failed")
  lu.assertEquals(cal.problems[1].code, "DirSynced")
  lu.assertStrContains(cal.problems[1].message, "msExchMailboxGuid = ")
  lu.assertStrContains(cal.problems[1].fix, "delta sync")
  lu.assertEquals(mailuser_of("cal@fabrikam.com").ExchangeGuid, before_cal.ExchangeGuid)
  local dan = row(rows, "dan")
  lu.assertEquals(dan.problems[1].code, "PreviousMailbox")
  lu.assertStrContains(dan.problems[1].fix, "IRREVERSIBLE")
  lu.assertEquals(row(rows, "eve").problems[1].code, "TargetIsMailbox")
  local fay = row(rows, "fay")
  lu.assertEquals(fay.status, "ok")                                  -- created, with a warning
  lu.assertStrContains(fay.warnings[1], "mail contact 'Fay (Contoso)'")
  lu.assertEquals(row(rows, "gus").problems[1].code, "GuidElsewhere")
  lu.assertNil(mailuser_of("gus@fabrikam.com"))                      -- never a second object
  -- with the flags: the previous mailbox is cleared and stamped, the contact removed
  rows = mailuser.prepare { target = tgt, users = users(src, { "dan", "fay" }), rules = rules,
                            clear_previous = true, replace_contacts = true }
  lu.assertEquals(row(rows, "dan").status, "ok")
  lu.assertItemsEquals(row(rows, "dan").changes, { "previous mailbox cleared", "ExchangeGuid", "EmailAddresses",
                                                   "UserPrincipalName" })
  lu.assertEquals(row(rows, "fay").changes[1], "contact removed")
  lu.assertNil(mailuser_of("Fay (Contoso)"))
  lu.assertStrContains(table.concat(lines, "\n"), "irreversible")
end

function TestMailuserSim.test_no_licence_before_the_guid()
  local src, tgt, rules = world(false)
  local u = users(src, { "ann" })
  local m = mailuser.map(u[1], rules)
  -- a mail user without the GUID (made by hand): E3 would provision a new mailbox
  assert(S:control("POST", "/_sim/recipients", { tenant = "fabrikam", kind = "MailUser", alias = "nogiud",
                                                 primary = "noguid@fabrikam.com" }))
  local m2 = { user = u[1], target = { PrimarySmtpAddress = "noguid@fabrikam.com", UserPrincipalName = "noguid@fabrikam.com" } }
  local st, err = mailuser.license(tgt, m2, "ENTERPRISEPACK", { usage_location = "US" })
  lu.assertNil(st)
  lu.assertEquals(err.code, "LicenceBeforeGuid")
  lu.assertEquals(mailuser_of("noguid@fabrikam.com").RecipientTypeDetails, "MailUser")   -- nothing provisioned
  -- the cross-tenant licence provisions no mailbox; with the Exchange plan disabled E3 does not either
  lu.assertEquals(mailuser.license(tgt, m2, "ctudm", { usage_location = "US" }), "licensed")
  lu.assertEquals(mailuser.license(tgt, m2, "ENTERPRISEPACK", { usage_location = "US", disable_plans = { "EXCHANGE_S_ENTERPRISE" } }),
                  "licensed")
  lu.assertEquals(mailuser_of("noguid@fabrikam.com").RecipientTypeDetails, "MailUser")
  -- after prepare stamped ann's GUID, E3 is fine, once
  mailuser.prepare { target = tgt, users = u, rules = rules }
  lu.assertEquals(mailuser.license(tgt, m, "ENTERPRISEPACK", { usage_location = "US" }), "licensed")
  lu.assertEquals(mailuser.license(tgt, m, "ENTERPRISEPACK", { usage_location = "US" }), "unchanged")
  local ann = mailuser_of("ann@fabrikam.com")
  lu.assertEquals(ann.RecipientTypeDetails, "MailUser")
  lu.assertNil(ann.ProvisionedByLicense)
  local _, nerr = mailuser.license(tgt, m, "NOSUCHSKU")
  lu.assertStrContains(tostring(nerr), "the target has no licence 'NOSUCHSKU'")
end

function TestMailuserSim.test_a_name_another_object_has()
  local src, tgt, rules = world(false)
  local rows = mailuser.prepare { target = tgt, users = users(src, { "hal" }), rules = rules }
  lu.assertEquals(rows[1].status, "ok")
  local hal = assert(mailuser_of("hal@fabrikam.com"))
  lu.assertStrMatches(hal.Name, "^hal%-%x+$")                        -- the contact keeps "hal"
  lu.assertEquals(mailuser_of("hal@partner.org").Name, "hal")
  rows = mailuser.prepare { target = tgt, users = users(src, { "hal" }), rules = rules }
  lu.assertEquals(rows[1].changes, { "unchanged" })
end

-- A whole-tenant listing, as the service answers it: every property of the output type, null
-- where unset (the records keep only what is set).
function TestMailuserSim.test_export_all_from_the_listing()
  local src = world(false)
  local seen = 0
  local list, failures = mailuser.export(src, { all = true }, { depth = "identity", scope = false,
    each = function(u)
      seen = seen + 1
      assert(type(u.ExchangeGuid) == "string" and u.PrimarySmtpAddress, "a record without identity")
      for _, v in pairs(u) do assert(v ~= require("cjson").null, "null kept in a record") end
    end })
  lu.assertEquals(#list, 0)                          -- streamed, none kept
  lu.assertEquals(#failures, 0)
  lu.assertTrue(seen >= 4)
  local rec = require("t2t.mailuser.export").record { PrimarySmtpAddress = "a@b.c", ArchiveGuid = require("cjson").null,
    EmailAddresses = require("cjson").null, InPlaceHolds = require("cjson").null, IsDirSynced = require("cjson").null }
  lu.assertNil(rec.ArchiveGuid)
  lu.assertEquals(rec.EmailAddresses, {})
  lu.assertNil(rec.InPlaceHolds)
  lu.assertNil(rec.IsDirSynced)
end

function TestMailuserSim.test_zz_stop()
  if S then S:stop() S = nil end
end

function TestMailuserSim.test_windows_and_file_sources()
  local src, tgt, rules = world(false)
  local window = mailuser.WINDOW
  mailuser.WINDOW = 2                                   -- three windows for five users
  local list = users(src, { "ann", "ben", "fay", "gus", "nobody.here" })
  local path = os.tmpname()
  assert(mailuser.write_collection(path, { depth = "identity" }, list))
  local counted
  local rows = assert(mailuser.prepare { target = tgt, users = mailuser.file_users(path), rules = rules,
                                         on_count = function(n) counted = n end })
  mailuser.WINDOW = window
  os.remove(path)
  lu.assertEquals(counted, #list)
  lu.assertEquals(#rows, #list)
  for i, u in ipairs(list) do lu.assertEquals(rows[i].source, u.PrimarySmtpAddress) end
end
