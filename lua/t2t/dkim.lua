-- t2t.dkim: mail authentication for the domains that move — Exchange Online DKIM (status,
-- ensure, rotate, the records to publish, read from the service), DNS checks of what is
-- published (CNAMEs, keys, SPF, DMARC: t2t.dkim.checks), publication (zone file, Azure DNS,
-- RFC 2136: t2t.dkim.publish), and DKIM verify/sign of real messages (RFC 6376/8463, in C).
-- See docs/dkim.md.
--
--   local dkim = require "t2t.dkim"
--   dkim.status(t)                      -> rows, one per accepted domain (t: a t2t.tenant)
--   dkim.ensure(t, "fabrikam.com", {enable = true, key_size = 2048})  (through t.plan)
--   dkim.rotate(t, "fabrikam.com", {key_size = 2048})
--   dkim.records(row)                   -> the two CNAMEs, from Selector1CNAME/Selector2CNAME
--   dkim.posture(t, {resolver})         -> every rule, per domain (t2t.dkim.checks)
--   dkim.signing_ok(t, domain)          -> true | false, why   (for post-migration)
--   dkim.verify(raw), dkim.sign(raw, opts), dkim.generate_key(kind, bits)
local C = require "t2t.core.dkim"

local M = {}

M.KNOWN_STATUS = { NoDKIMKeys = true, CnameMissing = true, Valid = true }   -- dkim.md §1.3
M.KEY_SIZES = { [1024] = true, [2048] = true }
M.ROTATION_HOURS = 96

local ErrMT = { __tostring = function(e) return e.message end }
local function failure(code, fmt, ...)
  return setmetatable({ code = code, message = string.format(fmt, ...) }, ErrMT)
end
M.failure = failure

local function sign_module() return require "t2t.core.dkim_sign" end
function M.sign(raw, o) return sign_module().sign(raw, o) end
function M.generate_key(kind, bits) return sign_module().generate_key(kind, bits) end
M.key, M.message, M.taglist = C.key, C.message, C.taglist

-- verify(raw [, opts]) -> t2t.dkim.verify result (a new verifier each call; reuse one for
-- batches: require("t2t.dkim.verify").new{...}).
function M.verify(raw, o) return require("t2t.dkim.verify").new(o):verify(raw) end

---------------------------------------------------------------------------------------------
-- Exchange Online

-- parse_time("2024-05-01T10:00:00.0000000+00:00" | "...Z" | "/Date(ms)/") -> epoch | nil
function M.parse_time(s)
  if type(s) == "number" then return s end
  if type(s) ~= "string" then return nil end
  local ms = s:match("/Date%((%-?%d+)")
  if ms then return math.floor(tonumber(ms) / 1000) end
  local y, mo, d, h, mi, sec = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)[T ](%d%d):(%d%d):(%d%d)")
  if not y then return nil end
  local off = 0
  local sign, oh, om = s:match("([%+%-])(%d%d):?(%d%d)$")
  if sign and not s:match("Z$") then off = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "+" and 1 or -1) end
  return require("t2t.time").epoch(tonumber(y), tonumber(mo), tonumber(d), tonumber(h), tonumber(mi),
                                   tonumber(sec)) - off
end

-- format(cname) -> "legacy" | "new" | "other" (dkim.md §1.4: classify by suffix).
function M.format(cname)
  cname = (cname or ""):lower():gsub("%.$", "")
  if cname:match("%-v1%.dkim%.mail%.microsoft$") then return "new" end
  if cname:match("%.onmicrosoft%.com$") then return "legacy" end
  return "other"
end

local function kind(acc, dom)
  if acc and (acc.InitialDomain == true or acc.InitialDomain == "True") then return "initial" end
  if (acc and acc.IsCoexistenceDomain == true) or dom:match("%.mail%.onmicrosoft%.com$") then return "coexistence" end
  if dom:match("%.onmicrosoft%.com$") then return "initial" end
  if acc and acc.SendingFromDomainDisabled == true then return "parked" end
  return "custom"
end

-- row(cfg, acc, now) -> the status of one domain.
function M.row(cfg, acc, now)
  local dom = ((acc and acc.DomainName) or (cfg and (cfg.Domain or cfg.Name)) or ""):lower()
  local r = { domain = dom, kind = kind(acc, dom), accepted = acc ~= nil, config = cfg }
  if not cfg then return r end
  r.enabled = cfg.Enabled == true or cfg.Enabled == "True"
  r.status = cfg.Status
  r.known_status = M.KNOWN_STATUS[cfg.Status] == true
  r.selectors = {}
  for n = 1, 2 do
    r.selectors[n] = { name = "selector" .. n, host = "selector" .. n .. "._domainkey." .. dom,
                       cname = cfg["Selector" .. n .. "CNAME"], key_size = tonumber(cfg["Selector" .. n .. "KeySize"]),
                       public_key = cfg["Selector" .. n .. "PublicKey"] }
  end
  r.rotate_on, r.key_created = M.parse_time(cfg.RotateOnDate), M.parse_time(cfg.KeyCreationTime)
  r.rotating = r.rotate_on ~= nil and now < r.rotate_on
  r.active = r.rotating and cfg.SelectorBeforeRotateOnDate or cfg.SelectorAfterRotateOnDate
  r.next = r.rotating and cfg.SelectorAfterRotateOnDate or nil
  r.format = M.format(cfg.Selector1CNAME)
  return r
end

-- config(t, domain) -> the domain's Get-DkimSigningConfig object | nil (none) | nil, err.
-- An unknown -Identity returns every config (dkim.md §1.1): keep only the domain's own.
function M.config(t, domain)
  domain = domain:lower()
  local list, err = t:xo("Get-DkimSigningConfig", { Identity = domain })
  if not list then
    if t.exo_code and (t.exo_code(err) or ""):find("NotFound", 1, true) then return nil end
    return nil, err
  end
  for _, c in ipairs(list) do
    if ((c.Domain or c.Name or ""):lower()) == domain then return c end
  end
  return nil
end

-- status(t [, {domains = {...}, now}]) -> rows (accepted domains, then configs of others) | nil, err
function M.status(t, o)
  o = o or {}
  local acc, err = t:xo("Get-AcceptedDomain", {})
  if not acc then return nil, err end
  local cfgs, cerr = t:xo("Get-DkimSigningConfig", {})
  if not cfgs then return nil, cerr end
  local by = {}
  for _, c in ipairs(cfgs) do by[(c.Domain or c.Name or ""):lower()] = c end
  local want
  if o.domains then want = {} for _, d in ipairs(o.domains) do want[d:lower()] = true end end
  local rows, seen = {}, {}
  local now = o.now or os.time()
  for _, a in ipairs(acc) do
    local d = (a.DomainName or a.Name or ""):lower()
    if not want or want[d] then rows[#rows + 1] = M.row(by[d], a, now) seen[d] = true end
  end
  for d, c in pairs(by) do
    if not seen[d] and (not want or want[d]) then rows[#rows + 1] = M.row(c, nil, now) end
  end
  table.sort(rows, function(a, b) return a.domain < b.domain end)
  return rows
end

local function cname_missing_error(err)
  return tostring(err):find("CNAME record does not exist", 1, true) ~= nil
end

local function enable(t, domain, cfg, want, o)
  if want and o.check_dns ~= false then
    local pub = require("t2t.dkim.checks").cnames(o.resolver, M.row(cfg, nil, os.time()))
    if not pub.ok then
      return nil, failure("CnameMissing", "DKIM for %s stays off until both CNAMEs resolve: %s", domain, pub.why)
    end
  end
  local _, err = t.plan:change {
    kind = "update", target = "DKIM signing for " .. domain, tenant = t.name, operation = "Set-DkimSigningConfig",
    before = { Enabled = cfg.Enabled == true }, after = { Enabled = want },
    apply = function() return t:xo("Set-DkimSigningConfig", { Identity = domain, Enabled = want }) end,
  }
  if err and err ~= "planned" then
    if cname_missing_error(err) then
      return nil, failure("CnameMissing", "Exchange Online does not see the CNAMEs of %s yet, although DNS " ..
        "resolves them: Microsoft's check takes minutes to 4 days; run this again later", domain)
    end
    return nil, err
  end
  return true
end

-- ensure(t, domain, {enable = bool, key_size = 1024|2048, resolver, check_dns = true})
-- -> row | nil, err.  Creates the config (disabled) when missing; enables or disables as
-- asked, enabling only once both CNAMEs resolve.  A different key size needs a rotation: the
-- row says so (row.key_size_note).  Re-running changes nothing.
function M.ensure(t, domain, o)
  o = o or {}
  domain = domain:lower()
  if o.key_size and not M.KEY_SIZES[o.key_size] then
    return nil, failure("Usage", "key size %s: Exchange Online takes 1024 or 2048", tostring(o.key_size))
  end
  local cfg, err = M.config(t, domain)
  if err then return nil, err end
  if not cfg then
    local made, cerr = t:create({
      target = "DKIM signing config for " .. domain, tenant = t.name, operation = "New-DkimSigningConfig",
      after = { DomainName = domain, Enabled = false, KeySize = o.key_size or 1024 },
      note = "Exchange Online makes both keys; publish the two CNAMEs it returns, then enable",
      apply = function()
        return t:xo("New-DkimSigningConfig", { DomainName = domain, Enabled = false, KeySize = o.key_size })
      end }, function() return M.config(t, domain) end)
    if not made then
      if cerr == "planned" then return { domain = domain, planned = true } end
      return nil, cerr
    end
    cfg = M.config(t, domain) or made[1] or made
  end
  if o.enable ~= nil and (cfg.Enabled == true) ~= o.enable then
    local ok, eerr = enable(t, domain, cfg, o.enable, o)
    if not ok then return nil, eerr end
    cfg = M.config(t, domain) or cfg
  end
  local row = M.row(cfg, nil, os.time())
  if o.key_size and row.selectors and (row.selectors[1].key_size ~= o.key_size or row.selectors[2].key_size ~= o.key_size) then
    row.key_size_note = string.format("the keys are %s/%s bits: the size changes only by rotating " ..
      "(--rotate --key-size %d), one selector per rotation, so both take two rotations (8 days)",
      tostring(row.selectors[1].key_size), tostring(row.selectors[2].key_size), o.key_size)
  end
  return row
end

-- rotate(t, domain, {key_size}) -> row | nil, err.  The other selector gets a new key (and
-- size); it signs from RotateOnDate, 96 hours later.  One rotation at a time.
function M.rotate(t, domain, o)
  o = o or {}
  domain = domain:lower()
  local cfg, err = M.config(t, domain)
  if err then return nil, err end
  if not cfg then return nil, failure("NotFound", "%s has no DKIM signing config: run dkim-setup for it first", domain) end
  local now = o.now or os.time()
  local r = M.row(cfg, nil, now)
  if not r.enabled then return nil, failure("NotEnabled", "DKIM signing for %s is off: enable it before rotating keys", domain) end
  if r.rotating then
    return nil, failure("Rotating", "a key rotation for %s is in progress until %s (%s becomes active); " ..
      "another rotation is possible only after that", domain, os.date("!%Y-%m-%d %H:%M UTC", r.rotate_on), tostring(r.next))
  end
  local other = r.active == "selector1" and "selector2" or "selector1"
  local _, rerr = t.plan:change {
    kind = "update", target = "DKIM keys of " .. domain, tenant = t.name, operation = "Rotate-DkimSigningConfig",
    before = { active = r.active }, after = { active = other .. " in 96 h", key_size = o.key_size },
    note = "the new key on " .. other .. " signs from 96 hours on; keep both CNAMEs published",
    apply = function() return t:xo("Rotate-DkimSigningConfig", { Identity = domain, KeySize = o.key_size }) end,
  }
  if rerr and rerr ~= "planned" then return nil, rerr end
  return M.row(M.config(t, domain) or cfg, nil, now)
end

-- records(row) -> { {name, type = "CNAME", ttl = 3600, data}, ... } read from the service.
function M.records(row)
  local out = {}
  for _, s in ipairs(row.selectors or {}) do
    if s.cname and s.cname ~= "" then
      out[#out + 1] = { name = s.host, type = "CNAME", ttl = 3600, data = s.cname:gsub("%.$", "") .. "." }
    end
  end
  return out
end

-- zone_text(records) -> the records in zone-file form.
function M.zone_text(records)
  local b = {}
  for _, r in ipairs(records) do
    b[#b + 1] = string.format("%-48s %5d IN %-5s %s", r.name .. ".", r.ttl or 3600, r.type, r.data)
  end
  return table.concat(b, "\n") .. "\n"
end

function M.posture(t, o) return require("t2t.dkim.checks").tenant(t, o) end

-- signing_ok(t, domain [, {resolver}]) -> true | false, why: is the domain signed by this
-- tenant's Exchange Online, and are its CNAMEs published?  (post-migration calls this.)
function M.signing_ok(t, domain, o)
  o = o or {}
  local cfg, err = M.config(t, domain)
  if err then return false, tostring(err) end
  if not cfg then return false, domain .. " has no DKIM signing config in " .. tostring(t.name) end
  local r = M.row(cfg, nil, os.time())
  if not r.enabled then return false, "DKIM signing for " .. domain .. " is off in " .. tostring(t.name) end
  if r.status ~= "Valid" then return false, "DKIM status of " .. domain .. " is " .. tostring(r.status) end
  local pub = require("t2t.dkim.checks").cnames(o.resolver, r)
  if not pub.ok then return false, pub.why end
  return true
end

return M
