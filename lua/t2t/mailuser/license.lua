-- t2t.mailuser.license: licence a target user through Graph assignLicense (wire.md §3.10),
-- never before its ExchangeGuid is stamped: an Exchange plan on a mail user without the source's
-- ExchangeGuid provisions a new mailbox in the target and the move can no longer convert it
-- (ms-setup-and-prep.md §5.1-5.2).  Knows the Cross-Tenant User Data Migration licence (needed on
-- the source OR the target, §4.0) and licensing with disabled plans (the documented way to keep
-- Exchange plans off, §5.2).
local C = require "t2t.mailuser.common"

local M = {}
local lower, fmt = string.lower, string.format

M.ALIASES = { ctudm = C.CTUDM_PART, ["cross-tenant"] = C.CTUDM_PART, crosstenant = C.CTUDM_PART }

local function plan_names(sku)
  local l = {}
  for _, p in ipairs(sku.servicePlans or {}) do l[#l + 1] = p.servicePlanName end
  return table.concat(l, ", ")
end

-- skus(t) -> the tenant's subscribedSkus (read once per tenant object) | nil, err
local function skus(t)
  if not t._skus then
    local list, err = t:glist("/subscribedSkus")
    if not list then return nil, err end
    t._skus = list
  end
  return t._skus
end

-- resolve_all(t, keys, disable) -> list of SKUs | nil, err: each --disable-plans name must be a
-- plan of one of them.
function M.resolve_all(t, keys, disable)
  local out, used = {}, {}
  for i, k in ipairs(keys) do
    local sku, err = M.resolve(t, k, disable, #keys > 1)
    if not sku then return nil, err end
    for _, n in ipairs(sku.disabled_names) do used[lower(n)] = true end
    for _, id in ipairs(sku.disabled) do used[lower(id)] = true end
    out[i] = sku
  end
  for _, d in ipairs(disable or {}) do
    if not used[lower(d)] then
      return nil, C.failure("NoPlan", "no licence of --license has a service plan '%s'", d)
    end
  end
  return out
end

-- resolve(t, key, disable, lenient) -> {skuId, part, disabled = {plan ids}, disabled_names,
-- provisions, ctudm} | nil, err.  key: skuId, skuPartNumber or "ctudm"; disable: plan names or
-- ids (lenient: those the SKU lacks are skipped, for a list meant for several SKUs).
function M.resolve(t, key, disable, lenient)
  local list, err = skus(t)
  if not list then return nil, err end
  local want = lower(M.ALIASES[lower(key)] or key)
  local sku
  for _, s in ipairs(list) do
    if lower(s.skuId or "") == want or lower(s.skuPartNumber or "") == want then sku = s end
  end
  if not sku then
    local have = {}
    for _, s in ipairs(list) do have[#have + 1] = s.skuPartNumber end
    return nil, C.failure("NoSku", "the target has no licence '%s' (subscribedSkus: %s; or ctudm)", key,
                          table.concat(have, ", "))
  end
  local r = { skuId = sku.skuId, part = sku.skuPartNumber, disabled = {}, disabled_names = {},
              ctudm = lower(sku.skuId) == C.CTUDM_SKU or lower(sku.skuPartNumber or "") == lower(C.CTUDM_PART) }
  local off = {}
  for _, d in ipairs(disable or {}) do
    local found
    for _, p in ipairs(sku.servicePlans or {}) do
      if lower(p.servicePlanName or "") == lower(d) or lower(p.servicePlanId or "") == lower(d) then found = p end
    end
    if not found and lenient then goto next_plan end
    if not found then
      return nil, C.failure("NoPlan", "licence %s has no service plan '%s' (it has: %s)", sku.skuPartNumber, d,
                            plan_names(sku))
    end
    off[found.servicePlanId] = true
    r.disabled[#r.disabled + 1] = found.servicePlanId
    r.disabled_names[#r.disabled_names + 1] = found.servicePlanName
    ::next_plan::
  end
  table.sort(r.disabled)
  r.provisions = false
  for _, p in ipairs(sku.servicePlans or {}) do
    if (p.servicePlanName or ""):match("^EXCHANGE_S_") and not off[p.servicePlanId] then r.provisions = true end
  end
  return r
end

local function same_set(a, b)
  a, b = C.list(a), C.list(b)
  local s = {}
  for _, x in ipairs(a) do s[lower(x)] = true end
  for _, x in ipairs(b) do
    if not s[lower(x)] then return false end
  end
  return #a == #b
end

local function has_license(user, sku)
  for _, l in ipairs(C.list(user.assignedLicenses)) do
    if lower(l.skuId) == lower(sku.skuId) then return true, same_set(l.disabledPlans, sku.disabled) end
  end
  return false
end

-- The target's directory user, waiting out replication lag of a fresh mail user.
local function directory_user(t, id)
  local path = "/users/" .. id .. "?$select=id,userPrincipalName,usageLocation,assignedLicenses"
  return t:eventually(function() return t:gget(path) end)
end

-- assign(t, m, sku, o) -> status ("licensed" | "unchanged" | "not needed" | "planned") |
-- nil, problem.  o: {usage_location, planned (the mail user itself is only planned), settle}.
function M.assign(t, m, sku, o)
  o = o or {}
  local u, tg = m.user, m.target
  if sku.ctudm and C.has(u.PersistedCapabilities, C.CTUDM_CAPABILITY) then
    return "not needed"          -- the source carries the cross-tenant licence; one side is enough
  end
  if o.planned then
    t.plan:change { kind = "add", target = fmt("licence %s for %s", sku.part, tg.UserPrincipalName), tenant = t.name,
      operation = "license", after = { skuId = sku.skuId, disabledPlans = sku.disabled_names },
      note = "after its ExchangeGuid is stamped", apply = function() end }
    return "planned"
  end
  local mu, err = C.get_one(t, "Get-MailUser", { Identity = tg.PrimarySmtpAddress }, { wait_visible = o.settle })
  if not mu then
    return nil, err or C.problem("NoTarget", fmt("no target mail user %s to license", tg.PrimarySmtpAddress))
  end
  if sku.provisions and not C.guid_eq(mu.ExchangeGuid, u.ExchangeGuid) then
    return nil, C.problem("LicenceBeforeGuid", fmt("not licensed: %s has ExchangeGuid %s, not the source's %s, and " ..
      "licence %s carries an Exchange plan, which would provision a NEW mailbox in the target and break the move",
      tg.PrimarySmtpAddress, tostring(mu.ExchangeGuid), tostring(u.ExchangeGuid), sku.part),
      "stamp the ExchangeGuid first (prepare-users does), or license with the Exchange plans disabled")
  end
  local user
  user, err = directory_user(t, mu.ExternalDirectoryObjectId or tg.UserPrincipalName)
  if not user then return nil, err or C.problem("NoDirectoryUser", fmt("no directory user for %s", tg.PrimarySmtpAddress)) end
  local has, same = has_license(user, sku)
  if has and same then return "unchanged" end
  local ok, lerr = M.usage_location(t, user, u, o)
  if not ok then return nil, lerr end
  local graph = require "t2t.graph"
  local body = { addLicenses = { { skuId = sku.skuId, disabledPlans = graph.array(sku.disabled) } },
                 removeLicenses = graph.array() }
  local _, cerr = t.plan:change { kind = has and "update" or "add",
    target = fmt("licence %s for %s", sku.part, user.userPrincipalName or tg.UserPrincipalName), tenant = t.name,
    operation = "license", before = has and { disabledPlans = "(other)" } or nil,
    after = { skuId = sku.skuId, disabledPlans = sku.disabled_names },
    note = fmt("ExchangeGuid %s is stamped", tostring(mu.ExchangeGuid)),
    apply = function() return t:gpost("/users/" .. user.id .. "/assignLicense", body) end }
  if cerr == "planned" then return "planned" end
  if cerr then
    -- an answer lost on the way back: look before calling it failed
    local again = t:gget("/users/" .. user.id .. "?$select=id,assignedLicenses")
    if not (again and select(2, has_license(again, sku))) then return nil, cerr end
  end
  return "licensed"
end

-- A licence needs a usage location; set the source's (or --usage-location) when the user has none.
function M.usage_location(t, user, u, o)
  if type(user.usageLocation) == "string" and user.usageLocation ~= "" then return true end
  local loc = o.usage_location or u.UsageLocation
  if not loc then
    return nil, C.problem("NoUsageLocation", fmt("%s has no usage location, which a licence needs",
      tostring(user.userPrincipalName)), "pass --usage-location with its country code (e.g. US, GB, DE)")
  end
  local _, err = t.plan:change { kind = "update", target = fmt("usage location of %s", tostring(user.userPrincipalName)),
    tenant = t.name, operation = "license", before = { usageLocation = "(none)" }, after = { usageLocation = loc },
    apply = function() return t:gpatch("/users/" .. user.id, { usageLocation = loc }) end }
  if err and err ~= "planned" and err ~= "unchanged" then return nil, err end
  return true
end

return M
