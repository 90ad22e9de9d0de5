-- t2t.sim.exo.permissions: mailbox FullAccess (Get-MailboxPermission) and SendAs
-- (Get-RecipientPermission) delegates, from the sim-only lists _FullAccess and _SendAs on the
-- recipient (docs/simulator.md "Population"); Send on Behalf is the GrantSendOnBehalfTo property
-- Get-Mailbox shows.  Output property names per the cmdlet pages; the NT AUTHORITY\SELF entries
-- every mailbox has are listed as the service lists them.
local model = require "t2t.sim.model"
local U = require "t2t.sim.exo.util"

local M = {}
local lower = string.lower
local SELF = "NT AUTHORITY\\SELF"

-- The principal as the service names it in User/Trustee: its UPN (cloud objects), else Name.
local function principal(t, name)
  local r = model.find_recipient(t, name)
  return r and (r.UserPrincipalName or r.PrimarySmtpAddress or r.Name) or name
end

local function matches(t, who, filter)
  if filter == nil then return true end
  local f = lower(tostring(filter))
  if lower(who) == f then return true end
  local r = model.find_recipient(t, filter)
  return r ~= nil and lower(principal(t, r.Name)) == lower(who)
end

M["Get-MailboxPermission"] = function(ctx, p)
  U.only_simulated("Get-MailboxPermission", p, U.set("Identity", "User", "ResultSize", "Owner",
    "IncludeUserWithDisplayName", "IncludeUnresolvedPermissions", "ReadFromDomainController"))
  local r = U.find(ctx, p.Identity, U.MAILBOX)
  if p.Owner then
    return { U.present({ Identity = r.Name, Owner = r.UserPrincipalName or r.Name }) }
  end
  local out = {}
  local function add(user, rights, inherited)
    if matches(ctx.t, user, p.User) then
      out[#out + 1] = U.present({ Identity = r.Name, User = user, AccessRights = rights,
        IsInherited = inherited, Deny = false, InheritanceType = "All", IsValid = true })
    end
  end
  add(SELF, { "FullAccess", "ReadPermission" }, false)
  for _, name in ipairs(r._FullAccess or {}) do
    add(principal(ctx.t, name), { "FullAccess" }, false)
  end
  return out
end

-- One entry per SendAs grant; without -Identity, every recipient's (SELF included).
M["Get-RecipientPermission"] = function(ctx, p)
  U.only_simulated("Get-RecipientPermission", p, U.set("Identity", "AccessRights", "Trustee",
    "ResultSize", "ReadFromDomainController", "IncludeTrusteeWithPrimarySmtpAddress"))
  local list = p.Identity ~= nil and { U.find(ctx, p.Identity) } or U.all(ctx, U.MAILBOX)
  local out = {}
  for _, r in ipairs(list) do
    local function add(trustee)
      if matches(ctx.t, trustee, p.Trustee) then
        out[#out + 1] = { Identity = r.Name, Trustee = trustee, AccessControlType = "Allow",
                          AccessRights = { "SendAs" }, IsInherited = false,
                          InheritanceType = "None", IsValid = true }
      end
    end
    if U.MAILBOX[r.RecipientTypeDetails] then add(SELF) end
    for _, name in ipairs(r._SendAs or {}) do add(principal(ctx.t, name)) end
  end
  return out, function(e) return U.present(e) end
end

return M
