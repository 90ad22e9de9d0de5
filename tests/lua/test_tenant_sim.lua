-- t2t.tenant against the real simulator services (login, Graph, EXO) through the production
-- clients; tests/e2e/test_setup.sh covers the full runbooks.
local lu = require "luaunit"

local ok_sim, sim = pcall(require, "t2t.sim")
local tenant = require "t2t.tenant"
local verify = require "t2t.tenant.verify"
local plan = require "t2t.plan"

local S             -- the running simulator, shared by the tests of this file

local function start()
  if S then return S end
  local s, err = sim.start { users = 5, seed = 7 }
  assert(s, err)
  S = s
  return s
end

-- A tenant object on the simulator's seeded tenant `name`, through the production clients
-- (t2t.auth tokens, t2t.graph, t2t.exo) as the runbooks build them.
local function open(s, name, pl, lines)
  local session = require "t2t.tenant.session"
  local p = s.profile.tenants[name]
  local c = assert(session.clients(p, { ca_file = s.ca_file, connect_to = s.connect_to }, s))
  c.exo.retry_base = 0.05          -- the EXO module's 2 s backoff, shortened for the test
  return tenant.new { name = name, id = p.tenant_id, domain = p.initial_domain, plan = pl, exo = c.exo,
                      graph = c.graph, say = function(l) lines[#lines + 1] = l end, settle = 5, poll = 0.2 }
end

local function flow(s, dry)
  local lines = {}
  local pl = plan.new { dry_run = dry, out = function(l) lines[#lines + 1] = l end }
  local t, src = open(s, "fabrikam", pl, lines), open(s, "contoso", pl, lines)
  local sdom = src.domain
  local app = assert(t:ensure_app { name = "fabrikam_Friends_contoso" })
  local sp = assert(t:ensure_sp(app))
  assert(t:grant_consent(sp, tenant.EXO_APP_ID, "Mailbox.Migration"))
  assert(t:ensure_org_customization())
  assert(t:ensure_org_relationship { partner_id = src.id, partner_domains = { sdom }, capability = "Inbound",
                                     name = "fabrikam_contoso" })
  -- source: consent as the source admin, scope group, relationship
  local ssp = assert(src:ensure_sp(app.planned and app or app.appId))
  assert(src:grant_consent(ssp, tenant.EXO_APP_ID, "Mailbox.Migration"))
  assert(src:ensure_org_customization())
  local g = assert(src:ensure_scope_group("T2T-Migration-Scope", { create = true }))
  local mb = s.profile.sample_mailboxes or {}
  if mb[1] then assert(src:ensure_members(g.Name or "T2T-Migration-Scope", { mb[1] }, g.planned)) end
  assert(src:ensure_org_relationship { partner_id = t.id, partner_domains = { t.domain }, capability = "RemoteOutbound",
                                       name = "fabrikam_contoso", oauth_app_id = app.appId, scopes = { "T2T-Migration-Scope" } })
  local ep, err = t:ensure_endpoint { name = "fabrikam_contoso", remote_tenant = sdom, app_id = app.appId,
    secret = function()
      local x, e = t:add_secret(app, { days = 30 })
      if e == "planned" then return nil end
      return assert(x, e).secret
    end }
  if not dry then assert(ep, tostring(err)) end
  return { t = t, src = src, app = app, plan = pl, lines = lines }
end

local function shape(st)
  local out = {}
  for _, t in pairs(st.tenants) do
    local n = 0
    for _ in pairs(t.dir.objects) do n = n + 1 end
    local a = 0
    for _ in pairs(t.dir.app_role_assignments or {}) do a = a + 1 end
    local r, e, g = 0, 0, 0
    for _ in pairs(t.exo.org_relationships or {}) do r = r + 1 end
    for _ in pairs(t.exo.migration_endpoints or {}) do e = e + 1 end
    for _ in pairs(t.exo.recipients or {}) do g = g + 1 end
    out[t.name] = { objects = n, assignments = a, orgrels = r, endpoints = e, recipients = g }
  end
  return out
end

TestTenantSim = {}

function TestTenantSim.test_setup_against_the_simulator_then_nothing_to_change()
  if not ok_sim then lu.skip("the simulator is not in this build") end
  local s = start()
  local before = assert(s:control("GET", "/_sim/state"))
  local planned = flow(s, true)
  lu.assertTrue(planned.plan.planned >= 8, table.concat(planned.lines, "\n"))
  local after_plan = assert(s:control("GET", "/_sim/state"))
  lu.assertEquals(shape(after_plan), shape(before))
  local first = flow(s, false)
  lu.assertTrue(first.plan.applied >= 8, table.concat(first.lines, "\n"))
  if os.getenv("T2T_TEST_SHOW") then print(table.concat(first.lines, "\n")) end
  local second = flow(s, false)
  if os.getenv("T2T_TEST_SHOW") then print(table.concat(second.lines, "\n")) end
  lu.assertEquals(#second.plan.changes, 0, table.concat(second.lines, "\n"))
  local checks = verify.target(second.t, { app_id = first.app.appId, partner_id = second.src.id,
                                           partner_domain = second.src.domain, partner_domains = { second.src.domain } })
  for _, c in ipairs(checks) do lu.assertNotEquals(c.status, "Failed", c.what .. ": " .. tostring(c.fix)) end
  checks = verify.source(second.src, { app_id = first.app.appId, partner_id = second.t.id })
  for _, c in ipairs(checks) do lu.assertNotEquals(c.status, "Failed", c.what .. ": " .. tostring(c.fix)) end
  s:stop()
  S = nil
end

-- Under injected faults the same flow converges to the clean run's state: no duplicates.
function TestTenantSim.test_faults_converge_without_duplicates()
  if not ok_sim then lu.skip("the simulator is not in this build") end
  local clean = assert(sim.start { users = 5, seed = 7 })
  flow(clean, false)
  local want = shape(assert(clean:control("GET", "/_sim/state")))
  clean:stop()
  local s = assert(sim.start { users = 5, seed = 7, faults = "429=0.1,503=0.05,reset=0.02,lost=0.02,lag=1s,retry_after=0" })
  local ok, err
  for _ = 1, 3 do                  -- a run that gives up is simply run again, as an admin would
    ok, err = pcall(flow, s, false)
    if ok then break end
  end
  lu.assertTrue(ok, tostring(err))
  local got = shape(assert(s:control("GET", "/_sim/state")))
  local log = s:control("GET", "/_sim/log?since=0")
  s:stop()
  lu.assertEquals(got, want)
  if type(log) == "table" and os.getenv("T2T_TEST_SHOW") then print("requests:", #(log.entries or log)) end
end
