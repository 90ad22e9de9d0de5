-- t2t.sim.graph.org: /domains, /organization, /subscribedSkus, /directoryObjects/{id},
-- /roleManagement/directory/{roleDefinitions,roleAssignments}, /directoryRoles —
-- wire.md §3.10–3.12.
local util = require "t2t.sim.graph.util"
local types = require "t2t.sim.graph.types"
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
  store.need(ctx, "domain_read")
  return store.collection(ctx, "domain", "domains", domains(ctx))
end)

route("GET", "domains/:id", function(ctx, p)
  store.need(ctx, "domain_read")
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
  store.need(ctx, "org_read")
  return store.collection(ctx, "organization", "organization", { organization(ctx) })
end)

route("GET", "organization/:id", function(ctx, p)
  store.need(ctx, "org_read")
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
  store.need(ctx, "sku_read")
  if ctx.q["$top"] or ctx.q["$count"] then
    util.fail(400, "Request_UnsupportedQuery", "The query option is not supported on subscribedSkus.")
  end
  local out = {}
  for _, s in ipairs(ctx.tenant.dir.skus or {}) do out[#out + 1] = sku_obj(ctx, s) end
  return store.collection(ctx, "subscribedSku", "subscribedSkus", out)
end)

route("GET", "subscribedSkus/:id", function(ctx, p)
  store.need(ctx, "sku_read")
  for _, s in ipairs(ctx.tenant.dir.skus or {}) do
    local o = sku_obj(ctx, s)
    if o.id == p.id then return store.entity(ctx, "subscribedSku", "subscribedSkus", o) end
  end
  util.not_found(p.id)
end)

-- Any directory object by id (mixed type).
route("GET", "directoryObjects/:id", function(ctx, p)
  store.need(ctx, "dir_read")
  local o = store.must(ctx, p.id)
  local kind = store.kind(o) or "directoryObject"
  local res = store.entity(ctx, kind, "directoryObjects", o)
  res.body["@odata.type"] = "#microsoft.graph." .. kind
  return res
end)

-- Directory roles ------------------------------------------------------------------------------

-- Built-in role templates (wire.md §5.4); the seed may add more in dir.role_definitions.
local BUILTIN_ROLES = {
  { id = "62e90394-69f5-4237-9190-012177145e10", displayName = "Global Administrator" },
  { id = "29232cdf-9323-42fd-ade2-1d097af3e4de", displayName = "Exchange Administrator" },
  { id = "31392ffb-586c-42d1-9346-e59415a2cc4e", displayName = "Exchange Recipient Administrator" },
  { id = "e8611ab8-c189-46e8-94e1-60213ab1f814", displayName = "Privileged Role Administrator" },
  { id = "f2ef992c-3afb-46b9-b7cf-a126ee74c451", displayName = "Global Reader" },
  { id = "fe930be7-5e62-47db-91af-98c3a49a38b1", displayName = "User Administrator" },
  { id = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3", displayName = "Application Administrator" },
  { id = "17315797-102d-40b4-93e0-432062caca18", displayName = "Compliance Administrator" },
  { id = "5d6b6bb7-de71-4623-b4af-96380a352509", displayName = "Security Reader" },
  { id = "158c047a-c907-4556-b7ef-446551a6b5f7", displayName = "Cloud Application Administrator" },
  { id = "4d6ac14f-3453-41d0-bef9-a3e0c569773a", displayName = "License Administrator" },
  { id = "fdd7a751-b60b-444a-984c-02652fe8fa1c", displayName = "Groups Administrator" },
}

local function role_definitions(ctx)
  local out, seen = {}, {}
  local seeded = ctx.tenant.dir.role_definitions
  for _, d in pairs(seeded or {}) do
    local id = d.id or d.templateId
    if id and not seen[id] then
      seen[id] = true
      out[#out + 1] = { id = id, templateId = d.templateId or id, displayName = d.displayName,
                        description = d.description, isBuiltIn = d.isBuiltIn ~= false,
                        isEnabled = d.isEnabled ~= false, rolePermissions = d.rolePermissions or {},
                        resourceScopes = { "/" } }
    end
  end
  for _, d in ipairs(BUILTIN_ROLES) do
    if not seen[d.id] then
      out[#out + 1] = { id = d.id, templateId = d.id, displayName = d.displayName, isBuiltIn = true,
                        isEnabled = true, rolePermissions = {}, resourceScopes = { "/" } }
    end
  end
  return out
end

local function find_definition(ctx, id)
  for _, d in ipairs(role_definitions(ctx)) do
    if d.id == id or d.templateId == id then return d end
  end
  return nil
end

route("GET", "roleManagement/directory/roleDefinitions", function(ctx)
  store.need(ctx, "role_read")
  return store.collection(ctx, "unifiedRoleDefinition", "roleManagement/directory/roleDefinitions",
    role_definitions(ctx))
end)

route("GET", "roleManagement/directory/roleDefinitions/:id", function(ctx, p)
  store.need(ctx, "role_read")
  local d = find_definition(ctx, p.id)
  if not d then util.not_found(p.id) end
  return store.entity(ctx, "unifiedRoleDefinition", "roleManagement/directory/roleDefinitions", d)
end)

local function role_assignments(ctx)
  local dir = ctx.tenant.dir
  dir.role_assignments = dir.role_assignments or {}
  return dir.role_assignments
end

local function visible_assignments(ctx)
  local out = {}
  for _, a in pairs(role_assignments(ctx)) do
    if store.visible(ctx, a) then out[#out + 1] = a end
  end
  return out
end

route("GET", "roleManagement/directory/roleAssignments", function(ctx)
  store.need(ctx, "role_read")
  return store.collection(ctx, "unifiedRoleAssignment", "roleManagement/directory/roleAssignments",
    visible_assignments(ctx))
end)

-- POST roleAssignments (wire.md §3.12) → 201
route("POST", "roleManagement/directory/roleAssignments", function(ctx)
  store.need(ctx, "role_write")
  local body = ctx.json or {}
  types.check_body("unifiedRoleAssignment", body)
  for _, k in ipairs({ "roleDefinitionId", "principalId", "directoryScopeId" }) do
    if type(body[k]) ~= "string" then util.bad("Property '" .. k .. "' is required.") end
  end
  local def = find_definition(ctx, body.roleDefinitionId)
  if not def then util.not_found(body.roleDefinitionId) end
  local principal = store.must(ctx, body.principalId)
  local kind = store.kind(principal)
  if kind == "group" and not principal.isAssignableToRole then
    util.bad("The group is not role-assignable: only groups created with isAssignableToRole can be "
      .. "assigned directory roles.")
  elseif kind ~= "group" and kind ~= "user" and kind ~= "servicePrincipal" then
    util.bad("The principal type is not supported for role assignment.")
  end
  if body.directoryScopeId ~= "/" and not body.directoryScopeId:match("^/administrativeUnits/") then
    util.bad("Invalid directoryScopeId '" .. body.directoryScopeId .. "'.")
  end
  for _, a in pairs(role_assignments(ctx)) do
    if a.principalId == principal.id and a.roleDefinitionId == def.id
        and a.directoryScopeId == body.directoryScopeId then
      util.bad("A conflicting object with one or more of the specified property values is present "
        .. "in the directory.", "Request_BadRequest")
    end
  end
  local a = {
    id = util.opaque_id(ctx.sim) .. "-1", roleDefinitionId = def.id, principalId = principal.id,
    directoryScopeId = body.directoryScopeId, principalOrganizationId = ctx.tenant.id,
    created = ctx.sim:now(),
  }
  store.add_role_assignment(ctx, a)
  local out = types.project("unifiedRoleAssignment", a)
  out["@odata.context"] = store.ROOT .. "/$metadata#roleManagement/directory/roleAssignments/$entity"
  return { status = 201, body = out }
end)

route("GET", "roleManagement/directory/roleAssignments/:id", function(ctx, p)
  store.need(ctx, "role_read")
  local a = role_assignments(ctx)[p.id]
  if not a or not store.visible(ctx, a) then util.not_found(p.id) end
  return store.entity(ctx, "unifiedRoleAssignment", "roleManagement/directory/roleAssignments", a)
end)

route("DELETE", "roleManagement/directory/roleAssignments/:id", function(ctx, p)
  store.need(ctx, "role_write")
  local a = role_assignments(ctx)[p.id]
  if not a or not store.visible(ctx, a) then util.not_found(p.id) end
  role_assignments(ctx)[p.id] = nil
  return store.no_content()
end)

-- Activated directory roles: one per role definition that has an assignment; ids are made once
-- per tenant and kept in dir.directory_roles (not the template id, as in Entra).
local function directory_roles(ctx)
  local dir = ctx.tenant.dir
  dir.directory_roles = dir.directory_roles or {}
  local active = {}
  for _, a in pairs(role_assignments(ctx)) do
    if a.directoryScopeId == "/" and store.visible(ctx, a) then active[a.roleDefinitionId] = true end
  end
  local out = {}
  for tid in pairs(active) do
    local r = dir.directory_roles[tid]
    if not r then
      local def = find_definition(ctx, tid)
      r = { id = util.guid(ctx.sim), roleTemplateId = tid, displayName = def and def.displayName,
            description = def and def.description }
      dir.directory_roles[tid] = r
    end
    out[#out + 1] = r
  end
  return out
end

local function find_role(ctx, key)
  local tid = key:match("^roleTemplateId=(.*)$")
  for _, r in ipairs(directory_roles(ctx)) do
    if (tid and r.roleTemplateId == tid) or r.id == key then return r end
  end
  util.not_found(tid or key)
end

route("GET", "directoryRoles", function(ctx)
  store.need(ctx, "role_read")
  return store.collection(ctx, "directoryRole", "directoryRoles", directory_roles(ctx))
end)

route("GET", "directoryRoles/:id", function(ctx, p)
  store.need(ctx, "role_read")
  return store.entity(ctx, "directoryRole", "directoryRoles", find_role(ctx, p.id))
end)

route("GET", "directoryRoles/:id/members", function(ctx, p)
  store.need(ctx, "role_read")
  local r = find_role(ctx, p.id)
  local out, seen = {}, {}
  for _, a in pairs(role_assignments(ctx)) do
    if a.roleDefinitionId == r.roleTemplateId and a.directoryScopeId == "/" and not seen[a.principalId] then
      seen[a.principalId] = true
      local o = store.get(ctx, a.principalId)
      if o then out[#out + 1] = o end
    end
  end
  return store.collection(ctx, "directoryObject", "directoryObjects", out, { mixed = true })
end)

return M
