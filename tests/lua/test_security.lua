-- Security regressions (issue 16): each test here failed before its fix.  docs/security.md
-- says what they guard against.  Files are made in a private temporary directory per test.
local lu = require "luaunit"
local cjson = require "cjson"
local fs = require "t2t.core.fs"

local function tmpdir()
  local p = io.popen("mktemp -d")
  local d = p:read("l")
  p:close()
  return d
end

local function rm(d) os.execute("rm -rf '" .. d .. "'") end

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function mkfifo(path) return os.execute("mkfifo '" .. path .. "'") end
local function symlink(target, path) return os.execute("ln -s '" .. target .. "' '" .. path .. "'") end

---------------------------------------------------------------------------------------------
-- 1. The simulator's control API: a key, save confinement, secrets kept out of GET state.

local ok_sim = pcall(require, "t2t.crypto")
local KEY = string.rep("5e", 32)

-- A simulator context with a seeded pair, called through the control module directly.
local function control_sim(opts)
  local context = require "t2t.sim.context"
  local st = require("t2t.sim.seed").pair { users = 2, seed = 3 }
  local s = context.new { state = st, seed = 3 }
  s.options = opts or { control_key = KEY }
  return s
end

local function control(s, method, path, body, key)
  local q = path:match("%?(.*)$") or ""
  local args = {}
  for k, v in q:gmatch("([^&=]+)=([^&]*)") do args[k] = v end
  local h = { host = "sim.t2t.test", ["content-type"] = "application/json" }
  if key ~= false then h["x-t2t-sim-control"] = key or KEY end
  local req = { method = method, path = path:gsub("%?.*$", ""), query = q, args = args, headers = h,
                body = body and cjson.encode(body) or "" }
  if body then req.json = body end
  local r = require("t2t.sim.control").handle(s, req)
  local b = r.body
  if type(b) == "table" then return r, b end
  local okd, v = pcall(cjson.decode, b or "")
  return r, okd and v or b
end

TestSecControl = {}

function TestSecControl.setUp()
  if not ok_sim then lu.skip("the simulator needs t2t.crypto") end
end

function TestSecControl.test_every_route_needs_the_key()
  local s = control_sim()
  local routes = { { "GET", "/_sim/profile" }, { "GET", "/_sim/state" }, { "PUT", "/_sim/state" },
                   { "POST", "/_sim/save" }, { "GET", "/_sim/log" }, { "POST", "/_sim/faults" },
                   { "POST", "/_sim/clock" }, { "POST", "/_sim/token" }, { "GET", "/_sim/securestring-key" },
                   { "POST", "/_sim/device/approve" }, { "GET", "/_sim/svc/login/settings" },
                   { "GET", "/_sim/nope" } }
  for _, rt in ipairs(routes) do
    lu.assertEquals(control(s, rt[1], rt[2], nil, false).status, 401, rt[1] .. " " .. rt[2] .. " without a key")
    lu.assertEquals(control(s, rt[1], rt[2], nil, string.rep("5e", 31) .. "5f").status, 401,
                    rt[1] .. " " .. rt[2] .. " with a wrong key")
  end
  -- minting a token with any roles was open to every local user
  local r = control(s, "POST", "/_sim/token", { tid = s.state.pair.source, aud = "https://graph.microsoft.com",
                                                roles = { "Directory.ReadWrite.All" } }, false)
  lu.assertEquals(r.status, 401)
  lu.assertEquals(control(s, "GET", "/_sim/profile").status, 200)        -- with the key: works
end

function TestSecControl.test_no_configured_key_fails_closed()
  local s = control_sim({})
  lu.assertEquals(control(s, "GET", "/_sim/profile").status, 401)
  lu.assertEquals(control(s, "GET", "/_sim/profile", nil, "").status, 401)
end

function TestSecControl.test_state_keeps_secrets_and_keys_out_unless_asked()
  local s = control_sim()
  local model = require "t2t.sim.model"
  model.securestring_key(s.state, true)                    -- the SecureString private key
  local _, prof = control(s, "GET", "/_sim/profile")
  local secret = prof.tenants.contoso.admin_app.client_secret
  lu.assertStrContains(secret, "8Q~")
  local r = control(s, "GET", "/_sim/state")
  lu.assertEquals(r.status, 200)
  lu.assertNotStrContains(r.body, secret)
  lu.assertNotStrContains(r.body, "PRIVATE KEY")
  lu.assertStrContains(r.body, '"_secret":"***"')
  -- the state itself is untouched by the masking
  lu.assertStrContains(model.encode_state(s.state), secret)
  local full = control(s, "GET", "/_sim/state?secrets=true")
  lu.assertStrContains(full.body, secret)
  lu.assertStrContains(full.body, "PRIVATE KEY")
end

function TestSecControl.test_masking_covers_key_vault_secret_values()
  local s = control_sim()
  local t = s.state.tenants[s.state.pair.target]
  t.azure.subscriptions.sub1 = { resource_groups = { rg = { vaults = { kv = { secrets = {
    cert = { latest = "v1", versions = { v1 = { value = "-----BEGIN PRIVATE KEY-----xyz", contentType = "x" } } } } } } } } }
  local r = control(s, "GET", "/_sim/state")
  lu.assertNotStrContains(r.body, "BEGIN PRIVATE KEY")
end

function TestSecControl.test_save_is_confined_to_the_state_directory()
  local d, other = tmpdir(), tmpdir()
  local s = control_sim { control_key = KEY }
  lu.assertEquals(control(s, "POST", "/_sim/save", { path = other .. "/x.json" }).status, 400)   -- no --state
  s.options.state = d .. "/state.json"
  local r, b = control(s, "POST", "/_sim/save", { path = other .. "/x.json" })
  lu.assertEquals(r.status, 400)
  lu.assertStrContains(b.error.message, "directory")
  lu.assertNil(read(other .. "/x.json"))
  for _, p in ipairs { d .. "/../x.json", d .. "/sub/x.json", "../x.json", d .. "/..", d .. "/" } do
    lu.assertEquals(control(s, "POST", "/_sim/save", { path = p }).status, 400, p)
  end
  -- a link planted in the state directory is refused, its target untouched
  write(other .. "/victim", "precious")
  assert(symlink(other .. "/victim", d .. "/link.json"))
  lu.assertEquals(control(s, "POST", "/_sim/save", { path = d .. "/link.json" }).status, 400)
  lu.assertEquals(read(other .. "/victim"), "precious")
  -- a FIFO is refused at once instead of blocking the server
  assert(mkfifo(d .. "/fifo.json"))
  lu.assertEquals(control(s, "POST", "/_sim/save", { path = d .. "/fifo.json" }).status, 400)
  -- the default: the state file itself, 0600
  r, b = control(s, "POST", "/_sim/save", {})
  lu.assertEquals(r.status, 200)
  lu.assertEquals(b.path, d .. "/state.json")
  lu.assertEquals(fs.mode(d .. "/state.json"), tonumber("600", 8))
  rm(d)
  rm(other)
end

-- The real server: another local user reaches the port, not the key.
function TestSecControl.test_running_simulator_refuses_calls_without_the_key()
  local http = require "t2t.http"
  local s = assert(require("t2t.sim").start { users = 1, seed = 2, log_errors = false })
  local r = assert(http.request { url = s.base_url .. "/_sim/state", ca_file = s.ca_file })
  lu.assertEquals(r.status, 401)
  r = assert(http.request { method = "POST", url = s.base_url .. "/_sim/token", ca_file = s.ca_file,
                            headers = { ["content-type"] = "application/json" },
                            body = '{"tid":"x","aud":"https://graph.microsoft.com"}' })
  lu.assertEquals(r.status, 401)
  lu.assertNotNil(s:control("GET", "/_sim/clock"))                     -- the owner's handle works
  local key, seen = s:control_header():match(": (.*)$"), {}
  local function walk(t)                                   -- the key is in no profile value
    seen[t] = true
    for _, v in pairs(t) do
      if type(v) == "string" then lu.assertNotStrContains(v, key)
      elseif type(v) == "table" and not seen[v] then walk(v) end
    end
  end
  walk(s.profile)
  s:stop()
end

---------------------------------------------------------------------------------------------
-- 4/7. Simulator files: the request log never follows a link; --write-config never replaces
-- a file it did not write; state files are private.

TestSecSimFiles = {}

function TestSecSimFiles.test_log_file_refuses_a_planted_link()
  local d = tmpdir()
  write(d .. "/victim", "root-only\n")
  assert(symlink(d .. "/victim", d .. "/sim.log"))
  local context = require "t2t.sim.context"
  local ok, err = pcall(context.new, { state = require("t2t.sim.model").new_state(1), log = d .. "/sim.log" })
  lu.assertFalse(ok)
  lu.assertStrContains(tostring(err), "symbolic link")
  lu.assertEquals(read(d .. "/victim"), "root-only\n")
  -- a real file: appended, 0600
  local s = context.new { state = require("t2t.sim.model").new_state(1), log = d .. "/real.log" }
  s:log { method = "GET", path = "/x" }
  s:close()
  lu.assertEquals(cjson.decode(read(d .. "/real.log")).path, "/x")
  lu.assertEquals(fs.mode(d .. "/real.log"), tonumber("600", 8))
  rm(d)
end

function TestSecSimFiles.test_write_config_never_replaces_a_real_config()
  local cli = require "t2t.sim.cli"
  local d = tmpdir()
  local real = d .. "/config.lua"
  write(real, "return { profiles = { prod = { tenant = 'x', client_id = 'y', secret = 'env:S' } } }\n")
  local ok, err = cli.may_replace(real)
  lu.assertNil(ok)
  lu.assertStrContains(err, "not overwriting")
  local p = { base_url = "https://127.0.0.1:1", ca_file = d .. "/ca.pem", connect_to = { ":443:127.0.0.1:1" },
              tenants = { contoso = { tenant_id = "t", domain = "contoso.onmicrosoft.com", client_id = "c",
                                      client_secret = "s3cret-value" } } }
  lu.assertNil((cli.write_config(p, real)))
  lu.assertStrContains(read(real), "prod")                           -- untouched
  lu.assertNil(read(real .. ".contoso.secret"))
  -- a config t2t sim wrote may be replaced; everything it writes is 0600
  local mine = d .. "/sim.lua"
  assert(cli.write_config(p, mine))
  assert(cli.write_config(p, mine))
  lu.assertEquals(fs.mode(mine), tonumber("600", 8))
  lu.assertEquals(fs.mode(mine .. ".contoso.secret"), tonumber("600", 8))
  -- a link is not a config t2t wrote either
  assert(symlink(real, d .. "/link.lua"))
  lu.assertNil((cli.may_replace(d .. "/link.lua")))
  rm(d)
end

function TestSecSimFiles.test_state_file_is_private_and_replaces_links()
  if not ok_sim then lu.skip("needs t2t.crypto") end
  local model = require "t2t.sim.model"
  local d = tmpdir()
  write(d .. "/victim", "root-only\n")
  assert(symlink(d .. "/victim", d .. "/state.json"))
  assert(symlink(d .. "/victim", d .. "/state.json.tmp"))            -- the old temporary name
  local st = model.new_state(1)
  st.exo_securestring_pem = "-----BEGIN PRIVATE KEY-----"
  assert(model.save(st, d .. "/state.json"))
  lu.assertEquals(read(d .. "/victim"), "root-only\n")
  lu.assertEquals(fs.mode(d .. "/state.json"), tonumber("600", 8))
  lu.assertEquals(model.load(d .. "/state.json").seed, 1)
  rm(d)
end

---------------------------------------------------------------------------------------------
-- 2. A config cannot send a credential away: connect_to only to loopback, ca_file only with
-- it and only a CA no one else can change.  7. Simulator tokens stay out of the token cache.

TestSecConfig = {}

local function profile_src(extra)
  return 'return { profiles = { p = { tenant = "contoso.onmicrosoft.com", client_id = "c", ' ..
         'secret = "env:AWS_SECRET_ACCESS_KEY"' .. extra .. ' } } }'
end

function TestSecConfig.test_connect_to_only_to_loopback()
  local config = require "t2t.config"
  for _, e in ipairs { "login.microsoftonline.com:443:10.0.0.5:443", ":443:evil.example:443",
                       "login.microsoftonline.com:443:127.0.0.1.evil.example:443", ":443:[2001:db8::1]:443",
                       "login.microsoftonline.com:443::443" } do
    local cfg, err = config.parse(profile_src(', connect_to = { "' .. e .. '" }'), "c.lua")
    lu.assertNil(cfg, e)
    lu.assertStrContains(err, "another machine")
  end
  for _, e in ipairs { "login.microsoftonline.com:443:127.0.0.1:5555", ":443:[::1]:5555",
                       "graph.microsoft.com:443:localhost:1", ":443:127.1.2.3:9" } do
    lu.assertNotNil((config.parse(profile_src(', connect_to = { "' .. e .. '" }'), "c.lua")), e)
  end
  local cfg, err = config.parse(profile_src(', connect_to = { x = "a:443:127.0.0.1:1" }'), "c.lua")
  lu.assertNil(cfg)
  lu.assertStrContains(err, "list")
end

function TestSecConfig.test_ca_file_only_for_simulator_profiles()
  local config = require "t2t.config"
  local cfg, err = config.parse(profile_src(', ca_file = "/tmp/evil-ca.pem"'), "c.lua")
  lu.assertNil(cfg)
  lu.assertStrContains(err, "only for a simulator profile")
end

-- The captured case: a loopback server with a CA its owner controls gets nothing.
function TestSecConfig.test_hostile_ca_file_is_refused_before_any_request()
  if not ok_sim then lu.skip("needs t2t.crypto") end
  local crypto, server = require "t2t.crypto", require "t2t.core.server"
  local d = tmpdir()
  local ca, ca_key = assert(crypto.new_ca { subject = "CN=evil CA", days = 1 })
  local cert, key = assert(crypto.new_cert { subject = "CN=evil", san = { "DNS:login.microsoftonline.com" },
                                             issuer_cert = ca, issuer_key = ca_key, days = 1 })
  local srv = assert(server.start { port = 0, cert_pem = cert:pem(), key_pem = key:private_pem(),
                                    handler_module = "tests.lua.handlers.server_echo" })
  write(d .. "/ca.pem", ca:pem())
  assert(fs.chmod(d .. "/ca.pem", tonumber("666", 8)))       -- anyone may replace it
  write(d .. "/config.lua", profile_src(', ca_file = "' .. d .. '/ca.pem", connect_to = { ' ..
        '"login.microsoftonline.com:443:127.0.0.1:' .. srv:port() .. '" }'))
  local old = os.getenv("AWS_SECRET_ACCESS_KEY")
  local cred, err = require("t2t.auth").selected({ config = d .. "/config.lua", profile = "p" })
  lu.assertNil(cred)
  lu.assertStrContains(tostring(err), "not safe to trust")
  lu.assertEquals(srv:stats().requests, 0)
  srv:stop()
  rm(d)
  lu.assertEquals(os.getenv("AWS_SECRET_ACCESS_KEY"), old)
end

TestSecTokenCache = {}

function TestSecTokenCache.test_simulator_credentials_never_use_the_cache_file()
  local auth = require "t2t.auth"
  local c = assert(auth.credential({ tenant = "t", client_id = "c", secret = "s3cret-value",
                                     connect_to = { ":443:127.0.0.1:1" } }))
  lu.assertNil(c.cache_file)
  local real = assert(auth.credential({ tenant = "t", client_id = "c", secret = "s3cret-value" }))
  lu.assertEquals(real.cache_file, auth.cache_path())
end

function TestSecTokenCache.test_existing_cache_directory_is_made_0700()
  local auth = require "t2t.auth"
  local d = tmpdir()
  assert(fs.mkdir(d .. "/t2t", tonumber("755", 8)))
  assert(fs.chmod(d .. "/t2t", tonumber("755", 8)))
  assert(auth.cache_update(d .. "/t2t/tokens.json", { k = { access_token = "a", expires_at = os.time() + 600 } }))
  lu.assertEquals(fs.mode(d .. "/t2t"), tonumber("700", 8))
  lu.assertEquals(fs.mode(d .. "/t2t/tokens.json"), tonumber("600", 8))
  rm(d)
end

---------------------------------------------------------------------------------------------
-- 3. A token goes only over HTTPS to the service it was issued for: paging links and
-- absolute URLs from responses are checked before the token is attached.

-- A fake http client answering from a queue and recording every request it was asked to send.
local function queue_http(responses)
  local h = { sent = {} }
  function h:request(req)
    local auth = req.headers and (req.headers.Authorization or req.headers.authorization)
    self.sent[#self.sent + 1] = { url = req.url, auth = auth }
    local r = table.remove(responses, 1)
    if not r then error("no response queued for " .. req.url) end
    return r
  end
  return h
end

local function json_resp(doc, status, headers)
  return { status = status or 200, headers = headers or { ["content-type"] = "application/json" },
           body = cjson.encode(doc) }
end

local HOSTILE = { "http://graph.microsoft.com/v1.0/users?$skiptoken=2", "https://evil.example/v1.0/users",
                  "https://graph.microsoft.com.evil.example/v1.0/users", "https://graph.microsoft.com@evil.example/x",
                  "https://evil.example\\@graph.microsoft.com/x", "https://graph.microsoft.com:8443/v1.0/users" }

TestSecTokenTarget = {}

function TestSecTokenTarget.test_graph_next_link_elsewhere_is_not_followed()
  local graph = require "t2t.graph"
  for _, link in ipairs(HOSTILE) do
    local http = queue_http { json_resp { value = { { id = "1" } }, ["@odata.nextLink"] = link } }
    local g = graph.new { http = http, token = function() return "tok-graph" end, sleep = function() end }
    local list, err = g:all("/users")
    lu.assertNil(list, link)
    lu.assertEquals(err.code, "UnsafeUrl")
    lu.assertEquals(#http.sent, 1, link)                        -- the link itself was never requested
    lu.assertEquals(http.sent[1].url, "https://graph.microsoft.com/v1.0/users")
  end
  local http = queue_http {}
  local g = graph.new { http = http, token = function() return "tok-graph" end }
  local _, err = g:get("https://evil.example/steal")
  lu.assertEquals(err.code, "UnsafeUrl")
  lu.assertEquals(#http.sent, 0)
  -- a link to Graph itself is followed
  http = queue_http { json_resp { value = { { id = "1" } }, ["@odata.nextLink"] = "https://graph.microsoft.com/v1.0/users?$skiptoken=2" },
                      json_resp { value = { { id = "2" } } } }
  g = graph.new { http = http, token = function() return "tok-graph" end }
  lu.assertEquals(#assert(g:all("/users")), 2)
end

function TestSecTokenTarget.test_exo_next_link_elsewhere_is_not_followed()
  local exo = require "t2t.exo"
  for _, link in ipairs { "http://outlook.office365.com/adminapi/beta/t/InvokeCommand?$skiptoken=2",
                          "https://evil.example/adminapi/beta/t/InvokeCommand" } do
    local http = queue_http { json_resp { value = { { Name = "a" } }, ["@odata.nextLink"] = link } }
    local ex = exo.new { tenant = "contoso.onmicrosoft.com", http = http, token = function() return "tok-exo" end,
                         sleep = function() end }
    local list, err = ex:invoke("Get-Mailbox", { ResultSize = "Unlimited" })
    lu.assertNil(list, link)
    lu.assertEquals(err.code, "UnsafeUrl")
    lu.assertEquals(#http.sent, 1)
  end
end

function TestSecTokenTarget.test_azure_absolute_and_operation_urls_stay_on_their_service()
  local azure = require "t2t.azure"
  local http = queue_http {}
  local az = azure.new { http = http, token = function() return "tok-arm" end, subscription = "s",
                         sleep = function() end }
  local _, err = az:arm("GET", "http://management.azure.com/subscriptions/s")
  lu.assertEquals(err.code, "UnsafeUrl")
  _, err = az:arm("GET", "https://evil.example/subscriptions/s")
  lu.assertEquals(err.code, "UnsafeUrl")
  _, err = az:vault("kv1", "GET", "https://kv1.vault.azure.net.evil.example/secrets/x")
  lu.assertEquals(err.code, "UnsafeUrl")
  _, err = az:vault("kv1", "GET", "https://management.azure.com/secrets/x")   -- the ARM token's host, not a vault
  lu.assertEquals(err.code, "UnsafeUrl")
  lu.assertEquals(#http.sent, 0)
  -- a long-running operation whose status URL points away: polled nowhere
  http = queue_http { json_resp({ properties = { provisioningState = "Accepted" } }, 201,
    { ["content-type"] = "application/json", ["azure-asyncoperation"] = "https://evil.example/op/1", ["retry-after"] = "0" }) }
  az = azure.new { http = http, token = function() return "tok-arm" end, subscription = "s", sleep = function() end }
  _, err = az:arm("PUT", "/subscriptions/s/resourceGroups/rg", { location = "westus" })
  lu.assertEquals(err.code, "UnsafeUrl")
  lu.assertEquals(#http.sent, 1)
  -- vault hosts under the cloud's suffix are fine
  http = queue_http { json_resp { value = "v" } }
  az = azure.new { http = http, token = function() return "tok-arm" end, subscription = "s" }
  assert(az:vault("kv1", "GET", "https://kv1.vault.azure.net/secrets/x"))
  lu.assertEquals(http.sent[1].auth, "Bearer tok-arm")
end

function TestSecTokenTarget.test_token_target_rules()
  local http = require "t2t.http"
  lu.assertTrue(http.token_target("https://graph.microsoft.com/v1.0/x", "https://graph.microsoft.com"))
  lu.assertTrue(http.token_target("https://GRAPH.microsoft.com:443/v1.0/x", "https://graph.microsoft.com"))
  for _, u in ipairs(HOSTILE) do lu.assertNil((http.token_target(u, "https://graph.microsoft.com")), u) end
  lu.assertNil((http.token_target("https://vault.azure.net/x", { suffix = ".vault.azure.net" })))
  lu.assertTrue(http.token_target("https://a.vault.azure.net/x", { suffix = ".vault.azure.net" }))
  lu.assertNil((http.token_target("https://a.vault.azure.net:444/x", { suffix = ".vault.azure.net" })))
end

---------------------------------------------------------------------------------------------
-- 6. Reads of files a run is handed: regular files only, a cap per kind, never blocking.

TestSecReads = {}

local reads_dir
function TestSecReads.setUp()
  reads_dir = tmpdir()
  assert(mkfifo(reads_dir .. "/fifo"))
  write(reads_dir .. "/big", string.rep("x", 5 * 1024 * 1024))
end
function TestSecReads.tearDown() rm(reads_dir) end

local function refused(what, v, err, want)
  lu.assertNil(v, what)
  lu.assertStrContains(tostring(err), want, false, what)
end

function TestSecReads.test_secret_references()
  local auth = require "t2t.auth"
  local v, err = auth.read_ref("file:" .. reads_dir .. "/fifo", "client secret")
  refused("FIFO secret", v, err, "not a regular file")
  v, err = auth.read_ref("file:/dev/zero", "client secret")
  refused("/dev/zero secret", v, err, "not a regular file")
  v, err = auth.read_ref("file:" .. reads_dir .. "/big", "client secret")
  refused("5 MB secret", v, err, "more than")
  v, err = auth.read_ref("file:" .. reads_dir, "key passphrase")
  refused("directory passphrase", v, err, "is a directory")
  write(reads_dir .. "/ok", "the-secret \nsecond line\n")
  lu.assertEquals(auth.read_ref("file:" .. reads_dir .. "/ok"), "the-secret")
end

function TestSecReads.test_certificates_keys_and_passphrases()
  if not ok_sim then lu.skip("needs t2t.crypto") end
  local crypto, auth = require "t2t.crypto", require "t2t.auth"
  for _, p in ipairs { reads_dir .. "/fifo", "/dev/zero", reads_dir .. "/big" } do
    local want = p:find("big", 1, true) and "more than" or "not a regular file"
    refused("cert " .. p, nil, select(2, crypto.load_cert_file(p)), want)
    refused("key " .. p, nil, select(2, crypto.load_key_file(p)), want)
    refused("credential " .. p, nil, select(2, crypto.load_credential_file(p)), want)
    local c, err = auth.credential { tenant = "t", client_id = "c", certificate = p, cache = false }
    refused("profile certificate " .. p, c, err, "certificate")
  end
  local cert, key = crypto.new_cert { subject = "CN=x", days = 1 }
  write(reads_dir .. "/cred.pem", key:private_pem("pw") .. cert:pem())
  local c, err = auth.credential { tenant = "t", client_id = "c", certificate = reads_dir .. "/cred.pem",
                                   key_passphrase = "file:/dev/zero", cache = false }
  refused("passphrase /dev/zero", c, err, "not a regular file")
end

function TestSecReads.test_handoff_state_and_runbook_secret()
  local session = require "t2t.tenant.session"
  local v, err = session.read_handoff(reads_dir .. "/fifo")
  refused("FIFO hand-off", v, err, "not a regular file")
  v, err = session.read_handoff("/dev/zero")
  refused("/dev/zero hand-off", v, err, "not a regular file")
  lu.assertNil(session.read_handoff(reads_dir .. "/absent.json"))     -- none yet: not an error
  v, err = require("t2t.sim.model").load(reads_dir .. "/fifo")
  refused("FIFO state", v, err, "not a regular file")
  lu.assertNil(session.read_secret_file(reads_dir .. "/fifo"))
end

---------------------------------------------------------------------------------------------
-- 8. The embedded server speaks TLS 1.2+ with forward-secret AEAD suites only, and the
-- simulator's CA may certify only the simulated names and loopback.

TestSecTls = {}

local function have_openssl()
  local p = io.popen("command -v openssl")
  local out = p:read("a")
  p:close()
  return out ~= ""
end

-- handshake(port, args) -> the negotiated cipher, or nil when the server refused
local function handshake(port, args)
  local p = io.popen("echo | timeout 10 openssl s_client -connect 127.0.0.1:" .. port .. " " .. args .. " 2>&1")
  local out = p:read("a")
  p:close()
  local cipher = out:match("Cipher is ([%w%-_]+)")
  return cipher ~= "(NONE)" and cipher ~= nil and cipher or nil
end

function TestSecTls.test_only_tls12_plus_forward_secret_aead()
  if not ok_sim then lu.skip("needs t2t.crypto") end
  if not have_openssl() then lu.skip("needs the openssl command") end
  local s = assert(require("t2t.sim").start { users = 1, seed = 4, log_errors = false })
  local refused = {
    "-tls1 -cipher DEFAULT@SECLEVEL=0", "-tls1_1 -cipher DEFAULT@SECLEVEL=0",
    "-tls1_2 -cipher AES128-SHA@SECLEVEL=0",                        -- RSA key transport, CBC
    "-tls1_2 -cipher AES128-GCM-SHA256@SECLEVEL=0",                 -- RSA key transport
    "-tls1_2 -cipher ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA@SECLEVEL=0",   -- CBC-SHA1
    "-tls1_2 -cipher ECDHE-RSA-AES256-SHA384:ECDHE-ECDSA-AES256-SHA384@SECLEVEL=0",
  }
  for _, a in ipairs(refused) do lu.assertNil(handshake(s.port, a), a) end
  lu.assertStrContains(handshake(s.port, "-tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES128-GCM-SHA256") or "",
                       "GCM")
  lu.assertNotNil(handshake(s.port, "-tls1_3"))
  s:stop()
end

function TestSecTls.test_simulator_ca_is_name_constrained()
  if not ok_sim then lu.skip("needs t2t.crypto") end
  local crypto = require "t2t.crypto"
  local sim = require "t2t.sim"
  local s = assert(sim.start { users = 1, seed = 4, log_errors = false })
  local ca_pem = s.ca_pem
  -- still verifies for every simulated name (the client tests go through it)
  assert(s:control("GET", "/_sim/clock"))
  s:stop()
  if have_openssl() then
    local d = tmpdir()
    write(d .. "/ca.pem", ca_pem)
    local p = io.popen("openssl x509 -in '" .. d .. "/ca.pem' -noout -ext nameConstraints 2>&1")
    local text = p:read("a")
    p:close()
    rm(d)
    lu.assertStrContains(text, "critical")
    lu.assertStrContains(text, "DNS:graph.microsoft.com")
    lu.assertStrContains(text, "DNS:vault.azure.net")
    lu.assertStrContains(text, "IP:127.0.0.0/255.0.0.0")
  end
  -- what the constraints do: a leaf for another name from such a CA does not verify
  local router = require "t2t.sim.router"
  local ca, ca_key = assert(crypto.new_ca { subject = "CN=c", days = 1, name_constraints = sim.ca_constraints(router.CERT_HOSTS) })
  local good = assert(crypto.new_cert { subject = "CN=g", san = { "DNS:graph.microsoft.com", "DNS:kv1.vault.azure.net",
                                        "IP:127.0.0.1" }, issuer_cert = ca, issuer_key = ca_key, days = 1 })
  local evil = assert(crypto.new_cert { subject = "CN=e", san = { "DNS:login.evil.example" }, issuer_cert = ca,
                                        issuer_key = ca_key, days = 1 })
  local evil_ip = assert(crypto.new_cert { subject = "CN=e", san = { "IP:10.1.2.3" }, issuer_cert = ca,
                                           issuer_key = ca_key, days = 1 })
  lu.assertTrue(crypto.verify_cert(good, { ca }))
  local ok, err = crypto.verify_cert(evil, { ca })
  lu.assertNil(ok)
  lu.assertStrContains(tostring(err), "subtree")
  lu.assertNil((crypto.verify_cert(evil_ip, { ca })))
  lu.assertErrorMsgContains("name_constraints", crypto.new_ca, { subject = "CN=x", name_constraints = { "DNS:a,permitted;DNS:b" } })
end

---------------------------------------------------------------------------------------------
-- 9. URL redaction covers client assertions and secrets.

TestSecRedact = {}

function TestSecRedact.test_redact_url_hides_assertions_and_secrets()
  local http = require "t2t.http"
  local u = http.redact_url("https://h/x?client_assertion=eyJhbGciOi.x.y&secret=abc&Secret=d&id_token=t&a=1#f")
  lu.assertNotStrContains(u, "eyJhbGciOi")
  lu.assertNotStrContains(u, "abc")
  lu.assertNotStrContains(u, "=d")
  lu.assertNotStrContains(u, "id_token=t")
  lu.assertStrContains(u, "a=1")
  lu.assertStrContains(u, "client_assertion=***")
end
