-- The simulated mail-authentication world through the production clients: EXO DKIM configs
-- whose status follows DNS, Azure DNS zones in ARM, t2t.dkim ensure/rotate/publish/posture,
-- the 96-hour rotation with the simulator's clock, EXO-signed mail verified with keys from the
-- simulator's DNS server (Knot).  Skipped without knot.
local lu = require "luaunit"
local ok_sim, sim = pcall(require, "t2t.sim")
local ds = require "t2t.sim.dnsserver"
local tenant = require "t2t.tenant"
local plan = require "t2t.plan"
local dkim = require "t2t.dkim"
local publish = require "t2t.dkim.publish"
local dns = require "t2t.dns"

TestSimDkim = {}

local S, R

local function open(name, pl)
  local session = require "t2t.tenant.session"
  local p = S.profile.tenants[name]
  local c = assert(session.clients(p, { ca_file = S.ca_file, connect_to = S.connect_to }, S))
  c.exo.retry_base = 0.05
  return tenant.new { name = name, id = p.tenant_id, domain = p.initial_domain, plan = pl, exo = c.exo,
                      graph = c.graph, azure = c.azure, say = function() end, settle = 3, poll = 0.1 }
end

function TestSimDkim.setupClass()
  if not (ok_sim and ds.available()) then return end
  S = assert(sim.start { users = 5, seed = 3 })
  local info = assert(S:dns())
  R = dns.resolver { servers = info.address, timeout = 1000, tries = 2 }
end

function TestSimDkim.teardownClass()
  if R then R:close() end
  if S then S:stop() end
end

function TestSimDkim:setUp()
  lu.skipIf(not S, "the simulator or knot is not available")
end

local function row_of(rows, d)
  for _, r in ipairs(rows) do if r.domain == d then return r end end
end

function TestSimDkim.test_seeded_posture()
  local t = open("contoso", plan.new { out = function() end })
  local rows = assert(dkim.status(t))
  local com = row_of(rows, "contoso.com")
  lu.assertTrue(com.enabled)
  lu.assertEquals(com.status, "Valid")
  lu.assertEquals(com.format, "legacy")
  lu.assertEquals(row_of(rows, "contoso.mail.onmicrosoft.com").kind, "coexistence")
  lu.assertEquals(row_of(rows, "contoso.onmicrosoft.com").kind, "initial")
  local net = row_of(rows, "contoso.net")
  lu.assertEquals(net.status, "CnameMissing")
  local pub = require("t2t.dkim.checks").cnames(R, net)
  lu.assertEquals(pub.selectors[1].status, "txt")
  lu.assertEquals(pub.selectors[2].status, "doubled")
  local rep = assert(dkim.posture(t, { resolver = R }))
  local ids = {}
  for _, d in ipairs(rep.domains) do
    for _, r in ipairs(d.rules) do ids[d.domain .. " " .. r.id] = r.status end
  end
  lu.assertEquals(ids["contoso.com MS.EXO.3.1v1"], "pass")
  lu.assertEquals(ids["contoso.com MS.EXO.4.2v1"], "pass")
  lu.assertEquals(ids["contoso.net ORCA.235"], "fail")           -- ~all
  lu.assertEquals(ids["contoso.net T2T.DMARC.RECORD"], "warn")   -- pct removed by RFC 9989
  lu.assertEquals(ids["contoso-eu.com MS.EXO.2.2v3"], "fail")    -- two SPF records
  lu.assertEquals(ids["contoso.com ORCA.108.1"], "pass")
  lu.assertEquals(ids["contoso.mail.onmicrosoft.com MS.EXO.2.2v3"], "skip")
end

-- fabrikam.com lives in Azure DNS: ensure -> publish -> enable, then nothing left to change.
function TestSimDkim.test_setup_through_azure_dns_is_idempotent()
  local lines = {}
  local pl = plan.new { out = function(l) lines[#lines + 1] = l end }
  local t = open("fabrikam", pl)
  local row = assert(dkim.ensure(t, "fabrikam.com", { resolver = R }))
  lu.assertEquals(row.status, "CnameMissing")
  local ok, err = dkim.ensure(t, "fabrikam.com", { enable = true, resolver = R })
  lu.assertNil(ok)
  lu.assertEquals(err.code, "CnameMissing")                       -- not before DNS has them
  local recs = dkim.records(row)
  lu.assertEquals(recs[1].data, row.selectors[1].cname .. ".")
  assert(publish.azure(t, recs, {}))
  assert(publish.wait(recs, { resolver = R, timeout = 10, interval = 0.1 }))
  row = assert(dkim.ensure(t, "fabrikam.com", { enable = true, resolver = R }))
  lu.assertTrue(row.enabled)
  lu.assertEquals(row.status, "Valid")
  assert(dkim.signing_ok(t, "fabrikam.com", { resolver = R }))
  local before = pl.applied
  assert(dkim.ensure(t, "fabrikam.com", { enable = true, resolver = R }))
  local again = assert(publish.azure(t, recs, {}))
  lu.assertEquals(again.changed, 0)
  lu.assertEquals(pl.applied, before)                              -- re-running changed nothing
end

function TestSimDkim.test_plan_mode_changes_nothing()
  local pl = plan.new { dry_run = true, out = function() end }
  local t = open("fabrikam", pl)
  local row = assert(dkim.ensure(t, "fabrikam.co.uk", { resolver = R }))
  lu.assertTrue(row.planned)
  lu.assertEquals(pl.planned, 1)
  lu.assertNil(dkim.config(t, "fabrikam.co.uk"))
end

-- Rotation: the other selector signs 96 hours later; no second rotation meanwhile.
function TestSimDkim.test_rotation_and_signed_mail()
  local t = open("contoso", plan.new { out = function() end })
  local v = require("t2t.dkim.verify")
  local raw = assert(S:mail { tenant = "contoso", from = "ada@contoso.com" })
  local res = v.new({ resolver = R }):verify(raw)
  lu.assertEquals(res.signatures[1].result, "pass")
  lu.assertEquals(res.signatures[1].d, "contoso.com")
  lu.assertEquals(res.signatures[1].s, "selector1")
  local clock = assert(S:control("GET", "/_sim/clock"))
  local row = assert(dkim.rotate(t, "contoso.com", { key_size = 2048, now = clock.now }))
  lu.assertTrue(row.rotating)
  lu.assertEquals(row.next, "selector2")
  local ok, err = dkim.rotate(t, "contoso.com", { now = clock.now })
  lu.assertNil(ok)
  lu.assertEquals(err.code, "Rotating")
  raw = assert(S:mail { tenant = "contoso", from = "ada@contoso.com" })
  lu.assertEquals(v.new({ resolver = R }):verify(raw).signatures[1].s, "selector1")   -- not yet
  assert(S:control("POST", "/_sim/clock", { advance = 96 * 3600 + 60 }))
  raw = assert(S:mail { tenant = "contoso", from = "ada@contoso.com" })
  res = v.new({ resolver = R }):verify(raw)
  lu.assertEquals(res.signatures[1].s, "selector2")
  lu.assertEquals(res.signatures[1].result, "pass")
  lu.assertEquals(res.signatures[1].bits, 2048)
  -- an unconfigured custom domain is signed with the initial domain (dkim.md §1.5)
  raw = assert(S:mail { tenant = "contoso", from = "ada@contoso-eu.com" })
  res = v.new({ resolver = R }):verify(raw)
  lu.assertEquals(res.signatures[1].d, "contoso.onmicrosoft.com")
  lu.assertEquals(res.signatures[1].result, "pass")
end

-- The Azure DNS API as the provider answers it.
function TestSimDkim.test_azure_dns_api()
  local t = open("fabrikam", plan.new { out = function() end })
  local z = assert(publish.find_zone(t.azure, "x.fabrikam.com"))
  lu.assertEquals(z.name, "fabrikam.com")
  local base = z.id .. "/"
  local api = { api_version = publish.API }
  local put = function(typ, rel, props) return t.azure:arm("PUT", base .. typ .. "/" .. rel, { properties = props }, api) end
  local r = assert(put("TXT", "conflict", { TTL = 60, TXTRecords = { { value = { "hello" } } } }))
  lu.assertEquals(r.properties.fqdn, "conflict.fabrikam.com.")
  local _, err = put("CNAME", "conflict", { TTL = 60, CNAMERecord = { cname = "x.example.net" } })
  lu.assertEquals(err.status, 409)
  _, err = put("CNAME", "bad", { TTL = 60 })
  lu.assertEquals(err.status, 400)
  _, err = t.azure:arm("GET", base .. "CNAME/missing", nil, api)
  lu.assertEquals(err.status, 404)
  assert(t.azure:arm("DELETE", base .. "TXT/conflict", nil, api))
  assert(put("A", "www", { TTL = 300, ARecords = { { ipv4Address = "192.0.2.80" } } }))
  local q = assert(R:query("www.fabrikam.com", "A"))              -- served by the DNS server
  lu.assertEquals(q.records[1].address, "192.0.2.80")
  _, err = publish.find_zone(t.azure, "nowhere.example")
  lu.assertEquals(err.code, "NoZone")
end
