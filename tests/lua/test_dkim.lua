-- t2t.dkim verify and sign: RFC 6376 Appendix A and RFC 8463 Appendix A, dkimpy's packaged
-- test data (Debian python3-dkim; skipped without it), key-record variants, l=, oversigning,
-- sha1 and small keys never passing, expiry with an injected clock, the signature cap, both
-- RSA key encodings, and keys fetched from a real DNS server (Knot).
local lu = require "luaunit"
local dkim = require "t2t.dkim"
local verify = require "t2t.dkim.verify"

local DATA = "/usr/lib/python3/dist-packages/dkim/tests/data/"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function have(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local KEYS = {}
for line in io.lines("tests/dkim/rfc-keys.txt") do
  local n, v = line:match("^(%S+) (.*)$")
  if n then KEYS[n] = v end
end

-- A resolver stand-in over a table of TXT records (the DNS path is tested against Knot below).
local function table_resolver(keys)
  return { txt = function(_, name)
    local v = keys[name]
    if v == nil then return {}, { status = "nxdomain" } end
    if v == false then return nil, "SERVFAIL" end
    return { v }, { status = "ok", ttl = 300 }
  end }
end

local function results(raw, keys, o)
  o = o or {}
  o.resolver = table_resolver(keys or KEYS)
  local r = verify.new(o):verify(raw)
  local out = {}
  for i, s in ipairs(r.signatures) do out[i] = s.result end
  return table.concat(out, " "), r
end

local MSG = "From: Ada <ada@example.org>\r\nTo: bob@example.net\r\nSubject:  hello\r\n\tthere  \r\n" ..
            "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n\r\n" ..
            "line one  \r\n\r\nline\ttwo\r\n\r\n\r\n"

local function keypair(kind, bits)
  local pem, p = dkim.generate_key(kind, bits)
  return pem, "v=DKIM1; k=" .. kind .. "; p=" .. p
end

TestDkimVectors = {}

function TestDkimVectors.test_rfc8463_appendix_a()
  lu.assertEquals(results(read("tests/dkim/rfc8463-a3.eml")), "pass pass")
end

function TestDkimVectors.test_rfc6376_appendix_a()
  lu.assertEquals(results(read("tests/dkim/rfc6376-a2.eml")), "pass")
end

function TestDkimVectors.test_lf_only_files_verify()
  local lf = read("tests/dkim/rfc8463-a3.eml"):gsub("\r\n", "\n")
  lu.assertEquals(results(lf), "pass pass")
end

function TestDkimVectors.test_changes_break_it()
  local raw = read("tests/dkim/rfc6376-a2.eml")
  lu.assertEquals(results((raw:gsub("Is dinner ready%?", "Is dinner ready!"))), "fail")
  local s, r = results((raw:gsub("Joe%.", "Jim.")))
  lu.assertEquals(s, "fail")
  lu.assertEquals(r.signatures[1].reason, "body hash did not verify")
  lu.assertEquals(results((raw:gsub("DKIM%-Signature: v=1; ", "DKIM-Signature: "))), "permerror")
end

-- b= may be refolded with SP or TAB (whitespace in b= is ignored), relaxed header canon.
function TestDkimVectors.test_b_refolded()
  local raw = read("tests/dkim/rfc8463-a3.eml")
  raw = raw:gsub("b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n Fa3bT3FY5OsU7ZbnKELq%+eXdp1Q1Dw==",
                 "b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQ\r\n\tUdt9OdqQehSwhEIug4D11Bus Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==")
  lu.assertEquals(results(raw), "pass pass")
end

-- The DKIM Verifier key variants on RFC 6376 A.2 (dkim.md §4.F).
function TestDkimVectors.test_key_record_variants()
  local raw = read("tests/dkim/rfc6376-a2.eml")
  local base = KEYS["brisbane._domainkey.example.com"]
  local p = base:match("p=(%S+)")
  local function with(rec) return results(raw, { ["brisbane._domainkey.example.com"] = rec }) end
  lu.assertEquals(with("v=DKIM1; n=; p=" .. p), "pass")
  lu.assertEquals(with("v=DKIM1; h=sha1:sha256; p=" .. p), "pass")
  lu.assertEquals(with("v=DKIM1; s=*; p=" .. p), "pass")
  lu.assertEquals(with("v=DKIM1; s=email; p=" .. p), "pass")
  lu.assertEquals(with("v=DKIM1; g=*; p=" .. p), "pass")            -- unknown tags ignored
  lu.assertEquals(with("p=" .. p), "pass")                          -- v= is optional
  lu.assertEquals(with("v=DKIM1; p="), "permerror")                  -- revoked
  lu.assertEquals(with("v=DKIM1; h=sha1; p=" .. p), "permerror")     -- hash not allowed
  lu.assertEquals(with("v=DKIM1; s=other; p=" .. p), "permerror")
  lu.assertEquals(with("k=rsa; v=DKIM1; p=" .. p), "permerror")      -- v= not first
  lu.assertEquals(with("v=DKIM1; k=ed25519; p=" .. p), "permerror")  -- k does not match a
  local s, r = with("v=DKIM1; p=" .. p .. "; p=" .. p)
  lu.assertEquals(s, "permerror")                                    -- duplicate tag
  lu.assertStrContains(r.signatures[1].reason, "duplicate tag")
end

TestDkimData = {}

function TestDkimData:setUp()
  lu.skipIf(not have(DATA .. "test.txt"), "python3-dkim's test data is not installed")
end

-- dkim.md §4.A: the signed messages in dkimpy's package, with the records its tests use.
function TestDkimData.test_dkimpy_signed_messages()
  local ed = KEYS["brisbane._domainkey.football.example.com"]
  local a2 = { ["brisbane._domainkey.football.example.com"] = ed,
               ["test._domainkey.football.example.com"] = read(DATA .. "test.txt") }
  lu.assertEquals(results(read(DATA .. "rfc6376.signed.msg"), a2), "pass pass")
  lu.assertEquals(results(read(DATA .. "rfc6376.signed.rsa.msg"), a2), "pass")
  lu.assertEquals(results(read(DATA .. "rfc6376.signed.rsa.msg"),
                          { ["test._domainkey.football.example.com"] = read(DATA .. "test_bad.txt") }), "permerror")
  lu.assertEquals(results(read(DATA .. "ed25519test2.msg"), { ["sed._domainkey.test.ex"] = read(DATA .. "eximtest.dns") }), "pass")
  local s, r = results(read(DATA .. "test.message.baddomain"), a2)
  lu.assertEquals(s, "permerror")
  lu.assertStrContains(r.signatures[1].reason, "d=")
  -- the 2013 Gmail message with degenerate TAB folding; its key is inline in test_dkim.py
  local py = read(DATA .. "../test_dkim.py")
  local gmail = py:match("'20120113%._domainkey%.gmail%.com%.': \"\"\"(.-)\"\"\""):gsub("\\\n", "")
  lu.assertEquals(results(read(DATA .. "test2.message"), { ["20120113._domainkey.gmail.com"] = gmail }), "pass")
end

function TestDkimData.test_dkimpy_key_records()
  lu.assertNotNil(dkim.key(read(DATA .. "test2.txt")))               -- no k=: rsa implied
  lu.assertNil(dkim.key(read(DATA .. "badk.txt")))
  lu.assertNil(dkim.key(read(DATA .. "badversion.txt")))
  lu.assertNil(dkim.key(read(DATA .. "test_bad.txt")))
end

-- Both RSA encodings of p= (SubjectPublicKeyInfo and RSAPublicKey, erratum 3017).
function TestDkimData.test_both_rsa_key_encodings()
  local pem = read(DATA .. "1024_testkey.key")
  local sig = dkim.sign(MSG, { domain = "example.org", selector = "k", key = pem })
  for _, f in ipairs { "1024_testkey_wo_markers.pub.txt", "1024_testkey_wo_markers.pub.rsa.txt" } do
    lu.assertEquals(results(sig .. MSG, { ["k._domainkey.example.org"] = read(DATA .. f) }), "pass", f)
  end
  lu.assertStrContains(read(DATA .. "1024_testkey_wo_markers.pub.rsa.txt"), "p=MIGJAoGB")   -- RSAPublicKey
end

TestDkimSign = {}

function TestDkimSign.test_round_trip_all_canonicalizations_both_algorithms()
  for _, kind in ipairs { "rsa", "ed25519" } do
    local pem, rec = keypair(kind, 1024)
    for _, c in ipairs { "simple/simple", "simple/relaxed", "relaxed/simple", "relaxed/relaxed", "relaxed" } do
      local sig = dkim.sign(MSG, { domain = "example.org", selector = "s", key = pem, canon = c })
      lu.assertEquals(results(sig .. MSG, { ["s._domainkey.example.org"] = rec }), "pass", kind .. " " .. c)
    end
  end
end

function TestDkimSign.test_body_length_and_unsigned_bytes()
  local pem, rec = keypair("ed25519")
  local keys = { ["s._domainkey.example.org"] = rec }
  local sig = dkim.sign(MSG, { domain = "example.org", selector = "s", key = pem, body_length = true })
  local s, r = results(sig .. MSG .. "appended by someone else\r\n", keys)
  lu.assertEquals(s, "pass")
  lu.assertEquals(r.signatures[1].unsigned_bytes, 30)   -- the 2 empty lines (now inside) + 26
  lu.assertStrContains(r.warnings[1], "unsigned")
  local short = sig:gsub("l=(%d+);", function(n) return "l=" .. (tonumber(n) - 1) .. ";" end)
  lu.assertEquals((results(short .. MSG, keys)), "fail")             -- another l=: another body hash
  local over = dkim.sign(MSG, { domain = "example.org", selector = "s", key = pem, body_length = 3 })
  lu.assertEquals(results(over .. "From: a@example.org\r\n\r\n", keys), "permerror")   -- l= beyond the body
end

-- Oversigning: an added From breaks an oversigned signature; without it the bottom From is
-- the one signed (RFC verdict pass) and the message is flagged for its two From fields.
function TestDkimSign.test_oversigning()
  local pem, rec = keypair("rsa", 1024)
  local keys = { ["s._domainkey.example.org"] = rec }
  local plain = dkim.sign(MSG, { domain = "example.org", selector = "s", key = pem })
  local over = dkim.sign(MSG, { domain = "example.org", selector = "s", key = pem, oversign = true })
  lu.assertStrContains(over, "h=from:\r\n\tfrom:to:to:")      -- each name once more than present
  local added = "From: mallory@evil.example\r\n"
  lu.assertEquals(results(over .. MSG, keys), "pass")
  lu.assertEquals(results(over .. added .. MSG, keys), "fail")
  local s, r = results(plain .. added .. MSG, keys)
  lu.assertEquals(s, "pass")
  lu.assertEquals(r.from_count, 2)
  lu.assertStrContains(r.warnings[1], "2 From fields")
end

function TestDkimSign.test_sha1_and_small_rsa_never_pass()
  local pem, rec = keypair("rsa", 1024)
  local sig = dkim.sign(MSG, { domain = "example.org", selector = "s", key = pem })
  local s, r = results(sig:gsub("a=rsa%-sha256", "a=rsa-sha1") .. MSG, { ["s._domainkey.example.org"] = rec })
  lu.assertEquals(s, "permerror")
  lu.assertStrContains(r.signatures[1].reason, "RFC 8301")
  local small, srec = keypair("rsa", 512)
  local ssig = dkim.sign(MSG, { domain = "example.org", selector = "s", key = small })
  s, r = results(ssig .. MSG, { ["s._domainkey.example.org"] = srec }, { min_rsa_bits = 512 })
  lu.assertEquals(s, "permerror")                                   -- 1024 is the floor whatever is asked
  lu.assertStrContains(r.signatures[1].reason, "too small")
end

function TestDkimSign.test_expiry_with_injected_clock()
  local pem, rec = keypair("ed25519")
  local keys = { ["s._domainkey.example.org"] = rec }
  local sig = dkim.sign(MSG, { domain = "example.org", selector = "s", key = pem, time = 1000, expire = 2000 })
  lu.assertEquals(results(sig .. MSG, keys, { now = 1500 }), "pass")
  local s, r = results(sig .. MSG, keys, { now = 2001 })
  lu.assertEquals(s, "permerror")
  lu.assertStrContains(r.signatures[1].reason, "expired")
end

function TestDkimSign.test_key_flags_t_y_and_t_s()
  local pem, rec = keypair("rsa", 1024)
  local sig = dkim.sign(MSG, { domain = "example.org", selector = "s", key = pem, identity = "ada@mail.example.org" })
  local s, r = results(sig .. MSG, { ["s._domainkey.example.org"] = rec .. "; t=y" })
  lu.assertEquals(s, "pass")
  lu.assertTrue(r.signatures[1].testing)
  lu.assertEquals(results(sig .. MSG, { ["s._domainkey.example.org"] = rec .. "; t=s" }), "permerror")
end

-- The cap: a message with many signatures costs at most max_signatures verifications.
function TestDkimSign.test_signature_cap()
  local pem, rec = keypair("ed25519")
  local sig = dkim.sign(MSG, { domain = "example.org", selector = "s", key = pem })
  local s = results(sig .. sig .. sig .. MSG, { ["s._domainkey.example.org"] = rec }, { max_signatures = 2 })
  lu.assertEquals(s, "pass pass policy")
end

function TestDkimSign.test_key_lookup_outcomes()
  local pem, rec = keypair("ed25519")
  local sig = dkim.sign(MSG, { domain = "example.org", selector = "s", key = pem })
  local s, r = results(sig .. MSG, {})
  lu.assertEquals(s, "permerror")
  lu.assertStrContains(r.signatures[1].reason, "no key for signature")
  s, r = results(sig .. MSG, { ["s._domainkey.example.org"] = false })
  lu.assertEquals(s, "temperror")
  lu.assertEquals(results(MSG), "")
  local v = verify.new { resolver = table_resolver { ["s._domainkey.example.org"] = rec } }
  local res = v:verify(sig .. MSG)
  lu.assertStrContains(v:authentication_results(res, "mx.example.net"), "dkim=pass header.d=example.org header.s=s header.a=ed25519-sha256")
  v:verify(sig .. MSG)
  lu.assertEquals(v.lookups, 1)                                      -- the key is cached
  lu.assertEquals(verify.aligned("mail.example.org", "example.org"), "relaxed")
  lu.assertEquals(verify.aligned("example.org", "example.org"), "strict")
  lu.assertNil(verify.aligned("example.net", "example.org"))
end

function TestDkimSign.test_sign_refuses_bad_input()
  local pem = keypair("ed25519")
  lu.assertErrorMsgContains("no From", dkim.sign, "To: x@y.z\r\n\r\nbody\r\n", { domain = "a.b", selector = "s", key = pem })
  lu.assertErrorMsgContains("private key", dkim.sign, MSG, { domain = "a.b", selector = "s", key = "nope" })
  lu.assertErrorMsgContains("algorithm", dkim.sign, MSG, { domain = "a.b", selector = "s", key = pem, algorithm = "rsa-sha256" })
end

-- Keys from a real DNS server, through CNAMEs as Exchange Online publishes them.
TestDkimDns = {}

function TestDkimDns.test_keys_through_cnames_from_knot()
  local ds = require "t2t.sim.dnsserver"
  lu.skipIf(not ds.available(), "knot is not installed")
  local pem, rec = keypair("rsa", 1024)
  local srv = assert(ds.start { zones = {
    ["example.org"] = { records = { { name = "selector1._domainkey", type = "CNAME", data = "selector1-example-org._domainkey.tenant.onmicrosoft.com." } } },
    ["tenant.onmicrosoft.com"] = { records = { { name = "selector1-example-org._domainkey", type = "TXT", data = rec } } },
    ["broken.example"] = { broken = true } } })
  local dns = require "t2t.dns"
  local r = dns.resolver { servers = srv.address, timeout = 500, tries = 1 }
  local sig = dkim.sign(MSG, { domain = "example.org", selector = "selector1", key = pem })
  local res = verify.new({ resolver = r }):verify(sig .. MSG)
  lu.assertEquals(res.signatures[1].result, "pass")
  lu.assertEquals(res.signatures[1].bits, 1024)
  local bad = dkim.sign(MSG, { domain = "broken.example", selector = "s", key = pem })
  lu.assertEquals(verify.new({ resolver = r }):verify(bad .. MSG).signatures[1].result, "temperror")
  r:close()
  srv:stop()
end
