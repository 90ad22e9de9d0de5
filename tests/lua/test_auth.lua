-- t2t.auth and t2t.config units: the cloud matrix, refresh-before-expiry math, the 0600 token
-- cache, AADSTS -> message table, secret references, Azure Identity environment variables,
-- credential behaviour over a scripted login client (device code polling, on_401, PS256 ->
-- RS256 fallback, one request for concurrent callers), and the config file validator.
local lu = require "luaunit"
local cjson = require "cjson"
local auth = require "t2t.auth"
local config = require "t2t.config"

local A = {}            -- shared: temp dir, one RSA key/cert

local function tmp(name)
  if not A.dir then
    A.dir = os.tmpname()
    os.remove(A.dir)
    assert(os.execute("mkdir -m 700 " .. A.dir))
    A.cleanup = setmetatable({}, { __gc = function() os.execute("rm -rf '" .. A.dir .. "'") end })
  end
  return A.dir .. "/" .. name
end

local function mode(path)
  local p = io.popen("stat -c %a '" .. path .. "' 2>/dev/null")
  local m = p:read("l")
  p:close()
  return m
end

local function write(path, s)
  local f = assert(io.open(path, "w"))
  f:write(s)
  f:close()
end

local function read(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function keypair()
  if not A.cert then
    local crypto = require "t2t.crypto"
    A.cert, A.key = crypto.new_cert { subject = "CN=t2t-unit", key_type = "rsa", days = 10 }
  end
  return A.cert, A.key
end

-- A scripted login client: script is a list of function(req) -> status, body table.
local function fake_login(script)
  local f = { calls = {}, n = 0 }
  function f:request(o)
    self.n = self.n + 1
    local fields = {}
    for k, v in (o.body or ""):gmatch("([^&=]+)=([^&]*)") do
      fields[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
    end
    self.calls[#self.calls + 1] = { url = o.url, fields = fields }
    if self.delay then require("t2t").sleep(self.delay) end
    local step = script[math.min(self.n, #script)]
    local status, body = step(fields, o)
    return { status = status, body = type(body) == "string" and body or cjson.encode(body), headers = {},
             request_id = "req-" .. self.n }
  end
  return f
end

local function tok(n, expires_in)
  return function() return 200, { token_type = "Bearer", access_token = "tok" .. n, expires_in = expires_in or 3599 } end
end

local function aad_body(err, code, desc)
  return { error = err, error_description = "AADSTS" .. code .. ": " .. desc ..
             "\r\nTrace ID: 0a0a0a0a-0000-0000-0000-000000000001\r\nCorrelation ID: x\r\nTimestamp: 2026-01-01 00:00:00Z",
           error_codes = { code }, timestamp = "2026-01-01 00:00:00Z",
           trace_id = "0a0a0a0a-0000-0000-0000-000000000001", correlation_id = "x",
           error_uri = "https://login.microsoftonline.com/error?code=" .. code }
end

local PROFILE = { tenant = "contoso.onmicrosoft.com", client_id = "11111111-2222-3333-4444-555555555555",
                  secret = "s3cr3t-value-not-logged" }

local function cred_with(script, o)
  o = o or {}
  local login = fake_login(script)
  local p = {}
  for k, v in pairs(o.profile or PROFILE) do p[k] = v end
  local c = assert(auth.credential(p, { login_http = login, cache = o.cache or false, now = o.now,
                                        sleep = o.sleep, prompt = o.prompt }))
  return c, login
end

TestAuth = {}

function TestAuth.test_cloud_matrix()
  for _, name in ipairs { "global", "gcc", "usgov", "usgovhigh", "dod", "china" } do
    local ep = assert(auth.endpoints(name))
    for _, k in ipairs { "login", "graph", "exo", "arm", "vault", "vault_suffix" } do
      lu.assertNotNil(ep[k], name .. "." .. k)
    end
  end
  lu.assertEquals(auth.endpoints("dod").graph, "https://dod-graph.microsoft.us")
  lu.assertEquals(auth.endpoints("dod").exo, "https://outlook-dod.office365.us")
  lu.assertEquals(auth.endpoints("usgovhigh").login, "https://login.microsoftonline.us")
  lu.assertEquals(auth.endpoints("china").vault_suffix, ".vault.azure.cn")
  lu.assertEquals(auth.endpoints().exo, require("t2t.exo").HOSTS.global)
  for name, host in pairs(require("t2t.exo").HOSTS) do
    lu.assertEquals(auth.endpoints(name).exo, host, "exo.HOSTS agrees for " .. name)
  end
  local none, err = auth.endpoints("mars")
  lu.assertNil(none)
  lu.assertStrContains(err, "unknown cloud 'mars'")
  lu.assertEquals(auth.cloud_of_login("https://login.microsoftonline.us/"), "usgov")
  -- resources
  lu.assertEquals(auth.resource("graph"), "https://graph.microsoft.com")
  lu.assertEquals(auth.resource("exchange", "dod"), "https://outlook-dod.office365.us")
  lu.assertEquals(auth.resource("keyvault", "usgov"), "https://vault.usgovcloudapi.net")
  lu.assertEquals(auth.resource("https://graph.microsoft.com/.default"), "https://graph.microsoft.com")
  lu.assertEquals(auth.scope("arm", "china"), "https://management.chinacloudapi.cn/.default")
  lu.assertNil((auth.resource("bogus")))
end

function TestAuth.test_refresh_before_expiry_math()
  lu.assertEquals(auth.refresh_at(1000, 3599), 1000 + 3599 - 300)
  lu.assertEquals(auth.refresh_at(1000, 3599, 60), 1000 + 3599 - 60)
  lu.assertEquals(auth.refresh_at(1000, 10), 1005)        -- short lifetimes: half-way
  lu.assertEquals(auth.refresh_at(0, 600), 300)
end

function TestAuth.test_cache_file_0600_dir_0700_atomic_merge()
  local path = tmp("cache/deeper/t2t/tokens.json")
  assert(auth.cache_update(path, { a = { access_token = "x", expires_at = 2e9, refresh_at = 2e9 - 300 } }, 1000))
  lu.assertEquals(mode(path), "600")
  lu.assertEquals(mode(tmp("cache/deeper/t2t")), "700")
  assert(auth.cache_update(path, { b = { access_token = "y", expires_at = 1500 }, c = { refresh_token = "rt" } }, 1000))
  local e = auth.cache_read(path)
  lu.assertEquals(e.a.access_token, "x")
  lu.assertEquals(e.b.access_token, "y")
  -- expired access tokens are dropped on the next write; refresh tokens stay; false deletes
  assert(auth.cache_update(path, { a = false }, 2000))
  e = auth.cache_read(path)
  lu.assertNil(e.a)
  lu.assertNil(e.b)
  lu.assertEquals(e.c.refresh_token, "rt")
  lu.assertEquals(mode(path), "600")
  local p = io.popen("ls -a '" .. tmp("cache/deeper/t2t") .. "'")
  local names = p:read("a")
  p:close()
  lu.assertNotStrContains(names, ".tokens.")             -- no temp file left behind
  -- a world-readable old file is replaced by a 0600 one
  os.execute("chmod 644 '" .. path .. "'")
  assert(auth.cache_update(path, {}, 2000))
  lu.assertEquals(mode(path), "600")
  lu.assertEquals(auth.cache_read(tmp("nope.json")), {})
end

-- Token-endpoint errors are classified; only throttled and transient ones are worth a retry.
function TestAuth.test_token_errors_are_classified()
  local cases = {
    { { error = "invalid_client", error_codes = { 7000215 } }, 401, "credentials", false },
    { { error = "invalid_client", error_codes = { 7000222 } }, 401, "credentials", false },
    { { error = "invalid_grant", error_codes = { 65001 } }, 400, "consent", false },
    { { error = "invalid_request", error_codes = { 90002 } }, 400, "tenant", false },
    { { error = "unauthorized_client", error_codes = { 700016 } }, 400, "app", false },
    { { error = "temporarily_unavailable" }, 503, "transient", true },
    { { error = "server_error" }, 500, "transient", true },
    { {}, 429, "throttled", true },
  }
  for _, c in ipairs(cases) do
    local e = auth.explain(c[1], c[2], { client_id = "app", tenant = "t" })
    lu.assertEquals(e.kind, c[3], tostring(e))
    lu.assertEquals(e.retryable, c[4], tostring(e))
  end
end

function TestAuth.test_aadsts_messages_say_what_to_fix()
  local ctx = { client_id = "APPID", tenant = "contoso.onmicrosoft.com", cloud = "global" }
  local cases = {
    { 7000215, "invalid_client", 401, { "Value", "not its Secret ID" } },
    { 7000222, "invalid_client", 401, { "expired", "make a new one" } },
    { 700016, "unauthorized_client", 400, { "'APPID' is not in tenant", "admin consent", "replication" } },
    { 700027, "invalid_client", 401, { "certificate", "upload" } },
    { 90002, "invalid_request", 400, { "not found", "cloud", "typo" } },
    { 500011, "invalid_resource", 400, { "not found in tenant", "provisioned" } },
    { 700022, "invalid_scope", 400, { "more than one resource" } },
    { 65001, "invalid_grant", 400, { "consent" } },
    { 700024, "invalid_client", 401, { "clock" } },
  }
  for _, c in ipairs(cases) do
    local e = auth.explain(aad_body(c[2], c[1], "service text"), c[3], ctx)
    lu.assertEquals(e.code, "AADSTS" .. c[1])
    lu.assertEquals(e.aadsts, c[1])
    lu.assertEquals(e.error, c[2])
    lu.assertEquals(e.status, c[3])
    lu.assertEquals(e.service, "login")
    lu.assertEquals(e.request_id, "0a0a0a0a-0000-0000-0000-000000000001")
    lu.assertFalse(e.retryable)
    lu.assertEquals(tostring(e), e.message)
    lu.assertStrContains(e.message, "AADSTS" .. c[1])
    lu.assertStrContains(e.message, "trace id 0a0a0a0a")
    for _, w in ipairs(c[4]) do lu.assertStrContains(e.message, w) end
  end
  -- the two secret cases are told apart
  local wrong = auth.explain(aad_body("invalid_client", 7000215, "x"), 401, ctx).message
  local expired = auth.explain(aad_body("invalid_client", 7000222, "x"), 401, ctx).message
  lu.assertNotEquals(wrong, expired)
  -- unknown code: the service's own first line; 5xx and temporarily_unavailable are retryable
  local u = auth.explain(aad_body("invalid_request", 123456, "Something odd"), 400, ctx)
  lu.assertStrContains(u.message, "Something odd")
  lu.assertTrue(auth.explain(aad_body("temporarily_unavailable", 90033, "x"), 503, ctx).retryable)
  -- no body at all
  lu.assertStrContains(auth.explain(nil, 502, ctx).message, "HTTP 502")
end

function TestAuth.test_secret_references()
  lu.assertTrue(auth.is_ref("env:HOME"))
  lu.assertTrue(auth.is_ref("file:/x"))
  lu.assertFalse(auth.is_ref("plain"))
  lu.assertEquals(auth.read_ref("env:HOME"), os.getenv("HOME"))
  local v, err = auth.read_ref("env:T2T_SURELY_NOT_SET_12345", "client secret")
  lu.assertNil(v)
  lu.assertStrContains(err, "T2T_SURELY_NOT_SET_12345 is not set")
  local f = tmp("secret.txt")
  write(f, "first-line-secret\nsecond\n")
  lu.assertEquals(auth.read_ref("file:" .. f), "first-line-secret")
  lu.assertStrContains(select(2, auth.read_ref("file:" .. tmp("missing"))), "cannot read")
  -- a value read is registered for redaction
  lu.assertEquals(require("t2t.log").redact("x first-line-secret y"), "x *** y")
end

function TestAuth.test_azure_identity_environment()
  local f = tmp("env-secret")
  write(f, "")
  local cmd = "AZURE_TENANT_ID=contoso.onmicrosoft.com AZURE_CLIENT_ID=abc AZURE_CLIENT_SECRET=shh-very-secret " ..
    "AZURE_AUTHORITY_HOST=https://login.microsoftonline.us build/t2t -e " ..
    "'local c = assert(require(\"t2t.auth\").from_env()); print(c.kind, c.cloud, c.tenant, c.client_id, tostring(c))' 2>&1"
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  lu.assertStrContains(out, "secret\tusgov\tcontoso.onmicrosoft.com\tabc")
  lu.assertNotStrContains(out, "shh-very-secret")
  p = io.popen("AZURE_TENANT_ID=t AZURE_CLIENT_ID=abc AZURE_CLIENT_CERTIFICATE_PATH=/nonexistent.pem " ..
    "build/t2t -e 'print(select(2, require(\"t2t.auth\").from_env()))' 2>&1")
  out = p:read("a")
  p:close()
  lu.assertStrContains(out, "/nonexistent.pem")
  p = io.popen("env -u AZURE_TENANT_ID build/t2t -e 'print(select(2, require(\"t2t.auth\").from_env()))' 2>&1")
  out = p:read("a")
  p:close()
  lu.assertStrContains(out, "AZURE_TENANT_ID")
end

function TestAuth.test_credential_validation_and_no_secret_in_object()
  lu.assertStrContains(select(2, auth.credential({ client_id = "x", secret = "y" })), "tenant")
  lu.assertStrContains(select(2, auth.credential({ tenant = "t", client_id = "x" })), "no credential")
  lu.assertStrContains(select(2, auth.credential({ tenant = "t", secret = "y" })), "client_id")
  lu.assertStrContains(select(2, auth.credential({ tenant = "t", client_id = "x", secret = "y", cloud = "moon" })), "unknown cloud")
  local c = assert(auth.credential(PROFILE, { cache = false }))
  lu.assertNotStrContains(tostring(c), PROFILE.secret)
  local seen = {}
  local function walk(t)
    if seen[t] then return end
    seen[t] = true
    for k, v in pairs(t) do
      lu.assertNotEquals(v, PROFILE.secret, "secret visible in field " .. tostring(k))
      if type(v) == "table" then walk(v) end
    end
  end
  walk(c)
  -- device code without an app: Exchange PowerShell's public client
  local d = assert(auth.credential({ tenant = "t", device_code = true }, { cache = false }))
  lu.assertEquals(d.client_id, auth.PUBLIC_CLIENTS.exo)
end

function TestAuth.test_token_cached_then_refreshed_before_expiry()
  local now = 1e9
  local c, login = cred_with({ tok(1), tok(2) }, { now = function() return now end })
  lu.assertEquals(c:token("graph"), "tok1")
  lu.assertEquals(login.calls[1].url, "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token")
  lu.assertEquals(login.calls[1].fields.scope, "https://graph.microsoft.com/.default")
  lu.assertEquals(login.calls[1].fields.grant_type, "client_credentials")
  lu.assertEquals(login.calls[1].fields.client_secret, PROFILE.secret)
  now = now + 3200
  lu.assertEquals(c:token("graph"), "tok1")
  now = now + 100                                       -- 3300 s: within 300 s of expiry
  lu.assertEquals(c:token("graph"), "tok2")
  lu.assertEquals(login.n, 2)
  -- forced refresh and invalidate
  lu.assertEquals(c:token("graph", { refresh = true }), "tok2")  -- script repeats its last step
  lu.assertEquals(login.n, 3)
  c:invalidate("graph")
  c:token("graph")
  lu.assertEquals(login.n, 4)
  -- one token per resource
  c:token("exo")
  lu.assertEquals(login.calls[5].fields.scope, "https://outlook.office365.com/.default")
end

function TestAuth.test_cache_file_shared_between_credentials()
  local path = tmp("share/tokens.json")
  local c1, l1 = cred_with({ tok(7) }, { cache = path })
  lu.assertEquals(c1:token("graph"), "tok7")
  lu.assertEquals(mode(path), "600")
  local c2, l2 = cred_with({ tok(8) }, { cache = path })
  lu.assertEquals(c2:token("graph"), "tok7")            -- from the file, no request
  lu.assertEquals(l1.n + l2.n, 1)
  lu.assertNotStrContains(read(path), PROFILE.secret)
  c2:invalidate("graph")
  lu.assertNil(auth.cache_read(path)[c2:key("https://graph.microsoft.com")])
end

function TestAuth.test_concurrent_callers_share_one_request()
  local t2t = require "t2t"
  local c, login = cred_with({ tok(1) })
  login.delay = 0.02
  local got = {}
  t2t.run(function()
    local tasks = {}
    for i = 1, 5 do tasks[i] = t2t.spawn(function() got[i] = c:token("graph") end) end
    for i = 1, 5 do assert(tasks[i]:wait()) end
  end)
  lu.assertEquals(login.n, 1)
  for i = 1, 5 do lu.assertEquals(got[i], "tok1") end
end

function TestAuth.test_on_401_hook_and_token_provider()
  local c, login = cred_with({ tok(1), tok(2) })
  local provider = c:token_provider("exo")
  lu.assertEquals(provider(false), "tok1")
  local hook = c:on_401()
  local req = { headers = { Authorization = "Bearer tok1" } }
  lu.assertTrue(hook(req, { status = 401 }))
  lu.assertEquals(req.headers.Authorization, "Bearer tok2")
  lu.assertEquals(provider(false), "tok2")
  -- a request that did not carry one of our tokens is left alone
  lu.assertFalse(hook({ headers = { Authorization = "Bearer someone-else" } }))
  lu.assertFalse(hook({ headers = {} }))
  lu.assertEquals(login.n, 2)
  -- provider(true) forces a new token
  provider(true)
  lu.assertEquals(login.n, 3)
end

function TestAuth.test_error_objects_from_the_service()
  local c = cred_with({ function() return 401, aad_body("invalid_client", 7000215, "Invalid client secret provided.") end })
  local tk, err = c:token("graph")
  lu.assertNil(tk)
  lu.assertEquals(err.code, "AADSTS7000215")
  lu.assertEquals(err.error, "invalid_client")
  lu.assertEquals(err.status, 401)
  lu.assertEquals(err.service, "login")
  lu.assertEquals(err.request_id, "0a0a0a0a-0000-0000-0000-000000000001")
  lu.assertFalse(err.retryable)
  lu.assertStrContains(err.message, "not its Secret ID")
  lu.assertNotStrContains(err.message, PROFILE.secret)
  -- a non-JSON answer (wrong host, proxy page) says so
  local c2 = cred_with({ function() return 404, "<html>nope</html>" end })
  local _, e2 = c2:token("graph")
  lu.assertStrContains(e2.message, "without a JSON body")
end

function TestAuth.test_certificate_assertion_claims_and_rs256_fallback()
  local cert, key = keypair()
  local pem = tmp("unit-cred.pem")
  write(pem, key:private_pem() .. cert:pem())
  local jwt = require "t2t.jwt"
  local script = {
    function() return 401, aad_body("invalid_client", 700027, "Client assertion failed signature validation.") end,
    tok(1),
  }
  local c, login = cred_with(script, { profile = { tenant = "tid-1", client_id = "app-1", certificate = pem } })
  lu.assertEquals(c:token("graph"), "tok1")
  local a1 = jwt.decode(login.calls[1].fields.client_assertion)
  local a2 = jwt.decode(login.calls[2].fields.client_assertion)
  lu.assertEquals(login.calls[1].fields.client_assertion_type, "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
  lu.assertEquals(a1.header.alg, "PS256")
  lu.assertEquals(a1.header["x5t#S256"], cert:x5t_s256())
  lu.assertNil(a1.header.x5t)
  lu.assertEquals(a2.header.alg, "RS256")
  lu.assertEquals(a2.header.x5t, cert:x5t())
  local cl = a1.claims
  lu.assertEquals(cl.aud, "https://login.microsoftonline.com/tid-1/oauth2/v2.0/token")
  lu.assertEquals(cl.iss, "app-1")
  lu.assertEquals(cl.sub, "app-1")
  lu.assertEquals(cl.exp - cl.nbf, 600)
  lu.assertEquals(cl.iat, cl.nbf)
  lu.assertNotEquals(cl.jti, a2.claims.jti)
  lu.assertTrue(jwt.verify(login.calls[1].fields.client_assertion, cert, { algs = { "PS256" } }) ~= nil)
  lu.assertEquals(c.alg, "RS256")                       -- remembered
  lu.assertNil(login.calls[1].fields.client_secret)
  -- a key that does not belong to the certificate is refused locally
  local crypto = require "t2t.crypto"
  local other = crypto.generate_key("rsa", 2048)
  local kf = tmp("other.key")
  write(kf, other:private_pem())
  write(tmp("unit.crt"), cert:pem())
  local bad, err = auth.credential({ tenant = "t", client_id = "a", certificate = tmp("unit.crt"), key = kf }, { cache = false })
  lu.assertNil(bad)
  lu.assertStrContains(err, "does not belong")
  A.other_key = other
end

function TestAuth.test_device_code_polling_rules()
  local sleeps, shown = {}, {}
  local dc = { device_code = "DC", user_code = "ABCD", verification_uri = "https://microsoft.com/devicelogin",
               expires_in = 900, interval = 2, message = "open the page and enter ABCD" }
  local pending = function() return 400, aad_body("authorization_pending", 70016, "pending") end
  local slow = function() return 400, aad_body("slow_down", 70016, "slow") end
  local done = function() return 200, { access_token = "dtok", expires_in = 3599, refresh_token = "RT1" } end
  local c, login = cred_with({ function() return 200, dc end, pending, slow, pending, done },
    { profile = { tenant = "t", client_id = "pub", device_code = true },
      sleep = function(s) sleeps[#sleeps + 1] = s end, prompt = function(info) shown[#shown + 1] = info.message end })
  lu.assertEquals(c:token("exo"), "dtok")
  lu.assertEquals(shown, { "open the page and enter ABCD" })          -- once
  lu.assertEquals(sleeps, { 2, 2, 7, 7 })                              -- +5 s after slow_down
  lu.assertEquals(login.calls[1].url, "https://login.microsoftonline.com/t/oauth2/v2.0/devicecode")
  lu.assertEquals(login.calls[1].fields.scope, "https://outlook.office365.com/.default offline_access")
  lu.assertEquals(login.calls[2].fields.grant_type, "urn:ietf:params:oauth:grant-type:device_code")
  -- the next resource comes from the refresh token: no prompt
  local script2 = login
  script2.n = 0
  -- stop conditions
  for _, case in ipairs {
    { "authorization_declined", 70000, "declined" },
    { "expired_token", 70019, "expired" },
    { "bad_verification_code", 70018, "not recognised" },
  } do
    local c2 = cred_with({ function() return 200, dc end,
                           function() return 400, aad_body(case[1], case[2], "x") end },
      { profile = { tenant = "t", client_id = "pub", device_code = true }, sleep = function() end, prompt = function() end })
    local t, err = c2:token("graph")
    lu.assertNil(t)
    lu.assertStrContains(err.message, case[3])
    lu.assertStrContains(err.message, case[1])
  end
end

function TestAuth.test_refresh_token_is_rotated_and_used_for_other_resources()
  local seen = {}
  local n = 0
  local rt_step = function(fields)
    seen[#seen + 1] = fields.refresh_token
    n = n + 1
    return 200, { access_token = "rtok" .. n, expires_in = 3599, refresh_token = "RT" .. (n + 1) }
  end
  local c, login = cred_with({ rt_step }, { profile = { tenant = "t", client_id = "pub", refresh_token = "RT1" } })
  lu.assertEquals(c:token("graph"), "rtok1")
  lu.assertEquals(c:token("exo"), "rtok2")
  lu.assertEquals(seen, { "RT1", "RT2" })                              -- the new RT is kept
  lu.assertEquals(login.calls[2].fields.scope, "https://outlook.office365.com/.default offline_access")
  -- an expired RT without device code: a message saying to sign in again
  local c2 = cred_with({ function() return 400, aad_body("invalid_grant", 700082, "expired") end },
                       { profile = { tenant = "t", client_id = "pub", refresh_token = "RTX" } })
  local t, err = c2:token("graph")
  lu.assertNil(t)
  lu.assertStrContains(err.message, "sign in again")
end

TestConfig = {}

local GOOD = [[
-- profiles
return {
  default = "contoso",
  profiles = {
    contoso = { tenant = "contoso.onmicrosoft.com", tenant_id = "6e3a1b7c-0000-4000-8000-000000000001",
                cloud = "global", client_id = "11111111-2222-3333-4444-555555555555", secret = "env:CONTOSO_SECRET" },
    fabrikam = { tenant = "fabrikam.onmicrosoft.com", client_id = "22222222-2222-3333-4444-555555555555",
                 certificate = "/etc/t2t/fabrikam.pem", key = "/etc/t2t/fabrikam.key",
                 key_passphrase = "file:/etc/t2t/pass" },
    gov = { tenant = "agency.onmicrosoft.us", cloud = "usgovhigh", device_code = true },
  },
}
]]

function TestConfig.test_good_file_and_profile_lookup()
  local cfg = assert(config.parse(GOOD, "@cfg.lua"))
  lu.assertEquals(cfg.default, "contoso")
  lu.assertEquals(cfg.profiles.gov.cloud, "usgovhigh")
  local path = tmp("config.lua")
  write(path, GOOD)
  local p = assert(config.profile("fabrikam", path))
  lu.assertEquals(p.name, "fabrikam")
  lu.assertEquals(p.key_passphrase, "file:/etc/t2t/pass")
  lu.assertEquals(assert(config.profile(nil, path)).name, "contoso")
  lu.assertEquals(config.list(path), { "contoso", "fabrikam", "gov" })
  local none, err = config.profile("nope", path)
  lu.assertNil(none)
  lu.assertStrContains(err, "no profile 'nope' (it has: contoso, fabrikam, gov)")
  lu.assertStrContains(select(2, config.load(tmp("absent.lua"))), "cannot read the config file")
  -- selected(): --profile / --config
  lu.assertEquals(assert(config.selected({ profile = "gov", config = path })).cloud, "usgovhigh")
end

function TestConfig.test_code_is_refused_with_the_line()
  local cases = {
    { "return { a = os.getenv('X') }", 1, "variables and globals" },
    { "return {\n  a = 1,\n  b = print('hi'),\n}", 3, "function calls are not allowed" },
    { "return {\n f = function() end }", 2, "functions are not allowed" },
    { "local t = {}\nreturn t", 1, "must start with 'return {'" },
    { "return { a = 1 + 2 }", 1, "'+'" },
    { "return { a = 'x' .. 'y' }", 1, "'..'" },
    { "return {}\nos.exit(1)", 2, "end of the file" },
    { "return { a = ('x'):rep(1e9) }", 1, "function calls" },
    { "return { [os] = 1 }", 1, "variables and globals" },
    { "return { a = \"unterminated }", 1, "unfinished string" },
    { "return setmetatable({}, {})", 1, "'{' expected" },
    { "while true do end", 1, "must start" },
  }
  for _, c in ipairs(cases) do
    local cfg, err = config.parse(c[1], "@my.lua")
    lu.assertNil(cfg, c[1])
    lu.assertStrContains(err, "my.lua:" .. c[2] .. ":")
    lu.assertStrContains(err, c[3])
  end
  -- data in every literal form passes
  lu.assertTrue(config.check("return { profiles = {}, ['default'] = nil; version = -1.5e3, [[x]], 0x1F, 'a\\'b' }"))
  lu.assertNotNil(config.parse("return { profiles = {}, ['default'] = nil; version = -1.5e3 }", "x"))
  lu.assertNotNil(config.parse("\239\187\191return {\r\n profiles = {} }\r\n", "bom"))
end

function TestConfig.test_inline_secrets_are_refused()
  local function one(fields)
    local parts = {}
    for k, v in pairs(fields) do parts[#parts + 1] = k .. " = " .. string.format("%q", v) end
    return config.parse("return { profiles = { p = { tenant = 't', client_id = 'c', " ..
                        table.concat(parts, ", ") .. " } } }", "c.lua")
  end
  local cfg, err = one { secret = "Abc8Q~thisIsWhatASecretLooksLike1234567" }
  lu.assertNil(cfg)
  lu.assertStrContains(err, "secrets are never written in the config file")
  lu.assertStrContains(err, "env:NAME")
  _, err = one { secret = "short" }
  lu.assertStrContains(err, "secrets are never written")
  _, err = one { certificate = "/x.pem", key_passphrase = "hunter2" }
  lu.assertStrContains(err, "key_passphrase")
  _, err = one { certificate = "-----BEGIN PRIVATE KEY-----\nMIIE..." }
  lu.assertStrContains(err, "looks like a secret or key written inline")
  _, err = one { device_code = "yes", description = "x" }
  lu.assertStrContains(err, "boolean expected")
  _, err = one { secret = "env:S", colud = "global" }
  lu.assertStrContains(err, "unknown field")
  _, err = one { secret = "env:S", device_code = "true" }
  lu.assertNotNil(err)
  lu.assertNotNil(one { secret = "file:~/secret" })
  -- the EXO SecureString key is a public key, named by path; inline PEM is refused like any PEM
  lu.assertEquals(one({ secret = "env:S", exo_securestring_key = "/etc/t2t/exo-securestring.xml" })
                    .profiles.p.exo_securestring_key, "/etc/t2t/exo-securestring.xml")
  _, err = one { secret = "env:S", exo_securestring_key = "-----BEGIN PUBLIC KEY-----\nMIIB" }
  lu.assertStrContains(err, "looks like a secret or key written inline")
  _, err = config.parse("return { profiles = { p = { tenant = 't', client_id = 'c' } } }", "c.lua")
  lu.assertStrContains(err, "no credential")
  _, err = config.parse("return { default = 'x', profiles = {} }", "c.lua")
  lu.assertStrContains(err, "names no profile")
  -- dns: the resolver for every lookup of a run with this config, as --dns takes it
  lu.assertEquals(config.parse("return { dns = '127.0.0.1:5353', profiles = {} }", "c.lua").dns, "127.0.0.1:5353")
  _, err = config.parse("return { dns = 5353, profiles = {} }", "c.lua")
  lu.assertStrContains(err, "c.lua: dns = the DNS servers every lookup uses")
  _, err = config.parse("return { dnss = '1.1.1.1', profiles = {} }", "c.lua")
  lu.assertStrContains(err, "unknown top-level field 'dnss' (profiles, default, dns)")
end
