-- The graph client against the simulator over loopback: a real sign-in (client secret at the
-- simulated token endpoint), TLS with connect_to, the production URLs.  Paging across many
-- pages, $batch under per-item throttling, and the replication-lag re-read.
local lu = require "luaunit"

local S, C                                  -- one simulator and one client for the file

local function setup()
  if C then return S, C end
  S = assert(require("t2t.sim").start { users = 260, seed = 5, log = true })
  local prof = assert(require("t2t.config").selected({ sim_instance = S }, "contoso"))
  C = assert(require("t2t.connect").clients(prof, { ca_file = S.ca_file, connect_to = S.connect_to }, S)).graph
  return S, C
end

-- Requests in the simulator's log since sequence `since` matching method and path pattern.
local function logged(s, since, method, pattern)
  local log = assert(s:control("GET", "/_sim/log?since=" .. since))
  local n = 0
  for _, e in ipairs(log.value) do
    if e.method == method and tostring(e.path):match(pattern) then n = n + 1 end
  end
  return n, log.last
end

TestGraphE2E = {}

function TestGraphE2E.test_items_follows_many_pages()
  local s, g = setup()
  local _, mark = logged(s, 0, "GET", "^$")
  local total = assert(g:count("/users"))
  local seen, n = {}, 0
  for u in g:items("/users", { query = { top = 25, select = "id,userPrincipalName" } }) do
    lu.assertNil(seen[u.id], "each user once")
    seen[u.id] = true
    n = n + 1
  end
  lu.assertTrue(total >= 260)
  lu.assertEquals(n, total)
  local pages = logged(s, mark, "GET", "^/v1%.0/users")
  lu.assertTrue(pages >= math.ceil(total / 25), "one request per page: " .. pages)
end

function TestGraphE2E.test_batch_retries_throttled_items()
  local s, g = setup()
  local ids = {}
  for u in g:items("/users", { query = { top = 40, select = "id" } }) do
    ids[#ids + 1] = u.id
    if #ids == 30 then break end
  end
  -- 25 requests per 10 s for this app: a 30-item batch gets per-item 429s with Retry-After
  assert(s:control("POST", "/_sim/faults", { faults = "graph_rate=25" }))
  local _, mark = logged(s, 0, "GET", "^$")
  local reqs = {}
  for i, id in ipairs(ids) do reqs[i] = { method = "GET", url = "/users/" .. id .. "?$select=id" } end
  local results = assert(g:batch(reqs))
  assert(s:control("POST", "/_sim/faults", { faults = "" }))
  for i, id in ipairs(ids) do
    local r = results[i]
    lu.assertEquals(r.status, 200, "item " .. i)
    lu.assertEquals(r.body.id, id)
  end
  local posts = logged(s, mark, "POST", "^/v1%.0/%$batch")
  lu.assertTrue(posts >= 3, "two chunks of <= 20, then the throttled items again: " .. posts)
end

function TestGraphE2E.test_unknown_query_option_is_misuse()
  local _, g = setup()
  lu.assertErrorMsgContains("unknown query option '$top'", g.get, g, "/users", { query = { ["$top"] = 5 } })
end

function TestGraphE2E.test_read_after_create_waits_out_replication_lag()
  local s, g = setup()
  assert(s:control("POST", "/_sim/faults", { faults = "lag=1s" }))
  local created = assert(g:post("/groups", { displayName = "Lagged", mailEnabled = false,
    mailNickname = "lagged", securityEnabled = true, groupTypes = require("t2t.graph").array() }))
  local got, err = g:get("/groups/" .. created.id)
  assert(s:control("POST", "/_sim/faults", { faults = "" }))
  lu.assertNotNil(got, tostring(err))
  lu.assertEquals(got.displayName, "Lagged")
  -- without the re-read the simulator does answer 404 during the lag
  assert(s:control("POST", "/_sim/faults", { faults = "lag=5s" }))
  local other = assert(g:post("/groups", { displayName = "Lagged2", mailEnabled = false,
    mailNickname = "lagged2", securityEnabled = true, groupTypes = require("t2t.graph").array() }))
  local r, e = g:get("/groups/" .. other.id, { wait_visible = false })
  assert(s:control("POST", "/_sim/faults", { faults = "" }))
  lu.assertNil(r)
  lu.assertEquals(e.status, 404)
end
