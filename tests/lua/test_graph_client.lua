-- t2t.graph (the client) against the simulated Graph through a fake http object that calls
-- t2t.sim.graph.handle in-process: paging across many pages, $batch with partial throttling,
-- error objects, token refresh on 401, and the replication-lag re-read.
local lu = require "luaunit"
local cjson = require "cjson"
local graph = require "t2t.graph"
local simgraph = require "t2t.sim.graph"
local sim_http = require "tests.lua.handlers.sim_http"

local T1 = "11111111-1111-4111-8111-111111111111"

local function world(n_users, faults)
  local n = 0
  local sim = { faults = faults or {}, clock = 1700000000, lag = 0 }
  sim.rng = { guid = function() n = n + 1; return string.format("%08x-0000-4000-8000-%012x", n, n) end,
              int = function(_, a, b) n = n + 1; return a + n % (b - a + 1) end }
  sim.state = { apps_by_appid = {}, tenants = { [T1] = { id = T1, name = "contoso",
    initial_domain = "contoso.onmicrosoft.com", domains = { { id = "contoso.onmicrosoft.com", isInitial = true } },
    dir = { objects = {}, by_appid_sp = {}, app_role_assignments = {}, role_assignments = {},
            role_definitions = {}, skus = {}, members = {} }, exo = { recipients = {} } } } }
  function sim:now() return self.clock end
  function sim:visible(o) return (o.created or 0) + self.lag <= self.clock end
  sim.valid = { good = true }
  function sim:auth(req)
    local t = (req.headers.authorization or ""):match("^Bearer (.+)$")
    if not (t and self.valid[t]) then return nil, { status = 401 } end
    return { tid = T1, appid = "app", roles = { "Application.ReadWrite.All", "User.ReadWrite.All",
      "Group.ReadWrite.All", "Directory.ReadWrite.All" } }
  end
  local objs = sim.state.tenants[T1].dir.objects
  for i = 1, n_users do
    local id = string.format("aaaaaaaa-0000-4000-8000-%012d", i)
    objs[id] = { ["@odata.type"] = "#microsoft.graph.user", id = id, created = 0,
      displayName = "User " .. i, userPrincipalName = "u" .. i .. "@contoso.com" }
  end
  return sim
end

local function fake_http(sim)
  return sim_http(sim, function() return simgraph end)
end

local function client(sim, o)
  o = o or {}
  local http = fake_http(sim)
  local slept = {}
  local g = graph.new { http = http, token = o.token or function() return "good" end,
    sleep = function(s) slept[#slept + 1] = s; sim.clock = sim.clock + s end,
    now = function() return sim.clock end }
  return g, http, slept
end

TestGraphClient = {}

function TestGraphClient.test_query_builder()
  local q, eventual = graph.query { select = { "id", "mail" }, filter = "appId eq '1'", top = 5 }
  lu.assertEquals(q, "?$select=id,mail&$filter=appId%20eq%20'1'&$top=5")
  lu.assertFalse(eventual)
  local _, ev = graph.query { filter = "endswith(mail,'x.com')" }
  lu.assertTrue(ev)
  lu.assertTrue(select(2, graph.query { count = true }))
  lu.assertFalse(graph.advanced("displayName eq 'none of them'"))
  lu.assertEquals(graph.quote("O'Neil"), "'O''Neil'")
  lu.assertEquals(graph.encode { groupTypes = graph.array(), a = { 1 } }:gsub("%s", ""):len() > 0, true)
  lu.assertStrContains(graph.encode { groupTypes = graph.array() }, '"groupTypes":[]')
end

function TestGraphClient.test_items_follows_many_pages_and_resends_consistency()
  local sim = world(1234)
  local g, http = client(sim)
  local n, seen = 0, {}
  for u in g:items("/users", { query = { select = "id,displayName", top = 100, count = true } }) do
    lu.assertNil(seen[u.id])
    seen[u.id] = true
    n = n + 1
  end
  lu.assertEquals(n, 1234)
  lu.assertEquals(#http.calls, 13)
  lu.assertEquals(g.last_count, 1234)
  for _, c in ipairs(http.calls) do lu.assertEquals(c.headers.consistencylevel, "eventual") end
  lu.assertStrContains(http.calls[2].url, "$skiptoken=")
  local all = g:all("/users", { query = { top = 999 } })
  lu.assertEquals(#all, 1234)
end

function TestGraphClient.test_errors_are_parsed()
  local sim = world(1)
  local g = client(sim)
  local body, err = g:get("/groups/nope")
  lu.assertNil(body)
  lu.assertEquals(err.status, 404)
  lu.assertEquals(err.code, "Request_ResourceNotFound")
  lu.assertEquals(err.service, "graph")
  lu.assertNotNil(err.request_id)
  lu.assertFalse(err.retryable)
  lu.assertStrContains(tostring(err), "Request_ResourceNotFound")
  lu.assertStrContains(tostring(err), "request-id")
  local _, e2 = g:post("/applications", { displayName = "x", colour = "blue" })
  lu.assertEquals(e2.status, 400)
  lu.assertStrContains(e2.message, "colour")
  -- items raises the error object
  local ok, e3 = pcall(function() for _ in g:items("/gropus") do end end)
  lu.assertFalse(ok)
  lu.assertEquals(e3.status, 400)
end

function TestGraphClient.test_token_refresh_once_on_401()
  local sim = world(1)
  local calls = {}
  local g = client(sim, { token = function(refresh)
    calls[#calls + 1] = refresh
    return refresh and "good" or "stale"
  end })
  local body = g:get("/users")
  lu.assertEquals(#body.value, 1)
  lu.assertEquals(calls, { false, true })
  local g2 = client(sim, { token = function() return "bad" end })
  local _, err = g2:get("/users")
  lu.assertEquals(err.status, 401)
  lu.assertEquals(err.code, "InvalidAuthenticationToken")
end

function TestGraphClient.test_create_then_read_waits_out_replication_lag()
  local sim = world(1)
  sim.lag = 3
  local g, _, slept = client(sim)
  local app = assert(g:post("/applications", { displayName = "lagged" }))
  local got, err = g:get("/applications/" .. app.id)
  lu.assertNil(err)
  lu.assertEquals(got.id, app.id)
  lu.assertTrue(#slept >= 1)
  -- an id this client did not create is not waited for unless asked
  local _, e404 = g:get("/applications/00000000-0000-4000-8000-000000000000")
  lu.assertEquals(e404.status, 404)
end

function TestGraphClient.test_batch_chunks_and_retries_throttled_items()
  local sim = world(50, { graph_rate = 30 })
  local g, http, slept = client(sim)
  local reqs = {}
  for i = 1, 45 do
    reqs[i] = { method = "GET", url = string.format("/users/aaaaaaaa-0000-4000-8000-%012d?$select=id", i) }
  end
  reqs[46] = { id = "bad", method = "GET", url = "/groups/nope" }
  reqs[47] = { id = "dep", method = "GET", url = "/users", dependsOn = { "bad" } }
  local out = assert(g:batch(reqs))
  lu.assertEquals(#out, 47)
  for i = 1, 45 do lu.assertEquals(out[i].status, 200, "item " .. i) end
  lu.assertEquals(out[46].status, 404)
  lu.assertEquals(out[46].error.code, "Request_ResourceNotFound")
  lu.assertEquals(out[47].status, 424)
  lu.assertTrue(#slept >= 1, "throttled items were retried after Retry-After")
  local posts = 0
  for _, c in ipairs(http.calls) do if c.url:find("$batch", 1, true) then posts = posts + 1 end end
  lu.assertTrue(posts >= 4)
end

function TestGraphClient.test_post_patch_delete_shapes()
  local sim = world(1)
  local g = client(sim)
  local grp = assert(g:post("/groups", { displayName = "Ops", mailEnabled = false, securityEnabled = true,
    mailNickname = "ops", groupTypes = graph.array() }))
  lu.assertEquals(grp.displayName, "Ops")
  lu.assertEquals(g:patch("/groups/" .. grp.id, { description = "d" }), true)
  lu.assertEquals(g:post("/groups/" .. grp.id .. "/members/$ref",
    { ["@odata.id"] = "https://graph.microsoft.com/v1.0/directoryObjects/aaaaaaaa-0000-4000-8000-000000000001" }), true)
  lu.assertEquals(g:count("/groups/" .. grp.id .. "/members"), 1)
  lu.assertEquals(g:delete("/groups/" .. grp.id), true)
end
