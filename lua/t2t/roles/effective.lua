-- t2t.roles.effective: who holds which Entra role, and how — the effective-membership algorithm
-- of roles-and-mailauth.md §2.1: active instances (PIM schedule instances with P2, else role
-- assignments), eligible instances (P2), principals resolved (service principals apart from
-- users, deleted ones noted), groups expanded one level (role-assignable groups cannot nest)
-- with their PIM for Groups members; each holding tagged direct|group, active (permanent,
-- time-bound, activated, until when) or eligible, and its scope.
--
-- collect(t) -> data | nil, err, where t is a t2t.tenant (gget/glist).  data.holdings is a list of
--   { role = {id, name}, principal = {id, kind = "user"|"servicePrincipal"|"group", name, upn,
--     appId, synced}, how = "direct"|"group", group = {id, name}|nil, state = "active"|"eligible",
--     kind = "permanent"|"time-bound"|"activated"|"eligible", start, stop (ISO or nil), scope,
--     outside_pim = true when made without PIM (no start), membership = "assigned"|"pim-active"|
--     "pim-eligible" for group holdings }
local catalog = require "t2t.roles.catalog"

local M = {}

local function odata_quote(s) return (tostring(s):gsub("'", "''")) end

-- The tenant has Entra ID P2 (PIM): ScubaGear's test (§2 "P2 present?").
local function has_p2(t, data)
  local skus, err = t:glist("/subscribedSkus")
  if not skus then data.errors[#data.errors + 1] = "subscribed SKUs: " .. tostring(err) return false end
  for _, s in ipairs(skus) do
    for _, p in ipairs(s.servicePlans or {}) do
      if p.servicePlanName == "AAD_PREMIUM_P2" and p.provisioningStatus == "Success" then return true end
    end
  end
  return false
end

local function role_names(t)
  local out = {}
  for _, r in ipairs(catalog.ROLES) do out[r.id] = r.name end
  for _, d in ipairs(t:glist("/roleManagement/directory/roleDefinitions") or {}) do
    out[d.id] = out[d.id] or d.displayName
    if d.templateId then out[d.templateId] = out[d.templateId] or d.displayName end
  end
  return out
end

-- principal(t, data, id) -> {id, kind, name, upn, appId, synced} | nil (deleted / unresolvable).
function M.principal(t, data, id)
  local cache = data.principals
  if cache[id] ~= nil then return cache[id] or nil end
  local o, err = t:gget("/directoryObjects/" .. id)
  if not o then
    cache[id] = false
    if err then data.errors[#data.errors + 1] = "principal " .. id .. ": " .. tostring(err)
    else data.deleted[id] = true end
    return nil
  end
  local kind = tostring(o["@odata.type"] or ""):match("graph%.(%w+)$") or "directoryObject"
  local p = { id = id, kind = kind, name = o.displayName, upn = o.userPrincipalName, appId = o.appId }
  if kind == "user" then
    local u = t:gget("/users/" .. id .. "?$select=id,userPrincipalName,onPremisesImmutableId,onPremisesSyncEnabled,userType")
    if u then
      p.upn = u.userPrincipalName or p.upn
      p.synced = u.onPremisesSyncEnabled == true or (type(u.onPremisesImmutableId) == "string" and u.onPremisesImmutableId ~= "")
      p.immutable_id = type(u.onPremisesImmutableId) == "string" and u.onPremisesImmutableId or nil
      p.guest = u.userType == "Guest"
    end
  end
  cache[id] = p
  return p
end

local function instance_kind(a, state)
  if state == "eligible" then return "eligible" end
  if a.assignmentType == "Activated" then return "activated" end
  if a.endDateTime and a.endDateTime ~= require("cjson").null then return "time-bound" end
  return "permanent"
end

local function str(v) return type(v) == "string" and v or nil end

-- The members of a role-holding group: assigned ones, and with P2 its PIM for Groups members
-- (active: membership activated; eligible: must activate it first).  Owners never count (§2.1).
local function group_members(t, data, g)
  local cached = data.groups[g.id]
  if cached then return cached end
  local out = {}
  local list, err = t:glist("/groups/" .. g.id .. "/members?$select=id")
  if not list then data.errors[#data.errors + 1] = "members of " .. tostring(g.name) .. ": " .. tostring(err) end
  for _, m in ipairs(list or {}) do out[#out + 1] = { id = m.id, membership = "assigned" } end
  if data.p2 then
    local f = "?$filter=groupId eq '" .. odata_quote(g.id) .. "'"
    for _, set in ipairs({ { "assignmentScheduleInstances", "pim-active" }, { "eligibilityScheduleInstances", "pim-eligible" } }) do
      local l, e = t:glist("/identityGovernance/privilegedAccess/group/" .. set[1] .. f)
      if not l then data.errors[#data.errors + 1] = "PIM for Groups (" .. tostring(g.name) .. "): " .. tostring(e) end
      for _, i in ipairs(l or {}) do
        if i.accessId == "member" then
          data.pim_groups[g.id] = true
          out[#out + 1] = { id = i.principalId, membership = set[2], start = str(i.startDateTime), stop = str(i.endDateTime) }
        end
      end
    end
  end
  data.groups[g.id] = out
  return out
end

local function add(data, h) data.holdings[#data.holdings + 1] = h end

-- One instance (active or eligible) into holdings: the principal's own, and for a group its
-- members' through it.
local function take(t, data, a, state)
  local rid = a.roleDefinitionId
  local role = { id = rid, name = data.names[rid] or catalog.role_name(rid) }
  local p = M.principal(t, data, a.principalId)
  if not p then
    if data.deleted[a.principalId] then
      data.stale[#data.stale + 1] = { role = role, principal_id = a.principalId, state = state }
    end
    return
  end
  local base = { role = role, state = state, kind = instance_kind(a, state), start = str(a.startDateTime),
                 stop = str(a.endDateTime), scope = a.directoryScopeId or "/",
                 outside_pim = state == "active" and str(a.startDateTime) == nil and a.assignmentType ~= "Activated",
                 member_type = a.memberType }
  local own = {}
  for k, v in pairs(base) do own[k] = v end
  own.principal, own.how = p, a.memberType == "Group" and "group" or "direct"
  add(data, own)
  if p.kind ~= "group" then return end
  for _, m in ipairs(group_members(t, data, p)) do
    local mp = M.principal(t, data, m.id)
    if mp then
      local h = {}
      for k, v in pairs(base) do h[k] = v end
      h.principal, h.how, h.group, h.membership = mp, "group", { id = p.id, name = p.name }, m.membership
      if m.membership == "pim-eligible" then h.state, h.kind = "eligible", "eligible" end
      if m.membership == "pim-active" and m.stop then h.stop = m.stop end
      add(data, h)
    end
  end
end

-- collect(t) -> data | nil, err: every role holding in the tenant (see the header).
function M.collect(t)
  local data = { holdings = {}, principals = {}, groups = {}, pim_groups = {}, deleted = {}, stale = {},
                 errors = {} }
  data.p2 = has_p2(t, data)
  data.names = role_names(t)
  local active, err
  if data.p2 then
    active, err = t:glist("/roleManagement/directory/roleAssignmentScheduleInstances")
  else
    active, err = t:glist("/roleManagement/directory/roleAssignments")
  end
  if not active then return nil, err end
  for _, a in ipairs(active) do take(t, data, a, "active") end
  if data.p2 then
    local eligible, eerr = t:glist("/roleManagement/directory/roleEligibilityScheduleInstances")
    if not eligible then return nil, eerr end
    for _, a in ipairs(eligible) do take(t, data, a, "eligible") end
  end
  return data
end

-- holders(data, role) -> the holdings of one role (name or template id), users and groups
-- first, service principals after.
function M.holders(data, role)
  local r = catalog.role(role)
  local id = r and r.id or role
  local out = {}
  for _, h in ipairs(data.holdings) do
    if h.role.id == id or (not r and h.role.name == role) then out[#out + 1] = h end
  end
  local order = { user = 1, group = 2, servicePrincipal = 3 }
  table.sort(out, function(a, b)
    local x, y = order[a.principal.kind] or 4, order[b.principal.kind] or 4
    if x ~= y then return x < y end
    return tostring(a.principal.name) < tostring(b.principal.name)
  end)
  return out
end

-- of(data, principal id) -> the principal's holdings (direct and through groups).
function M.of(data, id)
  local out = {}
  for _, h in ipairs(data.holdings) do
    if h.principal.id == id then out[#out + 1] = h end
  end
  table.sort(out, function(a, b) return a.role.name < b.role.name end)
  return out
end

-- describe(h) -> "direct, active permanent" / "via group G (eligible in PIM for Groups), ..."
function M.describe(h)
  local how = h.how == "group" and ("via group " .. tostring(h.group and h.group.name or "?")) or "direct"
  if h.membership == "pim-eligible" then how = how .. " (eligible member in PIM for Groups)"
  elseif h.membership == "pim-active" then how = how .. " (member activated in PIM for Groups)" end
  local state = h.kind
  if h.kind == "eligible" then state = "eligible (PIM), not activated"
  elseif h.kind == "activated" then state = "activated until " .. tostring(h.stop)
  elseif h.kind == "time-bound" then state = "active until " .. tostring(h.stop)
  elseif h.kind == "permanent" then state = "active, permanent" end
  if h.scope and h.scope ~= "/" then state = state .. ", scope " .. h.scope end
  return how .. ", " .. state
end

return M
