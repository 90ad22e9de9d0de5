-- The simulator's one authorization check (t2t.sim.authz) and the role data behind it
-- (t2t.sim.pim, t2t.sim.exo.rbac, the Graph PIM routes): every route has an entry, app roles and
-- delegated scopes + Entra roles decide for Graph, linked and native Exchange role groups for
-- Exchange, PIM activations follow the simulated clock, and role-assignable group rules hold.
local lu = require "luaunit"
local cjson = require "cjson"
local context = require "t2t.sim.context"
local seed = require "t2t.sim.seed"
local model = require "t2t.sim.model"
local pim = require "t2t.sim.pim"
local authz = require "t2t.sim.authz"
local catalog = require "t2t.roles.catalog"
local graph = require "t2t.sim.graph"
local exo_svc = require "t2t.sim.exo"
local exo = require "t2t.exo"

local GA, PRA = catalog.GLOBAL_ADMIN, catalog.PRIVILEGED_ROLE_ADMIN
local EXADMIN = catalog.role("Exchange Administrator").id
local RECIPIENT_ADMIN = catalog.role("Exchange Recipient Administrator").id
local GRAPH_AUD, EXO_AUD = "https://graph.microsoft.com", "https://outlook.office365.com"

local sim = context.new { state = seed.pair { users = 4, seed = 11 }, seed = 11 }
local T = sim.state.tenants[sim.state.pair.source]

local function token(c)
  c.tid = c.tid or T.id
  c.aud = c.aud or GRAPH_AUD
  return (sim.tokens:issue(c))
end

local function gcall(tok, method, path, body)
  local req = { method = method, path = path, headers = { authorization = "Bearer " .. tok },
                body = body and cjson.encode(body) or nil }
  if body then req.headers["content-type"] = "application/json"; req.json = body end
  local r = graph.handle(sim, req)
  local ok, doc = pcall(cjson.decode, r.body or "")
  return r.status, ok and doc or r.body, req
end

local function xcall(c, cmdlet, params)
  local body = exo.json_encode { CmdletInput = { CmdletName = cmdlet,
    Parameters = params and next(params) and params or cjson.decode("{}") } }
  local req = { method = "POST", path = "/adminapi/beta/" .. T.id .. "/InvokeCommand", host = "outlook.office365.com",
                body = body, query = {}, headers = { authorization = "Bearer " .. token(c),
                                                     ["content-type"] = "application/json" } }
  c.aud = EXO_AUD
  req.headers.authorization = "Bearer " .. token(c)
  local r = exo_svc.handle(sim, req)
  local doc = r.body
  if type(doc) == "string" and doc:find("^%s*{") then doc = cjson.decode(doc) end
  return r.status, doc, req
end

local function user(upn)
  local u = model.add_object(sim.state, T, { ["@odata.type"] = model.ODATA.user, id = sim.rng:guid(),
    userPrincipalName = upn .. "@" .. T.initial_domain, displayName = upn, accountEnabled = true, created = 0 })
  return u
end

local function group(name, assignable)
  return model.add_object(sim.state, T, { ["@odata.type"] = model.ODATA.group, id = sim.rng:guid(),
    displayName = name, securityEnabled = true, mailEnabled = false, groupTypes = {},
    isAssignableToRole = assignable, created = 0 })
end

local ADMIN = { appid = "admin", oid = "admin", idtyp = "app", roles = { "RoleManagement.ReadWrite.Directory",
  "Application.ReadWrite.All", "Group.ReadWrite.All", "PrivilegedAccess.ReadWrite.AzureADGroup" } }

TestSimAuthz = {}

function TestSimAuthz.setUp() sim.clock_offset = 0 end

-- Every route registered with the Graph simulator has an authorization entry, and is registered
-- once (the first match answers: a second registration would never run).
function TestSimAuthz.test_every_graph_route_has_an_entry()
  local missing, seen, twice = {}, {}, {}
  for _, mod in ipairs { "apps", "dir", "org", "roles", "pim_requests", "pim_policies", "delta" } do
    for _, r in ipairs(require("t2t.sim.graph." .. mod).routes) do
      local key = r[1] .. " " .. table.concat(r[2], "/")
      if authz.GRAPH[key] == nil then missing[#missing + 1] = key end
      if seen[key] then twice[#twice + 1] = key end
      seen[key] = true
    end
  end
  lu.assertEquals(missing, {})
  lu.assertEquals(twice, {})
  for key, e in pairs(authz.GRAPH) do
    local needs = type(e) == "string" and { e } or type(e) == "table" and (e[1] and e or { e.need }) or {}
    for _, n in ipairs(needs) do lu.assertNotNil(catalog.GRAPH[n], key .. " needs unknown " .. tostring(n)) end
  end
end

function TestSimAuthz.test_app_permission_decides_and_a_higher_one_satisfies()
  local st, doc = gcall(token { appid = "a", idtyp = "app", roles = { "User.Read.All" } }, "GET", "/v1.0/applications")
  lu.assertEquals(st, 403)
  lu.assertEquals(doc.error.code, "Authorization_RequestDenied")
  st = gcall(token { appid = "a", idtyp = "app", roles = { "Application.ReadWrite.All" } }, "GET", "/v1.0/applications")
  lu.assertEquals(st, 200)
  local _, _, req = gcall(token { appid = "a", idtyp = "app", roles = { "Directory.Read.All" } }, "GET", "/v1.0/applications")
  lu.assertEquals(req.note.authz, "Application.Read.All")              -- the request log names the need
end

function TestSimAuthz.test_delegated_needs_scope_and_role()
  local u = user("helpdesk")
  local scp = "Application.ReadWrite.All Directory.Read.All"
  local body = { displayName = "x" }
  lu.assertEquals((gcall(token { oid = u.id, scp = scp }, "POST", "/v1.0/applications", body)), 403)
  lu.assertEquals((gcall(token { oid = u.id, scp = scp, wids = { catalog.role("Application Administrator").id } },
                         "POST", "/v1.0/applications", body)), 201)
  lu.assertEquals((gcall(token { oid = u.id, scp = scp, wids = { GA } }, "POST", "/v1.0/applications", body)), 201)
  lu.assertEquals((gcall(token { oid = u.id, scp = "Directory.Read.All", wids = { GA } }, "POST",
                         "/v1.0/applications", body)), 403)                                  -- no scope
  lu.assertEquals((gcall(token { oid = u.id, scp = scp }, "GET", "/v1.0/applications")), 200) -- reads: no role
end

function TestSimAuthz.test_role_assignable_group_rules()
  local tok = token { appid = "a", idtyp = "app", roles = { "Group.ReadWrite.All", "GroupMember.ReadWrite.All" } }
  -- creating one needs RoleManagement.ReadWrite.Directory
  local body = { displayName = "Exchange admins", mailEnabled = false, mailNickname = "exa", securityEnabled = true,
                 isAssignableToRole = true }
  lu.assertEquals((gcall(tok, "POST", "/v1.0/groups", body)), 403)
  local adm = token(ADMIN)
  local st, g = gcall(adm, "POST", "/v1.0/groups", body)
  lu.assertEquals(st, 201)
  -- members of a role-assignable group: RoleManagement.ReadWrite.Directory too
  local u = user("alex")
  local ref = { ["@odata.id"] = "https://graph.microsoft.com/v1.0/directoryObjects/" .. u.id }
  lu.assertEquals((gcall(tok, "POST", "/v1.0/groups/" .. g.id .. "/members/$ref", ref)), 403)
  lu.assertEquals((gcall(adm, "POST", "/v1.0/groups/" .. g.id .. "/members/$ref", ref)), 204)
  -- no nesting, no conversion of an existing group, no role for a plain group
  local plain = group("plain", false)
  local st2, e2 = gcall(adm, "POST", "/v1.0/groups/" .. g.id .. "/members/$ref",
                        { ["@odata.id"] = "https://graph.microsoft.com/v1.0/directoryObjects/" .. plain.id })
  lu.assertEquals(st2, 400)
  lu.assertStrContains(e2.error.message, "nested")
  lu.assertEquals((gcall(adm, "PATCH", "/v1.0/groups/" .. plain.id, { isAssignableToRole = true })), 400)
  lu.assertEquals((gcall(adm, "POST", "/v1.0/roleManagement/directory/roleAssignments",
    { roleDefinitionId = EXADMIN, principalId = plain.id, directoryScopeId = "/" })), 400)
  -- the 500 limit
  local n = pim.assignable_groups(T)
  for i = n + 1, pim.ASSIGNABLE_LIMIT do group("ra" .. i, true) end
  local st3, e3 = gcall(adm, "POST", "/v1.0/groups", { displayName = "one too many", mailEnabled = false,
    mailNickname = "x501", securityEnabled = true, isAssignableToRole = true })
  lu.assertEquals(st3, 400)
  lu.assertStrContains(e3.error.message, "500")
  for id, o in pairs(T.dir.objects) do
    if o.displayName and o.displayName:match("^ra%d+$") then T.dir.objects[id] = nil end
  end
end

function TestSimAuthz.test_pim_eligible_group_activation_follows_the_clock()
  local adm = token(ADMIN)
  local u, g = user("pat"), group("PIM Exchange admins", true)
  model.add_member(T, g.id, u.id)
  local st = gcall(adm, "POST", "/v1.0/roleManagement/directory/roleEligibilityScheduleRequests",
    { action = "adminAssign", principalId = g.id, roleDefinitionId = EXADMIN, directoryScopeId = "/",
      justification = "t2t", scheduleInfo = { expiration = { type = "noExpiration" } } })
  lu.assertEquals(st, 201)
  local now = sim:now()
  lu.assertEquals(pim.wids(T, u.id, now), {})                          -- eligible, not active
  lu.assertEquals(pim.eligibility_for(T, u.id, EXADMIN, "/", now).via, g.id)
  local me = token { oid = u.id, scp = "RoleAssignmentSchedule.ReadWrite.Directory RoleManagement.Read.Directory" }
  local function activate(extra)
    local b = { action = "selfActivate", principalId = u.id, roleDefinitionId = EXADMIN, directoryScopeId = "/",
                justification = "run t2t", scheduleInfo = { expiration = { type = "afterDuration", duration = "PT1H" } } }
    for k, v in pairs(extra or {}) do b[k] = v end
    return gcall(me, "POST", "/v1.0/roleManagement/directory/roleAssignmentScheduleRequests", b)
  end
  lu.assertEquals((activate { justification = cjson.null }), 400)   -- the policy asks for a justification
  lu.assertEquals((activate { scheduleInfo = { expiration = { type = "afterDuration", duration = "PT9H" } } }), 400)
  local st2, r = activate()
  lu.assertEquals(st2, 201)
  lu.assertEquals(r.status, "Provisioned")
  lu.assertEquals(pim.wids(T, u.id, sim:now()), { EXADMIN })
  local _, mine = gcall(me, "GET", "/v1.0/roleManagement/directory/roleAssignmentScheduleInstances/" ..
                        "filterByCurrentUser(on='principal')")
  lu.assertEquals(mine.value[1].assignmentType, "Activated")
  lu.assertEquals(mine.value[1].memberType, "Group")
  sim.clock_offset = 3601                                              -- the activation expires
  lu.assertEquals(pim.wids(T, u.id, sim:now()), {})
  -- someone else cannot activate for them
  local other = user("eve")
  local st3 = gcall(token { oid = other.id, scp = "RoleAssignmentSchedule.ReadWrite.Directory" }, "POST",
    "/v1.0/roleManagement/directory/roleAssignmentScheduleRequests",
    { action = "selfActivate", principalId = other.id, roleDefinitionId = EXADMIN, justification = "x",
      scheduleInfo = { expiration = { type = "afterDuration", duration = "PT1H" } } })
  lu.assertEquals(st3, 400)                                            -- not eligible
end

function TestSimAuthz.test_pim_for_groups_membership_and_future_assignment()
  local adm = token(ADMIN)
  local u, g = user("gina"), group("PIM group", true)
  model.add_role_assignment(T, { id = sim.rng:guid(), roleDefinitionId = RECIPIENT_ADMIN, principalId = g.id,
                                 directoryScopeId = "/" })
  lu.assertEquals((gcall(adm, "POST", "/v1.0/identityGovernance/privilegedAccess/group/eligibilityScheduleRequests",
    { action = "adminAssign", accessId = "member", principalId = u.id, groupId = g.id,
      scheduleInfo = { expiration = { type = "noExpiration" } } })), 201)
  lu.assertEquals(pim.wids(T, u.id, sim:now()), {})
  lu.assertEquals((gcall(adm, "GET", "/v1.0/identityGovernance/privilegedAccess/group/eligibilityScheduleInstances")), 400)
  local _, el = gcall(adm, "GET", "/v1.0/identityGovernance/privilegedAccess/group/eligibilityScheduleInstances?" ..
                      "$filter=groupId eq '" .. g.id .. "'")
  lu.assertEquals(#el.value, 1)
  local me = token { oid = u.id, scp = "PrivilegedAssignmentSchedule.ReadWrite.AzureADGroup" }
  lu.assertEquals((gcall(me, "POST", "/v1.0/identityGovernance/privilegedAccess/group/assignmentScheduleRequests",
    { action = "selfActivate", accessId = "member", principalId = u.id, groupId = g.id, justification = "x",
      scheduleInfo = { expiration = { type = "afterDuration", duration = "PT2H" } } })), 201)
  lu.assertEquals(pim.wids(T, u.id, sim:now()), { RECIPIENT_ADMIN })
  -- an admin assignment that starts tomorrow is not in force today
  local v = user("vic")
  local tomorrow = os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(sim:now()) + 86400)
  lu.assertEquals((gcall(adm, "POST", "/v1.0/roleManagement/directory/roleAssignmentScheduleRequests",
    { action = "adminAssign", principalId = v.id, roleDefinitionId = GA, directoryScopeId = "/", justification = "x",
      scheduleInfo = { startDateTime = tomorrow, expiration = { type = "afterDuration", duration = "P2D" } } })), 201)
  lu.assertEquals(pim.wids(T, v.id, sim:now()), {})
  sim.clock_offset = 86400 + 60
  lu.assertEquals(pim.wids(T, v.id, sim:now()), { GA })
end

function TestSimAuthz.test_policies_and_without_p2()
  local adm = token(ADMIN)
  local _, assigns = gcall(adm, "GET", "/v1.0/policies/roleManagementPolicyAssignments?$filter=scopeId eq '/' and " ..
                           "scopeType eq 'DirectoryRole' and roleDefinitionId eq '" .. GA .. "'")
  lu.assertEquals(#assigns.value, 1)
  local pid = assigns.value[1].policyId
  local _, rules = gcall(adm, "GET", "/v1.0/policies/roleManagementPolicies/" .. pid .. "/rules")
  lu.assertEquals(#rules.value, 17)
  lu.assertEquals((gcall(adm, "PATCH", "/v1.0/policies/roleManagementPolicies/" .. pid .. "/rules/Approval_EndUser_Assignment",
    { ["@odata.type"] = "#microsoft.graph.unifiedRoleManagementPolicyApprovalRule",
      setting = { isApprovalRequired = true } })), 204)
  local saved = T.dir.skus
  T.dir.skus = {}
  local st, doc = gcall(adm, "GET", "/v1.0/roleManagement/directory/roleEligibilityScheduleInstances")
  T.dir.skus = saved
  lu.assertEquals(st, 400)
  lu.assertEquals(doc.error.code, "AadPremiumLicenseRequired")
end

-- Exchange: linked role groups bring the Entra role's role group; Exchange's own role groups and
-- assignments work without any directory role; linked groups are never shown as membership.
function TestSimAuthz.test_exchange_rbac_linked_and_native()
  local app = { appid = "11111111-0000-4000-8000-00000000aaaa", oid = "sp-x", idtyp = "app",
                roles = { "Exchange.ManageAsApp" } }
  app.wids = { RECIPIENT_ADMIN }
  lu.assertEquals((xcall(app, "Get-Mailbox", { ResultSize = 1 })), 200)
  lu.assertEquals((xcall(app, "New-OrganizationRelationship", { Name = "x", DomainNames = { "y" } })), 403)
  app.wids = {}
  lu.assertEquals((xcall(app, "Get-Mailbox", { ResultSize = 1 })), 403)
  local adm = { appid = "adm", oid = "adm", idtyp = "app", roles = { "Exchange.ManageAsApp" }, wids = { EXADMIN } }
  local sp = model.sp_by_appid(T, T.seeded.admin_app.app_id)
  lu.assertEquals((xcall(adm, "New-ManagementRoleAssignment", { App = sp.appId, Role = "View-Only Recipients" })), 200)
  app.appid = sp.appId
  local st, _, req = xcall(app, "Get-Mailbox", { ResultSize = 1 })
  lu.assertEquals(st, 200)
  lu.assertEquals(req.note.exo_role, "View-Only Recipients")
  local _, m = xcall(adm, "Get-RoleGroupMember", { Identity = "Organization Management" })
  for _, row in ipairs(m.value) do lu.assertStrMatches(row.Name, "^%a+Admins_%-?%d+$") end
  local linked = m.value[1].Name
  local _, lm = xcall(adm, "Get-RoleGroupMember", { Identity = linked })
  lu.assertEquals(lm.value, {})
  local st2, e2 = xcall(adm, "Add-RoleGroupMember", { Identity = linked, Member = "admin@" .. T.initial_domain })
  lu.assertEquals(st2, 400)
  lu.assertStrContains(e2.error.details[1].message, "RoleGroupNotManageable")
  lu.assertEquals((xcall(adm, "Add-RoleGroupMember", { Identity = "Recipient Management",
                                                        Member = "admin@" .. T.initial_domain })), 200)
  local _, ra = xcall(adm, "Get-ManagementRoleAssignment", { RoleAssignee = "admin@" .. T.initial_domain })
  local roles = {}
  for _, row in ipairs(ra.value) do roles[row.Role] = row.AssignmentMethod end
  lu.assertEquals(roles["Move Mailboxes"], "RoleGroup")
  lu.assertNil(roles["Federated Sharing"])           -- GA's Organization Management is not shown
  local _, eff = xcall(adm, "Get-ManagementRoleAssignment", { Role = "Federated Sharing", GetEffectiveUsers = true })
  for _, row in ipairs(eff.value) do lu.assertEquals(row.EffectiveUserName, "All Group Members") end
end

function TestSimAuthz.test_tokens_carry_wids_from_pim_at_issue()
  local login = require "t2t.sim.login"
  local a = T.seeded.admin_app
  local secret = T.dir.objects[a.object_id].passwordCredentials[1]._secret
  local function app_token()
    local r = login.handle(sim, { method = "POST", path = "/" .. T.id .. "/oauth2/v2.0/token",
      headers = { ["content-type"] = "application/x-www-form-urlencoded" },
      body = "grant_type=client_credentials&client_id=" .. a.app_id .. "&client_secret=" .. secret ..
             "&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default" })
    local doc = type(r.body) == "table" and r.body or cjson.decode(r.body)
    return assert(sim.tokens:verify(doc.access_token))
  end
  lu.assertEquals(app_token().wids, { EXADMIN })
  local sched = { id = "s-ga", kind = "assignment", principalId = a.sp_id, roleDefinitionId = GA,
                  directoryScopeId = "/", assignmentType = "Assigned", start = sim:now() - 10, stop = sim:now() + 100 }
  pim.dir(T).role_schedules[sched.id] = sched
  local w = app_token().wids
  table.sort(w)
  lu.assertEquals(w, { EXADMIN, GA })
  sim.clock_offset = 200
  lu.assertEquals(app_token().wids, { EXADMIN })
  pim.dir(T).role_schedules[sched.id] = nil
end

-- DELETE /users/{id}: User.ReadWrite.All allows it, and the user's Exchange recipient goes with
-- it (the route is registered once, with that effect).
function TestSimAuthz.test_deleting_a_user_removes_its_recipient()
  local victim
  for _, o in pairs(T.dir.objects) do
    if model.ODATA.user == o["@odata.type"] and model.find_recipient(T, o.id) then victim = o break end
  end
  lu.assertNotNil(victim, "the seed has a user with a mailbox")
  local st = gcall(token { appid = "a", idtyp = "app", roles = { "User.Read.All" } }, "DELETE", "/v1.0/users/" .. victim.id)
  lu.assertEquals(st, 403)
  st = gcall(token { appid = "a", idtyp = "app", roles = { "User.ReadWrite.All" } }, "DELETE", "/v1.0/users/" .. victim.id)
  lu.assertEquals(st, 204)
  lu.assertNil(model.find_recipient(T, victim.id))
end
