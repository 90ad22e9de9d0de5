-- t2t.roles.explain: for each grant a preflight found missing, how it would be granted (which
-- role or permission, directly or through which group), what stands in the way (eligible but
-- not activated in PIM, assigned after this sign-in), and who can grant it — from the tenant's
-- role data when this sign-in may read it.  Then the report as lines and as one message.
local catalog = require "t2t.roles.catalog"
local effective = require "t2t.roles.effective"

local M = {}

local GRANTERS = { "Privileged Role Administrator", "Global Administrator" }

-- who(data, roles) -> "admin@x (Global Administrator, direct, active, permanent); ..." (at most
-- five, users first, active before eligible).
local function who(data, tenant, roles)
  local label = table.concat(roles, " or ")
  if not data then
    return string.format("a %s of %s (this sign-in cannot list them: it needs RoleManagement.Read.Directory " ..
                         "and Directory.Read.All)", label, tostring(tenant))
  end
  local seen, out = {}, {}
  for _, state in ipairs({ "active", "eligible" }) do
    for _, r in ipairs(roles) do
      for _, h in ipairs(effective.holders(data, r)) do
        local p = h.principal
        if h.state == state and p.kind == "user" and not seen[p.id] and #out < 5 then
          seen[p.id] = true
          out[#out + 1] = string.format("%s (%s, %s)", p.upn or p.name or p.id, h.role.name, effective.describe(h))
        end
      end
    end
  end
  if #out == 0 then return string.format("a %s of %s (none found)", label, tostring(tenant)) end
  return label .. ": " .. table.concat(out, "; ")
end

-- state(data, principal id, role names) -> what the role data says about the principal and these
-- roles that its token does not show, or nil.
local function state(data, pid, names)
  if not data or not pid then return nil end
  local want = {}
  for _, n in ipairs(names) do local r = catalog.role(n); if r then want[r.id] = true end end
  local notes = {}
  for _, h in ipairs(effective.of(data, pid)) do
    if want[h.role.id] or (h.role.id == catalog.GLOBAL_ADMIN) then
      if h.state == "eligible" then
        local where = h.how == "group" and ("eligible via group " .. tostring(h.group and h.group.name or "?"))
                      or "eligible directly"
        if h.membership == "pim-eligible" then
          where = "eligible member (PIM for Groups) of group " .. tostring(h.group and h.group.name or "?") ..
                  ", which holds " .. h.role.name .. "; membership not activated"
          notes[#notes + 1] = where .. ": activate the membership (Entra admin center > Privileged Identity " ..
                              "Management > My roles > Groups), then run again"
        else
          notes[#notes + 1] = string.format("%s for %s, not activated: activate it in PIM (Entra admin center > " ..
            "Privileged Identity Management > My roles), then run again", where, h.role.name)
        end
      else
        notes[#notes + 1] = string.format("%s is held (%s) but not in this sign-in's token: it was granted or " ..
          "activated after the token was issued; run again to get a new token", h.role.name, effective.describe(h))
      end
    end
  end
  if #notes == 0 then return nil end
  return table.concat(notes, "; ")
end

local function app_ref(p)
  return p.kind == "app" and ("app " .. tostring(p.name) .. (p.appid and p.appid ~= p.name and (" (" .. p.appid .. ")") or ""))
         or ("user " .. tostring(p.name))
end

M.who_label = app_ref

-- explain(t, report, data): fills grant/who/state of each missing item (required and optional);
-- data: the tenant's role holdings (t2t.roles.effective.collect), read here when not given and
-- readable with this sign-in.
function M.explain(t, report, data)
  if not data then
    local ok, d = pcall(effective.collect, t)
    if ok and d then data = d end
  end
  local p = report.principal
  for _, list in ipairs({ report.items, report.optional }) do
    for _, e in ipairs(list) do
      if not e.ok then
        local item = e.item
        if item.kind == "graph" then
          if p.kind == "app" then
            e.grant = string.format("admin consent for the application permission %s on Microsoft Graph for the %s " ..
              "(t2t run bootstrap grants exactly what the chosen runbooks need; or Entra admin center > App " ..
              "registrations > the app > API permissions > Grant admin consent)", item.name, app_ref(p))
          else
            e.grant = string.format("sign in with a client that asks for the delegated permission %s", item.name)
          end
          e.who = who(data, t.domain or t.name, GRANTERS)
        elseif item.kind == "exchange_access" then
          e.grant = p.kind == "app" and string.format("admin consent for the application permission " ..
            "Exchange.ManageAsApp on Office 365 Exchange Online for the %s (t2t run bootstrap does it)", app_ref(p))
            or "sign in with the Exchange Online PowerShell client (it asks for Exchange.Manage)"
          e.who = who(data, t.domain or t.name, GRANTERS)
        elseif item.kind == "exchange" then
          local cover = item.cover or "Exchange Administrator"
          local l = catalog.linked(cover)
          e.state = state(data, p.id, { cover, "Exchange Administrator" })
          e.grant = string.format("the Entra role %s for the %s, directly or through a role-assignable group " ..
            "(its linked role group is a member of %s, which holds %s); or Exchange RBAC: New-ManagementRoleAssignment " ..
            "%s -Role '<role>' for each of %s", cover, app_ref(p), l and l.group or "?",
            table.concat(item.roles, ", "), p.kind == "app" and ("-App " .. tostring(p.appid)) or ("-User " .. tostring(p.name)),
            table.concat(item.missing_roles or item.roles, ", "))
          e.who = who(data, t.domain or t.name, GRANTERS) .. " (Exchange RBAC: Organization Management)"
        elseif item.kind == "entra" then
          e.state = state(data, p.id, item.any)
          e.grant = string.format("the Entra role %s for the %s, directly or through a role-assignable group " ..
            "(t2t.roles.ensure_assignment; eligible in PIM if you prefer, then activated before the run)",
            table.concat(item.any, " or "), app_ref(p))
          e.who = who(data, t.domain or t.name, GRANTERS)
        end
      end
    end
  end
  return report
end

local function label(item)
  if item.kind == "graph" then return item.name .. " (Microsoft Graph permission)" end
  if item.kind == "exchange_access" then return item.name .. " (Office 365 Exchange Online permission)" end
  if item.kind == "entra" then return item.name .. " (Entra role)" end
  return item.name
end
M.label = label

-- lines(report, title) -> list of lines for the terminal.
function M.lines(report, title)
  local missing = 0
  for _, e in ipairs(report.items) do if not e.ok then missing = missing + 1 end end
  local out = { string.format("%s: %s%s", title, app_ref(report.principal),
    missing == 0 and ", every grant needed is held" or string.format(", %d of %d grants missing", missing, #report.items)) }
  local function show(e, opt)
    out[#out + 1] = string.format("  [%s] %s%s -- %s", e.ok and "ok" or (opt and "optional" or "missing"),
                                  label(e.item), "", tostring(e.via))
    if not e.ok then
      if e.state then out[#out + 1] = "      state:  " .. e.state end
      if e.grant then out[#out + 1] = "      grant:  " .. e.grant end
      if e.who then out[#out + 1] = "      who:    " .. e.who end
    end
  end
  for _, e in ipairs(report.items) do show(e) end
  for _, e in ipairs(report.optional) do if not e.ok then show(e, true) end end
  for _, a in ipairs(report.azure or {}) do out[#out + 1] = "  [not checked] Azure: " .. a end
  return out
end

-- message(report, tenant) -> one line for the failure: what is missing and the first hint.
function M.message(report, tenant)
  local parts = {}
  for _, e in ipairs(report.items) do
    if not e.ok then
      local s = label(e.item)
      if e.item.kind == "exchange" then
        s = s .. " (the Entra role " .. tostring(e.item.cover or "Exchange Administrator") .. " brings them)"
      end
      if e.state then s = s .. " [" .. e.state .. "]" end
      parts[#parts + 1] = s
    end
  end
  return string.format("preflight in %s: the %s lacks %s -- nothing was changed; the lines above say how to grant " ..
    "each and who can ('t2t run access-check' shows the full picture)", tostring(tenant), app_ref(report.principal),
    table.concat(parts, "; "))
end

return M
