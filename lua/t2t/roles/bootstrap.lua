-- t2t.roles.bootstrap: t2t's own automation identity in a tenant — an app registration holding
-- exactly what the chosen runbooks need (Graph application permissions, Exchange.ManageAsApp,
-- the Entra role that brings their Exchange roles), a certificate credential made on this
-- machine (the private key never leaves it: a 0600 file), admin consent, the role (directly or
-- through a role-assignable group) and the profile in the config file.  Every change through the
-- plan; a second run changes nothing.  wire.md §2.10, §3.2-3.5, §3.12; docs/setup.md.
local catalog = require "t2t.roles.catalog"
local needs_mod = require "t2t.roles.needs"
local ensure = require "t2t.roles.ensure"

local M = {}

-- permissions(decls, o) -> {graph = {...}, exchange = {...}, entra = {...}, exchange_entra, azure,
-- runbooks = {names}}: the least privileged union of what the runbooks need, both sides of the
-- two-tenant ones unless o.as names one, with the `when` needs of the parameters in o.with
-- ("consent", or "backend=graph" for a parameter's value).
function M.permissions(decls, o)
  o = o or {}
  local params = {}
  for _, w in ipairs(o.with or {}) do                  -- PARAM, or PARAM=VALUE (t2t.roles.needs.when_key)
    local p, v = w:match("^([^=]+)=(.+)$")
    params[((p or w):gsub("%-", "_"))] = v or true
  end
  local list, names = {}, {}
  for _, d in ipairs(decls) do
    names[#names + 1] = d.name
    local n = d.needs or {}
    local sides = (n.target or n.source) and (o.as and { o.as } or { "target", "source" }) or { false }
    for _, side in ipairs(sides) do list[#list + 1] = needs_mod.resolve(n, side or nil, params) end
  end
  local u = needs_mod.union(list, true)
  if #u.exchange > 0 then u.exchange_entra = catalog.exchange_cover(u.exchange) or "Exchange Administrator" end
  u.runbooks = names
  return u
end

-- The requiredResourceAccess for the permissions, ids resolved from the resources' appRoles.
local function required_access(t, perms)
  local out, ids = {}, {}
  local function add(res_app, values)
    if #values == 0 then return true end
    local entry = { resourceAppId = res_app, resourceAccess = {} }
    for _, v in ipairs(values) do
      local id, err = ensure.app_role_id(t, res_app, v)
      if not id then return nil, err end
      entry.resourceAccess[#entry.resourceAccess + 1] = { id = id, type = "Role" }
      ids[v] = { id = id, resource = res_app }
    end
    table.sort(entry.resourceAccess, function(a, b) return a.id < b.id end)
    out[#out + 1] = entry
    return true
  end
  local ok, err = add(catalog.GRAPH_APP_ID, perms.graph)
  if not ok then return nil, err end
  ok, err = add(catalog.EXO_APP_ID, #perms.exchange > 0 and { catalog.MANAGE_AS_APP } or {})
  if not ok then return nil, err end
  return out, ids
end

local function rra_key(rra)
  local parts = {}
  for _, r in ipairs(rra or {}) do
    for _, a in ipairs(r.resourceAccess or {}) do parts[#parts + 1] = r.resourceAppId .. "/" .. a.id .. "/" .. a.type end
  end
  table.sort(parts)
  return table.concat(parts, ",")
end

-- ensure_app(t, name, perms) -> app | placeholder, ids | nil, err: the single-tenant app with
-- exactly these permissions requested (what it asks for; consent grants them).
function M.ensure_app(t, name, perms)
  local rra, ids = required_access(t, perms)
  if not rra then return nil, ids end
  local apps, err = t:find_apps(name)
  if not apps then return nil, err end
  local app = apps[1]
  if not app then
    local body = { displayName = name, signInAudience = "AzureADMyOrg", requiredResourceAccess = rra,
                   description = "t2t automation (made by t2t run bootstrap)" }
    local created, cerr = t:create({ target = "application '" .. name .. "'", tenant = t.name, operation = "bootstrap_app",
      after = { displayName = name, signInAudience = "AzureADMyOrg", permissions = #perms.graph +
                (#perms.exchange > 0 and 1 or 0) },
      apply = function() return t:gpost("/applications", body) end },
      function() local l = t:find_apps(name) return l and l[1] end)
    if cerr == "planned" then return { planned = true, displayName = name, appId = "(new app id)", id = "(new)" }, ids end
    return created, cerr and cerr or ids
  end
  if rra_key(app.requiredResourceAccess) == rra_key(rra) then
    t:note("= application '%s' requests exactly the permissions needed", name)
    return app, ids
  end
  local _, uerr = t.plan:change { kind = "update", target = "application '" .. name .. "' permissions", tenant = t.name,
    operation = "bootstrap_app", before = { requiredResourceAccess = rra_key(app.requiredResourceAccess) },
    after = { requiredResourceAccess = rra_key(rra) }, note = "exactly what the runbooks need",
    apply = function() return t:gpatch("/applications/" .. app.id, { requiredResourceAccess = rra }) end }
  if uerr and uerr ~= "planned" then return nil, uerr end
  return app, ids
end

-- ensure_certificate(t, app, o) -> {cert_path, key_path} | nil, err.  o = {key_path, cert_path,
-- subject, days, plan = bool, write_private = fn}.  An existing key and certificate are kept
-- (and uploaded when the app lacks the certificate); else a new RSA key and a self-signed
-- certificate are made here and the key written with mode 0600.
function M.ensure_certificate(t, app, o)
  local crypto = require "t2t.crypto"
  local cert
  local kf, cf = io.open(o.key_path, "r"), io.open(o.cert_path, "r")
  if kf then kf:close() end
  if cf then cf:close() end
  if kf and cf then
    local key, kerr = crypto.load_key_file(o.key_path)
    local cerr
    cert, cerr = crypto.load_cert_file(o.cert_path)
    if not key or not cert then return nil, "cannot read " .. (key and o.cert_path or o.key_path) .. ": " .. tostring(kerr or cerr) end
    if not cert:matches_key(key) then
      return nil, string.format("%s and %s do not belong together: move them away to make a new pair", o.key_path, o.cert_path)
    end
    t:note("= key %s and certificate %s exist (kept)", o.key_path, o.cert_path)
  else
    local _, err = t.plan:change { kind = "create", target = "private key " .. o.key_path .. " (mode 0600) and " ..
      "certificate " .. o.cert_path, tenant = "this machine", operation = "bootstrap_key",
      after = { subject = o.subject, days = o.days, key = "RSA 2048, made here; never sent anywhere" },
      apply = function()
        local c, k = crypto.new_cert { subject = o.subject, days = o.days, key_type = "rsa", bits = 2048 }
        if not c then return nil, k end
        local ok, werr = o.write_private(o.key_path, k:private_pem())
        if not ok then return nil, werr end
        ok, werr = o.write_private(o.cert_path, c:pem())
        if not ok then return nil, werr end
        cert = c
        return true
      end }
    if err == "planned" then return { key_path = o.key_path, cert_path = o.cert_path, planned = true } end
    if err then return nil, err end
  end
  if app.planned then
    t.plan:change { kind = "add", target = "certificate on application '" .. app.displayName .. "'", tenant = t.name,
                    operation = "bootstrap_cert", apply = function() end }
    return { key_path = o.key_path, cert_path = o.cert_path }
  end
  local ok, err = t:add_certificate(app, { cer = crypto.base64_encode(cert:der()), subject = o.subject,
    thumbprint_b64 = crypto.base64_encode(crypto.sha1(cert:der())), starts = cert:not_before(), ends = cert:not_after() })
  if not ok and err ~= "planned" then return nil, err end
  return { key_path = o.key_path, cert_path = o.cert_path, thumbprint = cert:thumbprint() }
end

-- ensure_consents(t, sp, ids, exact) -> true | nil, err: admin consent for each permission (ids:
-- value -> {id, resource}); with exact, consents the app holds on Graph and Exchange Online
-- beyond these are removed.
function M.ensure_consents(t, sp, ids, exact)
  local names = {}
  for v in pairs(ids) do names[#names + 1] = v end
  table.sort(names)
  for _, v in ipairs(names) do
    require("t2t.tenant").ROLE[v] = require("t2t.tenant").ROLE[v] or ids[v].id   -- label consents by name
    local ok, err = t:grant_consent(sp, ids[v].resource, v)
    if not ok and err ~= "planned" then return nil, err end
  end
  if not exact or sp.planned then return true end
  local keep = {}
  for _, x in pairs(ids) do keep[x.id] = true end
  local res_ids = {}
  for _, app in ipairs({ catalog.GRAPH_APP_ID, catalog.EXO_APP_ID }) do
    local r = t:find_sp(app)
    if r then res_ids[r.id] = r.displayName end
  end
  for _, a in ipairs(t:glist("/servicePrincipals/" .. sp.id .. "/appRoleAssignments") or {}) do
    if res_ids[a.resourceId] and not keep[a.appRoleId] then
      local _, err = t.plan:change { kind = "delete", tenant = t.name, operation = "bootstrap_consent",
        target = string.format("consent %s on %s for '%s' (not needed)", a.appRoleId, res_ids[a.resourceId],
                               tostring(sp.displayName)),
        apply = function() return t:gdelete("/servicePrincipals/" .. sp.id .. "/appRoleAssignments/" .. a.id) end }
      if err and err ~= "planned" then return nil, err end
    end
  end
  return true
end

-- ensure_roles(t, sp, roles, o) -> true | nil, err: each Entra role for the app's service
-- principal, directly or through the role-assignable group o.via_group; with o.exact, direct
-- roles the app holds beyond these are removed.
function M.ensure_roles(t, sp, roles, o)
  local p = { id = sp.id, name = sp.displayName, kind = "servicePrincipal", planned = sp.planned }
  local want = {}
  for _, r in ipairs(roles) do
    want[catalog.role(r).id] = true
    local ok, err = ensure.assignment(t, { principal = p, role = r, via_group = o.via_group,
                                           justification = "t2t bootstrap" })
    if not ok then return nil, err end
  end
  if not o.exact or sp.planned then return true end
  local l = t:glist("/roleManagement/directory/roleAssignments?$filter=principalId eq '" .. sp.id .. "'") or {}
  for _, a in ipairs(l) do
    if not want[a.roleDefinitionId] or o.via_group then
      local _, err = t.plan:change { kind = "delete", tenant = t.name, operation = "bootstrap_role",
        target = string.format("role %s of '%s' (%s)", catalog.role_name(a.roleDefinitionId), tostring(sp.displayName),
                               o.via_group and "held through the group now" or "not needed"),
        apply = function() return t:gdelete("/roleManagement/directory/roleAssignments/" .. a.id) end }
      if err and err ~= "planned" then return nil, err end
    end
  end
  return true
end

return M
