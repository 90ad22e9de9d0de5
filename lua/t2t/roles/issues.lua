-- t2t.roles.issues: the known issues of group-based (and PIM) role assignment that apply to one
-- principal, each with its workaround.  From roles-and-mailauth.md §3 (the Entra "groups-concept"
-- page, every version 2020-2026), §6 (Exchange linked role groups) and wire.md §1.7 (tokens).
--
--   issues.applying(holdings, data, o) -> list of {id, title, applies = why, workaround, since}
local catalog = require "t2t.roles.catalog"

local M = {}

local EXCHANGE = { [catalog.GLOBAL_ADMIN] = true, ["29232cdf-9323-42fd-ade2-1d097af3e4de"] = true,
                   ["31392ffb-586c-42d1-9346-e59415a2cc4e"] = true }

M.LIST = {
  { id = "new-eac-group-roles", since = "~2023, still on the 2026 page",
    title = "Admins whose Exchange role comes through a group can't open Rules, Organization or Public Folders " ..
            "in the new Exchange admin center",
    workaround = "assign the role to the user directly (keep the group for the rest); Exchange PowerShell and " ..
                 "t2t (InvokeCommand) honour group-based roles" },
  { id = "pim-deleted-group", since = "every version 2020-2026",
    title = "A deleted group can still show as eligible in the PIM portal (a cache)",
    workaround = "trust Graph, not the portal: the group is gone (t2t sees no such principal); restore it within " ..
                 "30 days if it was a mistake, or ignore the stale row until the cache clears" },
  { id = "pim-double-active", since = "2020 preview (gone from the page since 2021; still worth avoiding)",
    title = "A group assigned a role as Active both directly and through PIM: wrong end time, one assignment in " ..
            "My Roles, the PIM one can't be removed",
    workaround = "keep one: remove the assignment made outside PIM (t2t.roles.ensure_assignment never adds a " ..
                 "second one)" },
  { id = "aip-classic", since = "every version 2020-2026",
    title = "The AIP classic portal doesn't recognise group-based role membership",
    workaround = "assign the role directly to the user for that portal" },
  { id = "activate-then-new-token", since = "wire.md §1.7",
    title = "A role granted or activated after sign-in is not in the current token",
    workaround = "sign in again (t2t gets a new token on its next run); Exchange authorizes app-only calls from " ..
                 "the token's roles; allow a few minutes before Exchange honours a fresh activation (§10 q2)" },
  { id = "linked-role-groups", since = "MicrosoftDocs/microsoft-365-docs#8037 (2022)",
    title = "Exchange lists Global/Exchange Administrators as linked role groups (TenantAdmins_…, " ..
            "ExchangeServiceAdmins_…), not as members of Organization Management",
    workaround = "don't use Exchange role-group membership to prove someone is an Entra admin: use Graph (t2t " ..
                 "run roles / access-check)" },
}

local function find(id) for _, i in ipairs(M.LIST) do if i.id == id then return i end end end

local function hit(out, id, why)
  local i = find(id)
  local c = {}
  for k, v in pairs(i) do c[k] = v end
  c.applies = why
  out[#out + 1] = c
end

-- applying(holdings, data, o) -> the issues that apply to the principal whose holdings these are.
-- o.exchange: the principal works with Exchange (show the Exchange ones); o.token_missing = list
-- of role names held but not in the token.
function M.applying(holdings, data, o)
  o = o or {}
  local out = {}
  local via_group_exchange, via_group, eligible = nil, nil, false
  local direct_active, pim_active = {}, {}
  for _, h in ipairs(holdings) do
    if h.how == "group" and h.state == "active" then
      via_group = via_group or h
      if EXCHANGE[h.role.id] then via_group_exchange = via_group_exchange or h end
    end
    if h.state == "eligible" then eligible = true end
    if h.how == "direct" and h.state == "active" then
      if h.outside_pim then direct_active[h.role.id] = h else pim_active[h.role.id] = h end
    end
  end
  if via_group_exchange then
    hit(out, "new-eac-group-roles", string.format("holds %s through group %s", via_group_exchange.role.name,
      tostring(via_group_exchange.group and via_group_exchange.group.name or "?")))
  end
  for _, s in ipairs(data and data.stale or {}) do
    if s.state == "eligible" then
      hit(out, "pim-deleted-group", string.format("an eligibility for %s names principal %s, which no longer exists",
        s.role.name, s.principal_id))
      break
    end
  end
  for rid, h in pairs(direct_active) do
    if pim_active[rid] then
      hit(out, "pim-double-active", string.format("%s is assigned active both outside PIM and through PIM", h.role.name))
      break
    end
  end
  if via_group then hit(out, "aip-classic", "holds " .. via_group.role.name .. " through a group") end
  if eligible or (o.token_missing and #o.token_missing > 0) then
    hit(out, "activate-then-new-token", eligible and "has eligible roles: an activation shows up in the next token"
      or ("held but not in this sign-in: " .. table.concat(o.token_missing, ", ")))
  end
  if o.exchange then hit(out, "linked-role-groups", "works with Exchange Online") end
  return out
end

return M
