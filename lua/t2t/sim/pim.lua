-- t2t.sim.pim: who holds which Entra role at a given (simulated) time — the one source for the
-- Graph role APIs (assignments, schedules, instances, PIM for Groups), the tokens' `wids` and
-- Exchange's linked role groups, so a refusal, a token and a report always agree.
-- Facts: roles-and-mailauth.md §2-3 (schedule/instance shapes, memberType, PIM for Groups).
--
-- State (tenant.dir, created on first use; every time an epoch second):
--   role_assignments = { [id] = {id, roleDefinitionId, principalId, directoryScopeId} }  active,
--       permanent, made outside PIM (the seed's; POST roleAssignments)
--   role_schedules   = { [id] = {id, kind = "assignment"|"eligibility", principalId,
--       roleDefinitionId, directoryScopeId, memberType, assignmentType = "Assigned"|"Activated",
--       start, stop (nil: no expiration), createdUsing, activatedUsing, created} }
--   group_schedules  = { [id] = {id, kind, groupId, principalId, accessId = "member"|"owner",
--       memberType, assignmentType, start, stop, createdUsing, activatedUsing, created} }
local model = require "t2t.sim.model"

local M = {}

M.GROUP_NESTING = false        -- role-assignable groups cannot hold groups (§3)

function M.dir(t)
  local d = t.dir
  d.role_assignments = d.role_assignments or {}
  d.role_schedules = d.role_schedules or {}
  d.group_schedules = d.group_schedules or {}
  return d
end

-- live(s, now): the schedule is in force at `now`.
local function live(s, now)
  return (s.start == nil or s.start <= now) and (s.stop == nil or now < s.stop)
end
M.live = live

-- The rows of the schedules of `kind` in force at `now`, row(id, schedule) each, into `out`,
-- sorted by id.
local function live_rows(out, schedules, kind, now, row)
  for id, s in pairs(schedules) do
    if s.kind == kind and live(s, now) then out[#out + 1] = row(id, s) end
  end
  table.sort(out, function(a, b) return a.id < b.id end)
  return out
end

local function template(t, rid)
  local def = t.dir.role_definitions and t.dir.role_definitions[rid]
  return def and def.templateId or rid
end

-- Active role assignment instances at `now`: the permanent ones (no start, no end, not made by
-- PIM) and the assignment schedules in force (time-bound Assigned, or Activated).  Each:
-- {id, principalId, roleDefinitionId (template id), directoryScopeId, assignmentType,
--  memberType, start, stop, createdUsing, schedule, origin = assignment or schedule id}.
function M.active(t, now)
  local d, out = M.dir(t), {}
  for id, a in pairs(d.role_assignments) do
    out[#out + 1] = { id = id, principalId = a.principalId, roleDefinitionId = template(t, a.roleDefinitionId),
                      directoryScopeId = a.directoryScopeId or "/", assignmentType = "Assigned",
                      memberType = "Direct", schedule = id, origin = id, created = a.created }
  end
  return live_rows(out, d.role_schedules, "assignment", now, function(id, s)
    return { id = id, principalId = s.principalId, roleDefinitionId = template(t, s.roleDefinitionId),
             directoryScopeId = s.directoryScopeId or "/", assignmentType = s.assignmentType or "Assigned",
             memberType = s.memberType or "Direct", start = s.start, stop = s.stop,
             createdUsing = s.createdUsing, activatedUsing = s.activatedUsing, schedule = id,
             origin = s.origin or id, created = s.created }
  end)
end

-- Eligible role instances at `now` (PIM).
function M.eligible(t, now)
  return live_rows({}, M.dir(t).role_schedules, "eligibility", now, function(id, s)
    return { id = id, principalId = s.principalId, roleDefinitionId = template(t, s.roleDefinitionId),
             directoryScopeId = s.directoryScopeId or "/", memberType = s.memberType or "Direct",
             start = s.start, stop = s.stop, createdUsing = s.createdUsing, schedule = id, created = s.created }
  end)
end

-- PIM for Groups instances at `now` of `kind` ("assignment" | "eligibility").
function M.group_instances(t, kind, now)
  return live_rows({}, M.dir(t).group_schedules, kind, now, function(id, s)
    return { id = id, groupId = s.groupId, principalId = s.principalId, accessId = s.accessId or "member",
             memberType = s.memberType or "Direct", assignmentType = s.assignmentType or "Assigned",
             start = s.start, stop = s.stop, createdUsing = s.createdUsing,
             activatedUsing = s.activatedUsing, schedule = id, created = s.created }
  end)
end

-- groups_of(t, principal_id, now) -> set of group ids the principal is a member of at `now`:
-- assigned membership plus active PIM for Groups membership (not ownership).
function M.groups_of(t, pid, now)
  local out = {}
  for g in pairs(model.idx(t).members_of[pid] or {}) do out[g] = true end
  for _, s in pairs(M.dir(t).group_schedules) do
    if s.kind == "assignment" and s.principalId == pid and (s.accessId or "member") == "member" and live(s, now) then
      out[s.groupId] = true
    end
  end
  return out
end

-- roles_of(t, principal_id, now) -> list of active instances that give the principal a role,
-- directly or through a group (each with .via = group id when through one).
function M.roles_of(t, pid, now)
  local groups = M.groups_of(t, pid, now)
  local out = {}
  for _, a in ipairs(M.active(t, now)) do
    if a.principalId == pid then out[#out + 1] = a
    elseif groups[a.principalId] then
      local c = {}
      for k, v in pairs(a) do c[k] = v end
      c.via = a.principalId
      out[#out + 1] = c
    end
  end
  return out
end

-- wids(t, principal_id, now) -> sorted template ids of the tenant-wide roles the principal holds
-- at `now` (what a token issued then carries in `wids`).
function M.wids(t, pid, now)
  local seen, out = {}, {}
  for _, a in ipairs(M.roles_of(t, pid, now)) do
    if a.directoryScopeId == "/" and not seen[a.roleDefinitionId] then
      seen[a.roleDefinitionId] = true
      out[#out + 1] = a.roleDefinitionId
    end
  end
  table.sort(out)
  return out
end

-- Whether principal `pid` is eligible (directly or through a group) for role `rid` at scope.
-- Returns the eligibility instance (with .via for a group) or nil.
function M.eligibility_for(t, pid, rid, scope, now)
  local groups = M.groups_of(t, pid, now)
  rid = template(t, rid)
  for _, e in ipairs(M.eligible(t, now)) do
    if e.roleDefinitionId == rid and e.directoryScopeId == (scope or "/") then
      if e.principalId == pid then return e end
      if groups[e.principalId] then
        local c = {}
        for k, v in pairs(e) do c[k] = v end
        c.via = e.principalId
        return c
      end
    end
  end
  return nil
end

function M.group_eligibility_for(t, pid, gid, access, now)
  for _, e in ipairs(M.group_instances(t, "eligibility", now)) do
    if e.principalId == pid and e.groupId == gid and e.accessId == (access or "member") then return e end
  end
  return nil
end

-- Role-assignable groups in the tenant (the 500 limit counts them, §3).
function M.assignable_groups(t)
  local n = 0
  for _, o in pairs(t.dir.objects) do
    if o["@odata.type"] == "#microsoft.graph.group" and o.isAssignableToRole then n = n + 1 end
  end
  return n
end
M.ASSIGNABLE_LIMIT = 500

-- The tenant has Microsoft Entra ID P2 (PIM): a subscribed SKU with the AAD_PREMIUM_P2 plan.
function M.has_p2(t)
  for _, s in ipairs(t.dir.skus or {}) do
    for _, p in ipairs(s.servicePlans or {}) do
      if p.servicePlanName == "AAD_PREMIUM_P2" and (p.provisioningStatus or "Success") == "Success" then return true end
    end
  end
  return false
end

return M
