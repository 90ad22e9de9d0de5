-- t2t.sim.keyvault: the simulated Key Vault data plane (hosts {vault}.vault.azure.net),
-- api-version 7.4, as the legacy cross-tenant setup uses it (wire.md §4.7–4.9): secrets with
-- versions, self-signed certificate create → pending → completed (x5t, cer, kid, sid), the PFX
-- as the certificate's secret, access checks against the vault's access policies (or RBAC).
local util = require "t2t.sim.graph.util"
local arm = require "t2t.sim.arm"

local M = {}

local AUDIENCES = { "https://vault.azure.net", "https://vault.azure.net/", "cfa8b339-82a2-471a-a3c9-0fc0be7a4093" }
-- RBAC data roles (wire.md §5.5) → {kind = {permission = true} | "all"}.
local RBAC = {
  ["00482a5a-887f-4fb3-b363-3b7fe8e74483"] = { secrets = "all", certificates = "all", keys = "all" },
  ["b86a8fe4-44ce-4948-aee5-eccb2c155cd7"] = { secrets = "all" },
  ["4633458b-17de-408a-b874-0445c86b69e6"] = { secrets = { get = true, list = true } },
  ["a4417e6f-fecd-4de8-b567-7b0420556985"] = { certificates = "all" },
  ["21090545-7ca7-4776-b22c-e363652d74d2"] = { certificates = { get = true, list = true },
                                               secrets = { list = true }, keys = { get = true, list = true } },
  ["12338af0-0e69-4776-bea7-57ae8d297424"] = { keys = { get = true, sign = true, verify = true } },
}

-- The data action an RBAC denial names, per kind and access-policy permission.
local DATA_ACTION = {
  secrets = { get = "secrets/getSecret/action", set = "secrets/setSecret/action",
              list = "secrets/readMetadata/action", delete = "secrets/delete",
              purge = "secrets/purge/action", recover = "secrets/recover/action",
              backup = "secrets/backup/action", restore = "secrets/restore/action",
              update = "secrets/update/action" },
  certificates = { get = "certificates/read", list = "certificates/read",
                   create = "certificates/create/action", update = "certificates/update/action",
                   delete = "certificates/delete" },
  keys = { get = "keys/read", list = "keys/read", sign = "keys/sign/action", verify = "keys/verify/action" },
}

local KvError = {}
local function fail(status, code, message, inner, headers)
  error(setmetatable({ status = status, code = code, message = message, inner = inner, headers = headers },
    KvError), 0)
end

local function response(ctx, status, body, headers)
  local h = headers or {}
  h["x-ms-request-id"] = ctx.request_id
  h["x-ms-keyvault-service-version"] = "1.9.0.0"
  h["x-ms-keyvault-region"] = ctx.vault and ctx.vault.location or "simulated"
  if body ~= nil then
    h["content-type"] = "application/json; charset=utf-8"
    body = util.encode(body)
  end
  return { status = status, headers = h, body = body }
end

local function find_vault(state, host)
  local name = host:match("^([^.]+)%.vault%.")
  if not name then return nil end
  for _, x in ipairs(arm.all_vaults(state)) do
    if x.name:lower() == name:lower() then return x end
  end
  return nil
end

-- Access check for `kind`/`perm` (e.g. "secrets"/"get").
local function authorize(ctx, kind, perm)
  local v, oid = ctx.vault, ctx.claims.oid
  if v.properties.enableRbacAuthorization then
    local sub = ctx.where.tenant.azure.subscriptions[ctx.where.sub]
    for a in arm.assignments(sub, ctx.where.sub) do
      local role = RBAC[a.role]
      local grant = role and role[kind]
      if a.principalId == oid and (grant == "all" or (type(grant) == "table" and grant[perm]))
          and arm.in_scope(v.id, a.scope) then
        return
      end
    end
    fail(403, "Forbidden", string.format("Caller is not authorized to perform action on resource.\r\n"
      .. "If role assignments, deny assignments or role definitions were changed recently, please "
      .. "observe propagation time.\r\nCaller: appid=%s;oid=%s;iss=https://sts.windows.net/%s/\r\n"
      .. "Action: 'Microsoft.KeyVault/vaults/%s'\r\nResource: '%s'", tostring(ctx.claims.appid),
      tostring(oid), tostring(ctx.claims.tid),
      (DATA_ACTION[kind] or {})[perm] or (kind .. "/" .. perm), v.id:lower()), "ForbiddenByRbac")
  end
  for _, ap in ipairs(v.properties.accessPolicies or {}) do
    if ap.objectId == oid and ap.tenantId == ctx.claims.tid then
      for _, p in ipairs(ap.permissions[kind] or {}) do
        if p == perm or p == "all" then return end
      end
    end
  end
  fail(403, "Forbidden", string.format("The user, group or application 'appid=%s;oid=%s;iss="
    .. "https://sts.windows.net/%s/' does not have %s %s permission on key vault '%s;location=%s'. "
    .. "For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
    tostring(ctx.claims.appid), tostring(oid), tostring(ctx.claims.tid), kind, perm, v.name,
    tostring(v.location)), "AccessDenied")
end

local function base(ctx) return "https://" .. ctx.vault.name:lower() .. ".vault.azure.net" end

-- Secrets ----------------------------------------------------------------------------------------

local function secret_body(ctx, name, ver, s, with_value)
  local out = {
    id = base(ctx) .. "/secrets/" .. name .. "/" .. ver,
    attributes = { enabled = s.enabled ~= false, created = s.created, updated = s.updated,
                   exp = s.exp, nbf = s.nbf, recoveryLevel = "Recoverable+Purgeable",
                   recoverableDays = 90 },
    contentType = s.contentType, tags = s.tags,
  }
  if with_value then out.value = s.value end
  if s.managed then out.managed = true; out.kid = base(ctx) .. "/keys/" .. name .. "/" .. ver end
  return out
end

local function put_secret(ctx, name, value, opts)
  local v = ctx.vault
  v.secrets = v.secrets or {}
  local entry = v.secrets[name]
  if not entry then entry = { versions = {} }; v.secrets[name] = entry end
  local ver = opts.version or util.hex32(ctx.sim)
  local now = math.floor(ctx.sim:now())
  local attrs = opts.attributes or {}
  entry.versions[ver] = { value = value, contentType = opts.contentType, tags = opts.tags,
                          enabled = attrs.enabled, exp = attrs.exp, nbf = attrs.nbf,
                          created = now, updated = now, managed = opts.managed }
  entry.latest = ver
  return ver, entry.versions[ver]
end

local function not_found_secret(name, version)
  fail(404, "SecretNotFound", string.format("A secret with (name/id) %s%s was not found in this key "
    .. "vault. If you recently deleted this secret you may be able to recover it using the correct "
    .. "recovery command. For help resolving this issue, please see "
    .. "https://go.microsoft.com/fwlink/?linkid=2125182", name, version and ("/" .. version) or ""))
end

local function check_name(name)
  if not name:match("^[%w%-]+$") or #name > 127 then
    fail(400, "BadParameter", "The request URI contains an invalid name: " .. name)
  end
end

-- GET /secrets: the latest version of each secret, no values.
local function list_secrets(ctx)
  authorize(ctx, "secrets", "list")
  local list = {}
  for n, e in pairs(ctx.vault.secrets) do
    local item = secret_body(ctx, n, e.latest, e.versions[e.latest], false)
    item.id = base(ctx) .. "/secrets/" .. n
    list[#list + 1] = item
  end
  table.sort(list, function(a, b) return a.id < b.id end)
  return response(ctx, 200, { value = util.array(list), nextLink = util.null })
end

-- GET /secrets/{name}/versions: every version, no values.
local function list_versions(ctx, name)
  authorize(ctx, "secrets", "list")
  local e = ctx.vault.secrets[name]
  if not e then not_found_secret(name) end
  local list = {}
  for ver, s in pairs(e.versions) do list[#list + 1] = secret_body(ctx, name, ver, s, false) end
  table.sort(list, function(a, b) return a.attributes.created < b.attributes.created
    or (a.attributes.created == b.attributes.created and a.id < b.id) end)
  return response(ctx, 200, { value = util.array(list), nextLink = util.null })
end

local function set_secret(ctx, name)
  authorize(ctx, "secrets", "set")
  local body = ctx.json
  if type(body) ~= "table" or type(body.value) ~= "string" then
    fail(400, "BadParameter", "Property 'value' is required and must be a string.")
  end
  local v = ctx.vault
  if v.deleted_secrets and v.deleted_secrets[name] then
    fail(409, "Conflict", "Secret " .. name .. " is currently in a deleted but recoverable state, and "
      .. "its name cannot be reused; in this state, the secret can only be recovered or purged.",
      "ObjectIsDeletedButRecoverable")
  end
  local e = v.secrets[name]
  if e and e.versions[e.latest].managed then
    fail(409, "Conflict", "Secret " .. name .. " is managed by a certificate and cannot be set.")
  end
  local ver, s = put_secret(ctx, name, body.value, { contentType = body.contentType, tags = body.tags,
    attributes = body.attributes })
  return response(ctx, 200, secret_body(ctx, name, ver, s, true))
end

-- PATCH /secrets/{name}/{version}: attributes, contentType and tags (never the value).
local function update_secret(ctx, name, version)
  authorize(ctx, "secrets", "set")
  local e = ctx.vault.secrets[name]
  local ver = (version and version ~= "") and version or (e and e.latest)
  local s = e and ver and e.versions[ver]
  if not s then not_found_secret(name, version) end
  local body = type(ctx.json) == "table" and ctx.json or {}
  local a = type(body.attributes) == "table" and body.attributes or {}
  if a.enabled ~= nil then s.enabled = a.enabled end
  if a.exp ~= nil then s.exp = a.exp ~= util.null and a.exp or nil end
  if a.nbf ~= nil then s.nbf = a.nbf ~= util.null and a.nbf or nil end
  if body.contentType ~= nil then s.contentType = body.contentType ~= util.null and body.contentType or nil end
  if body.tags ~= nil then s.tags = body.tags ~= util.null and body.tags or nil end
  s.updated = math.floor(ctx.sim:now())
  return response(ctx, 200, secret_body(ctx, name, ver, s, false))
end

local function get_secret(ctx, name, version)
  authorize(ctx, "secrets", "get")
  local e = ctx.vault.secrets[name]
  local ver = (version and version ~= "") and version or (e and e.latest)
  local s = e and ver and e.versions[ver]
  if not s then not_found_secret(name, version) end
  if s.enabled == false then fail(403, "Forbidden", "Operation get is not allowed on a disabled secret.", "SecretDisabled") end
  return response(ctx, 200, secret_body(ctx, name, ver, s, true))
end

-- The deleted-secret bundle: the latest version's body plus the recovery fields.
local function deleted_body(ctx, name, d)
  local out = secret_body(ctx, name, d.entry.latest, d.entry.versions[d.entry.latest], false)
  out.recoveryId = base(ctx) .. "/deletedsecrets/" .. name
  out.deletedDate, out.scheduledPurgeDate = d.deleted, d.purge
  return out
end

-- DELETE /secrets/{name}: into the vault's deleted secrets when soft delete is on (the default).
local function delete_secret(ctx, name)
  authorize(ctx, "secrets", "delete")
  local v = ctx.vault
  local e = v.secrets[name]
  if not e then not_found_secret(name) end
  if e.versions[e.latest].managed then
    fail(403, "Forbidden", "Secret " .. name .. " is managed by a certificate; delete the certificate.")
  end
  v.secrets[name] = nil
  if v.properties.enableSoftDelete == false then
    return response(ctx, 200, secret_body(ctx, name, e.latest, e.versions[e.latest], false))
  end
  local now = math.floor(ctx.sim:now())
  local d = { entry = e, deleted = now,
              purge = now + (v.properties.softDeleteRetentionInDays or 90) * 86400 }
  v.deleted_secrets = v.deleted_secrets or {}
  v.deleted_secrets[name] = d
  return response(ctx, 200, deleted_body(ctx, name, d))
end

-- /deletedsecrets[/{name}[/recover]]: list, get, purge (DELETE) and recover (POST).
local function deleted_secrets(ctx, name, action)
  local v = ctx.vault
  v.deleted_secrets = v.deleted_secrets or {}
  if not name then
    if ctx.method ~= "GET" then fail(405, "MethodNotAllowed", "Method not allowed.") end
    authorize(ctx, "secrets", "list")
    local list = {}
    for n, d in pairs(v.deleted_secrets) do list[#list + 1] = deleted_body(ctx, n, d) end
    table.sort(list, function(a, b) return a.recoveryId < b.recoveryId end)
    return response(ctx, 200, { value = util.array(list), nextLink = util.null })
  end
  local d = v.deleted_secrets[name]
  local function missing()
    fail(404, "SecretNotFound", "Deleted Secret not found: " .. name)
  end
  if action == "recover" and ctx.method == "POST" then
    authorize(ctx, "secrets", "recover")
    if not d then missing() end
    v.deleted_secrets[name] = nil
    v.secrets[name] = d.entry
    return response(ctx, 200, secret_body(ctx, name, d.entry.latest, d.entry.versions[d.entry.latest], false))
  end
  if action then fail(405, "MethodNotAllowed", "Method not allowed.") end
  if ctx.method == "GET" then
    authorize(ctx, "secrets", "list")
    if not d then missing() end
    return response(ctx, 200, deleted_body(ctx, name, d))
  elseif ctx.method == "DELETE" then
    authorize(ctx, "secrets", "purge")
    if not d then missing() end
    v.deleted_secrets[name] = nil
    return response(ctx, 204)
  end
  fail(405, "MethodNotAllowed", "Method not allowed.")
end

-- /secrets, /secrets/{name}, /secrets/{name}/versions, /secrets/{name}/{version}.
local function secrets(ctx, name, version)
  local v = ctx.vault
  v.secrets = v.secrets or {}
  local m = ctx.method
  if not name then
    if m ~= "GET" then fail(405, "MethodNotAllowed", "Method not allowed.") end
    return list_secrets(ctx)
  end
  check_name(name)
  if version == "versions" and m == "GET" then return list_versions(ctx, name) end
  if m == "PUT" and not version then return set_secret(ctx, name) end
  if m == "PATCH" then return update_secret(ctx, name, version) end
  if m == "DELETE" and not version then return delete_secret(ctx, name) end
  if m == "GET" then return get_secret(ctx, name, version) end
  fail(405, "MethodNotAllowed", "The requested method is not allowed on this resource.")
end

-- Certificates ----------------------------------------------------------------------------------

local has_crypto, crypto = pcall(require, "t2t.crypto")
if not has_crypto then crypto = nil end

local function pending_body(ctx, name, c)
  local out = {
    id = base(ctx) .. "/certificates/" .. name .. "/pending",
    issuer = { name = c.policy.issuer and c.policy.issuer.name or "Self" },
    csr = c.csr or "", cancellation_requested = false, status = c.status,
    status_details = c.status == "completed" and "" or
      "Pending certificate created. Certificate request is in progress. This may take some time based on "
      .. "the issuer provider. Please check again later.",
    request_id = c.request_id,
  }
  if c.status == "completed" then out.target = base(ctx) .. "/certificates/" .. name end
  if c.error then out.error = c.error end
  return out
end

-- Make the certificate: RSA key, self-signed X.509 per the policy, PFX stored as its secret.
local function issue(ctx, name, c)
  local pol = c.policy
  local x509 = pol.x509_props or {}
  local kp = pol.key_props or {}
  local months = x509.validity_months or 12
  if not crypto then
    c.status, c.error = "failed", { code = "CryptoUnavailable", message = "t2t.crypto is not available." }
    return
  end
  local now = math.floor(ctx.sim:now())
  local cert, key = crypto.new_cert { subject = x509.subject or ("CN=" .. name), key_type = "rsa",
    bits = kp.key_size or 2048, not_before = now, not_after = now + months * 30 * 86400 + 86400 * 4,
    serial = util.hex32(ctx.sim):sub(1, 16) }
  if not cert then
    c.status, c.error = "failed", { code = "CertificateCreationFailed", message = tostring(key) }
    return
  end
  local der = cert:der()
  local ver = util.hex32(ctx.sim)
  local content_type = pol.secret_props and pol.secret_props.contentType or "application/x-pkcs12"
  local secret
  if content_type == "application/x-pem-file" then
    secret = key:private_pem() .. cert:pem()
  else
    secret = crypto.base64_encode(crypto.pkcs12_export { key = key, cert = cert, passphrase = "" })
  end
  put_secret(ctx, name, secret, { contentType = content_type, managed = true, version = ver })
  c.versions = c.versions or {}
  c.versions[ver] = { cer = crypto.base64_encode(der), x5t = crypto.base64url_encode(cert:fingerprint("sha1")),
                      nbf = now, exp = cert:not_after(), created = now, updated = now,
                      subject = x509.subject }
  c.latest = ver
  c.status = "completed"
end

local function cert_body(ctx, name, ver, c, cv)
  return {
    id = base(ctx) .. "/certificates/" .. name .. "/" .. ver,
    kid = base(ctx) .. "/keys/" .. name .. "/" .. ver,
    sid = base(ctx) .. "/secrets/" .. name .. "/" .. ver,
    x5t = cv.x5t, cer = cv.cer,
    attributes = { enabled = true, nbf = cv.nbf, exp = cv.exp, created = cv.created, updated = cv.updated,
                   recoveryLevel = "Recoverable+Purgeable", recoverableDays = 90 },
    policy = c.policy, pending = { id = base(ctx) .. "/certificates/" .. name .. "/pending" },
  }
end

local function certificates(ctx, name, rest)
  local v = ctx.vault
  v.certificates = v.certificates or {}
  local c = name and v.certificates[name]
  local function not_found()
    fail(404, "CertificateNotFound", string.format("A certificate with (name/id) %s was not found in this "
      .. "key vault. If you recently deleted this certificate you may be able to recover it using the "
      .. "correct recovery command. For help resolving this issue, please see "
      .. "https://go.microsoft.com/fwlink/?linkid=2125182", tostring(name)))
  end
  if rest == "create" then
    if ctx.method ~= "POST" then fail(405, "MethodNotAllowed", "Method not allowed.") end
    authorize(ctx, "certificates", "create")
    local body = ctx.json or {}
    local pol = body.policy
    if type(pol) ~= "table" or type(pol.x509_props) ~= "table" or type(pol.x509_props.subject) ~= "string" then
      fail(400, "BadParameter", "The certificate policy must contain x509_props.subject.")
    end
    local issuer = pol.issuer and pol.issuer.name or "Unknown"
    if issuer ~= "Self" then
      fail(400, "BadParameter", "Only the issuer 'Self' is supported by the simulator.")
    end
    local kp = pol.key_props or {}
    if kp.kty and kp.kty ~= "RSA" then fail(400, "BadParameter", "Only RSA keys are supported by the simulator.") end
    if kp.key_size and kp.key_size ~= 2048 and kp.key_size ~= 3072 and kp.key_size ~= 4096 then
      fail(400, "BadParameter", "key_size must be 2048, 3072 or 4096.")
    end
    c = c or {}
    c.policy = pol
    c.status, c.polls, c.error = "inProgress", 0, nil
    c.request_id = util.hex32(ctx.sim)
    v.certificates[name] = c
    return response(ctx, 202, pending_body(ctx, name, c), {
      location = base(ctx) .. "/certificates/" .. name .. "/pending?api-version=7.4&request_id=" .. c.request_id,
      ["retry-after"] = "1" })
  end
  if rest == "pending" then
    authorize(ctx, "certificates", "get")
    if not c or not c.status then not_found() end
    if c.status == "inProgress" then
      c.polls = (c.polls or 0) + 1
      if c.polls >= 2 then issue(ctx, name, c) end
    end
    return response(ctx, 200, pending_body(ctx, name, c),
      c.status == "inProgress" and { ["retry-after"] = "1" } or nil)
  end
  if ctx.method ~= "GET" then fail(405, "MethodNotAllowed", "Method not allowed.") end
  if not name then
    authorize(ctx, "certificates", "list")
    local list = {}
    for n, cc in pairs(v.certificates) do
      local cv = cc.latest and cc.versions[cc.latest]
      if cv then
        list[#list + 1] = { id = base(ctx) .. "/certificates/" .. n, x5t = cv.x5t,
                            attributes = { enabled = true, nbf = cv.nbf, exp = cv.exp } }
      end
    end
    table.sort(list, function(a, b) return a.id < b.id end)
    return response(ctx, 200, { value = util.array(list), nextLink = util.null })
  end
  authorize(ctx, "certificates", "get")
  local ver = rest or (c and c.latest)
  local cv = c and c.versions and ver and c.versions[ver]
  if not cv then not_found() end
  return response(ctx, 200, cert_body(ctx, name, ver, c, cv))
end

local function route(ctx, path)
  local segs = {}
  for s in path:gmatch("[^/]+") do segs[#segs + 1] = util.path_decode(s) end
  local coll = segs[1]
  if coll == "secrets" and #segs <= 3 then return secrets(ctx, segs[2], segs[3]) end
  if coll == "deletedsecrets" and #segs <= 3 then return deleted_secrets(ctx, segs[2], segs[3]) end
  if coll == "certificates" and #segs <= 3 then return certificates(ctx, segs[2], segs[3]) end
  fail(404, "NotFound", "The requested resource does not exist on this vault: " .. path)
end

function M.handle(sim, req)
  local path, q = util.split_query(req)
  local host = (req.host or util.header(req, "host") or ""):lower():gsub(":%d+$", "")
  local ctx = { sim = sim, req = req, q = q, method = req.method, request_id = sim.rng:guid() }
  local ok, res = pcall(function()
    local where = find_vault(sim.state, host)
    if not where then fail(404, "VaultNotFound", "No vault is registered for host '" .. host .. "'.") end
    ctx.where, ctx.vault = where, where.vault
    local tenant_id = where.vault.properties.tenantId
    local claims = sim:auth(req, AUDIENCES)
    if not claims then
      fail(401, "Unauthorized", util.header(req, "authorization")
        and "AKV10022: Invalid audience or the token could not be validated."
        or "AKV10000: Request is missing a Bearer or PoP token.", nil,
        { ["www-authenticate"] = 'Bearer authorization="https://login.microsoftonline.com/' .. tenant_id
          .. '", resource="https://vault.azure.net"' })
    end
    if claims.tid ~= tenant_id then
      fail(401, "Unauthorized", "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/"
        .. tenant_id .. "/, found https://sts.windows.net/" .. tostring(claims.tid) .. "/.", nil,
        { ["www-authenticate"] = 'Bearer authorization="https://login.microsoftonline.com/' .. tenant_id
          .. '", resource="https://vault.azure.net"' })
    end
    ctx.claims = claims
    if q["api-version"] == nil then
      fail(400, "BadParameter", "The 'api-version' query parameter is missing.")
    end
    if where.vault.provisioningState and where.vault.provisioningState ~= "Succeeded" then
      -- the DNS name is being registered: the vault is not reachable yet
      fail(404, "VaultNotFound", "The vault '" .. where.name .. "' is not provisioned yet.")
    end
    local body, err = util.json_body(req)
    if err then fail(400, "BadParameter", "The request body is not valid JSON: " .. tostring(err)) end
    ctx.json = body
    return route(ctx, path)
  end)
  if ok then return res end
  if getmetatable(res) ~= KvError then error(res, 0) end
  local err = { code = res.code, message = res.message }
  if res.inner then err.innererror = { code = res.inner } end
  return response(ctx, res.status, { error = err }, res.headers)
end

return M
