-- t2t.sim.login: the simulated Entra ID token service (login.microsoftonline.com, wire.md §1).
--   POST /{tenant}/oauth2/v2.0/token        client_credentials (secret | assertion),
--                                           device_code, refresh_token
--   POST /{tenant}/oauth2/v2.0/devicecode   start a device-code sign-in
--   GET  /{tenant}/adminconsent             admin consent (redirect, §1.9)
--   GET  /{tenant}/v2.0/.well-known/openid-configuration, /{tenant}/discovery/v2.0/keys
-- Hooks: approve/deny (POST /_sim/device/approve|deny {user_code, user?}) and control
-- (/_sim/svc/login/settings {token_lifetime, device_interval, device_expires_in}).
-- Errors are exactly the §1.1 shape.  Tokens come from sim.tokens with roles from the model
-- (model.roles_for) and wids from t2t.sim.pim at the simulated time of issue (PIM activations
-- and expiries included).  Sign-in state (device codes, refresh tokens, seen assertion ids)
-- lives beside the state, not in it: it does not survive a restart.
local cjson = require "cjson"
local model = require "t2t.sim.model"
local pim = require "t2t.sim.pim"

local M = {}

local DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
local JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
local VERIFY_URI = "https://microsoft.com/devicelogin"
local SKEW = 300                                  -- clock skew allowed on assertions, s
-- First-party public clients (wire.md §1.4) that may use the device-code flow.
M.PUBLIC_CLIENTS = {
  ["fb78d390-0c51-40cd-8e17-fdbfab77341b"] = true, ["14d82eec-204b-4c2f-b7e8-296a70dab67e"] = true,
  ["04b07795-8ddb-461a-bbee-02f9e1bf7b46"] = true, ["a0c73c16-a7e3-4564-9a95-2bdf47383716"] = true,
}
local GUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"

-- The service's own state beside the model.
local function st(sim)
  local s = sim.login_state
  if not s then
    s = { devices = {}, by_user_code = {}, rts = {}, jtis = {}, njti = 0, certs = {}, settings = {} }
    sim.login_state = s
  end
  return s
end

local function setting(sim, name, default)
  local v = st(sim).settings[name]
  if v == nil and name == "token_lifetime" then v = sim:fault("token_lifetime", "login") end
  return v or default
end

---------------------------------------------------------------------------------------------
-- Responses.

local function timestamp(sim) return os.date("!%Y-%m-%d %H:%M:%SZ", math.floor(sim:now())) end

-- JSON with keys in the given order (the service's own order), "/" unescaped.
local function ordered_json(t, keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = t[k]
    if v ~= nil then
      local enc = getmetatable(v) == model.ARRAY_MT and (#v == 0 and "[]" or cjson.encode(v)) or cjson.encode(v)
      parts[#parts + 1] = cjson.encode(k) .. ":" .. enc
    end
  end
  return (("{" .. table.concat(parts, ",") .. "}"):gsub("\\/", "/"))
end

local ERROR_KEYS = { "error", "error_description", "error_codes", "timestamp", "trace_id",
                     "correlation_id", "error_uri" }

local function correlation(req)
  local h = req.headers or {}
  local c = h["client-request-id"]
  if type(c) == "string" and c:match(GUID) then return c:lower() end
end

-- aad(sim, req, status, error, code, description) -> the wire.md §1.1 error response.
local function aad(sim, req, status, err, code, desc)
  local trace, corr, ts = sim:guid(), correlation(req) or sim:guid(), timestamp(sim)
  local body = {
    error = err,
    error_description = string.format("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
                                      code, desc, trace, corr, ts),
    error_codes = { code }, timestamp = ts, trace_id = trace, correlation_id = corr,
    error_uri = "https://login.microsoftonline.com/error?code=" .. code,
  }
  return { status = status, body = ordered_json(body, ERROR_KEYS),
           headers = { ["content-type"] = "application/json; charset=utf-8",
                       ["cache-control"] = "no-store, no-cache", ["x-ms-request-id"] = trace,
                       ["client-request-id"] = corr } }
end
M.aad = aad

-- Device-flow errors: the RFC 8628 error names (no AADSTS code for slow_down/declined).
local function device_error(sim, req, err, code, desc)
  return aad(sim, req, 400, err, code, desc)
end

local function ok(body)
  return { status = 200, body = body,
           headers = { ["content-type"] = "application/json; charset=utf-8", ["cache-control"] = "no-store, no-cache" } }
end

---------------------------------------------------------------------------------------------
-- Request parsing.

local function urldecode(s)
  s = s:gsub("+", " ")
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function parse_form(body)
  local out = {}
  for pair in (body or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    if k and k ~= "" then out[urldecode(k)] = urldecode(v) end
  end
  return out
end
M.parse_form = parse_form

local function b64decode(s)
  local ok_c, crypto = pcall(require, "t2t.crypto")
  return ok_c and crypto.base64_decode(s) or nil
end

-- HTTP Basic client authentication (wire.md §1.2): client_id and secret form-encoded first.
local function basic_auth(req)
  local h = req.headers and req.headers.authorization
  local b = h and h:match("^[Bb]asic%s+(%S+)")
  local raw = b and b64decode(b)
  if not raw then return nil end
  local id, secret = raw:match("^([^:]*):(.*)$")
  if not id then return nil end
  return urldecode(id), urldecode(secret)
end

-- Tenant in the path: GUID or domain; "common" & co. are reported to the caller.
local SPECIAL = { common = true, organizations = true, consumers = true }

local function find_tenant(sim, key)
  key = (key or ""):lower()
  if key:match(GUID) then return sim.state.tenants[key] end
  local id = sim.state.domains[key]
  return id and sim.state.tenants[id] or nil
end

local function tenant_or_error(sim, req, key, grant)
  local lk = key:lower()
  if SPECIAL[lk] then
    if grant == "client_credentials" then
      return nil, aad(sim, req, 400, "invalid_request", 9001023,
        "The grant type is not supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.")
    end
    return nil, nil, lk
  end
  if not (lk:match(GUID) or lk:match("^[%w%-]+%.[%w%-%.]+$")) then
    return nil, aad(sim, req, 400, "invalid_request", 900023,
      string.format("Specified tenant identifier '%s' is neither a valid DNS name, nor a valid external domain.", key))
  end
  local t = find_tenant(sim, lk)
  if not t then
    return nil, aad(sim, req, 400, "invalid_request", 90002,
      string.format("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant.", key))
  end
  return t
end

-- The service principal with servicePrincipalName `want` (lower case, no trailing "/"): one
-- scan of the directory per tenant and name, then cached beside the state (a 100k-user tenant
-- would otherwise be scanned by every token request).  A cached id is checked before use.
local function sp_by_name(sim, t, want)
  local cache = st(sim).spn
  if not cache then cache = setmetatable({}, { __mode = "k" }); st(sim).spn = cache end
  local ct = cache[t]
  if not ct then ct = {}; cache[t] = ct end
  local function names(o)
    if o["@odata.type"] ~= model.ODATA.servicePrincipal then return false end
    for _, n in ipairs(o.servicePrincipalNames or {}) do
      if n:lower():gsub("/+$", "") == want then return true end
    end
    return false
  end
  local id = ct[want]
  local o = id and t.dir.objects[id]
  if o and names(o) then return o end
  for oid, x in pairs(t.dir.objects) do
    if names(x) then ct[want] = oid; return x end
  end
  return nil
end

-- scope -> resource SP, aud, the other scopes | nil, error response.  One resource only.
local function resource_of(sim, req, t, scope, app_only)
  if not scope or scope:match("^%s*$") then
    return nil, aad(sim, req, 400, "invalid_request", 900144,
      "The request body must contain the following parameter: 'scope'.")
  end
  local res_uri, names = nil, {}
  for s in scope:gmatch("%S+") do
    local r, perm = s:match("^(.-)/([^/]*)$")
    if not r or r == "" or r == "https:" then
      if s == "offline_access" or s == "openid" or s == "profile" or s == "email" then goto continue end
      return nil, aad(sim, req, 400, "invalid_scope", 70011,
        string.format("The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.", s))
    end
    if app_only and perm ~= ".default" then
      return nil, aad(sim, req, 400, "invalid_scope", 1002012,
        string.format("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", s))
    end
    r = r:gsub("/+$", "")
    if res_uri and res_uri:lower() ~= r:lower() then
      return nil, aad(sim, req, 400, "invalid_scope", 700022,
        string.format("The provided value for the input parameter scope is not valid because it contains more than one resource. Scope %s is not valid.", scope))
    end
    res_uri = r
    names[#names + 1] = perm
    ::continue::
  end
  if not res_uri then
    return nil, aad(sim, req, 400, "invalid_scope", 70011,
      string.format("The provided value for the input parameter 'scope' is not valid. The scope %s is not valid.", scope))
  end
  -- the resource principal: by appId or by one of its servicePrincipalNames
  local sp = res_uri:match(GUID) and model.sp_by_appid(t, res_uri:lower())
  if not sp then sp = sp_by_name(sim, t, res_uri:lower()) end
  if not sp then
    return nil, aad(sim, req, 400, "invalid_resource", 500011,
      string.format("The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", res_uri, t.display_name or t.name))
  end
  local aud = res_uri
  if aud:match(GUID) then
    for _, n in ipairs(sp.servicePrincipalNames or {}) do
      if n:match("^https://") then aud = n:gsub("/+$", "") break end
    end
  end
  return sp, aud, names
end

---------------------------------------------------------------------------------------------
-- Client authentication.

-- The application object (home tenant) of appId, if any and visible.
local function home_app(sim, appid)
  local ref = sim.state.apps_by_appid[appid]
  if not ref then return nil end
  local home = sim.state.tenants[ref.tenant]
  local app = home and home.dir.objects[ref.id]
  if app and not sim:visible(app) then return nil end
  return app
end

local function app_not_found(sim, req, t, appid)
  return aad(sim, req, 400, "unauthorized_client", 700016,
    string.format("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", appid, t.display_name or t.name))
end

local function check_secret(sim, req, app, appid, secret)
  local crypto = require "t2t.crypto"
  local now = sim:now()
  for _, c in ipairs(app and app.passwordCredentials or {}) do
    if type(c._secret) == "string" and #c._secret == #secret and crypto.equal(c._secret, secret) then
      if type(c.endDateTime) == "number" and now >= c.endDateTime then
        return nil, aad(sim, req, 401, "invalid_client", 7000222,
          string.format("The provided client secret keys for app '%s' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.", appid))
      end
      if type(c.startDateTime) ~= "number" or now >= c.startDateTime - SKEW then return true end
    end
  end
  return nil, aad(sim, req, 401, "invalid_client", 7000215,
    string.format("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", appid))
end

-- The certificate behind a keyCredential (cached by its base64 DER) -> {cert, x5t, x5t_s256}.
local function key_cert(sim, k)
  if type(k.key) ~= "string" then return nil end
  local cache = st(sim).certs
  local c = cache[k.key]
  if c == nil then
    local crypto = require "t2t.crypto"
    local der = crypto.base64_decode(k.key)
    local cert = der and crypto.load_cert(der)
    c = cert and { cert = cert, x5t = cert:x5t(), x5t_s256 = cert:x5t_s256() } or false
    cache[k.key] = c
  end
  return c or nil
end

local iso = require("t2t.time").iso

local function check_assertion(sim, req, t, app, appid, assertion, tenant_key)
  local jwt = require "t2t.jwt"
  local function fail(code, desc, err)
    return nil, aad(sim, req, 401, err or "invalid_client", code, desc)
  end
  local d = jwt.decode(assertion)
  if not d or not d.claims then
    return fail(50027, "JWT token is invalid or malformed.", "invalid_request")
  end
  local h, c = d.header, d.claims
  local thumb = h["x5t#S256"] or h.x5t
  local field = h["x5t#S256"] and "x5t_s256" or "x5t"
  if not thumb then
    return fail(700027, "Client assertion failed signature validation. [Reason - The header has no x5t or x5t#S256 thumbprint.]")
  end
  local crypto = require "t2t.crypto"
  local hexthumb = (crypto.base64url_decode(thumb) and crypto.hex_encode(crypto.base64url_decode(thumb), true)) or thumb
  local found
  for _, k in ipairs(app and app.keyCredentials or {}) do
    if (k.usage == nil or k.usage == "Verify") then
      local kc = key_cert(sim, k)
      if kc and kc[field] == thumb then found = { k = k, c = kc } break end
    end
  end
  if not found then
    return fail(700027, string.format("The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found., Thumbprint of key used by client: '%s', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '%s'. Review the documentation at https://docs.microsoft.com/en-us/graph/deployments if you are using a national cloud.]", hexthumb, appid))
  end
  local now = sim:now()
  local k = found.k
  if type(k.endDateTime) == "number" and now >= k.endDateTime then
    return fail(700027, string.format("Client assertion contains an invalid signature. [Reason - The key used is expired., Thumbprint of key used by client: '%s', Found key 'Start=%s, End=%s']", hexthumb, iso(k.startDateTime or 0), iso(k.endDateTime)))
  end
  local alg = h.alg
  if alg ~= "PS256" and alg ~= "RS256" then
    return fail(700027, "Client assertion failed signature validation. [Reason - The algorithm '" .. tostring(alg) .. "' is not supported.]")
  end
  local pub = found.c.cert:public_key()
  local good = pub:verify(alg, d.signing_input, d.signature)
  pub:close()
  if not good then
    return fail(700027, string.format("Client assertion contains an invalid signature. [Reason - The provided signature value did not match the expected signature value., Thumbprint of key used by client: '%s', Found key 'Start=%s, End=%s']", hexthumb, iso(k.startDateTime or 0), iso(k.endDateTime or 0)))
  end
  if c.iss ~= appid or c.sub ~= appid then
    return fail(700021, "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .")
  end
  local host = req.host ~= "" and req.host or "login.microsoftonline.com"
  local auds = { ["https://" .. host .. "/" .. tenant_key .. "/oauth2/v2.0/token"] = true,
                 ["https://" .. host .. "/" .. t.id .. "/oauth2/v2.0/token"] = true }
  if not auds[c.aud] then
    return fail(700027, string.format("Client assertion failed signature validation. [Reason - The audience '%s' is not the token endpoint 'https://%s/%s/oauth2/v2.0/token'.]", tostring(c.aud), host, tenant_key))
  end
  if type(c.exp) ~= "number" or type(c.nbf) ~= "number" or now > c.exp + SKEW or now < c.nbf - SKEW then
    return fail(700024, string.format("Client assertion is not within its valid time range. Current time: %s, assertion valid from %s, expiry time of assertion %s. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .", iso(now), type(c.nbf) == "number" and iso(c.nbf) or "?", type(c.exp) == "number" and iso(c.exp) or "?"))
  end
  if type(c.jti) ~= "string" or c.jti == "" then
    return fail(700027, "Client assertion failed signature validation. [Reason - The jti claim is missing.]")
  end
  local s = st(sim)
  local jk = appid .. "|" .. c.jti
  if s.jtis[jk] and s.jtis[jk] > now then
    return fail(700027, "Client assertion failed validation. [Reason - The assertion (jti '" .. c.jti .. "') was already used.]")
  end
  if s.njti > 10000 then
    for key, exp in pairs(s.jtis) do if exp <= now then s.jtis[key] = nil; s.njti = s.njti - 1 end end
  end
  if not s.jtis[jk] then s.njti = s.njti + 1 end
  s.jtis[jk] = c.exp + SKEW
  return true
end

---------------------------------------------------------------------------------------------
-- Token issuing.

local function lifetime(sim) return math.floor(setting(sim, "token_lifetime", 3599)) end

local function token_response(sim, claims, extra)
  local life = lifetime(sim)
  claims.lifetime = life
  local tok = sim.tokens:issue(claims)
  local body = { token_type = "Bearer", expires_in = life, ext_expires_in = life, access_token = tok }
  for k, v in pairs(extra or {}) do body[k] = v end
  return ok(body)
end

local function new_rt(sim, rec)
  local s = st(sim)
  local rt = "0.A" .. sim.rng:hex(32) .. "." .. sim.rng:hex(48)
  rec.expires = sim:now() + 90 * 86400
  s.rts[rt] = rec
  return rt
end

-- Delegated scopes for a resource: the requested ones, or for /.default every delegated
-- scope the resource offers (what a first-party public client is pre-consented to).
local function delegated_scp(res_sp, names)
  local offered, out = {}, {}
  for _, s in ipairs(res_sp.oauth2PermissionScopes or {}) do
    if s.isEnabled ~= false and s.value then offered[#offered + 1] = s.value end
  end
  table.sort(offered)
  for _, n in ipairs(names) do
    if n == ".default" then return table.concat(offered, " ") end
    out[#out + 1] = n
  end
  return table.concat(out, " ")
end

-- The claims every v1 access token carries besides the principal's (access-token claims
-- reference): idp, the opaque aio / rh, the client's display name, the tenant's creation time.
local function common_claims(sim, t, client_id)
  local csp = model.sp_by_appid(t, client_id)
  local app = csp or home_app(sim, client_id)
  local rng = sim.tokens.rng or sim.rng        -- its own stream: ids elsewhere do not shift
  return {
    idp = "https://sts.windows.net/" .. t.id .. "/",
    aio = "E2" .. rng:hex(32) .. "=",
    rh = "0.A" .. rng:hex(32) .. ".",
    app_displayname = app and (app.appDisplayName or app.displayName) or nil,
    xms_tcdt = math.floor(t.created or 1500000000),
  }
end

local function user_token(sim, t, user, client_id, res_sp, aud, names, want_rt)
  local claims = common_claims(sim, t, client_id)
  for k, v in pairs {
    tid = t.id, aud = aud, appid = client_id, oid = user.id, upn = user.userPrincipalName,
    unique_name = user.userPrincipalName, name = user.displayName, idtyp = "user", appidacr = "0",
    amr = { "pwd", "mfa" }, scp = delegated_scp(res_sp, names), wids = pim.wids(t, user.id, sim:now()),
    acr = "1", given_name = user.givenName, family_name = user.surname,
    sid = (sim.tokens.rng or sim.rng):guid(), ipaddr = "127.0.0.1",
  } do claims[k] = v end
  local extra = { scope = claims.scp }
  if want_rt then
    extra.refresh_token = new_rt(sim, { tenant = t.id, client_id = client_id, user = user.id })
  end
  return token_response(sim, claims, extra)
end

local function app_token(sim, t, sp, client_id, res_sp, aud, acr)
  local claims = common_claims(sim, t, client_id)
  for k, v in pairs {
    tid = t.id, aud = aud, appid = client_id, oid = sp.id, idtyp = "app", appidacr = acr,
    roles = model.roles_for(t, sp.id, res_sp.appId), wids = pim.wids(t, sp.id, sim:now()),
  } do claims[k] = v end
  return token_response(sim, claims)
end

---------------------------------------------------------------------------------------------
-- Grants.

local function client_credentials(sim, req, f, t, tenant_key)
  local client_id, secret = f.client_id, f.client_secret
  local bid, bsecret = basic_auth(req)
  if bid then client_id, secret = client_id or bid, secret or bsecret end
  if not client_id or client_id == "" then
    return aad(sim, req, 400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
  end
  client_id = client_id:lower()
  local res_sp, aud = resource_of(sim, req, t, f.scope, true)
  if not res_sp then return aud end
  local sp = model.sp_by_appid(t, client_id)
  if not sp or not sim:visible(sp) then return app_not_found(sim, req, t, client_id) end
  local app = home_app(sim, client_id)
  local acr
  if f.client_assertion then
    if f.client_assertion_type ~= JWT_BEARER then
      return aad(sim, req, 400, "invalid_request", 700020,
        "The client_assertion_type must be 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.")
    end
    local good, resp = check_assertion(sim, req, t, app, client_id, f.client_assertion, tenant_key)
    if not good then return resp end
    acr = "2"
  elseif secret then
    local good, resp = check_secret(sim, req, app, client_id, secret)
    if not good then return resp end
    acr = "1"
  else
    return aad(sim, req, 401, "invalid_client", 7000218,
      "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
  end
  if sp.accountEnabled == false then
    return aad(sim, req, 400, "unauthorized_client", 7000112,
      string.format("Application '%s'(%s) is disabled.", client_id, tostring(sp.displayName)))
  end
  return app_token(sim, t, sp, client_id, res_sp, aud, acr)
end

local function device_poll(sim, req, f)
  local s = st(sim)
  local d = f.device_code and s.devices[f.device_code]
  if not d or (f.client_id or ""):lower() ~= d.client_id then
    return device_error(sim, req, "bad_verification_code", 70018,
      "The provided value for the input parameter 'device_code' is not valid.")
  end
  local now = sim:now()
  if now >= d.expires then
    s.devices[f.device_code], s.by_user_code[d.user_code] = nil, nil
    return device_error(sim, req, "expired_token", 70019,
      "Verification code expired. The user didn't complete authentication within the time limit.")
  end
  if d.status == "declined" then
    s.devices[f.device_code], s.by_user_code[d.user_code] = nil, nil
    return device_error(sim, req, "authorization_declined", 70000,
      "The user declined the sign-in request.")
  end
  if d.status ~= "approved" then
    local early = d.last_poll and now - d.last_poll < d.interval * 0.5
    d.last_poll = now
    if early then
      return device_error(sim, req, "slow_down", 70016, "OAuth 2.0 device flow error. Polling too often: slow down.")
    end
    return device_error(sim, req, "authorization_pending", 70016,
      "OAuth 2.0 device flow error. Authorization is pending. Continue polling.")
  end
  s.devices[f.device_code], s.by_user_code[d.user_code] = nil, nil
  local t = sim.state.tenants[d.tenant]
  local user = t and t.dir.objects[d.user]
  if not user then
    return device_error(sim, req, "invalid_grant", 50034, "The user account does not exist in the directory.")
  end
  local res_sp, aud, names = resource_of(sim, req, t, d.scope, false)
  if not res_sp then return aud end
  return user_token(sim, t, user, d.client_id, res_sp, aud, names, d.offline)
end

local function refresh(sim, req, f, t)
  local s = st(sim)
  local rec = f.refresh_token and s.rts[f.refresh_token]
  if not rec then
    return aad(sim, req, 400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
  end
  if (f.client_id or ""):lower() ~= rec.client_id then
    return aad(sim, req, 400, "invalid_grant", 70000, "Provided grant is invalid or malformed.")
  end
  if t and t.id ~= rec.tenant then
    return aad(sim, req, 400, "invalid_grant", 50020, "The refresh token was issued to a different tenant.")
  end
  s.rts[f.refresh_token] = nil                  -- rotated: the client must keep the new one
  if sim:now() >= rec.expires then
    return aad(sim, req, 400, "invalid_grant", 700082,
      "The refresh token has expired due to inactivity. The token was issued on " .. iso(rec.expires - 90 * 86400) .. " and was inactive for 90.00:00:00.")
  end
  local tt = sim.state.tenants[rec.tenant]
  local user = tt and tt.dir.objects[rec.user]
  if not user then
    return aad(sim, req, 400, "invalid_grant", 50034, "The user account does not exist in the directory.")
  end
  local res_sp, aud, names = resource_of(sim, req, tt, f.scope, false)
  if not res_sp then return aud end
  return user_token(sim, tt, user, rec.client_id, res_sp, aud, names, true)
end

local function token(sim, req, tenant_key)
  local f = parse_form(req.body)
  local grant = f.grant_type
  if not grant or grant == "" then
    return aad(sim, req, 400, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
  end
  local t, err = tenant_or_error(sim, req, tenant_key, grant)
  if err then return err end
  if grant == "client_credentials" then return client_credentials(sim, req, f, t, tenant_key) end
  if grant == DEVICE_GRANT then return device_poll(sim, req, f) end
  if grant == "refresh_token" then return refresh(sim, req, f, t) end
  return aad(sim, req, 400, "unsupported_grant_type", 70003,
    string.format("The app requested an unsupported grant type '%s'.", grant))
end

local function user_code(sim)
  local cs = "BCDFGHJKLMNPQRSTVWXZ23456789"
  local out = {}
  for i = 1, 9 do
    local k = sim.rng:int(1, #cs)
    out[i] = cs:sub(k, k)
  end
  return table.concat(out)
end

local function devicecode(sim, req, tenant_key)
  local f = parse_form(req.body)
  local t, err = tenant_or_error(sim, req, tenant_key, "device_code")
  if err then return err end
  local client_id = (f.client_id or ""):lower()
  if client_id == "" then
    return aad(sim, req, 400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
  end
  if not M.PUBLIC_CLIENTS[client_id] then
    local app = home_app(sim, client_id)
    if not app then
      return aad(sim, req, 400, "unauthorized_client", 700016,
        string.format("Application with identifier '%s' was not found in the directory '%s'.", client_id,
                      t and (t.display_name or t.name) or tenant_key))
    end
    if not app.isFallbackPublicClient then
      return aad(sim, req, 401, "invalid_client", 7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
    end
  end
  if t then
    local res_sp, rerr = resource_of(sim, req, t, f.scope, false)
    if not res_sp then return rerr end
  elseif not f.scope or f.scope == "" then
    return aad(sim, req, 400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
  end
  local s = st(sim)
  local code = user_code(sim)
  local dc = "DAQABAAEAAA" .. sim.rng:hex(40)
  local expires_in = math.floor(setting(sim, "device_expires_in", 900))
  local interval = math.floor(setting(sim, "device_interval", 5))
  local d = { client_id = client_id, scope = f.scope, tenant = t and t.id, user_code = code,
              expires = sim:now() + expires_in, interval = interval, status = "pending",
              offline = (" " .. f.scope .. " "):find(" offline_access ", 1, true) ~= nil }
  s.devices[dc], s.by_user_code[code] = d, dc
  return ok {
    user_code = code, device_code = dc, verification_uri = VERIFY_URI, expires_in = expires_in,
    interval = interval,
    message = string.format("To sign in, use a web browser to open the page %s and enter the code %s to authenticate.", VERIFY_URI, code),
  }
end

---------------------------------------------------------------------------------------------
-- Admin consent (wire.md §1.9): the tenant's admin grants the app its application permissions.

local function redirect(url, params)
  local q = {}
  for _, kv in ipairs(params) do
    if kv[2] ~= nil then
      q[#q + 1] = kv[1] .. "=" .. tostring(kv[2]):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end)
    end
  end
  local sep = url:find("?", 1, true) and "&" or "?"
  return { status = 302, headers = { location = url .. sep .. table.concat(q, "&"), ["content-type"] = "text/html" },
           body = "<html><body>Object moved</body></html>" }
end

local function html_error(sim, req, code, desc)
  local r = aad(sim, req, 400, "invalid_request", code, desc)
  r.headers["content-type"] = "application/json; charset=utf-8"
  return r
end

local function grant_consent(sim, t, app)
  local sp = model.sp_by_appid(t, app.appId)
  if not sp then
    sp = model.add_object(sim.state, t, {
      ["@odata.type"] = model.ODATA.servicePrincipal, id = sim:guid(), appId = app.appId,
      displayName = app.displayName, appDisplayName = app.displayName,
      appOwnerOrganizationId = sim.state.apps_by_appid[app.appId].tenant,
      servicePrincipalType = "Application", accountEnabled = true, appRoles = {},
      oauth2PermissionScopes = {}, servicePrincipalNames = { app.appId }, tags = {},
      created = sim:now(), keyCredentials = {}, passwordCredentials = {},
    })
  end
  local have = {}
  for aid in pairs(model.idx(t).ara_by_principal[sp.id] or {}) do
    local a = t.dir.app_role_assignments[aid]
    if a then have[a.resourceId .. "|" .. a.appRoleId] = true end
  end
  for _, rra in ipairs(app.requiredResourceAccess or {}) do
    local res = model.sp_by_appid(t, rra.resourceAppId)
    for _, ra in ipairs(res and rra.resourceAccess or {}) do
      if ra.type == "Role" and not have[res.id .. "|" .. ra.id] then
        model.add_app_role_assignment(t, { id = sim:guid(), appRoleId = ra.id, principalId = sp.id,
          principalType = "ServicePrincipal", principalDisplayName = sp.displayName, resourceId = res.id,
          resourceDisplayName = res.displayName, created = sim:now() })
      end
    end
  end
  return sp
end

local function adminconsent(sim, req, tenant_key)
  local a = {}
  for k, v in pairs(req.args or {}) do               -- a repeated parameter: its first value
    a[k] = type(v) == "table" and v[1] or v
  end
  local client_id = (a.client_id and urldecode(a.client_id) or ""):lower()
  local redir = a.redirect_uri and urldecode(a.redirect_uri)
  local state = a.state and urldecode(a.state)
  local app = client_id ~= "" and home_app(sim, client_id)
  if not app then
    return html_error(sim, req, 700016, string.format("Application with identifier '%s' was not found in the directory.", client_id))
  end
  local registered = false
  for _, u in ipairs(app.web and app.web.redirectUris or {}) do if u == redir then registered = true end end
  if not redir or not registered then
    return html_error(sim, req, 50011, string.format("The redirect URI '%s' specified in the request does not match the redirect URIs configured for the application '%s'.", tostring(redir), client_id))
  end
  local t
  if SPECIAL[tenant_key:lower()] then
    local hint = a.login_hint and urldecode(a.login_hint)
    local dom = hint and hint:match("@(.+)$")
    t = dom and find_tenant(sim, dom)
  else
    t = find_tenant(sim, tenant_key)
  end
  if not t then
    return redirect(redir, { { "error", "invalid_request" },
      { "error_description", "AADSTS90002: Tenant '" .. tenant_key .. "' not found." }, { "state", state } })
  end
  if a.sim_deny then
    return redirect(redir, { { "error", "permission_denied" },
      { "error_description", "AADSTS65004: User declined to consent to access the app." }, { "state", state } })
  end
  if home_app(sim, client_id) and sim.state.apps_by_appid[client_id].tenant ~= t.id
     and app.signInAudience ~= "AzureADMultipleOrgs" and app.signInAudience ~= "AzureADandPersonalMicrosoftAccount" then
    return redirect(redir, { { "error", "invalid_request" },
      { "error_description", "AADSTS50194: Application '" .. client_id .. "' is not configured as a multi-tenant application." },
      { "state", state } })
  end
  grant_consent(sim, t, app)
  return redirect(redir, { { "tenant", t.id }, { "state", state }, { "admin_consent", "True" } })
end

---------------------------------------------------------------------------------------------
-- Discovery.

local function openid(sim, req, tenant_key)
  local t = find_tenant(sim, tenant_key)
  local tid = t and t.id or tenant_key
  local base = "https://" .. (req.host ~= "" and req.host or "login.microsoftonline.com")
  return ok {
    issuer = base .. "/" .. tid .. "/v2.0",
    token_endpoint = base .. "/" .. tenant_key .. "/oauth2/v2.0/token",
    device_authorization_endpoint = base .. "/" .. tenant_key .. "/oauth2/v2.0/devicecode",
    authorization_endpoint = base .. "/" .. tenant_key .. "/oauth2/v2.0/authorize",
    jwks_uri = base .. "/" .. tenant_key .. "/discovery/v2.0/keys",
    token_endpoint_auth_methods_supported = { "client_secret_post", "private_key_jwt", "client_secret_basic" },
    tenant_region_scope = "EU", cloud_instance_name = "microsoftonline.com",
  }
end

---------------------------------------------------------------------------------------------

function M.handle(sim, req)
  local path = req.path
  local tenant_key, rest = path:match("^/([^/]+)(/.*)$")
  if not tenant_key then
    return { status = 404, headers = { ["content-type"] = "text/plain" }, body = "Not Found" }
  end
  tenant_key = urldecode(tenant_key)
  local m = req.method
  if rest == "/oauth2/v2.0/token" and m == "POST" then return token(sim, req, tenant_key) end
  if rest == "/oauth2/v2.0/devicecode" and m == "POST" then return devicecode(sim, req, tenant_key) end
  if rest == "/adminconsent" and m == "GET" then return adminconsent(sim, req, tenant_key) end
  if rest == "/v2.0/.well-known/openid-configuration" and m == "GET" then return openid(sim, req, tenant_key) end
  if (rest == "/discovery/v2.0/keys" or rest == "/discovery/keys") and m == "GET" then
    return ok { keys = { sim.tokens:jwk() } }
  end
  if rest == "/oauth2/v2.0/token" or rest == "/oauth2/v2.0/devicecode" then
    return { status = 405, headers = { ["content-type"] = "text/plain", allow = "POST" }, body = "Method Not Allowed" }
  end
  return { status = 404, headers = { ["content-type"] = "text/plain" }, body = "Not Found" }
end

-- The token endpoint's own throttling shape: 429 with Retry-After and an AADSTS body.
function M.fault(sim, req, status)
  if status == 429 then
    local r = aad(sim, req, 429, "temporarily_unavailable", 50196,
      "The server terminated an operation because it encountered a client request loop. Please contact your app vendor.")
    r.headers["retry-after"] = tostring(math.floor(sim.faults.retry_after or 1))
    return r
  end
  local r = aad(sim, req, status, "temporarily_unavailable", 90033,
    "A transient error has occurred. Please try again.")
  r.headers["retry-after"] = tostring(math.floor(sim.faults.retry_after or 1))
  return r
end

---------------------------------------------------------------------------------------------
-- Hooks for the control API.

local function find_device(sim, body)
  local code = type(body.user_code) == "string" and body.user_code:upper():gsub("[^%w]", "") or ""
  local s = st(sim)
  local dc = s.by_user_code[code]
  return dc and s.devices[dc], code
end

local function json(status, body) return { status = status, body = body } end

-- approve(sim, {user_code, user = UPN?}) -> the device sign-in is approved by that user (default:
-- the tenant's seeded admin).
function M.approve(sim, body)
  local d, code = find_device(sim, body)
  if not d then return json(404, { error = { code = "NotFound", message = "no pending device code " .. code } }) end
  local t, user
  if type(body.user) == "string" then
    local dom = body.user:match("@(.+)$")
    t = dom and find_tenant(sim, dom)
    user = t and model.user_by_upn(t, body.user)
    if not user then return json(404, { error = { code = "NotFound", message = "no user " .. body.user } }) end
    if d.tenant and d.tenant ~= t.id then
      return json(400, { error = { code = "BadRequest", message = body.user .. " is not in the device code's tenant" } })
    end
  else
    t = d.tenant and sim.state.tenants[d.tenant]
    user = t and t.seeded and t.seeded.admin_user and t.dir.objects[t.seeded.admin_user]
    if not user then return json(400, { error = { code = "BadRequest", message = "give user = UPN" } }) end
  end
  d.status, d.tenant, d.user = "approved", t.id, user.id
  return json(200, { approved = true, user = user.userPrincipalName, tenant = t.id })
end

function M.deny(sim, body)
  local d, code = find_device(sim, body)
  if not d then return json(404, { error = { code = "NotFound", message = "no pending device code " .. code } }) end
  d.status = "declined"
  return json(200, { declined = true })
end

-- control: GET|POST /_sim/svc/login/settings {token_lifetime, device_interval,
-- device_expires_in}; GET /_sim/svc/login/devices (pending user codes).
local SETTINGS = { token_lifetime = true, device_interval = true, device_expires_in = true }
function M.control(sim, req, rest)
  local s = st(sim)
  if rest == "/settings" then
    if req.method == "POST" then
      for k, v in pairs(type(req.json) == "table" and req.json or {}) do
        if not SETTINGS[k] then return json(400, { error = { code = "BadRequest", message = "unknown setting " .. tostring(k) } }) end
        if v == cjson.null then s.settings[k] = nil
        elseif type(v) ~= "number" or v <= 0 then
          return json(400, { error = { code = "BadRequest", message = k .. ": a positive number expected" } })
        else s.settings[k] = v end
      end
    end
    return json(200, { token_lifetime = lifetime(sim), device_interval = setting(sim, "device_interval", 5),
                       device_expires_in = setting(sim, "device_expires_in", 900) })
  end
  if rest == "/devices" and req.method == "GET" then
    local out = {}
    for _, d in pairs(s.devices) do
      out[#out + 1] = { user_code = d.user_code, client_id = d.client_id, status = d.status, tenant = d.tenant }
    end
    return json(200, { value = model.array(out) })
  end
  return json(404, { error = { code = "NotFound", message = "no login control route " .. tostring(rest) } })
end

return M
