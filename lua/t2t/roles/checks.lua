-- t2t.roles.checks: the privileged-role checks of CISA ScubaGear (MS.AAD.7.1-7.9) and Maester
-- (CIS.M365.1.1.3, MT.1025-1026) over t2t.roles.effective's holdings and the PIM policies, with
-- their ids.  Logic: roles-and-mailauth.md §4-5 (ScubaGear's Rego, Maester's tests), including
-- what they count: active + eligible, groups and PIM for Groups members expanded, each user once,
-- service principals apart.  Where the two tools differ the ScubaGear reading is used and the
-- difference is named in the check's note.
--
--   checks.run(t, data, {exclusions = {object ids}}) -> list of
--     {id, title, source, result = "pass"|"fail"|"n/a", detail, note}
local catalog = require "t2t.roles.catalog"

local M = {}

local GA = catalog.GLOBAL_ADMIN
local NO_P2 = "Your tenant does not have a Microsoft Entra ID P2 license, which is required for this check"

local function cisa_ids()
  local s = {}
  for _, r in ipairs(catalog.cisa_roles()) do s[r.id] = r end
  return s
end

-- Users (not service principals) holding any role in `ids`, active or eligible: id -> {p, roles}.
local function users(data, ids)
  local out = {}
  for _, h in ipairs(data.holdings) do
    if ids[h.role.id] and h.principal.kind == "user" then
      local u = out[h.principal.id] or { p = h.principal, roles = {} }
      u.roles[h.role.id] = true
      out[h.principal.id] = u
    end
  end
  return out
end

local function count(t) local n = 0 for _ in pairs(t) do n = n + 1 end return n end
local function names(list)
  local out = {}
  for _, u in pairs(list) do out[#out + 1] = u.p.upn or u.p.name or u.p.id end
  table.sort(out)
  return table.concat(out, ", ")
end

-- The PIM policy rules of a role ("/" DirectoryRole) and of the PIM groups holding it.
local function policy_rules(t, rid, data)
  local sets = {}
  local f = "?$filter=scopeId eq '/' and scopeType eq 'DirectoryRole' and roleDefinitionId eq '" .. rid .. "'"
  for _, a in ipairs(t:glist("/policies/roleManagementPolicyAssignments" .. f) or {}) do
    local rules = t:glist("/policies/roleManagementPolicies/" .. a.policyId .. "/rules")
    if rules then sets[#sets + 1] = { source = catalog.role_name(rid) .. " (Directory Role)", rules = rules } end
  end
  for gid in pairs(data.pim_groups) do
    local holds = false
    for _, h in ipairs(data.holdings) do
      if h.role.id == rid and h.principal.id == gid then holds = true end
    end
    if holds then
      local g = "?$filter=scopeId eq '" .. gid .. "' and scopeType eq 'Group' and roleDefinitionId eq 'member'"
      for _, a in ipairs(t:glist("/policies/roleManagementPolicyAssignments" .. g) or {}) do
        local rules = t:glist("/policies/roleManagementPolicies/" .. a.policyId .. "/rules")
        local p = data.principals[gid]
        if rules then sets[#sets + 1] = { source = tostring(p and p.name or gid) .. " (PIM Group)", rules = rules } end
      end
    end
  end
  return sets
end

local function rule(rules, id)
  for _, r in ipairs(rules) do if r.id == id then return r end end
  return nil
end

local function empty_recipients(r)
  return r ~= nil and (r.notificationRecipients == nil or #r.notificationRecipients == 0)
end

local function result(ok) return ok and "pass" or "fail" end

-- The ScubaGear checks.
local function scuba(t, data, o)
  local cisa = cisa_ids()
  local out = {}
  local ga = users(data, { [GA] = true })
  local n = count(ga)
  local pass71 = n >= 2 and n <= 8
  out[#out + 1] = { id = "MS.AAD.7.1v1", source = "ScubaGear", title = "Two to eight users hold Global Administrator",
    result = result(pass71), detail = string.format("%d Global Administrator user(s): %s", n, names(ga)),
    note = "active and eligible, through groups and PIM for Groups, each user once; service principals not counted" }
  local priv = users(data, cisa)
  local others = 0
  for id in pairs(priv) do if not ga[id] then others = others + 1 end end
  out[#out + 1] = { id = "MS.AAD.7.2v1", source = "ScubaGear", title = "Finer-grained roles are used rather than Global Administrator",
    result = result(pass71 and n <= others),
    detail = string.format("%d Global Administrator(s), %d other privileged user(s)%s", n, others,
      pass71 and others > 0 and string.format(" (least privilege score %.2f)", n / others) or "") }
  local synced = {}
  for id, u in pairs(priv) do if u.p.immutable_id then synced[id] = u end end
  out[#out + 1] = { id = "MS.AAD.7.3v1", source = "ScubaGear", title = "Privileged users are cloud-only",
    result = result(count(synced) == 0), detail = count(synced) == 0 and "no privileged user is synchronized" or
      ("synchronized (onPremisesImmutableId set): " .. names(synced)) }
  if not data.p2 then
    for _, c in ipairs({ { "MS.AAD.7.4v1", "No permanent active assignments for privileged roles" },
                         { "MS.AAD.7.5v1", "Privileged roles are assigned only through PIM" },
                         { "MS.AAD.7.6v1", "Global Administrator activation requires approval" },
                         { "MS.AAD.7.7v1", "Eligible and active assignments of privileged roles alert" },
                         { "MS.AAD.7.8v1", "Global Administrator activation alerts" },
                         { "MS.AAD.7.9v1", "Other privileged role activation alerts" } }) do
      out[#out + 1] = { id = c[1], source = "ScubaGear", title = c[2], result = "fail", detail = NO_P2 }
    end
    return out
  end
  local excluded = {}
  for _, id in ipairs(o.exclusions or {}) do excluded[id] = true end
  local permanent, outside = {}, {}
  for _, h in ipairs(data.holdings) do
    if cisa[h.role.id] and h.state == "active" and h.how == "direct" then
      if h.kind == "permanent" and not excluded[h.principal.id] then permanent[h.role.name] = true end
      if h.outside_pim then outside[h.role.name] = true end
    end
  end
  local function keys(s) local l = {} for k in pairs(s) do l[#l + 1] = k end table.sort(l) return l end
  out[#out + 1] = { id = "MS.AAD.7.4v1", source = "ScubaGear", title = "No permanent active assignments for privileged roles",
    result = result(next(permanent) == nil), detail = next(permanent) == nil and "none" or
      ("roles with permanent active assignments: " .. table.concat(keys(permanent), ", ")),
    note = "exclusions: --exclude OBJECT_ID (emergency accounts); PIM groups are not detected, as in ScubaGear" }
  out[#out + 1] = { id = "MS.AAD.7.5v1", source = "ScubaGear", title = "Privileged roles are assigned only through PIM",
    result = result(next(outside) == nil), detail = next(outside) == nil and "none" or
      ("roles assigned outside PIM (no start time): " .. table.concat(keys(outside), ", ")),
    note = "Maester's CISA.MS.AAD.7.5 also fails on createdUsing = null" }
  local offenders = { ["7.6"] = {}, ["7.7"] = {}, ["7.8"] = {}, ["7.9"] = {} }
  for rid in pairs(cisa) do
    for _, set in ipairs(policy_rules(t, rid, data)) do
      if rid == GA then
        local ap = rule(set.rules, "Approval_EndUser_Assignment")
        if ap and not (ap.setting and ap.setting.isApprovalRequired) then offenders["7.6"][#offenders["7.6"] + 1] = set.source end
        if empty_recipients(rule(set.rules, "Notification_Admin_EndUser_Assignment")) then
          offenders["7.8"][#offenders["7.8"] + 1] = set.source
        end
      elseif empty_recipients(rule(set.rules, "Notification_Admin_EndUser_Assignment")) then
        offenders["7.9"][#offenders["7.9"] + 1] = set.source
      end
      if empty_recipients(rule(set.rules, "Notification_Admin_Admin_Assignment"))
         or empty_recipients(rule(set.rules, "Notification_Admin_Admin_Eligibility")) then
        offenders["7.7"][#offenders["7.7"] + 1] = set.source
      end
    end
  end
  for _, c in ipairs({ { "7.6", "Global Administrator activation requires approval" },
                       { "7.7", "Eligible and active assignments of privileged roles alert" },
                       { "7.8", "Global Administrator activation alerts" },
                       { "7.9", "Other privileged role activation alerts" } }) do
    local l = offenders[c[1]]
    table.sort(l)
    out[#out + 1] = { id = "MS.AAD." .. c[1] .. "v1", source = "ScubaGear", title = c[2], result = result(#l == 0),
      detail = #l == 0 and "set" or ("not set for: " .. table.concat(l, ", ")),
      note = c[1] ~= "7.6" and "only additional recipients count (isDefaultRecipientsEnabled is not consulted)" or nil }
  end
  return out
end

-- The Maester checks beyond ScubaGear's.
local function maester(data)
  local out = {}
  local ga = users(data, { [GA] = true })
  local n = count(ga)
  out[#out + 1] = { id = "CIS.M365.1.1.3", source = "Maester", title = "Two to four users hold Global Administrator",
    result = result(n >= 2 and n <= 4), detail = string.format("%d Global Administrator user(s)", n) }
  local control = { [GA] = true, [catalog.PRIVILEGED_ROLE_ADMIN] = true }
  local guest, hybrid = {}, {}
  for _, h in ipairs(data.holdings) do
    if control[h.role.id] and h.state == "active" and h.kind == "permanent" and h.principal.kind == "user" then
      if h.principal.guest then guest[#guest + 1] = h.principal.upn or h.principal.name end
      if h.principal.synced then hybrid[#hybrid + 1] = h.principal.upn or h.principal.name end
    end
  end
  out[#out + 1] = { id = "MT.1025", source = "Maester", title = "No external user with a permanent Control Plane role",
    result = result(#guest == 0), detail = #guest == 0 and "none" or table.concat(guest, ", "),
    note = "Control Plane here: Global and Privileged Role Administrator" }
  out[#out + 1] = { id = "MT.1026", source = "Maester", title = "No hybrid user with a permanent Control Plane role",
    result = result(#hybrid == 0), detail = #hybrid == 0 and "none" or table.concat(hybrid, ", ") }
  return out
end

-- run(t, data, o) -> the checks, ScubaGear first.
function M.run(t, data, o)
  local out = scuba(t, data, o or {})
  for _, c in ipairs(maester(data)) do out[#out + 1] = c end
  return out
end

return M
