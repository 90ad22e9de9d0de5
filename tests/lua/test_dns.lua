-- t2t.dns and t2t.dns.update against a real authoritative server (Knot DNS, started by
-- t2t.sim.dnsserver on loopback): multi-string and > 512-byte TXT (TCP fallback), CNAME
-- chains across zones, MX, A/AAAA, NXDOMAIN vs NODATA vs SERVFAIL vs REFUSED vs timeout vs no
-- server, the loop kept running while a lookup waits, RFC 2136 updates with TSIG.
-- Skipped when knot is not installed.
local lu = require "luaunit"
local t2t = require "t2t"
local dns = require "t2t.dns"
local ds = require "t2t.sim.dnsserver"

TestDns = {}

local srv, silent_pid, silent_port
local have = ds.available() ~= nil

local ZONES = {
  ["example.com"] = { records = {
    { name = "@", type = "TXT", data = "v=spf1 include:spf.protection.outlook.com -all" },
    { name = "big", type = "TXT", data = string.rep("k", 700) },          -- 3 strings, > 512 bytes
    { name = "www", type = "A", data = "192.0.2.10" },
    { name = "www", type = "AAAA", data = "2001:db8::10" },
    { name = "@", type = "MX", data = "10 mail.protection.outlook.com." },
    { name = "selector1._domainkey", type = "CNAME", data = "hop.example.net.", ttl = 300 },
    { name = "loop1", type = "CNAME", data = "loop2.example.com." },
    { name = "loop2", type = "CNAME", data = "loop1.example.com." },
    { name = "dangling", type = "CNAME", data = "nothing.example.net." },
  } },
  ["example.net"] = { records = {
    { name = "hop", type = "CNAME", data = "key.example.org." },
  } },
  ["example.org"] = { records = { { name = "key", type = "TXT", data = "v=DKIM1; k=rsa; p=AAAA" } } },
  ["broken.test"] = { broken = true },
  ["dyn.test"] = { dynamic = true, records = { { name = "@", type = "TXT", data = "start" } } },
}

-- A UDP socket that never answers: the timeout case.
local function start_silent()
  local p = assert(io.popen("/usr/bin/python3 -c 'import socket,time,sys\n" ..
    "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind((\"127.0.0.1\",0))\n" ..
    "print(s.getsockname()[1]);sys.stdout.flush();time.sleep(60)' & echo $!"))
  silent_pid = p:read("l")
  silent_port = p:read("l")
  p:close()
end

function TestDns.setupClass()
  if not have then return end
  srv = assert(ds.start { zones = ZONES })
  assert(dns.configure { servers = srv.address, timeout = 500, tries = 1 })
  start_silent()
end

function TestDns.teardownClass()
  if srv then srv:stop() end
  if silent_pid then os.execute("kill " .. silent_pid .. " 2>/dev/null") end
  dns.configure {}
end

function TestDns:setUp()
  lu.skipIf(not have, "knot (Knot DNS) is not installed")
end

function TestDns:test_txt_multi_string_and_tcp_fallback()
  local txt, r = dns.txt("big.example.com")
  lu.assertEquals(#txt, 1)
  lu.assertEquals(txt[1], string.rep("k", 700))       -- strings joined with nothing
  lu.assertEquals(#r.records[1].strings, 3)
  lu.assertTrue(r.response.length > 512)                -- did not fit UDP without EDNS:
  lu.assertFalse(r.response.tc)                          -- the whole answer came over TCP
  local spf = dns.txt("example.com")
  lu.assertEquals(spf[1], "v=spf1 include:spf.protection.outlook.com -all")
end

function TestDns:test_a_aaaa_mx()
  lu.assertEquals(dns.query("www.example.com", "A").records[1].address, "192.0.2.10")
  lu.assertEquals(dns.query("www.example.com", "AAAA").records[1].address, "2001:db8::10")
  local mx = dns.query("example.com", "MX").records[1]
  lu.assertEquals(mx.preference, 10)
  lu.assertEquals(mx.exchange, "mail.protection.outlook.com")
end

function TestDns:test_cname_chain_across_zones()
  local r = assert(dns.query("selector1._domainkey.example.com", "TXT"))
  lu.assertEquals(r.status, "ok")
  lu.assertEquals(#r.chain, 2)
  lu.assertEquals(r.chain[1].target, "hop.example.net")
  lu.assertEquals(r.chain[1].ttl, 300)
  lu.assertEquals(r.final, "key.example.org")
  lu.assertEquals(r.records[1].text, "v=DKIM1; k=rsa; p=AAAA")
  lu.assertEquals(r.ttl, 300)                            -- the smallest along the chain
  local c = assert(dns.query("selector1._domainkey.example.com", "CNAME"))
  lu.assertEquals(c.records[1].target, "hop.example.net")  -- asked for the CNAME: not followed
end

function TestDns:test_nxdomain_nodata_are_answers()
  local r = assert(dns.query("nope.example.com", "TXT"))
  lu.assertEquals(r.status, "nxdomain")
  r = assert(dns.query("www.example.com", "TXT"))
  lu.assertEquals(r.status, "nodata")
  r = assert(dns.query("dangling.example.com", "TXT"))  -- the chain ends in NXDOMAIN
  lu.assertEquals(r.status, "nxdomain")
  lu.assertEquals(#r.chain, 1)
  local txt, rr = dns.txt("nope.example.com")
  lu.assertEquals(txt, {})
  lu.assertEquals(rr.status, "nxdomain")
end

function TestDns:test_errors_kept_apart()
  local r, err = dns.query("x.broken.test", "TXT")
  lu.assertNil(r)
  lu.assertEquals(err.code, "servfail")
  lu.assertTrue(err.retryable)
  r, err = dns.query("not-served.example", "TXT")
  lu.assertEquals(err.code, "refused")
  r, err = dns.query("loop1.example.com", "TXT")
  lu.assertEquals(err.code, "loop")
  local silent = dns.resolver { servers = "127.0.0.1:" .. silent_port, timeout = 200, tries = 1 }
  r, err = silent:query("example.com", "TXT")
  lu.assertNil(r)
  lu.assertEquals(err.code, "timeout")
  silent:close()
  local none = dns.resolver { servers = "127.0.0.1:1", timeout = 200, tries = 1 }
  r, err = none:query("example.com", "TXT")
  lu.assertEquals(err.code, "connrefused")
  lu.assertStrContains(tostring(err), "no DNS server listens there")
  none:close()
  local bad = dns.resolver { servers = "not an address" }
  lu.assertNil(bad)
end

-- While one lookup waits for a server that never answers, other tasks run.
function TestDns:test_a_waiting_lookup_does_not_block_the_loop()
  local silent = dns.resolver { servers = "127.0.0.1:" .. silent_port, timeout = 400, tries = 1 }
  local waiting, seen_waiting = t2t.spawn(function() return silent:query("example.com", "A") end), nil
  local other = t2t.spawn(function()
    t2t.sleep(0.01)
    seen_waiting = waiting:status() == "waiting"
    return dns.txt("example.com")[1]
  end)
  local ok, spf = other:wait()
  lu.assertTrue(ok)
  lu.assertStrContains(spf, "v=spf1")
  lu.assertTrue(seen_waiting)
  local _, r, err = waiting:wait()
  lu.assertNil(r)
  lu.assertEquals(err.code, "timeout")
  silent:close()
  lu.assertEquals(t2t.stats().waits, 0)
end

function TestDns:test_many_parallel_lookups()
  local names = {}
  for i = 1, 200 do names[i] = (i % 2 == 0) and "example.com" or "www.example.com" end
  local res = t2t.parallel(names, function(n) return dns.query(n, "TXT").status end, { concurrency = 50 })
  for i, x in ipairs(res) do
    lu.assertTrue(x.ok)
    lu.assertEquals(x.value, i % 2 == 0 and "ok" or "nodata")
  end
end

function TestDns:test_rfc2136_update_with_tsig()
  local name = "selector1._domainkey.dyn.test"
  local function publish()
    return dns.update { server = srv.address, zone = "dyn.test", key = srv.tsig,
      delete = { { name = name, type = "CNAME" } },
      add = { { name = name, type = "CNAME", ttl = 3600, data = "t.example.net." } } }
  end
  lu.assertTrue(publish())
  lu.assertTrue(publish())                               -- replaces: still one record
  local r = assert(dns.query(name, "CNAME"))
  lu.assertEquals(#r.records, 1)
  lu.assertEquals(r.records[1].target, "t.example.net")
  lu.assertStrContains(srv:zone_text("dyn.test"), "t.example.net.")
  local wrong = { name = srv.tsig.name, algorithm = "hmac-sha256",
                  secret = require("t2t.crypto").base64_encode(string.rep("w", 32)) }
  local ok, err = dns.update { server = srv.address, zone = "dyn.test", key = wrong,
                               add = { { name = "a.dyn.test", type = "A", data = "192.0.2.1" } } }
  lu.assertNil(ok)
  lu.assertEquals(err.code, "notauth")
  lu.assertStrContains(tostring(err), "BADSIG")
  lu.assertEquals(dns.query("a.dyn.test", "A").status, "nxdomain")   -- nothing applied
  ok, err = dns.update { server = srv.address, zone = "example.com", key = srv.tsig,
                         add = { { name = "x.example.com", type = "A", data = "192.0.2.1" } } }
  lu.assertNil(ok)                                       -- a static zone takes no updates
end

function TestDns:test_tsig_key_formats()
  local upd = require "t2t.dns.update"
  local k = assert(upd.parse_key('key "t2t-update" {\n  algorithm hmac-sha256;\n  secret "c2VjcmV0";\n};\n'))
  lu.assertEquals(k, { name = "t2t-update", algorithm = "hmac-sha256", secret = "c2VjcmV0" })
  lu.assertEquals(upd.parse_key("hmac-sha256:k1:c2VjcmV0"), { name = "k1", algorithm = "hmac-sha256", secret = "c2VjcmV0" })
  lu.assertEquals(upd.parse_key("k1:c2VjcmV0").name, "k1")
  lu.assertNil(upd.parse_key("nonsense"))
end

function TestDns:test_zone_reload_serves_new_content()
  local zones = {}
  for k, v in pairs(ZONES) do zones[k] = v end
  zones["example.org"] = { records = { { name = "key", type = "TXT", data = "v=DKIM1; k=rsa; p=BBBB" } } }
  zones["added.test"] = { records = { { name = "@", type = "TXT", data = "new zone" } } }
  assert(srv:set_zones(zones))
  local deadline = t2t.now() + 5
  local a, b
  repeat
    a, b = (dns.txt("key.example.org") or {})[1], (dns.txt("added.test") or {})[1]
    if a ~= "v=DKIM1; k=rsa; p=BBBB" or b ~= "new zone" then t2t.sleep(0.02) end
  until (a == "v=DKIM1; k=rsa; p=BBBB" and b == "new zone") or t2t.now() > deadline
  lu.assertEquals(a, "v=DKIM1; k=rsa; p=BBBB")
  lu.assertEquals(b, "new zone")
  lu.assertEquals(dns.txt("dyn.test")[1], "start")       -- a dynamic zone is left alone
end

function TestDns:test_parse_rejects_garbage()
  lu.assertNil(dns.parse("short"))
  local msg = string.pack(">I2I2I2I2I2I2", 1, 0x8180, 0, 1, 0, 0) .. "\3abc\0" .. string.pack(">I2I2I4I2", 16, 1, 60, 10) .. "\20x"
  local r, err = dns.parse(msg)
  lu.assertNil(r)
  lu.assertStrContains(err, "malformed")
end
