-- t2t.roles.needs: what a runbook declares it needs (`runbook{ needs = ... }`), checked when the
-- runbook loads and resolved for one tenant and one set of parameters.
--
--   needs = {
--     graph = { "Application.ReadWrite.All", ... },   -- Microsoft Graph permissions (least privileged)
--     exchange = { "Federated Sharing", ... },         -- Exchange Online management roles
--     entra = { "Privileged Role Administrator" },     -- Entra roles beyond what the above imply
--     when = { invite = { graph = { "User.Invite.All" } },     -- more, when parameter --invite is set
--              ["backend=graph"] = { graph = {...} } },        -- more, when --backend is exactly graph
--     optional = { graph = {...}, exchange = {...} },  -- used when held, reported, never required
--     azure = { "Contributor on the subscription" },   -- Azure RBAC: listed, not checked
--   }
-- or, for a runbook that opens two tenants, the same per tenant role: { target = {...}, source = {...} }
-- (the role it opens the tenant as: t2t.tenant.session.open(ctx, "target" | "source")).
local catalog = require "t2t.roles.catalog"

local M = {}

local LISTS = { graph = true, exchange = true, entra = true, azure = true }
local ROLES = { target = true, source = true }

local function check_list(where, k, v)
  if type(v) ~= "table" then return nil, string.format("%s.%s must be a list of names", where, k) end
  for i, x in ipairs(v) do
    if type(x) ~= "string" then return nil, string.format("%s.%s[%d] must be a string", where, k, i) end
    if k == "graph" and not catalog.known(x) then
      return nil, string.format("%s.graph: unknown Microsoft Graph permission '%s' (t2t.roles.catalog.GRAPH lists them)",
                                where, x)
    elseif k == "exchange" then
      local ok = false
      for _, r in ipairs(catalog.EXO_ROLES) do if r == x then ok = true end end
      if not ok then return nil, string.format("%s.exchange: unknown Exchange management role '%s'", where, x) end
    elseif k == "entra" and not catalog.role(x) then
      return nil, string.format("%s.entra: unknown Entra role '%s'", where, x)
    end
  end
  return true
end

-- when_key(key) -> param, value | nil: a `when` key is PARAM (counts when the parameter is set and
-- not false) or PARAM=VALUE (counts when its value, as a string, is VALUE); nil when malformed.
function M.when_key(key)
  if type(key) ~= "string" then return nil end
  local p, v = key:match("^([%w_%-]+)=(.+)$")
  if p then return p, v end
  return key:match("^[%w_%-]+$")
end

local function check_one(where, n, nested)
  if type(n) ~= "table" then return nil, where .. " must be a table" end
  for k, v in pairs(n) do
    if LISTS[k] then
      local ok, err = check_list(where, k, v)
      if not ok then return nil, err end
    elseif k == "when" and not nested then
      if type(v) ~= "table" then return nil, where .. ".when must map parameter names to needs" end
      for p, sub in pairs(v) do
        if not M.when_key(p) then return nil, string.format("%s.when: '%s' is not PARAM or PARAM=VALUE", where, tostring(p)) end
        local ok, err = check_one(where .. ".when." .. tostring(p), sub, true)
        if not ok then return nil, err end
      end
    elseif k == "optional" and not nested then
      local ok, err = check_one(where .. ".optional", v, true)
      if not ok then return nil, err end
    else
      return nil, string.format("%s: unknown field '%s' (graph, exchange, entra, azure, when, optional%s)", where,
                                tostring(k), nested and "" or "; or target/source")
    end
  end
  return true
end

-- check(needs) -> true | nil, message (for the runbook declaration).
function M.check(needs)
  if needs == nil then return true end
  if type(needs) ~= "table" then return nil, "needs must be a table" end
  local split = needs.target ~= nil or needs.source ~= nil
  if split then
    for k, v in pairs(needs) do
      if not ROLES[k] then return nil, "needs: with target/source, every key must be target or source, not '" ..
                                       tostring(k) .. "'" end
      local ok, err = check_one("needs." .. k, v)
      if not ok then return nil, err end
    end
    return true
  end
  return check_one("needs", needs)
end

local function merge(into, n)
  for k in pairs(LISTS) do
    for _, x in ipairs(n and n[k] or {}) do
      into[k][#into[k] + 1] = x
    end
  end
end

local function empty() return { graph = {}, exchange = {}, entra = {}, azure = {}, optional = { graph = {}, exchange = {}, entra = {}, azure = {} } } end

local function dedupe(list)
  local seen, out = {}, {}
  for _, x in ipairs(list) do if not seen[x] then seen[x] = true; out[#out + 1] = x end end
  table.sort(out)
  return out
end

-- What every runbook that opens a tenant uses when it is held (t2t.tenant.session): reading its
-- own app registration, to name a credential of the app it signs in as that expires soon.
M.HOST_OPTIONAL = { graph = { "Application.Read.All" } }

-- resolve(needs, role, params) -> {graph, exchange, entra, azure, optional = {...}}: the needs for
-- a tenant opened as `role` ("target" | "source" | nil) with these parameters (a `when` entry
-- counts when its parameter is set and not false; a PARAM=VALUE one when the parameter has that
-- value: a runbook resolves a parameter's default -- say, from its own files -- before it opens a
-- tenant, as the batch runbooks do with --backend).
function M.resolve(needs, role, params)
  local out = empty()
  if not needs then return out end
  local n = needs
  if needs.target ~= nil or needs.source ~= nil then n = needs[role or "target"] or {} end
  merge(out, n)
  merge(out.optional, n.optional)
  merge(out.optional, M.HOST_OPTIONAL)
  for key, sub in pairs(n.when or {}) do
    local p, want = M.when_key(key)
    local v = params and params[(p:gsub("%-", "_"))]
    local counts
    if want then counts = v ~= nil and tostring(v) == want else counts = v ~= nil and v ~= false end
    if counts then merge(out, sub); merge(out.optional, sub.optional) end
  end
  out.graph = catalog.minimal(dedupe(out.graph))
  for _, k in ipairs({ "exchange", "entra", "azure" }) do out[k] = dedupe(out[k]) end
  -- an optional permission the required ones already imply is no item of its own
  local opt = {}
  for _, p in ipairs(catalog.minimal(dedupe(out.optional.graph))) do
    local implied = false
    for _, q in ipairs(out.graph) do if catalog.implies(q, p) then implied = true end end
    if not implied then opt[#opt + 1] = p end
  end
  out.optional.graph = opt
  for _, k in ipairs({ "exchange", "entra", "azure" }) do out.optional[k] = dedupe(out.optional[k]) end
  return out
end

-- union(list of resolved needs) -> one resolved needs (bootstrap grants the union of the chosen
-- runbooks' needs, least privilege kept by catalog.minimal).
function M.union(list, with_optional)
  local out = empty()
  for _, r in ipairs(list) do
    merge(out, r)
    if with_optional then merge(out, r.optional) end
  end
  out.graph = catalog.minimal(dedupe(out.graph))
  for _, k in ipairs({ "exchange", "entra", "azure" }) do out[k] = dedupe(out[k]) end
  return out
end

-- items(resolved, kind) -> the list of grants a principal of `kind` ("app" | "user") must hold:
--   {kind = "graph", name}, {kind = "exchange_access"} (Exchange.ManageAsApp for an app, the
--   Exchange.Manage scope for a user), {kind = "exchange", roles = {...}, cover = Entra role},
--   {kind = "entra", name, any = {names}} (for a user, the roles its Graph writes need too).
function M.items(r, kind)
  local out = {}
  for _, p in ipairs(r.graph) do out[#out + 1] = { kind = "graph", name = p } end
  if #r.exchange > 0 then
    out[#out + 1] = { kind = "exchange_access", name = kind == "user" and catalog.MANAGE_DELEGATED or catalog.MANAGE_AS_APP }
    out[#out + 1] = { kind = "exchange", roles = r.exchange, cover = catalog.exchange_cover(r.exchange),
                      name = "Exchange roles " .. table.concat(r.exchange, ", ") }
  end
  for _, e in ipairs(r.entra) do out[#out + 1] = { kind = "entra", name = e, any = { e } } end
  if kind == "user" then
    local seen = {}
    for _, p in ipairs(r.graph) do
      local any = catalog.graph_roles(p)
      if any then
        local key = table.concat(any, "|")
        if not seen[key] then
          seen[key] = true
          out[#out + 1] = { kind = "entra", name = table.concat(any, " or "), any = any, for_graph = p }
        end
      end
    end
  end
  return out
end

return M
