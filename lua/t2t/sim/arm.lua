-- t2t.sim.arm: the simulated Azure Resource Manager (host management.azure.com), the subset
-- the legacy cross-tenant setup uses (ms-setup-and-prep.md §1.8, wire.md §4.1–4.6): resource
-- groups, provider registration, Key Vault vaults and access policies, RBAC role assignments,
-- long-running operations (202/201 + Azure-AsyncOperation / Location polling).
local util = require "t2t.sim.graph.util"

local M = {}

local ROOT = "https://management.azure.com"
local AUDIENCES = { "https://management.azure.com", "https://management.azure.com/",
                    "https://management.core.windows.net/", "797f4846-ba00-4fd7-ba43-dac1f8f63013" }
-- Management-plane roles that may write (Owner, Contributor) or read (+ Reader).
local OWNER, CONTRIBUTOR = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "b24988ac-6180-42a0-ab88-20f7382dd24c"
local READER = "acdd72a7-3385-48ef-bd42-f6fb9a3ec3d6"
local USER_ACCESS_ADMIN = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"

local ArmError = {}
local function fail(status, code, message, headers)
  error(setmetatable({ status = status, code = code, message = message, headers = headers }, ArmError), 0)
end

local function response(ctx, status, body, headers)
  local h = headers or {}
  h["x-ms-request-id"] = ctx.request_id
  h["x-ms-correlation-request-id"] = ctx.correlation_id
  h["x-ms-ratelimit-remaining-subscription-reads"] = "11999"
  if body ~= nil then
    h["content-type"] = "application/json; charset=utf-8"
    body = util.encode(body)
  end
  return { status = status, headers = h, body = body }
end

local function lower_keys(t)
  local out = {}
  for k, v in pairs(t or {}) do out[k:lower()] = v end
  return out
end

-- The caller's subscription in its own tenant; 404 SubscriptionNotFound otherwise.
local function subscription(ctx, sub_id)
  local subs = ctx.tenant.azure and ctx.tenant.azure.subscriptions or {}
  local sub = subs[sub_id] or subs[sub_id:lower()]
  if not sub then fail(404, "SubscriptionNotFound", "The subscription '" .. sub_id .. "' could not be found.") end
  sub.resource_groups = sub.resource_groups or {}
  ctx.sub_id = sub_id
  return sub
end

-- in_scope(id, scope) -> true when resource id is the scope or lies under it (whole path
-- segments, case-insensitive: /resourceGroups/rg1 does not cover /resourceGroups/rg10).
function M.in_scope(id, scope)
  id, scope = id:lower(), scope:lower():gsub("/+$", "")
  return id == scope or id:sub(1, #scope + 1) == scope .. "/"
end

-- assignments(sub, sub_id) -> iterator of the subscription's RBAC role assignments, each with
-- .scope (an assignment stored without one is at the subscription) and .role (the role GUID).
function M.assignments(sub, sub_id)
  local list = sub and sub.role_assignments or {}
  local k, a
  return function()
    k, a = next(list, k)
    if k == nil then return nil end
    return { principalId = a.principalId, scope = a.scope or ("/subscriptions/" .. sub_id),
             role = (a.roleDefinitionId or ""):match("([%x%-]+)$") or "" }
  end
end

-- RBAC on the management plane, enforced when the subscription says so (sub.rbac_enforced):
-- the caller needs one of `roles` at a scope that is a prefix of `scope`.  Otherwise the
-- tenant's own principals are trusted (the seeded admin app is the subscription's Owner).
local function authorize(ctx, sub, scope, roles, action)
  if not sub.rbac_enforced or not sub.role_assignments then return end
  local oid = ctx.claims.oid
  for a in M.assignments(sub, ctx.sub_id) do
    if a.principalId == oid and roles[a.role] and M.in_scope(scope, a.scope) then return end
  end
  fail(403, "AuthorizationFailed", string.format("The client '%s' with object id '%s' does not have "
    .. "authorization to perform action '%s' over scope '%s' or the scope is invalid. If access was "
    .. "recently granted, please refresh your credentials.", tostring(ctx.claims.appid or oid),
    tostring(oid), action, scope))
end
local WRITE = { [OWNER] = true, [CONTRIBUTOR] = true }
local READ = { [OWNER] = true, [CONTRIBUTOR] = true, [READER] = true }
local RBAC_WRITE = { [OWNER] = true, [USER_ACCESS_ADMIN] = true }

local function rg_find(sub, name)
  for k, rg in pairs(sub.resource_groups) do
    if k:lower() == name:lower() then return rg, k end
  end
  return nil
end

local function rg_body(sub_id, name, rg)
  return { id = "/subscriptions/" .. sub_id .. "/resourceGroups/" .. name, name = name,
           type = "Microsoft.Resources/resourceGroups", location = rg.location,
           tags = rg.tags or {},
           properties = { provisioningState = "Succeeded" } }
end

-- Azure regions (public cloud): name -> display name.  A location outside this list is refused
-- as ARM does (LocationNotAvailableForResourceGroup / ...ForResourceType).
M.LOCATIONS = {
  eastus = "East US", eastus2 = "East US 2", southcentralus = "South Central US", westus2 = "West US 2",
  westus3 = "West US 3", australiaeast = "Australia East", southeastasia = "Southeast Asia",
  northeurope = "North Europe", swedencentral = "Sweden Central", uksouth = "UK South",
  westeurope = "West Europe", centralus = "Central US", southafricanorth = "South Africa North",
  centralindia = "Central India", eastasia = "East Asia", japaneast = "Japan East",
  koreacentral = "Korea Central", canadacentral = "Canada Central", francecentral = "France Central",
  germanywestcentral = "Germany West Central", italynorth = "Italy North", norwayeast = "Norway East",
  polandcentral = "Poland Central", switzerlandnorth = "Switzerland North", uaenorth = "UAE North",
  brazilsouth = "Brazil South", northcentralus = "North Central US", westus = "West US",
  westcentralus = "West Central US", ukwest = "UK West", japanwest = "Japan West",
  australiasoutheast = "Australia Southeast", canadaeast = "Canada East", southindia = "South India",
}

-- location_name("West Europe") -> "westeurope" | nil (ARM takes the name or the display name).
function M.location_name(loc)
  if type(loc) ~= "string" then return nil end
  local key = loc:lower():gsub("%s+", "")
  return M.LOCATIONS[key] and key or nil
end

local function location_list()
  local names = {}
  for k in pairs(M.LOCATIONS) do names[#names + 1] = k end
  table.sort(names)
  return names
end

local function check_location(loc, what)
  if M.location_name(loc) then return end
  if what == "resource group" then
    fail(400, "LocationNotAvailableForResourceGroup", "The provided location '" .. tostring(loc)
      .. "' is not available for resource group. List of available regions is '"
      .. table.concat(location_list(), ",") .. "'.")
  end
  fail(400, "LocationNotAvailableForResourceType", "The provided location '" .. tostring(loc)
    .. "' is not available for resource type '" .. what .. "'. List of available regions for the "
    .. "resource type is '" .. table.concat(location_list(), ",") .. "'.")
end

-- GET /subscriptions/{sub}/locations (Subscriptions_ListLocations).
local function locations(ctx, sub_id)
  subscription(ctx, sub_id)
  local list = {}
  for _, name in ipairs(location_list()) do
    list[#list + 1] = { id = "/subscriptions/" .. sub_id .. "/locations/" .. name, name = name,
      type = "Region", displayName = M.LOCATIONS[name], regionalDisplayName = M.LOCATIONS[name],
      metadata = { regionType = "Physical", regionCategory = "Recommended" } }
  end
  return response(ctx, 200, { value = list })
end

-- Resource groups (wire.md §4.2) -------------------------------------------------------------

-- Soft delete (wire.md §4): a deleted vault keeps its name, in its subscription's
-- deleted_vaults, for softDeleteRetentionInDays; only createMode "recover" or a purge frees it.
local DAY = 86400
local function soft_delete(ctx, sub, rg_name, name, v)
  if v.properties.enableSoftDelete == false then return end
  local now = ctx.sim:now()
  sub.deleted_vaults = sub.deleted_vaults or {}
  sub.deleted_vaults[name:lower()] = { vault = v, resource_group = rg_name, deletionDate = now,
    scheduledPurgeDate = now + (v.properties.softDeleteRetentionInDays or 90) * DAY }
end

local function resource_group(ctx, sub_id, name)
  local sub = subscription(ctx, sub_id)
  local scope = "/subscriptions/" .. sub_id .. "/resourceGroups/" .. name
  if ctx.method == "PUT" then
    authorize(ctx, sub, scope, WRITE, "Microsoft.Resources/subscriptions/resourcegroups/write")
    local body = ctx.json or {}
    if type(body.location) ~= "string" then
      fail(400, "LocationRequired", "The location property is required for this definition.")
    end
    check_location(body.location, "resource group")
    local rg, key = rg_find(sub, name)
    local status = 200
    if not rg then
      if not name:match("^[%w%._%-%(%)]+$") or #name > 90 or name:sub(-1) == "." then
        fail(400, "InvalidResourceGroup", "The provided resource group name '" .. name .. "' has these "
          .. "invalid characters.")
      end
      rg = { location = body.location, tags = body.tags, vaults = {}, created = ctx.sim:now() }
      sub.resource_groups[name] = rg
      key = name
      status = 201
    elseif rg.location:lower() ~= body.location:lower() then
      fail(409, "InvalidResourceGroupLocation", "Invalid resource group location '" .. body.location
        .. "'. The Resource group already exists in location '" .. rg.location .. "'.")
    else
      if body.tags then rg.tags = body.tags end
    end
    return response(ctx, status, rg_body(sub_id, key, rg))
  end
  authorize(ctx, sub, scope, READ, "Microsoft.Resources/subscriptions/resourcegroups/read")
  local rg, key = rg_find(sub, name)
  if ctx.method == "HEAD" then return response(ctx, rg and 204 or 404) end   -- CheckExistence
  if not rg then
    fail(404, "ResourceGroupNotFound", "Resource group '" .. name .. "' could not be found.")
  end
  if ctx.method == "DELETE" then
    for vname, v in pairs(rg.vaults or {}) do soft_delete(ctx, sub, key, vname, v) end
    sub.resource_groups[key] = nil
    return response(ctx, 200)
  end
  return response(ctx, 200, rg_body(sub_id, key, rg))
end

-- Provider registration (wire.md §4.3): Registering → Registered on the next read.
local function provider(ctx, sub_id, ns, action)
  local sub = subscription(ctx, sub_id)
  sub.providers = sub.providers or {}
  local cur = sub.providers[ns]
  local state = type(cur) == "table" and cur.registrationState or cur
  if action == "register" then
    if ctx.method ~= "POST" then fail(405, "MethodNotAllowed", "The requested method is not allowed.") end
    if state ~= "Registered" then
      sub.providers[ns] = { registrationState = "Registering", at = ctx.sim:now() }
      state = "Registering"
    end
  elseif action == nil then
    if state == "Registering" then
      sub.providers[ns] = { registrationState = "Registered" }
      state = "Registered"
    end
    state = state or "Registered"
  else
    fail(404, "NotFound", "The resource type could not be found.")
  end
  return response(ctx, 200, { id = "/subscriptions/" .. sub_id .. "/providers/" .. ns, namespace = ns,
    registrationState = state, registrationPolicy = "RegistrationRequired",
    resourceTypes = util.EMPTY })
end

-- Vaults (wire.md §4.4) ------------------------------------------------------------------------

-- each_rg(state, fn): fn(tenant, subscription id, resource group name, resource group) for every
-- resource group of every tenant's subscriptions.
function M.each_rg(state, fn)
  for _, t in pairs(state.tenants) do
    for sid, sub in pairs(t.azure and t.azure.subscriptions or {}) do
      for rgname, rg in pairs(sub.resource_groups or {}) do fn(t, sid, rgname, rg) end
    end
  end
end

local function all_vaults(state)
  local out = {}
  M.each_rg(state, function(t, sid, rgname, rg)
    for vname, v in pairs(rg.vaults or {}) do
      out[#out + 1] = { vault = v, name = vname, tenant = t, sub = sid, rg = rgname }
    end
  end)
  return out
end
M.all_vaults = all_vaults

-- The soft-deleted vault of this name, in any subscription, that is not past its purge date.
local function find_deleted(ctx, name)
  local now = ctx.sim:now()
  for _, t in pairs(ctx.sim.state.tenants) do
    for _, sub in pairs(t.azure and t.azure.subscriptions or {}) do
      local d = sub.deleted_vaults and sub.deleted_vaults[name:lower()]
      if d and d.scheduledPurgeDate > now then return d, sub end
    end
  end
end

local function vault_body(_ctx, v)
  local p = util.copy(v.properties)
  p.accessPolicies = util.array(p.accessPolicies)
  for _, ap in ipairs(type(p.accessPolicies) == "table" and p.accessPolicies or {}) do
    for _, kind in ipairs({ "keys", "secrets", "certificates", "storage" }) do
      ap.permissions[kind] = util.array(ap.permissions[kind])
    end
  end
  p.provisioningState = v.provisioningState or "Succeeded"
  return { id = v.id, name = v.name, type = "Microsoft.KeyVault/vaults", location = v.location,
           tags = v.tags or {}, properties = p }
end

local PERMS = {
  secrets = { get = 1, list = 1, set = 1, delete = 1, backup = 1, restore = 1, recover = 1, purge = 1, all = 1 },
  certificates = { get = 1, list = 1, delete = 1, create = 1, import = 1, update = 1, managecontacts = 1,
                   getissuers = 1, listissuers = 1, setissuers = 1, deleteissuers = 1, manageissuers = 1,
                   recover = 1, purge = 1, backup = 1, restore = 1, all = 1 },
  keys = { encrypt = 1, decrypt = 1, wrapkey = 1, unwrapkey = 1, sign = 1, verify = 1, get = 1, list = 1,
           create = 1, update = 1, import = 1, delete = 1, backup = 1, restore = 1, recover = 1, purge = 1,
           release = 1, rotate = 1, getrotationpolicy = 1, setrotationpolicy = 1, all = 1 },
  storage = { get = 1, list = 1, delete = 1, set = 1, update = 1, regeneratekey = 1, recover = 1, purge = 1,
              backup = 1, restore = 1, setsas = 1, listsas = 1, getsas = 1, deletesas = 1, all = 1 },
}

-- Validate access policies; returns a normalised copy.
local function check_policies(list)
  if list == nil then return {} end
  if type(list) ~= "table" then fail(400, "BadRequest", "accessPolicies must be an array.") end
  local out = {}
  for i, ap in ipairs(list) do
    if type(ap) ~= "table" or not util.is_guid(ap.tenantId) or not util.is_guid(ap.objectId) then
      fail(400, "BadRequest", "An access policy needs a tenantId and an objectId (GUIDs).")
    end
    local perms = {}
    for kind, values in pairs(ap.permissions or {}) do
      if not PERMS[kind] then fail(400, "BadRequest", "Invalid permission kind '" .. kind .. "'.") end
      perms[kind] = {}
      for _, p in ipairs(values) do
        if not PERMS[kind][tostring(p):lower()] then
          fail(400, "BadRequest", string.format("Invalid value '%s' for %s permissions.", tostring(p), kind))
        end
        perms[kind][#perms[kind] + 1] = tostring(p):lower()
      end
    end
    out[i] = { tenantId = ap.tenantId, objectId = ap.objectId, applicationId = ap.applicationId,
               permissions = perms }
  end
  return out
end

-- Start an LRO for `finish`: an operation record the poll URLs resolve.
local function start_operation(ctx, sub_id, location, kind, target)
  local id = util.guid(ctx.sim)
  ctx.tenant.azure.operations = ctx.tenant.azure.operations or {}
  ctx.tenant.azure.operations[id] = { status = "InProgress", polls = 0, kind = kind, target = target,
                                      started = ctx.sim:now() }
  local base = ROOT .. "/subscriptions/" .. sub_id .. "/providers/Microsoft.KeyVault/locations/"
    .. location:lower():gsub("%s", "") .. "/operationResults/" .. id
  return {
    ["azure-asyncoperation"] = base .. "?api-version=2023-07-01",
    location = base .. "?api-version=2023-07-01&monitor=location",
    ["retry-after"] = "1",
  }, id
end

local function vault(ctx, sub_id, rg_name, name, sub_path)
  local sub = subscription(ctx, sub_id)
  local rg = rg_find(sub, rg_name)
  local scope = "/subscriptions/" .. sub_id .. "/resourceGroups/" .. rg_name
    .. "/providers/Microsoft.KeyVault/vaults/" .. name
  if not rg then fail(404, "ResourceGroupNotFound", "Resource group '" .. rg_name .. "' could not be found.") end
  rg.vaults = rg.vaults or {}
  local v = rg.vaults[name]
  if sub_path then
    -- PUT …/vaults/{name}/accessPolicies/{add|replace|remove}
    local op = sub_path:match("^accessPolicies/(%a+)$")
    if not op or (op ~= "add" and op ~= "replace" and op ~= "remove") or ctx.method ~= "PUT" then
      fail(404, "NotFound", "The requested resource does not exist.")
    end
    authorize(ctx, sub, scope, WRITE, "Microsoft.KeyVault/vaults/accessPolicies/write")
    if not v then
      fail(404, "ResourceNotFound", "The Resource 'Microsoft.KeyVault/vaults/" .. name
        .. "' under resource group '" .. rg_name .. "' was not found.")
    end
    local body = ctx.json or {}
    local incoming = check_policies(body.properties and body.properties.accessPolicies)
    local list = v.properties.accessPolicies
    for _, ap in ipairs(incoming) do
      local found
      for _, cur in ipairs(list) do
        if cur.objectId == ap.objectId and cur.tenantId == ap.tenantId then found = cur end
      end
      if op == "replace" or (op == "add" and not found) then
        if found then found.permissions = ap.permissions else list[#list + 1] = ap end
      elseif op == "add" then
        for kind, values in pairs(ap.permissions) do
          found.permissions[kind] = found.permissions[kind] or {}
          for _, p in ipairs(values) do
            if not util.contains(found.permissions[kind], p) then table.insert(found.permissions[kind], p) end
          end
        end
      elseif found then
        for kind, values in pairs(ap.permissions) do
          local keep = {}
          for _, p in ipairs(found.permissions[kind] or {}) do
            if not util.contains(values, p) then keep[#keep + 1] = p end
          end
          found.permissions[kind] = keep
        end
      end
    end
    local out = vault_body(ctx, v)
    return response(ctx, 200, { id = v.id .. "/accessPolicies/" .. op, name = op,
      type = "Microsoft.KeyVault/vaults/accessPolicies", location = v.location,
      properties = { accessPolicies = out.properties.accessPolicies } })
  end
  if ctx.method == "PUT" then
    authorize(ctx, sub, scope, WRITE, "Microsoft.KeyVault/vaults/write")
    local reg = sub.providers and sub.providers["Microsoft.KeyVault"]
    local state = type(reg) == "table" and reg.registrationState or reg
    if state == "NotRegistered" or state == "Unregistered" then
      fail(409, "MissingSubscriptionRegistration", "The subscription is not registered to use "
        .. "namespace 'Microsoft.KeyVault'. See https://aka.ms/rps-not-found for how to register "
        .. "subscriptions.")
    end
    if not name:match("^[%w%-]+$") or #name < 3 or #name > 24 then
      fail(400, "VaultNameNotValid", "The vault name '" .. name .. "' is invalid. A vault's name must be "
        .. "between 3-24 alphanumeric characters. The name must begin with a letter, end with a letter "
        .. "or digit, and not contain consecutive hyphens.")
    end
    local body = ctx.json or {}
    local props = body.properties
    if type(body.location) ~= "string" or type(props) ~= "table" or not util.is_guid(props.tenantId)
        or type(props.sku) ~= "table" then
      fail(400, "BadRequest", "The request must contain location, properties.tenantId and properties.sku.")
    end
    check_location(body.location, "vaults")
    local recovered
    if not v then
      for _, other in ipairs(all_vaults(ctx.sim.state)) do
        if other.name:lower() == name:lower() then
          fail(409, "VaultAlreadyExists", "The vault name '" .. name .. "' is already in use. Vault names "
            .. "are globally unique so it is possible that the name is already taken.")
        end
      end
      local d, dsub = find_deleted(ctx, name)
      if props.createMode == "recover" then
        if not d or dsub ~= sub then
          fail(404, "SoftDeletedVaultDoesNotExist", "A soft deleted vault with the given name does not "
            .. "exist. Ensure that the name for the vault that is being attempted to recover is in a "
            .. "recoverable state.")
        end
        dsub.deleted_vaults[name:lower()] = nil
        recovered = d.vault
      elseif d then
        fail(409, "VaultAlreadyExists", "The vault name '" .. name .. "' is already in use. Vault names "
          .. "are globally unique so it is possible that the name is already taken. If you are sure that "
          .. "the vault name was not taken then it is possible that a vault with the same name was "
          .. "recently deleted but not purged after being placed in a recoverable state. If the vault is "
          .. "in a recoverable state then the vault will need to be purged before reusing the name.")
      end
    end
    if recovered then              -- the vault comes back as it was, secrets and policies included
      recovered.id, recovered.name = scope, name
      recovered.provisioningState = "Succeeded"
      rg.vaults[name] = recovered
      return response(ctx, 200, vault_body(ctx, recovered))
    end
    local policies = check_policies(props.accessPolicies)
    local created = v == nil
    v = v or { created = ctx.sim:now(), secrets = {}, certificates = {} }
    v.id, v.name, v.location, v.tags = scope, name, body.location, body.tags
    v.properties = {
      tenantId = props.tenantId, sku = props.sku, accessPolicies = policies,
      enableRbacAuthorization = props.enableRbacAuthorization == true,
      enableSoftDelete = props.enableSoftDelete ~= false,
      softDeleteRetentionInDays = props.softDeleteRetentionInDays or 90,
      enabledForDeployment = props.enabledForDeployment == true,
      vaultUri = "https://" .. name:lower() .. ".vault.azure.net/",
      publicNetworkAccess = props.publicNetworkAccess or "Enabled",
    }
    rg.vaults[name] = v
    if created then
      -- a new vault registers its DNS name asynchronously (wire.md §4.4, §4.6)
      v.provisioningState = "RegisteringDns"
      local headers, op = start_operation(ctx, sub_id, body.location, "vault", v.id)
      v.operation = op
      return response(ctx, 201, vault_body(ctx, v), headers)
    end
    return response(ctx, 200, vault_body(ctx, v))
  end
  authorize(ctx, sub, scope, READ, "Microsoft.KeyVault/vaults/read")
  if not v then
    fail(404, "ResourceNotFound", "The Resource 'Microsoft.KeyVault/vaults/" .. name
      .. "' under resource group '" .. rg_name .. "' was not found. For more details please go to "
      .. "https://aka.ms/ARMResourceNotFoundFix")
  end
  if ctx.method == "DELETE" then
    authorize(ctx, sub, scope, WRITE, "Microsoft.KeyVault/vaults/delete")
    soft_delete(ctx, sub, rg_name, name, v)
    rg.vaults[name] = nil
    return response(ctx, 200)
  end
  -- polling GET (the other documented way to wait, §4.4): the next read after one shows done
  if v.provisioningState and v.provisioningState ~= "Succeeded" then
    v.reads = (v.reads or 0) + 1
    if v.reads >= 2 then v.provisioningState = "Succeeded" end
  end
  return response(ctx, 200, vault_body(ctx, v))
end

-- Operation status: InProgress on the first poll, then Succeeded (and the target is final).
local function operation(ctx, sub_id, op_id, monitor_location)
  subscription(ctx, sub_id)
  local ops = ctx.tenant.azure.operations or {}
  local op = ops[op_id]
  if not op then fail(404, "OperationNotFound", "The operation '" .. op_id .. "' was not found.") end
  op.polls = op.polls + 1
  if op.polls >= 2 and op.status == "InProgress" then
    op.status = "Succeeded"
    for _, x in ipairs(all_vaults(ctx.sim.state)) do
      if x.vault.id == op.target then x.vault.provisioningState = "Succeeded" end
    end
  end
  if monitor_location then
    if op.status == "InProgress" then return response(ctx, 202, nil, { ["retry-after"] = "1",
      location = ROOT .. ctx.raw_path .. "?" .. util.query_string(ctx.q) }) end
    for _, x in ipairs(all_vaults(ctx.sim.state)) do
      if x.vault.id == op.target then return response(ctx, 200, vault_body(ctx, x.vault)) end
    end
    return response(ctx, 204)
  end
  local body = { id = ROOT .. ctx.raw_path, name = op_id, status = op.status,
                 startTime = util.iso(op.started) }
  local h = op.status == "InProgress" and { ["retry-after"] = "1" } or nil
  return response(ctx, 200, body, h)
end

-- RBAC role assignments (wire.md §4.5) --------------------------------------------------------

local function role_assignment(ctx, sub_id, scope, name)
  local sub = subscription(ctx, sub_id)
  sub.role_assignments = sub.role_assignments or {}
  local store = sub.role_assignments
  local id = scope .. "/providers/Microsoft.Authorization/roleAssignments/" .. name
  local function body_of(a)
    return { id = id, name = name, type = "Microsoft.Authorization/roleAssignments",
             properties = { roleDefinitionId = a.roleDefinitionId, principalId = a.principalId,
                            principalType = a.principalType, scope = a.scope,
                            createdOn = util.iso(a.created) } }
  end
  if ctx.method == "PUT" then
    authorize(ctx, sub, scope, RBAC_WRITE, "Microsoft.Authorization/roleAssignments/write")
    if not util.is_guid(name) then
      fail(400, "InvalidRoleAssignmentId", "The role assignment ID '" .. name .. "' is not valid. The "
        .. "role assignment ID must be a GUID.")
    end
    local p = (ctx.json or {}).properties
    if type(p) ~= "table" or type(p.roleDefinitionId) ~= "string" or not util.is_guid(p.principalId) then
      fail(400, "InvalidRequest", "properties.roleDefinitionId and properties.principalId are required.")
    end
    local existing = store[name]
    if existing then
      if existing.principalId == p.principalId and existing.roleDefinitionId == p.roleDefinitionId then
        return response(ctx, 200, body_of(existing))
      end
      fail(400, "RoleAssignmentUpdateNotPermitted", "Tenant ID, application ID, principal ID, and "
        .. "scope are not allowed to be updated.")
    end
    for _, a in pairs(store) do
      if a.principalId == p.principalId and a.roleDefinitionId:lower() == p.roleDefinitionId:lower()
          and (a.scope or "/subscriptions/" .. sub_id):lower() == scope:lower() then
        fail(409, "RoleAssignmentExists", "The role assignment already exists.")
      end
    end
    local a = { roleDefinitionId = p.roleDefinitionId, principalId = p.principalId,
                principalType = p.principalType or "ServicePrincipal", scope = scope, created = ctx.sim:now() }
    store[name] = a
    return response(ctx, 201, body_of(a))
  end
  local a = store[name]
  if not a or a.scope:lower() ~= scope:lower() then
    fail(404, "RoleAssignmentNotFound", "The role assignment '" .. name .. "' is not found.")
  end
  if ctx.method == "DELETE" then store[name] = nil end
  return response(ctx, 200, body_of(a))
end

-- Listings -----------------------------------------------------------------------------------

local function by_id(a, b) return a.id:lower() < b.id:lower() end

-- GET /subscriptions/{sub}/resourcegroups (ResourceGroups_List).
local function list_resource_groups(ctx, sub_id)
  local sub = subscription(ctx, sub_id)
  authorize(ctx, sub, "/subscriptions/" .. sub_id, READ, "Microsoft.Resources/subscriptions/resourceGroups/read")
  local list = {}
  for name, rg in pairs(sub.resource_groups) do list[#list + 1] = rg_body(sub_id, name, rg) end
  table.sort(list, by_id)
  return response(ctx, 200, { value = util.array(list) })
end

-- The vaults of a subscription (rg_name nil) or of one resource group, as ARM bodies.
local function vault_bodies(ctx, sub, rg_name)
  local list = {}
  for name, rg in pairs(sub.resource_groups) do
    if not rg_name or name:lower() == rg_name:lower() then
      for _, v in pairs(rg.vaults or {}) do list[#list + 1] = vault_body(ctx, v) end
    end
  end
  table.sort(list, by_id)
  return list
end

-- GET .../resources (Resources_List, Resources_ListByResourceGroup; what vaults.list() calls):
-- generic resources, $filter "resourceType eq '...'" and $top with a nextLink.
local function list_resources(ctx, sub_id, rg_name)
  local sub = subscription(ctx, sub_id)
  local scope = "/subscriptions/" .. sub_id .. (rg_name and ("/resourceGroups/" .. rg_name) or "")
  authorize(ctx, sub, scope, READ, "Microsoft.Resources/subscriptions/resources/read")
  if rg_name and not rg_find(sub, rg_name) then
    fail(404, "ResourceGroupNotFound", "Resource group '" .. rg_name .. "' could not be found.")
  end
  local want = nil
  local f = ctx.q["$filter"]
  if f then
    want = f:match("^%s*[Rr]esource[Tt]ype%s+eq%s+'([^']*)'%s*$")
    if not want then
      fail(400, "InvalidFilterInQueryString", "Invalid $filter '" .. f .. "' specified in the query "
        .. "string. The simulator takes resourceType eq '...'.")
    end
  end
  local list = {}
  for _, v in ipairs(vault_bodies(ctx, sub, rg_name)) do
    if not want or want:lower() == v.type:lower() then
      list[#list + 1] = { id = v.id, name = v.name, type = v.type, location = v.location, tags = v.tags }
    end
  end
  local skip = math.tointeger(tonumber(ctx.q["$skiptoken"] or "0")) or 0
  local top = math.tointeger(tonumber(ctx.q["$top"] or "")) or #list
  local page = {}
  for i = skip + 1, math.min(skip + top, #list) do page[#page + 1] = list[i] end
  local body = { value = util.array(page) }
  if skip + top < #list then
    local q = {}
    for k, x in pairs(ctx.q) do q[k] = x end
    q["$skiptoken"] = tostring(skip + top)
    body.nextLink = ROOT .. ctx.raw_path:gsub("//+", "/") .. "?" .. util.query_string(q)
  end
  return response(ctx, 200, body)
end

-- POST /subscriptions/{sub}/providers/Microsoft.KeyVault/checkNameAvailability.
local function check_name_availability(ctx, sub_id)
  subscription(ctx, sub_id)
  local body = ctx.json or {}
  if type(body.name) ~= "string" or type(body.type) ~= "string"
      or body.type:lower() ~= "microsoft.keyvault/vaults" then
    fail(400, "BadRequest", "The request must contain name and type 'Microsoft.KeyVault/vaults'.")
  end
  local name = body.name
  if not name:match("^%a[%w%-]*[%w]$") or #name < 3 or #name > 24 or name:find("--", 1, true) then
    return response(ctx, 200, { nameAvailable = false, reason = "AccountNameInvalid",
      message = "Vault name must be between 3-24 alphanumeric characters. The name must begin with a "
        .. "letter, end with a letter or digit, and not contain consecutive hyphens." })
  end
  for _, other in ipairs(all_vaults(ctx.sim.state)) do
    if other.name:lower() == name:lower() then
      return response(ctx, 200, { nameAvailable = false, reason = "AlreadyExists",
        message = "The vault name '" .. name .. "' is already in use." })
    end
  end
  if find_deleted(ctx, name) then
    return response(ctx, 200, { nameAvailable = false, reason = "AlreadyExists",
      message = "The vault name '" .. name .. "' is already in use: a deleted vault keeps it until it "
        .. "is purged or recovered." })
  end
  return response(ctx, 200, { nameAvailable = true })
end

-- Routing -------------------------------------------------------------------------------------

-- Deleted vaults (Vaults_ListDeleted, Vaults_GetDeleted, Vaults_PurgeDeleted): list them, read
-- one, or purge one (202; the name is free at once here).
local function deleted_vaults(ctx, sub_id, location, name, purge)
  local sub = subscription(ctx, sub_id)
  local scope = "/subscriptions/" .. sub_id
  local function body(key, d)
    local v = d.vault
    return { id = scope .. "/providers/Microsoft.KeyVault/locations/" .. v.location:lower() .. "/deletedVaults/" .. v.name,
      name = v.name, type = "Microsoft.KeyVault/deletedVaults", properties = { vaultId = v.id,
      location = v.location, tags = v.tags, purgeProtectionEnabled = false,
      deletionDate = util.iso(d.deletionDate), scheduledPurgeDate = util.iso(d.scheduledPurgeDate) } }, key
  end
  local now = ctx.sim:now()
  if not name then
    authorize(ctx, sub, scope, READ, "Microsoft.KeyVault/deletedVaults/read")
    local list = {}
    for key, d in pairs(sub.deleted_vaults or {}) do
      if d.scheduledPurgeDate > now then list[#list + 1] = body(key, d) end
    end
    table.sort(list, function(a, b) return a.id < b.id end)
    return response(ctx, 200, { value = util.array(list) })
  end
  local d = sub.deleted_vaults and sub.deleted_vaults[name]
  if not d or d.scheduledPurgeDate <= now or d.vault.location:lower() ~= location then
    fail(404, "ResourceNotFound", "The Resource 'Microsoft.KeyVault/deletedVaults/" .. name
      .. "' under resource group '<null>' was not found.")
  end
  if purge then
    authorize(ctx, sub, scope, WRITE, "Microsoft.KeyVault/locations/deletedVaults/purge/action")
    sub.deleted_vaults[name] = nil
    return response(ctx, 202)
  end
  authorize(ctx, sub, scope, READ, "Microsoft.KeyVault/deletedVaults/read")
  return response(ctx, 200, (body(name, d)))
end

-- What t2t.sim.dnszones (Azure DNS, routed from here) uses of this file.
local H = { fail = fail, response = response, subscription = subscription, authorize = authorize,
            rg_find = rg_find, READ = READ, WRITE = WRITE, array = util.array }

local function route(ctx, path)
  local p = path:gsub("//+", "/"):gsub("/+$", "")   -- the Azure SDKs send //subscriptions/...
  local lp = p:lower()
  local sub_id, rest = p:match("^/subscriptions/([^/]+)(.*)$")
  if not sub_id then fail(404, "NotFound", "The requested resource does not exist.") end
  local lrest = rest:lower()
  local dz = require("t2t.sim.dnszones").route(ctx, sub_id, rest, H)
  if dz then return dz end
  -- role assignments at any scope under the subscription
  local scope_part, ra = rest:match("^(.-)/providers/[Mm]icrosoft%.[Aa]uthorization/roleAssignments/([^/]+)$")
  if scope_part then return role_assignment(ctx, sub_id, "/subscriptions/" .. sub_id .. scope_part, ra) end
  if lrest == "" then
    local sub = subscription(ctx, sub_id)
    return response(ctx, 200, { id = "/subscriptions/" .. sub_id, subscriptionId = sub_id,
      tenantId = ctx.tenant.id, displayName = sub.displayName, state = "Enabled" })
  end
  local op = lrest:match("^/providers/microsoft%.keyvault/locations/[^/]+/operationresults/([%x%-]+)$")
  if op and ctx.method == "GET" then return operation(ctx, sub_id, op, ctx.q.monitor == "location") end
  if lrest == "/providers/microsoft.keyvault/vaults" and ctx.method == "GET" then
    -- Vaults_ListBySubscription
    local sub = subscription(ctx, sub_id)
    authorize(ctx, sub, "/subscriptions/" .. sub_id, READ, "Microsoft.KeyVault/vaults/read")
    return response(ctx, 200, { value = util.array(vault_bodies(ctx, sub)) })
  end
  if lrest == "/resourcegroups" and ctx.method == "GET" then return list_resource_groups(ctx, sub_id) end
  if lrest == "/locations" and ctx.method == "GET" then return locations(ctx, sub_id) end
  if lrest == "/resources" and ctx.method == "GET" then return list_resources(ctx, sub_id) end
  if lrest == "/providers/microsoft.keyvault/checknameavailability" and ctx.method == "POST" then
    return check_name_availability(ctx, sub_id)
  end
  if lrest == "/providers/microsoft.keyvault/deletedvaults" and ctx.method == "GET" then
    return deleted_vaults(ctx, sub_id)
  end
  local dloc, dname, dtail = lrest:match("^/providers/microsoft%.keyvault/locations/([^/]+)/deletedvaults/([^/]+)(.*)$")
  if dname and (dtail == "" and ctx.method == "GET" or dtail == "/purge" and ctx.method == "POST") then
    return deleted_vaults(ctx, sub_id, dloc, dname, dtail == "/purge")
  end
  local ns, action = rest:match("^/providers/([%w%.]+)/?(%a*)$")
  if ns then return provider(ctx, sub_id, ns, action ~= "" and action or nil) end
  local rg, tail = rest:match("^/[Rr]esource[Gg]roups/([^/]+)(.*)$")
  if rg then
    if tail == "" then return resource_group(ctx, sub_id, rg) end
    local ltail = tail:lower()
    if ltail == "/resources" and ctx.method == "GET" then return list_resources(ctx, sub_id, rg) end
    if ltail == "/providers/microsoft.keyvault/vaults" and ctx.method == "GET" then
      local sub = subscription(ctx, sub_id)   -- Vaults_ListByResourceGroup
      authorize(ctx, sub, "/subscriptions/" .. sub_id .. "/resourceGroups/" .. rg, READ,
        "Microsoft.KeyVault/vaults/read")
      if not rg_find(sub, rg) then
        fail(404, "ResourceGroupNotFound", "Resource group '" .. rg .. "' could not be found.")
      end
      return response(ctx, 200, { value = util.array(vault_bodies(ctx, sub, rg)) })
    end
    local vname, vsub = tail:match("^/providers/[Mm]icrosoft%.[Kk]ey[Vv]ault/vaults/([^/]+)/?(.*)$")
    if vname then return vault(ctx, sub_id, rg, vname, vsub ~= "" and vsub or nil) end
  end
  fail(404, "NotFound", "No HTTP resource was found that matches the request URI '" .. ROOT .. lp .. "'.")
end

function M.handle(sim, req)
  local path, q = util.split_query(req)
  local ctx = { sim = sim, req = req, q = q, method = req.method, raw_path = path,
                request_id = sim.rng:guid(), correlation_id = util.header(req, "x-ms-correlation-request-id")
                  or sim.rng:guid() }
  local claims = sim:auth(req, AUDIENCES)
  local ok, res = pcall(function()
    if not claims then
      fail(401, util.header(req, "authorization") and "InvalidAuthenticationToken" or "AuthenticationFailed",
        util.header(req, "authorization") and "The access token is invalid."
          or "Authentication failed. The 'Authorization' header is missing.",
        { ["www-authenticate"] = 'Bearer authorization_uri="https://login.microsoftonline.com/common", '
          .. 'error="invalid_token", error_description="The authentication failed because of missing '
          .. '\'Authorization\' header."' })
    end
    ctx.claims = claims
    ctx.tenant = sim.state.tenants[claims.tid]
    if not ctx.tenant then fail(401, "InvalidAuthenticationTokenTenant", "The access token is from the wrong issuer.") end
    ctx.tenant.azure = ctx.tenant.azure or { subscriptions = {} }
    if not q["api-version"] then
      fail(400, "MissingApiVersionParameter", "The api-version query parameter (?api-version=) is "
        .. "required for all requests.")
    end
    local body, err = util.json_body(req)
    if err then fail(400, "InvalidRequestContent", "The request content was invalid and could "
      .. "not be deserialized: " .. tostring(err)) end
    ctx.json = body
    return route(ctx, path)
  end)
  if ok then return res end
  if getmetatable(res) ~= ArmError then error(res, 0) end
  local h = res.headers or {}
  return response(ctx, res.status, { error = { code = res.code, message = res.message } }, h)
end

M._lower_keys = lower_keys
return M
