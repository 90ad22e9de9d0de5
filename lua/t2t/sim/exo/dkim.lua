-- t2t.sim.exo.dkim: *-DkimSigningConfig (dkim.md §1).  The simulator has no DNS: the CNAMEs a
-- tenant has "published" live in tenant.exo.dns ({[host] = target}, sim-only; tests and the
-- control API set it), and -Enabled $true fails with the CNAME-missing error until both exist.
local U = require "t2t.sim.exo.util"

local M = {}
local lower = string.lower

local function dashed(domain) return (lower(domain):gsub("%.", "-")) end

local function cnames(t, domain, n)
  return string.format("selector%d-%s._domainkey.%s", n, dashed(domain), t.initial_domain)
end

local function pubkey(ctx)
  local b = {}
  for i = 1, 8 do b[i] = ctx.sim.rng:guid():gsub("%-", "") end
  return "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" .. table.concat(b)
end

local function published(t, c)
  local dns = t.exo.dns or {}
  for n = 1, 2 do
    local host = string.format("selector%d._domainkey.%s", n, lower(c.Domain))
    local v = dns[host]
    if not v or lower((v:gsub("%.$", ""))) ~= lower(c["Selector" .. n .. "CNAME"]) then return false end
  end
  return true
end

local function status(t, c)
  if not c.Enabled then return c.Selector1PublicKey and "CnameMissing" or "NoDKIMKeys" end
  return published(t, c) and "Valid" or "CnameMissing"
end

local function present(ctx)
  return function(c)
    return U.present(c, { Identity = c.Domain, Id = c.Domain, Name = c.Domain,
                          Status = status(ctx.t, c), IsValid = true })
  end
end

local function find(ctx, identity)
  local id = lower(tostring(identity))
  for d, c in pairs(ctx.t.exo.dkim) do
    if lower(d) == id or lower(c.Guid or "") == id then return c end
  end
  U.not_found(ctx, identity)
end

local function cname_missing(_ctx, c)
  U.fail(400, U.EX.Validation, "CNAME record does not exist for this config. Please publish the " ..
    "following two CNAME records first. Domain Name : %s Host Name : selector1._domainkey Points " ..
    "to address or value: %s Host Name : selector2._domainkey Points to address or value: %s " ..
    "If you have already published the CNAME records, sync will take a few minutes to as many " ..
    "as 4 days based on DNS. Return and retry this step later.",
    c.Domain, c.Selector1CNAME, c.Selector2CNAME)
end

-- Get-DkimSigningConfig: an unknown or absent -Identity returns every config (dkim.md §1.1).
M["Get-DkimSigningConfig"] = function(ctx, p)
  local out = {}
  local id = p.Identity and lower(tostring(p.Identity))
  for d, c in pairs(ctx.t.exo.dkim) do
    if id and lower(d) == id then return { c }, present(ctx) end
    out[#out + 1] = c
  end
  return out, present(ctx)
end

M["New-DkimSigningConfig"] = function(ctx, p)
  local t = ctx.t
  local dom = lower(p.DomainName)
  local ok = false
  for _, d in ipairs(t.exo.accepted_domains) do if lower(d.DomainName) == dom then ok = true end end
  if not ok then
    U.fail(400, U.EX.Validation, "The domain '%s' isn't an accepted domain for your organization.",
           p.DomainName)
  end
  if t.exo.dkim[dom] then
    U.fail(400, U.EX.AlreadyExists, "A DKIM signing config for the domain '%s' already exists.", dom)
  end
  local size = p.KeySize or 1024
  local c = { Domain = dom, Guid = ctx.sim.rng:guid(), Enabled = false,
    Selector1CNAME = cnames(t, dom, 1), Selector2CNAME = cnames(t, dom, 2),
    Selector1KeySize = size, Selector2KeySize = size, Selector1PublicKey = pubkey(ctx),
    Selector2PublicKey = pubkey(ctx), KeyCreationTime = U.time(ctx.now),
    RotateOnDate = U.time(ctx.now), SelectorBeforeRotateOnDate = "selector2",
    SelectorAfterRotateOnDate = "selector1", HeaderCanonicalization = p.HeaderCanonicalization or "Relaxed",
    BodyCanonicalization = p.BodyCanonicalization or "Relaxed", Algorithm = "RsaSHA256",
    AdminDisplayName = p.AdminDisplayName or "", IsDefault = false, created = ctx.now }
  t.exo.dkim[dom] = c
  if p.Enabled then
    if not published(t, c) then cname_missing(ctx, c) end
    c.Enabled = true
  end
  return { present(ctx)(c) }
end

M["Set-DkimSigningConfig"] = function(ctx, p)
  local c = find(ctx, p.Identity)
  if p.Enabled == true and not published(ctx.t, c) then cname_missing(ctx, c) end
  for _, k in ipairs { "Enabled", "AdminDisplayName", "HeaderCanonicalization", "BodyCanonicalization" } do
    if p[k] ~= nil then c[k] = p[k] end
  end
  return {}
end

-- Rotation: the inactive selector gets a new key (and the new size) and becomes active after
-- four days; no second rotation meanwhile (dkim.md §1.5).
M["Rotate-DkimSigningConfig"] = function(ctx, p)
  local c = find(ctx, p.Identity)
  local st = status(ctx.t, c)
  if not c.Enabled or (st ~= "Valid" and st ~= "CnameMissing") then
    U.fail(400, U.EX.InvalidOperation, "DKIM signing must be enabled for '%s' before rotating keys.",
           c.Domain)
  end
  if c._rotate_at and c._rotate_at > ctx.now then
    U.fail(400, U.EX.InvalidOperation, "A key rotation for '%s' is already in progress. While the " ..
      "key rotation is in progress, you can't do another key rotation.", c.Domain)
  end
  local next_sel = c.SelectorAfterRotateOnDate == "selector1" and "selector2" or "selector1"
  local n = next_sel == "selector1" and 1 or 2
  c["Selector" .. n .. "PublicKey"] = pubkey(ctx)
  if p.KeySize then c["Selector" .. n .. "KeySize"] = p.KeySize end
  c.SelectorBeforeRotateOnDate, c.SelectorAfterRotateOnDate = c.SelectorAfterRotateOnDate, next_sel
  c._rotate_at = ctx.now + 96 * 3600
  c.RotateOnDate = U.time(c._rotate_at)
  c.KeyCreationTime = U.time(ctx.now)
  return {}
end

return M
