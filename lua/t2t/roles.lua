-- t2t.roles: who holds which admin role in a tenant and how (directly or through which group,
-- active or eligible in PIM, until when, at what scope; service principals apart from users;
-- Exchange's own grants beside the Entra ones), what each runbook needs, and giving roles
-- through the plan.  docs/roles.md; facts: roles-and-mailauth.md §1-6.
--
--   local roles = require "t2t.roles"
--   for _, h in ipairs(assert(roles.holders(t, "Global Administrator"))) do
--     print(h.principal.upn or h.principal.name, roles.describe(h))
--   end
--   local mine = assert(roles.of(t, "admin@contoso.onmicrosoft.com"))
--   roles.needs(require("t2t.runbook").load("setup-target"), "target")   -- what it needs there
--   assert(roles.ensure_assignment(t, { principal = p, role = "Exchange Administrator",
--                                       via_group = "t2t Exchange admins" }))
-- t is a t2t.tenant (t2t.tenant.session.open, or tenant.new with graph/exo clients and a plan).
local effective = require "t2t.roles.effective"
local ensure = require "t2t.roles.ensure"

local M = {}

M.catalog = require "t2t.roles.catalog"
M.describe = effective.describe

-- data(t, refresh) -> the tenant's role holdings (read once per tenant object) | nil, err.
function M.data(t, refresh)
  if t._roles_data and not refresh then return t._roles_data end
  local d, err = effective.collect(t)
  if not d then return nil, err end
  t._roles_data = d
  return d
end

-- holders(t, role) -> list of holdings of an Entra role (name or template id) | nil, err.
-- Each: {role, principal = {id, kind, name, upn, appId, synced}, how = "direct"|"group",
-- group, state = "active"|"eligible", kind = "permanent"|"time-bound"|"activated"|"eligible",
-- start, stop, scope, membership, outside_pim}.
function M.holders(t, role)
  local d, err = M.data(t)
  if not d then return nil, err end
  return effective.holders(d, role)
end

-- resolve(t, who) -> principal {id, kind, name, upn, appId} | nil, err: a UPN, an object id or
-- an application (client) id.
function M.resolve(t, who)
  local d, err = M.data(t)
  if not d then return nil, err end
  if type(who) ~= "string" or who == "" then return nil, "which principal? a UPN, an object id or an app id" end
  if who:find("@", 1, true) then
    local u = t:gget("/users/" .. who .. "?$select=id")
    if not u then return nil, "no user " .. who .. " in " .. tostring(t.name) end
    return effective.principal(t, d, u.id)
  end
  local p = effective.principal(t, d, who)
  if p then return p end
  local sp = t:find_sp(who)
  if sp then return effective.principal(t, d, sp.id) end
  return nil, string.format("no user, group or app '%s' in %s", who, tostring(t.name))
end

-- exchange_grants(t, p) -> Exchange's own role assignments of principal p (role groups and direct
-- assignments: Get-ManagementRoleAssignment -RoleAssignee), never the linked role groups that
-- mirror Entra roles (roles-and-mailauth.md §6) | nil, err.
function M.exchange_grants(t, p)
  local rows, err = t:xo("Get-ManagementRoleAssignment", { RoleAssignee = p.kind == "servicePrincipal" and p.appId
                                                           or p.upn or p.id, Delegating = false })
  if not rows then return nil, err end
  local out = {}
  for _, r in ipairs(rows) do
    out[#out + 1] = { role = r.Role, how = r.AssignmentMethod == "RoleGroup" and ("role group " .. tostring(r.RoleAssigneeName))
                      or "direct", name = r.Name, source = "exchange" }
  end
  table.sort(out, function(a, b) return a.role < b.role end)
  return out
end

-- of(t, who, o) -> {principal, entra = holdings, exchange = grants | nil, exchange_error} | nil, err.
-- o.exchange = false skips Exchange.
function M.of(t, who, o)
  local p, err = who, nil
  if type(who) ~= "table" then p, err = M.resolve(t, who) end
  if not p then return nil, err end
  local d, derr = M.data(t)
  if not d then return nil, derr end
  local out = { principal = p, entra = effective.of(d, p.id) }
  if not (o and o.exchange == false) and t.exo then out.exchange, out.exchange_error = M.exchange_grants(t, p) end
  return out
end

-- needs(decl, role, params) -> what a runbook needs in a tenant opened as `role` ("target",
-- "source" or nil) with these parameters: {graph, exchange, entra, azure, optional, exchange_entra}
-- where exchange_entra is the least privileged Entra role bringing the Exchange roles.
-- decl: a runbook declaration (require("t2t.runbook").load(name)) or its `needs` table.
function M.needs(decl, role, params)
  local n = type(decl) == "table" and decl.run and decl.needs or decl
  local r = require("t2t.roles.needs").resolve(n, role, params)
  if #r.exchange > 0 then r.exchange_entra = M.catalog.exchange_cover(r.exchange) end
  return r
end

M.ensure_assignable_group = ensure.assignable_group
M.ensure_member = ensure.member
M.ensure_assignment = ensure.assignment

return M
