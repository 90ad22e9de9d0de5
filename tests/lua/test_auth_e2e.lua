-- t2t.auth against the simulator's login service on loopback (real HTTPS, connect_to + CA):
-- secret, certificate (encrypted PEM, PFX, PS256 and RS256) and device-code flows; the AADSTS
-- cases with their messages; tokens refreshed during a long loop of calls (proactively, and
-- once on a 401); and no secret or key material in logs, traces, errors, the simulator's
-- request log or anything but the 0600 token cache -- also through `t2t --log-level trace`.
local lu = require "luaunit"
local cjson = require "cjson"
local t2t = require "t2t"
local auth = require "t2t.auth"
local log = require "t2t.log"
local jwt = require "t2t.jwt"

local E = {}
local GUIDP = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local EXPIRED_SECRET = "Old8Q~expiredSecretValueForTheTest0000000"
local PASSPHRASE = "pass-phrase-for-the-key"

local function write(path, s, m)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
  if m then os.execute("chmod " .. m .. " '" .. path .. "'") end
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

local function mode(path)
  local p = io.popen("stat -c %a '" .. path .. "' 2>/dev/null")
  local m = p:read("l")
  p:close()
  return m
end

-- One simulator for the file: contoso's admin app also gets a registered certificate and an
-- expired second secret.
local function start()
  if E.s then return E end
  local crypto = require "t2t.crypto"
  E.dir = os.tmpname()
  os.remove(E.dir)
  assert(os.execute("mkdir -m 700 " .. E.dir))
  E.cleanup = setmetatable({}, { __gc = function() os.execute("rm -rf '" .. E.dir .. "'") end })
  E.s = assert(require("t2t.sim").start { users = 2, seed = 21, log_errors = false })
  E.cert, E.key = crypto.new_cert { subject = "CN=t2t-e2e", key_type = "rsa", days = 30 }
  E.cert2, E.key2 = crypto.new_cert { subject = "CN=t2t-e2e-unregistered", key_type = "rsa", days = 30 }
  local st = assert(E.s:control("GET", "/_sim/state?secrets=true"))   -- it is PUT back
  local now = os.time()
  for _, t in pairs(st.tenants) do
    if t.name == "contoso" then
      local app = t.dir.objects[t.seeded.admin_app.object_id]
      app.passwordCredentials[1].endDateTime = now + 86400 * 365
      app.passwordCredentials[2] = { keyId = "5b0c6f3e-0000-4000-8000-000000000002", displayName = "old",
        startDateTime = now - 86400 * 800, endDateTime = now - 86400, _secret = EXPIRED_SECRET }
      app.keyCredentials = { { keyId = "5b0c6f3e-0000-4000-8000-000000000003", type = "AsymmetricX509Cert",
        usage = "Verify", key = crypto.base64_encode(E.cert:der()), displayName = "CN=t2t-e2e",
        startDateTime = now - 3600, endDateTime = now + 86400 * 30 } }
    end
  end
  local ok, err = E.s:control("PUT", "/_sim/state", cjson.encode(st))
  assert(ok ~= nil, err)
  E.p = E.s.profile.tenants.contoso
  E.f = E.s.profile.tenants.fabrikam
  E.secret = E.p.client_secret
  E.key_pem = E.key:private_pem()
  E.pem = E.dir .. "/cred.pem"                     -- encrypted key + certificate
  write(E.pem, E.key:private_pem(PASSPHRASE) .. E.cert:pem(), "600")
  E.passfile = E.dir .. "/pass"
  write(E.passfile, PASSPHRASE .. "\n", "600")
  E.pfx = E.dir .. "/cred.pfx"
  write(E.pfx, crypto.pkcs12_export { key = E.key, cert = E.cert, passphrase = PASSPHRASE }, "600")
  E.pem2 = E.dir .. "/other.pem"
  write(E.pem2, E.key2:private_pem() .. E.cert2:pem(), "600")
  return E
end

local function profile(over)
  local p = {}
  for k, v in pairs(E.p) do p[k] = v end
  for k, v in pairs(over or {}) do
    if v == false then p[k] = nil else p[k] = v end
  end
  return p
end

local ncache = 0
local function cred(over, opts)
  opts = opts or {}
  if opts.cache == nil then
    ncache = ncache + 1
    opts.cache = E.dir .. "/cache" .. ncache .. "/t2t/tokens.json"
  end
  return assert(auth.credential(profile(over), opts))
end

local function settings(t) return assert(E.s:control("POST", "/_sim/svc/login/settings", t)) end

-- login requests the simulator saw since sequence n -> count, last sequence
local function logins(since)
  local r = assert(E.s:control("GET", "/_sim/log?since=" .. (since or 0)))
  local n = 0
  for _, e in ipairs(r.value) do
    if e.service == "login" and e.path:find("/token", 1, true) then n = n + 1 end
  end
  return n, r.last
end

TestAuthE2E = {}

function TestAuthE2E.setUp() start() end

-- the simulator goes when this class is done (other files start their own)
function TestAuthE2E.teardownClass()
  if E.s then E.s:stop { save = false } E.s = nil end
end

function TestAuthE2E.test_secret_flow_cache_and_claims()
  local _, mark = logins()
  local c = cred()
  local g = assert(c:token("graph"))
  local x = assert(c:token("exo"))
  local gc, xc = jwt.claims(g), jwt.claims(x)
  lu.assertEquals(gc.tid, E.p.tenant_id)
  lu.assertEquals(gc.aud, "https://graph.microsoft.com")
  lu.assertEquals(gc.appid, E.p.client_id)
  lu.assertEquals(gc.oid, E.p.sp_id)
  lu.assertEquals(xc.aud, "https://outlook.office365.com")
  lu.assertEquals(xc.roles, { "Exchange.ManageAsApp" })
  lu.assertEquals(xc.wids, { "29232cdf-9323-42fd-ade2-1d097af3e4de" })
  lu.assertEquals(c:token("graph"), g)                   -- memory
  lu.assertEquals(mode(c.cache_file), "600")
  lu.assertEquals(mode(c.cache_file:match("^(.*)/[^/]+$")), "700")
  local again = assert(auth.credential(profile(), { cache = c.cache_file }))
  lu.assertEquals(again:token("exo"), x)                  -- the cache file
  lu.assertEquals((logins(mark)), 2)
  lu.assertNotStrContains(read(c.cache_file), E.secret)
  -- by domain instead of GUID; the vault resource exists too
  local d = cred { tenant_id = false, tenant = E.p.initial_domain }
  lu.assertEquals(jwt.claims(assert(d:token("vault"))).aud, "https://vault.azure.net")
end

function TestAuthE2E.test_certificate_flows()
  for _, over in ipairs {
    { certificate = E.pem, key_passphrase = "file:" .. E.passfile },            -- PS256 + x5t#S256
    { certificate = E.pem, key_passphrase = "file:" .. E.passfile, alg = "RS256" },
    { pfx = E.pfx, key_passphrase = "file:" .. E.passfile },
  } do
    over.secret, over.client_secret = false, false
    local c = cred(over)
    lu.assertEquals(c.kind, "certificate")
    local tok, err = c:token("graph")
    lu.assertNotNil(tok, err and err.message)
    lu.assertEquals(jwt.claims(tok).appidacr, "2")
    lu.assertEquals(c.alg, over.alg or "PS256")
  end
  -- an encrypted key without its passphrase is a local, clear error
  local bad, err = auth.credential(profile { secret = false, client_secret = false, certificate = E.pem }, { cache = false })
  lu.assertNil(bad)
  lu.assertStrContains(err, "passphrase")
end

function TestAuthE2E.test_device_code_flow_then_refresh_token()
  settings { device_interval = 1 }
  local shown = {}
  local c = cred({ client_id = false, secret = false, client_secret = false, device_code = true }, {
    prompt = function(info)
      shown[#shown + 1] = info.message
      t2t.spawn(function()
        t2t.sleep(1.3)                                    -- after the first poll: pending, then approved
        assert(E.s:control("POST", "/_sim/device/approve", { user_code = info.user_code }))
      end)
    end })
  local tok, err = c:token("exo")
  lu.assertNotNil(tok, err and err.message)
  local cl = jwt.claims(tok)
  lu.assertEquals(cl.upn, E.p.admin_user)
  lu.assertStrContains(cl.scp, "Exchange.Manage")
  lu.assertEquals(cl.appid, auth.PUBLIC_CLIENTS.exo)
  lu.assertEquals(#shown, 1)
  lu.assertStrContains(shown[1], "https://microsoft.com/devicelogin")
  -- Graph from the refresh token: no second prompt; the rotated refresh token is in the cache
  local g = assert(c:token("graph"))
  lu.assertEquals(jwt.claims(g).aud, "https://graph.microsoft.com")
  lu.assertEquals(#shown, 1)
  local entries = auth.cache_read(c.cache_file)
  lu.assertNotNil(entries[c:rt_key()])
  lu.assertEquals(mode(c.cache_file), "600")
  -- a new credential object (a later run) signs in silently from the cached refresh token
  local later = cred({ client_id = false, secret = false, client_secret = false, device_code = true },
                     { cache = c.cache_file, prompt = function() error("prompted again") end })
  later:invalidate("graph")
  lu.assertNotNil(later:token("graph"))
  settings { device_interval = cjson.null }
end

local function expect(err, code, words)
  lu.assertNotNil(err)
  lu.assertEquals(err.code, code, err.message)
  lu.assertEquals(err.service, "login")
  lu.assertStrMatches(err.request_id, GUIDP)
  lu.assertTrue(err.status == 400 or err.status == 401)
  lu.assertFalse(err.retryable)
  for _, w in ipairs(words) do lu.assertStrContains(err.message, w) end
  lu.assertNotStrContains(err.message, E.secret)
  lu.assertNotStrContains(err.message, EXPIRED_SECRET)
end

function TestAuthE2E.test_each_failure_gives_its_code_and_a_message()
  local nosecret = { secret = false, client_secret = false }
  local function with(base, more)
    local t = {}
    for k, v in pairs(base) do t[k] = v end
    for k, v in pairs(more) do t[k] = v end
    return t
  end
  local cases = {
    { "wrong secret", { client_secret = false, secret = "this-is-not-the-secret" }, nil, "AADSTS7000215", { "Secret ID" } },
    { "expired secret", { client_secret = false, secret = EXPIRED_SECRET }, nil, "AADSTS7000222", { "expired", "make a new one" } },
    { "wrong key", with(nosecret, { certificate = E.pem2 }), nil, "AADSTS700027", { "upload this certificate" } },
    { "stale assertion", with(nosecret, { certificate = E.pem, key_passphrase = "file:" .. E.passfile }),
      { now = function() return os.time() - 3600 end }, "AADSTS700024", { "clock" } },
    { "unknown tenant", { tenant_id = false, tenant = "nosuch.onmicrosoft.com" }, nil, "AADSTS90002",
      { "'nosuch.onmicrosoft.com' was not found in the 'global' cloud" } },
    { "app not in tenant", { tenant_id = E.f.tenant_id }, nil, "AADSTS700016", { "admin consent" } },
  }
  for _, c in ipairs(cases) do
    local cr = cred(c[2], c[3])
    local tok, err = cr:token("graph")
    lu.assertNil(tok, c[1])
    expect(err, c[4], c[5])
  end
  -- two resources in one scope (not expressible through token(): the raw request)
  local c = cred()
  local doc, err = c:client_credentials("https://graph.microsoft.com/.default https://outlook.office365.com/.default")
  lu.assertNil(doc)
  expect(err, "AADSTS700022", { "more than one resource", "one resource's /.default" })
end

function TestAuthE2E.test_token_refreshed_during_a_long_loop()
  settings { token_lifetime = 600 }
  local offset = 0
  local c = cred(nil, { now = function() return auth.now() + offset end })
  local http = c:client { service = "exo" }
  local exo = require("t2t.exo").new { tenant = E.p.tenant_id, http = http, token = c:token_provider("exo") }
  local _, mark = logins()
  for i = 1, 24 do
    local list, err = exo:invoke("Get-AcceptedDomain", {})
    lu.assertNotNil(list, err and tostring(err))
    if i % 4 == 0 then                                  -- 300 s pass on both clocks
      offset = offset + 300
      assert(E.s:control("POST", "/_sim/clock", { advance = 300 }))
    end
  end
  local n1 = logins(mark)
  lu.assertTrue(n1 >= 6, "tokens were refreshed before expiry: " .. n1)
  -- the simulator's clock runs ahead of ours: the token expires early -> 401 -> on_401
  local tok = assert(c:token("exo"))
  assert(E.s:control("POST", "/_sim/clock", { advance = 700 }))
  local res = assert(http:request { method = "POST", retry = false,
    url = "https://outlook.office365.com/adminapi/beta/" .. E.p.tenant_id .. "/InvokeCommand",
    headers = { authorization = "Bearer " .. tok, ["content-type"] = "application/json",
                ["x-anchormailbox"] = "APP:SystemMailbox{bb558c35-97f1-4cb9-8ff7-d53741dc928c}@" .. E.p.tenant_id },
    body = '{"CmdletInput":{"CmdletName":"Get-AcceptedDomain","Parameters":{}}}' })
  lu.assertEquals(res.status, 200)
  lu.assertEquals(res.attempts, 2)
  lu.assertNotEquals(c:token("exo"), tok)
  assert(E.s:control("POST", "/_sim/clock", { offset = 0 }))
  -- real time, two-second tokens: a loop of calls over three seconds never sees a failure
  settings { token_lifetime = 2 }
  local rt = cred()
  local ex2 = require("t2t.exo").new { tenant = E.p.tenant_id, http = rt:client { service = "exo" },
                                       token = rt:token_provider("exo") }
  local _, m2 = logins()
  local t0 = t2t.now()
  local calls = 0
  while t2t.now() - t0 < 3 do
    local list, err = ex2:invoke("Get-AcceptedDomain", {})
    lu.assertNotNil(list, err and tostring(err))
    calls = calls + 1
    t2t.sleep(0.1)
  end
  lu.assertTrue((logins(m2)) >= 2, "short-lived tokens were renewed")
  lu.assertTrue(calls >= 2)
  settings { token_lifetime = cjson.null }
end

-- What no output may contain.
local function forbidden()
  local body = E.key_pem:gsub("%-%-%-%-%-[^\n]*%-%-%-%-%-", ""):gsub("%s", "")
  return { E.secret, EXPIRED_SECRET, PASSPHRASE, body:sub(1, 40), body:sub(200, 240), "this-is-not-the-secret" }
end

local function assert_clean(text, where)
  for _, s in ipairs(forbidden()) do
    lu.assertNil(text:find(s, 1, true), where .. " contains secret material")
  end
end

function TestAuthE2E.test_no_secret_material_in_logs_errors_or_files()
  local logfile = E.dir .. "/trace.log"
  local sink = assert(io.open(logfile, "w"))
  local level = log.level()
  local names = {}
  for k, v in pairs(log.LEVELS) do names[v] = k end
  log.set_sink(sink)
  log.set_level("trace")
  local errors = {}
  local ok, perr = pcall(function()
    local c = cred()
    assert(c:token("graph"))
    for _, over in ipairs {
      { client_secret = false, secret = "this-is-not-the-secret" },
      { client_secret = false, secret = EXPIRED_SECRET },
      { secret = false, client_secret = false, certificate = E.pem, key_passphrase = "file:" .. E.passfile },
      { secret = false, client_secret = false, certificate = E.pem2 },
    } do
      local x = cred(over)
      local _, e = x:token("exo")
      if e then errors[#errors + 1] = tostring(e) .. " " .. tostring(e.description) end
      errors[#errors + 1] = tostring(x)
      errors[#errors + 1] = x.cache_file and read(x.cache_file) or ""
    end
  end)
  log.set_level(names[level])
  log.set_sink(io.stderr)
  sink:close()
  assert(ok, perr)
  local text = read(logfile)
  lu.assertStrContains(text, "auth: POST https://login.microsoftonline.com/")   -- trace was on
  assert_clean(text, "the trace log")
  assert_clean(table.concat(errors, "\n"), "errors, credentials or cache files")
  local simlog = cjson.encode((assert(E.s:control("GET", "/_sim/log"))))
  assert_clean(simlog, "the simulator's request log")
end

function TestAuthE2E.test_cli_trace_run_has_no_secret_and_no_cached_sim_token()
  local seed = require "t2t.sim.seed"
  local st = seed.pair { users = 1, seed = 1 }          -- what `--sim` seeds: its secrets
  local secrets = {}
  for _, t in pairs(st.tenants) do
    local app = t.dir.objects[t.seeded.admin_app.object_id]
    secrets[#secrets + 1] = app.passwordCredentials[1]._secret
  end
  local rb = E.dir .. "/authcheck.lua"
  write(rb, [[
return runbook {
  name = "authcheck", description = "auth under --sim", params = {},
  run = function(ctx)
    local auth = require "t2t.auth"
    local cred, prof = assert(auth.for_context(ctx))
    assert(cred:token("graph"))
    assert(cred:token("exo"))
    local bad = assert(auth.credential({ tenant = prof.tenant_id, client_id = prof.client_id,
      secret = "wrong-secret-value-123", connect_to = prof.connect_to, ca_file = prof.ca_file }))
    local _, err = bad:token("graph")
    ctx.log.error("%s", tostring(err))
    ctx:say("tenant %s done", prof.tenant_id)
  end,
}
]])
  local xdg = E.dir .. "/xdg"
  local p = io.popen("XDG_CACHE_HOME='" .. xdg .. "' build/t2t --sim --log-level trace run '" .. rb .. "' 2>&1; echo rc=$?")
  local out = p:read("a")
  p:close()
  lu.assertStrContains(out, "done")
  lu.assertStrContains(out, "rc=0")
  lu.assertStrContains(out, "AADSTS7000215")
  lu.assertStrContains(out, "auth: POST")
  for _, s in ipairs(secrets) do lu.assertNil(out:find(s, 1, true), "--log-level trace output shows a secret") end
  lu.assertNil(out:find("wrong-secret-value-123", 1, true))
  -- the simulator's tokens stay in memory: nothing reaches the real token cache
  lu.assertNil(mode(xdg .. "/t2t/tokens.json"))
end
