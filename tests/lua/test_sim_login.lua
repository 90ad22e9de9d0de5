-- The simulated token service (t2t.sim.login), called directly: handle(sim, req) over a seeded
-- pair with a real sim context (its own token key).  One test per AADSTS case of wire.md §1.8,
-- the §1.1 error shape, assertions (PS256/RS256, wrong key, stale, replay, audience), device
-- code, refresh tokens and admin consent.
local lu = require "luaunit"
local cjson = require "cjson"
local model = require "t2t.sim.model"
local seed = require "t2t.sim.seed"
local context = require "t2t.sim.context"
local login = require "t2t.sim.login"
local crypto = require "t2t.crypto"
local jwt = require "t2t.jwt"

local GUIDP = "%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x"
local HOST = "login.microsoftonline.com"
local GRAPH = "https://graph.microsoft.com/.default"

local L = {}           -- shared fixture: one sim, keys made once

local function fixture()
  if L.sim then return L end
  local state = seed.pair { users = 2, seed = 3 }
  local clock = { t = os.time() }
  L.clock = clock
  L.sim = context.new { state = state, seed = 3, now = function() return clock.t end }
  L.src = state.tenants[state.pair.source]
  L.tgt = state.tenants[state.pair.target]
  local a = L.src.seeded.admin_app
  L.app = L.src.dir.objects[a.object_id]
  L.app_id, L.sp_id = a.app_id, a.sp_id
  L.secret = L.app.passwordCredentials[1]._secret
  -- the seeded secret is valid for two years from 2023-12; keep the tests independent of today
  L.app.passwordCredentials[1].endDateTime = clock.t + 86400 * 365
  L.cert, L.key = crypto.new_cert { subject = "CN=t2t-test", key_type = "rsa", days = 30 }
  L.cert2, L.key2 = crypto.new_cert { subject = "CN=t2t-other", key_type = "rsa", days = 30 }
  L.app.keyCredentials = { { keyId = "k1", type = "AsymmetricX509Cert", usage = "Verify",
    key = crypto.base64_encode(L.cert:der()), startDateTime = clock.t - 86400, endDateTime = clock.t + 86400 * 30 } }
  return L
end

local function form(t)
  local out = {}
  for k, v in pairs(t) do
    out[#out + 1] = k .. "=" .. tostring(v):gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", c:byte()) end)
  end
  return table.concat(out, "&")
end

local function call(method, path, fields, headers)
  local h = headers or {}
  h.host = HOST
  local q = path:match("%?(.*)$") or ""
  local args = {}
  for k, v in q:gmatch("([^&=]+)=([^&]*)") do args[k] = v end
  local req = { method = method, host = HOST, path = path:gsub("%?.*$", ""), query = q, args = args,
                headers = h, body = fields and form(fields) or "" }
  local r = login.handle(L.sim, req)
  local ok, doc = pcall(cjson.decode, type(r.body) == "string" and r.body or "")
  if type(r.body) == "table" then doc, ok = r.body, true end
  return r, ok and doc or nil
end

local function token_req(tenant, fields, headers)
  return call("POST", "/" .. tenant .. "/oauth2/v2.0/token", fields, headers)
end

local function secret_req(o)
  o = o or {}
  return token_req(o.tenant or L.src.id, { client_id = o.client_id or L.app_id, scope = o.scope or GRAPH,
    client_secret = o.secret or L.secret, grant_type = "client_credentials" })
end

-- the wire.md §1.1 error shape, exactly
local function assert_aad(r, doc, status, err, code)
  lu.assertEquals(r.status, status)
  lu.assertNotNil(doc, "error body is JSON")
  local keys = {}
  for k in pairs(doc) do keys[#keys + 1] = k end
  table.sort(keys)
  lu.assertEquals(keys, { "correlation_id", "error", "error_codes", "error_description", "error_uri",
                          "timestamp", "trace_id" })
  lu.assertEquals(doc.error, err)
  lu.assertEquals(doc.error_codes, { code })
  lu.assertStrMatches(doc.error_description, "AADSTS" .. code .. ": .+\r\nTrace ID: " .. GUIDP ..
    "\r\nCorrelation ID: " .. GUIDP .. "\r\nTimestamp: %d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%dZ")
  lu.assertStrMatches(doc.timestamp, "%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%dZ")
  lu.assertEquals(doc.error_uri, "https://login.microsoftonline.com/error?code=" .. code)
  lu.assertStrMatches(doc.trace_id, GUIDP)
  lu.assertStrContains(r.body, '"error_uri":"https://login.microsoftonline.com/error?code=')
  lu.assertNotStrContains(r.body, L.secret)
end

local function assertion(o)
  o = o or {}
  local now = o.now or math.floor(L.clock.t)
  local claims = { aud = o.aud or ("https://" .. HOST .. "/" .. (o.tenant or L.src.id) .. "/oauth2/v2.0/token"),
                   iss = o.iss or L.app_id, sub = o.iss or L.app_id, jti = o.jti or crypto.uuid4(),
                   nbf = now, iat = now, exp = now + 600 }
  local alg = o.alg or "PS256"
  return jwt.encode(claims, o.key or L.key, { alg = alg, cert = o.cert or L.cert })
end

local function assertion_req(a, tenant)
  return token_req(tenant or L.src.id, { client_id = L.app_id, scope = GRAPH, grant_type = "client_credentials",
    client_assertion_type = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", client_assertion = a })
end

TestSimLogin = {}

function TestSimLogin.setUp()
  fixture()
  L.clock.t = os.time()
  L.sim.login_state = nil
end

function TestSimLogin.test_secret_grant_issues_token_with_roles_and_wids()
  local r, doc = secret_req()
  lu.assertEquals(r.status, 200)
  lu.assertEquals(doc.token_type, "Bearer")
  lu.assertEquals(doc.expires_in, 3599)
  local c = assert(L.sim.tokens:verify(doc.access_token))
  lu.assertEquals(c.tid, L.src.id)
  lu.assertEquals(c.aud, "https://graph.microsoft.com")
  lu.assertEquals(c.appid, L.app_id)
  lu.assertEquals(c.oid, L.sp_id)
  lu.assertEquals(c.roles, model.roles_for(L.src, L.sp_id, seed.APP.graph))
  lu.assertEquals(c.wids, { "29232cdf-9323-42fd-ade2-1d097af3e4de" })
  -- by domain, Exchange resource: its own roles
  local r2, d2 = secret_req { tenant = L.src.initial_domain, scope = "https://outlook.office365.com/.default" }
  lu.assertEquals(r2.status, 200)
  local c2 = assert(L.sim.tokens:verify(d2.access_token))
  lu.assertEquals(c2.aud, "https://outlook.office365.com")
  lu.assertEquals(c2.roles, { "Exchange.ManageAsApp" })
end

function TestSimLogin.test_http_basic_client_auth()
  local b = crypto.base64_encode(L.app_id .. ":" .. L.secret)
  local r = token_req(L.src.id, { scope = GRAPH, grant_type = "client_credentials" }, { authorization = "Basic " .. b })
  lu.assertEquals(r.status, 200)
end

function TestSimLogin.test_wrong_secret_7000215()
  local r, doc = secret_req { secret = "not-the-secret-value" }
  assert_aad(r, doc, 401, "invalid_client", 7000215)
  lu.assertStrContains(doc.error_description, "not the client secret ID")
  -- the secret's ID sent instead of its value: the same code
  local r2, d2 = secret_req { secret = L.app.passwordCredentials[1].keyId }
  assert_aad(r2, d2, 401, "invalid_client", 7000215)
end

function TestSimLogin.test_expired_secret_7000222()
  local c = L.app.passwordCredentials[1]
  local old = c.endDateTime
  c.endDateTime = L.clock.t - 10
  local r, doc = secret_req()
  c.endDateTime = old
  assert_aad(r, doc, 401, "invalid_client", 7000222)
end

function TestSimLogin.test_tenant_errors_90002_900023_9001023()
  local r, doc = secret_req { tenant = "nosuch.onmicrosoft.com" }
  assert_aad(r, doc, 400, "invalid_request", 90002)
  r, doc = secret_req { tenant = "00000000-1111-2222-3333-444444444444" }
  assert_aad(r, doc, 400, "invalid_request", 90002)
  r, doc = secret_req { tenant = "not a tenant" }
  assert_aad(r, doc, 400, "invalid_request", 900023)
  r, doc = secret_req { tenant = "common" }
  assert_aad(r, doc, 400, "invalid_request", 9001023)
end

function TestSimLogin.test_app_not_in_tenant_700016_and_lag()
  local r, doc = secret_req { tenant = L.tgt.id }
  assert_aad(r, doc, 400, "unauthorized_client", 700016)
  lu.assertStrContains(doc.error_description, L.app_id)
  -- a just-created service principal is invisible during the replication-lag window
  local sp = L.src.dir.objects[L.sp_id]
  local created = sp.created
  sp.created = L.clock.t
  L.sim.faults.lag = 30
  local r2, d2 = secret_req()
  L.sim.faults.lag, sp.created = nil, created
  assert_aad(r2, d2, 400, "unauthorized_client", 700016)
end

function TestSimLogin.test_scope_errors()
  local r, doc = secret_req { scope = GRAPH .. " https://outlook.office365.com/.default" }
  assert_aad(r, doc, 400, "invalid_scope", 700022)
  r, doc = secret_req { scope = "nonsense" }
  assert_aad(r, doc, 400, "invalid_scope", 70011)
  r, doc = secret_req { scope = "https://graph.microsoft.com/User.Read" }
  assert_aad(r, doc, 400, "invalid_scope", 1002012)
  r, doc = secret_req { scope = "https://nosuch.example.com/.default" }
  assert_aad(r, doc, 400, "invalid_resource", 500011)
  -- appId form of the resource
  r = secret_req { scope = seed.APP.graph .. "/.default" }
  lu.assertEquals(r.status, 200)
end

function TestSimLogin.test_missing_parameters()
  local r, doc = token_req(L.src.id, { client_id = L.app_id, scope = GRAPH })
  assert_aad(r, doc, 400, "invalid_request", 900144)
  r, doc = token_req(L.src.id, { client_id = L.app_id, scope = GRAPH, grant_type = "client_credentials" })
  assert_aad(r, doc, 401, "invalid_client", 7000218)
  r, doc = token_req(L.src.id, { client_id = L.app_id, scope = GRAPH, grant_type = "password" })
  assert_aad(r, doc, 400, "unsupported_grant_type", 70003)
end

function TestSimLogin.test_disabled_app_7000112()
  local sp = L.src.dir.objects[L.sp_id]
  sp.accountEnabled = false
  local r, doc = secret_req()
  sp.accountEnabled = true
  assert_aad(r, doc, 400, "unauthorized_client", 7000112)
end

function TestSimLogin.test_assertion_ps256_and_rs256()
  local r, doc = assertion_req(assertion())
  lu.assertEquals(r.status, 200, doc and doc.error_description)
  lu.assertEquals(assert(L.sim.tokens:verify(doc.access_token)).appidacr, "2")
  r = assertion_req(assertion { alg = "RS256" })
  lu.assertEquals(r.status, 200)
  -- the tenant's domain in the path and in aud
  r = assertion_req(assertion { tenant = L.src.initial_domain }, L.src.initial_domain)
  lu.assertEquals(r.status, 200)
end

function TestSimLogin.test_assertion_failures()
  -- signed by another key, claiming the registered certificate
  local r, doc = assertion_req(assertion { key = L.key2 })
  assert_aad(r, doc, 401, "invalid_client", 700027)
  lu.assertStrContains(doc.error_description, "signature")
  -- a certificate that is not registered on the app
  r, doc = assertion_req(assertion { key = L.key2, cert = L.cert2 })
  assert_aad(r, doc, 401, "invalid_client", 700027)
  lu.assertStrContains(doc.error_description, "not registered")
  -- stale: an hour old
  r, doc = assertion_req(assertion { now = math.floor(L.clock.t) - 3600 })
  assert_aad(r, doc, 401, "invalid_client", 700024)
  -- audience: another endpoint
  r, doc = assertion_req(assertion { aud = "https://login.microsoftonline.com/common/oauth2/token" })
  assert_aad(r, doc, 401, "invalid_client", 700027)
  -- issuer is not the client
  r, doc = assertion_req(assertion { iss = "11111111-2222-3333-4444-555555555555" })
  assert_aad(r, doc, 401, "invalid_client", 700021)
  -- replayed jti
  local a = assertion { jti = "fixed-jti" }
  lu.assertEquals((assertion_req(a)).status, 200)
  r, doc = assertion_req(a)
  assert_aad(r, doc, 401, "invalid_client", 700027)
  -- malformed
  r, doc = assertion_req("not.a.jwt")
  assert_aad(r, doc, 401, "invalid_request", 50027)
end

local function devicecode(scope, client)
  local r, doc = call("POST", "/" .. L.src.id .. "/oauth2/v2.0/devicecode",
                      { client_id = client or "fb78d390-0c51-40cd-8e17-fdbfab77341b",
                        scope = scope or "https://outlook.office365.com/.default offline_access" })
  lu.assertEquals(r.status, 200, doc and doc.error_description)
  return doc
end

local function poll(d, client)
  return token_req(L.src.id, { grant_type = "urn:ietf:params:oauth:grant-type:device_code",
                               client_id = client or "fb78d390-0c51-40cd-8e17-fdbfab77341b", device_code = d.device_code })
end

function TestSimLogin.test_device_code_flow_and_refresh_token()
  local d = devicecode()
  lu.assertStrMatches(d.user_code, "%u[%u%d]+")
  lu.assertEquals(d.verification_uri, "https://microsoft.com/devicelogin")
  lu.assertEquals(d.interval, 5)
  lu.assertEquals(d.expires_in, 900)
  lu.assertStrContains(d.message, d.user_code)
  local r, doc = poll(d)
  assert_aad(r, doc, 400, "authorization_pending", 70016)
  -- polled again at once: slow_down
  r, doc = poll(d)
  lu.assertEquals(doc.error, "slow_down")
  lu.assertEquals(login.approve(L.sim, { user_code = d.user_code:lower() }).status, 200)
  r, doc = poll(d)
  lu.assertEquals(r.status, 200, doc.error_description)
  local c = assert(L.sim.tokens:verify(doc.access_token))
  lu.assertEquals(c.upn, "admin@" .. L.src.initial_domain)
  lu.assertStrContains(c.scp, "Exchange.Manage")
  lu.assertEquals(c.wids, { "62e90394-69f5-4237-9190-012177145e10" })
  lu.assertNotNil(doc.refresh_token)
  -- the code is single-use
  r, doc = poll(d)
  lu.assertEquals(doc.error, "bad_verification_code")
  -- refresh token, for another resource; rotated
  local rt = doc and nil
  local _, first = token_req(L.src.id, { grant_type = "refresh_token", client_id = "fb78d390-0c51-40cd-8e17-fdbfab77341b",
                                         refresh_token = "bogus", scope = GRAPH })
  lu.assertEquals(first.error_codes, { 9002313 })
  lu.assertNil(rt)
end

function TestSimLogin.test_refresh_token_rotation_and_other_resource()
  local d = devicecode()
  login.approve(L.sim, { user_code = d.user_code })
  local _, doc = poll(d)
  local rt = doc.refresh_token
  local r, d2 = token_req(L.src.id, { grant_type = "refresh_token", client_id = "fb78d390-0c51-40cd-8e17-fdbfab77341b",
                                      refresh_token = rt, scope = GRAPH .. " offline_access" })
  lu.assertEquals(r.status, 200, d2.error_description)
  lu.assertEquals(assert(L.sim.tokens:verify(d2.access_token)).aud, "https://graph.microsoft.com")
  lu.assertNotEquals(d2.refresh_token, rt)
  r, doc = token_req(L.src.id, { grant_type = "refresh_token", client_id = "fb78d390-0c51-40cd-8e17-fdbfab77341b",
                                 refresh_token = rt, scope = GRAPH })
  assert_aad(r, doc, 400, "invalid_grant", 9002313)
end

function TestSimLogin.test_device_code_declined_expired_and_confidential_app()
  local d = devicecode()
  lu.assertEquals(login.deny(L.sim, { user_code = d.user_code }).status, 200)
  local r, doc = poll(d)
  lu.assertEquals(doc.error, "authorization_declined")
  d = devicecode()
  L.clock.t = L.clock.t + 901
  r, doc = poll(d)
  assert_aad(r, doc, 400, "expired_token", 70019)
  -- our confidential admin app is not a public client
  r, doc = call("POST", "/" .. L.src.id .. "/oauth2/v2.0/devicecode", { client_id = L.app_id, scope = GRAPH })
  assert_aad(r, doc, 401, "invalid_client", 7000218)
  lu.assertEquals(login.approve(L.sim, { user_code = "NOPE" }).status, 404)
end

function TestSimLogin.test_settings_control_lifetime()
  local r = login.control(L.sim, { method = "POST", json = { token_lifetime = 120, device_interval = 1 } }, "/settings")
  lu.assertEquals(r.status, 200)
  local _, doc = secret_req()
  lu.assertEquals(doc.expires_in, 120)
  lu.assertEquals(devicecode().interval, 1)
  lu.assertEquals(login.control(L.sim, { method = "POST", json = { nope = 1 } }, "/settings").status, 400)
end

function TestSimLogin.test_adminconsent_redirect_creates_sp_and_grants()
  local app = L.app
  app.signInAudience = "AzureADMultipleOrgs"
  app.web.redirectUris = { "https://office.com" }
  lu.assertNil(model.sp_by_appid(L.tgt, L.app_id))
  local r = call("GET", "/" .. L.tgt.initial_domain .. "/adminconsent?client_id=" .. L.app_id ..
                 "&redirect_uri=https%3A%2F%2Foffice.com&state=xyz")
  lu.assertEquals(r.status, 302)
  lu.assertEquals(r.headers.location, "https://office.com?tenant=" .. L.tgt.id .. "&state=xyz&admin_consent=True")
  local sp = model.sp_by_appid(L.tgt, L.app_id)
  lu.assertNotNil(sp)
  lu.assertEquals(model.roles_for(L.tgt, sp.id, seed.APP.exo), { "Exchange.ManageAsApp" })
  -- now the app gets tokens in the other tenant
  lu.assertEquals((secret_req { tenant = L.tgt.id }).status, 200)
  -- an unregistered redirect
  local r2, d2 = call("GET", "/" .. L.tgt.id .. "/adminconsent?client_id=" .. L.app_id .. "&redirect_uri=https%3A%2F%2Fevil.example")
  lu.assertEquals(r2.status, 400)
  lu.assertEquals(d2.error_codes, { 50011 })
  model.remove_object(L.sim.state, L.tgt, sp.id)
  app.signInAudience = "AzureADMyOrg"
end

function TestSimLogin.test_discovery_and_fault_shape()
  local r, doc = call("GET", "/" .. L.src.id .. "/v2.0/.well-known/openid-configuration")
  lu.assertEquals(r.status, 200)
  lu.assertEquals(doc.token_endpoint, "https://" .. HOST .. "/" .. L.src.id .. "/oauth2/v2.0/token")
  local f = login.fault(L.sim, { headers = {} }, 429)
  lu.assertEquals(f.status, 429)
  lu.assertNotNil(f.headers["retry-after"])
  lu.assertEquals(cjson.decode(f.body).error, "temporarily_unavailable")
end
