-- t2t.sim.graph.org: /domains, /organization, /subscribedSkus, /directoryObjects/{id} —
-- wire.md §3.10–3.11 (role management: t2t.sim.graph.roles).
local util = require "t2t.sim.graph.util"
local store = require "t2t.sim.graph.store"

local M = {}
local route = store.routes(M)

-- Domains and organization ---------------------------------------------------------------------

local function domain_obj(d)
  return {
    id = d.id, authenticationType = d.authenticationType or "Managed",
    isAdminManaged = true, isDefault = d.isDefault == true, isInitial = d.isInitial == true,
    isRoot = true, isVerified = d.isVerified ~= false,
    supportedServices = d.supportedServices or {}, passwordValidityPeriodInDays = 2147483647,
    passwordNotificationWindowInDays = 14,
  }
end

local function domains(ctx)
  local out = {}
  for _, d in ipairs(ctx.tenant.domains or {}) do out[#out + 1] = domain_obj(d) end
  return out
end

route("GET", "domains", function(ctx)
  return store.collection(ctx, "domain", "domains", domains(ctx))
end)

route("GET", "domains/:id", function(ctx, p)
  for _, d in ipairs(domains(ctx)) do
    if d.id:lower() == p.id:lower() then return store.entity(ctx, "domain", "domains", d) end
  end
  util.not_found(p.id)
end)

local function organization(ctx)
  local t = ctx.tenant
  local verified = {}
  for _, d in ipairs(t.domains or {}) do
    if d.isVerified ~= false then
      verified[#verified + 1] = {
        name = d.id, isDefault = d.isDefault == true, isInitial = d.isInitial == true,
        type = d.authenticationType or "Managed",
        capabilities = d.isInitial and "Email, OfficeCommunicationsOnline" or "Email",
      }
    end
  end
  return {
    id = t.id, displayName = t.display_name or t.name, tenantType = "AAD",
    countryLetterCode = t.country or "US", preferredLanguage = "en",
    createdDateTime = util.iso(t.created or 1500000000),
    verifiedDomains = verified, businessPhones = {}, technicalNotificationMails = {},
    assignedPlans = {}, provisionedPlans = {}, securityComplianceNotificationMails = {},
    securityComplianceNotificationPhones = {}, marketingNotificationEmails = {},
    onPremisesSyncEnabled = util.null,
  }
end

route("GET", "organization", function(ctx)
  return store.collection(ctx, "organization", "organization", { organization(ctx) })
end)

route("GET", "organization/:id", function(ctx, p)
  if p.id ~= ctx.tenant.id then util.not_found(p.id) end
  return store.entity(ctx, "organization", "organization", organization(ctx))
end)

-- Subscribed SKUs -----------------------------------------------------------------------------

local function sku_obj(ctx, s)
  local pre = s.prepaidUnits or {}
  return {
    id = ctx.tenant.id .. "_" .. s.skuId, accountId = ctx.tenant.id,
    accountName = ctx.tenant.name, appliesTo = s.appliesTo or "User",
    capabilityStatus = s.capabilityStatus or "Enabled", consumedUnits = s.consumedUnits or 0,
    skuId = s.skuId, skuPartNumber = s.skuPartNumber,
    prepaidUnits = { enabled = pre.enabled or 0, suspended = pre.suspended or 0,
                     warning = pre.warning or 0, lockedOut = pre.lockedOut or 0 },
    servicePlans = s.servicePlans or {}, subscriptionIds = s.subscriptionIds or {},
  }
end

route("GET", "subscribedSkus", function(ctx)
  if ctx.q["$top"] or ctx.q["$count"] then
    util.fail(400, "Request_UnsupportedQuery", "The query option is not supported on subscribedSkus.")
  end
  local out = {}
  for _, s in ipairs(ctx.tenant.dir.skus or {}) do out[#out + 1] = sku_obj(ctx, s) end
  return store.collection(ctx, "subscribedSku", "subscribedSkus", out)
end)

route("GET", "subscribedSkus/:id", function(ctx, p)
  for _, s in ipairs(ctx.tenant.dir.skus or {}) do
    local o = sku_obj(ctx, s)
    if o.id == p.id then return store.entity(ctx, "subscribedSku", "subscribedSkus", o) end
  end
  util.not_found(p.id)
end)

-- Any directory object by id (mixed type).
route("GET", "directoryObjects/:id", function(ctx, p)
  local o = store.must(ctx, p.id)
  local kind = store.kind(o) or "directoryObject"
  local res = store.entity(ctx, kind, "directoryObjects", o)
  res.body["@odata.type"] = "#microsoft.graph." .. kind
  return res
end)

return M
