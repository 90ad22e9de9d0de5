-- t2t.sim.exo.rbac: Exchange Online RBAC — role groups (built-in, and the linked role groups
-- through which Entra roles surface), their members, management role assignments (to users,
-- mail-enabled security groups and applications: "RBAC for applications"), and the cmdlets
-- that read and change them (roles-and-mailauth.md §6).  Which roles a role group holds and
-- which roles hold a cmdlet are t2t.roles.catalog's; t2t.sim.authz decides with them.
--
-- State (tenant.exo, made on first use, deterministic from the tenant id):
--   role_groups = { [Name] = {Name, Guid, Description, Roles = {...}, Members = {ids},
--                             RoleGroupType = "Standard"|"Linked", LinkedRole = template id} }
--   role_assignments = { [Name] = {Name, Role, AssigneeId, AssigneeName, RoleAssigneeType,
--                                  CustomResourceScope} }
-- Members are Entra object ids (users, mail-enabled security groups) or app ids.
local catalog = require "t2t.roles.catalog"
local model = require "t2t.sim.model"
local U = require "t2t.sim.exo.util"

local M = {}

local NOT_MANAGEABLE = "Microsoft.Exchange.Management.RbacTasks.RoleGroupNotManageableException"   -- [inferred]
local LINKED_NOTE = "Membership in this role group is synchronized from Microsoft Entra ID and can't be " ..
                    "managed in Exchange Online."                                                    -- [inferred]

-- A stable pseudo-random number per tenant and label (linked group names look like
-- TenantAdmins_-1883446232 in real tenants).
local function stable(t, label)
  local h = 2166136261
  local s = t.id .. "|" .. label
  for i = 1, #s do h = ((h ~ s:byte(i)) * 16777619) & 0x7fffffff end
  return h
end

local function guid(t, label)
  local a, b = stable(t, label .. "a"), stable(t, label .. "b")
  local c, d = stable(t, label .. "c"), stable(t, label .. "d")
  return string.format("%08x-%04x-%04x-%04x-%04x%08x", a, b & 0xffff, (b >> 16) & 0x0fff | 0x4000,
                       c & 0x3fff | 0x8000, (c >> 14) & 0xffff, d)
end

-- state(t) -> t.exo with role_groups and role_assignments made.
function M.state(t)
  local x = t.exo
  if x.role_groups then return x end
  x.role_groups, x.role_assignments = {}, {}
  for _, name in ipairs(catalog.ROLE_GROUP_ORDER) do
    x.role_groups[name] = { Name = name, Guid = guid(t, name), RoleGroupType = "Standard", Members = {},
                            Roles = U.copy(catalog.ROLE_GROUPS[name]),
                            Description = "Built-in role group " .. name .. "." }
  end
  for _, l in ipairs(catalog.LINKED) do
    local r = catalog.role(l.role)
    local name = l.prefix .. tostring(-stable(t, l.prefix))
    x.role_groups[name] = { Name = name, Guid = guid(t, name), RoleGroupType = "Linked", Members = {},
                            Roles = {}, LinkedRole = r.id, Description = LINKED_NOTE }
    local parent = x.role_groups[l.group].Members
    parent[#parent + 1] = name
  end
  return x
end

-- The principals a member entry stands for (a mail-enabled security group stands for its
-- members).
local function member_matches(t, m, ids)
  for _, id in ipairs(ids) do
    if m == id then return true end
    local groups = id and model.idx(t).members_of[id]
    if groups and groups[m] then return true end
  end
  return false
end

-- native_roles(t, ids) -> {role = how}: the Exchange roles the principal (user object id, app id
-- or service principal id in `ids`) holds through Exchange's own role group membership and
-- management role assignments.  Linked role groups are not expanded here: their membership is
-- Entra's, and reaches a caller only as `wids` in its token (t2t.sim.authz).
function M.native_roles(t, ids)
  local x, out = M.state(t), {}
  local list = {}
  for _, id in ipairs(ids) do if id then list[#list + 1] = id end end
  if #list == 0 then return out end
  for name, g in pairs(x.role_groups) do
    if g.RoleGroupType == "Standard" then
      for _, m in ipairs(g.Members) do
        if member_matches(t, m, list) then
          for _, r in ipairs(g.Roles) do out[r] = out[r] or (name .. " (Exchange role group)") end
        end
      end
    end
  end
  for _, a in pairs(x.role_assignments) do
    if member_matches(t, a.AssigneeId, list) then out[a.Role] = out[a.Role] or (a.Name .. " (Exchange assignment)") end
  end
  return out
end

---------------------------------------------------------------------------------------------
-- Cmdlets.

local function find_group(ctx, identity)
  local x = M.state(ctx.t)
  local g = x.role_groups[identity]
  if g then return g end
  for name, rg in pairs(x.role_groups) do
    if name:lower() == tostring(identity):lower() or rg.Guid == identity then return rg end
  end
  U.not_found(ctx, identity)
end

-- A member's display: recipient Name, else the directory object's name, else the id.
local function member_name(t, id)
  local x = t.exo
  if x.role_groups[id] then return id end
  local r = model.find_recipient(t, id)
  if r then return r.Name end
  local o = t.dir.objects[id]
  if o then return o.userPrincipalName or o.displayName or id end
  local sp = model.sp_by_appid(t, id)
  return sp and sp.displayName or id
end

-- resolve(ctx, identity) -> principal id, name, type: a role group, a recipient or user, a
-- mail-enabled security group, or an application (app id or service principal id).
local function resolve(ctx, identity, allow)
  local t = ctx.t
  local x = M.state(t)
  if allow.group and x.role_groups[identity] then return identity, identity, "RoleGroup" end
  local r = model.find_recipient(t, identity)
  if r and r.ExternalDirectoryObjectId then
    local sec = r.RecipientTypeDetails == "MailUniversalSecurityGroup"
    return r.ExternalDirectoryObjectId, r.Name, sec and "SecurityGroup" or "User"
  end
  local u = model.user_by_upn(t, identity) or t.dir.objects[identity]
  if u and u["@odata.type"] == "#microsoft.graph.user" then return u.id, u.userPrincipalName, "User" end
  if allow.app then
    local sp = model.sp_by_appid(t, identity)
    if not sp then
      local o = t.dir.objects[identity]
      if o and o["@odata.type"] == "#microsoft.graph.servicePrincipal" then sp = o end
    end
    if sp then return sp.appId, sp.displayName, "ServicePrincipal" end
  end
  U.not_found(ctx, identity)
end

local function present_group(g)
  local members = {}
  for _, m in ipairs(g.Members) do members[#members + 1] = m end
  return U.present({ Name = g.Name, Identity = g.Name, Guid = g.Guid, Description = g.Description,
                     Roles = U.copy(g.Roles), Members = members, RoleGroupType = g.RoleGroupType,
                     IsValid = true, Capabilities = {} })
end

M["Get-RoleGroup"] = function(ctx, p)
  U.only_simulated("Get-RoleGroup", p, { Identity = true, ResultSize = true, Filter = true })
  if p.Identity ~= nil then return { find_group(ctx, p.Identity) }, present_group end
  local out = {}
  for _, g in pairs(M.state(ctx.t).role_groups) do out[#out + 1] = g end
  if p.Filter then
    local pred, keep = U.compile_filter(p.Filter), {}
    for _, g in ipairs(out) do if pred(g) then keep[#keep + 1] = g end end
    out = keep
  end
  return out, present_group
end

-- Get-RoleGroupMember: members as Exchange lists them.  A linked role group lists nobody: its
-- membership lives in Entra ID, and Organization Management lists the linked groups, not the
-- Global or Exchange Administrators (MicrosoftDocs/microsoft-365-docs#8037, §6).
M["Get-RoleGroupMember"] = function(ctx, p)
  local g = find_group(ctx, p.Identity)
  if g.RoleGroupType == "Linked" then
    ctx.warnings[#ctx.warnings + 1] = LINKED_NOTE
    return {}
  end
  local out = {}
  for _, id in ipairs(g.Members) do
    local linked = ctx.t.exo.role_groups[id]
    out[#out + 1] = { Name = member_name(ctx.t, id), Identity = member_name(ctx.t, id),
                      ExternalDirectoryObjectId = not linked and id or nil,
                      RecipientType = linked and "Group" or "User",
                      RecipientTypeDetails = linked and "RoleGroup" or "User" }
  end
  return out, function(m) return U.present(m) end
end

local function change_members(ctx, p, add)
  local g = find_group(ctx, p.Identity)
  if g.RoleGroupType == "Linked" then
    U.fail(400, NOT_MANAGEABLE, "The role group \"%s\" can't be managed in Exchange Online. %s", g.Name, LINKED_NOTE)
  end
  local id, name = resolve(ctx, p.Member, { app = false })
  for i, m in ipairs(g.Members) do
    if m == id then
      if add then
        U.fail(400, "Microsoft.Exchange.Management.Tasks.MemberAlreadyExistsException",
          "The recipient \"%s\" is already a member of the group \"%s\".", name, g.Name)
      end
      table.remove(g.Members, i)
      return {}
    end
  end
  if not add then
    U.fail(400, "Microsoft.Exchange.Management.Tasks.MemberNotFoundException",
      "The recipient \"%s\" isn't a member of the group \"%s\".", name, g.Name)
  end
  g.Members[#g.Members + 1] = id
  return {}
end

M["Add-RoleGroupMember"] = function(ctx, p) return change_members(ctx, p, true) end
M["Remove-RoleGroupMember"] = function(ctx, p) return change_members(ctx, p, false) end

local function known_role(ctx, role)
  for _, r in ipairs(catalog.EXO_ROLES) do
    if r:lower() == tostring(role):lower() then return r end
  end
  U.not_found(ctx, role)
end

M["New-ManagementRoleAssignment"] = function(ctx, p)
  U.only_simulated("New-ManagementRoleAssignment", p, { Role = true, User = true, App = true,
    SecurityGroup = true, Name = true, CustomResourceScope = true, Confirm = true, Force = true })
  local role = known_role(ctx, p.Role)
  local who = p.User or p.App or p.SecurityGroup
  local id, name, typ = resolve(ctx, who, { app = p.App ~= nil })
  local aname = p.Name or (role .. "-" .. name)
  local x = M.state(ctx.t)
  if x.role_assignments[aname] then
    U.fail(400, U.EX.AlreadyExists, "The role assignment \"%s\" already exists.", aname)
  end
  local a = { Name = aname, Role = role, AssigneeId = id, AssigneeName = name, RoleAssigneeType = typ,
              CustomResourceScope = p.CustomResourceScope, created = ctx.now }
  x.role_assignments[aname] = a
  return { M.present_assignment(a, "Direct") }
end

function M.present_assignment(a, method, effective)
  return U.present({ Name = a.Name, Identity = a.Name, Role = a.Role, RoleAssignee = a.AssigneeName,
    RoleAssigneeName = a.AssigneeName, RoleAssigneeType = a.RoleAssigneeType, AssignmentMethod = method,
    EffectiveUserName = effective or a.AssigneeName, Enabled = true,
    RoleAssignmentDelegationType = "Regular", CustomResourceScope = a.CustomResourceScope,
    RecipientWriteScope = "Organization", ConfigWriteScope = "OrganizationConfig" })
end

-- Every assignment as Exchange lists it: one per (role group, role), plus the direct ones.
local function all_assignments(t)
  local x, out = M.state(t), {}
  for name, g in pairs(x.role_groups) do
    for _, r in ipairs(g.Roles) do
      out[#out + 1] = { Name = r .. "-" .. name, Role = r, AssigneeId = name, AssigneeName = name,
                        RoleAssigneeType = "RoleGroup", group = g }
    end
  end
  for _, a in pairs(x.role_assignments) do out[#out + 1] = a end
  table.sort(out, function(a, b) return a.Name < b.Name end)
  return out
end

-- rows(t, a, effective) -> the rows of one assignment (expanded to users with -GetEffectiveUsers;
-- a linked role group gives one "All Group Members" row, §6).
local function rows(t, a, effective)
  if not effective or not a.group then return { M.present_assignment(a, "Direct") } end
  if a.group.RoleGroupType == "Linked" or #a.group.Members == 0 then
    return { M.present_assignment(a, "RoleGroup", "All Group Members") }
  end
  local out = {}
  for _, m in ipairs(a.group.Members) do
    local linked = t.exo.role_groups[m]
    out[#out + 1] = M.present_assignment(a, "RoleGroup", linked and "All Group Members" or member_name(t, m))
  end
  return out
end

-- Whether `who` holds a standard role group's roles by membership (directly or through a
-- mail-enabled security group); linked role groups never count (§6).
local function via_group(t, g, who)
  if not g or g.RoleGroupType ~= "Standard" then return false end
  for _, m in ipairs(g.Members) do
    if member_matches(t, m, { who }) then return true end
  end
  return false
end

M["Get-ManagementRoleAssignment"] = function(ctx, p)
  U.only_simulated("Get-ManagementRoleAssignment", p, { Identity = true, Role = true, RoleAssignee = true,
    GetEffectiveUsers = true, Delegating = true, Enabled = true, AssignmentMethod = true, RoleAssigneeType = true })
  local t, out = ctx.t, {}
  local who
  if p.RoleAssignee ~= nil then who = resolve(ctx, p.RoleAssignee, { app = true, group = true }) end
  if p.AssignmentMethod ~= nil and p.RoleAssignee == nil then
    U.fail(400, U.EX.Argument, "The AssignmentMethod parameter can only be used with the RoleAssignee parameter.")
  end
  for _, a in ipairs(all_assignments(t)) do
    local keep = (p.Role == nil or a.Role:lower() == tostring(p.Role):lower())
      and (p.Identity == nil or a.Name:lower() == tostring(p.Identity):lower())
    local method = "Direct"
    if keep and who then
      if a.AssigneeId == who then method = "Direct"
      elseif via_group(t, a.group, who) then method = "RoleGroup"
      else keep = false end
    end
    if keep then
      for _, row in ipairs(rows(t, a, p.GetEffectiveUsers)) do
        if who then row.AssignmentMethod = method end
        out[#out + 1] = row
      end
    end
  end
  return out
end

-- Get-ManagementRole -Identity NAME|* [-Cmdlet NAME]: the roles (that hold the cmdlet).
M["Get-ManagementRole"] = function(ctx, p)
  U.only_simulated("Get-ManagementRole", p, { Identity = true, Cmdlet = true })
  local want = {}
  if p.Cmdlet then for _, r in ipairs(catalog.cmdlet_roles(p.Cmdlet)) do want[r] = true end end
  local out = {}
  for _, r in ipairs(catalog.EXO_ROLES) do
    local id_ok = p.Identity == "*" or r:lower() == tostring(p.Identity):lower()
    if id_ok and (not p.Cmdlet or want[r]) then
      out[#out + 1] = U.present({ Name = r, Identity = r, RoleType = r:gsub("[%s%-]", ""), IsRootRole = true })
    end
  end
  if #out == 0 and p.Identity ~= "*" and not p.Cmdlet then U.not_found(ctx, p.Identity) end
  return out
end

return M
