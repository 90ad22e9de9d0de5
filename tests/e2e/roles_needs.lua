-- Each bundled runbook's `needs` matches what it calls.  For every runbook (a scenario below; a
-- runbook without one fails this test), in a fresh simulator: principals holding exactly its
-- needs in each tenant (made by `bootstrap --runbooks NAME`, or a user with exactly the Entra
-- roles) run it, and it succeeds; the simulator's request log shows that every call it made was
-- allowed by its needs and that every item of its needs was used (nothing over-asked); then, for
-- each item removed in turn, the run fails in preflight -- exit 1, "preflight in ...", no change,
-- no write call -- and bootstrapping again restores it.
--   build/t2t tests/e2e/roles_needs.lua [RUNBOOK]
local L = dofile("tests/e2e/roles_lib.lua")
local roles = require "t2t.roles"
local catalog = roles.catalog
local needs_mod = require "t2t.roles.needs"
local rb = require "t2t.runbook"

local only = arg and arg[1]

local function args_of(step) return type(step.args) == "function" and step.args() or step.args end

local function plus(list, ...)
  local out = table.move(list, 1, #list, 1, {})
  for _, x in ipairs({ ... }) do out[#out + 1] = x end
  return out
end

-- scenario: principals {tenant, as, pname, with}, prepare(D) as the seeded admins, steps
-- ({args, code} run as the exact principals; {admin = fn} in between), params (for `when`).
local S = {}
S["setup-target"] = function(D)
  local H, F = D .. "/h.json", D .. "/sec"
  local a = { "--target", "fab-x", "--source", "con-x", "--handoff", H, "--secret-file", F }
  return {
    principals = { { tenant = "fabrikam", as = "target", pname = "fab-x" },
                   { tenant = "contoso", as = "source", pname = "con-x" } },
    steps = { { args = plus(a, "--skip-endpoint"), code = 0 },
              { admin = function() return L.run("setup-source", { "--source", "contoso-admin", "--handoff", H,
                                                                  "--consent", "--create-scope-group" }) end },
              { args = a, code = 0 } },
    preflight = plus(a, "--skip-endpoint"),
  }
end
S["setup-source"] = function(D)
  local H = D .. "/h.json"
  local mb = L.s.profile.sample_mailboxes or {}
  return {
    prepare = function() return L.run("setup-target", { "--target", "fabrikam-admin", "--source", "contoso-admin",
      "--handoff", H, "--secret-file", D .. "/sec", "--skip-endpoint" }) end,
    principals = { { tenant = "contoso", pname = "con-x", with = "consent" } },
    params = { consent = true },
    steps = { { args = { "--source", "con-x", "--handoff", H, "--consent", "--create-scope-group", "--members",
                         mb[1] or "nobody@contoso.com" }, code = 0 } },
  }
end
S["verify-setup"] = function(D)
  local H = D .. "/h.json"
  return {
    prepare = function()
      local base = { "--target", "fabrikam-admin", "--source", "contoso-admin", "--handoff", H, "--secret-file", D .. "/sec" }
      L.run("setup-target", plus(base, "--skip-endpoint"))
      L.run("setup-source", { "--source", "contoso-admin", "--handoff", H, "--consent", "--create-scope-group" })
      return L.run("setup-target", base)
    end,
    principals = { { tenant = "fabrikam", as = "target", pname = "fab-x" },
                   { tenant = "contoso", as = "source", pname = "con-x" } },
    steps = { { args = { "--target", "fab-x", "--source", "con-x", "--handoff", H }, code = 0 } },
  }
end
-- a PIM-enrolled role-assignable group holding a privileged role, so that every read is exercised
local function pim_group()
  local t = L.admin("contoso")
  local u = L.new_user(t, "gale")
  local g = assert(roles.ensure_assignable_group(t, "PIM helpdesk"))
  assert(roles.ensure_assignment(t, { principal = { id = g.id, name = g.displayName, kind = "group" },
                                      role = "User Administrator" }))
  local ok, err = t:gpost("/identityGovernance/privilegedAccess/group/eligibilityScheduleRequests", { action = "adminAssign",
    accessId = "member", principalId = u.id, groupId = g.id, scheduleInfo = { expiration = { type = "noExpiration" } } })
  return ok, err
end
S["roles"] = function()
  return { prepare = pim_group, principals = { { tenant = "contoso", pname = "con-x" } },
           steps = { { args = { "--tenant", "con-x" }, code = 3 } } }
end
S["access-check"] = function()
  return { prepare = pim_group, principals = { { tenant = "contoso", pname = "con-x" } },
           steps = { { args = { "--tenant", "con-x" }, code = 3 } } }
end
S["doctor"] = function() return { principals = {}, steps = { { args = {}, code = 0 } } } end
-- bootstrap runs as a signed-in admin: a user holding exactly the roles its Graph calls need
S["bootstrap"] = function()
  local upn
  return {
    prepare = function()
      local t = L.admin("contoso")
      local u = L.new_user(t, "boot")
      upn = u.userPrincipalName
      for _, r in ipairs({ "Privileged Role Administrator", "Application Administrator" }) do
        assert(roles.ensure_assignment(t, { principal = { id = u.id, name = upn, kind = "user" }, role = r }))
      end
      L.user_profile("con-user", "contoso", upn)
      return 0
    end,
    user = { tenant = "contoso", pname = "con-user", roles = { "Privileged Role Administrator", "Application Administrator" } },
    steps = { { args = function() return { "--tenant", "contoso", "--admin", upn, "--runbooks", "roles", "--profile-name",
                                           "b-x", "--app-name", "t2t exact bootstrap" } end, code = 0 } },
  }
end
-- DKIM and mail authentication (the simulator's DNS server is Knot: skipped without it)
local function knot() return os.execute("command -v knotd >/dev/null 2>&1 || test -x /usr/sbin/knotd") end
S["mail-auth"] = function()
  if not knot() then return "knot is not installed" end
  return { principals = { { tenant = "fabrikam", as = "target", pname = "fab-x" },
                          { tenant = "contoso", as = "source", pname = "con-x" } },
           steps = { { args = { "--target", "fab-x", "--source", "con-x" }, code = 3 } } }
end
S["dkim-setup"] = function()
  if not knot() then return "knot is not installed" end
  return { principals = { { tenant = "fabrikam", pname = "fab-x" } },
           steps = { { args = { "--tenant", "fab-x", "--domain", "fabrikam.com" }, code = 0 } } }
end
-- no tenant: a signed message and public DNS (here none: the signature's key is not found)
S["dkim-verify"] = function(D)
  local f = assert(io.open(D .. "/m.eml", "w"))
  f:write("From: a@example.org\r\nTo: b@example.org\r\nSubject: x\r\n\r\nhello\r\n")
  f:close()
  return { principals = {}, steps = { { args = { "--file", D .. "/m.eml" }, code = nil } } }
end
-- users: the source exports, the target prepares and validates (the demo's parameters)
local function exported(D)
  return L.run("export-users", { "--source", "contoso-admin", "--all", "--out", D .. "/users.jsonl" })
end
local MAP = "contoso.com=fabrikam.com,contoso.net=fabrikam.com,contoso-eu.com=fabrikam.com"
S["export-users"] = function(D)
  return { principals = { { tenant = "contoso", pname = "con-x", with = "add-to-scope" } },
           params = { add_to_scope = true },
           prepare = function()       -- the scope group the relationship names
             L.run("setup-target", { "--target", "fabrikam-admin", "--source", "contoso-admin", "--handoff", D .. "/h.json",
                                     "--secret-file", D .. "/sec", "--skip-endpoint" })
             return L.run("setup-source", { "--source", "contoso-admin", "--handoff", D .. "/h.json", "--consent",
                                            "--create-scope-group" })
           end,
           steps = { { args = { "--source", "con-x", "--all", "--add-to-scope", "--out", D .. "/u.jsonl" }, code = 0 } } }
end
S["prepare-users"] = function(D)
  return { principals = { { tenant = "fabrikam", as = "target", pname = "fab-x", with = "license" } },
           params = { license = true },
           prepare = function() return exported(D) end,
           steps = { { args = { "--target", "fab-x", "--from", D .. "/users.jsonl", "--domain-map", MAP,
                                "--license", "ctudm" }, code = nil } } }
end
S["validate-users"] = function(D)
  return { principals = { { tenant = "fabrikam", as = "target", pname = "fab-x", with = "test-move" } },
           params = { test_move = true },
           prepare = function()
             local base = { "--target", "fabrikam-admin", "--source", "contoso-admin", "--handoff", D .. "/h.json",
                            "--secret-file", D .. "/sec" }
             L.run("setup-target", plus(base, "--skip-endpoint"))
             L.run("setup-source", { "--source", "contoso-admin", "--handoff", D .. "/h.json", "--consent",
                                     "--create-scope-group" })
             L.run("setup-target", base)
             exported(D)
             return L.run("prepare-users", { "--target", "fabrikam-admin", "--from", D .. "/users.jsonl",
                                             "--domain-map", MAP, "--license", "ctudm" })
           end,
           steps = { { args = { "--target", "fab-x", "--from", D .. "/users.jsonl", "--domain-map", MAP,
                                "--test-move" }, code = nil } } }
end
-- batches: a small migration the seeded admins set up (the tenants, three users, a batch file),
-- as far as o asks: break(D) plants failures before the batch is made, batch makes it, complete
-- completes it.  The exact principals then run the batch runbook.
local function batch_world(D, o)
  o = o or {}
  assert(L.s:control("POST", "/_sim/svc/exo/migration", { speed = 1e6 }))
  local base = { "--target", "fabrikam-admin", "--source", "contoso-admin", "--handoff", D .. "/h.json",
                 "--secret-file", D .. "/sec" }
  L.run("setup-target", plus(base, "--skip-endpoint"))
  L.run("setup-source", { "--source", "contoso-admin", "--handoff", D .. "/h.json", "--consent", "--create-scope-group" })
  L.run("setup-target", base)
  local f = assert(io.open(D .. "/users.csv", "w"))
  f:write("SourceUser\n")
  for i, m in ipairs(L.s.profile.sample_mailboxes or {}) do if i <= 3 then f:write(m, "\n") end end
  for _, alias in ipairs(o.extra or {}) do            -- users of the scenario's own
    assert(L.s:control("POST", "/_sim/recipients", { tenant = "contoso", alias = alias, primary = alias .. "@contoso.com" }))
    f:write(alias, "@contoso.com\n")
  end
  f:close()
  L.run("export-users", { "--source", "contoso-admin", "--csv", D .. "/users.csv", "--add-to-scope", "--out", D .. "/u.jsonl" })
  L.run("prepare-users", { "--target", "fabrikam-admin", "--from", D .. "/u.jsonl", "--domain-map", MAP, "--license", "ctudm" })
  if o.before then o.before() end
  local c, out = 0, ""
  if o.batch then
    c, out = L.run("migrate-batch", { "--target", "fabrikam-admin", "--source", "contoso-admin", "--from", D .. "/u.jsonl",
                                      "--domain-map", MAP, "--batches", D .. "/b.json", "--name", "w",
                                      "--backend", o.backend or "exo" })
    require("t2t").sleep(0.5)
  end
  if o.complete then
    c, out = L.run("batch-complete", { "--target", "fabrikam-admin", "--batches", D .. "/b.json", "--wait", "--interval",
                                       "0.2", "--timeout", "30" })
  end
  if c ~= 0 then print("# batch_world: " .. out:gsub("\n", "\n# ")) end
  return c
end
local function batch_target(name, D, o, args, code)
  return { prepare = function() return batch_world(D, o) end,
           principals = { { tenant = "fabrikam", as = "target", pname = "fab-x" } },
           steps = { { args = plus({ "--target", "fab-x", "--batches", D .. "/b.json" }, table.unpack(args or {})), code = code or 0 } } }
end
-- --backend exo given: the Graph backend's permission is not asked for (it once was, for any value)
S["migrate-batch"] = function(D)
  return { prepare = function() return batch_world(D) end,
           principals = { { tenant = "fabrikam", as = "target", pname = "fab-x" },
                          { tenant = "contoso", as = "source", pname = "con-x" } },
           steps = { { args = { "--target", "fab-x", "--source", "con-x", "--csv", D .. "/users.csv", "--domain-map", MAP,
                                "--batches", D .. "/b.json", "--backend", "exo" }, code = 0 } } }
end
S["batch-status"] = function(D) return batch_target("batch-status", D, { batch = true }) end
S["batch-report"] = function(D)
  return batch_target("batch-report", D, { batch = true }, { "--html", D .. "/r.html", "--csv", D .. "/r.csv", "--json", D .. "/r.json" })
end
S["batch-complete"] = function(D) return batch_target("batch-complete", D, { batch = true }) end
-- batch-fix: one user out of the scope group (a source fix), one without its ExchangeGuid, one
-- without its cross-tenant licence (the licence through Graph), one with a foreign proxy
S["batch-fix"] = function(D)
  local mb = L.s.profile.sample_mailboxes or {}
  local function before()
    local src = L.admin("contoso")
    assert(src:xo("Remove-DistributionGroupMember", { Identity = "T2T-Migration-Scope", Member = mb[1] }))
    local function target_of(m) return (m:gsub("@.*$", "@fabrikam.com")) end
    assert(L.s:control("PATCH", "/_sim/recipients/fabrikam/" .. target_of(mb[2]):gsub("@", "%%40"),
                       { ExchangeGuid = "00000000-0000-0000-0000-000000000000" }))
    assert(L.s:control("PATCH", "/_sim/recipients/fabrikam/" .. target_of(mb[3]):gsub("@", "%%40"), { licenses = {} }))
    assert(L.s:control("PATCH", "/_sim/recipients/fabrikam/pfix%40fabrikam.com", { add_addresses = { "smtp:pfix@contoso.com" } }))
  end
  return { prepare = function() return batch_world(D, { before = before, batch = true, extra = { "pfix" } }) end,
           principals = { { tenant = "fabrikam", as = "target", pname = "fab-x" },
                          { tenant = "contoso", as = "source", pname = "con-x" } },
           steps = { { args = { "--target", "fab-x", "--source", "con-x", "--batches", D .. "/b.json" }, code = 0 } } }
end
-- post-migration: after completion, with a Send on Behalf delegate who moved too
S["post-migration"] = function(D)
  local mb = L.s.profile.sample_mailboxes or {}
  return { prepare = function()
             assert(L.s:control("PATCH", "/_sim/recipients/contoso/" .. mb[1]:gsub("@", "%%40"),
                                { send_on_behalf = { (mb[2]:gsub("@.*$", "")) } }))
             return batch_world(D, { batch = true, complete = true })
           end,
           principals = { { tenant = "fabrikam", as = "target", pname = "fab-x" },
                          { tenant = "contoso", as = "source", pname = "con-x" } },
           params = { dkim = true },
           steps = { { args = { "--target", "fab-x", "--source", "con-x", "--batches", D .. "/b.json" }, code = 0 } } }
end
-- The other backend, whose needs are a `when` on --backend's value: migrate-batch given
-- --backend graph, and batch-status given none -- it takes the backend from the batches file,
-- before preflight (it once resolved it after, and was not preflighted for the Graph API).
local V = {}
V["migrate-batch"] = { ["--backend graph"] = function(D)
  return { prepare = function() return batch_world(D) end,
           principals = { { tenant = "fabrikam", as = "target", pname = "fab-x", with = "backend=graph" },
                          { tenant = "contoso", as = "source", pname = "con-x" } },
           params = { backend = "graph" },
           steps = { { args = { "--target", "fab-x", "--source", "con-x", "--csv", D .. "/users.csv", "--domain-map", MAP,
                                "--batches", D .. "/b.json", "--backend", "graph" }, code = 0 } } }
end }
V["batch-status"] = { ["Graph batches file"] = function(D)
  return { prepare = function() return batch_world(D, { batch = true, backend = "graph" }) end,
           principals = { { tenant = "fabrikam", as = "target", pname = "fab-x", with = "backend=graph" } },
           params = { backend = "graph" },
           -- the exo backend's role stays required: with no --backend (and no batches file) a run
           -- is exo, and `bootstrap --runbooks batch-status` grants what that run needs
           unused = { "Migration" },
           steps = { { args = { "--target", "fab-x", "--batches", D .. "/b.json" }, code = 0 } } }
end }
S["demo"] = "composes"       -- it runs the others as their own principals; its needs must be empty


-- The principal's needs as resolved (and as bootstrap grants them).
local function resolved(decl, pr, params)
  return needs_mod.resolve(decl.needs, pr and pr.as or nil, params or {})
end

local function bootstrap(name, pr)
  local a = { "--tenant", pr.tenant, "--profile-name", pr.pname, "--app-name", "t2t exact " .. name .. " " .. pr.pname,
              "--runbooks", name }
  if pr.as then a[#a + 1] = "--as"; a[#a + 1] = pr.as end
  if pr.with then a[#a + 1] = "--with"; a[#a + 1] = pr.with end
  local c, out, ctx = L.run("bootstrap", a)
  return c, out, ctx
end

-- Every logged call in tenant tid allowed by the needs, every item of the needs used.
local function check_usage(name, label, r, entries, tid, unused)
  local used_g, used_x = {}, {}
  local problems = {}
  local held = {}
  for _, p in ipairs(r.graph) do held[p] = true end
  for _, p in ipairs(r.optional.graph) do held[p] = true end
  local xroles = {}
  for _, x in ipairs(r.exchange) do xroles[x] = true end
  for _, x in ipairs(r.optional.exchange) do xroles[x] = true end
  for _, e in ipairs(entries) do
    if e.tid == tid and e.service == "graph" and e.authz then
      for need in e.authz:gmatch("[^,]+") do
        local by = catalog.satisfied(need, held)
        if by then used_g[by] = true
        else problems[#problems + 1] = e.method .. " " .. e.path .. " needs " .. need .. ", not in needs" end
      end
    elseif e.tid == tid and e.service == "exo" and e.cmdlet then
      local hit = false
      for _, role in ipairs(catalog.cmdlet_roles(e.cmdlet)) do
        if xroles[role] then hit = true; used_x[role] = true end
      end
      if not hit then problems[#problems + 1] = e.cmdlet .. " is in none of the needed Exchange roles" end
    end
  end
  for p in pairs(held) do
    if not used_g[p] then problems[#problems + 1] = "needs Graph " .. p .. " but never used it" end
  end
  for _, x in ipairs(unused or {}) do used_x[x] = true end
  for x in pairs(xroles) do
    if not used_x[x] then problems[#problems + 1] = "needs Exchange role " .. x .. " but never used it" end
  end
  L.ok(#problems == 0, name .. ": needs " .. label .. " match what it calls", table.concat(problems, "\n"))
end

-- remove(pr, item) -> restore function: takes one grant away from the principal (as the admin).
local function remove(pr, item)
  local t = L.admin(pr.tenant)
  local prof = L.s.profile.tenants[pr.pname]
  if item.kind == "entra" or item.kind == "exchange" then
    local rname = item.kind == "exchange" and item.cover or item.any[1]
    local pid
    if prof.device_code then pid = assert(t:gget("/users/" .. prof.sim_user)).id
    else pid = assert(t:find_sp(prof.client_id)).id end
    for _, name in ipairs(item.any or { rname }) do
      for _, a in ipairs(assert(t:glist("/roleManagement/directory/roleAssignments?$filter=principalId eq '" .. pid .. "'"))) do
        if a.roleDefinitionId == catalog.role(name).id then
          assert(t:gdelete("/roleManagement/directory/roleAssignments/" .. a.id))
        end
      end
    end
    return
  end
  local sp = assert(t:find_sp(prof.client_id))
  local value = item.kind == "exchange_access" and catalog.MANAGE_AS_APP or item.name
  local res = item.kind == "exchange_access" and catalog.EXO_APP_ID or catalog.GRAPH_APP_ID
  local id = assert(require("t2t.roles.ensure").app_role_id(t, res, value))
  for _, a in ipairs(assert(t:glist("/servicePrincipals/" .. sp.id .. "/appRoleAssignments"))) do
    if a.appRoleId == id then assert(t:gdelete("/servicePrincipals/" .. sp.id .. "/appRoleAssignments/" .. a.id)) end
  end
end

local function no_writes(entries)
  for _, e in ipairs(entries) do
    if e.service == "graph" and e.method ~= "GET" then return e.method .. " " .. e.path end
    if e.service == "exo" and e.cmdlet and not e.cmdlet:match("^Get%-") then return e.cmdlet end
  end
  return nil
end

local function scenario(name, decl, make, variant)
  local D = L.tmpdir()
  L.start { users = 4, seed = 21 }
  L.keep_admins()
  local sc = make(D)
  local title = variant and (name .. " (" .. variant .. ")") or name
  if type(sc) == "string" then
    print("ok - roles: " .. title .. ": runs with exactly its needs # SKIP " .. sc)
    L.s:stop()
    return
  end
  if sc.prepare then sc.prepare() end
  local principals = sc.principals or {}
  for _, pr in ipairs(principals) do
    local c, out = bootstrap(name, pr)
    if not L.ok(c == 0, title .. ": bootstrap a principal with exactly its needs in " .. pr.tenant, out) then return end
    pr.tid = L.s.profile.tenants[pr.pname].tenant_id
  end
  local entries = {}
  for i, step in ipairs(sc.steps) do
    if step.admin then step.admin()
    else
      local mark = L.log_mark()
      local c, out = L.run(name, args_of(step))
      local want = step.code
      L.ok(want == nil and not L.contains(out, "preflight in") or c == want, string.format(
        "%s: runs with exactly its needs (step %d, exit %d, wanted %s)", title, i, c, tostring(want or "no preflight failure")), out)
      for _, e in ipairs((L.log_since(mark))) do entries[#entries + 1] = e end
    end
  end
  for _, pr in ipairs(principals) do
    check_usage(title, "in " .. pr.tenant .. (pr.as and (" (as " .. pr.as .. ")") or ""), resolved(decl, pr, sc.params),
                entries, pr.tid, sc.unused)
  end
  -- minus one: each item away in turn -> preflight fails, nothing written; then restored
  local pre = sc.preflight
  for _, step in ipairs(sc.steps) do if not pre and step.args then pre = args_of(step) end end
  local targets = {}
  for _, pr in ipairs(principals) do
    for _, item in ipairs(needs_mod.items(resolved(decl, pr, sc.params), "app")) do targets[#targets + 1] = { pr, item } end
  end
  if sc.user then
    for _, r in ipairs(sc.user.roles) do
      targets[#targets + 1] = { sc.user, { kind = "entra", name = r, any = { r } } }
    end
  end
  for _, x in ipairs(targets) do
    local pr, item = x[1], x[2]
    remove(pr, item)
    local mark = L.log_mark()
    local c, out, ctx = L.run(name, pre)
    local label = require("t2t.roles.explain").label(item)
    local wrote = no_writes((L.log_since(mark)))
    L.ok(c == 1 and L.contains(out, "preflight in") and ctx and ctx.plan.applied == 0 and not wrote,
         string.format("%s: without %s in %s it fails in preflight, nothing written", title, label, pr.tenant),
         (wrote and ("wrote: " .. wrote .. "\n") or "") .. out)
    if sc.user and pr == sc.user then
      local t = L.admin(pr.tenant)
      local u = assert(t:gget("/users/" .. L.s.profile.tenants[pr.pname].sim_user))
      assert(roles.ensure_assignment(t, { principal = { id = u.id, name = u.userPrincipalName, kind = "user" }, role = item.name }))
    else
      local c2, out2 = bootstrap(name, pr)
      L.ok(c2 == 0, title .. ": bootstrap restores " .. label, out2)
    end
  end
  L.s:stop()
end

local names = rb.names()
table.sort(names)
for _, name in ipairs(names) do
  if not only or only == name then
    local decl = assert(rb.load(name))
    if S[name] == nil then
      L.ok(false, name .. ": has a needs scenario in tests/e2e/roles_needs.lua (add one for this runbook)")
    elseif S[name] == "composes" then
      L.ok(decl.needs ~= nil and next(decl.needs) == nil, name .. ": declares empty needs (the runbooks it runs check theirs)")
    else
      L.ok(decl.needs ~= nil, name .. ": declares its needs")
      scenario(name, decl, S[name])
      for label, make in pairs(V[name] or {}) do scenario(name, decl, make, label) end
    end
  end
end
L.s = nil
L.finish()
