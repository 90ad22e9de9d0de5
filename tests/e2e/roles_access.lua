-- End to end, in one simulator: bootstrap (twice: nothing changes the second time; the key file
-- is 0600; the private key appears in no output, log or audit), an admin holding Exchange
-- Administrator only through a PIM-eligible group (preflight names the group and says "not
-- activated"; after activation on the simulated clock it passes and the runbook succeeds; when
-- the activation expires it fails again), and an app missing Exchange.ManageAsApp.
--   build/t2t tests/e2e/roles_access.lua
local L = dofile("tests/e2e/roles_lib.lua")
local roles = require "t2t.roles"

local D = L.tmpdir()
local s = L.start { users = 6, seed = 12, log = D .. "/sim.log" }
L.keep_admins()
local cfg, audit = D .. "/config.lua", D .. "/audit.jsonl"

-- bootstrap, twice -------------------------------------------------------------------------
local args = { "--tenant", "contoso", "--config-path", cfg, "--with", "consent" }
local c1, out1, ctx1 = L.run("bootstrap", args, { audit = audit })
L.ok(c1 == 0 and ctx1.plan.applied > 0, "bootstrap: sets up the app (" .. tostring(ctx1 and ctx1.plan.applied) .. " changes)", out1)
local c2, out2, ctx2 = L.run("bootstrap", args, { audit = audit })
L.ok(c2 == 0 and ctx2.plan.applied == 0 and ctx2.plan.failed == 0, "bootstrap: a second run changes nothing",
     "applied " .. tostring(ctx2 and ctx2.plan.applied) .. "\n" .. out2)
local mode = io.popen("stat -c %a " .. D .. "/contoso.key"):read("l")
L.ok(mode == "600", "bootstrap: the key file is mode 0600 (" .. tostring(mode) .. ")")
local kf = io.open(D .. "/contoso.key")
local pem = kf and kf:read("a") or ""
if kf then kf:close() end
local body = pem:match("%-%-%-%-%-BEGIN [%u ]+%-%-%-%-%-\n(.-)\n%-%-%-%-%-END")
local chunks = {}
for line in (body or ""):gmatch("[^\n]+") do chunks[#chunks + 1] = line end
L.ok(#chunks > 10, "bootstrap: the key file holds a private key")
s:control("POST", "/_sim/save", {})
local function leaks(text)
  if L.contains(text, "PRIVATE KEY") then return "PRIVATE KEY" end
  for _, c in ipairs(chunks) do if #c > 20 and L.contains(text, c) then return c end end
  return nil
end
local af = io.open(audit) local atext = af and af:read("a") or "" if af then af:close() end
local lf = io.open(D .. "/sim.log") local ltext = lf and lf:read("a") or "" if lf then lf:close() end
local cf = io.open(cfg) local ctext = cf and cf:read("a") or "" if cf then cf:close() end
L.ok(not leaks(out1 .. out2), "bootstrap: the private key is not in the output", leaks(out1 .. out2))
L.ok(#atext > 0 and not leaks(atext), "bootstrap: the private key is not in the audit file", leaks(atext))
L.ok(#ltext > 0 and not leaks(ltext), "bootstrap: the private key is not in the simulator's log", leaks(ltext))
L.ok(L.contains(ctext, "contoso.key") and not leaks(ctext), "bootstrap: the profile refers to the key file, holds no key")
local prof = assert(require("t2t.config").profile("contoso", cfg))
L.ok(prof.certificate and prof.key and not prof.secret and prof.client_id, "bootstrap: the profile signs in with the certificate")
local c3, out3 = L.run("access-check", { "--tenant", "contoso" })
L.ok(c3 == 0 and L.contains(out3, "[ready]   setup-source"), "bootstrap: access-check as the new app: its runbooks are ready", out3)

-- An admin holding Exchange Administrator only through a PIM-eligible group ---------------
-- set-up as the seeded admins: the target's app, consent in the source, the scope group
local H = D .. "/h.json"
local ca, oa = L.run("setup-target", { "--target", "fabrikam-admin", "--source", "contoso-admin", "--handoff", H,
                                       "--secret-file", D .. "/sec", "--skip-endpoint" })
local cb, ob = L.run("setup-source", { "--source", "contoso-admin", "--handoff", H, "--consent", "--create-scope-group" })
L.ok(ca == 0 and cb == 0, "pim: set-up by the seeded admins", oa .. ob)
local t = L.admin("contoso")
local pat = L.new_user(t, "pat")
local grp = assert(roles.ensure_assignable_group(t, "PIM Exchange admins"))
assert(roles.ensure_member(t, grp, { id = pat.id, name = pat.userPrincipalName, kind = "user" }))
assert(roles.ensure_assignment(t, { principal = { id = grp.id, name = grp.displayName, kind = "group" },
                                    role = "Exchange Administrator", eligible = true }))
L.user_profile("contoso-pat", "contoso", pat.userPrincipalName)
local ce, oe, cte = L.run("setup-source", { "--source", "contoso-pat", "--handoff", H })
L.ok(ce == 1 and cte.plan.applied == 0, "pim: eligible only -> fails in preflight, nothing changed (exit " .. ce .. ")", oe)
L.ok(L.contains(oe, "eligible via group PIM Exchange admins") and L.contains(oe, "not activated"),
     "pim: preflight says 'eligible via group PIM Exchange admins ... not activated'", oe)
-- pat activates, starting in a minute (the simulated clock decides when it is in force)
local start = os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(s:control("GET", "/_sim/clock").now) + 60)
local pg = require("t2t.connect").clients(s.profile.tenants["contoso-pat"],
  { connect_to = s.connect_to, ca_file = s.ca_file }, s).graph
local req, rerr = pg:post("/roleManagement/directory/roleAssignmentScheduleRequests", {
  action = "selfActivate", principalId = pat.id, roleDefinitionId = roles.catalog.role("Exchange Administrator").id,
  directoryScopeId = "/", justification = "cross-tenant migration set-up",
  scheduleInfo = { startDateTime = start, expiration = { type = "afterDuration", duration = "PT1H" } } })
L.ok(req and req.status == "Provisioned", "pim: pat's activation request is accepted", rerr and tostring(rerr))
local cf1, of1 = L.run("setup-source", { "--source", "contoso-pat", "--handoff", H })
L.ok(cf1 == 1 and L.contains(of1, "not activated"), "pim: before the activation starts it still fails in preflight", of1)
s:control("POST", "/_sim/clock", { advance = 120 })
local cg, og, ctg = L.run("setup-source", { "--source", "contoso-pat", "--handoff", H })
L.ok(cg == 0 and L.contains(og, "user " .. pat.userPrincipalName .. " holds the 3 grants"),
     "pim: after activation (simulated clock) preflight passes and setup-source succeeds (exit " .. cg .. ")", og)
L.ok(ctg and ctg.plan.failed == 0, "pim: no change failed")
s:control("POST", "/_sim/clock", { advance = 3600 })
local cx, ox = L.run("setup-source", { "--source", "contoso-pat", "--handoff", H })
L.ok(cx == 1 and L.contains(ox, "not activated"), "pim: when the activation expires, preflight fails again", ox)
s:control("POST", "/_sim/clock", { offset = 0 })

-- An app missing Exchange.ManageAsApp ------------------------------------------------------
local bargs = { "--tenant", "fabrikam", "--profile-name", "fabrikam-app", "--app-name", "t2t fabrikam", "--runbooks",
                "setup-target", "--as", "target" }
L.ok((L.run("bootstrap", bargs)) == 0, "manageasapp: bootstrap an app for setup-target in fabrikam")
local ft = L.admin("fabrikam")
local sp = assert(ft:find_sp(s.profile.tenants["fabrikam-app"].client_id))
local exo = assert(ft:find_sp(roles.catalog.EXO_APP_ID))
for _, a in ipairs(assert(ft:glist("/servicePrincipals/" .. sp.id .. "/appRoleAssignments"))) do
  if a.resourceId == exo.id then assert(ft:gdelete("/servicePrincipals/" .. sp.id .. "/appRoleAssignments/" .. a.id)) end
end
local tr = { "--target", "fabrikam-app", "--source", "contoso-admin", "--handoff", D .. "/h2.json",
             "--secret-file", D .. "/sec2", "--skip-endpoint" }
local cm, om, ctm = L.run("setup-target", tr)
L.ok(cm == 1 and ctm.plan.applied == 0, "manageasapp: setup-target fails in preflight, nothing changed (exit " .. cm .. ")", om)
L.ok(L.contains(om, "[missing] Exchange.ManageAsApp") and L.contains(om, "grant:  admin consent for the application permission Exchange.ManageAsApp")
     and L.contains(om, "who:    a Privileged Role Administrator or Global Administrator of fabrikam.onmicrosoft.com"),
     "manageasapp: preflight says what is missing, how to grant it and who can", om)
local cr, or_, ctr = L.run("bootstrap", bargs)
L.ok(cr == 0 and ctr.plan.applied == 1, "manageasapp: bootstrap again grants just the missing consent", or_)
local cs, os_ = L.run("setup-target", tr)
L.ok(cs == 0, "manageasapp: then setup-target succeeds", os_)

-- bootstrap --plan on a fresh tenant: every change listed, none made, no key file ------------
local pargs = { "--tenant", "fabrikam", "--profile-name", "fab-plan", "--app-name", "t2t plan", "--runbooks", "verify-setup",
                "--as", "target", "--config-path", D .. "/plan/config.lua" }
require("t2t.core.fs").mkdir(D .. "/plan", tonumber("700", 8))
local cp, op, ctp = L.run("bootstrap", pargs, { plan = true })
L.ok(cp == 0 and ctp.plan.applied == 0 and ctp.plan.planned > 3 and L.contains(op, "would + create application 't2t plan'"),
     "bootstrap --plan: lists the changes, makes none", op)
L.ok(io.open(D .. "/plan/fab-plan.key") == nil and io.open(D .. "/plan/config.lua") == nil,
     "bootstrap --plan: writes no key and no config file")

-- bootstrap --via-group: the Entra role held through a role-assignable group -------------------
local vargs = { "--tenant", "fabrikam", "--profile-name", "fab-group", "--app-name", "t2t via group", "--runbooks",
                "verify-setup", "--as", "target", "--via-group", "t2t Exchange admins" }
local cv, ov = L.run("bootstrap", vargs)
L.ok(cv == 0, "bootstrap --via-group: succeeds", ov)
local vt = L.admin("fabrikam")
local vsp = assert(vt:find_sp(s.profile.tenants["fab-group"].client_id))
local via
for _, h in ipairs(assert(roles.holders(vt, "Exchange Administrator"))) do
  if h.principal.id == vsp.id then via = h end
end
L.ok(via and via.how == "group" and via.group.name == "t2t Exchange admins",
     "bootstrap --via-group: the app holds Exchange Administrator through the group (" .. tostring(via and roles.describe(via)) .. ")")
local cv2, ov2, ctv2 = L.run("bootstrap", vargs)
L.ok(cv2 == 0 and ctv2.plan.applied == 0, "bootstrap --via-group: a second run changes nothing", ov2)
local cvs, ovs = L.run("verify-setup", { "--target", "fab-group", "--source", "contoso-admin", "--handoff", H })
L.ok(not L.contains(ovs, "preflight in"), "bootstrap --via-group: the app passes verify-setup's preflight", ovs)

-- roles --output json and access-check --principal -------------------------------------------
local cj, oj = L.run("roles", { "--tenant", "contoso-admin" }, { output = "json" })
local okj, doc = pcall(require("cjson").decode, (oj:match("[^\n]*{\"[^\n]*") or ""))
L.ok(cj == 3 and okj and doc.status == "partial" and type(doc.result.checks) == "table" and #doc.result.checks >= 12
     and doc.result.roles["Global Administrator"][1].principal == "admin@contoso.onmicrosoft.com",
     "roles --output json: one document with the holders and the checks, exit 3", oj)
local cpa, opa = L.run("access-check", { "--tenant", "contoso-admin", "--principal", pat.userPrincipalName })
L.ok(cpa == 3 and L.contains(opa, "Exchange Administrator") and L.contains(opa, "via group PIM Exchange admins"),
     "access-check --principal: another principal's runbooks and roles, from the role data", opa)

L.finish()
