-- t2t.roles.preflight: does a principal (an app or a user) of a tenant hold what a runbook
-- needs?  For the signed-in principal the answer is read from its own tokens (an app's `roles`,
-- a user's `scp`, and `wids`: what the services decide with); for another principal, from the
-- tenant's role data (t2t.roles.effective, consents, Exchange assignments).  Nothing is changed.
--
--   local g = preflight.signed_in(t)                   -- or preflight.of_principal(t, p, data)
--   local report = preflight.evaluate(t, resolved_needs, g)
--   report = {principal = {kind, id, appid, name}, ok, items = {{item, ok, via}}, optional, azure}
local catalog = require "t2t.roles.catalog"
local needs_mod = require "t2t.roles.needs"

local M = {}

local function claims_of(client)
  if not client or type(client.token) ~= "function" then return nil, "no client" end
  local tok, err = client.token()
  if not tok then return nil, err end
  return require("t2t.jwt").claims(tok)
end

local function set(list)
  local s = {}
  for _, x in ipairs(list or {}) do s[x] = true end
  return s
end

-- What a token allows: app roles for an app, delegated scopes for a user.
local function token_grants(c)
  local s = set(c.roles)
  if type(c.scp) == "string" then for x in c.scp:gmatch("%S+") do s[x] = true end end
  return s
end

-- principal(claims) -> {kind = "app"|"user", id, appid, name}.
function M.principal(c)
  local user = type(c.scp) == "string" and c.scp ~= ""
  return { kind = user and "user" or "app", id = c.oid, appid = c.appid,
           name = user and (c.upn or c.unique_name or c.oid) or (c.app_displayname or c.appid) }
end

-- Exchange roles through the linked role groups of a set of directory role ids.
local function linked_roles(wids)
  local have = {}
  for w in pairs(wids) do
    local l = catalog.linked(w)
    if l then
      for _, r in ipairs(catalog.ROLE_GROUPS[l.group] or {}) do
        have[r] = have[r] or (catalog.role_name(w) .. " (linked role group in " .. l.group .. ")")
      end
    end
  end
  return have
end

-- Exchange's own assignments of principal p (Get-ManagementRoleAssignment -RoleAssignee),
-- added to `have`; have._unreadable when Exchange refuses to list them.
local function native_roles(t, p, have)
  if not t.exo then return have end
  local rows, err = t:xo("Get-ManagementRoleAssignment", { RoleAssignee = p.kind == "app" and p.appid or p.name,
                                                         Delegating = false })
  if not rows then have._unreadable = tostring(err) return have end
  for _, row in ipairs(rows) do
    if row.Role then
      have[row.Role] = have[row.Role] or ("Exchange " .. (row.AssignmentMethod == "RoleGroup" and
        ("role group " .. tostring(row.RoleAssigneeName)) or ("role assignment " .. tostring(row.Name))))
    end
  end
  return have
end

-- The Exchange roles principal p holds of `want`: through the linked role groups of its
-- directory roles, and Exchange's own assignments read only when those fall short.
local function exchange_roles(t, p, wids, want)
  local have = linked_roles(wids)
  for _, r in ipairs(want) do
    if not have[r] then return native_roles(t, p, have) end
  end
  return have
end

-- signed_in(t) -> grants | nil, err: what the tenant's signed-in principal holds, from its tokens.
-- grants = {principal, held = set, wids = set, exo_access = fn() -> bool, exchange = fn(want) -> have}
function M.signed_in(t)
  local gc, gerr = claims_of(t.graph)
  if not gc then return nil, "cannot sign in to Microsoft Graph: " .. tostring(gerr) end
  local p = M.principal(gc)
  local g = { principal = p, held = token_grants(gc), wids = set(gc.wids), source = "token" }
  local xc
  local function exo_claims()
    if xc == nil then xc = claims_of(t.exo) or false end
    return xc or nil
  end
  g.exo_access = function(name) local c = exo_claims() return c and token_grants(c)[name] or false end
  g.exchange = function(want) return exchange_roles(t, p, set((exo_claims() or gc).wids), want) end
  return g
end

-- of_principal(t, p, data, consents) -> grants from the role data, for principal p ({kind, id,
-- appid, name}): its active Entra roles (data: t2t.roles.effective), an app's consented
-- permissions (consents: set of permission values), a user's delegated scopes assumed granted
-- (t2t signs users in with Microsoft's first-party clients, which get every scope).
function M.of_principal(t, p, data, consents)
  local wids = {}
  for _, h in ipairs(require("t2t.roles.effective").of(data, p.id)) do
    if h.state == "active" and (h.scope or "/") == "/" then wids[h.role.id] = true end
  end
  local g = { principal = p, wids = wids, source = "data" }
  if p.kind == "user" then
    g.held = setmetatable({}, { __index = function() return true end })
    g.exo_access = function() return true end
  else
    g.held = consents or {}
    g.exo_access = function(name) return (consents or {})[name] == true end
  end
  g.exchange = function(want) return exchange_roles(t, p, wids, want) end
  return g
end

local function holds_any(wids, names)
  if wids[catalog.GLOBAL_ADMIN] then return "Global Administrator" end
  for _, n in ipairs(names) do
    local r = catalog.role(n)
    if r and wids[r.id] then return r.name end
  end
  return nil
end

local function check(g, item)
  local p = g.principal
  if item.kind == "graph" then
    local by = catalog.held_implies(g.held, item.name)
    if by then return true, by == item.name and "granted" or ("granted through " .. by) end
    return false, p.kind == "app" and "not consented for the app" or "the sign-in did not get this scope"
  elseif item.kind == "entra" then
    local by = holds_any(g.wids, item.any)
    return by ~= nil, by and ("holds " .. by) or (g.source == "token" and "not held (active) in this sign-in"
                                                 or "not held (active)")
  elseif item.kind == "exchange_access" then
    local ok = g.exo_access(item.name)
    return ok, ok and "granted" or (p.kind == "app" and "not consented for the app on Office 365 Exchange Online"
                                    or "the sign-in did not get the Exchange.Manage scope")
  end
  local have = g.exchange(item.roles)
  local missing, hows = {}, {}
  for _, role in ipairs(item.roles) do
    if have[role] then hows[have[role]] = true else missing[#missing + 1] = role end
  end
  item.missing_roles = missing
  if #missing == 0 then
    local list = {}
    for h in pairs(hows) do list[#list + 1] = h end
    table.sort(list)
    return true, table.concat(list, "; ")
  end
  return false, "missing " .. table.concat(missing, ", ") .. (have._unreadable and
    "; Exchange refused to list the principal's own role assignments (View-Only Configuration shows them)" or "")
end

-- evaluate(t, resolved, grants) -> report | nil, err.  grants defaults to signed_in(t).
function M.evaluate(t, r, g)
  if not g then
    local err
    g, err = M.signed_in(t)
    if not g then return nil, err end
  end
  local report = { principal = g.principal, items = {}, optional = {}, azure = r.azure or {}, tenant = t.name }
  for _, list in ipairs({ { r, report.items }, { r.optional, report.optional } }) do
    for _, item in ipairs(needs_mod.items(list[1] or { graph = {}, exchange = {}, entra = {} }, g.principal.kind)) do
      local ok, via = check(g, item)
      list[2][#list[2] + 1] = { item = item, ok = ok and true or false, via = via }
    end
  end
  report.ok = true
  for _, e in ipairs(report.items) do if not e.ok then report.ok = false end end
  return report
end

return M
