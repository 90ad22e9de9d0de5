-- The simulator core: handler (routing, JSON bodies, latency, faults incl. lost-after-commit,
-- request log), context (clock, lag, tokens/auth), fault specs and the control API.  Called
-- directly, without the server; tests/lua/test_sim_start.lua covers the real thing.
local lu = require "luaunit"
local cjson = require "cjson"
local model = require "t2t.sim.model"
local context = require "t2t.sim.context"
local router = require "t2t.sim.router"
local handler = require "t2t.sim.handler"

-- A fake service: counts mutations, so lost-after-commit can be observed.
local fake = { writes = 0 }
function fake.handle(sim, req)
  if req.method == "POST" then fake.writes = fake.writes + 1 end
  if req.path == "/auth" then
    local claims, resp = sim:auth(req, "https://fake.example")
    if not claims then return resp end
    return { status = 200, body = { tid = claims.tid, roles = claims.roles } }
  end
  if req.path == "/boom" then error("kaboom") end
  req.note = { op = "fake" }
  return { status = req.method == "POST" and 201 or 200,
           body = { value = {}, n = fake.writes, echo = req.json, obj = model.object() } }
end
package.preload["t2t.sim.test_fake"] = function() return fake end
router.MODULES.fake = "t2t.sim.test_fake"
router.HOSTS["fake.example"] = "fake"
context.SERVICES.fake = true

local KEY = string.rep("k", 64)              -- the control API's key in these tests

local function req(method, host, path, body, headers)
  local h = headers or {}
  h.host = host
  if path:sub(1, 6) == "/_sim/" and h["x-t2t-sim-control"] == nil then h["x-t2t-sim-control"] = KEY end
  if h["x-t2t-sim-control"] == false then h["x-t2t-sim-control"] = nil end
  if body and not h["content-type"] then h["content-type"] = "application/json" end
  local q = path:match("%?(.*)$") or ""
  local args = {}
  for k, v in q:gmatch("([^&=]+)=([^&]*)") do args[k] = v end
  return { method = method, path = path:gsub("%?.*$", ""), query = q, args = args, headers = h,
           body = body and (type(body) == "string" and body or cjson.encode(body)) or "",
           peer = "127.0.0.1:1" }
end

local function call(...)
  local r = handler.handle(req(...))
  local ok, decoded = pcall(cjson.decode, r.body or "")
  return r, ok and decoded or nil
end

local sim = handler.init { users = 12, seed = 5, log_errors = false, control_key = KEY }

TestSimCore = {}

function TestSimCore.setUp()
  sim.faults = assert(context.parse_faults(""))
  sim.latency = assert(context.parse_latency(nil))
  sim.clock_offset = 0
end

function TestSimCore.test_json_encoder_arrays_objects_null()
  local enc = handler.json_encode
  lu.assertEquals(enc({}), "[]")
  lu.assertEquals(enc(model.object()), "{}")
  lu.assertEquals(enc(model.array({})), "[]")
  lu.assertEquals(enc({ 1, 2, "x" }), '[1,2,"x"]')
  lu.assertEquals(enc({ a = {}, b = cjson.null }), enc({ b = cjson.null, a = {} }))
  lu.assertStrContains(enc({ a = {} }), '"a":[]')
  lu.assertEquals(enc({ f = 1.5, i = 3.0, big = 1e15 }):len() > 0, true)
  lu.assertStrContains(enc({ i = 3.0 }), '"i":3')
  lu.assertStrContains(enc({ s = 'q"\n\0' }), [["s":"q\"\n\u0000"]])
  lu.assertEquals(enc({ x = "é" }), '{"x":"é"}')
  local back = cjson.decode(enc({ n = 0.1, m = -2 ^ 40 }))
  lu.assertEquals(back.n, 0.1)
  lu.assertEquals(back.m, -2 ^ 40)
  local cyc = {}
  cyc.self = cyc
  lu.assertErrorMsgContains("too deep", enc, cyc)
end

function TestSimCore.test_routing_by_host()
  lu.assertEquals(router.service("graph.microsoft.com", "/v1.0/users"), "graph")
  lu.assertEquals(router.service("outlook.office365.com", "/adminapi/beta/x/InvokeCommand"), "exo")
  lu.assertEquals(router.service("outlook.office.com", "/x"), "exo")
  lu.assertEquals(router.service("login.microsoftonline.com", "/t/oauth2/v2.0/token"), "login")
  lu.assertEquals(router.service("management.azure.com", "/subscriptions"), "arm")
  lu.assertEquals(router.service("kv-t2t-1.vault.azure.net", "/secrets/x"), "keyvault")
  lu.assertEquals(router.service("graph.microsoft.com", "/_sim/profile"), "control")
  lu.assertEquals(router.service("sim.t2t.test", "/x"), "control")
  lu.assertNil(router.service("example.com", "/"))
  lu.assertEquals(router.host_of({ headers = { host = "Graph.Microsoft.com:443" } }), "graph.microsoft.com")
  local r = call("GET", "nowhere.example", "/x")
  lu.assertEquals(r.status, 404)
end

function TestSimCore.test_table_bodies_become_json_and_log_has_no_body()
  local r, b = call("POST", "fake.example:443", "/things", { name = "x", client_secret = "s3cret" })
  lu.assertEquals(r.status, 201)
  lu.assertEquals(r.headers["content-type"], "application/json")
  lu.assertStrContains(r.body, '"value":[]')
  lu.assertStrContains(r.body, '"obj":{}')
  lu.assertEquals(b.echo.name, "x")
  local last = sim:log_entries(sim.log_n - 1)[1]
  lu.assertEquals(last.path, "/things")
  lu.assertEquals(last.host, "fake.example")
  lu.assertEquals(last.status, 201)
  lu.assertEquals(last.op, "fake")
  lu.assertNotStrContains(cjson.encode(last), "s3cret")
end

function TestSimCore.test_handler_error_is_500_and_logged()
  local r = call("GET", "fake.example", "/boom")
  lu.assertEquals(r.status, 500)
  lu.assertStrContains(r.body, "kaboom")
  lu.assertStrContains(sim:log_entries(sim.log_n - 1)[1].error, "kaboom")
end

function TestSimCore.test_missing_service_is_501()
  router.MODULES.ghost = "t2t.sim.no_such_module"
  router.HOSTS["ghost.example"] = "ghost"
  local r = call("GET", "ghost.example", "/")
  lu.assertEquals(r.status, 501)
end

function TestSimCore.test_fault_spec_parsing()
  local f = assert(context.parse_faults("429=0.05,503=0.02,reset=0.01,lost=0.01,lag=2s,exo_concurrency=4,graph.504=0.5,graph_rate=100"))
  lu.assertEquals(f["429"], 0.05)
  lu.assertEquals(f.lag, 2)
  lu.assertEquals(f.exo_concurrency, 4)
  lu.assertEquals(f.graph_rate, 100)
  lu.assertEquals(f.scoped.graph["504"], 0.5)
  lu.assertEquals(assert(context.parse_faults("lag=500ms")).lag, 0.5)
  lu.assertNil((context.parse_faults("429=2")))
  lu.assertNil((context.parse_faults("teapot=0.1")))
  lu.assertNil((context.parse_faults("nope.429=0.1")))
  lu.assertNil((context.parse_faults("lag=soon")))
  lu.assertEquals(context.parse_latency("20"), { min = 0.02, max = 0.02 })
  lu.assertEquals(context.parse_latency("5-40"), { min = 0.005, max = 0.04 })
  lu.assertNil((context.parse_latency("40-5")))
end

-- The sequence of injected faults depends only on the seed and the order of requests.
function TestSimCore.test_faults_are_seeded_and_reproducible()
  local function run()
    local s = handler.init { users = 2, seed = 99, faults = "429=0.3,503=0.2,reset=0.1" }
    local seq = {}
    for i = 1, 60 do
      local r = handler.handle(req("GET", "fake.example", "/x"))
      seq[i] = r.abort and "reset" or tostring(r.status)
    end
    return seq, s
  end
  local a = run()
  local b = run()
  lu.assertEquals(a, b)
  local counts = {}
  for _, v in ipairs(a) do counts[v] = (counts[v] or 0) + 1 end
  lu.assertTrue((counts["429"] or 0) > 5 and (counts["503"] or 0) > 3 and (counts.reset or 0) >= 1)
  lu.assertTrue((counts["200"] or 0) > 10)
  sim = handler.init { users = 12, seed = 5, log_errors = false, control_key = KEY }
end

function TestSimCore.test_scoped_fault_hits_only_that_service()
  sim.faults = assert(context.parse_faults("fake.503=1"))
  lu.assertEquals(call("GET", "fake.example", "/x").status, 503)
  lu.assertEquals(call("GET", "sim.t2t.test", "/_sim/clock").status, 200)   -- control: never
  sim.faults = assert(context.parse_faults("graph.503=1"))
  lu.assertEquals(call("GET", "fake.example", "/x").status, 200)
end

function TestSimCore.test_lost_after_commit_applies_the_change()
  sim.faults = assert(context.parse_faults("lost=1"))
  local before = fake.writes
  local r = call("POST", "fake.example", "/things", { a = 1 })
  lu.assertEquals(r.abort, "before")
  lu.assertEquals(fake.writes, before + 1)           -- committed
  lu.assertEquals(sim:log_entries(sim.log_n - 1)[1].fault, "lost")
  local g = call("GET", "fake.example", "/things")   -- reads are not "lost"
  lu.assertNil(g.abort)
end

function TestSimCore.test_latency_sets_delay_and_req_delay()
  sim.latency = assert(context.parse_latency("5-40"))
  local seen
  local orig = fake.handle
  fake.handle = function(s, r) seen = r.delay return orig(s, r) end
  local r = call("GET", "fake.example", "/x")
  fake.handle = orig
  lu.assertTrue(r.delay >= 0.005 and r.delay <= 0.04)
  lu.assertEquals(seen, r.delay)
end

function TestSimCore.test_lag_and_clock()
  sim.faults = assert(context.parse_faults("lag=30s"))
  local obj = { created = sim:now() }
  lu.assertFalse(sim:visible(obj))
  lu.assertTrue(sim:visible({ created = sim:now() - 31 }))
  lu.assertTrue(sim:visible({}))
  local r, b = call("POST", "sim.t2t.test", "/_sim/clock", { advance = 31 })
  lu.assertEquals(r.status, 200)
  lu.assertEquals(b.offset, 31)
  lu.assertTrue(sim:visible(obj))
  sim.faults = assert(context.parse_faults(""))
  lu.assertTrue(sim:visible({ created = sim:now() + 100 }))
end

function TestSimCore.test_tokens_and_auth()
  local st = sim.state
  local tid = st.pair.source
  local _, tok = call("POST", "sim.t2t.test", "/_sim/token",
                      { tid = tid, aud = "https://fake.example", appid = "app", oid = "o1", roles = { "R.W" } })
  local bearer = { authorization = "Bearer " .. tok.access_token }
  local r, b = call("GET", "fake.example", "/auth", nil, bearer)
  lu.assertEquals(r.status, 200)
  lu.assertEquals(b.tid, tid)
  lu.assertEquals(b.roles, { "R.W" })
  lu.assertEquals(call("GET", "fake.example", "/auth").status, 401)
  r = call("GET", "fake.example", "/auth", nil, { authorization = "Bearer " .. tok.access_token .. "x" })
  lu.assertEquals(r.status, 401)
  local _, other = call("POST", "sim.t2t.test", "/_sim/token", { tid = tid, aud = "https://graph.microsoft.com" })
  r = call("GET", "fake.example", "/auth", nil, { authorization = "Bearer " .. other.access_token })
  lu.assertEquals(r.status, 401)
  lu.assertStrContains(r.headers["www-authenticate"], "invalid_token")
  -- token expiry follows the simulated clock
  sim.clock_offset = 3600
  r = call("GET", "fake.example", "/auth", nil, { authorization = "Bearer " .. tok.access_token })
  lu.assertEquals(r.status, 401)
  lu.assertStrContains(r.body, "expired")
  local claims, _, why = sim:auth({ headers = bearer }, "https://fake.example")
  lu.assertNil(claims)
  lu.assertEquals(why, "expired")
end

function TestSimCore.test_control_profile()
  local r, p = call("GET", "sim.t2t.test", "/_sim/profile")
  lu.assertEquals(r.status, 200)
  lu.assertEquals(p.source, "contoso")
  lu.assertEquals(p.target, "fabrikam")
  local c = p.tenants.contoso
  lu.assertEquals(c.id, sim.state.pair.source)
  lu.assertEquals(c.initial_domain, "contoso.onmicrosoft.com")
  lu.assertStrMatches(c.admin_app.app_id, "%x+%-.*")
  lu.assertStrContains(c.admin_app.client_secret, "8Q~")
  lu.assertEquals(c.admin_user, "admin@contoso.onmicrosoft.com")
  -- the profile fetch itself is logged, the secret is not
  lu.assertNotStrContains(cjson.encode(sim:log_entries(0)), c.admin_app.client_secret)
end

function TestSimCore.test_control_state_round_trip_and_save()
  local r = call("GET", "sim.t2t.test", "/_sim/state?secrets=true")
  lu.assertEquals(r.status, 200)
  local text = r.body
  local src = sim.state.pair.source
  sim.state.tenants[src].display_name = "changed"
  r = call("PUT", "sim.t2t.test", "/_sim/state", text)
  lu.assertEquals(r.status, 204)
  lu.assertEquals(sim.state.tenants[src].display_name, "Contoso Ltd")
  lu.assertEquals(call("PUT", "sim.t2t.test", "/_sim/state", "{nope").status, 400)
  lu.assertEquals(call("POST", "sim.t2t.test", "/_sim/save", {}).status, 400)   -- no --state
  local dir = os.tmpname()
  os.remove(dir)
  assert(require("t2t.core.fs").mkdir(dir))
  sim.options.state = dir .. "/state.json"
  local path = dir .. "/copy.json"
  local _, b = call("POST", "sim.t2t.test", "/_sim/save", { path = path })
  lu.assertEquals(b.path, path)
  local st = assert(model.load(path))
  lu.assertEquals(st.pair.source, src)
  lu.assertEquals(require("t2t.core.fs").mode(path), tonumber("600", 8))   -- it holds secrets
  _, b = call("POST", "sim.t2t.test", "/_sim/save", { path = "plain.json" })  -- a bare name: that dir
  lu.assertEquals(b.path, dir .. "/plain.json")
  sim.options.state = nil
  os.execute("rm -rf '" .. dir .. "'")
end

function TestSimCore.test_control_faults_log_and_errors()
  local r, b = call("POST", "sim.t2t.test", "/_sim/faults", { faults = "503=1", latency = "1-2" })
  lu.assertEquals(r.status, 200)
  lu.assertEquals(b.faults["503"], 1)
  lu.assertEquals(call("GET", "fake.example", "/x").status, 503)
  lu.assertEquals(call("POST", "sim.t2t.test", "/_sim/faults", { faults = "bad" }).status, 400)
  call("POST", "sim.t2t.test", "/_sim/faults", { faults = "", latency = "0" })
  lu.assertEquals(call("GET", "fake.example", "/x").status, 200)
  local n = sim.log_n
  call("GET", "fake.example", "/a?client_secret=zz&x=1")
  local _, l = call("GET", "sim.t2t.test", "/_sim/log?since=" .. n)
  lu.assertEquals(l.value[1].path, "/a")
  lu.assertEquals(l.value[1].query, "client_secret=***&x=1")
  lu.assertEquals(call("GET", "sim.t2t.test", "/_sim/nope").status, 404)
  lu.assertEquals(call("DELETE", "sim.t2t.test", "/_sim/profile").status, 405)
end

function TestSimCore.test_log_ring_and_file()
  local path = os.tmpname()
  local s = context.new { state = model.new_state(1), log = path, log_max = 3 }
  for i = 1, 5 do s:log { i = i } end
  local e = s:log_entries(0)
  lu.assertEquals(#e, 3)
  lu.assertEquals(e[1].i, 3)
  lu.assertEquals(e[3].seq, 5)
  s:close()
  local lines = 0
  for line in io.lines(path) do lines = lines + 1 lu.assertEquals(cjson.decode(line).i, lines) end
  os.remove(path)
  lu.assertEquals(lines, 5)
end

-- The real thing: sim.start on the embedded HTTPS server, reached through connect_to.
TestSimStart = {}

function TestSimStart.test_start_profile_connect_to_and_state_file()
  lu.skipIf(not (pcall(require, "t2t.http") and pcall(require, "t2t.crypto")),
            "needs t2t.http and t2t.crypto")
  local sim_mod = require "t2t.sim"
  local http = require "t2t.http"
  local path = os.tmpname()
  os.remove(path)
  local s = assert(sim_mod.start { users = 6, seed = 21, state = path, log_errors = false })
  lu.assertTrue(sim_mod.current() == s)
  local p = s.profile
  local c = p.tenants.contoso
  lu.assertEquals(c.cloud, "global")
  lu.assertStrMatches(c.tenant_id, "%x+%-%x+%-%x+%-%x+%-%x+")
  lu.assertStrContains(c.client_secret, "8Q~")
  lu.assertEquals(p.port, s.port)
  -- a real host name, mapped to the simulator, TLS verified against the sim's CA
  local key = { ["x-t2t-sim-control"] = s:control_header():match(": (.*)$") }
  local r = assert(http.request { url = "https://graph.microsoft.com/_sim/clock", ca_file = s.ca_file,
                                  connect_to = s.connect_to, headers = key })
  lu.assertEquals(r.status, 200)
  r = assert(http.request { url = "https://kv1.vault.azure.net/_sim/clock", ca_file = s.ca_file,
                            connect_to = s.connect_to, headers = key })
  lu.assertEquals(r.status, 200)
  local log = assert(s:control("GET", "/_sim/log"))
  lu.assertEquals(log.value[#log.value].host, "kv1.vault.azure.net")
  assert(s:control("POST", "/_sim/clock", { advance = 5 }))
  assert(s:stop())
  lu.assertNil(sim_mod.current() == s and true or nil)
  lu.assertTrue(s:stop())                                  -- idempotent
  -- the state file was written at stop and is loaded by the next start (users/seed ignored)
  local s2 = assert(sim_mod.start { users = 1, seed = 1, state = path, log_errors = false })
  lu.assertEquals(s2.profile.tenants.contoso.tenant_id, c.tenant_id)
  lu.assertEquals(s2.profile.tenants.fabrikam.client_secret, p.tenants.fabrikam.client_secret)
  s2:stop { save = false }
  os.remove(path)
  lu.assertNil((sim_mod.start { faults = "nonsense=1" }))
end
