-- roles: who holds each privileged role in a tenant, how, and the ScubaGear / Maester checks.
local session = require "t2t.tenant.session"
local roles = require "t2t.roles"
local checks = require "t2t.roles.checks"

local must = session.must
local KIND = { user = "user", group = "group", servicePrincipal = "app" }

local function show_role(ctx, role, list)
  ctx:say("\n%s (%d holding%s)", role.name, #list, #list == 1 and "" or "s")
  if #list == 0 then ctx:say("  nobody") return end
  for _, h in ipairs(list) do
    local p = h.principal
    ctx:say("  %-5s %-44s %s", KIND[p.kind] or p.kind, tostring(p.upn or p.name or p.id), roles.describe(h))
  end
end

-- Exchange's role groups: their members as Exchange lists them, the linked role groups flagged
-- (they mirror Entra roles; their members are not listed there, roles-and-mailauth.md §6).
local function exchange_groups(ctx, t)
  local groups, err = t:xo("Get-RoleGroup", {})
  if not groups then ctx:say("\nExchange role groups: not read (%s)", tostring(err)) return nil end
  local out = {}
  ctx:say("\nExchange Online role groups (Exchange's own grants; linked groups mirror Entra roles)")
  table.sort(groups, function(a, b) return tostring(a.Name) < tostring(b.Name) end)
  for _, g in ipairs(groups) do
    if g.RoleGroupType ~= "Linked" then
      local m = t:xo("Get-RoleGroupMember", { Identity = g.Name }) or {}
      local names = {}
      for _, x in ipairs(m) do
        local linked = tostring(x.RecipientTypeDetails) == "RoleGroup"
        names[#names + 1] = tostring(x.Name) .. (linked and " (linked: an Entra role, not a member list)" or "")
      end
      out[#out + 1] = { name = g.Name, members = names }
      ctx:say("  %-36s %s", g.Name, #names > 0 and table.concat(names, ", ") or "(no members)")
    end
  end
  return out
end

return runbook {
  name = "roles",
  description = "Report who holds each privileged role in a tenant, how, and the ScubaGear / Maester checks.\n\n" ..
    "Read-only. For each role: every holder with how it is held -- directly or through which group (members of\n" ..
    "role-assignable groups and of PIM for Groups included), active (permanent, time-bound, activated until when)\n" ..
    "or eligible in PIM, and the scope; service principals apart from users. Then Exchange Online's own role\n" ..
    "groups (linked role groups flagged: they mirror Entra roles and are not membership), and the checks with\n" ..
    "their ids: ScubaGear MS.AAD.7.1v1-7.9v1 and Maester CIS.M365.1.1.3, MT.1025, MT.1026. Exit 3 when a check\n" ..
    "fails. Default roles: the eight ScubaGear checks (Global, Privileged Role, Exchange, Application, Cloud\n" ..
    "Application, User, SharePoint, Hybrid Identity Administrator).",
  needs = {
    graph = { "Directory.Read.All", "RoleManagement.Read.Directory", "PrivilegedAccess.Read.AzureADGroup",
              "RoleManagementPolicy.Read.AzureADGroup" },
    exchange = { "View-Only Configuration" },
  },
  params = {
    { name = "tenant", type = "string", help = "profile of the tenant (default with --sim: contoso)" },
    { name = "role", type = "list", help = "roles to report (names or template ids; default: the ScubaGear eight)" },
    { name = "exclude", type = "list", help = "object ids excluded from MS.AAD.7.4 (emergency access accounts)" },
    { name = "exchange", type = "boolean", default = true, help = "also list Exchange Online role groups" },
  },
  run = function(ctx, p)
    local t = must(ctx, session.open(ctx, "tenant", p.tenant or (session.sim(ctx) and "contoso") or nil))
    if not t then ctx:usage("which tenant? pass --tenant PROFILE (or --profile, or --sim)") end
    local data = must(ctx, roles.data(t))
    ctx:say("Privileged roles in %s (%s)%s", t.name, t.id, data.p2 and "" or
      "   [no Microsoft Entra ID P2: no PIM data; MS.AAD.7.4-7.9 fail]")
    local wanted = {}
    for _, name in ipairs(p.role or {}) do
      local r = roles.catalog.role(name)
      if not r then ctx:fail("unknown role '%s' (names as in Entra ID, e.g. \"Exchange Administrator\", or template ids)", name) end
      wanted[#wanted + 1] = r
    end
    if #wanted == 0 then wanted = roles.catalog.cisa_roles() end
    local out = { tenant = t.name, tenant_id = t.id, p2 = data.p2, roles = {}, checks = {} }
    for _, r in ipairs(wanted) do
      local list = roles.holders(t, r.id)
      show_role(ctx, r, list)
      local rows = {}
      for _, h in ipairs(list) do
        rows[#rows + 1] = { principal = h.principal.upn or h.principal.name, principal_id = h.principal.id,
                            type = KIND[h.principal.kind] or h.principal.kind, how = h.how,
                            group = h.group and h.group.name or nil, state = h.state, kind = h.kind,
                            ["until"] = h.stop, scope = h.scope, membership = h.membership }
      end
      out.roles[r.name] = rows
    end
    if p.exchange then out.exchange = exchange_groups(ctx, t) end
    ctx:say("\nChecks")
    for _, c in ipairs(checks.run(t, data, { exclusions = p.exclude })) do
      ctx:say("  [%s] %-15s %s -- %s", c.result == "pass" and "Passed" or "Failed", c.id, c.title, c.detail)
      ctx:item(c.id, c.result == "pass", c.result == "pass" and nil or c.detail)
      out.checks[#out.checks + 1] = c
    end
    for _, e in ipairs(data.errors) do ctx.log.warn("roles: %s", e) end
    ctx:summary("tenant", t.name)
    ctx:summary("roles reported", #wanted)
    return out
  end,
}
