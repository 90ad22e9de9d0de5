-- Seeded fuzzing of the parsers of outside input in the DKIM/SPF/DMARC code: the tag-list
-- parser (C), messages and DKIM-Signature fields (C), key records (C), SPF records, SPF macros
-- and DMARC records (Lua).  Mutations of real seeds with a fixed-seed PRNG, so a failure
-- repeats; T2T_FUZZ_SEED and T2T_FUZZ_N change the seed and the count.  Invariants: nothing
-- raises, results have the documented shape, and a parsed tag-list survives a round trip.
-- Run under SANITIZE=address,undefined too (make test does), where the C parsers are checked.
local lu = require "luaunit"
local C = require "t2t.core.dkim"
local S = require "t2t.core.dkim_sign"
local spf = require "t2t.dkim.spf"
local dmarc = require "t2t.dkim.dmarc"

TestParsersFuzz = {}

local SEED = tonumber(os.getenv("T2T_FUZZ_SEED") or "") or 20260601
local N = tonumber(os.getenv("T2T_FUZZ_N") or "") or 4000

-- xorshift64* — small, fast, the same everywhere.
local function prng(seed)
  local x = seed ~= 0 and seed or 88172645463325252
  return function(n)
    x = x ~ (x >> 12); x = x ~ (x << 25); x = x ~ (x >> 27)
    local v = (x * 2685821657736338717) >> 33
    return n and (v % n) + 1 or v
  end
end

local INTERESTING = { ";", "=", ":", " ", "\t", "\r", "\n", "\r\n ", "\0", "\128", "\255", '"', "%",
                      "{", "}", "/", "0", "9", "-", "+", "~", "?", "@", ",", "!", "v=", "b=", "h=" }

local function mutate(rand, s, seeds)
  local k = rand(6)
  local i = rand(#s + 1)
  if k == 1 and #s > 0 then                       -- flip a byte
    return s:sub(1, i - 1) .. string.char(rand(256) - 1) .. s:sub(i + 1)
  elseif k == 2 then                               -- insert something interesting
    return s:sub(1, i - 1) .. INTERESTING[rand(#INTERESTING)] .. s:sub(i)
  elseif k == 3 and #s > 0 then                    -- delete a range
    return s:sub(1, i - 1) .. s:sub(i + rand(8))
  elseif k == 4 and #s > 0 then                    -- duplicate a range
    local j = math.min(#s, i + rand(16))
    return s:sub(1, j) .. s:sub(i, j) .. s:sub(j + 1)
  elseif k == 5 then                               -- splice with another seed
    local o = seeds[rand(#seeds)]
    return s:sub(1, i - 1) .. o:sub(rand(#o + 1))
  end
  return s .. s:sub(1, rand(8))
end

local function run(seeds, check)
  local rand = prng(SEED)
  for n = 1, N do
    local s = seeds[rand(#seeds)]
    for _ = 1, rand(4) do s = mutate(rand, s, seeds) end
    local ok, err = pcall(check, s)
    if not ok then
      local shown = string.format("%q", s):gsub("[\128-\255]", function(c) return "\\" .. c:byte() end)
      error(string.format("input %d (seed %d): %s\ninput: %s", n, SEED, tostring(err), shown), 0)
    end
  end
end

local TAGLISTS = {
  "v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=selector1; h=From:Date:Subject; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA",
  "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB",
  "v=DKIM1; k=ed25519; t=y:s; h=sha256; s=email; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
  "v=DMARC1; p=reject; sp=none; pct=100; rua=mailto:a@example.com,mailto:b@example.net!10m; ruf=mailto:c@example.com; fo=1:d:s; adkim=s",
  " a = 1 ;\r\n\tb= x y z ;",
}

local NAME = "^[%a][%w_]*$"

local function check_taglist(s)
  for _, lenient in ipairs { false, true } do
    local t, err = C.taglist(s, lenient)
    if t == nil then
      assert(type(err) == "string", "no reason")
    else
      local parts = {}
      for i, name in ipairs(t) do
        assert(name:match(NAME), "bad name " .. name)
        local v = t[name]
        assert(type(v) == "string" and not v:find(";", 1, true), "bad value")
        parts[i] = name .. "=" .. v
      end
      local again = assert(C.taglist(table.concat(parts, "; "), lenient), "round trip failed")
      for _, name in ipairs(t) do assert(again[name] == t[name], "round trip changed " .. name) end
      assert(#again == #t, "round trip count")
    end
  end
end

function TestParsersFuzz.test_taglist() run(TAGLISTS, check_taglist) end

local function check_key(s)
  local k, err = C.key(s)
  assert(k or type(err) == "string")
  if k then
    local i = k:info()
    assert(i.type == "rsa" or i.type == "ed25519")
  end
end

function TestParsersFuzz.test_key_records() run(TAGLISTS, check_key) end

local MSGS = {}
do
  local f = io.open("tests/dkim/rfc8463-a3.eml", "rb")
  MSGS[1] = f:read("a")
  f:close()
  f = io.open("tests/dkim/rfc6376-a2.eml", "rb")
  MSGS[2] = f:read("a")
  f:close()
  MSGS[3] = "From: a@b.c\nDKIM-Signature: v=1; a=rsa-sha256; d=b.c; s=s; h=from:from; l=3; bh=AA==; b=AA==\n\nx"
  MSGS[4] = "no header at all"
end
local ED = assert(C.key("v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="))
local RESULTS = { pass = true, fail = true, permerror = true, temperror = true }

local function check_message(s)
  local m = C.message(s)
  for _, h in ipairs(m:headers()) do assert(type(h[1]) == "string" and type(h[2]) == "string") end
  assert(type(m:body()) == "string")
  for i, sig in ipairs(m:signatures()) do
    if not sig.error then assert(sig.d and sig.s, "a valid signature without d/s") end
    local r = m:verify(i, ED, { now = 1528637909 })
    assert(RESULTS[r.result], "result " .. tostring(r.result))
  end
end

function TestParsersFuzz.test_messages()
  local saved = N
  N = math.max(200, N // 4)                       -- each input verifies: fewer, bigger inputs
  local ok, err = pcall(run, MSGS, check_message)
  N = saved
  assert(ok, err)
end

function TestParsersFuzz.test_canonicalization()
  run(MSGS, function(s)
    local crlf = s:gsub("\r?\n", "\r\n")
    local simple, relaxed = S.canon_body(crlf, "simple"), S.canon_body(crlf, "relaxed")
    assert(simple:sub(-2) == "\r\n", "simple body must end in CRLF")
    assert(relaxed == "" or relaxed:sub(-2) == "\r\n")
    assert(S.canon_body(simple, "simple") == simple, "simple is not idempotent")
    -- a terminated body: no WSP before any CRLF, and relaxed is idempotent; an unterminated
    -- last line keeps one trailing SP (as dkimpy and OpenDKIM read it), nothing else differs
    local whole = crlf:sub(-2) == "\r\n" and crlf or crlf .. "\r\n"
    local r2 = S.canon_body(whole, "relaxed")
    assert(not r2:find("[ \t]\r\n"), "relaxed left WSP before a CRLF")
    assert(S.canon_body(r2, "relaxed") == r2, "relaxed is not idempotent")
    local t = relaxed:gsub(" \r\n$", "\r\n")       -- drop that SP: then as if terminated
    while t:sub(-4) == "\r\n\r\n" do t = t:sub(1, -3) end
    if t == "\r\n" then t = "" end
    assert(t == r2, "an unterminated line changed more than its end")
  end)
end

local SPFS = {
  "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 include:spf.protection.outlook.com a:mail.example.com/24//64 mx ~all",
  "v=spf1 exists:%{ir}.%{l1r-}.%{d}._spf.example.com redirect=_spf.example.com exp=explain.%{d}",
  "v=spf1 -all", "v=spf1 ?include:x ptr:y +all unknown=%{o}",
}

function TestParsersFuzz.test_spf()
  local env = { sender = "strong-bad@email.example.com", domain = "example.com", ip = "192.0.2.3" }
  run(SPFS, function(s)
    local rec, err = spf.parse(s)
    if rec then
      for _, t in ipairs(rec.terms) do assert(t.mechanism or t.modifier, "a term without a kind") end
    else
      assert(type(err) == "string")
    end
    local v, e = spf.expand(s, env)
    assert(type(v) == "string" or type(e) == "string")
    assert(spf.ip_bytes(s) == nil or #spf.ip_bytes(s) == 4 or #spf.ip_bytes(s) == 16)
  end)
end

function TestParsersFuzz.test_dmarc()
  run(TAGLISTS, function(s)
    local d, err = dmarc.parse(s)
    if d then
      assert(type(d.errors) == "table" and type(d.warnings) == "table" and type(d.rua) == "table")
    else
      assert(type(err) == "string")
    end
    dmarc.walk_names(s)
  end)
end
