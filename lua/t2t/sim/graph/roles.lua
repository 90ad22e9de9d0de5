-- t2t.sim.graph.roles: Entra role management as Graph serves it — role definitions, role
-- assignments, directory roles, and PIM for Entra roles (assignment and eligibility schedules,
-- their instances, requests: adminAssign/adminRemove/selfActivate/selfDeactivate), with time
-- from the simulated clock.  Who holds what comes from t2t.sim.pim, the same data the tokens'
-- `wids` come from.  wire.md §3.12, roles-and-mailauth.md §2.
local util = require "t2t.sim.graph.util"
local types = require "t2t.sim.graph.types"
local store = require "t2t.sim.graph.store"
local pim = require "t2t.sim.pim"
local catalog = require "t2t.roles.catalog"
require "t2t.sim.graph.pim_types"

local M = {}
local route = store.routes(M)

local BASE = "roleManagement/directory/"

-- Role definitions ------------------------------------------------------------------------

local function role_definitions(ctx)
  local out, seen = {}, {}
  for _, d in pairs(ctx.tenant.dir.role_definitions or {}) do
    local id = d.id or d.templateId
    if id and not seen[id] then
      seen[id] = true
      out[#out + 1] = { id = id, templateId = d.templateId or id, displayName = d.displayName,
                        description = d.description, isBuiltIn = d.isBuiltIn ~= false,
                        isEnabled = d.isEnabled ~= false, rolePermissions = d.rolePermissions or {},
                        resourceScopes = { "/" } }
    end
  end
  for _, r in ipairs(catalog.ROLES) do
    if not seen[r.id] then
      out[#out + 1] = { id = r.id, templateId = r.id, displayName = r.graph_name or r.name, isBuiltIn = true,
                        isEnabled = true, rolePermissions = {}, resourceScopes = { "/" } }
    end
  end
  table.sort(out, function(a, b) return a.id < b.id end)
  return out
end

function M.find_definition(ctx, id)
  for _, d in ipairs(role_definitions(ctx)) do
    if d.id == id or d.templateId == id then return d end
  end
  return nil
end

route("GET", BASE .. "roleDefinitions", function(ctx)
  return store.collection(ctx, "unifiedRoleDefinition", BASE .. "roleDefinitions", role_definitions(ctx))
end)

route("GET", BASE .. "roleDefinitions/:id", function(ctx, p)
  local d = M.find_definition(ctx, p.id)
  if not d then util.not_found(p.id) end
  return store.entity(ctx, "unifiedRoleDefinition", BASE .. "roleDefinitions", d)
end)

-- Principals a role can go to (§3: a group only when role-assignable).
function M.check_principal(ctx, id)
  local principal = store.must(ctx, id)
  local kind = store.kind(principal)
  if kind == "group" and not principal.isAssignableToRole then
    util.bad("The group is not role-assignable: only groups created with isAssignableToRole can be "
      .. "assigned directory roles.")
  elseif kind ~= "group" and kind ~= "user" and kind ~= "servicePrincipal" then
    util.bad("The principal type is not supported for role assignment.")
  end
  return principal
end

local function check_scope(scope)
  if scope ~= "/" and not tostring(scope):match("^/administrativeUnits/") then
    util.bad("Invalid directoryScopeId '" .. tostring(scope) .. "'.")
  end
end

-- Role assignments: the permanent ones plus every PIM assignment in force now --------------

local function now(ctx) return ctx.sim:now() end

local function assignment_view(a)
  return { id = a.id, roleDefinitionId = a.roleDefinitionId, principalId = a.principalId,
           directoryScopeId = a.directoryScopeId, principalOrganizationId = a.tid, created = a.created or 0 }
end

local function visible_assignments(ctx)
  local out = {}
  for _, a in ipairs(pim.active(ctx.tenant, now(ctx))) do
    if store.visible(ctx, a) then
      a.tid = ctx.tenant.id
      out[#out + 1] = assignment_view(a)
    end
  end
  return out
end

route("GET", BASE .. "roleAssignments", function(ctx)
  return store.collection(ctx, "unifiedRoleAssignment", BASE .. "roleAssignments", visible_assignments(ctx))
end)

-- POST roleAssignments (wire.md §3.12) → 201: an active, permanent assignment made outside PIM.
route("POST", BASE .. "roleAssignments", function(ctx)
  local body = ctx.json or {}
  types.check_body("unifiedRoleAssignment", body)
  for _, k in ipairs({ "roleDefinitionId", "principalId", "directoryScopeId" }) do
    if type(body[k]) ~= "string" then util.bad("Property '" .. k .. "' is required.") end
  end
  local def = M.find_definition(ctx, body.roleDefinitionId)
  if not def then util.not_found(body.roleDefinitionId) end
  local principal = M.check_principal(ctx, body.principalId)
  check_scope(body.directoryScopeId)
  for _, a in pairs(pim.dir(ctx.tenant).role_assignments) do
    if a.principalId == principal.id and a.roleDefinitionId == def.id and a.directoryScopeId == body.directoryScopeId then
      util.bad("A conflicting object with one or more of the specified property values is present "
        .. "in the directory.", "Request_BadRequest")
    end
  end
  local a = {
    id = util.opaque_id(ctx.sim) .. "-1", roleDefinitionId = def.id, principalId = principal.id,
    directoryScopeId = body.directoryScopeId, principalOrganizationId = ctx.tenant.id, created = ctx.sim:now(),
  }
  store.add_role_assignment(ctx, a)
  local out = types.project("unifiedRoleAssignment", a)
  out["@odata.context"] = store.ROOT .. "/$metadata#roleManagement/directory/roleAssignments/$entity"
  return { status = 201, body = out }
end)

route("GET", BASE .. "roleAssignments/:id", function(ctx, p)
  for _, a in ipairs(visible_assignments(ctx)) do
    if a.id == p.id then return store.entity(ctx, "unifiedRoleAssignment", BASE .. "roleAssignments", a) end
  end
  util.not_found(p.id)
end)

route("DELETE", BASE .. "roleAssignments/:id", function(ctx, p)
  local list = pim.dir(ctx.tenant).role_assignments
  local a = list[p.id]
  if not a or not store.visible(ctx, a) then util.not_found(p.id) end
  list[p.id] = nil
  return store.no_content()
end)

-- Directory roles: one per role with an active tenant-wide assignment; their ids are made once per
-- tenant and kept in dir.directory_roles (not the template id, as in Entra) ------------------

local function directory_roles(ctx)
  local dir = ctx.tenant.dir
  dir.directory_roles = dir.directory_roles or {}
  local active = {}
  for _, a in ipairs(visible_assignments(ctx)) do
    if a.directoryScopeId == "/" then active[a.roleDefinitionId] = true end
  end
  local out = {}
  for tid in pairs(active) do
    local r = dir.directory_roles[tid]
    if not r then
      local def = M.find_definition(ctx, tid)
      r = { id = util.guid(ctx.sim), roleTemplateId = tid, displayName = def and def.displayName,
            description = def and def.description }
      dir.directory_roles[tid] = r
    end
    out[#out + 1] = r
  end
  table.sort(out, function(a, b) return a.roleTemplateId < b.roleTemplateId end)
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
  return store.collection(ctx, "directoryRole", "directoryRoles", directory_roles(ctx))
end)

route("GET", "directoryRoles/:id", function(ctx, p)
  return store.entity(ctx, "directoryRole", "directoryRoles", find_role(ctx, p.id))
end)

route("GET", "directoryRoles/:id/members", function(ctx, p)
  local r = find_role(ctx, p.id)
  local out, seen = {}, {}
  for _, a in ipairs(visible_assignments(ctx)) do
    if a.roleDefinitionId == r.roleTemplateId and a.directoryScopeId == "/" and not seen[a.principalId] then
      seen[a.principalId] = true
      local o = store.get(ctx, a.principalId)
      if o then out[#out + 1] = o end
    end
  end
  return store.collection(ctx, "directoryObject", "directoryObjects", out, { mixed = true })
end)

-- PIM for Entra roles ------------------------------------------------------------------------

-- PIM needs Microsoft Entra ID P2 (ScubaGear calls the PIM APIs only then, §2) [inferred code].
function M.need_p2(ctx)
  if not pim.has_p2(ctx.tenant) then
    util.fail(400, "AadPremiumLicenseRequired", "The tenant needs a Microsoft Entra ID P2 or Microsoft "
      .. "Entra ID Governance license to use Privileged Identity Management.")
  end
end

function M.schedule_info(s)
  return { startDateTime = s.start or util.null,
           expiration = { type = s.stop and "afterDateTime" or "noExpiration", endDateTime = s.stop or util.null,
                          duration = util.null } }
end

local function schedule_view(s, kind)
  return { id = s.id, principalId = s.principalId, roleDefinitionId = s.roleDefinitionId,
           directoryScopeId = s.directoryScopeId or "/", appScopeId = util.null, memberType = s.memberType or "Direct",
           assignmentType = kind == "assignment" and (s.assignmentType or "Assigned") or nil,
           createdUsing = s.createdUsing, createdDateTime = s.created, modifiedDateTime = s.created,
           status = "Provisioned", scheduleInfo = M.schedule_info(s), created = 0 }
end

-- Schedules: the assignment ones include the permanent assignments made outside PIM (no start,
-- no createdUsing: MS.AAD.7.5's signal) and future ones; instances are what is in force now.
local function schedules(ctx, kind)
  local out = {}
  if kind == "assignment" then
    for id, a in pairs(pim.dir(ctx.tenant).role_assignments) do
      out[#out + 1] = schedule_view({ id = id, principalId = a.principalId, roleDefinitionId = a.roleDefinitionId,
                                      directoryScopeId = a.directoryScopeId, created = a.created }, kind)
    end
  end
  for _, s in pairs(pim.dir(ctx.tenant).role_schedules) do
    if s.kind == kind and (s.stop == nil or s.stop > now(ctx)) then out[#out + 1] = schedule_view(s, kind) end
  end
  table.sort(out, function(a, b) return a.id < b.id end)
  return out
end

local function instance_view(a, kind)
  local v = { id = a.id, principalId = a.principalId, roleDefinitionId = a.roleDefinitionId,
              directoryScopeId = a.directoryScopeId, appScopeId = util.null, memberType = a.memberType,
              startDateTime = a.start, endDateTime = a.stop, created = 0 }
  if kind == "assignment" then
    v.assignmentType, v.roleAssignmentOriginId, v.roleAssignmentScheduleId = a.assignmentType, a.origin, a.schedule
  else
    v.roleEligibilityScheduleId = a.schedule
  end
  return v
end

local function instances(ctx, kind, only)
  local list = kind == "assignment" and pim.active(ctx.tenant, now(ctx)) or pim.eligible(ctx.tenant, now(ctx))
  local groups = only and pim.groups_of(ctx.tenant, only, now(ctx))
  local out = {}
  for _, a in ipairs(list) do
    if not only or a.principalId == only then
      out[#out + 1] = instance_view(a, kind)
    elseif groups[a.principalId] then
      local v = instance_view(a, kind)
      v.memberType = "Group"
      out[#out + 1] = v
    end
  end
  return out
end

local TYPE = { assignment = "unifiedRoleAssignmentSchedule", eligibility = "unifiedRoleEligibilitySchedule" }
local SET = { assignment = "roleAssignmentSchedule", eligibility = "roleEligibilitySchedule" }

for _, kind in ipairs({ "assignment", "eligibility" }) do
  route("GET", BASE .. SET[kind] .. "s", function(ctx)
    M.need_p2(ctx)
    return store.collection(ctx, TYPE[kind], BASE .. SET[kind] .. "s", schedules(ctx, kind))
  end)
  route("GET", BASE .. SET[kind] .. "Instances", function(ctx)
    M.need_p2(ctx)
    return store.collection(ctx, TYPE[kind] .. "Instance", BASE .. SET[kind] .. "Instances", instances(ctx, kind))
  end)
  -- filterByCurrentUser(on='principal'): the caller's own, direct and through its groups
  route("GET", BASE .. SET[kind] .. "Instances/filterByCurrentUser/:on", function(ctx, p)
    M.need_p2(ctx)
    if p.on ~= "on=principal" then util.bad("Invalid value for parameter 'on'.", "BadRequest") end
    local me = ctx.claims.oid
    if type(me) ~= "string" then util.bad("filterByCurrentUser needs a signed-in principal.", "BadRequest") end
    return store.collection(ctx, TYPE[kind] .. "Instance", "Collection(" .. TYPE[kind] .. "Instance)",
      instances(ctx, kind, me))
  end)
end

return M
