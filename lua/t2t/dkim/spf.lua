-- t2t.dkim.spf: SPF records (RFC 7208) — parsing, check_host() evaluation, and the analysis a
-- posture check needs without a sending IP: how many DNS-querying terms the record costs (the
-- 10-lookup limit, counted through include and redirect), void lookups (limit 2), which
-- includes it reaches, and the qualifier of its final "all".
--
--   spf.parse(text) -> {terms = {{qualifier, mechanism, value, cidr4, cidr6} | {modifier, value}}}
--                      | nil, err                       (err: why it is a permerror)
--   spf.record(resolver, domain) -> text | nil, result, why     (result: none | permerror | temperror)
--   spf.check_host(resolver, ip, domain, sender [, helo]) -> result, why
--   spf.analyze(resolver, domain) -> {result, record, lookups, void, includes, all, errors, notes}
local M = {}

M.LOOKUP_LIMIT = 10        -- RFC 7208 §4.6.4
M.VOID_LIMIT = 2
M.MX_LIMIT = 10

local QUALIFIERS = { ["+"] = "pass", ["-"] = "fail", ["~"] = "softfail", ["?"] = "neutral" }
local MECHANISMS = { all = true, include = true, a = true, mx = true, ptr = true, ip4 = true,
                     ip6 = true, exists = true }
local LOOKUP = { include = true, a = true, mx = true, ptr = true, exists = true }

---------------------------------------------------------------------------------------------
-- Parsing (RFC 7208 §4.6.1, §12)

local function cidrs(s)
  -- "domain/24//64", "/24", "//64" -> rest, cidr4, cidr6
  local rest, c6 = s:match("^(.-)//(%d+)$")
  if rest then s = rest end
  local r2, c4 = s:match("^(.-)/(%d+)$")
  if r2 then s = r2 end
  return s, tonumber(c4), tonumber(c6)
end

local function term(t)
  local name, value = t:match("^([%a][%w%-_%.]*)=(.*)$")
  if name and not MECHANISMS[name:lower()] then
    return { modifier = name:lower(), value = value }
  end
  local q = t:sub(1, 1)
  local qualifier = QUALIFIERS[q] and q or "+"
  if QUALIFIERS[q] then t = t:sub(2) end
  local mech, rest = t:match("^([%a][%w]*)(.*)$")
  mech = mech and mech:lower()
  if not mech or not MECHANISMS[mech] then return nil, "unknown term '" .. t .. "'" end
  local m = { qualifier = qualifier, mechanism = mech }
  if mech == "ip4" or mech == "ip6" then
    local v = rest:match("^:(.+)$")
    if not v then return nil, mech .. " needs an address" end
    local addr, bits = v:match("^(.-)/(%d+)$")
    m.value, m.cidr = addr or v, tonumber(bits)
    local ok = (mech == "ip4" and M.ip_bytes(m.value) and #M.ip_bytes(m.value) == 4) or
               (mech == "ip6" and M.ip_bytes(m.value) and #M.ip_bytes(m.value) == 16)
    if not ok then return nil, "bad address in " .. mech .. ":" .. v end
    if m.cidr and m.cidr > (mech == "ip4" and 32 or 128) then return nil, "bad prefix in " .. t end
    return m
  end
  if mech == "all" then
    if rest ~= "" then return nil, "'all' takes no argument" end
    return m
  end
  local spec = rest:match("^:(.*)$")
  if rest ~= "" and not spec and not rest:match("^/") then return nil, "bad term '" .. t .. "'" end
  local dom, c4, c6 = cidrs(spec or rest)
  if (mech == "include" or mech == "exists") and (dom == "" or c4 or c6) then
    return nil, mech .. " needs a domain"
  end
  m.value = dom ~= "" and dom or nil
  m.cidr4, m.cidr6 = c4, c6
  if (c4 and c4 > 32) or (c6 and c6 > 128) then return nil, "bad prefix in " .. t end
  return m
end

-- parse(text) -> {terms} | nil, err
function M.parse(text)
  if type(text) ~= "string" then return nil, "no record" end
  local v, rest = text:match("^(%S+)(.*)$")
  if not v or v:lower() ~= "v=spf1" then return nil, "not an SPF record (must start with v=spf1)" end
  local terms, seen = {}, {}
  for t in rest:gmatch("%S+") do
    local x, err = term(t)
    if not x then return nil, err end
    if x.modifier == "redirect" or x.modifier == "exp" then
      if seen[x.modifier] then return nil, "more than one " .. x.modifier .. "= modifier" end
      seen[x.modifier] = true
    end
    terms[#terms + 1] = x
  end
  if rest:find("[^%g ]") then return nil, "the record has characters other than printable ASCII and spaces" end
  return { terms = terms, text = text }
end

---------------------------------------------------------------------------------------------
-- Addresses

-- ip_bytes("192.0.2.1" | "2001:db8::1") -> 4 or 16 bytes | nil
function M.ip_bytes(s)
  if type(s) ~= "string" then return nil end
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if a then
    a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
    if a > 255 or b > 255 or c > 255 or d > 255 then return nil end
    return string.char(a, b, c, d)
  end
  if not s:find(":", 1, true) then return nil end
  local head, tail = s:match("^(.-)::(.*)$")
  local function groups(x)
    local g = {}
    for h in x:gmatch("[^:]+") do
      if #h > 4 or not h:match("^%x+$") then return nil end
      g[#g + 1] = tonumber(h, 16)
    end
    return g
  end
  local g
  if head then
    local p, q = groups(head), groups(tail)
    if not p or not q or #p + #q > 7 then return nil end
    g = p
    for _ = 1, 8 - #p - #q do g[#g + 1] = 0 end
    for _, x in ipairs(q) do g[#g + 1] = x end
  else
    g = groups(s)
  end
  if not g or #g ~= 8 then return nil end
  return string.pack(">I2I2I2I2I2I2I2I2", table.unpack(g))
end

local function prefix_match(a, b, bits)
  if #a ~= #b then return false end
  bits = bits or #a * 8
  local full = bits // 8
  if a:sub(1, full) ~= b:sub(1, full) then return false end
  local rem = bits % 8
  if rem == 0 then return true end
  local mask = (0xff << (8 - rem)) & 0xff
  return (a:byte(full + 1) & mask) == (b:byte(full + 1) & mask)
end

---------------------------------------------------------------------------------------------
-- Macros (RFC 7208 §7)

local function reverse_ip(ip)
  local b = M.ip_bytes(ip)
  if #b == 4 then return string.format("%d.%d.%d.%d", b:byte(1, 4)) end
  local n = {}
  for i = 1, 16 do local x = b:byte(i) n[#n + 1] = string.format("%x.%x", x >> 4, x & 15) end
  return table.concat(n, ".")
end

local function macro_value(letter, env)
  local l = letter:lower()
  if l == "s" then return env.sender end
  if l == "l" then return env.sender:match("^(.*)@") or "postmaster" end
  if l == "o" then return env.sender:match("@(.*)$") or env.sender end
  if l == "d" then return env.domain end
  if l == "i" then return reverse_ip(env.ip) end
  if l == "p" then return "unknown" end
  if l == "v" then return #M.ip_bytes(env.ip) == 4 and "in-addr" or "ip6" end
  if l == "h" then return env.helo or env.domain end
  return nil
end

-- expand(spec, env) -> string | nil, err
function M.expand(spec, env)
  local out, i = {}, 1
  while i <= #spec do
    local c = spec:sub(i, i)
    if c ~= "%" then out[#out + 1] = c i = i + 1
    else
      local n = spec:sub(i + 1, i + 1)
      if n == "%" then out[#out + 1] = "%" i = i + 2
      elseif n == "_" then out[#out + 1] = " " i = i + 2
      elseif n == "-" then out[#out + 1] = "%20" i = i + 2
      elseif n == "{" then
        local body, close = spec:match("^{([^}]*)()}", i + 1)
        if not body then return nil, "unterminated macro" end
        local letter, digits, rev, delims = body:match("^(%a)(%d*)(r?)([%.%-%+,/_=]*)$")
        local v = letter and macro_value(letter, env)
        if not v then return nil, "bad macro %{" .. body .. "}" end
        local parts = {}
        for p in v:gmatch("[^" .. (delims ~= "" and delims:gsub("%p", "%%%0") or "%.") .. "]+") do parts[#parts + 1] = p end
        if rev == "r" then
          for a = 1, #parts // 2 do parts[a], parts[#parts - a + 1] = parts[#parts - a + 1], parts[a] end
        end
        local k = tonumber(digits)
        if k == 0 then return nil, "bad macro %{" .. body .. "}" end
        if k and k < #parts then parts = table.move(parts, #parts - k + 1, #parts, 1, {}) end
        v = table.concat(parts, ".")
        if letter:match("%u") then v = v:gsub("[^%w%-%._~]", function(ch) return string.format("%%%02X", ch:byte()) end) end
        out[#out + 1] = v
        i = close + 1
      else return nil, "bad '%' in " .. spec end
    end
  end
  return table.concat(out)
end

---------------------------------------------------------------------------------------------
-- DNS

local function lookup(resolver, name, qtype)
  local r, err = resolver:query(name, qtype)
  if not r then return nil, "temperror", tostring(err) end
  return r
end

-- record(resolver, domain) -> text | nil, result, why
function M.record(resolver, domain)
  local r, res, why = lookup(resolver, domain, "TXT")
  if not r then return nil, res, why end
  local found = {}
  for _, rr in ipairs(r.records) do
    local t = rr.text
    if t:lower() == "v=spf1" or t:lower():sub(1, 7) == "v=spf1 " then found[#found + 1] = t end
  end
  if #found == 0 then return nil, "none", (r.status == "nxdomain" and "the domain does not exist" or "no SPF record"), r end
  if #found > 1 then return nil, "permerror", #found .. " SPF records (RFC 7208 §4.5 allows one)", r end
  return found[1], nil, nil, r
end

---------------------------------------------------------------------------------------------
-- check_host (RFC 7208 §4)

local Eval = {}
Eval.__index = Eval

function Eval:count(void_r)
  if void_r then
    self.void = self.void + 1
    if self.void > M.VOID_LIMIT then error({ spf = "permerror", why = "more than 2 void lookups" }) end
  end
end

function Eval:dns_lookup()
  self.lookups = self.lookups + 1
  if self.lookups > M.LOOKUP_LIMIT then error({ spf = "permerror", why = "more than 10 DNS lookups" }) end
end

function Eval:addresses(name)
  local out = {}
  local void = true
  for _, t in ipairs { "A", "AAAA" } do
    local r, res, why = lookup(self.resolver, name, t)
    if not r then error({ spf = res, why = why }) end
    for _, rr in ipairs(r.records) do out[#out + 1] = M.ip_bytes(rr.address) void = false end
  end
  self:count(void)
  return out
end

function Eval:target(m, domain)
  if not m.value then return domain end
  local v, err = M.expand(m.value, { sender = self.sender, domain = domain, ip = self.ip, helo = self.helo })
  if not v then error({ spf = "permerror", why = err }) end
  return v
end

function Eval:matches(m, domain)
  local mech = m.mechanism
  if mech == "all" then return true end
  if mech == "ip4" or mech == "ip6" then return prefix_match(self.ipb, M.ip_bytes(m.value), m.cidr) end
  self:dns_lookup()
  local target = self:target(m, domain)
  local bits = #self.ipb == 4 and m.cidr4 or m.cidr6
  if mech == "a" then
    for _, a in ipairs(self:addresses(target)) do if prefix_match(self.ipb, a, bits) then return true end end
    return false
  elseif mech == "mx" then
    local r, res, why = lookup(self.resolver, target, "MX")
    if not r then error({ spf = res, why = why }) end
    self:count(#r.records == 0)
    if #r.records > M.MX_LIMIT then error({ spf = "permerror", why = "mx: more than 10 MX names" }) end
    for _, mx in ipairs(r.records) do
      for _, a in ipairs(self:addresses(mx.exchange)) do if prefix_match(self.ipb, a, bits) then return true end end
    end
    return false
  elseif mech == "exists" then
    local r, res, why = lookup(self.resolver, target, "A")
    if not r then error({ spf = res, why = why }) end
    self:count(#r.records == 0)
    return #r.records > 0
  elseif mech == "include" then
    local res = self:evaluate(target)
    if res == "pass" then return true end
    if res == "temperror" or res == "permerror" then error({ spf = res, why = "include:" .. target .. " gave " .. res }) end
    if res == "none" then error({ spf = "permerror", why = "include:" .. target .. " has no SPF record" }) end
    return false
  elseif mech == "ptr" then
    return false        -- "SHOULD NOT be published" (§5.5): never matches here, but counts
  end
end

function Eval:evaluate(domain)
  local text, res, why = M.record(self.resolver, domain)
  if not text then
    if res == "none" then return "none", why end
    return res, why
  end
  local rec, perr = M.parse(text)
  if not rec then return "permerror", perr end
  local redirect
  for _, t in ipairs(rec.terms) do
    if t.mechanism then
      if self:matches(t, domain) then return QUALIFIERS[t.qualifier], t.mechanism .. " matched at " .. domain end
    elseif t.modifier == "redirect" then redirect = t
    end
  end
  if redirect then
    self:dns_lookup()
    local target = self:target(redirect, domain)
    local r2, w2 = self:evaluate(target)
    if r2 == "none" then return "permerror", "redirect=" .. target .. " has no SPF record" end
    return r2, w2
  end
  return "neutral", "no term matched"
end

-- check_host(resolver, ip, domain, sender [, helo]) -> result, why
function M.check_host(resolver, ip, domain, sender, helo)
  local ipb = M.ip_bytes(ip)
  if not ipb then return "permerror", "bad IP address " .. tostring(ip) end
  local e = setmetatable({ resolver = resolver, ip = ip, ipb = ipb, sender = sender or ("postmaster@" .. domain),
                           helo = helo, lookups = 0, void = 0 }, Eval)
  local ok, res, why = pcall(e.evaluate, e, domain)
  if ok then return res, why end
  if type(res) == "table" and res.spf then return res.spf, res.why end
  error(res, 0)
end

---------------------------------------------------------------------------------------------
-- analyze: the whole tree, without an IP

local function walk(resolver, domain, a, depth, via)
  if depth > 12 then a.errors[#a.errors + 1] = "include/redirect nesting too deep at " .. domain return end
  local text, res, why = M.record(resolver, domain)
  if not text then
    if depth > 0 then
      a.errors[#a.errors + 1] = string.format("%s %s: %s (%s)", via, domain, why or res, res == "none" and "permerror" or res)
      if res == "none" then a.void = a.void + 1 end
    end
    return res, why
  end
  local rec, perr = M.parse(text)
  if not rec then a.errors[#a.errors + 1] = domain .. ": " .. perr return "permerror", perr end
  local all, redirect
  for _, t in ipairs(rec.terms) do
    if t.mechanism == "all" then all = t.qualifier
    elseif t.modifier == "redirect" then redirect = t
    elseif t.mechanism and LOOKUP[t.mechanism] then
      a.lookups = a.lookups + 1
      if t.mechanism == "ptr" then a.notes[#a.notes + 1] = domain .. " uses ptr (RFC 7208 §5.5: SHOULD NOT)" end
      if t.value and t.value:find("%", 1, true) then
        a.notes[#a.notes + 1] = domain .. ": " .. t.mechanism .. ":" .. t.value .. " has macros (not expanded here)"
      elseif t.mechanism == "include" then
        a.includes[#a.includes + 1] = t.value:lower()
        walk(resolver, t.value, a, depth + 1, "include:")
      elseif t.mechanism == "a" or t.mechanism == "mx" then
        local r = resolver:query(t.value or domain, t.mechanism == "a" and "A" or "MX")
        if r and #r.records == 0 then a.void = a.void + 1 end
      end
    end
  end
  if redirect and not all then
    a.lookups = a.lookups + 1
    a.redirects[#a.redirects + 1] = redirect.value:lower()
    return walk(resolver, redirect.value, a, depth + 1, "redirect=")
  end
  if depth == 0 or via == "redirect=" then a.all = all end
  return "ok"
end

-- analyze(resolver, domain) -> {result, record, lookups, void, includes, redirects, all, errors, notes}
-- result: pass (well-formed within the limits), none, permerror, temperror.
function M.analyze(resolver, domain)
  local a = { domain = domain, lookups = 0, void = 0, includes = {}, redirects = {}, errors = {}, notes = {} }
  local text, res, why = M.record(resolver, domain)
  a.record = text
  if not text then a.result, a.why = res, why return a end
  local top = walk(resolver, domain, a, 0)
  if top ~= "ok" then a.result = top == "temperror" and "temperror" or "permerror"
  elseif #a.errors > 0 then a.result = "permerror"
  elseif a.lookups > M.LOOKUP_LIMIT then
    a.result = "permerror"
    a.errors[#a.errors + 1] = string.format("%d DNS lookups (RFC 7208 §4.6.4 allows 10)", a.lookups)
  elseif a.void > M.VOID_LIMIT then
    a.result = "permerror"
    a.errors[#a.errors + 1] = string.format("%d void lookups (RFC 7208 §4.6.4 allows 2)", a.void)
  else a.result = "pass" end
  a.why = a.errors[1]
  return a
end

return M
