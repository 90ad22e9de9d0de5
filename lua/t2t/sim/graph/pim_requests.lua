-- t2t.sim.graph.pim_requests: PIM requests — POST roleAssignmentScheduleRequests,
-- roleEligibilityScheduleRequests (Entra roles) and the PIM for Groups assignment / eligibility
-- requests.  Actions: adminAssign, adminUpdate, adminExtend, adminRenew, adminRemove (admins);
-- selfActivate, selfDeactivate (the eligible principal itself).  A request becomes a schedule
-- in t2t.sim.pim with start and end on the simulated clock, so an activation is in force from
-- its start until it expires, and tokens issued meanwhile carry the role (roles-and-mailauth.md
-- §2-3; error codes [inferred] except RoleAssignmentExists).
local util = require "t2t.sim.graph.util"
local types = require "t2t.sim.graph.types"
local store = require "t2t.sim.graph.store"
local pim = require "t2t.sim.pim"
local roles = require "t2t.sim.graph.roles"
local policies = require "t2t.sim.graph.pim_policies"
require "t2t.sim.graph.pim_types"

local M = {}
local route = store.routes(M)

-- ISO 8601 duration ("PT8H", "P1D", "PT30M", "P1DT2H") -> seconds | nil.
function M.duration(s)
  if type(s) ~= "string" then return nil end
  local d, rest = s:match("^P(%d*)D?(.*)$")
  if not d then return nil end
  local secs = (tonumber(d) or 0) * 86400
  if rest ~= "" then
    local t = rest:match("^T(.+)$")
    if not t then return nil end
    for n, u in t:gmatch("([%d%.]+)([HMS])") do
      secs = secs + tonumber(n) * (u == "H" and 3600 or u == "M" and 60 or 1)
    end
  end
  return secs
end

-- window(ctx, info) -> start, stop (nil: no expiration), duration asked (seconds | nil).
local function window(ctx, info)
  info = type(info) == "table" and info or {}
  local start = util.parse_iso(info.startDateTime) or math.floor(ctx.sim:now())
  local e = type(info.expiration) == "table" and info.expiration or {}
  local typ = e.type or "noExpiration"
  if typ == "afterDateTime" then
    local stop = util.parse_iso(e.endDateTime)
    if not stop then util.bad("expiration.endDateTime is required for afterDateTime.", "BadRequest") end
    return start, stop, stop - start
  elseif typ == "afterDuration" then
    local d = M.duration(e.duration)
    if not d or d <= 0 then util.bad("expiration.duration must be an ISO 8601 duration such as PT8H.", "BadRequest") end
    return start, start + d, d
  elseif typ == "noExpiration" or typ == "notSpecified" then
    return start, nil, nil
  end
  util.bad("Invalid expiration type '" .. tostring(typ) .. "'.", "BadRequest")
end

local function fail(code, message) util.fail(400, code, message) end

local function record(ctx, kind, b, status, target, extra)
  local dir = ctx.tenant.dir
  dir.pim_requests = dir.pim_requests or {}
  local now = math.floor(ctx.sim:now())
  local r = { id = util.guid(ctx.sim), action = b.action, principalId = b.principalId,
              roleDefinitionId = b.roleDefinitionId, directoryScopeId = b.directoryScopeId,
              groupId = b.groupId, accessId = b.accessId, justification = b.justification,
              scheduleInfo = b.scheduleInfo, ticketInfo = b.ticketInfo, isValidationOnly = b.isValidationOnly == true,
              status = status, targetScheduleId = target, createdDateTime = now,
              completedDateTime = status ~= "PendingApproval" and now or nil, kind = kind,
              createdBy = ctx.claims.idtyp == "app" and { application = { id = ctx.claims.appid } }
                          or { user = { id = ctx.claims.oid } }, created = 0 }
  for k, v in pairs(extra or {}) do r[k] = v end
  dir.pim_requests[r.id] = r
  return r
end

-- The live-or-future schedules of `kind` matching the key fields.
local function matching(list, kind, key, now)
  local out = {}
  for id, s in pairs(list) do
    local ok = s.kind == kind and (s.stop == nil or s.stop > now)
    for k, v in pairs(key) do if s[k] ~= v then ok = false end end
    if ok then out[#out + 1] = id end
  end
  table.sort(out)
  return out
end

-- The end-user rules of the policy that governs an activation: approval, justification,
-- maximum duration (the defaults Entra gives, t2t.sim.graph.pim_policies).
local function activation_rules(ctx, b, stop, asked)
  local rules = policies.rules_for(ctx, b.groupId and "Group" or "DirectoryRole", b.groupId or "/",
                                   b.groupId and (b.accessId or "member") or b.roleDefinitionId)
  local en = rules.Enablement_EndUser_Assignment
  for _, r in ipairs(en and en.enabledRules or {}) do
    if r == "Justification" and (type(b.justification) ~= "string" or b.justification == "") then
      fail("JustificationRule", "A justification is required to activate this role.")
    end
  end
  local ex = rules.Expiration_EndUser_Assignment
  local max = ex and M.duration(ex.maximumDuration)
  if stop == nil and ex and ex.isExpirationRequired then
    fail("ExpirationRule", "An activation must have an end: give expiration afterDuration (at most "
      .. tostring(ex.maximumDuration) .. ").")
  end
  if max and asked and asked > max then
    fail("ExpirationRule", "The requested duration is longer than the maximum of " .. ex.maximumDuration .. ".")
  end
  local ap = rules.Approval_EndUser_Assignment
  return ap and ap.setting and ap.setting.isApprovalRequired == true
end

-- One request on a schedule list.  spec: {kind, key (fields identifying the schedule),
-- eligible(ctx, b) -> eligibility instance | nil, base (fields of a new schedule)}.
local function apply(ctx, b, spec)
  local now = ctx.sim:now()
  local list = spec.list
  local action = tostring(b.action or "")
  local la = action:lower()
  local start, stop, asked = window(ctx, b.scheduleInfo)
  local existing = matching(list, spec.kind, spec.key, now)
  local function new_schedule(extra)
    local s = { id = util.guid(ctx.sim), kind = spec.kind, start = start, stop = stop, created = math.floor(now),
                memberType = "Direct" }
    for k, v in pairs(spec.base) do s[k] = v end
    for k, v in pairs(extra or {}) do s[k] = v end
    list[s.id] = s
    return s
  end
  if la == "adminassign" then
    if #existing > 0 or (spec.static and spec.static()) then
      fail("RoleAssignmentExists", "The Role assignment already exists.")
    end
    local r = record(ctx, spec.rkind, b, "Provisioned", nil)
    local s = new_schedule { assignmentType = spec.kind == "assignment" and "Assigned" or nil, createdUsing = r.id }
    r.targetScheduleId = s.id
    return r
  elseif la == "adminremove" then
    if #existing == 0 and not (spec.static and spec.static(true)) then
      fail("RoleAssignmentDoesNotExist", "The Role assignment does not exist.")
    end
    for _, id in ipairs(existing) do list[id] = nil end
    return record(ctx, spec.rkind, b, "Revoked", existing[1])
  elseif la == "adminupdate" or la == "adminextend" or la == "adminrenew" then
    if #existing == 0 then fail("RoleAssignmentDoesNotExist", "The Role assignment does not exist.") end
    for _, id in ipairs(existing) do list[id].stop = stop end
    return record(ctx, spec.rkind, b, "Provisioned", existing[1])
  elseif la == "selfactivate" and spec.kind == "assignment" then
    if b.principalId ~= ctx.claims.oid then
      util.fail(403, "Authorization_RequestDenied", "A principal can only activate its own eligibility.")
    end
    local e = spec.eligible(ctx, b)
    if not e then fail("RoleEligibilityScheduleNotFound", "The principal is not eligible for this role.") end
    for _, id in ipairs(existing) do
      if list[id].assignmentType == "Activated" then fail("RoleAssignmentExists", "The Role assignment already exists.") end
    end
    if activation_rules(ctx, b, stop, asked) then return record(ctx, spec.rkind, b, "PendingApproval", nil) end
    local r = record(ctx, spec.rkind, b, "Provisioned", nil)
    local s = new_schedule { assignmentType = "Activated", createdUsing = r.id, activatedUsing = e.schedule,
                             memberType = e.via and "Group" or "Direct" }
    r.targetScheduleId = s.id
    return r
  elseif la == "selfdeactivate" and spec.kind == "assignment" then
    local found
    for _, id in ipairs(existing) do
      if list[id].assignmentType == "Activated" then found = id; list[id] = nil end
    end
    if not found then fail("RoleAssignmentDoesNotExist", "The Role assignment does not exist.") end
    return record(ctx, spec.rkind, b, "Revoked", found)
  end
  util.fail(action:match("^self") and 400 or 501, action:match("^self") and "InvalidAction" or "NotImplemented",
    "The action '" .. action .. "' is not supported " .. (action:match("^self") and "here." or "by the simulator."))
end

local function respond(tname, context, r)
  local out = types.project(tname, r)
  out["@odata.context"] = store.ROOT .. "/$metadata#" .. context .. "/$entity"
  return { status = 201, body = out }
end

-- Entra roles.
local function role_request(kind)
  return function(ctx)
    roles.need_p2(ctx)
    local b = ctx.json or {}
    local tname = kind == "assignment" and "unifiedRoleAssignmentScheduleRequest" or "unifiedRoleEligibilityScheduleRequest"
    types.check_body(tname, b)
    for _, k in ipairs({ "action", "principalId", "roleDefinitionId" }) do
      if type(b[k]) ~= "string" then util.bad("Property '" .. k .. "' is required.", "BadRequest") end
    end
    b.directoryScopeId = b.directoryScopeId or "/"
    local def = roles.find_definition(ctx, b.roleDefinitionId)
    if not def then util.not_found(b.roleDefinitionId) end
    b.roleDefinitionId = def.id
    roles.check_principal(ctx, b.principalId)
    local t = ctx.tenant
    local statics = pim.dir(t).role_assignments
    local r = apply(ctx, b, {
      kind = kind, rkind = "role_" .. kind, list = pim.dir(t).role_schedules,
      key = { principalId = b.principalId, roleDefinitionId = def.id, directoryScopeId = b.directoryScopeId },
      base = { principalId = b.principalId, roleDefinitionId = def.id, directoryScopeId = b.directoryScopeId },
      eligible = function() return pim.eligibility_for(t, b.principalId, def.id, b.directoryScopeId, ctx.sim:now()) end,
      -- a permanent assignment made outside PIM counts as existing, and adminRemove removes it
      static = kind == "assignment" and function(remove)
        for id, a in pairs(statics) do
          if a.principalId == b.principalId and a.roleDefinitionId == def.id
             and (a.directoryScopeId or "/") == b.directoryScopeId then
            if remove then statics[id] = nil end
            return true
          end
        end
        return false
      end or nil,
    })
    return respond(tname, "roleManagement/directory/" .. (kind == "assignment" and "roleAssignmentScheduleRequests"
      or "roleEligibilityScheduleRequests"), r)
  end
end

route("POST", "roleManagement/directory/roleAssignmentScheduleRequests", role_request("assignment"))
route("POST", "roleManagement/directory/roleEligibilityScheduleRequests", role_request("eligibility"))

local function request_list(ctx, rkind, tname, set)
  local out = {}
  for _, r in pairs(ctx.tenant.dir.pim_requests or {}) do
    if r.kind == rkind then out[#out + 1] = r end
  end
  table.sort(out, function(a, b) return a.id < b.id end)
  return store.collection(ctx, tname, set, out)
end

route("GET", "roleManagement/directory/roleAssignmentScheduleRequests", function(ctx)
  roles.need_p2(ctx)
  return request_list(ctx, "role_assignment", "unifiedRoleAssignmentScheduleRequest",
    "roleManagement/directory/roleAssignmentScheduleRequests")
end)
route("GET", "roleManagement/directory/roleEligibilityScheduleRequests", function(ctx)
  roles.need_p2(ctx)
  return request_list(ctx, "role_eligibility", "unifiedRoleEligibilityScheduleRequest",
    "roleManagement/directory/roleEligibilityScheduleRequests")
end)

-- PIM for Groups.
local GROUP_BASE = "identityGovernance/privilegedAccess/group/"

local function group_request(kind)
  return function(ctx)
    roles.need_p2(ctx)
    local b = ctx.json or {}
    local tname = kind == "assignment" and "privilegedAccessGroupAssignmentScheduleRequest"
                  or "privilegedAccessGroupEligibilityScheduleRequest"
    types.check_body(tname, b)
    for _, k in ipairs({ "action", "principalId", "groupId", "accessId" }) do
      if type(b[k]) ~= "string" then util.bad("Property '" .. k .. "' is required.", "BadRequest") end
    end
    if b.accessId ~= "member" and b.accessId ~= "owner" then util.bad("accessId must be member or owner.", "BadRequest") end
    store.must(ctx, b.groupId, "group")
    local who = store.must(ctx, b.principalId)
    local k = store.kind(who)
    if k ~= "user" and k ~= "group" then util.bad("The principal type is not supported.", "BadRequest") end
    local t = ctx.tenant
    policies.enroll(ctx, b.groupId)
    local r = apply(ctx, b, {
      kind = kind, rkind = "group_" .. kind, list = pim.dir(t).group_schedules,
      key = { principalId = b.principalId, groupId = b.groupId, accessId = b.accessId },
      base = { principalId = b.principalId, groupId = b.groupId, accessId = b.accessId },
      eligible = function()
        local e = pim.group_eligibility_for(t, b.principalId, b.groupId, b.accessId, ctx.sim:now())
        return e
      end,
    })
    return respond(tname, GROUP_BASE .. kind .. "ScheduleRequests", r)
  end
end

route("POST", GROUP_BASE .. "assignmentScheduleRequests", group_request("assignment"))
route("POST", GROUP_BASE .. "eligibilityScheduleRequests", group_request("eligibility"))

return M
