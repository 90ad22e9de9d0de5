-- t2t.sim.exo.dkim: *-DkimSigningConfig as the service keeps them (dkim.md §1).
--
-- Each config holds two real RSA key pairs (the private halves are sim-only, "_keys"); the
-- public halves are what Microsoft publishes at the CNAME targets, which t2t.sim.dnsworld
-- serves from the simulator's DNS server.  Status follows DNS: Valid once both
-- selectorN._domainkey.<domain> CNAMEs resolve to Selector{1,2}CNAME (asked of the DNS server
-- when it runs, else of the simulated Azure DNS zones and tenant.exo.dns), CnameMissing before,
-- NoDKIMKeys without keys.  -Enabled $true fails with the documented CNAME-missing error until
-- both resolve.  CNAME targets: the legacy form (…._domainkey.<tenant>.onmicrosoft.com) for
-- domains added before May 2025, the new one (…._domainkey.<prefix>.<x>-v1.dkim.mail.microsoft)
-- after.  Rotation: the other selector gets a new key (and size) and signs from RotateOnDate,
-- 96 hours later; no second rotation meanwhile.  send(): a message signed as EXO would.
local U = require "t2t.sim.exo.util"

local M = {}
local lower = string.lower

M.NEW_FORMAT_SINCE = 1746057600          -- 2025-05-01: new custom domains get the new format
M.ROTATE_SECONDS = 96 * 3600
local PARTITIONS = { "a", "e", "k", "n", "p", "r", "w", "y" }  -- letters seen in public DNS

local function dashed(domain) return (lower(domain):gsub("%.", "-")) end

local function prefix(t) return (t.initial_domain:match("^([^.]+)")) end

-- The partition letter Microsoft assigns: fixed per tenant here.
local function partition(t)
  local h = 0
  for i = 1, #t.id do h = (h * 31 + t.id:byte(i)) % 9973 end
  return PARTITIONS[h % #PARTITIONS + 1]
end

local function accepted(t, dom)
  for _, d in ipairs(t.exo.accepted_domains) do if lower(d.DomainName) == dom then return d end end
end

-- The format a domain gets: by when it was added (its own created time, else the tenant's).
local function new_format(t, dom)
  local d = accepted(t, dom) or {}
  local when = tonumber(d.created) or tonumber(t.created) or 0
  return when >= M.NEW_FORMAT_SINCE
end

function M.cname_target(t, dom, n)
  if new_format(t, dom) then
    return string.format("selector%d-%s._domainkey.%s.%s-v1.dkim.mail.microsoft", n, dashed(dom),
                         prefix(t), partition(t))
  end
  return string.format("selector%d-%s._domainkey.%s", n, dashed(dom), t.initial_domain)
end

local function keygen(size)
  local pem, p = require("t2t.core.dkim_sign").generate_key("rsa", size)
  return { pem = pem, p = p, size = size }
end

local function set_key(c, n, size)
  local k = keygen(size)
  c._keys = c._keys or {}
  c._keys[n] = k
  c["Selector" .. n .. "KeySize"] = size
  c["Selector" .. n .. "PublicKey"] = "v=DKIM1; k=rsa; p=" .. k.p .. ";"
end

-- The selector that signs now ("selector1"/"selector2").
function M.active_selector(c, now)
  if c._rotate_at and now < c._rotate_at then return c.SelectorBeforeRotateOnDate end
  return c.SelectorAfterRotateOnDate
end

-- published(sim, t, c) -> both CNAMEs resolve to the configured targets.
local function published(sim, t, c)
  local world = require "t2t.sim.dnsworld"
  for n = 1, 2 do
    local host = string.format("selector%d._domainkey.%s", n, lower(c.Domain))
    local v = world.cname(sim, t, host)
    if not v or lower((v:gsub("%.$", ""))) ~= lower(c["Selector" .. n .. "CNAME"]) then return false end
  end
  return true
end
M.published = published

local function status(sim, t, c)
  if not c._keys then return "NoDKIMKeys" end
  return published(sim, t, c) and "Valid" or "CnameMissing"
end

local function present(ctx)
  return function(c)
    return U.present(c, { Identity = c.Domain, Id = c.Domain, Name = c.Domain,
                          Status = status(ctx.sim, ctx.t, c), IsValid = true,
                          LastChecked = U.time(ctx.now) })
  end
end

local function find(ctx, identity)
  local id = lower(tostring(identity))
  for d, c in pairs(ctx.t.exo.dkim) do
    if lower(d) == id or lower(c.Guid or "") == id then return c end
  end
  U.not_found(ctx, identity)
end

local function cname_missing(c)
  U.fail(400, U.EX.Validation, "CNAME record does not exist for this config. Please publish the " ..
    "following two CNAME records first. Domain Name : %s Host Name : selector1._domainkey Points " ..
    "to address or value: %s Host Name : selector2._domainkey Points to address or value: %s " ..
    "If you have already published the CNAME records, sync will take a few minutes to as many " ..
    "as 4 days based on DNS. Return and retry this step later.",
    c.Domain, c.Selector1CNAME, c.Selector2CNAME)
end

local function changed(ctx)
  require("t2t.sim.dnsworld").sync(ctx.sim)
end

-- Get-DkimSigningConfig: an unknown or absent -Identity returns every config (dkim.md §1.1).
M["Get-DkimSigningConfig"] = function(ctx, p)
  local out = {}
  local id = p.Identity and lower(tostring(p.Identity))
  for d, c in pairs(ctx.t.exo.dkim) do
    if id and (lower(d) == id or lower(c.Guid or "") == id) then return { c }, present(ctx) end
    out[#out + 1] = c
  end
  return out, present(ctx)
end

-- new_config(sim, t, domain, o) -> config (keys made, both selectors); used by the seed too.
function M.new_config(sim, t, dom, o)
  local size = o.KeySize or 1024
  local c = { Domain = dom, Guid = sim.rng:guid(), Enabled = false,
    Selector1CNAME = M.cname_target(t, dom, 1), Selector2CNAME = M.cname_target(t, dom, 2),
    KeyCreationTime = U.time(o.now), RotateOnDate = U.time(o.now),
    SelectorBeforeRotateOnDate = "selector2", SelectorAfterRotateOnDate = "selector1",
    HeaderCanonicalization = o.HeaderCanonicalization or "Relaxed",
    BodyCanonicalization = o.BodyCanonicalization or "Relaxed", Algorithm = "RsaSHA256",
    AdminDisplayName = o.AdminDisplayName or "", IsDefault = false, NumberOfBytesToSign = "All",
    IncludeSignatureCreationTime = false, IncludeKeyExpiration = false, created = o.now }
  set_key(c, 1, size)
  set_key(c, 2, size)
  t.exo.dkim[dom] = c
  return c
end

M["New-DkimSigningConfig"] = function(ctx, p)
  local t = ctx.t
  local dom = lower(p.DomainName)
  if not accepted(t, dom) then
    U.fail(400, U.EX.Validation, "The domain '%s' isn't an accepted domain for your organization.",
           p.DomainName)
  end
  if t.exo.dkim[dom] then
    U.fail(400, U.EX.AlreadyExists, "A DKIM signing config for the domain '%s' already exists.", dom)
  end
  local c = M.new_config(ctx.sim, t, dom, { KeySize = p.KeySize, now = ctx.now,
    HeaderCanonicalization = p.HeaderCanonicalization, BodyCanonicalization = p.BodyCanonicalization,
    AdminDisplayName = p.AdminDisplayName })
  changed(ctx)                          -- Microsoft now publishes the keys at the targets
  if p.Enabled then
    if not published(ctx.sim, t, c) then cname_missing(c) end
    c.Enabled = true
  end
  return { present(ctx)(c) }
end

M["Set-DkimSigningConfig"] = function(ctx, p)
  local c = find(ctx, p.Identity)
  if p.Enabled == true and not published(ctx.sim, ctx.t, c) then cname_missing(c) end
  for _, k in ipairs { "Enabled", "AdminDisplayName", "HeaderCanonicalization", "BodyCanonicalization" } do
    if p[k] ~= nil then c[k] = p[k] end
  end
  return {}
end

-- Rotation: the inactive selector gets a new key (and the new size) and becomes active after
-- four days; no second rotation meanwhile (dkim.md §1.5).
M["Rotate-DkimSigningConfig"] = function(ctx, p)
  local c = find(ctx, p.Identity)
  local st = status(ctx.sim, ctx.t, c)
  if not c.Enabled or (st ~= "Valid" and st ~= "CnameMissing") then
    U.fail(400, U.EX.InvalidOperation, "DKIM signing must be enabled for '%s' before rotating keys.",
           c.Domain)
  end
  if c._rotate_at and c._rotate_at > ctx.now then
    U.fail(400, U.EX.InvalidOperation, "A key rotation for '%s' is already in progress. While the " ..
      "key rotation is in progress, you can't do another key rotation.", c.Domain)
  end
  local active = M.active_selector(c, ctx.now)
  local next_sel = active == "selector1" and "selector2" or "selector1"
  local n = next_sel == "selector1" and 1 or 2
  set_key(c, n, p.KeySize or c["Selector" .. n .. "KeySize"])
  c.SelectorBeforeRotateOnDate, c.SelectorAfterRotateOnDate = active, next_sel
  c._rotate_at = ctx.now + M.ROTATE_SECONDS
  c.RotateOnDate = U.time(c._rotate_at)
  c.KeyCreationTime = U.time(ctx.now)
  changed(ctx)
  return {}
end

---------------------------------------------------------------------------------------------
-- Outbound mail: what EXO's signer does (for the demo and the tests).

-- initial_key(sim, t) -> the key Microsoft signs the initial domain's mail with (made once).
function M.initial_key(_, t)
  t.exo.dkim_initial = t.exo.dkim_initial or keygen(1024)
  return t.exo.dkim_initial
end

-- send(sim, {tenant = name, from, to, subject, body}) -> {message} | nil, err: the message as
-- EXO would hand it to the next hop, signed for the From domain when its DKIM is enabled,
-- else with the tenant's initial domain (dkim.md §1.5: custom domains are not signed until
-- configured).
function M.send(sim, o)
  local t
  for _, x in pairs(sim.state.tenants) do if x.name == o.tenant then t = x end end
  if not t then return nil, "no tenant " .. tostring(o.tenant) end
  local from = tostring(o.from or ("admin@" .. t.initial_domain))
  local dom = lower(from:match("@([^>%s]+)") or "")
  local now = sim:now()
  local c = t.exo.dkim[dom]
  local d, s, key
  if c and c.Enabled and c._keys then
    d, s = dom, M.active_selector(c, now)
    key = c._keys[s == "selector1" and 1 or 2].pem
  else
    d, s, key = t.initial_domain, "selector1", M.initial_key(sim, t).pem
  end
  local raw = table.concat({
    "From: " .. from, "To: " .. tostring(o.to or "someone@example.net"),
    "Subject: " .. tostring(o.subject or "t2t simulator"),
    "Date: " .. os.date("!%a, %d %b %Y %H:%M:%S +0000", math.floor(now)),
    "Message-ID: <" .. sim.rng:guid() .. "@" .. dom .. ">", "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=us-ascii", "", tostring(o.body or "Hello from the simulator."), "" }, "\r\n")
  local sig = require("t2t.core.dkim_sign").sign(raw, { domain = d, selector = s, key = key,
    canon = "relaxed/relaxed", headers = "from:date:subject:message-id:content-type:mime-version" })
  return { message = sig .. raw, d = d, s = s }
end

return M
