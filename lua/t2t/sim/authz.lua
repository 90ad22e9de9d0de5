-- t2t.sim.authz: the simulator's one authorization check.  Every Graph route and every Exchange
-- cmdlet is looked up here, before its handler runs, in a table of what it needs; the caller's
-- token (app roles, delegated scopes, the directory roles in `wids`, which t2t.sim.pim computed
-- when the token was issued) and Exchange's own RBAC data decide.  The facts (which permission
-- allows which, which role group holds which role) are t2t.roles.catalog's, the same ones t2t's
-- preflight reads.  Adding a route or a cmdlet: docs/simulator.md, "Authorization".
local catalog = require "t2t.roles.catalog"

local M = {}

---------------------------------------------------------------------------------------------
-- Graph.  Key: "METHOD path pattern" exactly as the route registers it.  Value: a need (the
-- least privileged permission; t2t.roles.catalog.GRAPH lists what satisfies it), a list of
-- needs (all required), false (no permission: any valid token), or a table
-- {need | needs, also = name, unless = name, self = name} naming predicates below.

local R = "Application.Read.All"
local W = "Application.ReadWrite.All"
local ARA = "AppRoleAssignment.ReadWrite.All"
local RR, RW = "RoleManagement.Read.Directory", "RoleManagement.ReadWrite.Directory"

M.GRAPH = {
  ["GET applications"] = R, ["POST applications"] = W, ["GET applications/:id"] = R,
  ["PATCH applications/:id"] = W, ["DELETE applications/:id"] = W,
  ["POST applications/:id/addPassword"] = W, ["POST applications/:id/removePassword"] = W,
  ["POST applications/:id/addKey"] = { need = W, unless = "own_app" },
  ["GET servicePrincipals"] = R, ["POST servicePrincipals"] = W, ["GET servicePrincipals/:id"] = R,
  ["PATCH servicePrincipals/:id"] = W, ["DELETE servicePrincipals/:id"] = W,
  ["POST servicePrincipals/:id/addPassword"] = W, ["POST servicePrincipals/:id/removePassword"] = W,
  ["GET servicePrincipals/:id/appRoleAssignments"] = R,
  ["GET users/:id/appRoleAssignments"] = "Directory.Read.All",
  ["GET groups/:id/appRoleAssignments"] = "Directory.Read.All",
  ["POST servicePrincipals/:id/appRoleAssignments"] = { ARA, R },
  ["POST users/:id/appRoleAssignments"] = { ARA, R }, ["POST groups/:id/appRoleAssignments"] = { ARA, R },
  ["DELETE servicePrincipals/:id/appRoleAssignments/:aid"] = ARA,
  ["DELETE users/:id/appRoleAssignments/:aid"] = ARA, ["DELETE groups/:id/appRoleAssignments/:aid"] = ARA,
  ["GET servicePrincipals/:id/appRoleAssignedTo"] = R, ["POST servicePrincipals/:id/appRoleAssignedTo"] = { ARA, R },
  ["GET servicePrincipals/:id/appRoleAssignedTo/:aid"] = R,
  ["DELETE servicePrincipals/:id/appRoleAssignedTo/:aid"] = ARA,

  ["GET users"] = "User.Read.All", ["GET users/$count"] = "User.Read.All", ["GET users/:id"] = "User.Read.All",
  ["POST users"] = "User.ReadWrite.All", ["PATCH users/:id"] = "User.ReadWrite.All",
  ["DELETE users/:id"] = "User.ReadWrite.All",
  ["POST users/:id/assignLicense"] = "LicenseAssignment.ReadWrite.All",
  ["GET users/:id/memberOf"] = "Directory.Read.All",
  ["GET groups"] = "GroupMember.Read.All", ["GET groups/$count"] = "GroupMember.Read.All",
  ["GET groups/:id"] = "GroupMember.Read.All", ["GET groups/:id/members"] = "GroupMember.Read.All",
  ["GET groups/:id/transitiveMembers"] = "GroupMember.Read.All",
  ["GET groups/:id/members/$count"] = "GroupMember.Read.All",
  ["POST groups"] = { need = "Group.Create", also = "new_group" },
  ["PATCH groups/:id"] = { needs = {}, also = "group_patch" },
  ["DELETE groups/:id"] = "Group.ReadWrite.All",
  ["POST groups/:id/members/$ref"] = { need = "GroupMember.ReadWrite.All", also = "assignable_group" },
  ["DELETE groups/:id/members/:mid/$ref"] = { need = "GroupMember.ReadWrite.All", also = "assignable_group" },
  ["POST invitations"] = "User.Invite.All",
  ["GET users/delta"] = "User.Read.All", ["GET groups/delta"] = "GroupMember.Read.All",
  ["GET applications/delta"] = R, ["GET servicePrincipals/delta"] = R,
  ["GET groups/:id/owners"] = "GroupMember.Read.All", ["POST groups/:id/owners/$ref"] = "Group.ReadWrite.All",
  ["DELETE groups/:id/owners/:oid/$ref"] = "Group.ReadWrite.All",
  ["GET applications/:id/owners"] = R, ["POST applications/:id/owners/$ref"] = W,
  ["DELETE applications/:id/owners/:oid/$ref"] = W,
  ["GET servicePrincipals/:id/owners"] = R, ["POST servicePrincipals/:id/owners/$ref"] = W,
  ["DELETE servicePrincipals/:id/owners/:oid/$ref"] = W,

  ["GET domains"] = "Domain.Read.All", ["GET domains/:id"] = "Domain.Read.All",
  ["GET organization"] = "Organization.Read.All", ["GET organization/:id"] = "Organization.Read.All",
  ["GET subscribedSkus"] = "LicenseAssignment.Read.All", ["GET subscribedSkus/:id"] = "LicenseAssignment.Read.All",
  ["GET directoryObjects/:id"] = "Directory.Read.All",

  ["GET roleManagement/directory/roleDefinitions"] = RR, ["GET roleManagement/directory/roleDefinitions/:id"] = RR,
  ["GET roleManagement/directory/roleAssignments"] = RR, ["GET roleManagement/directory/roleAssignments/:id"] = RR,
  ["POST roleManagement/directory/roleAssignments"] = RW, ["DELETE roleManagement/directory/roleAssignments/:id"] = RW,
  ["GET directoryRoles"] = RR, ["GET directoryRoles/:id"] = RR, ["GET directoryRoles/:id/members"] = RR,

  -- PIM for Entra roles
  ["GET roleManagement/directory/roleAssignmentSchedules"] = "RoleAssignmentSchedule.Read.Directory",
  ["GET roleManagement/directory/roleAssignmentScheduleInstances"] = "RoleAssignmentSchedule.Read.Directory",
  ["GET roleManagement/directory/roleAssignmentScheduleRequests"] = "RoleAssignmentSchedule.Read.Directory",
  ["GET roleManagement/directory/roleEligibilitySchedules"] = "RoleEligibilitySchedule.Read.Directory",
  ["GET roleManagement/directory/roleEligibilityScheduleInstances"] = "RoleEligibilitySchedule.Read.Directory",
  ["GET roleManagement/directory/roleEligibilityScheduleRequests"] = "RoleEligibilitySchedule.Read.Directory",
  ["GET roleManagement/directory/roleAssignmentScheduleInstances/filterByCurrentUser/:on"] =
    "RoleAssignmentSchedule.Read.Directory",
  ["GET roleManagement/directory/roleEligibilityScheduleInstances/filterByCurrentUser/:on"] =
    "RoleEligibilitySchedule.Read.Directory",
  ["POST roleManagement/directory/roleAssignmentScheduleRequests"] =
    { need = "RoleAssignmentSchedule.ReadWrite.Directory", self = "pim_self" },
  ["POST roleManagement/directory/roleEligibilityScheduleRequests"] = "RoleEligibilitySchedule.ReadWrite.Directory",
  -- policies: the directory roles' need RoleManagementPolicy.*.Directory, a PIM group's *.AzureADGroup
  ["GET policies/roleManagementPolicies"] = { needs = {}, also = "policy_scope" },
  ["GET policies/roleManagementPolicies/:id"] = { needs = {}, also = "policy_scope" },
  ["GET policies/roleManagementPolicies/:id/rules"] = { needs = {}, also = "policy_scope" },
  ["GET policies/roleManagementPolicyAssignments"] = { needs = {}, also = "policy_scope" },
  ["PATCH policies/roleManagementPolicies/:id/rules/:rid"] = { needs = {}, also = "policy_scope" },

  -- PIM for Groups
  ["GET identityGovernance/privilegedAccess/group/eligibilityScheduleInstances"] =
    "PrivilegedEligibilitySchedule.Read.AzureADGroup",
  ["GET identityGovernance/privilegedAccess/group/eligibilitySchedules"] =
    "PrivilegedEligibilitySchedule.Read.AzureADGroup",
  ["GET identityGovernance/privilegedAccess/group/assignmentScheduleInstances"] =
    "PrivilegedAssignmentSchedule.Read.AzureADGroup",
  ["GET identityGovernance/privilegedAccess/group/assignmentSchedules"] =
    "PrivilegedAssignmentSchedule.Read.AzureADGroup",
  ["POST identityGovernance/privilegedAccess/group/assignmentScheduleRequests"] =
    { need = "PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup", self = "pim_self" },
  ["POST identityGovernance/privilegedAccess/group/eligibilityScheduleRequests"] =
    "PrivilegedEligibilitySchedule.ReadWrite.AzureADGroup",
  -- the cross-tenant migration job API (beta; t2t.sim.graph.migrations)
  ["GET solutions/migrations/crossTenantMigrationJobs"] = "CrossTenantContentMigration.Read.All",
  ["POST solutions/migrations/crossTenantMigrationJobs"] = "CrossTenantContentMigration.ReadWrite.All",
  ["POST solutions/migrations/crossTenantMigrationJobs/validate"] = "CrossTenantContentMigration.ReadWrite.All",
  ["GET solutions/migrations/crossTenantMigrationJobs/:id"] = "CrossTenantContentMigration.Read.All",
  ["PATCH solutions/migrations/crossTenantMigrationJobs/:id"] = "CrossTenantContentMigration.ReadWrite.All",
  ["DELETE solutions/migrations/crossTenantMigrationJobs/:id"] = "CrossTenantContentMigration.ReadWrite.All",
  ["POST solutions/migrations/crossTenantMigrationJobs/:id/migrate"] = "CrossTenantContentMigration.ReadWrite.All",
  ["POST solutions/migrations/crossTenantMigrationJobs/:id/cancel"] = "CrossTenantContentMigration.ReadWrite.All",
  ["GET solutions/migrations/crossTenantMigrationJobs/:id/users"] = "CrossTenantContentMigration.Read.All",
  ["GET solutions/migrations/crossTenantMigrationJobs/:id/users/:uid"] = "CrossTenantContentMigration.Read.All",
  ["POST solutions/migrations/crossTenantMigrationJobs/:id/users/:uid/cancel"] = "CrossTenantContentMigration.ReadWrite.All",
}

-- Predicates: (ctx, params) -> extra needs (also), true (unless/self).
local function group(ctx, id)
  local store = require "t2t.sim.graph.store"
  local ok, g = pcall(store.resolve, ctx, "group", id)
  return ok and g or nil
end

M.PREDICATES = {
  -- adding or removing members of a role-assignable group also needs RoleManagement (§3)
  assignable_group = function(ctx, p)
    local g = group(ctx, p.id)
    return g and g.isAssignableToRole and { RW } or nil
  end,
  new_group = function(ctx)
    local b = ctx.json
    return type(b) == "table" and b.isAssignableToRole == true and { RW } or nil
  end,
  -- PATCH /groups/{id}: members@odata.bind needs membership rights, other properties the
  -- group's; an upsert that creates the group needs Group.Create
  group_patch = function(ctx, p)
    local b = type(ctx.json) == "table" and ctx.json or {}
    local g = group(ctx, p.id)
    if not g then
      return b.isAssignableToRole == true and { "Group.Create", RW } or { "Group.Create" }
    end
    local out, other = {}, false
    if b["members@odata.bind"] ~= nil then
      out[#out + 1] = "GroupMember.ReadWrite.All"
      if g.isAssignableToRole then out[#out + 1] = RW end
    end
    for k in pairs(b) do if not k:find("@", 1, true) then other = true end end
    if other then out[#out + 1] = "Group.ReadWrite.All" end
    return out
  end,
  -- a role management policy of a PIM group (id Group_..., or a filter on scopeType 'Group')
  policy_scope = function(ctx, p)
    local f = type(ctx.q) == "table" and ctx.q["$filter"] or ""
    local of_group = tostring(p.id or ""):match("^Group_") or tostring(f):find("scopeType eq 'Group'", 1, true)
    local write = ctx.method ~= "GET"
    if of_group then return { write and "RoleManagementPolicy.ReadWrite.AzureADGroup" or "RoleManagementPolicy.Read.AzureADGroup" } end
    return { write and "RoleManagementPolicy.ReadWrite.Directory" or "RoleManagementPolicy.Read.Directory" }
  end,
  -- an application may roll its own certificate with addKey without any permission
  own_app = function(ctx, p)
    local store = require "t2t.sim.graph.store"
    local ok, app = pcall(store.resolve, ctx, "application", p.id)
    return ok and app ~= nil and app.appId == ctx.claims.appid
  end,
  -- PIM self-service (activate, deactivate, extend, renew own eligibility) needs no admin role
  pim_self = function(ctx)
    local a = type(ctx.json) == "table" and ctx.json.action
    return type(a) == "string" and a:sub(1, 4) == "self"
  end,
}

-- A token is delegated when it carries scopes (a user signed in), else app-only.
function M.delegated(claims)
  return type(claims.scp) == "string" and claims.scp ~= ""
end

local function holds_role(claims, names)
  local wids = {}
  for _, w in ipairs(claims.wids or {}) do wids[w] = true end
  if wids[catalog.GLOBAL_ADMIN] then return true end
  for _, n in ipairs(names) do
    local r = catalog.role(n)
    if r and wids[r.id] then return true end
  end
  return false
end

local function deny()
  require("t2t.sim.graph.util").fail(403, "Authorization_RequestDenied",
    "Insufficient privileges to complete the operation.")
end

-- note(req, what): the request log names what each call needed, and in which tenant (the
-- runbooks' `needs` are checked against it: tests/e2e/roles_needs.lua).
local function note(req, field, what)
  if not req then return end
  req.note = req.note or {}
  local cur = req.note[field]
  req.note[field] = cur and (cur .. "," .. what) or what
end

-- check_need(ctx, need, self_service): raise 403 unless the token allows `need`.
function M.check_need(ctx, need, self_service)
  note(ctx.req, "authz", need)
  if ctx.all_access then return end
  if not catalog.satisfied(need, ctx.perms) then deny() end
  local roles = not self_service and M.delegated(ctx.claims) and catalog.graph_roles(need)
  if roles and not holds_role(ctx.claims, roles) then deny() end
end

local function entry_of(route)
  local key = route.key
  if not key then
    key = route[1] .. " " .. table.concat(route[2], "/")
    route.key = key
  end
  return M.GRAPH[key], key
end

-- graph(ctx, route, params): the check every Graph request passes before its handler (raises
-- the Graph error; 500 for a route nobody gave an entry, so a missing one is noticed at once).
function M.graph(ctx, route, params)
  local e, key = entry_of(route)
  if ctx.req then
    ctx.req.note = ctx.req.note or {}
    ctx.req.note.tid = ctx.tenant and ctx.tenant.id
  end
  if e == nil then
    require("t2t.sim.graph.util").fail(500, "InternalServerError", "t2t sim: route '" .. key ..
      "' has no authorization entry in lua/t2t/sim/authz.lua (docs/simulator.md, Authorization)")
  end
  if e == false then return end
  if type(e) == "string" then return M.check_need(ctx, e) end
  if e[1] then
    for _, n in ipairs(e) do M.check_need(ctx, n) end
    return
  end
  if e.unless and M.PREDICATES[e.unless](ctx, params) then return end
  local self_service = e.self and M.PREDICATES[e.self](ctx, params)
  local needs = {}
  if e.need then needs[1] = e.need end
  for _, n in ipairs(e.needs or {}) do needs[#needs + 1] = n end
  for _, n in ipairs(e.also and M.PREDICATES[e.also](ctx, params) or {}) do needs[#needs + 1] = n end
  for _, n in ipairs(needs) do M.check_need(ctx, n, self_service) end
end

---------------------------------------------------------------------------------------------
-- Exchange Online.  A cmdlet runs when the caller holds one of the management roles that
-- contain it (catalog.cmdlet_roles): through a linked role group of a directory role in the
-- token's `wids`, or through Exchange's own role groups and assignments (t2t.sim.exo.rbac).

-- exchange_roles(t, claims) -> set role name -> how ("<Entra role> (linked role group)" or the
-- Exchange role group / assignment).
function M.exchange_roles(t, claims)
  local out = {}
  for _, w in ipairs(claims.wids or {}) do
    local l = catalog.linked(w)
    if l then
      for _, r in ipairs(catalog.ROLE_GROUPS[l.group] or {}) do
        out[r] = out[r] or (catalog.role_name(w) .. " via " .. l.group)
      end
    end
  end
  local rbac = require "t2t.sim.exo.rbac"
  for r, how in pairs(rbac.native_roles(t, { claims.oid, claims.appid })) do out[r] = out[r] or how end
  return out
end

-- exo_gateway(claims): the InvokeCommand gateway admits an app token with the
-- Exchange.ManageAsApp role, or a user token with the Exchange.Manage scope; anything else is
-- its 401 (wire.md §2.10: "neither grant gives 401").
function M.exo_gateway(claims)
  for _, r in ipairs(claims.roles or {}) do
    if r == catalog.MANAGE_AS_APP then return true end
  end
  if M.delegated(claims) then
    for s in claims.scp:gmatch("%S+") do
      if s == catalog.MANAGE_DELEGATED then return true end
    end
  end
  return false
end

-- exo(t, claims, cmdlet) -> role name, how | nil: may the caller run the cmdlet.
function M.exo(t, claims, cmdlet)
  local have = M.exchange_roles(t, claims)
  for _, r in ipairs(catalog.cmdlet_roles(cmdlet)) do
    if have[r] then return r, have[r] end
  end
  return nil
end

return M
