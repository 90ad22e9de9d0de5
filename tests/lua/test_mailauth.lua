-- SPF (RFC 7208) and DMARC (RFC 7489 / RFC 9989) against a real DNS server (Knot): parsing,
-- check_host(), the lookup and void-lookup limits, redirect, macros, DMARC discovery by tree
-- walk, sp for subdomains, several records, the Organizational Domain from the PSL.
local lu = require "luaunit"
local spf = require "t2t.dkim.spf"
local dmarc = require "t2t.dkim.dmarc"
local dns = require "t2t.dns"
local ds = require "t2t.sim.dnsserver"

TestMailAuth = {}

local srv, r

local function many(n)
  local b = { "v=spf1" }
  for i = 1, n do b[#b + 1] = "include:a.spf.test" end
  return table.concat(b, " ") .. " -all"
end

local SPF = {
  { name = "a", type = "TXT", data = "v=spf1 ip4:192.0.2.0/24 -all" },
  { name = "inc", type = "TXT", data = "v=spf1 include:a.spf.test ~all" },
  { name = "red", type = "TXT", data = "v=spf1 redirect=a.spf.test" },
  { name = "redall", type = "TXT", data = "v=spf1 -all redirect=a.spf.test" },
  { name = "mx", type = "TXT", data = "v=spf1 mx -all" }, { name = "mx", type = "MX", data = "10 mail.spf.test." },
  { name = "mail", type = "A", data = "198.51.100.7" },
  { name = "aa", type = "TXT", data = "v=spf1 a:host.spf.test/24 -all" }, { name = "host", type = "A", data = "203.0.113.9" },
  { name = "ex", type = "TXT", data = "v=spf1 exists:%{ir}.%{l}._spf.spf.test -all" },
  { name = "7.2.0.192.user._spf", type = "A", data = "127.0.0.2" },
  { name = "v6", type = "TXT", data = "v=spf1 ip6:2001:db8::/32 -all" },
  { name = "loop", type = "TXT", data = "v=spf1 include:loop.spf.test -all" },
  { name = "many", type = "TXT", data = many(11) },
  { name = "ten", type = "TXT", data = many(10) },
  { name = "void", type = "TXT", data = "v=spf1 a:n1.spf.test a:n2.spf.test a:n3.spf.test -all" },
  { name = "two", type = "TXT", data = "v=spf1 -all" }, { name = "two", type = "TXT", data = "v=spf1 ~all" },
  { name = "bad", type = "TXT", data = "v=spf1 foo:bar -all" },
  { name = "incnone", type = "TXT", data = "v=spf1 include:none.spf.test -all" },
  { name = "none", type = "TXT", data = "not spf" },
  { name = "neutral", type = "TXT", data = "v=spf1 ?all" },
}

function TestMailAuth.setupClass()
  if not ds.available() then return end
  srv = assert(ds.start { zones = {
    ["spf.test"] = { records = SPF },
    ["example.com"] = { records = {
      { name = "_dmarc", type = "TXT", data = "v=DMARC1; p=reject; sp=quarantine; rua=mailto:a@example.com" } } },
    ["two.example"] = { records = {
      { name = "_dmarc", type = "TXT", data = "v=DMARC1; p=none" }, { name = "_dmarc", type = "TXT", data = "v=DMARC1; p=reject" } } },
    ["example"] = { records = {} }, ["com"] = { records = {} },
  } })
  r = dns.resolver { servers = srv.address, timeout = 500, tries = 1 }
end

function TestMailAuth.teardownClass()
  if r then r:close() end
  if srv then srv:stop() end
end

function TestMailAuth:setUp()
  lu.skipIf(not srv, "knot is not installed")
end

function TestMailAuth.test_spf_parse()
  local rec = assert(spf.parse("v=spf1 +ip4:192.0.2.1/32 -a:x.example/24//64 ~mx ?include:y.example exp=e.%{d} -all"))
  lu.assertEquals(#rec.terms, 6)
  lu.assertEquals(rec.terms[2].qualifier, "-")
  lu.assertEquals(rec.terms[2].cidr4, 24)
  lu.assertEquals(rec.terms[2].cidr6, 64)
  lu.assertEquals(rec.terms[5].modifier, "exp")
  lu.assertNil(spf.parse("v=spf2 -all"))
  lu.assertNil(spf.parse("v=spf1 ip4:300.1.1.1 -all"))
  lu.assertNil(spf.parse("v=spf1 redirect=a redirect=b"))
  lu.assertNil(spf.parse("v=spf1 include -all"))
  lu.assertNotNil(spf.parse("v=spf1 unknownmod=1 -all"))          -- unknown modifiers are ignored
end

function TestMailAuth.test_check_host()
  local function ch(ip, d, s) return (spf.check_host(r, ip, d .. ".spf.test", s or ("user@" .. d .. ".spf.test"))) end
  lu.assertEquals(ch("192.0.2.5", "a"), "pass")
  lu.assertEquals(ch("10.0.0.1", "a"), "fail")
  lu.assertEquals(ch("192.0.2.5", "inc"), "pass")
  lu.assertEquals(ch("10.0.0.1", "inc"), "softfail")
  lu.assertEquals(ch("192.0.2.5", "red"), "pass")
  lu.assertEquals(ch("192.0.2.5", "redall"), "fail")             -- redirect ignored beside all
  lu.assertEquals(ch("198.51.100.7", "mx"), "pass")
  lu.assertEquals(ch("203.0.113.200", "aa"), "pass")             -- a: with /24
  lu.assertEquals(ch("192.0.2.7", "ex"), "pass")                  -- %{ir}.%{l} macros
  lu.assertEquals(ch("192.0.2.8", "ex"), "fail")
  lu.assertEquals(ch("2001:db8::1", "v6"), "pass")
  lu.assertEquals(ch("2001:db9::1", "v6"), "fail")
  lu.assertEquals(ch("192.0.2.5", "loop"), "permerror")
  lu.assertEquals(ch("10.0.0.1", "many"), "permerror")           -- 11 lookups
  lu.assertEquals(ch("10.0.0.1", "ten"), "fail")                  -- 10 are allowed
  lu.assertEquals(ch("10.0.0.1", "void"), "permerror")            -- 3 void lookups
  lu.assertEquals(ch("10.0.0.1", "two"), "permerror")
  lu.assertEquals(ch("10.0.0.1", "bad"), "permerror")
  lu.assertEquals(ch("10.0.0.1", "incnone"), "permerror")
  lu.assertEquals(ch("10.0.0.1", "none"), "none")
  lu.assertEquals(ch("10.0.0.1", "neutral"), "neutral")
  lu.assertEquals(ch("10.0.0.1", "nxdomain-here"), "none")
  lu.assertEquals((spf.check_host(r, "not-an-ip", "a.spf.test", "x@y")), "permerror")
end

function TestMailAuth.test_spf_analyze()
  local a = spf.analyze(r, "inc.spf.test")
  lu.assertEquals(a.result, "pass")
  lu.assertEquals(a.lookups, 1)
  lu.assertEquals(a.includes, { "a.spf.test" })
  lu.assertEquals(a.all, "~")
  a = spf.analyze(r, "red.spf.test")
  lu.assertEquals(a.all, "-")                                     -- the redirect target's all
  lu.assertEquals(spf.analyze(r, "many.spf.test").result, "permerror")
  lu.assertEquals(spf.analyze(r, "ten.spf.test").result, "pass")
  a = spf.analyze(r, "void.spf.test")
  lu.assertEquals(a.result, "permerror")
  lu.assertEquals(a.void, 3)
  lu.assertEquals(spf.analyze(r, "two.spf.test").result, "permerror")
  lu.assertEquals(spf.analyze(r, "none.spf.test").result, "none")
  lu.assertEquals(spf.analyze(r, "incnone.spf.test").result, "permerror")
end

function TestMailAuth.test_spf_macros()
  local env = { sender = "strong-bad@email.example.com", domain = "email.example.com", ip = "192.0.2.3" }
  lu.assertEquals(spf.expand("%{s}", env), "strong-bad@email.example.com")   -- RFC 7208 §7.4
  lu.assertEquals(spf.expand("%{o}", env), "email.example.com")
  lu.assertEquals(spf.expand("%{d4}", env), "email.example.com")
  lu.assertEquals(spf.expand("%{d2}", env), "example.com")
  lu.assertEquals(spf.expand("%{dr}", env), "com.example.email")
  lu.assertEquals(spf.expand("%{d2r}", env), "example.email")
  lu.assertEquals(spf.expand("%{l}", env), "strong-bad")
  lu.assertEquals(spf.expand("%{l-}", env), "strong.bad")
  lu.assertEquals(spf.expand("%{lr-}", env), "bad.strong")
  lu.assertEquals(spf.expand("%{l1r-}", env), "strong")
  lu.assertEquals(spf.expand("%{ir}.%{v}._spf.%{d2}", env), "3.2.0.192.in-addr._spf.example.com")
  env.ip = "2001:db8::cb01"
  lu.assertEquals(spf.expand("%{ir}.%{v}._spf.%{d2}", env),
    "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com")
  lu.assertNil(spf.expand("%{x}", env))
  lu.assertNil(spf.expand("%", env))
end

function TestMailAuth.test_dmarc_parse()
  local d = assert(dmarc.parse("v=DMARC1; p=Reject; pct=50; rf=afrf; rua=mailto:a@x.org,mailto:b@y.org!10m"))
  lu.assertEquals(d.p, "reject")
  lu.assertEquals(#d.rua, 2)
  lu.assertEquals(d.rua[2].size, "10m")
  lu.assertEquals(#d.warnings, 2)                                 -- pct and rf removed by RFC 9989
  lu.assertNil(dmarc.parse("v=spf1 -all"))
  lu.assertNil(dmarc.parse("p=reject; v=DMARC1"))                 -- v must come first
  d = assert(dmarc.parse("v=DMARC1; p=bogus; rua=mailto:a@x.org"))
  lu.assertEquals(#d.errors, 1)
  d = assert(dmarc.parse("v=DMARC1; rua=http://x"))
  lu.assertStrContains(d.errors[1], "mailto")
  lu.assertStrContains(d.warnings[1], "no p=")
  d = assert(dmarc.parse("v=DMARC1;p=none;;"))                    -- lenient about empty specs
  lu.assertEquals(d.p, "none")
end

function TestMailAuth.test_dmarc_tree_walk()
  local names = dmarc.walk_names("a.b.c.d.e.f.g.h.i.example.com")
  lu.assertEquals(#names, 8)
  lu.assertEquals(names[1], "a.b.c.d.e.f.g.h.i.example.com")
  lu.assertEquals(names[2], "e.f.g.h.i.example.com")              -- jumps to 7 labels
  lu.assertEquals(names[8], "com")
  lu.assertEquals(dmarc.walk_names("x.example.com"), { "x.example.com", "example.com", "com" })
end

function TestMailAuth.test_dmarc_discovery()
  local d = assert(dmarc.discover(r, "example.com"))
  lu.assertEquals(d.applies, "reject")
  lu.assertFalse(d.subdomain)
  d = assert(dmarc.discover(r, "deep.sub.example.com"))
  lu.assertEquals(d.source, "example.com")
  lu.assertEquals(d.applies, "quarantine")                        -- sp for a subdomain
  lu.assertEquals(d.queries, { "_dmarc.deep.sub.example.com", "_dmarc.sub.example.com", "_dmarc.example.com" })
  d = assert(dmarc.discover(r, "two.example"))
  lu.assertStrContains(d.problem, "2 DMARC records")
  d = assert(dmarc.discover(r, "nothing.example"))
  lu.assertNil(d.record)
end

function TestMailAuth.test_org_domain_from_the_psl()
  local org, why = dmarc.org_domain("mail.fabrikam.co.uk")
  lu.skipIf(not org and why:find("not installed", 1, true), why)
  lu.assertEquals(org, "fabrikam.co.uk")                          -- not "the last two labels"
  lu.assertEquals(dmarc.org_domain("x.y.example.com"), "example.com")
  lu.assertNil(dmarc.org_domain("co.uk"))
end
