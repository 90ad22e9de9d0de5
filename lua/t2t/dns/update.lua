-- t2t.dns.update: RFC 2136 dynamic updates signed with TSIG (RFC 8945, hmac-sha256).
--
--   local ok, err = require("t2t.dns").update {
--     server = "ns1.example.net:53", zone = "contoso.com",
--     key = { name = "t2t-update", algorithm = "hmac-sha256", secret = "base64..." },
--     delete = { { name = "selector1._domainkey.contoso.com", type = "CNAME" } },   -- RRsets
--     add = { { name = "selector1._domainkey.contoso.com", type = "CNAME", ttl = 3600,
--               data = "selector1-contoso-com._domainkey.contoso.onmicrosoft.com." } },
--   }
-- Deletes come first, so delete + add of one RRset replaces it (re-running changes nothing).
-- The answer's TSIG is verified too: a response that does not prove the key is an error.
-- parse_key(text) reads a key as BIND/Knot write it (key "name" { algorithm ...; secret "..."; };)
-- or as nsupdate -y takes it ([hmac-sha256:]name:secret).
local crypto = require "t2t.crypto"

local M = {}

local ALGS = { ["hmac-sha256"] = "sha256" }
local CLASS_IN, CLASS_ANY, TYPE_TSIG, OPCODE_UPDATE = 1, 255, 250, 5
local FUDGE = 300

local ErrMT = { __tostring = function(e) return e.message end }
local function fail(code, fmt, ...)
  return nil, setmetatable({ code = code, service = "dns", message = string.format(fmt, ...) }, ErrMT)
end

-- wire_name("a.b.") -> the uncompressed wire form, lower-cased (canonical for TSIG).
local function wire_name(name)
  name = name:gsub("%.$", "")
  local b = {}
  if name ~= "" then
    for label in (name .. "."):gmatch("([^.]*)%.") do
      if #label == 0 or #label > 63 then error("bad DNS name: " .. name, 0) end
      b[#b + 1] = string.char(#label) .. label:lower()
    end
  end
  b[#b + 1] = "\0"
  return table.concat(b)
end
M.wire_name = wire_name

local function ipv4(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  if not (a and a < 256 and b < 256 and c < 256 and d < 256) then error("bad IPv4 address: " .. s, 0) end
  return string.char(a, b, c, d)
end

local function ipv6(s)
  local head, tail = s:match("^(.-)::(.*)$")
  local function groups(x)
    local g = {}
    for h in x:gmatch("[^:]+") do
      local n = tonumber(h, 16)
      if not n or #h > 4 then error("bad IPv6 address: " .. s, 0) end
      g[#g + 1] = n
    end
    return g
  end
  local g
  if head then
    local a, b = groups(head), groups(tail)
    if #a + #b > 7 then error("bad IPv6 address: " .. s, 0) end
    g = a
    for _ = 1, 8 - #a - #b do g[#g + 1] = 0 end
    for _, v in ipairs(b) do g[#g + 1] = v end
  else
    g = groups(s)
  end
  if #g ~= 8 then error("bad IPv6 address: " .. s, 0) end
  return string.pack(">I2I2I2I2I2I2I2I2", table.unpack(g))
end

local function txt(s)
  local b = {}
  for i = 1, math.max(1, #s), 255 do
    local chunk = s:sub(i, i + 254)
    b[#b + 1] = string.char(#chunk) .. chunk
  end
  return table.concat(b)
end

local RDATA = {
  A = ipv4, AAAA = ipv6, CNAME = wire_name, NS = wire_name, PTR = wire_name, TXT = txt,
  MX = function(s)
    local pref, host = s:match("^%s*(%d+)%s+(%S+)%s*$")
    if not pref then error("MX data must be 'PREFERENCE HOST': " .. s, 0) end
    return string.pack(">I2", tonumber(pref)) .. wire_name(host)
  end,
}
local TYPES = { A = 1, NS = 2, CNAME = 5, PTR = 12, MX = 15, TXT = 16, AAAA = 28, ANY = 255 }

local function rr(name, rtype, class, ttl, rdata)
  return wire_name(name) .. string.pack(">I2I2I4s2", rtype, class, ttl, rdata)
end

-- The TSIG variables (RFC 8945 §4.3.3) after the message (and the request MAC, for answers).
local function tsig_vars(key, alg, time, err, other)
  return wire_name(key.name) .. string.pack(">I2I4", CLASS_ANY, 0) .. wire_name(alg) ..
         string.pack(">I2I4I2I2s2", time >> 32, time & 0xffffffff, FUDGE, err, other or "")
end

local function secret_bytes(key)
  local ok, s = pcall(crypto.base64_decode, key.secret or "")
  if not ok or not s or #s == 0 then error("the TSIG key's secret is not base64", 0) end
  return s
end

-- message(o) -> the signed UPDATE, the request MAC.
function M.message(o)
  local id = 0
  local zone = o.zone:gsub("%.$", "")
  local updates = {}
  for _, d in ipairs(o.delete or {}) do       -- delete an RRset: class ANY, no rdata (§2.5.2)
    local t = TYPES[(d.type or "ANY"):upper()] or error("unknown type " .. tostring(d.type), 0)
    updates[#updates + 1] = rr(d.name, t, CLASS_ANY, 0, "")
  end
  for _, a in ipairs(o.add or {}) do
    local t = a.type:upper()
    local enc = RDATA[t] or error("dns.update cannot encode " .. t .. " records", 0)
    updates[#updates + 1] = rr(a.name, TYPES[t], CLASS_IN, a.ttl or 3600, enc(a.data))
  end
  local header = string.pack(">I2I2I2I2I2I2", id, OPCODE_UPDATE << 11, 1, 0, #updates, 0)
  local body = wire_name(zone) .. string.pack(">I2I2", 6, CLASS_IN) .. table.concat(updates)
  local key = o.key
  local alg = (key.algorithm or "hmac-sha256"):lower()
  if not ALGS[alg] then error("TSIG algorithm " .. alg .. " is not supported (use hmac-sha256)", 0) end
  local time = o.time or os.time()
  local msg = header .. body
  local mac = crypto.hmac(ALGS[alg], secret_bytes(key), msg .. tsig_vars(key, alg, time, 0))
  local tsig = wire_name(alg) .. string.pack(">I2I4I2s2I2I2s2", time >> 32, time & 0xffffffff,
                                             FUDGE, mac, id, 0, "")
  local signed = string.pack(">I2I2I2I2I2I2", id, OPCODE_UPDATE << 11, 1, 0, #updates, 1) ..
                 body .. rr(key.name, TYPE_TSIG, CLASS_ANY, 0, tsig)
  return signed, mac
end

local TSIG_ERRORS = { [16] = "BADSIG", [17] = "BADKEY", [18] = "BADTIME", [22] = "BADTRUNC" }

-- verify_answer(raw, parsed, key, request_mac) -> true | nil, err
function M.verify_answer(raw, resp, key, request_mac)
  local last = resp.additional[#resp.additional]
  if not last or last.type ~= "TSIG" then return fail("tsig", "the server's answer is not signed with the TSIG key") end
  local alg = last.algorithm:lower():gsub("%.$", "")
  if not ALGS[alg] then return fail("tsig", "the answer is signed with %s", alg) end
  local unsigned = raw:sub(1, last.offset)
  local arcount = string.unpack(">I2", unsigned, 11)
  unsigned = string.pack(">I2", last.original_id) .. unsigned:sub(3, 10) ..
             string.pack(">I2", arcount - 1) .. unsigned:sub(13)
  local data = string.pack(">s2", request_mac) .. unsigned ..
               tsig_vars(key, alg, last.time_signed, last.error, last.other)
  local want = crypto.hmac(ALGS[alg], secret_bytes(key), data)
  if not crypto.equal(want, last.mac) then return fail("tsig", "the answer's TSIG signature does not verify") end
  return true
end

local RCODE_HELP = {
  NOTAUTH = "the server did not accept the TSIG key (NOTAUTH): check its name, algorithm and secret",
  REFUSED = "the server refused the update (REFUSED): is the zone's update ACL open to this key?",
  NOTZONE = "a name is outside the zone (NOTZONE)",
  SERVFAIL = "the server failed to apply the update (SERVFAIL)",
}

-- send{server, zone, key, delete, add} -> true | nil, err (module header).
function M.send(o)
  assert(type(o) == "table" and o.server and o.zone and o.key, "dns.update: server, zone and key are required")
  local dns = require "t2t.dns"
  local ok, pkt, mac = pcall(M.message, o)
  if not ok then return fail("usage", "%s", tostring(pkt)) end
  local r, rerr = dns.resolver { servers = o.server, timeout = o.timeout or 3000, tries = 2 }
  if not r then return nil, rerr end
  local resp, raw = r:exchange(pkt)
  r:close()
  if not resp then return nil, raw end
  if resp.rcode_name ~= "NOERROR" then
    local last = resp.additional[#resp.additional]
    local terr = last and last.type == "TSIG" and TSIG_ERRORS[last.error]
    local why = RCODE_HELP[resp.rcode_name] or resp.rcode_name
    if resp.rcode_name == "NOTAUTH" and not terr then   -- RFC 2136: not authoritative for it
      why = "the server is not authoritative for " .. o.zone .. " (NOTAUTH)"
    end
    return fail(resp.rcode_name:lower(), "update of %s at %s: %s%s", o.zone, o.server, why,
                terr and (" [" .. terr .. "]") or "")
  end
  local vok, verr = M.verify_answer(raw, resp, o.key, mac)
  if not vok then return nil, verr end
  return true
end

-- parse_key(text) -> {name, algorithm, secret} | nil, err (module header).
function M.parse_key(text)
  text = tostring(text or "")
  local name = text:match('key%s+"?([%w%._%-]+)"?%s*{')
  if name then
    local alg = text:match("algorithm%s+\"?([%w%-]+)\"?%s*;")
    local secret = text:match('secret%s+"([^"]+)"%s*;')
    if not secret then return nil, "the key file has no secret \"...\";" end
    return { name = name, algorithm = (alg or "hmac-sha256"):lower(), secret = secret }
  end
  local a, b, c = text:match("^%s*([^:%s]+):([^:%s]+):([^:%s]+)%s*$")
  if a then return { algorithm = a:lower(), name = b, secret = c } end
  a, b = text:match("^%s*([^:%s]+):([^:%s]+)%s*$")
  if a then return { algorithm = "hmac-sha256", name = a, secret = b } end
  return nil, "not a TSIG key: give a BIND/Knot key file or [hmac-sha256:]NAME:SECRET"
end

return M
