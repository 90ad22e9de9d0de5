-- t2t.sim.graph.pim_policies: PIM settings (role management policies and their 17 rules, one
-- policy per Entra role and per PIM-enrolled group's member/owner access) and the PIM for
-- Groups reads (schedules and instances, $filter on groupId or principalId mandatory).
-- Rule ids and fields: roles-and-mailauth.md §2 ("PIM rule IDs"); defaults [inferred] from
-- Entra's documented defaults: no approval, activation up to 8 hours with justification and
-- MFA, notifications to the default recipients only (so MS.AAD.7.6-7.9 fail until set).
local util = require "t2t.sim.graph.util"
local store = require "t2t.sim.graph.store"
local pim = require "t2t.sim.pim"
local catalog = require "t2t.roles.catalog"
require "t2t.sim.graph.pim_types"

local M = {}
local route = store.routes(M)

local NS = "#microsoft.graph.unifiedRoleManagementPolicy"

local function target(caller, level, ops)
  return { caller = caller, level = level, operations = ops or { "All" }, inheritableSettings = {},
           enforcedSettings = {} }
end

local function notification(id, caller, level, recipient)
  return { ["@odata.type"] = NS .. "NotificationRule", id = id, target = target(caller, level),
           notificationType = "Email", recipientType = recipient, notificationLevel = "All",
           isDefaultRecipientsEnabled = true, notificationRecipients = {} }
end

-- The 17 rules of a fresh policy.
local function default_rules()
  local r = {
    { ["@odata.type"] = NS .. "ExpirationRule", id = "Expiration_Admin_Eligibility",
      target = target("Admin", "Eligibility"), isExpirationRequired = false, maximumDuration = "P365D" },
    { ["@odata.type"] = NS .. "EnablementRule", id = "Enablement_Admin_Eligibility",
      target = target("Admin", "Eligibility"), enabledRules = {} },
    { ["@odata.type"] = NS .. "ExpirationRule", id = "Expiration_Admin_Assignment",
      target = target("Admin", "Assignment"), isExpirationRequired = false, maximumDuration = "P180D" },
    { ["@odata.type"] = NS .. "EnablementRule", id = "Enablement_Admin_Assignment",
      target = target("Admin", "Assignment"), enabledRules = { "Justification" } },
    { ["@odata.type"] = NS .. "ExpirationRule", id = "Expiration_EndUser_Assignment",
      target = target("EndUser", "Assignment"), isExpirationRequired = true, maximumDuration = "PT8H" },
    { ["@odata.type"] = NS .. "EnablementRule", id = "Enablement_EndUser_Assignment",
      target = target("EndUser", "Assignment"), enabledRules = { "MultiFactorAuthentication", "Justification" } },
    { ["@odata.type"] = NS .. "ApprovalRule", id = "Approval_EndUser_Assignment",
      target = target("EndUser", "Assignment"),
      setting = { isApprovalRequired = false, isApprovalRequiredForExtension = false,
                  isRequestorJustificationRequired = true, approvalMode = "SingleStage", approvalStages = {} } },
    { ["@odata.type"] = NS .. "AuthenticationContextRule", id = "AuthenticationContext_EndUser_Assignment",
      target = target("EndUser", "Assignment"), isEnabled = false, claimValue = "" },
  }
  for _, lvl in ipairs({ { "Admin_Eligibility", "Admin", "Eligibility" }, { "Admin_Assignment", "Admin", "Assignment" },
                         { "EndUser_Assignment", "EndUser", "Assignment" } }) do
    for _, who in ipairs({ "Admin", "Requestor", "Approver" }) do
      r[#r + 1] = notification("Notification_" .. who .. "_" .. lvl[1], lvl[2], lvl[3], who)
    end
  end
  return r
end

-- A stable id per tenant and key (real ids look like DirectoryRole_<tenant>_<guid>).
local function stable_guid(key)
  local h1, h2 = 5381, 52711
  for i = 1, #key do
    h1 = (h1 * 33 + key:byte(i)) & 0xffffffff
    h2 = (h2 * 31 + key:byte(i)) & 0xffffffff
  end
  return string.format("%08x-%04x-4%03x-8%03x-%08x%04x", h1, h2 & 0xffff, (h2 >> 16) & 0xfff, h1 & 0xfff,
                       h2, (h1 >> 8) & 0xffff)
end

local function policies(t)
  local d = t.dir
  d.role_policies = d.role_policies or {}
  d.role_policy_assignments = d.role_policy_assignments or {}
  return d.role_policies, d.role_policy_assignments
end

-- ensure(t, scope_type, scope_id, role) -> the policy governing `role` (a template id for
-- DirectoryRole; "member"/"owner" for a Group), made with the default rules on first use.
function M.ensure(t, scope_type, scope_id, role)
  local list, assigns = policies(t)
  local key = scope_type .. "|" .. scope_id .. "|" .. role
  local pid = scope_type .. "_" .. (scope_type == "Group" and scope_id or t.id) .. "_" .. stable_guid(t.id .. key)
  if not list[pid] then
    list[pid] = { id = pid, displayName = scope_type, description = scope_type, isOrganizationDefault = false,
                  scopeId = scope_id, scopeType = scope_type, lastModifiedDateTime = t.created or 0, rules = default_rules(),
                  created = 0 }
    assigns[pid .. "_" .. role] = { id = pid .. "_" .. role, policyId = pid, scopeId = scope_id,
                                    scopeType = scope_type, roleDefinitionId = role, created = 0 }
  end
  return list[pid]
end

-- rules_for(ctx, scope_type, scope_id, role) -> {rule id = rule}.
function M.rules_for(ctx, scope_type, scope_id, role)
  local p = M.ensure(ctx.tenant, scope_type, scope_id, role)
  local out = {}
  for _, r in ipairs(p.rules) do out[r.id] = r end
  return out
end

-- enroll(ctx, gid): a group joins PIM for Groups (its member and owner policies exist).
function M.enroll(ctx, gid)
  M.ensure(ctx.tenant, "Group", gid, "member")
  M.ensure(ctx.tenant, "Group", gid, "owner")
end

-- Every directory role's policy exists once someone reads them.
local function all_directory(ctx)
  for _, r in ipairs(catalog.ROLES) do M.ensure(ctx.tenant, "DirectoryRole", "/", r.id) end
  for id in pairs(ctx.tenant.dir.role_definitions or {}) do M.ensure(ctx.tenant, "DirectoryRole", "/", id) end
end

-- The list APIs need a filter on scopeId and scopeType (as Graph's do).
local function need_scope_filter(ctx)
  local f = ctx.q["$filter"]
  if type(f) ~= "string" or not f:find("scopeId", 1, true) or not f:find("scopeType", 1, true) then
    util.fail(400, "BadRequest", "The $filter query parameter with scopeId and scopeType is required.")
  end
end

route("GET", "policies/roleManagementPolicies", function(ctx)
  need_scope_filter(ctx)
  all_directory(ctx)
  local out = {}
  for _, p in pairs((policies(ctx.tenant))) do out[#out + 1] = p end
  table.sort(out, function(a, b) return a.id < b.id end)
  return store.collection(ctx, "unifiedRoleManagementPolicy", "policies/roleManagementPolicies", out)
end)

route("GET", "policies/roleManagementPolicyAssignments", function(ctx)
  need_scope_filter(ctx)
  all_directory(ctx)
  local _, assigns = policies(ctx.tenant)
  local out = {}
  for _, a in pairs(assigns) do out[#out + 1] = a end
  table.sort(out, function(a, b) return a.id < b.id end)
  return store.collection(ctx, "unifiedRoleManagementPolicyAssignment", "policies/roleManagementPolicyAssignments", out)
end)

local function policy(ctx, id)
  local p = (policies(ctx.tenant))[id]
  if not p then util.not_found(id) end
  return p
end

route("GET", "policies/roleManagementPolicies/:id", function(ctx, p)
  return store.entity(ctx, "unifiedRoleManagementPolicy", "policies/roleManagementPolicies", policy(ctx, p.id))
end)

route("GET", "policies/roleManagementPolicies/:id/rules", function(ctx, p)
  local rules = {}
  for _, r in ipairs(policy(ctx, p.id).rules) do
    local c = util.copy(r)
    c.created = 0
    rules[#rules + 1] = c
  end
  return store.collection(ctx, "unifiedRoleManagementPolicyRule",
    "policies/roleManagementPolicies('" .. p.id .. "')/rules", rules, { mixed = true })
end)

-- PATCH a rule: the body's @odata.type names the rule's type; fields replace the stored ones.
route("PATCH", "policies/roleManagementPolicies/:id/rules/:rid", function(ctx, p)
  local pol = policy(ctx, p.id)
  local body = ctx.json or {}
  for _, r in ipairs(pol.rules) do
    if r.id == p.rid then
      local tname = r["@odata.type"]:match("graph%.(.+)$")
      require("t2t.sim.graph.types").check_body(tname, body)
      for k, v in pairs(body) do
        if not k:find("@", 1, true) and k ~= "id" then r[k] = util.copy(v) end
      end
      pol.lastModifiedDateTime = math.floor(ctx.sim:now())
      return store.no_content()
    end
  end
  util.not_found(p.rid)
end)

-- PIM for Groups reads ------------------------------------------------------------------------

local GROUP_BASE = "identityGovernance/privilegedAccess/group/"

local function need_group_filter(ctx)
  local f = ctx.q["$filter"]
  if type(f) ~= "string" or not (f:find("groupId", 1, true) or f:find("principalId", 1, true)) then
    util.fail(400, "BadRequest", "The $filter query parameter on groupId or principalId is required.")
  end
end

local function group_view(s, kind, instance)
  local v = { id = s.id, groupId = s.groupId, principalId = s.principalId, accessId = s.accessId or "member",
              memberType = s.memberType or "Direct", created = 0 }
  if kind == "assignment" then v.assignmentType = s.assignmentType or "Assigned" end
  if instance then
    v.startDateTime, v.endDateTime = s.start, s.stop
    if kind == "assignment" then v.assignmentScheduleId = s.schedule else v.eligibilityScheduleId = s.schedule end
  else
    v.createdUsing, v.createdDateTime, v.modifiedDateTime, v.status = s.createdUsing, s.created, s.created, "Provisioned"
    v.scheduleInfo = require("t2t.sim.graph.roles").schedule_info(s)
  end
  return v
end

for _, kind in ipairs({ "assignment", "eligibility" }) do
  local T = kind == "assignment" and "privilegedAccessGroupAssignmentSchedule" or "privilegedAccessGroupEligibilitySchedule"
  route("GET", GROUP_BASE .. kind .. "ScheduleInstances", function(ctx)
    require("t2t.sim.graph.roles").need_p2(ctx)
    need_group_filter(ctx)
    local out = {}
    for _, s in ipairs(pim.group_instances(ctx.tenant, kind, ctx.sim:now())) do out[#out + 1] = group_view(s, kind, true) end
    return store.collection(ctx, T .. "Instance", GROUP_BASE .. kind .. "ScheduleInstances", out)
  end)
  route("GET", GROUP_BASE .. kind .. "Schedules", function(ctx)
    require("t2t.sim.graph.roles").need_p2(ctx)
    need_group_filter(ctx)
    local out, now = {}, ctx.sim:now()
    for _, s in pairs(pim.dir(ctx.tenant).group_schedules) do
      if s.kind == kind and (s.stop == nil or s.stop > now) then out[#out + 1] = group_view(s, kind, false) end
    end
    table.sort(out, function(a, b) return a.id < b.id end)
    return store.collection(ctx, T, GROUP_BASE .. kind .. "Schedules", out)
  end)
end

return M
