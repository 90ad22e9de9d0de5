-- t2t.dkim.verify: verify the DKIM signatures of a message, keys from DNS (t2t.dns), verdicts
-- per signature in RFC 8601 words, and an Authentication-Results line.
--
--   local v = require("t2t.dkim.verify").new { resolver = dns.default(), now = os.time() }
--   local r = v:verify(raw)
--   r.signatures[i] = {result, reason, d, s, a, i, bits, testing, unsigned_bytes, key_name}
--   r.from_domain, r.from_count, r.warnings, v:authentication_results(r, "mx.example.net")
--
-- Keys are cached per name for their TTL (at least 60 s), so a batch of messages from one
-- signer costs one lookup.  At most max_signatures (default 8) are verified per message; the
-- others get "policy" — a message with thousands of signatures must not cost thousands of
-- lookups and RSA operations.
local C = require "t2t.core.dkim"

local M = {}
M.MAX_SIGNATURES = 8

local V = {}
V.__index = V

function M.new(o)
  o = o or {}
  return setmetatable({ resolver = o.resolver or require("t2t.dns").default(), now = o.now,
                        max = o.max_signatures or M.MAX_SIGNATURES, cache = o.cache or {},
                        min_rsa_bits = o.min_rsa_bits, lookups = 0,
                        verify_opts = { now = o.now, min_rsa_bits = o.min_rsa_bits } }, V)
end

-- key(name) -> Key | nil, result, reason (result "permerror" or "temperror").
function V:key(name)
  local now = os.time()
  local c = self.cache[name]
  if c and c.expires > now then return c.key, c.result, c.reason end
  self.lookups = self.lookups + 1
  local txt, r = self.resolver:txt(name)
  local entry
  if not txt then
    entry = { result = "temperror", reason = "key lookup failed: " .. tostring(r), expires = now + 5 }
  elseif #txt == 0 then
    entry = { result = "permerror", reason = "no key for signature (" .. r.status .. " at " .. name .. ")",
              expires = now + 60 }
  else
    local why
    for _, t in ipairs(txt) do                -- the first record that is a usable key
      local k, e = C.key(t)
      if k then entry = { key = k } break end
      why = why or e
    end
    entry = entry or { result = "permerror", reason = "unusable key record: " .. tostring(why) }
    entry.expires = now + math.max(60, r.ttl or 60)
  end
  self.cache[name] = entry
  return entry.key, entry.result, entry.reason
end

local function domain_of(addr)
  local d = addr:match("<[^>]*@([^>%s]+)>") or addr:match("@([%w%.%-_]+)")
  return d and d:lower()
end

-- verify(raw) -> {signatures = {...}, from_domain, from_count, warnings}
function V:verify(raw)
  local m = C.message(raw)
  local nfrom, from = m:from()
  local out = { signatures = {}, warnings = {}, from_count = nfrom, from_domain = from and domain_of(from) }
  if out.from_count ~= 1 then
    out.warnings[#out.warnings + 1] = string.format("the message has %d From fields (RFC 5322 requires one)", out.from_count)
  end
  for i, s in ipairs(m:signatures()) do
    local r = { d = s.d, s = s.s, a = s.a, i = s.i, l = s.l, index = i }
    if i > self.max then
      r.result, r.reason = "policy", "more than " .. self.max .. " signatures: not verified"
    elseif s.error then
      r.result, r.reason = "permerror", s.error
    else
      r.key_name = s.s .. "._domainkey." .. s.d
      local k, res, why = self:key(r.key_name)
      if not k then
        r.result, r.reason = res, why
      else
        local v = m:verify(i, k, self.verify_opts)
        r.result, r.reason, r.bits, r.testing, r.unsigned_bytes = v.result, v.reason, v.bits, v.testing, v.unsigned_bytes
        if r.unsigned_bytes and r.unsigned_bytes > 0 then
          out.warnings[#out.warnings + 1] = string.format("signature %d (d=%s) signs only the first %s body bytes: %d bytes after them are unsigned (l=)",
                                                          i, s.d, s.l, r.unsigned_bytes)
        end
      end
    end
    out.signatures[#out.signatures + 1] = r
  end
  return out
end

-- aligned(d, from) -> "strict" | "relaxed" | nil (DMARC alignment of d= with the From domain;
-- relaxed compares the Organizational Domains, RFC 7489 §3.1.1).
function M.aligned(d, from)
  if not d or not from then return nil end
  d, from = d:lower(), from:lower()
  if d == from then return "strict" end
  local dmarc = require "t2t.dkim.dmarc"
  local a, b = dmarc.org_domain(d), dmarc.org_domain(from)
  if a and a == b then return "relaxed" end
  return nil
end

-- authentication_results(r, authserv) -> "Authentication-Results: ..." (RFC 8601).
function V.authentication_results(_, r, authserv)
  local parts = {}
  if #r.signatures == 0 then parts[1] = "dkim=none" end
  for _, s in ipairs(r.signatures) do
    local p = { "dkim=" .. s.result }
    if s.reason then p[#p + 1] = string.format('reason="%s"', s.reason:gsub('"', "'")) end
    if s.d then p[#p + 1] = "header.d=" .. s.d end
    if s.i then p[#p + 1] = "header.i=" .. s.i end
    if s.s then p[#p + 1] = "header.s=" .. s.s end
    if s.a then p[#p + 1] = "header.a=" .. s.a end
    parts[#parts + 1] = table.concat(p, " ")
  end
  return "Authentication-Results: " .. (authserv or "t2t") .. ";\r\n\t" .. table.concat(parts, ";\r\n\t")
end

return M
