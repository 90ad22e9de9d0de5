-- access-check: for one principal, what it can do with t2t in a tenant, runbook by runbook, its
-- roles and how it holds them, and the known issues of group-based assignment that apply.
local session = require "t2t.tenant.session"
local roles = require "t2t.roles"
local preflight = require "t2t.roles.preflight"
local explain = require "t2t.roles.explain"
local issues = require "t2t.roles.issues"

local must = session.must
-- Not checked by default: the demo and doctor (no tenant), and bootstrap for an app (an admin
-- runs it, signed in as a user).
local SKIP = { demo = true, doctor = true }

-- The runbooks to check: the bundled ones that declare what they need (or the given list).
local function runbooks(ctx, list, kind)
  local rb = require "t2t.runbook"
  local names = list or rb.names()
  local out = {}
  for _, n in ipairs(names) do
    if list or not (SKIP[n] or (n == "bootstrap" and kind == "app")) then
      local decl, err = rb.load(n)
      if not decl then ctx:fail("runbook %s: %s", n, tostring(err)) end
      if decl.needs ~= nil then out[#out + 1] = decl end
    end
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

-- An app's consented permissions (values) on Graph and Exchange Online.
local function consents(t, sp_id)
  local out = {}
  local rolesof = {}
  for _, res_app in ipairs({ roles.catalog.GRAPH_APP_ID, roles.catalog.EXO_APP_ID }) do
    local res = t:find_sp(res_app)
    for _, r in ipairs(res and res.appRoles or {}) do rolesof[r.id] = r.value end
  end
  for _, a in ipairs(t:glist("/servicePrincipals/" .. sp_id .. "/appRoleAssignments") or {}) do
    if rolesof[a.appRoleId] then out[rolesof[a.appRoleId]] = true end
  end
  return out
end

local function as_roles(decl, only)
  local n = decl.needs or {}
  if n.target == nil and n.source == nil then return { false } end
  if only then return { only } end
  return { "target", "source" }
end

local function principal_grants(ctx, t, p, data)
  if not p.principal then return must(ctx, preflight.signed_in(t)) end
  local who = must(ctx, roles.resolve(t, p.principal))
  local kind = who.kind == "servicePrincipal" and "app" or who.kind
  if kind ~= "app" and kind ~= "user" then ctx:fail("%s is a %s: name a user or an app", p.principal, who.kind) end
  local pr = { kind = kind, id = who.id, appid = who.appId, name = kind == "app" and (who.name or who.appId) or (who.upn or who.name) }
  return preflight.of_principal(t, pr, data, kind == "app" and consents(t, who.id) or nil)
end

return runbook {
  name = "access-check",
  description = "What a principal can do with t2t in a tenant: runbook by runbook, its roles, known issues.\n\n" ..
    "Read-only. For the signed-in principal (default: what its tokens carry, as the services see them) or\n" ..
    "--principal UPN|OBJECT-ID|APP-ID (from the tenant's role data): for every bundled runbook that declares\n" ..
    "what it needs, [ready] or what is missing -- which permission or role, how it would be granted\n" ..
    "(directly or through a role-assignable group), whether an eligible role waits for PIM activation, and who\n" ..
    "can grant it. Then its Entra roles (direct, through groups, PIM eligible / activated, until when), its\n" ..
    "Exchange Online grants (never the linked role groups that mirror Entra roles), and the known issues of\n" ..
    "group-based assignment that apply, each with its workaround. Exit 3 when some runbook is not ready.",
  needs = {
    optional = { graph = { "Directory.Read.All", "RoleManagement.Read.Directory", "PrivilegedAccess.Read.AzureADGroup" },
                 exchange = { "View-Only Configuration" } },
  },
  params = {
    { name = "tenant", type = "string", help = "profile of the tenant (default with --sim: contoso)" },
    { name = "principal", type = "string", help = "UPN, object id or app id (default: the signed-in principal)" },
    { name = "runbooks", type = "list", help = "runbooks to check (default: every bundled one that declares needs)" },
    { name = "as", type = "string", help = "target or source: the side for runbooks that use two tenants (default: both)" },
  },
  run = function(ctx, p)
    if p.as and p.as ~= "target" and p.as ~= "source" then ctx:fail("--as must be target or source") end
    local t = must(ctx, session.open(ctx, "tenant", p.tenant or (session.sim(ctx) and "contoso") or nil))
    if not t then ctx:usage("which tenant? pass --tenant PROFILE (or --profile, or --sim)") end
    local data, derr = roles.data(t)
    if not data then
      ctx:say("(the role data of %s cannot be read with this sign-in: %s; only what its token shows is used)",
              t.name, tostring(derr))
    end
    local g = principal_grants(ctx, t, p, data)
    local who = g.principal
    ctx:say("\nWhat %s %s can do with t2t in %s (%s)", who.kind, tostring(who.name), t.name, t.id or "?")
    local out = { tenant = t.name, principal = who, runbooks = {}, roles = {}, issues = {} }
    for _, decl in ipairs(runbooks(ctx, p.runbooks, who.kind)) do
      for _, role in ipairs(as_roles(decl, p.as)) do
        local r = roles.needs(decl, role or nil, {})
        local label = decl.name .. (role and (" (as " .. role .. ")") or "")
        local report = must(ctx, preflight.evaluate(t, r, g))
        if report.ok then
          ctx:say("  [ready]   %s", label)
        else
          explain.explain(t, report, data)
          ctx:say("  [missing] %s", label)
          for _, line in ipairs(explain.lines(report, "    " .. decl.name)) do
            if line:match("^%s+%[missing%]") or line:match("^%s+%a+:") then ctx:say("  %s", line) end
          end
        end
        ctx:item(label, report.ok, not report.ok and explain.message(report, t.name) or nil)
        local missing = {}
        for _, e in ipairs(report.items) do if not e.ok then missing[#missing + 1] = explain.label(e.item) end end
        out.runbooks[label] = { ready = report.ok, missing = missing }
      end
    end
    local held = data and roles.of(t, { id = who.id, kind = who.kind == "app" and "servicePrincipal" or "user",
                                        appId = who.appid, upn = who.name }, { exchange = true })
    ctx:say("\nRoles of %s", tostring(who.name))
    local token_missing = {}
    for _, h in ipairs(held and held.entra or {}) do
      ctx:say("  %-36s %s", h.role.name, roles.describe(h))
      out.roles[#out.roles + 1] = { role = h.role.name, how = h.how, group = h.group and h.group.name,
                                    state = h.state, kind = h.kind, ["until"] = h.stop, scope = h.scope }
      if g.source == "token" and h.state == "active" and not g.wids[h.role.id] then token_missing[#token_missing + 1] = h.role.name end
    end
    if held and #held.entra == 0 then ctx:say("  no Entra role") end
    if not held then ctx:say("  (not readable with this sign-in)") end
    for _, x in ipairs(held and held.exchange or {}) do
      ctx:say("  %-36s Exchange: %s", x.role, x.how)
    end
    if held and held.exchange_error then ctx:say("  Exchange grants not read: %s", tostring(held.exchange_error)) end
    out.exchange = held and held.exchange
    local list = issues.applying(held and held.entra or {}, data, { exchange = true, token_missing = token_missing })
    ctx:say("\nKnown issues that apply (%d)", #list)
    for _, i in ipairs(list) do
      ctx:say("  - %s\n      applies: %s\n      workaround: %s", i.title, i.applies, i.workaround)
      out.issues[#out.issues + 1] = { id = i.id, title = i.title, applies = i.applies, workaround = i.workaround }
    end
    ctx:summary("principal", tostring(who.name))
    return out
  end,
}
