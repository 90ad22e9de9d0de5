-- t2t.roles.ensure: give roles and permissions, ensure-style and through the plan (--plan shows,
-- --audit records): a role-assignable group, a member of it, an Entra role assignment (active
-- and permanent, time-bound, or eligible in PIM with a schedule), an app's consent.  Reads
-- first; changes only what differs; refuses with the reason what the service forbids (nesting,
-- making an existing group role-assignable, the 500-group limit).  roles-and-mailauth.md §2-3,
-- wire.md §3.5, §3.8, §3.12.
local catalog = require "t2t.roles.catalog"

local M = {}

local function failure(code, fmt, ...) return nil, require("t2t.tenant").failure(code, fmt, ...) end
local function q(s) return (tostring(s):gsub("'", "''")) end

local function role_of(role)
  local r = catalog.role(role)
  if r then return r end
  if type(role) == "string" and role:match("^%x+%-%x+%-%x+%-%x+%-%x+$") then return { id = role:lower(), name = role } end
  return nil
end

-- find_group(t, name) -> the group named `name` | nil | nil, err.
function M.find_group(t, name)
  local l, err = t:glist("/groups?$filter=displayName eq '" .. q(name) .. "'")
  if not l then return nil, err end
  for _, g in ipairs(l) do if g.displayName == name then return g end end
  return nil
end

-- assignable_group(t, name, o) -> group | planned placeholder | nil, err: the role-assignable
-- security group `name`, made when missing (o.description).
function M.assignable_group(t, name, o)
  o = o or {}
  local g, err = M.find_group(t, name)
  if err then return nil, err end
  if g then
    if g.isAssignableToRole ~= true then
      return failure("NotRoleAssignable", "group '%s' exists but is not role-assignable, and an existing group " ..
        "can't be made role-assignable (Entra ID sets isAssignableToRole only when a group is created): pick " ..
        "another name, or delete that group first", name)
    end
    t:note("= role-assignable group '%s' exists (%s)", name, g.id)
    return g
  end
  local all = t:glist("/groups?$filter=isAssignableToRole eq true&$select=id") or {}
  if #all >= 500 then
    return failure("AssignableGroupLimit", "tenant %s already has %d role-assignable groups, the maximum (500): " ..
      "reuse one of them or delete one that is no longer needed", tostring(t.name), #all)
  end
  local nick = name:gsub("[^%w]", ""):sub(1, 56)
  local body = { displayName = name, description = o.description or "Role-assignable group (made by t2t)",
                 mailEnabled = false, mailNickname = nick ~= "" and nick or "roles", securityEnabled = true,
                 isAssignableToRole = true }
  local created, cerr = t:create({ target = "role-assignable group '" .. name .. "'", tenant = t.name,
    operation = "ensure_assignable_group", after = body,
    apply = function() return t:gpost("/groups", body) end }, function() return M.find_group(t, name) end)
  if cerr == "planned" then return { planned = true, id = "(new group)", displayName = name, isAssignableToRole = true } end
  return created, cerr
end

-- member(t, group, principal) -> true | nil, err: principal {id, name, kind} in the group.
function M.member(t, group, p)
  if p.kind == "group" and group.isAssignableToRole == true then
    return failure("NoNesting", "group '%s' can't be a member of role-assignable group '%s': role-assignable " ..
      "groups can't be nested; add its members one by one", tostring(p.name), tostring(group.displayName))
  end
  if not group.planned and not p.planned then
    local l, err = t:glist("/groups/" .. group.id .. "/members?$select=id")
    if not l then return nil, err end
    for _, m in ipairs(l) do
      if m.id == p.id then
        t:note("= %s is a member of '%s'", tostring(p.name), group.displayName)
        return true
      end
    end
  end
  local _, err = t.plan:change { kind = "add", tenant = t.name, operation = "ensure_member",
    target = "member " .. tostring(p.name) .. " to role-assignable group '" .. group.displayName .. "'",
    apply = function()
      local r, e = t:gpost("/groups/" .. group.id .. "/members/$ref",
        { ["@odata.id"] = "https://graph.microsoft.com/v1.0/directoryObjects/" .. p.id })
      if r == nil and e == nil then return true end
      if not r and tostring(type(e) == "table" and e.message or e):find("already exist", 1, true) then return true end
      return r, e
    end }
  if err and err ~= "planned" then return nil, err end
  return true
end

-- What the principal holds for role at scope now: the permanent / time-bound assignment
-- schedules and the eligibility schedules (PIM), or the plain assignments without P2.
local function current(t, pid, rid, scope)
  local out = { active = {}, eligible = {} }
  local f = "?$filter=principalId eq '" .. q(pid) .. "'"
  local a = t:glist("/roleManagement/directory/roleAssignmentSchedules" .. f)
  if a then
    for _, s in ipairs(a) do
      if s.roleDefinitionId == rid and (s.directoryScopeId or "/") == scope then out.active[#out.active + 1] = s end
    end
    for _, s in ipairs(t:glist("/roleManagement/directory/roleEligibilitySchedules" .. f) or {}) do
      if s.roleDefinitionId == rid and (s.directoryScopeId or "/") == scope then out.eligible[#out.eligible + 1] = s end
    end
    return out
  end
  local l, err = t:glist("/roleManagement/directory/roleAssignments" .. f)
  if not l then return nil, err end
  for _, s in ipairs(l) do
    if s.roleDefinitionId == rid and (s.directoryScopeId or "/") == scope then out.active[#out.active + 1] = s end
  end
  out.no_pim = true
  return out
end

local iso = require("t2t.time").iso

local function schedule(o)
  local info = { startDateTime = o.start and iso(o.start) or nil }
  if o.duration then info.expiration = { type = "afterDuration", duration = o.duration }
  elseif o["until"] then info.expiration = { type = "afterDateTime", endDateTime = iso(o["until"]) }
  else info.expiration = { type = "noExpiration" } end
  return info
end

-- assignment(t, o) -> true | nil, err.  o = {principal = {id, name, kind}, role = name | template
-- id, scope = "/", via_group = name (a role-assignable group gets the role and the principal
-- joins it), eligible = true (PIM eligibility), start / duration ("PT8H") / until (epoch):
-- a schedule (eligible: its window; active: time-bound), justification}.
function M.assignment(t, o)
  local r = role_of(o.role)
  if not r then return failure("UnknownRole", "unknown Entra role '%s'", tostring(o.role)) end
  local scope = o.scope or "/"
  local p = o.principal
  if o.via_group then
    local g, err = M.assignable_group(t, o.via_group, { description = "Holds " .. r.name .. " (made by t2t)" })
    if not g then return nil, err end
    local ok, merr = M.member(t, g, p)
    if not ok then return nil, merr end
    local sub = {}
    for k, v in pairs(o) do sub[k] = v end
    sub.via_group = nil
    sub.principal = { id = g.id, name = g.displayName, kind = "group", planned = g.planned }
    return M.assignment(t, sub)
  end
  if p.kind == "group" and p.is_assignable == false then
    return failure("NotRoleAssignable", "group '%s' is not role-assignable: only groups created with " ..
      "isAssignableToRole can hold Entra roles (use --via-group with a new group)", tostring(p.name))
  end
  local have = not p.planned and current(t, p.id, r.id, scope) or { active = {}, eligible = {} }
  if not have then return nil, "cannot read role assignments" end
  local kind = o.eligible and "eligible" or "active"
  local list = o.eligible and have.eligible or have.active
  local label = string.format("%s%s for %s%s", o.eligible and "eligible " or "", r.name, tostring(p.name),
                              scope ~= "/" and (" at " .. scope) or "")
  if #list > 0 then
    t:note("= %s exists", label)
    return true
  end
  if o.eligible and have.no_pim then
    return failure("NoPIM", "tenant %s has no Microsoft Entra ID P2: PIM eligibility is not available (assign the " ..
      "role as active instead)", tostring(t.name))
  end
  local timed = o.start or o.duration or o["until"]
  local path, body
  if kind == "active" and not timed then
    path = "/roleManagement/directory/roleAssignments"
    body = { ["@odata.type"] = "#microsoft.graph.unifiedRoleAssignment", roleDefinitionId = r.id,
             principalId = p.id, directoryScopeId = scope }
  else
    path = "/roleManagement/directory/" .. (o.eligible and "roleEligibilityScheduleRequests" or "roleAssignmentScheduleRequests")
    body = { action = "adminAssign", principalId = p.id, roleDefinitionId = r.id, directoryScopeId = scope,
             justification = o.justification or "t2t", scheduleInfo = schedule(o) }
  end
  local _, err = t:create({ target = "role " .. label, tenant = t.name, operation = "ensure_assignment", after = body,
    apply = function()
      local res, e = t:gpost(path, body)
      if not res and tostring(type(e) == "table" and (e.code or e.message) or e):find("RoleAssignmentExists", 1, true) then
        return true
      end
      return res, e
    end }, function()
      local now = not p.planned and current(t, p.id, r.id, scope)
      return now and #(o.eligible and now.eligible or now.active) > 0 or nil
    end)
  if err and err ~= "planned" then return nil, err end
  return true
end

-- unassign(t, principal, role) -> true | nil, err: the principal's permanent active assignments of
-- role (made outside PIM) removed.
function M.unassign(t, p, role)
  local r = role_of(role)
  local l, err = t:glist("/roleManagement/directory/roleAssignments?$filter=principalId eq '" .. q(p.id) .. "'")
  if not l then return nil, err end
  for _, a in ipairs(l) do
    if a.roleDefinitionId == r.id then
      local _, e = t.plan:change { kind = "delete", tenant = t.name, operation = "unassign",
        target = "role " .. r.name .. " of " .. tostring(p.name),
        apply = function() return t:gdelete("/roleManagement/directory/roleAssignments/" .. a.id) end }
      if e and e ~= "planned" then return nil, e end
    end
  end
  return true
end

-- app_role_id(t, resource_app_id, value) -> the app role's id on the resource in this tenant
-- (resolved by value, wire.md §5.3) | nil, err.
function M.app_role_id(t, resource_app_id, value)
  local res, err = t:find_sp(resource_app_id)
  if not res then return nil, err or ("no service principal for " .. resource_app_id) end
  for _, ar in ipairs(res.appRoles or {}) do
    if ar.value == value and ar.isEnabled ~= false then return ar.id, res end
  end
  return nil, string.format("%s offers no application permission '%s'", tostring(res.displayName), value)
end

return M
