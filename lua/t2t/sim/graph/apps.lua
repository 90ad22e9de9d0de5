-- t2t.sim.graph.apps: /applications, /servicePrincipals, credentials (addPassword,
-- removePassword, keyCredentials PATCH), app role assignments (admin consent) — wire.md §3.1–3.5.
local util = require "t2t.sim.graph.util"
local types = require "t2t.sim.graph.types"
local store = require "t2t.sim.graph.store"

local M = {}
local route = store.routes(M)

local now = store.now
local function epoch(v, default) return util.parse_iso(v) or (type(v) == "number" and v) or default end

local function home_app(ctx, appId)
  local ref = ctx.sim.state.apps_by_appid and ctx.sim.state.apps_by_appid[appId]
  if not ref then return nil end
  local t = ctx.sim.state.tenants[ref.tenant]
  local app = t and t.dir.objects[ref.id]
  if not app then return nil end
  -- the home tenant's replication lag applies to the app wherever it is looked up
  if ctx.sim.visible and not ctx.sim:visible(app) then return nil end
  return app, t
end

-- The certificate in a keyCredential's key (base64 DER) | nil when it holds none.
local function key_cert(k)
  if type(k.key) ~= "string" then return nil end
  local ok, crypto = pcall(require, "t2t.crypto")
  local der = ok and crypto.base64_decode(k.key)
  local cert = der and crypto.load_cert(der)
  return cert, crypto
end

-- Normalise keyCredentials from a PATCH: keyId, dates and customKeyIdentifier filled in the
-- way Graph does — from the certificate itself (its validity, its SHA-1 thumbprint) when the
-- request leaves them out; the collection replaces the stored one (wire.md §3.3).
local function normalise_keys(ctx, list)
  local out = {}
  for i, k in ipairs(list) do
    if type(k.key) ~= "string" and not k.keyId then
      util.bad("Key credential 'key' is required for a new key credential.")
    end
    local typ = k.type or "AsymmetricX509Cert"
    local cert, crypto = nil, nil
    if typ == "AsymmetricX509Cert" and k.key then
      cert, crypto = key_cert(k)
      if not cert then util.bad("Invalid certificate: Key value is invalid certificate") end
    end
    local start = epoch(k.startDateTime, cert and cert:not_before() or now(ctx))
    local stop = epoch(k.endDateTime, cert and cert:not_after() or start + 365 * 86400)
    if stop <= start then
      util.bad("Key credential end date is invalid.")
    end
    local ckid = k.customKeyIdentifier
    if (ckid == nil or ckid == util.null) and cert then
      ckid = crypto.base64_encode(cert:fingerprint("sha1"))
    end
    out[i] = {
      keyId = k.keyId or util.guid(ctx.sim), type = typ,
      usage = k.usage or "Verify", key = k.key, displayName = k.displayName,
      customKeyIdentifier = ckid, startDateTime = start, endDateTime = stop,
    }
    if out[i].type ~= "AsymmetricX509Cert" and out[i].type ~= "X509CertAndPassword"
        and out[i].type ~= "Symmetric" then
      util.bad("Invalid key credential type '" .. tostring(out[i].type) .. "'.")
    end
  end
  return out
end

-- Keep the stored key material when a PATCH re-sends an existing keyId without `key`
-- (Graph returns key = null on reads, so clients re-send what they read).
local function merge_existing_keys(old, new)
  local by = {}
  for _, k in ipairs(old or {}) do by[k.keyId] = k end
  for _, k in ipairs(new) do
    local o = by[k.keyId]
    if o and k.key == nil then k.key = o.key end
  end
  return new
end

local function app_entity(ctx, app, status)
  return store.entity(ctx, "application", "applications", app, status)
end

-- GET /applications
store.list_route(route, "applications", "application")

-- POST /applications (wire.md §3.2) → 201
-- A new application from a POST body (or an upsert's, with its uniqueName) -> 201.
local function create_app(ctx, body)
  types.check_body("application", body)
  if type(body.displayName) ~= "string" or body.displayName == "" then
    util.bad("Property 'displayName' is required.", "Request_BadRequest")
  end
  if body.uniqueName ~= nil and store.by_unique_name(ctx, "application", tostring(body.uniqueName)) then
    util.fail(409, "Request_MultipleObjectsWithSameKeyValue", "Another object with the same value for " ..
      "property uniqueName already exists.")
  end
  local app = util.copy(body)
  for k in pairs(app) do if k:find("@", 1, true) then app[k] = nil end end
  app["@odata.type"] = "#microsoft.graph.application"
  app.id = util.guid(ctx.sim)
  app.appId = util.guid(ctx.sim)
  app.createdDateTime = now(ctx)
  app.publisherDomain = ctx.tenant.initial_domain
  app.signInAudience = app.signInAudience or "AzureADMyOrg"
  app.keyCredentials = app.keyCredentials and normalise_keys(ctx, app.keyCredentials) or {}
  app.passwordCredentials = {}
  app.requiredResourceAccess = app.requiredResourceAccess or {}
  app.identifierUris = app.identifierUris or {}
  app.appRoles = app.appRoles or {}
  app.tags = app.tags or {}
  app.web = app.web or { redirectUris = {} }
  store.add(ctx, app)
  return app_entity(ctx, app, 201)
end

route("POST", "applications", function(ctx)
  return create_app(ctx, ctx.json or {})
end)

route("GET", "applications/:id", function(ctx, p)
  return app_entity(ctx, store.must_resolve(ctx, "application", p.id))
end)

-- PATCH /applications/{id} → 204; keyCredentials/passwordCredentials collections are replaced.
-- PATCH /applications(uniqueName='x') with "Prefer: create-if-missing" creates it (201) when no
-- application has that uniqueName: Graph's idempotent create (upsert).
route("PATCH", "applications/:id", function(ctx, p)
  local app, unique = store.upsert_target(ctx, "application", p.id)
  local body = ctx.json or {}
  if not app then
    body = util.copy(body)
    body.uniqueName = unique
    return create_app(ctx, body)
  end
  types.check_body("application", body)
  if body.passwordCredentials ~= nil then
    util.bad("Updates to passwordCredentials are not supported; use addPassword and removePassword.")
  end
  store.apply_patch(app, body, nil, { keyCredentials = function(o, v)
    o.keyCredentials = merge_existing_keys(o.keyCredentials, normalise_keys(ctx, v))
  end })
  store.touch(ctx, app)
  return store.no_content()
end)

store.delete_route(route, "applications/:id", "application")

-- A new client secret: 16-64 chars (we use 40), returned once as secretText.
local SECRET_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789~.-_"
local function new_secret(ctx)
  local t = {}
  for i = 1, 40 do
    local k = ctx.sim.rng:int(1, #SECRET_CHARS)
    t[i] = SECRET_CHARS:sub(k, k)
  end
  return table.concat(t)
end

local function add_password(ctx, owner, sig)
  local body = ctx.json or {}
  types.check_action(sig, body)
  local pc = body.passwordCredential or {}
  if type(pc) == "table" then types.check_body("passwordCredential", pc, { nested = true }) end
  local start = epoch(pc.startDateTime, now(ctx))
  local stop = epoch(pc.endDateTime, start + 2 * 365 * 86400)
  local secret = new_secret(ctx)
  local cred = {
    displayName = pc.displayName, endDateTime = stop, hint = secret:sub(1, 3),
    keyId = util.guid(ctx.sim), startDateTime = start,
    _secret = secret,   -- the model's field the token endpoint checks; never shown again
  }
  owner.passwordCredentials = owner.passwordCredentials or {}
  table.insert(owner.passwordCredentials, cred)
  local out = types.project("passwordCredential", cred)
  out.secretText = secret
  out.customKeyIdentifier = util.null
  out.displayName = out.displayName or util.null
  out["@odata.context"] = store.ROOT .. "/$metadata#microsoft.graph.passwordCredential"
  return { status = 200, body = out }
end

local function remove_password(ctx, owner, sig)
  local body = ctx.json or {}
  types.check_action(sig, body)
  for i, c in ipairs(owner.passwordCredentials or {}) do
    if c.keyId == body.keyId then
      table.remove(owner.passwordCredentials, i)
      return store.no_content()
    end
  end
  util.bad("No password credential found with keyId " .. tostring(body.keyId) .. ".",
    "Request_BadRequest")
end

route("POST", "applications/:id/addPassword", function(ctx, p)
  return add_password(ctx, store.must_resolve(ctx, "application", p.id), "application.addPassword")
end)
route("POST", "applications/:id/removePassword", function(ctx, p)
  return remove_password(ctx, store.must_resolve(ctx, "application", p.id), "application.removePassword")
end)
-- addKey (wire.md §3.3): the proof is a JWT signed with one of the owner's current certificates:
-- aud the Azure AD Graph id, iss the owner's object id, nbf and exp at most 10 minutes apart.  An
-- owner may roll its own key without any permission.  A proof that does not pass answers as
-- public reports show Graph doing: 401 Authentication_MissingOrMalformed.
local PROOF_AUD = "00000002-0000-0000-c000-000000000000"

local function check_proof(ctx, owner, proof)
  local jwt, crypto = require "t2t.jwt", require "t2t.crypto"
  local t = now(ctx)
  for _, k in ipairs(owner.keyCredentials or {}) do
    if k.type == "AsymmetricX509Cert" and (k.usage or "Verify") == "Verify" and k.key
        and (k.startDateTime or 0) <= t and t < (k.endDateTime or math.huge) then
      local der = crypto.base64_decode(k.key)
      local cert = der and crypto.load_cert(der)
      local claims = cert and jwt.verify(proof, cert:public_key(), { algs = { "RS256", "PS256" },
        now = t, aud = PROOF_AUD, iss = owner.id, leeway = 300 })
      if claims and type(claims.nbf) == "number" and claims.exp - claims.nbf <= 600 then return end
    end
  end
  util.fail(401, "Authentication_MissingOrMalformed", "Access Token missing or malformed.")
end

local function add_key(ctx, owner, sig)
  local body = ctx.json or {}
  types.check_action(sig, body)
  if body.passwordCredential ~= nil and body.passwordCredential ~= util.null then
    util.fail(501, "NotImplemented", "The simulator does not take a passwordCredential in addKey "
      .. "(X509CertAndPassword keys).")
  end
  check_proof(ctx, owner, body.proof)
  local cred = normalise_keys(ctx, { body.keyCredential })[1]
  if cred.type ~= "AsymmetricX509Cert" then util.bad("Invalid key credential type '" .. cred.type .. "'.") end
  owner.keyCredentials = owner.keyCredentials or {}
  table.insert(owner.keyCredentials, cred)
  local out = types.project("keyCredential", cred)
  out.key = util.null
  out["@odata.context"] = store.ROOT .. "/$metadata#microsoft.graph.keyCredential"
  return { status = 200, body = out }
end

route("POST", "applications/:id/addKey", function(ctx, p)
  return add_key(ctx, store.must_resolve(ctx, "application", p.id), "application.addKey")
end)

-- Service principals ---------------------------------------------------------------------

store.list_route(route, "servicePrincipals", "servicePrincipal")

-- POST /servicePrincipals {"appId"} (wire.md §3.4) → 201; also in a foreign tenant for a
-- multi-tenant app.
route("POST", "servicePrincipals", function(ctx)
  local body = ctx.json or {}
  types.check_body("servicePrincipal", body, { allow_read_only = {} })
  if type(body.appId) ~= "string" then util.bad("Property 'appId' is required.", "Request_BadRequest") end
  local dir = ctx.tenant.dir
  dir.by_appid_sp = dir.by_appid_sp or {}
  local existing = dir.by_appid_sp[body.appId]
  if existing and dir.objects[existing] then
    util.fail(409, "Request_MultipleObjectsWithSameKeyValue",
      "The service principal cannot be created, updated, or restored because the service principal "
      .. "name " .. body.appId .. " is already in use.")
  end
  local app, home = home_app(ctx, body.appId)
  if not app then
    util.bad(string.format("The appId '%s' of the service principal does not reference a valid "
      .. "application object.", body.appId))
  end
  if home.id ~= ctx.tenant.id and app.signInAudience ~= "AzureADMultipleOrgs"
      and app.signInAudience ~= "AzureADandPersonalMicrosoftAccount" then
    util.bad(string.format("The appId '%s' of the service principal does not reference a valid "
      .. "application object.", body.appId))
  end
  local sp = util.copy(body)
  for k in pairs(sp) do if k:find("@", 1, true) then sp[k] = nil end end
  sp["@odata.type"] = "#microsoft.graph.servicePrincipal"
  sp.id = util.guid(ctx.sim)
  sp.appDisplayName = app.displayName
  sp.displayName = sp.displayName or app.displayName
  sp.appOwnerOrganizationId = home.id
  sp.servicePrincipalType = "Application"
  sp.servicePrincipalNames = { app.appId }
  sp.signInAudience = app.signInAudience
  if sp.accountEnabled == nil then sp.accountEnabled = true end
  sp.appRoles = util.copy(app.appRoles or {})
  sp.oauth2PermissionScopes = util.copy((app.api or {}).oauth2PermissionScopes or {})
  sp.replyUrls = util.copy((app.web or {}).redirectUris or {})
  sp.tags = sp.tags or {}
  sp.keyCredentials, sp.passwordCredentials = {}, {}
  sp.createdDateTime = now(ctx)
  store.add(ctx, sp)
  return store.entity(ctx, "servicePrincipal", "servicePrincipals", sp, 201)
end)

route("GET", "servicePrincipals/:id", function(ctx, p)
  return store.entity(ctx, "servicePrincipal", "servicePrincipals",
    store.must_resolve(ctx, "servicePrincipal", p.id))
end)

route("PATCH", "servicePrincipals/:id", function(ctx, p)
  local sp = store.must_resolve(ctx, "servicePrincipal", p.id)
  local body = ctx.json or {}
  types.check_body("servicePrincipal", body)
  store.apply_patch(sp, body, { appId = true })
  store.touch(ctx, sp)
  return store.no_content()
end)

store.delete_route(route, "servicePrincipals/:id", "servicePrincipal")

route("POST", "servicePrincipals/:id/addPassword", function(ctx, p)
  return add_password(ctx, store.must_resolve(ctx, "servicePrincipal", p.id), "servicePrincipal.addPassword")
end)
route("POST", "servicePrincipals/:id/removePassword", function(ctx, p)
  return remove_password(ctx, store.must_resolve(ctx, "servicePrincipal", p.id),
    "servicePrincipal.removePassword")
end)

-- App role assignments (wire.md §3.5) -------------------------------------------------------

local function assignments(ctx)
  local dir = ctx.tenant.dir
  dir.app_role_assignments = dir.app_role_assignments or {}
  return dir.app_role_assignments
end

local function assignment_list(ctx, field, id)
  local out = {}
  for _, a in pairs(assignments(ctx)) do
    if a[field] == id and store.visible(ctx, a) then out[#out + 1] = a end
  end
  return out
end

local PRINCIPAL_TYPES = { servicePrincipal = "ServicePrincipal", user = "User", group = "Group" }

-- Create an assignment; `principal_fixed`/`resource_fixed` come from the URL.
local function create_assignment(ctx, resource_fixed, principal_fixed)
  local body = ctx.json or {}
  types.check_body("appRoleAssignment", body)
  for _, k in ipairs({ "principalId", "resourceId", "appRoleId" }) do
    if type(body[k]) ~= "string" then util.bad("Property '" .. k .. "' is required.") end
  end
  if resource_fixed and body.resourceId ~= resource_fixed.id then
    util.bad("The resourceId in the request body must match the service principal in the URL.")
  end
  if principal_fixed and body.principalId ~= principal_fixed.id then
    util.bad("The principalId in the request body must match the principal in the URL.")
  end
  local resource = resource_fixed or store.must(ctx, body.resourceId, "servicePrincipal")
  local principal = principal_fixed or store.get(ctx, body.principalId)
  if not principal or not PRINCIPAL_TYPES[store.kind(principal)] then util.not_found(body.principalId) end
  local ptype = PRINCIPAL_TYPES[store.kind(principal)]
  local role
  for _, r in ipairs(resource.appRoles or {}) do
    if r.id == body.appRoleId then role = r end
  end
  local default_role = body.appRoleId == "00000000-0000-0000-0000-000000000000" and ptype ~= "ServicePrincipal"
  if not role and not default_role then
    util.bad(string.format("Permission being assigned was not found on application '%s'.",
      tostring(resource.appId)))
  end
  if role then
    local want = ptype == "ServicePrincipal" and "Application" or "User"
    if not util.contains(role.allowedMemberTypes, want) then
      util.bad("Permission being assigned is not allowed for the principal type " .. ptype .. ".")
    end
  end
  for _, a in pairs(assignments(ctx)) do
    if a.principalId == principal.id and a.resourceId == resource.id and a.appRoleId == body.appRoleId then
      util.bad("Permission being assigned already exists on the object")
    end
  end
  local a = {
    id = util.opaque_id(ctx.sim), appRoleId = body.appRoleId, createdDateTime = now(ctx),
    principalDisplayName = principal.displayName, principalId = principal.id, principalType = ptype,
    resourceDisplayName = resource.displayName, resourceId = resource.id,
    created = ctx.sim:now(),
  }
  return store.add_app_role_assignment(ctx, a)
end

local function assignment_entity(_ctx, a, context, status)
  local body = types.project("appRoleAssignment", a)
  body["@odata.context"] = store.ROOT .. "/$metadata#" .. context .. "/$entity"
  return { status = status or 200, body = body }
end

local function delete_assignment(ctx, field, owner, aid)
  local a = assignments(ctx)[aid]
  if not a or a[field] ~= owner.id or not store.visible(ctx, a) then util.not_found(aid) end
  store.remove_app_role_assignment(ctx, aid)
  return store.no_content()
end

for _, set in ipairs({ "servicePrincipals", "users", "groups" }) do
  local kind = set:sub(1, -2)
  local ctxpath = function(id) return set .. "('" .. id .. "')" end
  -- /{set}/{id}/appRoleAssignments: what the principal was granted
  route("GET", set .. "/:id/appRoleAssignments", function(ctx, p)
    local owner = store.must_resolve(ctx, kind, p.id)
    return store.collection(ctx, "appRoleAssignment", ctxpath(owner.id) .. "/appRoleAssignments",
      assignment_list(ctx, "principalId", owner.id))
  end)
  route("POST", set .. "/:id/appRoleAssignments", function(ctx, p)
    local owner = store.must_resolve(ctx, kind, p.id)
    local a = create_assignment(ctx, nil, owner)
    return assignment_entity(ctx, a, ctxpath(owner.id) .. "/appRoleAssignments", 201)
  end)
  route("DELETE", set .. "/:id/appRoleAssignments/:aid", function(ctx, p)
    return delete_assignment(ctx, "principalId", store.must_resolve(ctx, kind, p.id), p.aid)
  end)
end

-- /servicePrincipals/{resource}/appRoleAssignedTo: who was granted roles of this resource
route("GET", "servicePrincipals/:id/appRoleAssignedTo", function(ctx, p)
  local sp = store.must_resolve(ctx, "servicePrincipal", p.id)
  return store.collection(ctx, "appRoleAssignment", "servicePrincipals('" .. sp.id .. "')/appRoleAssignedTo",
    assignment_list(ctx, "resourceId", sp.id))
end)
route("POST", "servicePrincipals/:id/appRoleAssignedTo", function(ctx, p)
  local sp = store.must_resolve(ctx, "servicePrincipal", p.id)
  local a = create_assignment(ctx, sp, nil)
  return assignment_entity(ctx, a, "servicePrincipals('" .. sp.id .. "')/appRoleAssignedTo", 201)
end)
route("GET", "servicePrincipals/:id/appRoleAssignedTo/:aid", function(ctx, p)
  local sp = store.must_resolve(ctx, "servicePrincipal", p.id)
  local a = assignments(ctx)[p.aid]
  if not a or a.resourceId ~= sp.id or not store.visible(ctx, a) then util.not_found(p.aid) end
  return assignment_entity(ctx, a, "servicePrincipals('" .. sp.id .. "')/appRoleAssignedTo")
end)
route("DELETE", "servicePrincipals/:id/appRoleAssignedTo/:aid", function(ctx, p)
  return delete_assignment(ctx, "resourceId", store.must_resolve(ctx, "servicePrincipal", p.id), p.aid)
end)

return M
