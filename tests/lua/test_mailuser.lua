-- t2t.mailuser without a tenant: the user list, the mapping (ms-setup-and-prep.md §5.1) and the
-- CSS-val rules (§3.2) on records built here.
local lu = require "luaunit"
local list = require "t2t.mailuser.list"
local map = require "t2t.mailuser.map"
local rules = require "t2t.mailuser.rules"
local export = require "t2t.mailuser.export"
local C = require "t2t.mailuser.common"

TestMailuserList = {}

function TestMailuserList.test_css_format_with_duplicates_conflicts_and_bad_rows()
  local text = table.concat({
    "\239\187\191sourceuser;TARGETUSER;Batch;Notes",
    "ada@contoso.com ; ada@fabrikam.com;wave1;x",
    "",
    '"bob@contoso.com";"bob@fabrikam.com";wave1;"a; b"',
    "ADA@contoso.com;ada@fabrikam.com;wave1;dup",
    "cy@contoso.com;Cy Lastname;wave2;bad target",
    ";;wave2;no source",
    "dee@contoso.com;dee@fabrikam.com;wave2;",
    "dee@contoso.com;dee2@fabrikam.com;wave2;conflict",
    '"unclosed;x',
  }, "\r\n")
  local entries, rep = list.parse(text, "users.csv")
  lu.assertEquals(#entries, 2)
  lu.assertEquals(entries[1].source, "ada@contoso.com")
  lu.assertEquals(entries[1].target, "ada@fabrikam.com")
  lu.assertEquals(entries[1].batch, "wave1")
  lu.assertEquals(entries[2].line, 4)
  lu.assertEquals(rep.duplicates, { { line = 5, first = 2 } })
  lu.assertEquals(rep.extra_columns, { "Notes" })
  local by = {}
  for _, e in ipairs(rep.errors) do by[e.line] = e.reason end
  lu.assertStrContains(by[6], "'Cy Lastname' is not an e-mail address")
  lu.assertStrContains(by[7], "source user is empty")
  lu.assertStrContains(by[8], "conflicting lines")          -- dee: neither line is used
  lu.assertStrContains(by[9], "is on line 8 too")
  lu.assertStrContains(by[10], "not closed")
  local lines = list.describe(rep)
  lu.assertStrContains(table.concat(lines, "\n"), "line 5: duplicate of line 2 (skipped)")
end

function TestMailuserList.test_email_address_format_and_missing_column()
  local entries = list.parse("EmailAddress\nada@contoso.com\nbob@contoso.com\n")
  lu.assertEquals(#entries, 2)
  lu.assertNil(entries[1].target)
  local none, rep = list.parse("Name,Mail\nAda,ada@contoso.com\n", "x.csv")
  lu.assertEquals(#none, 0)
  lu.assertStrContains(rep.errors[1].reason, "no SourceUser or EmailAddress column")
end

---------------------------------------------------------------------------------------------

TestMailuserMap = {}

local LEGDN = "/o=ExchangeLabs/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Recipients/cn=abc-zoe"

local function user(o)
  local u = { key = "zoe.obrien@contoso.com", Name = "zoe", Alias = "zoe.o'brien", DisplayName = "Zoë O'Brien",
    PrimarySmtpAddress = "zoe.obrien@contoso.com", UserPrincipalName = "zoe@contoso.onmicrosoft.com",
    RecipientTypeDetails = "UserMailbox", ExchangeGuid = "11111111-2222-4333-8444-555555555555",
    LegacyExchangeDN = LEGDN,
    EmailAddresses = { "SMTP:zoe.obrien@contoso.com", "smtp:zoe@contoso.onmicrosoft.com",
                       "smtp:zoe@contoso.mail.onmicrosoft.com", "smtp:zoe@contoso.net", "smtp:zoe@other.org",
                       "X500:/o=Old/ou=First/cn=Recipients/cn=zoe", "x400:c=US;a= ;p=Contoso;s=zoe" } }
  for k, v in pairs(o or {}) do u[k] = v end
  return u
end

local ACCEPTED = { ["fabrikam.com"] = true, ["fabrikam.co.uk"] = true, ["fabrikam.onmicrosoft.com"] = true,
                   ["fabrikam.mail.onmicrosoft.com"] = true }

local function rules_for(domains, tdd)
  return assert(map.rules { domains = domains, accepted = ACCEPTED, source_initial = "contoso.onmicrosoft.com",
                            target_initial = "fabrikam.onmicrosoft.com", tdd = tdd })
end

function TestMailuserMap.test_domain_map_target()
  local r = rules_for({ "contoso.com=fabrikam.com", "contoso.net=fabrikam.co.uk" }, "fabrikam.mail.onmicrosoft.com")
  local m = map.map(user(), r)
  lu.assertEquals(#m.problems, 0)
  local t = m.target
  lu.assertEquals(t.PrimarySmtpAddress, "zoe.obrien@fabrikam.com")
  lu.assertEquals(t.UserPrincipalName, "zoe@fabrikam.onmicrosoft.com")   -- initial domains map to each other
  lu.assertEquals(t.Alias, "zoe.o'brien")
  lu.assertEquals(t.ExternalEmailAddress, "zoe@contoso.onmicrosoft.com")  -- the source's own routing address
  lu.assertEquals(t.DisplayName, "Zoë O'Brien")
  lu.assertItemsEquals(t.add, {
    "x500:" .. LEGDN, "X500:/o=Old/ou=First/cn=Recipients/cn=zoe", "x400:c=US;a= ;p=Contoso;s=zoe",
    "smtp:zoe.o'brien@fabrikam.mail.onmicrosoft.com",            -- the target delivery domain
    "smtp:zoe@fabrikam.onmicrosoft.com", "smtp:zoe@fabrikam.co.uk" })  -- mapped secondaries
  for _, p in ipairs(t.add) do                                    -- no source-domain SMTP, ever
    lu.assertFalse(p:lower():find("contoso", 1, true) ~= nil and p:lower():match("^smtp:") ~= nil, p)
  end
end

function TestMailuserMap.test_explicit_target_and_missing_map()
  local r = rules_for({ "contoso.com=fabrikam.com" })
  local m = map.map(user { TargetUser = "z.obrien@fabrikam.co.uk" }, r)
  lu.assertEquals(m.target.PrimarySmtpAddress, "z.obrien@fabrikam.co.uk")
  lu.assertEquals(m.target.UserPrincipalName, "z.obrien@fabrikam.co.uk")
  local m2 = map.map(user { PrimarySmtpAddress = "zoe@contoso-eu.com" }, r)
  lu.assertEquals(m2.problems[1].code, "NoDomainMap")
  lu.assertStrContains(m2.problems[1].fix, "--domain-map contoso-eu.com=")
  local m3 = map.map(user { TargetUser = "zoe@elsewhere.com" }, r)
  lu.assertEquals(m3.problems[1].code, "TargetDomainNotAccepted")
end

function TestMailuserMap.test_rules_errors()
  local r, err = map.rules { domains = { "contoso.com" }, accepted = ACCEPTED }
  lu.assertNil(r)
  lu.assertStrContains(err, "is not SOURCE=TARGET")
  r, err = map.rules { domains = { "contoso.com=nowhere.org" }, accepted = ACCEPTED }
  lu.assertNil(r)
  lu.assertStrContains(err, "not an accepted domain of the target")
  r, err = map.rules { domains = { "a.com=fabrikam.com", "A.com=fabrikam.co.uk" }, accepted = ACCEPTED }
  lu.assertNil(r)
  lu.assertStrContains(err, "maps a.com to both")
  r = assert(map.rules { domains = { "*=fabrikam.com" }, accepted = ACCEPTED })
  lu.assertEquals(map.map(user { PrimarySmtpAddress = "x@anything.org" }, r).target.PrimarySmtpAddress, "x@fabrikam.com")
end

function TestMailuserMap.test_collisions_are_reported_on_both()
  local r = rules_for({ "contoso.com=fabrikam.com", "contoso.net=fabrikam.com" })
  local a = user { key = "a", PrimarySmtpAddress = "sam@contoso.com", UserPrincipalName = "sam@contoso.com", line = 2 }
  local b = user { key = "b", PrimarySmtpAddress = "sam@contoso.net", UserPrincipalName = "sam@contoso.net", line = 3 }
  local c = user { key = "c", PrimarySmtpAddress = "other@contoso.com", UserPrincipalName = "other@contoso.com" }
  local out = map.map_all({ a, b, c }, r)
  lu.assertEquals(out[1].problems[1].code, "Collision")
  lu.assertStrContains(out[1].problems[1].message, "sam@contoso.net (line 3)")
  lu.assertEquals(#out[1].problems, 1)                -- primary and UPN collide: reported once
  lu.assertEquals(out[2].problems[1].code, "Collision")
  lu.assertEquals(#out[3].problems, 0)
end

---------------------------------------------------------------------------------------------

TestMailuserRules = {}

local GUID, AGUID = "11111111-2222-4333-8444-555555555555", "66666666-7777-4888-8999-000000000000"

local function good_target()
  return { Name = "zoe", Alias = "zoe", PrimarySmtpAddress = "zoe@fabrikam.com", UserPrincipalName = "zoe@fabrikam.com",
    ExchangeGuid = GUID, ArchiveGuid = C.ZERO, ExternalEmailAddress = "SMTP:zoe@contoso.onmicrosoft.com",
    EmailAddresses = { "SMTP:zoe@fabrikam.com", "smtp:zoe@fabrikam.onmicrosoft.com", "X500:" .. LEGDN,
                       "X500:/o=Old/ou=First/cn=Recipients/cn=zoe" },
    RecoverableItemsQuota = "30 GB (32,212,254,720 bytes)", PersistedCapabilities = { "ExchangeT2TMbxMove" },
    IsDirSynced = false }
end

local function src(o)
  local u = user { ExchangeGuid = GUID, InScope = true, TotalDeletedItemSize = 1048576, AuxArchiveCount = 0,
    EmailAddresses = { "SMTP:zoe.obrien@contoso.com", "smtp:zoe@contoso.onmicrosoft.com",
                       "X500:/o=Old/ou=First/cn=Recipients/cn=zoe" } }
  for k, v in pairs(o or {}) do u[k] = v end
  return u
end

local ENV = { accepted = ACCEPTED, tdd = "fabrikam.onmicrosoft.com", scope_known = true, scope_group = "Scope" }

local function ids(findings)
  local out = {}
  for _, f in ipairs(findings) do out[#out + 1] = f.rule .. ":" .. f.id end
  return out
end

function TestMailuserRules.test_a_ready_pair_has_no_findings()
  lu.assertEquals(rules.check(src(), { mailuser = good_target() }, ENV), {})
end

function TestMailuserRules.test_each_source_rule()
  local f = rules.check(src { AuxArchiveCount = 13, PersistedCapabilities = {}, LitigationHoldEnabled = true,
    DelayHoldApplied = true, DelayReleaseHoldApplied = true, ComplianceTagHoldApplied = true,
    InPlaceHolds = { "mbxabc:1", "cld123", "UniHxyz", "skpq", string.rep("a", 32), "notahold" },
    OrgHolds = { "mbx999:1" }, ArchiveGuid = AGUID, SubstrateHoldsItems = 4, InScope = false,
    TotalDeletedItemSize = 40 * 1073741824, DisabledArchiveGuid = nil },
    { mailuser = (function() local t = good_target(); t.PersistedCapabilities = {}; t.ArchiveGuid = AGUID; return t end)() }, ENV)
  local got = ids(f)
  lu.assertItemsEquals(got, { "2:aux-archives", "3:licence", "4:holds", "4:holds", "4:holds", "4:holds", "4:holds",
    "4:holds", "4:holds", "4:holds", "4:holds", "4:holds", "5:substrate-holds", "6:scope", "7:dumpster" })
  local text = {}
  for _, x in ipairs(f) do text[#text + 1] = x.message .. " / " .. tostring(x.exception) end
  text = table.concat(text, "\n")
  lu.assertStrContains(text, "13 aux archives")
  lu.assertStrContains(text, "CrossTenantMigrationWithoutLicensePermanentException")
  lu.assertStrContains(text, "legacy In-Place (eDiscovery) hold")
  lu.assertStrContains(text, "organization-wide retention policy (mbx999:1, HoldTracking)")
  lu.assertStrContains(text, "MailboxNotInCrossTenantMigrationScopeException")
  lu.assertStrContains(text, "40.0 GB) is bigger than the TARGET RecoverableItemsQuota (30.0 GB)")
  -- shared mailboxes need no cross-tenant licence (CSS-val skips them)
  lu.assertEquals(ids(rules.check(src { RecipientTypeDetails = "SharedMailbox", PersistedCapabilities = {} },
    { mailuser = (function() local t = good_target(); t.PersistedCapabilities = {}; return t end)() }, ENV)), {})
end

function TestMailuserRules.test_each_target_rule_and_its_fix()
  local t = good_target()
  t.ExchangeGuid = C.ZERO
  t.ArchiveGuid = C.ZERO
  t.PrimarySmtpAddress = "zoe@contoso.com"
  t.EmailAddresses = { "SMTP:zoe@contoso.com", "smtp:zoe@other.org" }
  t.ExternalEmailAddress = "SMTP:someone@else.org"
  local f = rules.check(src { ArchiveGuid = AGUID }, { mailuser = t, user = { PreviousRecipientTypeDetails = "UserMailbox" } }, ENV)
  lu.assertItemsEquals(ids(f), { "8:exchange-guid", "9:archive-guid", "10:x500-legdn", "11:primary-domain",
    "12:proxy-domains", "13:x500-all", "14:external-address", "15:previous-mailbox", "17:tdd-proxy" })
  local merged = rules.merge(f)
  lu.assertEquals(merged.ExchangeGuid, GUID)
  lu.assertEquals(merged.ArchiveGuid, AGUID)
  lu.assertEquals(merged.PrimarySmtpAddress, "zoe@contoso.com")     -- 14 keeps the primary with the external
  lu.assertEquals(merged.ExternalEmailAddress, "zoe.obrien@contoso.com")
  lu.assertItemsEquals(merged.EmailAddresses.add, { "X500:" .. LEGDN, "X500:/o=Old/ou=First/cn=Recipients/cn=zoe",
                                                    "smtp:zoe@fabrikam.onmicrosoft.com" })
  lu.assertItemsEquals(merged.EmailAddresses.remove, { "smtp:zoe@other.org" })
  local x500 = f[3]
  lu.assertEquals(x500.level, "error")
  lu.assertEquals(f[6].level, "warning")                            -- 13: a missing source X500 warns
  -- a target without an archive while the source has none is fine; one with an archive is not
  local t2 = good_target()
  t2.ArchiveGuid = AGUID
  lu.assertEquals(ids(rules.check(src(), { mailuser = t2 }, ENV)), { "9:archive-guid" })
  lu.assertNil(rules.check(src(), { mailuser = t2 }, ENV)[1].params)
end

function TestMailuserRules.test_no_fix_for_synced_targets()
  local t = good_target()
  t.IsDirSynced = true
  t.ExchangeGuid = C.ZERO
  local f = rules.check(src(), { mailuser = t }, ENV)
  lu.assertEquals(ids(f), { "8:exchange-guid" })
  lu.assertNil(f[1].params)
  lu.assertStrContains(f[1].fix, "on-premises")
  lu.assertNil(rules.merge(f))
end

function TestMailuserRules.test_missing_objects()
  local f = rules.check({ missing = "nobody@contoso.com" }, {}, ENV)
  lu.assertEquals(ids(f), { "1:found" })
  lu.assertStrContains(f[1].message, "wasn't found on the SOURCE tenant")
  f = rules.check(src(), { identity = "zoe@fabrikam.com" }, ENV)
  lu.assertEquals(ids(f)[1], "1:found")
  lu.assertStrContains(f[1].message, "wasn't found on the TARGET tenant")
  -- a target that already is this user's mailbox: migrated, nothing to report
  lu.assertEquals(rules.check(src(), { other = { RecipientTypeDetails = "UserMailbox", ExchangeGuid = GUID } }, ENV), {})
end

function TestMailuserRules.test_holdtracking_log_parsing()
  lu.assertEquals(export.holdtracking('[{"hid":"mbx1:1","ht":4},{"hid":"cld2","ht":4},{"hid":"mbx3:1","ht":1}]'),
                  { "mbx1:1" })
  lu.assertEquals(export.holdtracking(""), {})
  lu.assertEquals(export.holdtracking('garbage "hid":"mbxZ:1","ht":4 more'), { "mbxZ:1" })
end

function TestMailuserRules.test_sizes_as_exchange_prints_them()
  lu.assertEquals(C.bytes("1.5 GB (1,610,612,736 bytes)"), 1610612736)
  lu.assertEquals(C.bytes(42), 42)
  lu.assertEquals(C.bytes("Unlimited"), math.huge)
end

---------------------------------------------------------------------------------------------

TestMailuserCollection = {}

function TestMailuserCollection.test_streamed_file_round_trip_and_cut_short()
  local collection = require "t2t.mailuser.collection"
  local path = os.tmpname()
  local w = assert(collection.writer(path, { depth = "identity", source = { name = "contoso" } }))
  for i = 1, 3 do assert(w:add({ PrimarySmtpAddress = "u" .. i .. "@contoso.com", EmailAddresses = { "SMTP:x" } })) end
  lu.assertNil(io.open(path .. "x"))                      -- nothing at the final name until close
  assert(w:close())
  lu.assertEquals(require("t2t.core.fs").mode(path), tonumber("600", 8))
  local info, users = assert(collection.read(path))
  lu.assertEquals(info.source.name, "contoso")
  lu.assertEquals(#users, 3)
  lu.assertEquals(users[3].PrimarySmtpAddress, "u3@contoso.com")
  -- cut short: the end line is missing
  local text = assert(require("t2t.core.fs").read_file(path, 1 << 20))
  local f = assert(io.open(path, "wb"))
  f:write((text:gsub('{"t2t%-end":3}\n$', "")))
  f:close()
  local none, err = collection.read(path)
  lu.assertNil(none)
  lu.assertStrContains(err, "was cut short after 3 users")
  -- not a collection at all
  f = assert(io.open(path, "wb"))
  f:write('{"some":"json"}\n')
  f:close()
  none, err = collection.read(path)
  lu.assertNil(none)
  lu.assertStrContains(err, "is not a t2t users collection")
  os.remove(path)
  -- a FIFO is refused, not waited on
  local fifo = os.tmpname()
  os.remove(fifo)
  if os.execute("mkfifo '" .. fifo .. "' 2>/dev/null") then
    none, err = collection.read(fifo)
    lu.assertNil(none)
    lu.assertStrContains(err, fifo)
    os.remove(fifo)
  end
  -- an aborted writer leaves nothing behind
  w = assert(collection.writer(path, {}))
  w:abort()
  lu.assertNil(io.open(path, "r"))
  lu.assertNil(io.open(path .. ".t2t-partial", "r"))
end

-- Exchange prints an unset GUID as null (JSON null): the record keeps no ArchiveGuid for it.
function TestMailuserRules.test_null_guids_are_unset()
  local null = require("cjson").null
  lu.assertTrue(C.is_zero(null))
  lu.assertTrue(C.is_zero(C.ZERO))
  lu.assertFalse(C.guid_eq(null, null))
  local r = export.record({ Name = "a", ArchiveGuid = null, DisabledArchiveGuid = null,
                            ExchangeGuid = "11111111-2222-3333-4444-555555555555" })
  lu.assertNil(r.ArchiveGuid)
  lu.assertNil(r.DisabledArchiveGuid)
end

-- On a terminal, a change the plan shows while the bar is up goes on a line of its own (the bar
-- line cleared first, redrawn after): ctx:say prints above the live bar.
function TestMailuserRules.test_progress_keeps_changes_off_the_bar()
  local session = require "t2t.mailuser.session"
  local err = {}
  local fake = { write = function(_, ...) for _, s in ipairs({ ... }) do err[#err + 1] = s end end,
                 flush = function() end }
  local ctx = require("t2t.context").new({}, { name = "t" })
  local bar = session.progress(ctx, "Preparing users", 2, { tty = true, err = fake })
  bar:update(1)
  local write = io.write
  io.write = function(...) for _, s in ipairs({ ... }) do err[#err + 1] = "<" .. s .. ">" end end
  local ok, e = pcall(ctx.say, ctx, "+ create mail user 'a'")
  io.write = write
  assert(ok, e)
  local text = table.concat(err)
  lu.assertStrContains(text, "\r\27[K<+ create mail user 'a'><\n>Preparing users")
  lu.assertStrContains(text, "1/2")
  bar:finish()
  lu.assertNil(session.progress(ctx, "none", 0))
end
