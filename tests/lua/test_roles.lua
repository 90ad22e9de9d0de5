-- t2t.roles: needs declarations, the catalog's permission logic, effective holdings (direct,
-- group, PIM eligible and activated, PIM for Groups, time-bound, service principals apart),
-- ensure-style role changes and their refusals, the ScubaGear / Maester checks, the known issues,
-- and the preflight's verdicts — against the simulator, or on plain data where that is enough.
local lu = require "luaunit"
local catalog = require "t2t.roles.catalog"
local needs = require "t2t.roles.needs"
local checks = require "t2t.roles.checks"
local issues = require "t2t.roles.issues"
local preflight = require "t2t.roles.preflight"
local explain = require "t2t.roles.explain"
local roles = require "t2t.roles"
local runbook = require "t2t.runbook"

TestRolesNeeds = {}

local function declare(n, params)
  return pcall(runbook.declare, { name = "x", description = "x", run = function() end, needs = n,
                                  params = params or { { name = "invite", type = "boolean" } } }, "x.lua")
end

function TestRolesNeeds.test_declarations_are_checked_on_load()
  lu.assertTrue((declare { graph = { "Application.ReadWrite.All" }, exchange = { "Migration" } }))
  local ok, err = declare { graph = { "Application.ReadWrite.Everything" } }
  lu.assertFalse(ok)
  lu.assertStrContains(err, "unknown Microsoft Graph permission 'Application.ReadWrite.Everything'")
  ok, err = declare { exchange = { "Move Mailbox" } }
  lu.assertStrContains(err, "unknown Exchange management role 'Move Mailbox'")
  ok, err = declare { grpah = {} }
  lu.assertStrContains(err, "unknown field 'grpah'")
  ok, err = declare { when = { nosuch = { graph = { "User.Invite.All" } } } }
  lu.assertStrContains(err, "needs.when.nosuch names no parameter")
  ok, err = declare { target = { graph = {} }, other = {} }
  lu.assertStrContains(err, "must be target or source")
  lu.assertTrue((declare { target = { when = { invite = { graph = { "User.Invite.All" } } } }, source = {} }))
end

function TestRolesNeeds.test_resolve_when_sides_and_least_privilege()
  local n = { target = { graph = { "Application.Read.All", "Application.ReadWrite.All" }, exchange = { "Migration" },
                         when = { invite = { graph = { "User.Invite.All" } } } },
              source = { graph = { "Application.Read.All" } } }
  local r = needs.resolve(n, "target", {})
  lu.assertEquals(r.graph, { "Application.ReadWrite.All" })         -- the write implies the read
  lu.assertEquals(needs.resolve(n, "target", { invite = true }).graph, { "Application.ReadWrite.All", "User.Invite.All" })
  lu.assertEquals(needs.resolve(n, "source", {}).graph, { "Application.Read.All" })
  local items = needs.items(r, "app")
  lu.assertEquals(#items, 3)                                         -- graph, Exchange.ManageAsApp, Exchange roles
  lu.assertEquals(items[2].name, "Exchange.ManageAsApp")
  lu.assertEquals(items[3].cover, "Exchange Recipient Administrator")
  local uitems = needs.items(r, "user")
  lu.assertEquals(uitems[2].name, "Exchange.Manage")
  lu.assertEquals(uitems[4].any, { "Application Administrator", "Cloud Application Administrator" })
end

-- A `when` key "param=value" counts only when the parameter has that value: `--backend exo` given
-- explicitly must not ask for the Graph backend's permission (it once did: any value counted).
function TestRolesNeeds.test_when_a_parameter_has_a_value()
  local params = { { name = "backend", type = "string" }, { name = "invite", type = "boolean" } }
  local n = { target = { exchange = { "Migration" },
                         when = { ["backend=graph"] = { graph = { "CrossTenantContentMigration.ReadWrite.All" } } } } }
  lu.assertTrue((declare(n, params)))
  lu.assertEquals(needs.resolve(n, "target", {}).graph, {})
  lu.assertEquals(needs.resolve(n, "target", { backend = "exo" }).graph, {})
  lu.assertEquals(needs.resolve(n, "target", { backend = "graph" }).graph, { "CrossTenantContentMigration.ReadWrite.All" })
  lu.assertEquals({ needs.when_key("backend=graph") }, { "backend", "graph" })
  lu.assertEquals({ needs.when_key("bad-item-limit") }, { "bad-item-limit" })
  local ok, err = declare({ when = { ["nosuch=graph"] = { graph = { "User.Invite.All" } } } }, params)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "needs.when.nosuch=graph names no parameter")
  ok, err = declare({ when = { ["backend="] = { graph = { "User.Invite.All" } } } }, params)
  lu.assertFalse(ok)
  lu.assertStrContains(err, "needs.when: 'backend=' is not PARAM or PARAM=VALUE")
  -- bootstrap --with backend=graph grants the value's needs; --with backend (no value) does not
  local bootstrap = require "t2t.roles.bootstrap"
  local decl = { name = "x", needs = n }
  local function grants(with)
    return table.concat(bootstrap.permissions({ decl }, { as = "target", with = with }).graph, ",")
  end
  lu.assertStrContains(grants { "backend=graph" }, "CrossTenantContentMigration.ReadWrite.All")
  lu.assertNotStrContains(grants { "backend" }, "CrossTenantContentMigration")
end

function TestRolesNeeds.test_catalog()
  lu.assertTrue(catalog.implies("Directory.Read.All", "Application.Read.All"))
  lu.assertFalse(catalog.implies("Application.ReadWrite.All", "Directory.Read.All"))
  lu.assertFalse(catalog.implies("Directory.Read.All", "RoleManagement.Read.Directory"))
  lu.assertEquals(catalog.minimal { "Directory.Read.All", "Application.Read.All", "RoleManagement.Read.Directory",
                                    "RoleManagement.ReadWrite.Directory" },
                  { "Directory.Read.All", "RoleManagement.ReadWrite.Directory" })
  lu.assertEquals(catalog.exchange_cover { "View-Only Configuration" }, "Global Reader")
  lu.assertEquals(catalog.exchange_cover { "Move Mailboxes", "Mail Recipients" }, "Exchange Recipient Administrator")
  lu.assertEquals(catalog.exchange_cover { "Federated Sharing" }, "Exchange Administrator")
  lu.assertEquals(catalog.role("Exchange Service Administrator").name, "Exchange Administrator")
  lu.assertEquals(#catalog.cisa_roles(), 8)
  lu.assertItemsEquals(catalog.cmdlet_roles("New-MigrationBatch"), { "Move Mailboxes", "Migration" })
end

-- Plain holdings for the checks and the issues.
local function holding(role, p, o)
  local h = { role = { id = catalog.role(role).id, name = role }, principal = p, how = "direct", state = "active",
              kind = "permanent", scope = "/", outside_pim = true }
  for k, v in pairs(o or {}) do h[k] = v end
  return h
end
local U1 = { id = "u1", kind = "user", upn = "a@x" }
local U2 = { id = "u2", kind = "user", upn = "b@x", immutable_id = "abc==" }
local SP = { id = "sp", kind = "servicePrincipal", name = "app" }

TestRolesChecks = {}

function TestRolesChecks.test_scubagear_without_p2()
  local data = { p2 = false, pim_groups = {}, holdings = {
    holding("Global Administrator", U1), holding("Global Administrator", SP),
    holding("Global Administrator", U2, { how = "group", group = { name = "G" } }),
    holding("Exchange Administrator", U2) } }
  local by = {}
  for _, c in ipairs(checks.run({}, data)) do by[c.id] = c end
  lu.assertEquals(by["MS.AAD.7.1v1"].result, "pass")               -- 2 users (the app is not counted)
  lu.assertStrContains(by["MS.AAD.7.1v1"].detail, "2 Global Administrator user(s)")
  lu.assertEquals(by["MS.AAD.7.2v1"].result, "fail")               -- 2 GA, 0 other privileged users
  lu.assertEquals(by["MS.AAD.7.3v1"].result, "fail")               -- b@x is synchronized
  lu.assertEquals(by["MS.AAD.7.4v1"].result, "fail")
  lu.assertStrContains(by["MS.AAD.7.9v1"].detail, "P2")
  lu.assertEquals(by["CIS.M365.1.1.3"].result, "pass")
  lu.assertEquals(by["MT.1026"].result, "pass")                    -- b@x holds GA through a group, not permanent-direct
end

TestRolesIssues = {}

function TestRolesIssues.test_applying()
  local list = issues.applying({ holding("Exchange Administrator", U1, { how = "group", group = { name = "EXA" } }),
                                 holding("Global Reader", U1, { state = "eligible", kind = "eligible", how = "group",
                                                                 group = { name = "R" } }) },
                               { stale = { { state = "eligible", role = { name = "Global Administrator" }, principal_id = "gone" } } },
                               { exchange = true })
  local ids = {}
  for _, i in ipairs(list) do ids[i.id] = i end
  lu.assertNotNil(ids["new-eac-group-roles"])
  lu.assertStrContains(ids["new-eac-group-roles"].applies, "through group EXA")
  lu.assertNotNil(ids["pim-deleted-group"])
  lu.assertNotNil(ids["activate-then-new-token"])
  lu.assertNotNil(ids["linked-role-groups"])
  lu.assertNil(ids["pim-double-active"])
end

TestRolesPreflight = {}

-- A principal's grants as preflight reads them, made up.
local function grants(kind, held, wids, exo, xroles)
  return { principal = { kind = kind, id = "p", appid = "app-id", name = "who" }, held = held, wids = wids,
           exo_access = function() return exo end,
           exchange = function() return xroles or {} end }
end

function TestRolesPreflight.test_each_kind_of_item()
  local r = needs.resolve({ graph = { "Application.Read.All" }, exchange = { "Migration" },
                            entra = { "Privileged Role Administrator" } })
  local rep = preflight.evaluate({ name = "t" }, r, grants("app", { ["Directory.Read.All"] = true }, {}, false, {}))
  lu.assertFalse(rep.ok)
  local st = {}
  for _, e in ipairs(rep.items) do st[e.item.kind] = e end
  lu.assertTrue(st.graph.ok)
  lu.assertStrContains(st.graph.via, "Directory.Read.All")          -- held through a higher permission
  lu.assertFalse(st.exchange_access.ok)
  lu.assertFalse(st.exchange.ok)
  lu.assertEquals(st.exchange.item.missing_roles, { "Migration" })
  lu.assertFalse(st.entra.ok)
  rep = preflight.evaluate({ name = "t" }, r, grants("app", { ["Application.Read.All"] = true },
    { [catalog.GLOBAL_ADMIN] = true }, true, { Migration = "via Recipient Management" }))
  lu.assertTrue(rep.ok)
  lu.assertStrContains(explain.message({ principal = { kind = "app", name = "who" }, items = {
    { ok = false, item = { kind = "exchange_access", name = "Exchange.ManageAsApp" } } } }, "contoso"),
    "lacks Exchange.ManageAsApp")
end

-- Against the simulator: holdings, ensure, refusals.
TestRolesSim = {}
local S, T

local function tenant()
  if T then return T end
  S = assert(require("t2t.sim").start { users = 3, seed = 9 })
  local ctx = require("t2t.context").new({ sim = true, sim_instance = S, yes = true, output = "json" }, nil)
  T = assert(require("t2t.tenant.session").open(ctx, "source", "contoso"))
  return T
end

local function user(t, alias)
  return assert(t:gpost("/users", { accountEnabled = true, displayName = alias, mailNickname = alias,
    userPrincipalName = alias .. "@" .. t.domain, passwordProfile = { password = "Pa55-" .. alias } }))
end

function TestRolesSim.test_holdings_direct_group_pim_and_apps()
  local t = tenant()
  local ann, bo, cy = user(t, "ann"), user(t, "bo"), user(t, "cy")
  local g = assert(roles.ensure_assignable_group(t, "Exchange admins (PIM)"))
  assert(roles.ensure_member(t, g, { id = ann.id, name = "ann", kind = "user" }))
  assert(roles.ensure_assignment(t, { principal = { id = g.id, name = g.displayName, kind = "group" },
                                      role = "Exchange Administrator", eligible = true }))
  assert(roles.ensure_assignment(t, { principal = { id = bo.id, name = "bo", kind = "user" }, role = "Global Administrator",
                                      duration = "P1D" }))
  local g2 = assert(roles.ensure_assignable_group(t, "Readers"))
  assert(roles.ensure_assignment(t, { principal = { id = g2.id, name = "Readers", kind = "group" }, role = "Global Reader" }))
  assert(t:gpost("/identityGovernance/privilegedAccess/group/eligibilityScheduleRequests", { action = "adminAssign",
    accessId = "member", principalId = cy.id, groupId = g2.id, scheduleInfo = { expiration = { type = "noExpiration" } } }))
  local d = assert(roles.data(t, true))
  lu.assertTrue(d.p2)
  local function find(list, id)
    for _, h in ipairs(list) do if h.principal.id == id then return h end end
  end
  local exa = roles.holders(t, "Exchange Administrator")
  local a = find(exa, ann.id)
  lu.assertEquals({ a.how, a.state, a.group.name }, { "group", "eligible", "Exchange admins (PIM)" })
  lu.assertStrContains(roles.describe(a), "via group Exchange admins (PIM), eligible (PIM), not activated")
  lu.assertEquals(exa[#exa].principal.kind, "servicePrincipal")     -- apps after users and groups
  local b = find(roles.holders(t, "Global Administrator"), bo.id)
  lu.assertEquals(b.kind, "time-bound")
  lu.assertStrContains(roles.describe(b), "active until ")
  local c = find(roles.holders(t, "Global Reader"), cy.id)
  lu.assertEquals({ c.state, c.membership }, { "eligible", "pim-eligible" })
  local mine = assert(roles.of(t, "ann@" .. t.domain))
  lu.assertEquals(#mine.entra, 1)
  lu.assertEquals(mine.exchange, {})                                 -- no Exchange-native grant
  -- a re-run changes nothing
  local before = t.plan.applied
  assert(roles.ensure_assignment(t, { principal = { id = g.id, name = g.displayName, kind = "group" },
                                      role = "Exchange Administrator", eligible = true }))
  assert(roles.ensure_member(t, g, { id = ann.id, name = "ann", kind = "user" }))
  lu.assertEquals(t.plan.applied, before)
end

function TestRolesSim.test_refusals_with_the_reason()
  local t = tenant()
  assert(t:gpost("/groups", { displayName = "Plain", mailEnabled = false, mailNickname = "plain", securityEnabled = true }))
  local ok, err = roles.ensure_assignable_group(t, "Plain")
  lu.assertNil(ok)
  lu.assertStrContains(tostring(err), "can't be made role-assignable")
  local g = assert(roles.ensure_assignable_group(t, "Holders"))
  ok, err = roles.ensure_member(t, g, { id = "x", name = "Plain", kind = "group" })
  lu.assertNil(ok)
  lu.assertStrContains(tostring(err), "can't be nested")
end

function TestRolesSim.test_checks_against_the_simulator()
  local t = tenant()
  local d = assert(roles.data(t, true))
  local by = {}
  for _, c in ipairs(checks.run(t, d)) do by[c.id] = c end
  lu.assertEquals(by["MS.AAD.7.6v1"].result, "fail")                -- default policy: no approval
  local a = t:glist("/policies/roleManagementPolicyAssignments?$filter=scopeId eq '/' and scopeType eq 'DirectoryRole' " ..
                    "and roleDefinitionId eq '" .. catalog.GLOBAL_ADMIN .. "'")
  assert(t:gpatch("/policies/roleManagementPolicies/" .. a[1].policyId .. "/rules/Approval_EndUser_Assignment",
    { ["@odata.type"] = "#microsoft.graph.unifiedRoleManagementPolicyApprovalRule", setting = { isApprovalRequired = true } }))
  for _, c in ipairs(checks.run(t, d)) do by[c.id] = c end
  lu.assertEquals(by["MS.AAD.7.6v1"].result, "pass")
end

function TestRolesSim.tearDown() end
function TestRolesSim.test_zz_stop()
  if S then S:stop() end
  S, T = nil, nil
end

TestRolesEnsure = {}

-- The 500-group limit is checked before anything is made (a stub tenant: no service needed).
function TestRolesEnsure.test_the_501st_role_assignable_group_is_refused()
  local made = false
  local t = { name = "contoso", note = function() end,
    glist = function(_, path)
      if path:find("displayName eq", 1, true) then return {} end
      local l = {}
      for i = 1, 500 do l[i] = { id = "g" .. i } end
      return l
    end,
    create = function() made = true end }
  local ok, err = roles.ensure_assignable_group(t, "one too many")
  lu.assertNil(ok)
  lu.assertStrContains(tostring(err), "the maximum (500)")
  lu.assertFalse(made)
end
